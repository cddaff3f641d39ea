"""A user's own backbone: a saved Keras model (.keras) that a recipe names as its architecture."""

import pathlib

SUFFIX = ".keras"


def is_saved_backbone(name):
    """Whether an architecture name is a saved model file (it ends in .keras)."""
    return isinstance(name, str) and name.endswith(SUFFIX)


def saved_backbone(path, input_shape=None, num_classes=None):
    """The model saved in `path`, checked against the data: images of `input_shape` in,
    `num_classes` logits out. A saved `RegularizedModel` gives its backbone.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a loadable Keras model, or one that does not fit the data.
    """
    from tfjsigr.zoo.layout import load_model

    path = pathlib.Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"saved backbone not found: {path}")
    model = load_model(path)
    model = getattr(model, "model", model)  # A RegularizedModel's backbone.
    _check_fits(model, path, input_shape, num_classes)
    return model


def _check_fits(model, path, input_shape, num_classes):
    try:
        inputs, outputs = tuple(model.input_shape), tuple(model.output_shape)
    except (AttributeError, ValueError):
        raise ValueError(f"{path}: the backbone has no single input and output shape") from None
    fits_input = input_shape is None or (
        len(inputs) == 4 and all(m in (None, d) for m, d in zip(inputs[1:], input_shape))
    )
    fits_output = num_classes is None or (len(outputs) == 2 and outputs[-1] == num_classes)
    if not (fits_input and fits_output):
        raise ValueError(
            f"{path}: the backbone takes {list(inputs[1:])} and outputs {list(outputs[1:])}; the "
            f"data has images of {list(input_shape)} and {num_classes} classes (it must output "
            "one logit per class)"
        )
