"""Batched robustness measurements: clean and attacked accuracy, mean Jacobian norm."""

import numpy as np
import tensorflow as tf

from tfjsigr.attacks import projected_gradient_descent
from tfjsigr.attacks.projected_gradient_descent import loss_gradient
from tfjsigr.ops import per_example_squared_norm
from tfjsigr.penalties.jacobian import exact_squared_frobenius


def _batches(count, batch_size):
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))


def logits_function(model):
    """A compiled inference-mode logits function of a Keras model."""
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


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
    from tfjsigr.evaluation import attacks as evaluation_attacks  # evaluation imports this module

    records, _ = evaluation_attacks.accuracy_curve(
        attack, evaluation_attacks.logits_function(model), x, np.asarray(y, np.int32), eps_grid,
        seed, progress=False,
    )
    return records
