"""Classifier architectures built from Keras layers; every one outputs logits.

Each takes `input_shape`, `num_classes` and `activation`, names its input "image" and its
output layer "logits". `get(name, **kwargs)` builds one by name (as recipes do).
"""

import inspect

from tfjsigr.architectures.lenet import lenet
from tfjsigr.architectures.mlp import mlp
from tfjsigr.architectures.preact_resnet import preact_resnet
from tfjsigr.architectures.ross_cnn import ross_cnn
from tfjsigr.architectures.small_cnn import small_cnn

ALL = {
    "lenet": lenet,
    "mlp": mlp,
    "preact_resnet": preact_resnet,
    "ross_cnn": ross_cnn,
    "small_cnn": small_cnn,
}


def get(name, **kwargs):
    """Builds a named architecture.

    Args:
        name: one of `ALL` ("lenet", "mlp", "preact_resnet", "ross_cnn", "small_cnn").
        **kwargs: its arguments (input_shape, num_classes, activation, ...).

    Returns:
        A `keras.Model` from images in [0, 1] to logits.

    Raises:
        ValueError: unknown name or an argument the architecture does not take.
    """
    builder = lookup(name)
    check_arguments(name, kwargs)
    return builder(**kwargs)


def lookup(name):
    """The builder function of a named architecture."""
    try:
        return ALL[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(ALL)}") from None


def check_arguments(name, kwargs):
    """ValueError naming the first argument the architecture does not take."""
    accepted = inspect.signature(lookup(name)).parameters
    for key in kwargs:
        if key not in accepted:
            raise ValueError(
                f"architecture {name!r} takes no argument {key!r}; it takes {list(accepted)}"
            )


__all__ = ["ALL", "get", "lenet", "mlp", "preact_resnet", "ross_cnn", "small_cnn"]
