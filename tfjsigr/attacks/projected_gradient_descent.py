"""Projected gradient descent (Madry et al. 2018), L-inf and L2, with random start."""

import functools

import numpy as np
import tensorflow as tf

from tfjsigr import ops

NORMS = (np.inf, 2)


def check_attack_arguments(eps, norm, clip_min, clip_max, step_size=None, steps=None):
    """Raises ValueError on arguments no attack can use."""
    if norm not in NORMS:
        raise ValueError(f"norm must be np.inf or 2, got {norm!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    if steps is not None and (int(steps) != steps or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps}")
    if clip_min is not None and clip_max is not None and clip_min > clip_max:
        raise ValueError(f"clip_min {clip_min} > clip_max {clip_max}")


def loss_gradient(model_fn, x, y, loss_fn=None):
    """d loss / dx with loss = sum of per-example CE (or `loss_fn(y, logits)`)."""
    loss_fn = loss_fn or ops.per_example_cross_entropy
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(loss_fn(y, model_fn(x)))
    return tape.gradient(loss, x)


def _per_example_l2(tensor):
    return tf.sqrt(tf.maximum(ops.per_example_squared_norm(tensor), 1e-12))


def _broadcast_per_example(values, like):
    return tf.reshape(values, [-1] + [1] * (like.shape.rank - 1))


def steepest_ascent_step(gradient, step_size, norm):
    """The step of size `step_size` maximizing the linearized loss in the given norm."""
    if norm == np.inf:
        return step_size * tf.sign(gradient)
    return step_size * gradient / _broadcast_per_example(_per_example_l2(gradient), gradient)


def project(delta, eps, norm):
    """Projects a perturbation onto the eps-ball of the norm."""
    if norm == np.inf:
        return tf.clip_by_value(delta, -eps, eps)
    factor = tf.minimum(1.0, eps / _per_example_l2(delta))
    return delta * _broadcast_per_example(factor, delta)


def random_start(x, eps, norm, seed=None):
    """A uniform point of the L-inf ball, or a uniform point of the L2 ball.

    With an integer seed the draw is stateless: the same seed gives the same start on every call.
    """
    if seed is None:
        uniform, normal = tf.random.uniform, tf.random.normal
    else:
        uniform = functools.partial(tf.random.stateless_uniform, seed=[seed, 0])
        normal = functools.partial(tf.random.stateless_normal, seed=[seed, 1])
    if norm == np.inf:
        return uniform(tf.shape(x), minval=-eps, maxval=eps, dtype=x.dtype)
    direction = normal(tf.shape(x), dtype=x.dtype)
    direction /= _broadcast_per_example(_per_example_l2(direction), x)
    dims = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
    radius = eps * uniform([tf.shape(x)[0]], dtype=x.dtype) ** (1.0 / dims)
    return direction * _broadcast_per_example(radius, x)


def projected_gradient_descent(
    model_fn,
    x,
    y,
    eps,
    step_size,
    steps,
    norm=np.inf,
    rand_init=True,
    clip_min=0.0,
    clip_max=1.0,
    loss_fn=None,
    seed=None,
    restarts=1,
    early_stop=False,
):
    """Untargeted PGD: `steps` steepest-ascent steps on the loss, projected on the eps-ball.

    With `restarts > 1` the attack runs from that many random starts and keeps, per example,
    the first misclassified result (else the one of highest loss).

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (B, ...), float32.
        y: integer or one-hot labels.
        eps: radius of the ball.
        step_size: size of each step (in the attack's norm).
        steps: number of steps.
        norm: np.inf or 2.
        rand_init: start from a uniform random point of the ball.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        loss_fn: per-example loss of (y, logits) to ascend; default softmax CE.
        seed: seed of the random start (stateless; restart r uses seed + r).
        restarts: number of runs from independent random starts.
        early_stop: stop attacking an example once it is misclassified (its misclassified
            point is kept), so each step computes only the still-correct examples: the accuracy
            under attack can only be lower, and evaluation is faster.

    Returns:
        Adversarial inputs, within eps of x and within [clip_min, clip_max].
    """
    check_attack_arguments(eps, norm, clip_min, clip_max, step_size, steps)
    if int(restarts) != restarts or restarts < 1:
        raise ValueError(f"restarts must be a positive integer, got {restarts}")
    x = tf.convert_to_tensor(x, tf.float32)
    best = None
    for restart in range(int(restarts)):
        restart_seed = None if seed is None else seed + restart
        run = _pgd_run_early_stop if early_stop else _pgd_run
        x_adv = run(
            model_fn,
            x,
            y,
            eps,
            step_size,
            steps,
            norm,
            rand_init,
            clip_min,
            clip_max,
            loss_fn,
            restart_seed,
        )
        best = x_adv if best is None else _keep_stronger(model_fn, y, best, x_adv, loss_fn)
    return best


def _attack_score(model_fn, y, x_adv, loss_fn):
    """Per-example score: misclassified examples first, then by loss."""
    logits = model_fn(x_adv)
    loss = (loss_fn or ops.per_example_cross_entropy)(y, logits)
    wrong = tf.not_equal(
        tf.argmax(logits, axis=1, output_type=tf.int32), ops.integer_labels(y, logits)
    )
    return tf.where(wrong, np.float32(1e9), tf.cast(loss, tf.float32))


def _keep_stronger(model_fn, y, x_a, x_b, loss_fn):
    better = _attack_score(model_fn, y, x_b, loss_fn) > _attack_score(model_fn, y, x_a, loss_fn)
    return tf.where(_broadcast_per_example(better, x_a), x_b, x_a)


def _pgd_step(model_fn, x_adv, x, y, eps, step_size, norm, clip_min, clip_max, loss_fn):
    """One PGD step; also returns whether each example was correct before it."""
    loss_fn = loss_fn or ops.per_example_cross_entropy
    with tf.GradientTape() as tape:
        tape.watch(x_adv)
        logits = model_fn(x_adv)
        loss = tf.reduce_sum(loss_fn(y, logits))
    gradient = tape.gradient(loss, x_adv)
    correct = tf.equal(tf.argmax(logits, 1, output_type=tf.int32), ops.integer_labels(y, logits))
    delta = project(x_adv + steepest_ascent_step(gradient, step_size, norm) - x, eps, norm)
    return tf.stop_gradient(_clip(x + delta, clip_min, clip_max)), correct


# Eager callers loop in Python over this compiled step: measured faster on CPU than one
# tf.while_loop (whose body grappler optimizes less), and early stopping can shrink the batch.
_compiled_step = tf.function(_pgd_step, reduce_retracing=True)


def _radius_tensors(eps, step_size):
    """eps and step size as tensors when eager, so the compiled step is traced once per model."""
    if not tf.executing_eagerly():
        return eps, step_size
    return tf.constant(eps, tf.float32), tf.constant(step_size, tf.float32)


def _pgd_run(
    model_fn, x, y, eps, step_size, steps, norm, rand_init, clip_min, clip_max, loss_fn, seed
):
    delta = random_start(x, eps, norm, seed) if rand_init else tf.zeros_like(x)
    x_adv = tf.stop_gradient(_clip(x + delta, clip_min, clip_max))
    arguments = (*_radius_tensors(eps, step_size), norm, clip_min, clip_max, loss_fn)
    if tf.executing_eagerly():
        y = tf.convert_to_tensor(y)
        for _ in range(int(steps)):
            x_adv, _ = _compiled_step(model_fn, x_adv, x, y, *arguments)
        return x_adv

    def step(i, x_adv):
        return i + 1, _pgd_step(model_fn, x_adv, x, y, *arguments)[0]

    _, x_adv = tf.while_loop(lambda i, _: i < steps, step, (tf.constant(0), x_adv))
    return x_adv


def _pgd_run_early_stop(
    model_fn, x, y, eps, step_size, steps, norm, rand_init, clip_min, clip_max, loss_fn, seed
):
    y = tf.convert_to_tensor(y)
    delta = random_start(x, eps, norm, seed) if rand_init else tf.zeros_like(x)
    x_adv = tf.stop_gradient(_clip(x + delta, clip_min, clip_max))
    arguments = (*_radius_tensors(eps, step_size), norm, clip_min, clip_max, loss_fn)
    step_fn = _compiled_step if tf.executing_eagerly() else _pgd_step

    def step(x_adv, active):
        index = tf.where(active)
        x_active = tf.gather_nd(x_adv, index)
        moved, correct = step_fn(
            model_fn, x_active, tf.gather_nd(x, index), tf.gather_nd(y, index), *arguments
        )
        updated = tf.where(_broadcast_per_example(correct, moved), moved, x_active)
        return tf.tensor_scatter_nd_update(x_adv, index, updated), tf.tensor_scatter_nd_update(
            active, index, correct
        )

    active = tf.ones(tf.shape(x)[:1], tf.bool)
    if tf.executing_eagerly():
        for _ in range(int(steps)):
            if not bool(tf.reduce_any(active)):
                break
            x_adv, active = step(x_adv, active)
        return x_adv
    _, x_adv, _ = tf.while_loop(
        # Stopping once none is active also spares the model an empty batch (oneDNN fails on it).
        lambda i, _, active: tf.logical_and(i < steps, tf.reduce_any(active)),
        lambda i, x_adv, active: (i + 1, *step(x_adv, active)),
        (tf.constant(0), x_adv, active),
    )
    return tf.stop_gradient(x_adv)


def _clip(x, clip_min, clip_max):
    if clip_min is None and clip_max is None:
        return x
    low = -np.inf if clip_min is None else clip_min
    high = np.inf if clip_max is None else clip_max
    return tf.clip_by_value(x, low, high)
