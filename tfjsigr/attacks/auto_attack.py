"""AutoAttack (Croce & Hein, ICML 2020): four attacks in sequence, the worst case per image."""

import time

import numpy as np
import tensorflow as tf

from tfjsigr.attacks.auto_projected_gradient_descent import (
    auto_projected_gradient_descent,
    auto_projected_gradient_descent_targeted,
)
from tfjsigr.attacks.fast_adaptive_boundary import fast_adaptive_boundary_targeted
from tfjsigr.attacks.projected_gradient_descent import check_attack_arguments
from tfjsigr.attacks.square import square

# The reference's settings (fra31/auto-attack, version "standard"); "fast" keeps the two APGDs.
COMPONENTS = {
    "apgd-ce": {"steps": 100, "restarts": 1, "loss": "ce"},
    "apgd-t": {"steps": 100, "restarts": 1, "target_classes": 9},
    "fab-t": {"steps": 100, "restarts": 1, "target_classes": 9},
    "square": {"queries": 5000, "p_init": 0.8},
}
VERSIONS = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "fast": ("apgd-ce", "apgd-t"),
}


def predictions(model_fn, x, batch_size=1000):
    """Predicted classes of an array, batch by batch (numpy)."""
    return np.concatenate(
        [
            np.argmax(np.asarray(model_fn(tf.constant(x[s : s + batch_size]))), axis=1)
            for s in range(0, len(x), batch_size)
        ]
    ).astype(np.int32)


def _run_component(name, model_fn, x, y, eps, norm, seed, clip_min, clip_max):
    p = dict(COMPONENTS[name])
    num_classes = int(model_fn(x[:1]).shape[-1])
    clip = {"clip_min": clip_min, "clip_max": clip_max, "seed": seed}
    if name == "apgd-ce":
        return auto_projected_gradient_descent(model_fn, x, y, eps, norm, **p, **clip)
    if name == "square":
        return square(model_fn, x, y, eps, p["queries"], p["p_init"], norm=norm, **clip)
    p["target_classes"] = min(p["target_classes"], num_classes - 1)
    attack = (
        auto_projected_gradient_descent_targeted
        if name == "apgd-t"
        else fast_adaptive_boundary_targeted
    )
    return attack(model_fn, x, y, eps, norm, **p, **clip)


def auto_attack(
    model_fn,
    x,
    y,
    eps,
    norm=np.inf,
    version="standard",
    seed=0,
    batch_size=500,
    clip_min=0.0,
    clip_max=1.0,
    return_stages=False,
):
    """AutoAttack: APGD-CE, APGD-T, FAB-T and Square, each on the points still robust.

    Robust accuracy under AutoAttack is the share of images that none of the attacks flips:
    an image counts as broken as soon as one attack finds a misclassified point within eps.
    Images the model already misclassifies are not attacked (their point is x).

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (N, ...), values in [clip_min, clip_max].
        y: integer labels (N,).
        eps: radius of the threat model.
        norm: np.inf or 2.
        version: "standard" (the four attacks) or "fast" (APGD-CE and APGD-T).
        seed: seed of the attacks (attack i of the sequence uses seed + i).
        batch_size: inputs per attack batch.
        clip_min: lower bound of valid inputs.
        clip_max: upper bound of valid inputs.
        return_stages: also return, per attack, the per-image robustness after it.

    Returns:
        The adversarial inputs (numpy, the worst case found per image) or, with
        `return_stages`, (inputs, stages) with stages a list of
        {attack, robust: (N,) bool, accuracy, seconds}, the first one "clean".
    """
    check_attack_arguments(eps, norm, clip_min, clip_max)
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {sorted(VERSIONS)}, got {version!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    x = np.asarray(x, np.float32)
    y = np.asarray(y).astype(np.int32).reshape(-1)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"x and y must hold the same positive number of examples, got {len(x)} and {len(y)}"
        )
    x_adv = x.copy()
    robust = predictions(model_fn, x, batch_size) == y
    stages = [_stage("clean", robust, 0.0)]
    for offset, name in enumerate(VERSIONS[version]):
        start = time.perf_counter()
        index = np.flatnonzero(robust)
        for first in range(0, len(index), batch_size):
            chunk = index[first : first + batch_size]
            found = np.asarray(
                _run_component(
                    name, model_fn, x[chunk], y[chunk], eps, norm, seed + offset, clip_min, clip_max
                )
            )
            fooled = _valid(found, x[chunk], eps, norm, clip_min, clip_max) & (
                predictions(model_fn, found, batch_size) != y[chunk]
            )
            x_adv[chunk[fooled]] = found[fooled]
            robust[chunk[fooled]] = False
        stages.append(_stage(name, robust, time.perf_counter() - start))
    return (x_adv, stages) if return_stages else x_adv


def _valid(found, x, eps, norm, clip_min, clip_max, slack=1e-5):
    """Per image: within the eps-ball and the clip range (a point outside never counts)."""
    delta = (found - x).reshape(len(x), -1)
    size = np.abs(delta).max(axis=1) if norm == np.inf else np.sqrt((delta**2).sum(axis=1))
    inside = size <= eps + slack
    flat = found.reshape(len(x), -1)
    if clip_min is not None:
        inside &= flat.min(axis=1) >= clip_min - slack
    if clip_max is not None:
        inside &= flat.max(axis=1) <= clip_max + slack
    return inside


def _stage(name, robust, seconds):
    return {
        "attack": name,
        "robust": robust.copy(),
        "accuracy": float(robust.mean()),
        "seconds": round(seconds, 2),
    }
