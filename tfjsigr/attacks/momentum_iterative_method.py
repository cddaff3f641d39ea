"""Momentum iterative method (Dong et al. 2018), as in cleverhans but compiled."""

import numpy as np
import tensorflow as tf

from tfjsigr.attacks.projected_gradient_descent import (
    _clip,
    check_attack_arguments,
    loss_gradient,
    project,
    steepest_ascent_step,
)


def momentum_iterative_method(
    model_fn,
    x,
    y,
    eps,
    step_size,
    steps,
    decay_factor=1.0,
    norm=np.inf,
    clip_min=0.0,
    clip_max=1.0,
    loss_fn=None,
):
    """Steps along an accumulated, L1-normalized gradient, projected on the eps-ball.

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (B, ...), float32.
        y: integer or one-hot labels.
        eps: radius of the ball.
        step_size: size of each step.
        steps: number of steps.
        decay_factor: momentum decay mu.
        norm: np.inf or 2.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        loss_fn: per-example loss of (y, logits) to ascend; default softmax CE.

    Returns:
        Adversarial inputs, within eps of x and within [clip_min, clip_max].
    """
    check_attack_arguments(eps, norm, clip_min, clip_max, step_size, steps)
    x = tf.convert_to_tensor(x, tf.float32)
    axes = list(range(1, x.shape.rank))

    def step(i, x_adv, momentum):
        gradient = loss_gradient(model_fn, x_adv, y, loss_fn)
        gradient /= tf.maximum(1e-12, tf.reduce_mean(tf.abs(gradient), axes, keepdims=True))
        momentum = decay_factor * momentum + gradient
        delta = project(x_adv + steepest_ascent_step(momentum, step_size, norm) - x, eps, norm)
        return i + 1, tf.stop_gradient(_clip(x + delta, clip_min, clip_max)), momentum

    _, x_adv, _ = tf.while_loop(
        lambda i, *_: i < steps, step, (tf.constant(0), x, tf.zeros_like(x))
    )
    return x_adv
