"""Classifier architectures built from Keras layers; every one outputs logits."""

from tfjsigr.architectures.small_cnn import small_cnn

__all__ = ["small_cnn"]
