"""Decoupled direction and norm (Rony et al. 2019): a minimum-L2-norm attack."""

import math

import tensorflow as tf

from tfjsigr import ops
from tfjsigr.attacks.projected_gradient_descent import _clip, loss_gradient


def _per_example(values, like):
    return tf.reshape(values, [-1] + [1] * (like.shape.rank - 1))


def _l2(tensor):
    return tf.sqrt(tf.maximum(ops.per_example_squared_norm(tensor), 1e-24))


def decoupled_direction_norm(
    model_fn,
    x,
    y,
    steps=100,
    gamma=0.05,
    init_norm=1.0,
    step_size=1.0,
    search_steps=10,
    clip_min=0.0,
    clip_max=1.0,
):
    """Smallest-L2 misclassified inputs found by DDN, then a line search toward x.

    Each step moves along the normalized CE gradient (step size cosine-annealed), then rescales
    the perturbation to a norm that shrinks by (1 - gamma) while the input is misclassified and
    grows by (1 + gamma) while it is not. The best (smallest) adversarial perturbation is then
    shortened by bisection on its length, which makes it exact for linear models.

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (B, ...), float32.
        y: integer or one-hot labels.
        steps: DDN iterations.
        gamma: relative norm change per step.
        init_norm: starting L2 norm of the perturbation.
        step_size: initial gradient step (L2).
        search_steps: bisection steps of the final line search.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).

    Returns:
        (x_adv, found): x_adv the misclassified input nearest x found (x itself where the input
        is already misclassified or nothing was found), found a (B,) bool, True where x_adv is
        misclassified.
    """
    if steps < 1 or not 0 < gamma < 1 or search_steps < 0:
        raise ValueError(f"need steps >= 1, 0 < gamma < 1, search_steps >= 0; got {steps}, {gamma}")
    x = tf.convert_to_tensor(x, tf.float32)
    labels = ops.integer_labels(tf.convert_to_tensor(y), model_fn(x[:1]))
    batch = tf.shape(x)[0]

    def fooled(x_adv):
        return tf.not_equal(tf.argmax(model_fn(x_adv), 1, output_type=tf.int32), labels)

    def step(k, delta, norm, best_delta, best_norm):
        x_adv = _clip(x + delta, clip_min, clip_max)
        is_adv = fooled(x_adv)
        current = _l2(x_adv - x)
        improved = tf.logical_and(is_adv, current < best_norm)
        best_norm = tf.where(improved, current, best_norm)
        best_delta = tf.where(_per_example(improved, x), x_adv - x, best_delta)
        alpha = step_size * 0.5 * (1.0 + tf.cos(math.pi * tf.cast(k, tf.float32) / steps))
        gradient = loss_gradient(model_fn, x_adv, labels)
        delta = delta + _per_example(alpha / _l2(gradient), x) * gradient
        norm = norm * tf.where(is_adv, 1.0 - gamma, 1.0 + gamma)
        delta = delta * _per_example(norm / _l2(delta), x)
        delta = _clip(x + delta, clip_min, clip_max) - x
        return k + 1, delta, norm, best_delta, best_norm

    zeros = tf.zeros_like(x)
    infinite = tf.fill([batch], float("inf"))
    _, _, _, best_delta, best_norm = tf.while_loop(
        lambda k, *_: k < steps,
        step,
        (tf.constant(0), zeros, tf.fill([batch], float(init_norm)), zeros, infinite),
    )
    found = tf.math.is_finite(best_norm)
    best_delta = tf.where(_per_example(fooled(x), x), zeros, best_delta)

    def bisect(i, low, high):
        middle = (low + high) / 2.0
        is_adv = fooled(_clip(x + _per_example(middle, x) * best_delta, clip_min, clip_max))
        return i + 1, tf.where(is_adv, low, middle), tf.where(is_adv, middle, high)

    _, _, high = tf.while_loop(
        lambda i, *_: i < search_steps,
        bisect,
        (tf.constant(0), tf.zeros([batch]), tf.ones([batch])),
    )
    x_adv = _clip(x + _per_example(high, x) * best_delta, clip_min, clip_max)
    return tf.stop_gradient(x_adv), tf.logical_or(found, fooled(x))
