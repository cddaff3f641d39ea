"""APGD-CE, APGD-DLR and APGD-T (Croce & Hein 2020), AutoAttack's gradient attacks, L-inf and L2.

A port of fra31/auto-attack's `autopgd_base.py` to TensorFlow: PGD with momentum whose step size
starts at 2 eps and is halved, per example, at checkpoints where the loss stopped increasing (the
example then restarts from its best point). Each iteration is one compiled call that moves and
evaluates every still-correct example; an example leaves the batch as soon as it is misclassified.

Differences from the reference, none of which changes which examples are fooled: the first
window's success count compares the first iterate's loss with the starting point's (the paper's
rule; the reference code compares it with 0, an artefact of its loss buffer), an example keeps the
first misclassified point found (the reference keeps iterating and keeps the last), and an example
never fooled is returned at its highest-loss point (the reference returns the clean input).
"""

import collections

import numpy as np
import tensorflow as tf

from tfjsigr import ops
from tfjsigr.attacks.projected_gradient_descent import (
    _broadcast_per_example,
    _clip,
    check_attack_arguments,
    project,
    steepest_ascent_step,
)
from tfjsigr.attacks.spsa import margin_loss

MOMENTUM = 0.75


def dlr_loss(labels, logits):
    """Untargeted DLR: -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12) per example.

    pi sorts the logits in decreasing order; the loss is positive once the prediction is wrong
    and does not change when the logits are scaled or shifted.
    """
    logits = tf.cast(logits, tf.float32)
    top = tf.math.top_k(logits, 3).values
    return -margin_loss(labels, logits) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr_loss(labels, logits, targets):
    """Targeted DLR: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12) per example."""
    logits = tf.cast(logits, tf.float32)
    top = tf.math.top_k(logits, 4).values
    true = tf.gather(logits, labels, axis=1, batch_dims=1)
    target = tf.gather(logits, targets, axis=1, batch_dims=1)
    return -(true - target) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


_LOSSES = {
    "ce": lambda labels, logits, targets: ops.per_example_cross_entropy(labels, logits),
    "dlr": lambda labels, logits, targets: dlr_loss(labels, logits),
    "dlr-targeted": targeted_dlr_loss,
}
_MIN_CLASSES = {"ce": 2, "dlr": 3, "dlr-targeted": 4}


def checkpoints(steps):
    """Iterations after which APGD may halve the step size, starting with 0.

    The reference code's integer form of p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1}
    - 0.03, 0.06) times `steps`: the first window is int(0.22 steps) iterations and each next one
    int(0.03 steps) shorter, down to int(0.06 steps) (every length at least 1).
    For 100 steps: [0, 22, 41, 57, 70, 80, 87, 93, 99].
    """
    window = max(int(0.22 * steps), 1)
    decrease, minimum = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    points = [0]
    while points[-1] + window <= steps:
        points.append(points[-1] + window)
        window = max(window - decrease, minimum)
    return points


def auto_projected_gradient_descent(
    model_fn,
    x,
    y,
    eps,
    norm=np.inf,
    steps=100,
    loss="ce",
    restarts=1,
    rho=0.75,
    clip_min=0.0,
    clip_max=1.0,
    seed=None,
):
    """Untargeted APGD (APGD-CE with loss="ce", APGD-DLR with loss="dlr").

    Each restart attacks, from a random point of the eps-sphere, only the examples no earlier
    restart fooled. Examples the model already misclassifies are returned unchanged. Eager only
    (a Python loop drives one compiled step per iteration).

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (B, ...), float32.
        y: integer or one-hot labels.
        eps: radius of the ball.
        norm: np.inf or 2.
        steps: iterations per restart.
        loss: "ce" (softmax cross-entropy) or "dlr" (difference of logits ratio, `dlr_loss`).
        restarts: number of runs from random starts.
        rho: a checkpoint halves an example's step size when at most a share rho of the steps
            since the last checkpoint increased its loss.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        seed: integer seed of the random starts (stateless); None draws one.

    Returns:
        Adversarial inputs: per example a misclassified point if one was found, else the point
        of highest loss; within eps of x and within [clip_min, clip_max].
    """
    if loss not in ("ce", "dlr"):
        raise ValueError(f'loss must be "ce" or "dlr", got {loss!r}')
    settings = _Settings(eps, norm, steps, loss, rho, clip_min, clip_max)
    x, labels, logits, seed = _prepare(model_fn, x, y, settings, restarts, seed)
    return _attack(model_fn, x, labels, logits, [labels] * int(restarts), settings, seed)


def auto_projected_gradient_descent_targeted(
    model_fn,
    x,
    y,
    eps,
    norm=np.inf,
    steps=100,
    target_classes=9,
    restarts=1,
    rho=0.75,
    clip_min=0.0,
    clip_max=1.0,
    seed=None,
):
    """APGD-T: APGD on the targeted DLR loss toward each of the most likely wrong classes.

    For k = 2, ..., target_classes + 1 it runs `restarts` APGD runs of `steps` iterations on the
    examples not yet fooled, with target the class of the k-th largest clean logit.

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (B, ...), float32.
        y: integer or one-hot labels.
        eps: radius of the ball.
        norm: np.inf or 2.
        steps: iterations per target and restart.
        target_classes: number of target classes, 1 to C - 1 (the model needs C >= 4 classes).
        restarts: runs per target class.
        rho: step-size halving threshold (see `auto_projected_gradient_descent`).
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        seed: integer seed of the random starts (stateless); None draws one.

    Returns:
        Adversarial inputs: per example a misclassified point if one was found, else the point
        of highest targeted DLR loss; within eps of x and within [clip_min, clip_max].
    """
    if int(target_classes) != target_classes or target_classes < 1:
        raise ValueError(f"target_classes must be a positive integer, got {target_classes}")
    settings = _Settings(eps, norm, steps, "dlr-targeted", rho, clip_min, clip_max)
    x, labels, logits, seed = _prepare(model_fn, x, y, settings, restarts, seed)
    num_classes = logits.shape[1]
    if target_classes > num_classes - 1:
        raise ValueError(f"target_classes must be at most {num_classes - 1}, got {target_classes}")
    ranked = tf.math.top_k(logits, int(target_classes) + 1).indices
    runs = [ranked[:, k] for k in range(1, int(target_classes) + 1) for _ in range(int(restarts))]
    return _attack(model_fn, x, labels, logits, runs, settings, seed)


# The attack's settings, shared by every run.
_Settings = collections.namedtuple("_Settings", "eps norm steps loss rho clip_min clip_max")


def _prepare(model_fn, x, y, s, restarts, seed):
    """Checks the arguments; returns x, integer labels, clean logits and an integer seed."""
    check_attack_arguments(s.eps, s.norm, s.clip_min, s.clip_max, steps=s.steps)
    if int(restarts) != restarts or restarts < 1:
        raise ValueError(f"restarts must be a positive integer, got {restarts}")
    if not 0.0 < s.rho < 1.0:
        raise ValueError(f"rho must be in (0, 1), got {s.rho}")
    if not tf.executing_eagerly():
        raise RuntimeError(
            "APGD runs eagerly (a Python loop over a compiled step); call it outside tf.function"
        )
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank < 2:
        raise ValueError(f"x must be a batch (B, ...) of rank >= 2, got shape {x.shape}")
    logits = tf.cast(model_fn(x), tf.float32)
    if logits.shape[1] < _MIN_CLASSES[s.loss]:
        raise ValueError(
            f"loss {s.loss} needs at least {_MIN_CLASSES[s.loss]} classes, "
            f"the model has {logits.shape[1]}"
        )
    labels = ops.integer_labels(y, logits)
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    return x, labels, logits, int(seed)


def _attack(model_fn, x, labels, logits, runs, settings, seed):
    """One APGD run per entry of `runs` (the targets of its loss), each on the examples no
    earlier run fooled."""
    fooled = tf.not_equal(tf.argmax(logits, 1, output_type=tf.int32), labels)
    x_adv = x
    best_loss = tf.fill(tf.shape(labels), -np.inf)
    for run, targets in enumerate(runs):
        index = tf.cast(tf.where(tf.logical_not(fooled))[:, 0], tf.int32)
        if index.shape[0] == 0:
            break
        found, survivors = _apgd_run(model_fn, x, labels, targets, index, settings, [seed, run])
        # Survivors keep their highest-loss point over all runs.
        better = survivors.loss_best > tf.gather(best_loss, survivors.index)
        update = tf.boolean_mask(survivors.index, better)[:, None]
        best_loss = tf.tensor_scatter_nd_update(
            best_loss, update, tf.boolean_mask(survivors.loss_best, better)
        )
        x_adv = tf.tensor_scatter_nd_update(
            x_adv, update, tf.boolean_mask(survivors.x_best, better)
        )
        for found_index, points in found:
            x_adv = tf.tensor_scatter_nd_update(x_adv, found_index[:, None], points)
            fooled = tf.tensor_scatter_nd_update(
                fooled, found_index[:, None], tf.ones_like(found_index, tf.bool)
            )
    return x_adv


# Per-example state of a run, gathered and compacted together. loss_prev: loss of the previous
# iterate; successes: steps that raised the loss since the last checkpoint; reduced: whether the
# last checkpoint halved the step size.
_State = collections.namedtuple(
    "_State",
    "index x y targets x_adv x_prev grad x_best grad_best loss_best loss_prev step_size "
    "successes loss_best_checkpoint reduced",
)


def _apgd_run(model_fn, x, labels, targets, index, s, seed):
    """One APGD run on the examples `index` of x.

    Returns:
        ([(index, point) pieces of misclassified points found], _State of the survivors).
    """
    x_run = tf.gather(x, index)
    start = _clip(x_run + _random_start(x_run, s.eps, s.norm, seed), s.clip_min, s.clip_max)
    eps = tf.constant(s.eps, tf.float32)
    labels, targets = tf.gather(labels, index), tf.gather(targets, index)
    state, wrong = _compiled_initial_state(
        model_fn, index, x_run, labels, targets, start, eps, s.loss
    )
    static = (s.norm, s.loss, s.clip_min, s.clip_max)
    step = _step_function(model_fn, state, static)
    rho = tf.constant(float(s.rho))
    moved, found, previous, schedule = start, [], 0, set(checkpoints(s.steps))
    for i in range(int(s.steps) + 1):
        if bool(tf.reduce_any(wrong)):
            state, piece = _compiled_drop(state, moved, wrong)
            found.append(piece)
        if i == s.steps or state.index.shape[0] == 0:
            break
        window = i + 1 - previous if i + 1 in schedule else 0
        previous = i + 1 if window else previous
        momentum = tf.constant(MOMENTUM if i else 1.0)
        checkpoint, window = tf.constant(window > 0), tf.constant(float(window))
        state, moved, wrong = step(model_fn, state, eps, momentum, checkpoint, window, rho, *static)
    return found, state


def _step_function(model_fn, state, static):
    """The compiled step for every batch size, traced once per model and settings.

    Calling the concrete function skips most of tf.function's per-call dispatch.
    """
    specs = tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), state)
    eps, momentum, window, rho = [tf.TensorSpec([], tf.float32)] * 4
    checkpoint = tf.TensorSpec([], tf.bool)
    return _compiled_step.get_concrete_function(
        model_fn, specs, eps, momentum, checkpoint, window, rho, *static
    )


def _random_start(x, eps, norm, seed):
    """As the reference: a uniform draw of [-1, 1]^d scaled to L-inf norm eps, or a Gaussian
    direction scaled to L2 norm eps (a point of the sphere, not of the ball)."""
    if norm == np.inf:
        t = tf.random.stateless_uniform(tf.shape(x), seed, minval=-1.0, maxval=1.0)
        scale = tf.reduce_max(tf.abs(tf.reshape(t, [tf.shape(x)[0], -1])), axis=1)
    else:
        t = tf.random.stateless_normal(tf.shape(x), seed)
        scale = tf.sqrt(ops.per_example_squared_norm(t))
    return eps * t / _broadcast_per_example(scale + 1e-12, t)


def _loss_and_gradient(model_fn, x_adv, labels, targets, loss):
    with tf.GradientTape() as tape:
        tape.watch(x_adv)
        logits = tf.cast(model_fn(x_adv), tf.float32)
        values = _LOSSES[loss](labels, logits, targets)
        total = tf.reduce_sum(values)
    wrong = tf.not_equal(tf.argmax(logits, 1, output_type=tf.int32), labels)
    return values, tape.gradient(total, x_adv), wrong


def _initial_state(model_fn, index, x, labels, targets, start, eps, loss):
    """The state at the starting point (step size 2 eps), and whether it is misclassified."""
    values, grad, wrong = _loss_and_gradient(model_fn, start, labels, targets, loss)
    state = _State(
        index=index,
        x=x,
        y=labels,
        targets=targets,
        x_adv=start,
        x_prev=start,
        grad=grad,
        x_best=start,
        grad_best=grad,
        loss_best=values,
        loss_prev=values,
        step_size=tf.fill(tf.shape(values), 2.0 * eps),
        successes=tf.zeros_like(values),
        loss_best_checkpoint=values,
        reduced=tf.ones_like(wrong),  # as the reference: no "no improvement" halving at first
    )
    return state, wrong


def _project(point, x, eps, norm, clip_min, clip_max):
    return _clip(x + project(point - x, eps, norm), clip_min, clip_max)


def _apgd_step(model_fn, s, eps, momentum, checkpoint, window, rho, norm, loss, clip_min, clip_max):
    """One APGD iteration of every example of state `s`.

    Returns:
        (next state, the point evaluated, whether it is misclassified).
    """
    step_size = _broadcast_per_example(s.step_size, s.x)
    z = _project(
        s.x_adv + steepest_ascent_step(s.grad, step_size, norm), s.x, eps, norm, clip_min, clip_max
    )
    moved = s.x_adv + momentum * (z - s.x_adv) + (1.0 - momentum) * (s.x_adv - s.x_prev)
    moved = tf.stop_gradient(_project(moved, s.x, eps, norm, clip_min, clip_max))
    values, grad, wrong = _loss_and_gradient(model_fn, moved, s.y, s.targets, loss)

    improved = values > s.loss_best
    x_best = tf.where(_broadcast_per_example(improved, moved), moved, s.x_best)
    grad_best = tf.where(_broadcast_per_example(improved, grad), grad, s.grad_best)
    loss_best = tf.where(improved, values, s.loss_best)
    successes = s.successes + tf.cast(values > s.loss_prev, tf.float32)
    # At a checkpoint: halve when the loss rose in at most a share rho of the window's steps,
    # or when the last checkpoint did not halve and the best loss has not improved since.
    stalled = tf.logical_or(
        successes <= rho * window,
        tf.logical_and(tf.logical_not(s.reduced), s.loss_best_checkpoint >= loss_best),
    )
    halve = tf.logical_and(checkpoint, stalled)
    restart = _broadcast_per_example(halve, moved)
    state = s._replace(
        x_adv=tf.where(restart, x_best, moved),
        x_prev=s.x_adv,
        grad=tf.where(restart, grad_best, grad),
        x_best=x_best,
        grad_best=grad_best,
        loss_best=loss_best,
        loss_prev=values,
        step_size=tf.where(halve, s.step_size / 2.0, s.step_size),
        successes=tf.where(checkpoint, tf.zeros_like(successes), successes),
        loss_best_checkpoint=tf.where(checkpoint, loss_best, s.loss_best_checkpoint),
        reduced=tf.where(checkpoint, halve, s.reduced),
    )
    return state, moved, wrong


def _drop(state, moved, wrong):
    """Removes the misclassified examples; returns the rest and (their index, their point)."""
    keep = tf.logical_not(wrong)
    rest = tf.nest.map_structure(lambda t: tf.boolean_mask(t, keep), state)
    return rest, (tf.boolean_mask(state.index, wrong), tf.boolean_mask(moved, wrong))


# Eager Python loops over these compiled functions (as PGD does): the batch can shrink between
# calls, and reduce_retracing traces each once more for a varying batch size.
_compiled_initial_state = tf.function(_initial_state, reduce_retracing=True)
_compiled_step = tf.function(_apgd_step, reduce_retracing=True)
_compiled_drop = tf.function(_drop, reduce_retracing=True)
