"""Lazy package attributes (PEP 562): a package's public names, imported on first use.

The command line imports the packages for their constants (option choices) and must start in
well under a second, so a package's `__init__` does not import TensorFlow; its names resolve
the first time they are used. `attach` is what scientific-python's `lazy_loader.attach` does,
for the few names tfjsigr needs.
"""

import importlib


def attach(package, names):
    """(__getattr__, __dir__, __all__) for a package whose `names` map each public name to
    "submodule" (the name is an attribute of it) or "submodule:attribute"."""

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attribute = names[name].partition(":")
        module = importlib.import_module(f"{package}.{module_name}")
        value = getattr(module, attribute or name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__, sorted(names)
