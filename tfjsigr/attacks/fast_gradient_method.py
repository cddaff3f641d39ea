"""Fast gradient (sign) method (Goodfellow et al. 2015)."""

import numpy as np
import tensorflow as tf

from tfjsigr.attacks.projected_gradient_descent import (
    _clip,
    check_attack_arguments,
    loss_gradient,
    steepest_ascent_step,
)


def fast_gradient_method(
    model_fn, x, y, eps, norm=np.inf, clip_min=0.0, clip_max=1.0, loss_fn=None
):
    """One steepest-ascent step of size eps on the loss (FGSM for norm=np.inf).

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (B, ...), float32.
        y: integer or one-hot labels.
        eps: size of the step.
        norm: np.inf or 2.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        loss_fn: per-example loss of (y, logits) to ascend; default softmax CE.

    Returns:
        Adversarial inputs.
    """
    check_attack_arguments(eps, norm, clip_min, clip_max)
    x = tf.convert_to_tensor(x, tf.float32)
    gradient = loss_gradient(model_fn, x, y, loss_fn)
    return tf.stop_gradient(
        _clip(x + steepest_ascent_step(gradient, eps, norm), clip_min, clip_max)
    )
