"""The model zoo: export to Keras + SavedModel + ONNX with model cards, index and verification."""

from tfjsigr.zoo.card import read_card, update_card, write_json_atomic
from tfjsigr.zoo.export import ParityError, export_entry
from tfjsigr.zoo.index import read_index
from tfjsigr.zoo.verify import PARITY_TOLERANCE, verify_entry, verify_zoo

__all__ = [
    "PARITY_TOLERANCE",
    "ParityError",
    "export_entry",
    "read_card",
    "read_index",
    "update_card",
    "verify_entry",
    "verify_zoo",
    "write_json_atomic",
]
