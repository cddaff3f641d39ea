"""APGD-CE, APGD-DLR and APGD-T: strength, constraints, the reference's schedule and losses."""

import importlib

import numpy as np
import pytest
import tensorflow as tf

from tfjsigr.attacks.projected_gradient_descent import projected_gradient_descent
from tfjsigr.evaluation import testing

# The module, not the function of the same name that tfjsigr.attacks may export.
apgd = importlib.import_module("tfjsigr.attacks.auto_projected_gradient_descent")

STEPS = 20


def _attack(name, model_fn, x, y, eps, norm, **kwargs):
    if name == "targeted":
        return apgd.auto_projected_gradient_descent_targeted(
            model_fn, x, y, eps, norm=norm, target_classes=3, **kwargs
        )
    return apgd.auto_projected_gradient_descent(model_fn, x, y, eps, norm=norm, loss=name, **kwargs)


def _norms(delta, norm):
    flat = delta.reshape(len(delta), -1)
    return np.abs(flat).max(1) if norm == np.inf else np.sqrt(np.square(flat).sum(1))


@pytest.mark.parametrize("norm,eps", [(np.inf, 0.1), (2, 1.5)])
@pytest.mark.parametrize("name", ["ce", "dlr", "targeted"])
def test_lowers_accuracy_within_ball_and_range(setup, name, norm, eps):
    model_fn, x, y, clean = setup
    x_adv = np.asarray(_attack(name, model_fn, x, y, eps, norm, steps=STEPS, seed=0))
    assert x_adv.shape == x.shape
    assert _norms(x_adv - x, norm).max() <= eps * (1 + 1e-5) + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert testing.accuracy(model_fn, x_adv, y) < clean - 0.3


@pytest.mark.parametrize("norm,eps", [(np.inf, 0.1), (2, 1.5)])
def test_apgd_ce_at_least_as_strong_as_pgd(setup, norm, eps):
    model_fn, x, y, _ = setup
    pgd = projected_gradient_descent(model_fn, x, y, eps, eps / 4, 20, norm=norm, seed=0)
    ours = apgd.auto_projected_gradient_descent(model_fn, x, y, eps, norm=norm, steps=50, seed=0)
    assert testing.accuracy(model_fn, ours, y) <= testing.accuracy(model_fn, pgd, y)


def test_misclassified_inputs_are_returned_unchanged(setup):
    model_fn, x, y, _ = setup
    wrong = np.argmax(np.asarray(model_fn(x)), 1) != y
    x_adv = np.asarray(apgd.auto_projected_gradient_descent(model_fn, x, y, 0.1, steps=5, seed=0))
    np.testing.assert_array_equal(x_adv[wrong], x[wrong])


def test_checkpoints_follow_the_reference_schedule():
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), in the reference's
    # integers: windows int(0.22 n), shrinking by int(0.03 n) down to int(0.06 n), each >= 1.
    assert apgd.checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd.checkpoints(20) == [0, 4, 7, 9] + list(range(10, 21))
    assert apgd.checkpoints(1000) == [0, 220, 410, 570, 700, 800, 870, 930, 990]
    assert apgd.checkpoints(1) == [0, 1]


@pytest.mark.parametrize(
    "checkpoint,successes,reduced,last_best,halves",
    [
        # The step raises the loss, so the window of 8 steps counts successes + 1; the
        # reference halves when that count is <= rho * 8 = 6.
        (True, 3, True, 0.0, True),
        (True, 5, True, 0.0, True),
        (True, 6, True, 0.0, False),
        # Or when the last checkpoint did not halve and the best loss has not improved since.
        (True, 6, False, 1e6, True),
        (True, 6, False, 0.0, False),
        (False, 0, False, 1e6, False),
    ],
)
def test_checkpoint_halves_step_size_and_restarts_from_best(
    setup, checkpoint, successes, reduced, last_best, halves
):
    model_fn, x, y, _ = setup
    x, y = tf.constant(x[:4]), tf.constant(y[:4], tf.int32)
    state, _ = apgd._initial_state(model_fn, tf.range(4), x, y, y, x, tf.constant(0.1), "ce")
    state = state._replace(
        successes=tf.fill([4], float(successes)),
        reduced=tf.fill([4], reduced),
        loss_best_checkpoint=tf.fill([4], last_best),
        loss_prev=tf.fill([4], -1e6),  # this step raises the loss
        loss_best=tf.fill([4], 1e6),  # and does not beat the best point,
        x_best=tf.zeros_like(x),  # which lies elsewhere
    )
    new, _, _ = apgd._apgd_step(
        model_fn,
        state,
        tf.constant(0.1),
        tf.constant(0.75),
        tf.constant(checkpoint),
        tf.constant(8.0),
        tf.constant(0.75),
        np.inf,
        "ce",
        0.0,
        1.0,
    )
    np.testing.assert_allclose(new.step_size.numpy(), 0.1 if halves else 0.2)
    restarted = np.abs(new.x_adv.numpy()).max(axis=(1, 2, 3)) == 0.0
    np.testing.assert_array_equal(restarted, halves)
    if checkpoint:
        np.testing.assert_array_equal(new.reduced.numpy(), halves)
        np.testing.assert_array_equal(new.successes.numpy(), 0.0)
        np.testing.assert_array_equal(new.loss_best_checkpoint.numpy(), 1e6)
    else:
        np.testing.assert_array_equal(new.successes.numpy(), successes + 1.0)


def test_dlr_losses_match_closed_form():
    logits = tf.constant([[3.0, 1.0, 2.0, 0.0], [0.0, 5.0, 1.0, 4.0]])
    labels = tf.constant([0, 0])
    # sorted: (3, 2, 1, 0) and (5, 4, 1, 0)
    np.testing.assert_allclose(apgd.dlr_loss(labels, logits), [-(3 - 2) / (3 - 1), 5 / (5 - 1)])
    targets = tf.constant([2, 3])
    np.testing.assert_allclose(
        apgd.targeted_dlr_loss(labels, logits, targets),
        [-(3 - 2) / (3 - 0.5), -(0 - 4) / (5 - 0.5)],
        rtol=1e-6,
    )
    # Scale and shift invariant.
    np.testing.assert_allclose(
        apgd.dlr_loss(labels, 3.0 * logits + 7.0), apgd.dlr_loss(labels, logits), rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"norm": 1},
        {"eps": -0.1},
        {"steps": 0},
        {"loss": "hinge"},
        {"rho": 0.0},
        {"rho": 1.0},
        {"restarts": 0},
        {"clip_min": 1.0, "clip_max": 0.0},
        {"target_classes": 0},
        {"target_classes": 10},
        {"rank_one": True},
    ],
)
def test_bad_arguments_raise(setup, kwargs):
    model_fn, x, y, _ = setup
    kwargs = dict(kwargs)
    arguments = {"eps": 0.1, "steps": 2}
    if kwargs.pop("rank_one", False):
        x = x[0, :, 0, 0]
    arguments.update(kwargs)
    targeted = "target_classes" in arguments
    attack = (
        apgd.auto_projected_gradient_descent_targeted
        if targeted
        else apgd.auto_projected_gradient_descent
    )
    with pytest.raises(ValueError):
        attack(model_fn, x, y, **arguments)


def test_targeted_needs_four_classes():
    def three_classes(v):
        return tf.reshape(v, [tf.shape(v)[0], -1])[:, :3]

    x = np.random.default_rng(0).uniform(size=(4, 5)).astype(np.float32)
    with pytest.raises(ValueError):
        apgd.auto_projected_gradient_descent_targeted(three_classes, x, [0, 1, 2, 0], 0.1, steps=2)


def test_inside_tf_function_raises(setup):
    model_fn, x, y, _ = setup
    compiled = tf.function(lambda v: apgd.auto_projected_gradient_descent(model_fn, v, y[:2], 0.1))
    with pytest.raises(RuntimeError):
        compiled(tf.constant(x[:2]))


@pytest.mark.parametrize("name", ["ce", "targeted"])
def test_seeded_runs_are_deterministic(setup, name):
    model_fn, x, y, _ = setup
    first = np.asarray(_attack(name, model_fn, x, y, 0.05, np.inf, steps=10, seed=3))
    second = np.asarray(_attack(name, model_fn, x, y, 0.05, np.inf, steps=10, seed=3))
    other = np.asarray(_attack(name, model_fn, x, y, 0.05, np.inf, steps=10, seed=4))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_restarts_only_add_strength_and_one_hot_labels_agree(setup):
    model_fn, x, y, _ = setup
    once = apgd.auto_projected_gradient_descent(model_fn, x, y, 0.05, steps=10, seed=1)
    twice = apgd.auto_projected_gradient_descent(
        model_fn, x, np.eye(10)[y], 0.05, steps=10, seed=1, restarts=3
    )
    fooled_once = np.argmax(np.asarray(model_fn(once)), 1) != y
    fooled_twice = np.argmax(np.asarray(model_fn(twice)), 1) != y
    # Restart 0 is the single run (same seed stream); later restarts only attack survivors.
    assert np.all(fooled_twice[fooled_once])
