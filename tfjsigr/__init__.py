"""tfjsigr: adversarially robust, interpretable image classifiers on Keras 3.

The package loads lazily: `import tfjsigr` is instant, and TensorFlow is imported the first
time a name below is used (`tfjsigr.RegularizedModel`, `tfjsigr.penalties`, ...). Load a saved
model with `tfjsigr.load_model(path)`, which registers tfjsigr's Keras classes first.
"""

import importlib
import os

# TensorFlow's C++ start-up chatter buries our output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# Public name -> (module, attribute or None for the module itself).
_LAZY = {
    "RegularizedModel": ("tfjsigr.training.regularized_model", "RegularizedModel"),
    "load_model": ("tfjsigr.zoo.layout", "load_model"),
    "adversarial_training": ("tfjsigr.training.adversarial_training", None),
    "ensemble": ("tfjsigr.training.ensemble", None),
    "architectures": ("tfjsigr.architectures", None),
    "attacks": ("tfjsigr.attacks", None),
    "data": ("tfjsigr.data", None),
    "evaluation": ("tfjsigr.evaluation", None),
    "layers": ("tfjsigr.layers", None),
    "penalties": ("tfjsigr.penalties", None),
    "pipeline": ("tfjsigr.pipeline", None),
    "serving": ("tfjsigr.serving", None),
    "training": ("tfjsigr.training", None),
    "tuning": ("tfjsigr.tuning", None),
    "zoo": ("tfjsigr.zoo", None),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tfjsigr' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_LAZY])


def register_keras_objects():
    """Imports every module that registers Keras classes (models, penalties, layers), so
    `keras.saving.load_model` can rebuild a tfjsigr model."""
    for module in ("tfjsigr.training", "tfjsigr.penalties", "tfjsigr.layers", "tfjsigr.architectures"):
        importlib.import_module(module)


__all__ = [  # noqa: PLE0604 (the lazy names are strings)
    "__version__",
    "register_keras_objects",
    *_LAZY,
]
