import sys

import pytest

from tfjsigr.tuning import front

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def trial(number, clean, robust, seconds, **params):
    return {"number": number, "clean": clean, "robust": robust, "seconds": seconds,
            "params": params}  # fmt: skip


TRIALS = [
    trial(0, 0.90, 0.10, 10, w=1.0),
    trial(1, 0.80, 0.30, 10, w=2.0),
    trial(2, 0.70, 0.20, 20, w=3.0),  # Dominated by 1: less clean, less robust, dearer.
    trial(3, 0.70, 0.20, 5, w=4.0),  # The same accuracies as 2, but the cheapest trial.
    trial(4, 0.90, 0.10, 10, w=5.0),  # Equal to 0: neither dominates the other.
    trial(5, None, None, None, w=6.0),  # Pruned.
    trial(6, 0.85, 0.30, 11, w=7.0),  # Cleaner than 1, as robust, dearer: both stay.
    trial(7, 0.80, 0.30, 11, w=8.0),  # Dominated by 1 on cost alone.
]


def test_the_pareto_set_of_hand_made_trials():
    assert [r["number"] for r in front.pareto_set(TRIALS)] == [0, 1, 3, 4, 6]
    assert front.dominates(TRIALS[1], TRIALS[7]) and not front.dominates(TRIALS[7], TRIALS[1])
    assert not front.dominates(TRIALS[0], TRIALS[4]) and not front.dominates(TRIALS[4], TRIALS[0])
    assert front.pareto_set([TRIALS[5]]) == []
    # Within a 15% cost tolerance 6 is as cheap as 1 and cleaner: 1 leaves the set.
    tolerant = front.pareto_set(TRIALS, cost_tolerance=0.15)
    assert [r["number"] for r in tolerant] == [0, 3, 4, 6]


def test_best_trial_is_the_most_robust_above_the_clean_floor_and_the_cleaner_on_ties():
    assert front.best_trial(TRIALS, 0.85)["number"] == 6
    assert front.best_trial(TRIALS)["number"] == 6  # 1, 6 and 7 are as robust; 6 is cleanest.
    assert front.best_trial(TRIALS, 0.95) is None


def test_the_table_lists_the_pareto_set_only_most_robust_first():
    rows = front.pareto_table(TRIALS, "pgd").splitlines()
    assert rows[0] == "| trial | clean | pgd | train s | w |"
    assert [row.split("|")[1].strip() for row in rows[2:]] == ["6", "1", "3", "0", "4"]
    tolerant = front.pareto_table(TRIALS, "pgd", cost_tolerance=0.15).splitlines()[2:]
    assert [row.split("|")[1].strip() for row in tolerant] == ["6", "3", "0", "4"]


def test_recipe_toml_round_trips():
    data = {
        "name": "x-tuned", "description": 'say "hi"', "dataset": "fashion_mnist", "epochs": 3,
        "augment": False, "architecture": {"name": "mlp", "hidden": [8, 4]},
        "optimizer": {"name": "adam", "learning_rate": 1e-05},
        "penalties": [{"type": "jsigr", "jacobian_weight": 0.0123456789}, {"type": "trades"}],
    }  # fmt: skip
    assert tomllib.loads(front.to_toml(data, "two\nlines")) == data


def test_the_figure_draws_every_group_and_the_baselines(tmp_path):
    path = front.plot_front(
        {"a": TRIALS, "b": TRIALS[:2]},
        tmp_path / "sub" / "front.png",
        baselines={"plain": {"clean": 0.9, "robust": 0.0, "seconds": 3}},
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("value", [{"a": 1}, None])
def test_a_value_toml_cannot_hold_is_an_error(value):
    with pytest.raises(ValueError, match="cannot write"):
        front.to_toml({"table": {"key": value}})
