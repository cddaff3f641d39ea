"""Data sets for tfjsigr: images as float32 NHWC in [0, 1], labels as int32 class ids."""

from tfjsigr.data.fashion_mnist import DEBIAN_DIR, SAMPLE_DIR, load_fashion_mnist

__all__ = ["DEBIAN_DIR", "SAMPLE_DIR", "load_fashion_mnist"]
