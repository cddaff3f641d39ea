"""A short training run on the embedded Fashion-MNIST sample has the intended effect."""

import keras
import pytest

import tfjsigr
from tfjsigr.architectures import small_cnn
from tfjsigr.data import load_fashion_mnist
from tfjsigr.evaluation import metrics


@pytest.fixture(scope="module")
def data():
    x, y, _ = load_fashion_mnist("train", source="sample")
    x_test, y_test, _ = load_fashion_mnist("test", source="sample")
    return x[:1500], y[:1500], x_test[:300], y_test[:300]


def train(penalties, x, y):
    keras.utils.set_random_seed(7)
    model = tfjsigr.RegularizedModel(small_cnn(filters=(8, 16), dense=32), penalties=penalties)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=50, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="module")
def plain(data):
    x, y, _, _ = data
    return train([], x, y)


@pytest.mark.parametrize(
    "penalty",
    [tfjsigr.penalties.InputGradient(5.0), tfjsigr.penalties.JSIGR(0.05, 20.0)],
    ids=["igr", "jsigr"],
)
def test_regularized_model_has_smaller_jacobian_and_input_gradients_than_its_twin(
    data, plain, penalty
):
    x, y, x_test, y_test = data
    regularized = train([penalty], x, y)
    plain_jacobian = metrics.mean_jacobian_norm(plain, x_test)
    regularized_jacobian = metrics.mean_jacobian_norm(regularized, x_test)
    plain_gradient = metrics.mean_input_gradient_norm(plain, x_test, y_test)
    regularized_gradient = metrics.mean_input_gradient_norm(regularized, x_test, y_test)
    print(
        f"{penalty.name}: ||J||_F {regularized_jacobian:.3f} vs plain {plain_jacobian:.3f}; "
        f"||dCE/dx|| {regularized_gradient:.4f} vs plain {plain_gradient:.4f}"
    )
    assert regularized_jacobian < 0.8 * plain_jacobian
    assert regularized_gradient < 0.8 * plain_gradient
    # Still a classifier: well above the 10% of chance on the test images.
    assert metrics.accuracy(regularized, x_test, y_test) > 0.5
