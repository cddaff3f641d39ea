"""Square attack, L-inf (Andriushchenko et al. 2020): score-based black-box random search."""

import numpy as np
import tensorflow as tf

from tfjsigr import ops
from tfjsigr.attacks.projected_gradient_descent import _clip, check_attack_arguments
from tfjsigr.attacks.spsa import margin_loss

# Iterations (per 10,000) at which the square's share of the image halves (the paper's schedule).
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def _square_fraction(i, queries, p_init):
    scaled = tf.cast(i, tf.float32) * 10000.0 / tf.cast(queries, tf.float32)
    halvings = tf.add_n([tf.cast(scaled > h, tf.float32) for h in _HALVINGS])
    return p_init / 2.0**halvings


def _window(batch, size, length, seed):
    """(B, length) masks of a random window of `size` per example."""
    start = tf.random.uniform([batch], 0, length - size + 1, dtype=tf.int32, seed=seed)
    positions = tf.range(length)[None, :]
    return tf.logical_and(positions >= start[:, None], positions < (start + size)[:, None])


def square(model_fn, x, y, eps, queries=1000, p_init=0.8, clip_min=0.0, clip_max=1.0, seed=None):
    """Random search over vertices of the eps-ball, changing one square window at a time.

    Starts from vertical stripes of +-eps; each query redraws the signs (per channel) of one
    random square window of each still-correct example and keeps it if the margin loss
    z_y - max_{k!=y} z_k drops. Uses only the model's outputs; stops once every example is
    misclassified.

    Args:
        model_fn: callable from NHWC inputs to logits.
        x: clean inputs (B, H, W, C), float32.
        y: integer or one-hot labels.
        eps: L-inf radius.
        queries: number of iterations (one forward pass of the batch each).
        p_init: initial share of the image covered by the square (0.8: the paper's MNIST value).
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        seed: op seed of the random draws.

    Returns:
        Adversarial inputs, within eps of x and within [clip_min, clip_max].
    """
    check_attack_arguments(eps, np.inf, clip_min, clip_max, steps=queries)
    if not 0 < p_init <= 1:
        raise ValueError(f"p_init must be in (0, 1], got {p_init}")
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 4:
        raise ValueError(f"square needs NHWC inputs, got shape {x.shape}")
    labels = ops.integer_labels(tf.convert_to_tensor(y), model_fn(x[:1]))
    batch, height, width, channels = tf.unstack(tf.shape(x))
    stripes = eps * tf.sign(tf.random.uniform([batch, 1, width, channels], -1.0, 1.0, seed=seed))
    x_best = tf.ensure_shape(_clip(x + stripes, clip_min, clip_max), x.shape)
    loss_best = margin_loss(labels, model_fn(x_best))

    def step(i, x_best, loss_best):
        share = _square_fraction(i, queries, p_init)
        side = tf.cast(tf.round(tf.sqrt(share * tf.cast(height * width, tf.float32))), tf.int32)
        side = tf.clip_by_value(side, 1, tf.minimum(height, width) - 1)
        rows = _window(batch, side, height, seed)
        cols = _window(batch, side, width, seed)
        window = tf.logical_and(rows[:, :, None, None], cols[:, None, :, None])
        signs = eps * tf.sign(tf.random.uniform([batch, 1, 1, channels], -1.0, 1.0, seed=seed))
        # A batch of one broadcasts against the dynamic-size window to an unknown batch size.
        candidate = tf.ensure_shape(
            _clip(tf.where(window, x + signs, x_best), clip_min, clip_max), x.shape
        )
        loss = margin_loss(labels, model_fn(candidate))
        better = tf.logical_and(loss < loss_best, loss_best > 0)
        x_best = tf.ensure_shape(tf.where(better[:, None, None, None], candidate, x_best), x.shape)
        return i + 1, x_best, tf.where(better, loss, loss_best)

    def searching(i, x_best, loss_best):
        return tf.logical_and(i < queries, tf.reduce_any(loss_best > 0))

    _, x_best, _ = tf.while_loop(searching, step, (tf.constant(0), x_best, loss_best))
    return tf.stop_gradient(x_best)
