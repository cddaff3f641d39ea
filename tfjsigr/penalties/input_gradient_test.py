import numpy as np
import pytest
import tensorflow as tf

import tfjsigr
from tfjsigr import testing
from tfjsigr.penalties import InputGradient

RNG = np.random.default_rng(0)
W = RNG.normal(size=(6, 4)).astype(np.float32)
B = RNG.normal(size=4).astype(np.float32)
X = RNG.uniform(size=(32, 6)).astype(np.float32)
Y = RNG.integers(0, 4, size=32).astype(np.int32)


def penalty_value(penalty, backbone, x, y, **kwargs):
    model = tfjsigr.RegularizedModel(backbone, penalties=[penalty])
    _, values = model.compute_penalties(x, y, **kwargs)
    return float(values[penalty.name])


def test_cross_entropy_variant_matches_closed_form_of_linear_model():
    # d CE / dx = W (p - e_y) for z = x W + b.
    p = testing.softmax(X @ W + B)
    gradients = (p - np.eye(4)[Y]) @ W.T
    expected = np.mean(np.sum(gradients**2, axis=1))
    got = penalty_value(InputGradient(), testing.linear_model(W, B), X, Y)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_insensitive_variant_matches_closed_form_of_linear_model():
    # d/dx of -(1/C) sum_k log p_k is W (p - 1/C).
    p = testing.softmax(X @ W + B)
    gradients = (p - 0.25) @ W.T
    expected = np.mean(np.sum(gradients**2, axis=1))
    got = penalty_value(InputGradient(variant="insensitive"), testing.linear_model(W, B), X, Y)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_one_hot_labels_give_the_same_penalty_as_integer_labels():
    backbone = testing.linear_model(W, B)
    sparse = penalty_value(InputGradient(), backbone, X, Y)
    one_hot = penalty_value(InputGradient(), backbone, X, np.eye(4, dtype=np.float32)[Y])
    np.testing.assert_allclose(one_hot, sparse, rtol=1e-6)


def test_sample_weights_weight_the_batch_mean():
    backbone = testing.linear_model(W, B)
    weights = np.zeros(32, np.float32)
    weights[:16] = 2.0
    weighted = penalty_value(InputGradient(), backbone, X, Y, sample_weight=weights)
    first_half = penalty_value(InputGradient(), backbone, X[:16], Y[:16])
    np.testing.assert_allclose(weighted, first_half, rtol=1e-5)


def test_penalty_matches_finite_differences_on_a_tiny_conv_net():
    backbone = testing.tiny_cnn()
    x = np.random.default_rng(1).uniform(size=(2, 16, 16, 1)).astype(np.float64)
    y = np.array([0, 2], np.int32)

    def cross_entropy(images):
        logits = backbone(tf.constant(images, tf.float32), training=False)
        return tfjsigr.ops.per_example_cross_entropy(tf.constant(y), logits).numpy().astype(np.float64)

    step = 1e-2
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape[1:]):
        shift = np.zeros_like(x)
        shift[(slice(None), *index)] = step
        numeric[(slice(None), *index)] = (cross_entropy(x + shift) - cross_entropy(x - shift)) / (2 * step)
    expected = np.mean(np.sum(numeric.reshape(2, -1) ** 2, axis=1))
    got = penalty_value(InputGradient(), backbone, x.astype(np.float32), y)
    assert expected > 1e-6
    np.testing.assert_allclose(got, expected, rtol=2e-2)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="variant"):
        InputGradient(variant="margin")
    with pytest.raises(ValueError, match="weight"):
        InputGradient(weight=-1.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        InputGradient(warmup_steps=-5)
