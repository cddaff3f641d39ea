"""SGD universal adversarial perturbation (Shafahi et al. 2020): one delta for every input."""

import numpy as np
import tensorflow as tf

from tfjsigr import ops
from tfjsigr.attacks.projected_gradient_descent import _clip, check_attack_arguments


def sgd_uap_step(model_fn, delta, x, y, eps, step_size, beta=12.0, clip_min=0.0, clip_max=1.0):
    """One signed ascent step on mean(min(CE(f(clip(x + delta)), y), beta)), projected.

    Args:
        model_fn: callable from inputs to logits.
        delta: the current universal perturbation, shape (1, ...) of one input.
        x: a batch of clean inputs.
        y: their labels.
        eps: L-inf radius of delta.
        step_size: size of the signed step.
        beta: cap of the per-example loss, so already-fooled inputs stop pulling delta.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).

    Returns:
        The updated delta.
    """
    with tf.GradientTape() as tape:
        tape.watch(delta)
        loss = ops.per_example_cross_entropy(y, model_fn(_clip(x + delta, clip_min, clip_max)))
        objective = tf.reduce_mean(tf.minimum(loss, beta))
    gradient = tape.gradient(objective, delta)
    return tf.clip_by_value(delta + step_size * tf.sign(gradient), -eps, eps)


def sgd_uap(
    model_fn,
    x,
    y,
    eps,
    step_size=None,
    epochs=5,
    batch_size=100,
    beta=12.0,
    clip_min=0.0,
    clip_max=1.0,
):
    """Crafts one L-inf perturbation that lowers the accuracy of every input at once.

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (N, ...) as a numpy array or tensor.
        y: their labels.
        eps: L-inf radius of the perturbation.
        step_size: signed step per batch (default eps / 10).
        epochs: passes over x.
        batch_size: inputs per step.
        beta: cap of the per-example CE.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).

    Returns:
        The perturbation, shape (1, ...): add it to any input and clip.
    """
    step_size = eps / 10.0 if step_size is None else step_size
    check_attack_arguments(eps, np.inf, clip_min, clip_max, step_size, epochs)
    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    radii = [tf.constant(v, tf.float32) for v in (eps, step_size, beta)]
    delta = tf.zeros((1,) + x.shape[1:], tf.float32)
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            delta = _compiled_step(model_fn, delta, xb, yb, *radii, clip_min, clip_max)
    return delta


# Module level, eps as tensors: traced once per model, not once per call or radius.
_compiled_step = tf.function(sgd_uap_step, reduce_retracing=True)
