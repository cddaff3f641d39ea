import keras
import numpy as np
import pytest

from tfjsigr import testing
from tfjsigr.architectures import small_cnn
from tfjsigr.data import load_fashion_mnist
from tfjsigr.evaluation import explanations


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN trained for a few seconds on 600 Fashion-MNIST sample images."""
    x, y, _ = load_fashion_mnist("train", source="sample")
    keras.utils.set_random_seed(0)
    model = testing.compiled(small_cnn(filters=(4, 8), dense=16))
    model.fit(x[:600], y[:600], batch_size=32, epochs=3, verbose=0)
    return model, x[600:608], y[600:608]


def probabilities(model, x):
    return testing.softmax(np.asarray(model(x, training=False)))


@pytest.mark.parametrize("rho", [0.02, 0.1])
def test_explanations_respect_the_rms_bound_and_the_pixel_range(trained, rho):
    model, x, y = trained
    targets = (y + 1) % 10
    explained = explanations.adversarial_explanation(model, x, targets, rho=rho)
    assert explained.shape == x.shape
    assert explained.min() >= 0.0 and explained.max() <= 1.0
    rms = np.sqrt(np.mean(np.square(explained - x), axis=(1, 2, 3)))
    assert np.all(rms <= rho + 1e-6)
    assert np.all(rms > 0.5 * rho)  # 5 rho of steps reach the bound, not stop short


def test_explanations_raise_the_target_probability(trained):
    model, x, y = trained
    targets = (y + 3) % 10
    before = probabilities(model, x)[np.arange(len(x)), targets]
    after = probabilities(model, explanations.adversarial_explanation(model, x, targets, rho=0.1))
    after = after[np.arange(len(x)), targets]
    assert np.all(after > before)
    assert np.mean(after) > 2 * np.mean(before)


def test_single_image_in_single_image_out(trained):
    model, x, _ = trained
    explained = explanations.adversarial_explanation(model, x[0], 4, rho=0.05, steps=3)
    assert explained.shape == x[0].shape


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rho": 0.0},
        {"rho": float("inf")},
        {"rho": 1.5},
        {"rho": float("nan")},
        {"steps": 0},
        {"target_class": [1, 2]},
        {"target_class": 1.5},
        {"target_class": 10},
        {"images": np.full((2, 28, 28, 1), 1.5, np.float32)},
        {"images": "bad"},
    ],
    ids=[
        "rho",
        "rho-inf",
        "rho-above-1",
        "rho-nan",
        "steps",
        "target-count",
        "target-type",
        "target-range",
        "pixels",
        "images",
    ],
)
def test_bad_arguments_raise_value_error(trained, kwargs):
    model, x, _ = trained
    arguments = {"images": x[:3], "target_class": 1, **kwargs}
    with pytest.raises(ValueError):
        explanations.adversarial_explanation(model, **arguments)


def test_explanation_grid_writes_a_png_with_one_column_per_target(trained, tmp_path):
    model, x, _ = trained
    path, explained, figures = explanations.explanation_grid(
        model, x[0], 0.1, tmp_path / "sub" / "grid.png", targets=[0, 5], steps=5
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert explained.shape == (2, *x[0].shape) and figures.shape == (2, 2)
    with pytest.raises(ValueError):
        explanations.explanation_grid(model, x[0], 0.1, tmp_path / "bad.png", targets=[10])


def test_a_model_with_nan_outputs_is_refused(tmp_path):
    model = testing.tiny_cnn()
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    image = np.full((16, 16, 1), 0.5, np.float32)
    with pytest.raises(explanations.NonFiniteOutputs):
        explanations.adversarial_explanation(model, image, 1, steps=1)
    with pytest.raises(explanations.NonFiniteOutputs):
        explanations.explanation_grid(model, image, 0.1, tmp_path / "grid.png", steps=1)
    assert not (tmp_path / "grid.png").exists()


def test_explanation_grid_writes_exactly_the_path_it_is_given(tmp_path):
    image = np.full((16, 16, 1), 0.5, np.float32)
    path, _, _ = explanations.explanation_grid(
        testing.tiny_cnn(), image, 0.1, tmp_path / "grid", steps=1
    )
    assert path == tmp_path / "grid"
    assert path.read_bytes()[:4] == b"\x89PNG"
