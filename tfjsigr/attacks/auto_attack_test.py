"""AutoAttack: the worst case of its components, within the ball, and it sees through masking."""

import importlib

import numpy as np
import pytest

from tfjsigr import attacks
from tfjsigr.evaluation import testing

# The module, not the function of the same name that tfjsigr.attacks exports.
auto_attack_lib = importlib.import_module("tfjsigr.attacks.auto_attack")

EPS = 0.1


@pytest.fixture(scope="module")
def setup():
    model = testing.tiny_model()
    _, _, x, y = testing.sample_data()

    def model_fn(v):
        return model(v, training=False)

    return model_fn, x[:60], y[:60].astype(np.int32)


@pytest.fixture
def small_budgets(monkeypatch):
    testing.small_autoattack_budgets(monkeypatch)


def accuracy(model_fn, x, y):
    return float(np.mean(auto_attack_lib.predictions(model_fn, x) == y))


@pytest.mark.parametrize("norm, eps", [(np.inf, EPS), (2, 1.0)])
def test_stays_in_ball_and_range_and_lowers_accuracy(setup, small_budgets, norm, eps):
    model_fn, x, y = setup
    x_adv, stages = attacks.auto_attack(model_fn, x, y, eps, norm=norm, seed=0, return_stages=True)
    delta = (x_adv - x).reshape(len(x), -1)
    size = np.abs(delta).max(1) if norm == np.inf else np.sqrt((delta**2).sum(1))
    assert size.max() <= eps + 1e-5
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert [s["attack"] for s in stages] == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert accuracy(model_fn, x_adv, y) == stages[-1]["accuracy"] < stages[0]["accuracy"] - 0.2
    accuracies = [s["accuracy"] for s in stages]
    assert accuracies == sorted(accuracies, reverse=True)


def test_never_above_any_component_on_the_same_images(setup, small_budgets):
    model_fn, x, y = setup
    x_adv = attacks.auto_attack(model_fn, x, y, EPS, seed=0)
    ensemble = accuracy(model_fn, x_adv, y)
    for offset, name in enumerate(auto_attack_lib.VERSIONS["standard"]):
        alone = auto_attack_lib._run_component(name, model_fn, x, y, EPS, np.inf, offset, 0.0, 1.0)
        assert ensemble <= accuracy(model_fn, np.asarray(alone), y), name


def test_fast_version_runs_the_two_apgds(setup, small_budgets):
    model_fn, x, y = setup
    _, stages = attacks.auto_attack(model_fn, x, y, EPS, version="fast", return_stages=True)
    assert [s["attack"] for s in stages] == ["clean", "apgd-ce", "apgd-t"]


def test_finds_what_pgd_misses_on_a_gradient_masked_model(setup, small_budgets, monkeypatch):
    _, x, y = setup
    testing.small_autoattack_budgets(monkeypatch, square_queries=1000)
    masked = testing.gradient_masked(testing.tiny_model())

    def masked_fn(v):
        return masked(v, training=False)

    pgd = attacks.projected_gradient_descent(masked_fn, x, y, EPS, EPS / 4, 20, seed=0)
    x_adv, stages = attacks.auto_attack(masked_fn, x, y, EPS, seed=0, return_stages=True)
    assert accuracy(masked_fn, x_adv, y) < accuracy(masked_fn, np.asarray(pgd), y) - 0.2
    by_attack = {s["attack"]: s["accuracy"] for s in stages}
    assert by_attack["square"] < by_attack["fab-t"] - 0.2  # The gradient-free attack did it.


def test_points_outside_the_ball_never_count(setup, monkeypatch):
    model_fn, x, y = setup
    far = lambda name, f, xb, *args: np.clip(xb + 0.5, 0.0, 1.0)
    monkeypatch.setattr(auto_attack_lib, "_run_component", far)
    x_adv, stages = attacks.auto_attack(model_fn, x, y, EPS, return_stages=True)
    np.testing.assert_array_equal(x_adv, x)
    assert stages[-1]["accuracy"] == stages[0]["accuracy"]


@pytest.mark.parametrize(
    "arguments",
    [
        {"eps": -0.1},
        {"norm": 1},
        {"version": "plus"},
        {"batch_size": 0},
        {"clip_min": 1.0, "clip_max": 0.0},
    ],
)
def test_bad_arguments_raise_value_error(setup, arguments):
    model_fn, x, y = setup
    with pytest.raises(ValueError):
        attacks.auto_attack(model_fn, x[:2], y[:2], **{"eps": EPS, **arguments})


def test_mismatched_labels_raise_value_error(setup):
    model_fn, x, y = setup
    with pytest.raises(ValueError, match="same positive number"):
        attacks.auto_attack(model_fn, x[:3], y[:2], EPS)
