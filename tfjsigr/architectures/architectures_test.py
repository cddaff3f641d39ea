import numpy as np
import pytest

from tfjsigr import architectures

SHAPES = {
    "lenet": (28, 28, 1),
    "mlp": (28, 28, 1),
    "ross_cnn": (28, 28, 1),
    "small_cnn": (28, 28, 1),
    "preact_resnet": (32, 32, 3),
}


@pytest.mark.parametrize("name", sorted(architectures.ALL))
def test_every_architecture_maps_named_images_to_logits(name):
    model = architectures.get(name, input_shape=SHAPES[name], num_classes=7)
    assert model.inputs[0].name == "image"
    assert model.output_shape == (None, 7)
    logits = model(np.random.default_rng(0).random((2, *SHAPES[name]), dtype=np.float32))
    assert logits.shape == (2, 7)
    assert np.all(np.isfinite(logits))


def test_ross_cnn_has_the_papers_layers():
    model = architectures.get("ross_cnn")
    kernels = [tuple(layer.kernel.shape) for layer in model.layers if hasattr(layer, "kernel")]
    assert kernels == [(5, 5, 1, 32), (5, 5, 32, 64), (7 * 7 * 64, 1024), (1024, 10)]


def test_activation_is_a_parameter():
    model = architectures.get("mlp", hidden=(8,), activation="tanh")
    dense = next(layer for layer in model.layers if hasattr(layer, "kernel"))
    assert dense.activation.__name__ == "tanh"


def test_unknown_architecture_and_argument_are_named():
    with pytest.raises(ValueError, match="unknown architecture 'vgg'"):
        architectures.get("vgg")
    with pytest.raises(ValueError, match="no argument 'depth'"):
        architectures.get("mlp", depth=3)
