"""Projected gradient descent (Madry et al. 2018), L-inf and L2, with random start."""

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
    """A uniform point of the L-inf ball, or a uniform point of the L2 ball."""
    if norm == np.inf:
        return tf.random.uniform(tf.shape(x), -eps, eps, dtype=x.dtype, seed=seed)
    direction = tf.random.normal(tf.shape(x), dtype=x.dtype, seed=seed)
    direction /= _broadcast_per_example(_per_example_l2(direction), x)
    dims = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), x.dtype)
    radius = eps * tf.random.uniform([tf.shape(x)[0]], dtype=x.dtype, seed=seed) ** (1.0 / dims)
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
):
    """Untargeted PGD: `steps` steepest-ascent steps on the loss, projected on the eps-ball.

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
        seed: op seed of the random start.

    Returns:
        Adversarial inputs, within eps of x and within [clip_min, clip_max].
    """
    check_attack_arguments(eps, norm, clip_min, clip_max, step_size, steps)
    x = tf.convert_to_tensor(x, tf.float32)
    delta = random_start(x, eps, norm, seed) if rand_init else tf.zeros_like(x)

    def step(i, x_adv):
        gradient = loss_gradient(model_fn, x_adv, y, loss_fn)
        delta = project(x_adv + steepest_ascent_step(gradient, step_size, norm) - x, eps, norm)
        return i + 1, tf.stop_gradient(_clip(x + delta, clip_min, clip_max))

    x_adv = tf.stop_gradient(_clip(x + delta, clip_min, clip_max))
    _, x_adv = tf.while_loop(lambda i, _: i < steps, step, (tf.constant(0), x_adv))
    return x_adv


def _clip(x, clip_min, clip_max):
    if clip_min is None and clip_max is None:
        return x
    low = -np.inf if clip_min is None else clip_min
    high = np.inf if clip_max is None else clip_max
    return tf.clip_by_value(x, low, high)
