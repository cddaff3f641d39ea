"""Saliency maps (gradient, SmoothGrad, integrated gradients) and two scores of them."""

import numpy as np
import tensorflow as tf

from tfjsigr import ops

METHODS = ("gradient", "smoothgrad", "integrated_gradients")
SMOOTHGRAD = {"samples": 25, "sigma": 0.15}
INTEGRATED_GRADIENTS = {"steps": 32, "baseline": 0.0}
DELETION_FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


def _class_logit_gradient(model_fn, x, y):
    with tf.GradientTape() as tape:
        tape.watch(x)
        target = tf.reduce_sum(ops.true_class_logit(y, model_fn(x)))
    return tape.gradient(target, x)


@tf.function(reduce_retracing=True)
def _gradient(model_fn, x, y):
    return _class_logit_gradient(model_fn, x, y)


def _mean_over_copies(gradients, copies, like):
    return tf.reduce_mean(tf.reshape(gradients, tf.concat([[copies], tf.shape(like)], 0)), axis=0)


@tf.function(reduce_retracing=True)
def _smoothgrad(model_fn, x, y, samples, sigma, seed):
    tiled = tf.tile(x, [samples] + [1] * (x.shape.rank - 1))
    noise = tf.random.stateless_normal(tf.shape(tiled), [seed, 0], stddev=sigma)
    gradients = _class_logit_gradient(model_fn, tiled + noise, tf.tile(y, [samples]))
    return _mean_over_copies(gradients, samples, x)


@tf.function(reduce_retracing=True)
def _integrated_gradients(model_fn, x, y, steps, baseline):
    start = tf.fill(tf.shape(x), baseline)
    alphas = tf.repeat((tf.range(steps, dtype=tf.float32) + 0.5) / steps, tf.shape(x)[0])
    alphas = tf.reshape(alphas, [-1] + [1] * (x.shape.rank - 1))
    path = tf.tile(start, [steps] + [1] * (x.shape.rank - 1)) + alphas * tf.tile(
        x - start, [steps] + [1] * (x.shape.rank - 1)
    )
    gradients = _class_logit_gradient(model_fn, path, tf.tile(y, [steps]))
    return (x - start) * _mean_over_copies(gradients, steps, x)


def saliency(model_fn, x, y, method="gradient", seed=0):
    """|attribution| of the true-class logit per pixel, summed over channels: (N, H, W).

    Args:
        model_fn: logits function.
        x: inputs (N, H, W, C).
        y: integer labels.
        method: "gradient", "smoothgrad" or "integrated_gradients".
        seed: seed of SmoothGrad's noise.

    Returns:
        numpy (N, H, W) non-negative maps.
    """
    x, y = tf.constant(x, tf.float32), tf.constant(y, tf.int32)
    if method == "gradient":
        maps = _gradient(model_fn, x, y)
    elif method == "smoothgrad":
        maps = _smoothgrad(model_fn, x, y, SMOOTHGRAD["samples"], SMOOTHGRAD["sigma"], seed)
    elif method == "integrated_gradients":
        maps = _integrated_gradients(
            model_fn, x, y, INTEGRATED_GRADIENTS["steps"], INTEGRATED_GRADIENTS["baseline"]
        )
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return np.abs(np.asarray(maps)).sum(axis=-1)


def concentration(maps, top=0.1):
    """Mean share of each map's mass in its top `top` fraction of pixels."""
    flat = np.sort(maps.reshape(len(maps), -1), axis=1)[:, ::-1]
    k = max(1, round(top * flat.shape[1]))
    return float(np.mean(flat[:, :k].sum(1) / np.maximum(flat.sum(1), 1e-12)))


def deletion_curve(model_fn, x, y, maps, fractions=DELETION_FRACTIONS, fill=0.0):
    """Accuracy as the most salient pixels (all channels) are set to `fill`, most salient first.

    Returns:
        (accuracies per fraction, AUC by the trapezoid rule over the fractions; lower = faster fall).
    """
    order = np.argsort(-maps.reshape(len(maps), -1), axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
    ranks = ranks.reshape(maps.shape)[..., None]
    accuracies = []
    for fraction in fractions:
        removed = ranks < round(fraction * order.shape[1])
        x_deleted = np.where(removed, np.float32(fill), x).astype(np.float32)
        accuracies.append(
            float(np.mean(np.argmax(np.asarray(model_fn(tf.constant(x_deleted))), 1) == y))
        )
    return accuracies, float(np.trapezoid(accuracies, fractions))


def interpretability(model_fn, x, y, seed=0):
    """Per method: saliency concentration (top 10%) and deletion curve with its AUC."""
    result = {}
    for method in METHODS:
        maps = saliency(model_fn, x, y, method, seed)
        accuracies, auc = deletion_curve(model_fn, x, y, maps)
        result[method] = {
            "concentration_top10": concentration(maps),
            "deletion_auc": auc,
            "deletion_curve": {"fractions": list(DELETION_FRACTIONS), "accuracy": accuracies},
        }
    return {
        "methods": result,
        "samples": len(x),
        "seed": int(seed),
        "parameters": {
            "smoothgrad": SMOOTHGRAD,
            "integrated_gradients": INTEGRATED_GRADIENTS,
            "deletion_fill": 0.0,
            "concentration_top": 0.1,
        },
    }
