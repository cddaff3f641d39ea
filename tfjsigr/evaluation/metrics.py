"""Batched robustness measurements: clean and attacked accuracy, mean Jacobian norm, and the
figures every training run ends with (`run_figures`)."""

import os
import platform

import numpy as np
import tensorflow as tf

from tfjsigr.attacks import projected_gradient_descent
from tfjsigr.attacks.auto_attack import auto_attack, predictions
from tfjsigr.attacks.projected_gradient_descent import loss_gradient
from tfjsigr.evaluation import attacks as evaluation_attacks
from tfjsigr.evaluation.attacks import logits_function
from tfjsigr.ops import per_example_squared_norm
from tfjsigr.penalties.jacobian import exact_squared_frobenius

# The fast robust figure of every training run, beside fast AutoAttack at the same eps (the
# data set's headline radius; 0.1 for Fashion-MNIST), step eps / 4.
PGD_EVALUATION = {"eps": 0.1, "step_size": 0.025, "steps": 20}


def _batches(count, batch_size):
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))


def accuracy(model, x, y, batch_size=500):
    """Clean top-1 accuracy."""
    predict = logits_function(model)
    correct = sum(
        int(np.sum(np.argmax(predict(x[s]).numpy(), axis=1) == y[s])) for s in _batches(len(x), batch_size)
    )
    return correct / len(x)


def pgd_accuracy(model, x, y, eps, step_size, steps, batch_size=500, seed=0, norm=np.inf, restarts=1):
    """Accuracy under untargeted PGD with random start (`restarts` random starts)."""
    logits_fn = logits_function(model)

    @tf.function(reduce_retracing=True)
    def attacked_predictions(xb, yb):
        x_adv = projected_gradient_descent(
            logits_fn, xb, yb, eps, step_size, steps, norm=norm, seed=seed, restarts=restarts
        )
        return tf.argmax(logits_fn(x_adv), axis=1, output_type=tf.int32)

    tf.random.set_seed(seed)
    correct = 0
    for s in _batches(len(x), batch_size):
        correct += int(np.sum(attacked_predictions(x[s], y[s]).numpy() == y[s]))
    return correct / len(x)


def mean_jacobian_norm(model, x, batch_size=250):
    """Mean exact ||J||_F (not squared) of the logits with respect to the input."""
    logits_fn = logits_function(model)
    squared = tf.function(lambda xb: exact_squared_frobenius(logits_fn, xb), reduce_retracing=True)
    norms = np.concatenate([np.sqrt(squared(x[s]).numpy()) for s in _batches(len(x), batch_size)])
    return float(norms.mean())


def mean_input_gradient_norm(model, x, y, batch_size=500):
    """Mean ||d CE / dx||_2 per example."""
    logits_fn = logits_function(model)
    norms = [
        np.sqrt(per_example_squared_norm(loss_gradient(logits_fn, tf.constant(x[s]), y[s])).numpy())
        for s in _batches(len(x), batch_size)
    ]
    return float(np.concatenate(norms).mean())


def accuracy_curve(model, x, y, attack="pgd", eps_grid=(0.02, 0.05, 0.1, 0.2, 0.3), seed=0):
    """Accuracy under one attack ("fgsm", "pgd", "bim", "mim", "square", "spsa") per L-inf eps.

    A shortcut to `tfjsigr.evaluation`: each record carries the attack's parameters, sample size
    and seed.

    Returns:
        A list of {attack, eps, accuracy, samples, seed, parameters}.
    """
    records, _ = evaluation_attacks.accuracy_curve(
        attack, logits_function(model), x, np.asarray(y, np.int32), eps_grid,
        seed, progress=False,
    )
    return records


def pgd_settings(image_shape=None):
    """PGD-20 at a data set's headline radius (`config.headline_eps`), step eps / 4."""
    from tfjsigr.evaluation.config import headline_eps

    if image_shape is None:
        return dict(PGD_EVALUATION)
    eps = headline_eps(image_shape)
    return {"eps": eps, "step_size": eps / 4, "steps": PGD_EVALUATION["steps"]}


def run_figures(backbone, x, y, seed=0, info=None):
    """Clean accuracy, fast AutoAttack and PGD-20 accuracy at the data set's headline L-inf
    radius (0.1 for Fashion-MNIST, 8/255 for CIFAR-10), mean exact ||J||_F: the figures a
    training run, a tuning trial and the demo end with.

    Fast AutoAttack (APGD-CE then APGD-T) is the robust figure of a run; PGD-20 is the fast one
    beside it. `tfjsigr evaluate` runs the standard AutoAttack.

    Args:
        backbone: the model (logits).
        x, y: test images and labels.
        seed: seed of the attacks.
        info: the data's `DataInfo` (its image shape sets the radius) or None for 0.1.
    """
    pgd = pgd_settings(None if info is None else info.image_shape)
    eps = pgd["eps"]
    print(
        f"evaluating on {len(y)} test images (seed {seed}): clean, AutoAttack (fast) and "
        f"PGD-{pgd['steps']} at L-inf eps {eps:.4g}, exact ||J||_F"
    )
    logits = logits_function(backbone)
    y = np.asarray(y, np.int32)
    x_adv = auto_attack(logits, x, y, eps, version="fast", seed=seed)
    return {
        "clean_accuracy": accuracy(backbone, x, y),
        "autoattack_accuracy": float(np.mean(predictions(logits, x_adv) == y)),
        "autoattack": {"version": "fast", "norm": "linf", "eps": eps, "examples": len(y), "seed": seed},
        "pgd_accuracy": pgd_accuracy(backbone, x, y, seed=seed, **pgd),
        "pgd": {"norm": "linf", **pgd, "examples": len(y), "seed": seed},
        "mean_jacobian_norm": mean_jacobian_norm(backbone, x),
        "eval_examples": len(y),
    }


def describe_hardware():
    """The machine a run trained on, in words: GPUs (if any), else CPU cores and model."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
        return f"{len(gpus)} GPU(s): " + ", ".join(names)
    processor = platform.processor() or platform.machine()
    return f"CPU: {os.cpu_count()} cores ({processor})"
