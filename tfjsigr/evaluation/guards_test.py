"""The gradient-masking guards fire on a masked model and stay quiet on a normal one."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfjsigr.evaluation import EvaluationConfig, guards, testing
from tfjsigr.evaluation import attacks as attacks_lib
from tfjsigr.evaluation.attacks import logits_function
from tfjsigr.evaluation.evaluate import run_guards


class QuantizeInputs(keras.layers.Layer):
    """Rounds inputs to 4 levels; the gradient through it is exactly zero (masked)."""

    def call(self, x):
        return tf.stop_gradient(tf.round(x * 3.0) / 3.0) + 0.0 * x


def masked(model):
    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, model(QuantizeInputs()(inputs)))


def guard_report(model, x, y):
    config = EvaluationConfig(
        eps_grid=(0.05, 0.1, 0.3), square_eps=(0.1, 0.3), square_samples=len(x)
    )
    model_fn = logits_function(model)
    curves, flags = attacks_lib.accuracy_curve(
        "pgd", model_fn, x, y, config.eps_grid, progress=False
    )
    return run_guards(model_fn, x, y, curves, flags, config)[0]


@pytest.fixture(scope="module")
def data():
    _, _, x, y = testing.sample_data()
    return x[:100], y[:100].astype(np.int32)


def test_guards_fire_on_gradient_masked_model(data):
    report = guard_report(masked(testing.tiny_model()), *data)
    assert not report["reliable"]
    assert "unbounded_pgd" in report["failed"]
    assert "black_box" in report["failed"]


def test_guards_quiet_on_normal_model(data):
    report = guard_report(testing.tiny_model(), *data)
    assert report["reliable"], report["failed"]


def test_guards_run_on_a_single_image(data):
    x, y = data
    report = guard_report(testing.tiny_model(), x[:1], y[:1])
    assert report["black_box"]["samples"] == 1


def test_monotone_guard_flags_a_rise():
    rising = [{"attack": "pgd", "eps": e, "accuracy": a} for e, a in [(0.1, 0.3), (0.2, 0.35)]]
    falling = [{"attack": "pgd", "eps": e, "accuracy": a} for e, a in [(0.1, 0.3), (0.2, 0.1)]]
    assert not guards.monotone_guard(rising)["passed"]
    assert guards.monotone_guard(rising)["rises"][0]["eps_to"] == 0.2
    assert guards.monotone_guard(falling)["passed"]
