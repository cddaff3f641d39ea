"""Keras layers and activations of tfjsigr."""

from tfjsigr.layers.half_huber_relu import HalfHuberReLU, half_huber_relu

__all__ = ["HalfHuberReLU", "half_huber_relu"]
