"""SPSA (Uesato et al. 2018): gradient-free, batched and compiled (cleverhans' takes one image)."""

import numpy as np
import tensorflow as tf

from tfjsigr import ops
from tfjsigr.attacks.projected_gradient_descent import _clip, check_attack_arguments


def margin_loss(labels, logits):
    """z_y - max_{k != y} z_k per example: negative once the prediction is wrong."""
    one_hot = tf.one_hot(labels, tf.shape(logits)[1])
    return tf.reduce_sum(one_hot * logits, 1) - tf.reduce_max(logits - one_hot * 1e9, 1)


def spsa(
    model_fn,
    x,
    y,
    eps,
    steps=100,
    samples=64,
    delta=0.01,
    learning_rate=0.01,
    clip_min=0.0,
    clip_max=1.0,
    seed=None,
):
    """Adam descent on the margin loss with SPSA gradient estimates, in the L-inf eps-ball.

    Each step estimates the gradient of every example from `samples` Rademacher directions v
    (2 * samples forward passes): mean of (L(x + delta v) - L(x - delta v)) / (2 delta) * v.

    Args:
        model_fn: callable from inputs to logits (only its outputs are used).
        x: clean inputs (B, ...), float32.
        y: integer or one-hot labels.
        eps: L-inf radius.
        steps: Adam steps.
        samples: directions per step (half are antithetic pairs by construction).
        delta: finite-difference step.
        learning_rate: Adam step size.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        seed: op seed of the directions.

    Returns:
        Adversarial inputs, within eps of x and within [clip_min, clip_max].
    """
    check_attack_arguments(eps, np.inf, clip_min, clip_max, learning_rate, steps)
    if samples < 1 or not delta > 0:
        raise ValueError(f"samples must be >= 1 and delta > 0, got {samples}, {delta}")
    x = tf.convert_to_tensor(x, tf.float32)
    labels = ops.integer_labels(tf.convert_to_tensor(y), model_fn(x[:1]))
    repeated_labels = tf.repeat(labels, samples)
    shape = tf.shape(x)
    per_example = [-1] + [1] * (x.shape.rank - 1)

    def gradient_estimate(x_adv):
        tiled = tf.repeat(x_adv, samples, axis=0)
        v = tf.sign(tf.random.uniform(tf.shape(tiled), -1.0, 1.0, seed=seed))
        difference = margin_loss(repeated_labels, model_fn(tiled + delta * v)) - margin_loss(
            repeated_labels, model_fn(tiled - delta * v)
        )
        estimate = tf.reshape(difference, per_example) * v / (2.0 * delta)
        estimate = tf.reshape(estimate, tf.concat([[shape[0], samples], shape[1:]], 0))
        # The dynamic reshape loses a batch of one's static size, which tf.while_loop needs.
        return tf.ensure_shape(tf.reduce_mean(estimate, 1), x.shape)

    def step(t, perturbation, m, v):
        g = gradient_estimate(_clip(x + perturbation, clip_min, clip_max))
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * tf.square(g)
        t = t + 1.0
        size = learning_rate * tf.sqrt(1.0 - 0.999**t) / (1.0 - 0.9**t)
        perturbation = tf.clip_by_value(perturbation - size * m / (tf.sqrt(v) + 1e-8), -eps, eps)
        perturbation = _clip(x + perturbation, clip_min, clip_max) - x
        return t, perturbation, m, v

    zeros = tf.zeros_like(x)
    _, perturbation, _, _ = tf.while_loop(
        lambda t, *_: t < steps, step, (tf.constant(0.0), zeros, zeros, zeros)
    )
    return tf.stop_gradient(_clip(x + perturbation, clip_min, clip_max))
