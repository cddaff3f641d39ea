"""`tfjsigr evaluate` and `tfjsigr zoo evaluate` end to end on tiny models (small --samples)."""

import json

import pytest
from click.testing import CliRunner

from tfjsigr.cli import cli
from tfjsigr.evaluation import testing
from tfjsigr.zoo.card import read_card, write_json_atomic


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    for name, model in [
        ("plain", testing.tiny_model(0)),
        ("other", testing.tiny_model(1, epochs=1)),
    ]:
        (root / name).mkdir()
        model.save(root / name / "model.keras")
        write_json_atomic(root / name / "card.json", {"name": name, "version": 1})
    return root


def test_zoo_evaluate_writes_report_plots_and_cards(zoo_dir, tmp_path):
    out = tmp_path / "report"
    extra = str(zoo_dir / "other" / "model.keras")
    arguments = ["zoo", "evaluate", str(zoo_dir), "--out", str(out), "--samples", "60"]
    result = CliRunner().invoke(cli, [*arguments, "--transfer-source", extra])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert {m["name"] for m in report["models"]} == {"plain", "other"}
    assert report["samples"] == 60
    pgd = [r for r in report["models"][0]["robust_accuracy"] if r["attack"] == "pgd"]
    assert pgd and all(
        r["samples"] == 60 and r["seed"] == 0 and r["parameters"]["steps"] for r in pgd
    )
    assert [row["rank"] for row in report["leaderboard"]["rows"]] == [1, 2]
    assert len(report["transfer"]["pgd"]["accuracy"]) == 3  # two entries and the extra source
    assert report["transfer"]["pgd"]["sources"][-1] == "model (extra)"
    for figure in (
        "accuracy_vs_eps.png",
        "transfer_heatmap.png",
        "saliency_grid.png",
        "adversarial_examples.png",
    ):
        assert (out / figure).stat().st_size > 10_000
    assert "Leaderboard" in (out / "report.md").read_text()
    card = read_card(zoo_dir / "plain")
    assert card["robustness"]["reliable"] in (True, False)
    assert 0.0 <= card["robustness"]["ara"] <= 1.0
    assert card["version"] == 1  # other sections kept


@pytest.mark.parametrize(
    "arguments",
    [["evaluate", "missing.keras"], ["zoo", "evaluate", "nozoo"], ["evaluate", "README.md"]],
)
def test_user_errors_are_one_line_messages(arguments, tmp_path):
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "Error" in result.output
