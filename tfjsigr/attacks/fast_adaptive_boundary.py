"""Targeted Fast Adaptive Boundary attack (FAB-T; Croce & Hein 2020), L-inf and L2.

FAB is a minimum-norm attack. Each step linearises the logit difference f_t - f_y between the
true class y and a target class t at the current iterate, projects both the iterate and the clean
input onto the zero set of that linearisation (intersected with the input box), and moves to a
combination of the two projections biased toward the clean input, overshooting a little. Once an
iterate is misclassified it steps back toward the clean input, so the search keeps shrinking the
perturbation. AutoAttack (Croce & Hein, ICML 2020) runs FAB-T with the 9 most likely wrong classes
as targets, one restart each and 100 iterations, and counts a point as broken only when the
smallest misclassified point found lies within eps of it.
"""

import functools

import numpy as np
import tensorflow as tf

from tfjsigr import ops
from tfjsigr.attacks.projected_gradient_descent import _clip, check_attack_arguments, project


def _flat(tensor):
    return tf.reshape(tensor, [tf.shape(tensor)[0], -1])


def _per_example(values, like):
    return tf.reshape(values, [-1] + [1] * (like.shape.rank - 1))


def _norm(flat, norm):
    """Per-row L-inf or L2 norm of a (B, n) tensor."""
    if norm == np.inf:
        return tf.reduce_max(tf.abs(flat), axis=1)
    return tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1))


def _water_level(weights, kinks, target):
    """Per row, the smallest lambda >= 0 with h(lambda) = sum_i a_i min(lambda, r_i) >= target.

    h is continuous, non-decreasing and piecewise linear with kinks at the r_i. Sorting the r_i,
    h(r_k) = sum_{j<k} a_j r_j + r_k sum_{j>=k} a_j; if k kinks lie below the target the root is
    on the segment where h(lambda) = sum_{j<k} a_j r_j + lambda sum_{j>=k} a_j, hence one division.

    Args:
        weights: (B, n) a_i >= 0.
        kinks: (B, n) r_i >= 0 (may be inf), 0 where a_i = 0.
        target: (B,) values >= 0 to reach.

    Returns:
        (B,) lambda, inf where even sup h = sum_i a_i r_i stays below the target.
    """
    order = tf.argsort(kinks, axis=1)
    r = tf.gather(kinks, order, batch_dims=1)
    a = tf.gather(weights, order, batch_dims=1)
    saturated = tf.cumsum(a * r, axis=1, exclusive=True)
    slope = tf.reduce_sum(a, axis=1, keepdims=True) - tf.cumsum(a, axis=1, exclusive=True)
    below = tf.reduce_sum(tf.cast(saturated + r * slope < target[:, None], tf.int32), axis=1)
    size = tf.shape(r)[1]
    segment = tf.minimum(below, size - 1)[:, None]
    level = tf.math.divide_no_nan(
        target - tf.gather(saturated, segment, batch_dims=1)[:, 0],
        tf.gather(slope, segment, batch_dims=1)[:, 0],
    )
    return tf.where(below < size, tf.maximum(level, 0.0), np.float32(np.inf))


def _oriented(points, w, value, lower, upper):
    """Flips w so that each point has value >= 0; returns w, |value| and each coordinate's room.

    The room u_i is how far coordinate i can move against sign(w_i) (the direction that lowers
    the affine function) before leaving the box: p_i - lower if w_i > 0, upper - p_i if w_i < 0,
    0 if w_i = 0.
    """
    side = tf.where(value >= 0, 1.0, -1.0)
    w = w * side[:, None]
    room = tf.maximum(tf.where(w > 0, points - lower, upper - points), 0.0)
    return w, value * side, tf.where(w != 0, room, 0.0)


def project_linf_onto_hyperplane(points, w, value, lower=0.0, upper=1.0):
    """Smallest L-inf step from each point to the hyperplane g = 0 inside the box.

    With g(z) = value + w.(z - p) the affine function (value = g(p)), solves per row

        min ||d||_inf  s.t.  value + w.d = 0,  lower <= p + d <= upper.

    Flipping the sign of w so that value >= 0, the step must lower g by `value`. Within
    ||d||_inf <= lambda the box lets coordinate i move by at most min(lambda, u_i) against
    sign(w_i) (u_i its room to the box face), so the most g can drop is
    sum_i |w_i| min(lambda, u_i). The optimum is d_i = -sign(w_i) min(lambda*, u_i) at the
    smallest lambda* where that reaches `value`. Where even the box corner (lambda = inf) cannot
    reach the hyperplane, the corner nearest to it is returned, as in the reference code.

    Args:
        points: (B, n) points p, inside the box.
        w: (B, n) normals of the hyperplanes.
        value: (B,) g(p).
        lower: lower bound of the box (may be -inf).
        upper: upper bound of the box (may be inf).

    Returns:
        (B, n) steps d: the projections are points + d.
    """
    w, value, room = _oriented(points, w, value, lower, upper)
    level = _water_level(tf.abs(w), room, value)
    return -tf.sign(w) * tf.minimum(level[:, None], room)


def project_l2_onto_hyperplane(points, w, value, lower=0.0, upper=1.0):
    """Smallest L2 step from each point to the hyperplane g = 0 inside the box.

    With g(z) = value + w.(z - p) the affine function (value = g(p)), solves per row

        min ||d||_2  s.t.  value + w.d = 0,  lower <= p + d <= upper.

    Flipping the sign of w so that value >= 0, the KKT conditions give
    d_i = -w_i min(lambda, r_i) with r_i = u_i / |w_i| (u_i the room of coordinate i to the box
    face it moves toward): coordinate i follows -w until it hits the box. Then g drops by
    sum_i w_i^2 min(lambda, r_i), and lambda* is the smallest lambda where that reaches `value`.
    Where even the box corner cannot reach the hyperplane, that corner is returned, as in the
    reference code.

    Args:
        points: (B, n) points p, inside the box.
        w: (B, n) normals of the hyperplanes.
        value: (B,) g(p).
        lower: lower bound of the box (may be -inf).
        upper: upper bound of the box (may be inf).

    Returns:
        (B, n) steps d: the projections are points + d.
    """
    w, value, room = _oriented(points, w, value, lower, upper)
    moving = tf.square(w) > 0
    ratio = tf.where(moving, room / tf.where(moving, tf.abs(w), 1.0), 0.0)
    level = _water_level(tf.where(moving, tf.square(w), 0.0), ratio, value)
    return -tf.where(moving, w, 0.0) * tf.minimum(level[:, None], ratio)


_PROJECTIONS = {np.inf: project_linf_onto_hyperplane, 2: project_l2_onto_hyperplane}


def _logit(logits, classes):
    return tf.gather(logits, classes, axis=1, batch_dims=1)


def _fab_step(model_fn, x1, best, best_norm, x0, labels, targets, norm, options):
    """One FAB-T iteration on a batch.

    Returns the next iterate, and the smallest misclassified point found so far with its norm.
    """
    eta, alpha_max, beta, lower, upper = options
    with tf.GradientTape() as tape:
        tape.watch(x1)
        logits = tf.cast(model_fn(x1), tf.float32)
        margin = _logit(logits, targets) - _logit(logits, labels)
        total = tf.reduce_sum(margin)
    w = _flat(tape.gradient(total, x1))
    flat1, flat0 = _flat(x1), _flat(x0)
    # The linearisation g(z) = margin + w.(z - x1), valued at x1 and at x0.
    values = tf.concat([margin, margin + tf.reduce_sum(w * (flat0 - flat1), axis=1)], 0)
    projected = _PROJECTIONS[norm](
        tf.concat([flat1, flat0], 0), tf.concat([w, w], 0), values, lower, upper
    )
    d1, d0 = tf.split(projected, 2)
    size1, size0 = tf.maximum(_norm(d1, norm), 1e-8), tf.maximum(_norm(d0, norm), 1e-8)
    alpha = tf.minimum(size1 / (size1 + size0), alpha_max)[:, None]
    moved = (1.0 - alpha) * (flat1 + eta * d1) + alpha * (flat0 + eta * d0)
    x1 = tf.reshape(_clip(moved, lower, upper), tf.shape(x0))
    fooled = tf.not_equal(tf.argmax(model_fn(x1), axis=1, output_type=tf.int32), labels)
    distance = _norm(_flat(x1 - x0), norm)
    better = tf.logical_and(fooled, distance < best_norm)
    best = tf.where(_per_example(better, x0), x1, best)
    best_norm = tf.where(better, distance, best_norm)
    x1 = tf.where(_per_example(fooled, x0), x0 + beta * (x1 - x0), x1)
    return tf.stop_gradient(x1), best, best_norm


# Eager callers loop in Python over this compiled step, as for PGD.
_compiled_step = tf.function(_fab_step, reduce_retracing=True)


def _random_start(x0, eps, norm, seed, lower, upper):
    """FAB's restart point: x0 plus a random step of norm eps / 2, clipped to the box."""
    shape = tf.shape(x0)
    if norm == np.inf:
        direction = tf.random.stateless_uniform(shape, seed, minval=-1.0, maxval=1.0)
    else:
        direction = tf.random.stateless_normal(shape, seed)
    size = tf.maximum(_norm(_flat(direction), norm), 1e-12)
    step = 0.5 * min(float(eps), 1e10) * direction / _per_example(size, x0)
    return _clip(x0 + step, lower, upper)


def _fab_run(model_fn, start, x0, labels, targets, steps, norm, options):
    """`steps` FAB-T iterations from `start`; returns the smallest misclassified point and norm."""
    state = (start, x0, tf.fill(tf.shape(x0)[:1], np.float32(np.inf)))
    constants = (x0, labels, targets, norm, options)
    if tf.executing_eagerly():
        for _ in range(int(steps)):
            state = _compiled_step(model_fn, *state, *constants)
    else:
        state = tf.while_loop(
            lambda i, *_: i < steps,
            lambda i, *state: (i + 1, *_fab_step(model_fn, *state, *constants)),
            (tf.constant(0), *state),
        )[1:]
    return state[1], state[2]


def _attack_robust(model_fn, x, labels, targets, x_adv, robust, eps, norm, steps, seed, options):
    """One FAB-T run on the examples still robust; marks those fooled within eps."""

    def attack():
        index = tf.where(robust)
        x0, y0 = tf.gather_nd(x, index), tf.gather_nd(labels, index)
        lower, upper = options[3:]
        start = x0 if seed is None else _random_start(x0, eps, norm, seed, lower, upper)
        best, best_norm = _fab_run(
            model_fn, start, x0, y0, tf.gather_nd(targets, index), steps, norm, options
        )
        candidate = _clip(x0 + project(best - x0, eps, norm), lower, upper)
        fooled = tf.logical_and(
            best_norm <= eps,
            tf.not_equal(tf.argmax(model_fn(candidate), axis=1, output_type=tf.int32), y0),
        )
        updated = tf.where(_per_example(fooled, x0), candidate, x0)
        return (
            tf.tensor_scatter_nd_update(x_adv, index, updated),
            tf.tensor_scatter_nd_update(robust, index, tf.logical_not(fooled)),
        )

    # Skipped once none is left, so the model never sees an empty batch (oneDNN fails on one).
    return tf.cond(tf.reduce_any(robust), attack, lambda: (x_adv, robust))


def _check_fab_arguments(x, restarts, alpha_max, eta, beta):
    if x.shape.rank is None or x.shape.rank < 2:
        raise ValueError(f"x must be a batch of rank >= 2, got shape {x.shape}")
    if int(restarts) != restarts or restarts < 1:
        raise ValueError(f"restarts must be a positive integer, got {restarts}")
    if not 0 < alpha_max <= 1:
        raise ValueError(f"alpha_max must be in (0, 1], got {alpha_max}")
    if not eta >= 1:
        raise ValueError(f"eta must be >= 1, got {eta}")
    if not 0 < beta < 1:
        raise ValueError(f"beta must be in (0, 1), got {beta}")


def fast_adaptive_boundary_targeted(
    model_fn,
    x,
    y,
    eps,
    norm=np.inf,
    steps=100,
    target_classes=9,
    restarts=1,
    alpha_max=0.1,
    eta=1.05,
    beta=0.9,
    clip_min=0.0,
    clip_max=1.0,
    seed=None,
):
    """FAB-T as run by AutoAttack: a minimum-norm attack toward each likely wrong class in turn.

    For k = 1..target_classes, the examples not yet fooled are attacked `restarts` times toward
    the class of their (k+1)-th highest clean logit, each run `steps` iterations of FAB. An
    example counts as fooled once a run finds a misclassified point within eps of it, and is not
    attacked further. Examples misclassified from the start are returned unchanged.

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (B, ...), float32.
        y: integer or one-hot labels.
        eps: budget: only misclassified points within eps (in the norm) of x are returned.
        norm: np.inf or 2, the norm minimized.
        steps: FAB iterations per run.
        target_classes: number of target classes, 1..C-1 (AutoAttack: 9).
        restarts: runs per target; the first starts at x, the others at a random point at
            distance eps / 2 (AutoAttack: 1).
        alpha_max: largest weight of the step from x against the step from the iterate.
        eta: overshoot of each projection step (>= 1).
        beta: backward step: a misclassified iterate x1 is moved to x + beta (x1 - x).
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        seed: integer seed of the random restarts (stateless: target k and restart r use
            [seed, k * restarts + r]); None draws one from NumPy's global generator.

    Returns:
        Per example, the smallest misclassified point found by the first successful run if it
        lies within eps of x, else x itself; always within eps of x and within
        [clip_min, clip_max].
    """
    check_attack_arguments(eps, norm, clip_min, clip_max, steps=steps)
    x = tf.convert_to_tensor(x, tf.float32)
    _check_fab_arguments(x, restarts, alpha_max, eta, beta)
    logits = tf.cast(model_fn(x), tf.float32)
    num_classes = logits.shape[-1]
    if int(target_classes) != target_classes or not 1 <= target_classes < num_classes:
        raise ValueError(f"target_classes must be in 1..{num_classes - 1}, got {target_classes}")
    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1))
    labels = ops.integer_labels(y, logits)
    targets = tf.math.top_k(logits, int(target_classes) + 1).indices[:, 1:]
    robust = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels)
    lower = -np.inf if clip_min is None else float(clip_min)
    upper = np.inf if clip_max is None else float(clip_max)
    options = (float(eta), float(alpha_max), float(beta), lower, upper)
    run = functools.partial(
        _attack_robust, model_fn, x, labels, eps=eps, norm=norm, steps=steps, options=options
    )
    x_adv = x
    for k in range(int(target_classes)):
        for restart in range(int(restarts)):
            run_seed = None if restart == 0 else [seed, k * int(restarts) + restart]
            x_adv, robust = run(targets[:, k], x_adv, robust, seed=run_seed)
    return tf.stop_gradient(x_adv)
