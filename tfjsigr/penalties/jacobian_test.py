import numpy as np
import pytest
import tensorflow as tf

import tfjsigr
from tfjsigr import testing
from tfjsigr.penalties import Jacobian
from tfjsigr.penalties.jacobian import exact_squared_frobenius

RNG = np.random.default_rng(0)
W = RNG.normal(size=(6, 4)).astype(np.float32)
B = RNG.normal(size=4).astype(np.float32)
# For z = x W + b the Jacobian is W^T, so 1/2 ||J||_F^2 = 1/2 ||W||_F^2 for every input.
EXACT_PENALTY = 0.5 * np.sum(W**2)


def penalty_value(penalty, x, y=None):
    model = tfjsigr.RegularizedModel(testing.linear_model(W, B), penalties=[penalty])
    y = np.zeros(len(x), np.int32) if y is None else y
    _, values = model.compute_penalties(x, y)
    return float(values[penalty.name])


def test_exact_mode_equals_closed_form():
    x = RNG.uniform(size=(16, 6)).astype(np.float32)
    np.testing.assert_allclose(penalty_value(Jacobian(projections="exact"), x), EXACT_PENALTY, rtol=1e-5)


def test_projection_estimate_converges_to_closed_form():
    # 20,000 examples = 20,000 independent draws of v; the estimate's relative standard
    # deviation per draw is below 1 here, so 3% is more than 8 standard errors.
    x = RNG.uniform(size=(20000, 6)).astype(np.float32)
    estimate = penalty_value(Jacobian(projections=1), x)
    np.testing.assert_allclose(estimate, EXACT_PENALTY, rtol=0.03)


def test_single_draws_vary_but_more_projections_reduce_the_spread():
    x = RNG.uniform(size=(1, 6)).astype(np.float32)
    one = [penalty_value(Jacobian(projections=1), x) for _ in range(30)]
    eight = [penalty_value(Jacobian(projections=8), x) for _ in range(30)]
    assert np.std(one) > 0.05 * EXACT_PENALTY
    assert np.std(eight) < np.std(one)


def test_exact_squared_frobenius_matches_batch_jacobian_on_a_conv_net():
    backbone = testing.tiny_cnn(num_classes=5)
    x = tf.constant(RNG.uniform(size=(3, 16, 16, 1)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = backbone(x)
    reference = tf.reduce_sum(tf.square(tape.batch_jacobian(logits, x)), axis=[1, 2, 3, 4])
    got = exact_squared_frobenius(backbone, x)
    np.testing.assert_allclose(got.numpy(), reference.numpy(), rtol=1e-4)


def test_exact_penalty_on_conv_net_matches_batch_jacobian():
    backbone = testing.tiny_cnn(num_classes=5)
    x = RNG.uniform(size=(3, 16, 16, 1)).astype(np.float32)
    model = tfjsigr.RegularizedModel(backbone, penalties=[Jacobian(projections="exact")])
    _, values = model.compute_penalties(x, np.zeros(3, np.int32))
    expected = 0.5 * np.mean(exact_squared_frobenius(backbone, tf.constant(x)).numpy())
    np.testing.assert_allclose(float(values["jacobian"]), expected, rtol=1e-4)


@pytest.mark.parametrize("projections", [0, -1, 2.5, "all", True])
def test_bad_projections_raise(projections):
    with pytest.raises(ValueError, match="projections"):
        Jacobian(projections=projections)
