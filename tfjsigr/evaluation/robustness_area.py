"""Adversarial robustness area (ARA, Woods et al. 2019) from minimum-norm attack distances."""

import numpy as np
import tensorflow as tf

from tfjsigr.attacks import decoupled_direction_norm

DDN_PARAMETERS = {
    "steps": 100,
    "gamma": 0.05,
    "init_norm": 1.0,
    "step_size": 1.0,
    "search_steps": 10,
}

_ddn = tf.function(
    lambda f, x, y, clip_min, clip_max, p: decoupled_direction_norm(
        f,
        x,
        y,
        p["steps"],
        p["gamma"],
        p["init_norm"],
        p["step_size"],
        p["search_steps"],
        clip_min,
        clip_max,
    ),
    reduce_retracing=True,
)


def minimum_rmse_distances(
    model_fn, x, y, batch_size=500, clip_min=0.0, clip_max=1.0, parameters=None
):
    """Per-example RMSE sqrt(mean(delta^2)) of the smallest flipping perturbation found by DDN.

    0 for inputs already misclassified; `inf` where the attack found none.

    Args:
        model_fn: logits function.
        x: inputs (N, ...).
        y: integer labels.
        batch_size: inputs per attack batch.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        parameters: DDN parameters (default DDN_PARAMETERS).

    Returns:
        (N,) float64 distances in RMSE units.
    """
    parameters = parameters or DDN_PARAMETERS
    distances = []
    for s in range(0, len(x), batch_size):
        xb = tf.constant(x[s : s + batch_size], tf.float32)
        x_adv, found = _ddn(
            model_fn,
            xb,
            tf.constant(y[s : s + batch_size], tf.int32),
            clip_min,
            clip_max,
            parameters,
        )
        rmse = np.sqrt(
            np.mean(np.square(np.asarray(x_adv - xb, np.float64)).reshape(len(xb), -1), axis=1)
        )
        distances.append(np.where(np.asarray(found), rmse, np.inf))
    return np.concatenate(distances)


def ara_from_distances(distances, num_classes, max_distance=1.0):
    """Integral over r >= 0 of max(0, A(r) - 1/C), A(r) the share of distances above r.

    Args:
        distances: (N,) RMSE distances; `inf` (attack failed) counts as `max_distance`.
        num_classes: C.
        max_distance: the largest possible RMSE (1 for inputs in [0, 1]).

    Returns:
        The area, a float.
    """
    d = np.sort(np.minimum(np.asarray(distances, np.float64), max_distance))
    n = len(d)
    widths = np.diff(np.concatenate([[0.0], d]))
    surviving = (n - np.arange(n)) / n  # A(r) on [d_(j-1), d_(j))
    return float(np.sum(widths * np.maximum(0.0, surviving - 1.0 / num_classes)))


def ara(model_fn, x, y, num_classes, seed=0, batch_size=500, clip_min=0.0, clip_max=1.0):
    """ARA with its attack, parameters and sample size, as a report record."""
    distances = minimum_rmse_distances(model_fn, x, y, batch_size, clip_min, clip_max)
    finite = distances[np.isfinite(distances)]
    return {
        "value": ara_from_distances(distances, num_classes),
        "attack": "ddn",
        "parameters": DDN_PARAMETERS,
        "units": "rmse",
        "median_distance": float(np.median(np.minimum(distances, 1.0))),
        "failures": int(np.sum(~np.isfinite(distances))),
        "mean_found_distance": float(finite.mean()) if len(finite) else None,
        "samples": len(x),
        "seed": int(seed),
    }
