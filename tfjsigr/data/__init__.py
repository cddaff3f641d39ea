"""Data sets for tfjsigr: images as float32 NHWC in [0, 1], labels as int32 class ids."""

from tfjsigr.data.datasets import DATASETS, DatasetSpec, get_spec, load_dataset
from tfjsigr.data.fashion_mnist import DEBIAN_DIR, SAMPLE_DIR, load_fashion_mnist
from tfjsigr.data.pipeline import make_dataset

__all__ = [
    "DATASETS",
    "DEBIAN_DIR",
    "SAMPLE_DIR",
    "DatasetSpec",
    "get_spec",
    "load_dataset",
    "load_fashion_mnist",
    "make_dataset",
]
