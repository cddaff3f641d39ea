"""The model zoo: its on-disk layout (`layout`), cards, index, export, verification and build.

Names load on first use (`tfjsigr.zoo.load`, `tfjsigr.zoo.entries`, `tfjsigr.zoo.export_run`,
`tfjsigr.zoo.build`, ...): importing the package imports nothing heavy.
"""

from tfjsigr import _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    {
        "read_card": "layout",
        "load": "layout:load_model",
        "entries": "layout",
        "update_card": "card",
        "ParityError": "export",
        "export_entry": "export",
        "export_run": "export",
        "read_index": "index",
        "PARITY_TOLERANCE": "verify",
        "verify_entry": "verify",
        "verify_zoo": "verify",
        "build": "builder",
    },
)
