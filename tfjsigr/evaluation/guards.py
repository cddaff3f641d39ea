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


def black_box_guard(
    model_fn,
    x,
    y,
    white_box_flags,
    eps_values,
    seed=0,
    batch_size=500,
    margin=0.03,
    reference_names=None,
):
    """Square (black-box) must not beat the white-box attacks by more than `margin` at any eps.

    A score-based attack that needs no gradient doing better than the gradient attacks is the
    mark of gradient masking.

    Args:
        model_fn: logits function.
        x: inputs (the first len(x) of those the white-box attacks ran on).
        y: labels.
        white_box_flags: {eps: per-example robustness under the white-box attacks}, at least
            len(x) long.
        eps_values: radii to compare at (each a key of white_box_flags).
        seed: seed of Square.
        batch_size: inputs per attack batch.
        margin: allowed advantage of Square, as a share of the sample.
        reference_names: {eps: name of the white-box attack} for the report (default "pgd").

    Returns:
        ({passed, margin, comparisons: [{eps, square_accuracy, white_box_accuracy, white_box}],
        samples, seed}, {eps: Square's per-example flags}).
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
                "white_box_accuracy": float(np.mean(white_box_flags[eps][: len(x)])),
                "white_box": (reference_names or {}).get(eps, "pgd"),
                "square_parameters": attacks_lib.ATTACK_PARAMETERS["square"](eps),
            }
        )
    passed = all(
        c["white_box_accuracy"] - c["square_accuracy"] <= margin + 1e-9 for c in comparisons
    )
    return {
        "passed": passed,
        "margin": margin,
        "comparisons": comparisons,
        "samples": len(x),
        "seed": int(seed),
    }, square_flags


def pgd_gap_guard(pgd_flags, autoattack_flags, eps, max_gap=0.05, seed=0):
    """Flags "PGD overestimates" where AutoAttack is more than `max_gap` below PGD.

    Both are compared on the images AutoAttack ran on (the first len(autoattack_flags)).

    Returns:
        {passed, gap, pgd_accuracy, autoattack_accuracy, max_gap, eps, samples, seed}.
    """
    count = len(autoattack_flags)
    pgd_accuracy = float(np.mean(pgd_flags[:count]))
    autoattack_accuracy = float(np.mean(autoattack_flags))
    gap = pgd_accuracy - autoattack_accuracy
    return {
        "passed": gap <= max_gap + 1e-9,
        "label": "PGD overestimates",
        "gap": gap,
        "pgd_accuracy": pgd_accuracy,
        "autoattack_accuracy": autoattack_accuracy,
        "max_gap": max_gap,
        "eps": float(eps),
        "samples": count,
        "seed": int(seed),
    }


def summarize(guards, flags=None):
    """reliable: every gradient-masking guard passed; failed: those that did not.

    flagged: the labels of the `flags` (warnings on the fast figures, such as "PGD
    overestimates") that fired; they say nothing against the headline AutoAttack figure.
    """
    failed = [name for name, guard in guards.items() if not guard["passed"]]
    flagged = [flag["label"] for flag in (flags or {}).values() if not flag["passed"]]
    return {"reliable": not failed, "failed": failed, "flagged": flagged}
