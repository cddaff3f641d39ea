"""Models that cannot be evaluated on the data are refused before any attack runs."""

import re

import numpy as np
import pytest

from tfjsigr import testing as model_testing
from tfjsigr.evaluation import check_model, evaluate_model, evaluate_zoo, testing


@pytest.fixture(scope="module")
def data():
    _, _, x, y = testing.sample_data()
    return x[:20], y[:20].astype(np.int32)


def nan_weights(model):
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    return model


def flat_model():
    return model_testing.linear_model(np.zeros((784, 10)), np.zeros(10))


REFUSED = {
    "color 32x32": (lambda: model_testing.tiny_cnn((32, 32, 3), 10), "takes inputs of shape"),
    "flat vectors": (flat_model, "takes inputs of shape (None, 784)"),
    "3 classes": (lambda: model_testing.tiny_cnn((28, 28, 1), 3), "gives 3 logits per image"),
    "NaN weights": (lambda: nan_weights(model_testing.tiny_cnn((28, 28, 1), 10)), "NaN or inf"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_check_model_refuses_models_that_do_not_fit_the_data(data, case):
    build, message = REFUSED[case]
    with pytest.raises(ValueError, match=f"^bad: .*{re.escape(message)}"):
        check_model(build(), *data, name="bad")


def test_check_model_returns_the_number_of_classes(data):
    assert check_model(model_testing.tiny_cnn((28, 28, 1), 10), *data) == 10


def test_evaluate_model_refuses_nan_logits(data):
    model = nan_weights(model_testing.tiny_cnn((28, 28, 1), 10))
    with pytest.raises(ValueError, match="logits are NaN or infinite on 20 of 20"):
        evaluate_model(model, *data, name="nan")


def test_evaluate_zoo_checks_transfer_sources_before_attacking(data, monkeypatch):
    def attack(*args, **kwargs):
        pytest.fail("evaluated a model before checking the transfer sources")

    monkeypatch.setattr("tfjsigr.evaluation.evaluate.evaluate_model", attack)
    good = model_testing.tiny_cnn((28, 28, 1), 10)
    color = model_testing.tiny_cnn((32, 32, 3), 10)
    with pytest.raises(ValueError, match="^cifar: takes inputs of shape"):
        evaluate_zoo({"good": good}, *data, extra_sources={"cifar": color})
