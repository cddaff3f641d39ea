"""The attack tests' shared setup: a tiny trained model and 100 sample images."""

import pytest

from tfjsigr.evaluation import testing


@pytest.fixture(scope="module")
def setup():
    """(model_fn, x, y, clean accuracy) of the tiny model on 100 sample test images."""
    model = testing.tiny_model()
    _, _, x, y = testing.sample_data()
    x, y = x[:100], y[:100]

    def model_fn(v):
        return model(v, training=False)

    return model_fn, x, y, testing.accuracy(model_fn, x, y)
