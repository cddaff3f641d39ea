"""Gradient-masking guards: checks a real robustness figure passes and a masked one fails."""

import itertools

import numpy as np

from tfjsigr.evaluation import attacks as attacks_lib

UNBOUNDED_PGD = {
    "eps": 1.0,
    "steps": 50,
    "step_size": 0.1,
    "rand_init": True,
    "restarts": 1,
    "norm": "inf",
}


def monotone_guard(curves, tolerance=0.0):
    """Accuracy must not rise as eps grows, for every attack.

    Args:
        curves: list of records {attack, eps, accuracy, ...}.
        tolerance: allowed rise (share of the sample).

    Returns:
        {passed, rises: [{attack, eps_from, eps_to, rise}]}.
    """
    rises = []
    for name in sorted({r["attack"] for r in curves}):
        points = sorted((r["eps"], r["accuracy"]) for r in curves if r["attack"] == name)
        for (e0, a0), (e1, a1) in itertools.pairwise(points):
            if a1 > a0 + tolerance:
                rises.append({"attack": name, "eps_from": e0, "eps_to": e1, "rise": a1 - a0})
    return {"passed": not rises, "tolerance": tolerance, "rises": rises}


def unbounded_guard(model_fn, x, y, seed=0, batch_size=500, max_accuracy=0.01):
    """PGD with eps = 1 (any image reachable) must leave at most `max_accuracy`."""
    p = UNBOUNDED_PGD
    accuracy = float(
        attacks_lib.robust_flags(
            "pgd", model_fn, x, y, p["eps"], seed, batch_size, parameters=p
        ).mean()
    )
    return {
        "passed": accuracy <= max_accuracy,
        "accuracy": accuracy,
        "max_accuracy": max_accuracy,
        "attack": "pgd",
        "parameters": p,
        "samples": len(x),
        "seed": int(seed),
    }


def black_box_guard(model_fn, x, y, pgd_flags, eps_values, seed=0, batch_size=500, margin=0.03):
    """Square (black-box) must not beat white-box PGD by more than `margin` at any eps.

    Args:
        model_fn: logits function.
        x: inputs (the first len(x) of those PGD ran on).
        y: labels.
        pgd_flags: {eps: per-example PGD robustness flags}, at least len(x) long.
        eps_values: radii to compare at (each a key of pgd_flags).
        seed: seed of Square.
        batch_size: inputs per attack batch.
        margin: allowed advantage of Square, as a share of the sample.

    Returns:
        {passed, comparisons: [{eps, square_accuracy, pgd_accuracy}], square_flags}.
    """
    comparisons, square_flags = [], {}
    for eps in eps_values:
        square_flags[eps] = attacks_lib.robust_flags(
            "square", model_fn, x, y, eps, seed, batch_size
        )
        comparisons.append(
            {
                "eps": float(eps),
                "square_accuracy": float(square_flags[eps].mean()),
                "pgd_accuracy": float(np.mean(pgd_flags[eps][: len(x)])),
                "square_parameters": attacks_lib.ATTACK_PARAMETERS["square"](eps),
            }
        )
    passed = all(c["pgd_accuracy"] - c["square_accuracy"] <= margin + 1e-9 for c in comparisons)
    return {
        "passed": passed,
        "margin": margin,
        "comparisons": comparisons,
        "samples": len(x),
        "seed": int(seed),
    }, square_flags


def summarize(guards):
    """reliable = every guard passed; failed = the names of those that did not."""
    failed = [name for name, guard in guards.items() if not guard["passed"]]
    return {"reliable": not failed, "failed": failed}
