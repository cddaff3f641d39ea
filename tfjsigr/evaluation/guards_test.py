"""The gradient-masking guards fire on a masked model and stay quiet on a normal one."""

import numpy as np
import pytest

from tfjsigr.evaluation import EvaluationConfig, guards, testing
from tfjsigr.evaluation import attacks as attacks_lib
from tfjsigr.evaluation.attacks import logits_function
from tfjsigr.evaluation.evaluate import autoattack_accuracy, run_guards

masked = testing.gradient_masked


@pytest.fixture(autouse=True)
def small_budgets(monkeypatch):
    testing.small_autoattack_budgets(monkeypatch, square_queries=1000)


def guard_report(model, x, y, with_autoattack=True):
    config = EvaluationConfig(
        eps_grid=(0.05, 0.1, 0.3), square_eps=(0.1, 0.3), square_samples=len(x)
    )
    model_fn = logits_function(model)
    curves, flags = attacks_lib.accuracy_curve(
        "pgd", model_fn, x, y, config.eps_grid, progress=False
    )
    if not with_autoattack:
        return run_guards(model_fn, x, y, curves, flags, config)[0]
    records, autoattack_flags, white_box = autoattack_accuracy(
        model_fn, x, y, config.autoattack_eps, config.autoattack
    )
    return run_guards(
        model_fn, x, y, curves, flags, config, white_box, (records, autoattack_flags)
    )[0]


@pytest.fixture(scope="module")
def data():
    _, _, x, y = testing.sample_data()
    return x[:100], y[:100].astype(np.int32)


def test_guards_fire_on_gradient_masked_model(data):
    report = guard_report(masked(testing.tiny_model()), *data)
    assert not report["reliable"]
    assert "unbounded_pgd" in report["failed"]
    assert "black_box" in report["failed"]
    # Square is checked against AutoAttack's gradient attacks, which the masking defeats too.
    assert report["black_box"]["comparisons"][0]["white_box"].startswith("autoattack")
    assert report["flagged"] == ["PGD overestimates"]
    gap = report["pgd_overestimates"]
    assert gap["gap"] > 0.2 and not gap["passed"]


def test_guards_quiet_on_normal_model(data):
    report = guard_report(testing.tiny_model(), *data)
    assert report["reliable"], report["failed"]
    gap = report["pgd_overestimates"]
    assert gap["autoattack_accuracy"] <= gap["pgd_accuracy"]
    assert report["flagged"] == ([] if gap["passed"] else ["PGD overestimates"])


def test_black_box_guard_fires_against_pgd_without_autoattack(data):
    report = guard_report(masked(testing.tiny_model()), *data, with_autoattack=False)
    assert "black_box" in report["failed"]
    assert report["black_box"]["comparisons"][0]["white_box"] == "pgd"
    assert "pgd_overestimates" not in report


def test_pgd_gap_guard_compares_on_the_autoattack_images():
    pgd = np.array([True] * 8 + [False] * 2)
    autoattack = np.array([True, True, False, False])
    gap = guards.pgd_gap_guard(pgd, autoattack, 0.1, max_gap=0.05)
    assert gap["pgd_accuracy"] == 1.0 and gap["autoattack_accuracy"] == 0.5
    assert not gap["passed"] and gap["samples"] == 4
    assert guards.pgd_gap_guard(pgd, pgd[:4], 0.1)["passed"]


def test_guards_run_on_a_single_image(data):
    x, y = data
    report = guard_report(testing.tiny_model(), x[:1], y[:1])
    assert report["black_box"]["samples"] == 1


def test_monotone_guard_flags_a_rise():
    rising = [{"attack": "pgd", "eps": e, "accuracy": a} for e, a in [(0.1, 0.3), (0.2, 0.35)]]
    falling = [{"attack": "pgd", "eps": e, "accuracy": a} for e, a in [(0.1, 0.3), (0.2, 0.1)]]
    assert not guards.monotone_guard(rising)["passed"]
    assert guards.monotone_guard(rising)["rises"][0]["eps_to"] == 0.2
    assert guards.monotone_guard(falling)["passed"]
