"""Classifier architectures built from Keras layers; every one outputs logits.

Each takes `input_shape`, `num_classes` and `activation`, names its input "image" and its
output layer "logits". `get(name, **kwargs)` builds one by name (as recipes do); a name ending
in .keras is the user's own saved backbone (`saved_backbone`).
"""

import inspect
import numbers

from tfjsigr.architectures.lenet import lenet
from tfjsigr.architectures.mlp import mlp
from tfjsigr.architectures.preact_resnet import preact_resnet
from tfjsigr.architectures.ross_cnn import ross_cnn
from tfjsigr.architectures.saved_backbone import is_saved_backbone, saved_backbone
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
        name: one of `ALL` ("lenet", "mlp", "preact_resnet", "ross_cnn", "small_cnn"), or the
            path of a saved Keras model (.keras) to use as the backbone.
        **kwargs: its arguments (input_shape, num_classes, activation, ...).

    Returns:
        A `keras.Model` from images in [0, 1] to logits.

    Raises:
        ValueError: unknown name, an argument the architecture does not take, or one of the
            wrong type.
    """
    check_arguments(name, kwargs)
    if is_saved_backbone(name):
        return saved_backbone(name, **kwargs)
    return lookup(name)(**kwargs)


def lookup(name):
    """The builder function of a named architecture."""
    try:
        return ALL[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(ALL)}") from None


def check_arguments(name, kwargs):
    """ValueError naming the first argument the architecture does not take or of the wrong type.

    An argument must be of the kind of its default: a list of integers where the default is a
    tuple, an integer, a number, or a string (or callable, for activations).
    """
    if is_saved_backbone(name):
        extra = sorted(set(kwargs) - {"input_shape", "num_classes"})
        if extra:
            raise ValueError(f"a saved backbone ({name}) takes no arguments, got {extra}")
        return
    accepted = inspect.signature(lookup(name)).parameters
    for key, value in kwargs.items():
        if key not in accepted:
            raise ValueError(
                f"architecture {name!r} takes no argument {key!r}; it takes {list(accepted)}"
            )
        expected = _expected_kind(accepted[key].default)
        if expected is not None and not expected[1](value):
            raise ValueError(
                f"architecture {name!r}: argument {key!r} must be {expected[0]}, "
                f"got {type(value).__name__} {value!r}"
            )


def _expected_kind(default):
    """(description, test) of the values an argument with this default takes, or None."""
    if isinstance(default, tuple):
        return "a list of integers", _is_integer_list
    if isinstance(default, int) and not isinstance(default, bool):
        return "an integer", _is_integer
    if isinstance(default, float):
        return "a number", _is_number
    if isinstance(default, str):  # Activations: a Keras name or a function.
        return "a string", lambda value: isinstance(value, str) or callable(value)
    return None


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_integer_list(value):
    return isinstance(value, (list, tuple)) and all(_is_integer(item) for item in value)


__all__ = ["ALL", "get", "lenet", "mlp", "preact_resnet", "ross_cnn", "small_cnn"]
