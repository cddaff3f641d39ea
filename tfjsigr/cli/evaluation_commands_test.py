"""`tfjsigr evaluate` and `tfjsigr zoo evaluate` end to end on tiny models (small --samples)."""

import json
import pathlib
import shutil
import types

import pytest
from click.testing import CliRunner

from tfjsigr.cli import cli
from tfjsigr.cli.testing import assert_one_line_error, run
from tfjsigr.evaluation import runner, testing
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


def test_zoo_evaluate_writes_report_plots_and_cards(zoo_dir, tmp_path, monkeypatch):
    testing.small_autoattack_budgets(monkeypatch)
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
    rows = report["leaderboard"]["rows"]
    assert [row["rank"] for row in rows] == [1, 2]
    assert report["leaderboard"]["sorted_by"].startswith("AutoAttack accuracy at eps 0.1")
    if all(row["reliable"] for row in rows):
        assert rows[0]["autoattack"] >= rows[1]["autoattack"]
    for model in report["models"]:
        [headline] = [r for r in model["autoattack"] if r["eps"] == 0.1]
        assert model["headline"]["accuracy"] == headline["accuracy"]
        assert [s["attack"] for s in headline["stages"]] == [
            "clean", "apgd-ce", "apgd-t", "fab-t", "square"
        ]  # fmt: skip
        assert headline["accuracy"] <= min(
            r["accuracy"] for r in model["robust_accuracy"] if r["eps"] == 0.1
        )
    assert len(report["transfer"]["pgd"]["accuracy"]) == 3  # two entries and the extra source
    assert report["transfer"]["pgd"]["sources"][-1] == "other (extra)"
    for figure in (
        "accuracy_vs_eps.png",
        "transfer_heatmap.png",
        "saliency_grid.png",
        "adversarial_examples.png",
    ):
        assert (out / figure).stat().st_size > 10_000
    assert "| AutoAttack | PGD-20 (fast) |" in (out / "report.md").read_text()
    assert f"updated {zoo_dir / 'plain' / 'card.json'}: robustness on 60 test images" in (
        result.output
    )
    card = read_card(zoo_dir / "plain")
    robustness = card["robustness"]
    assert robustness["reliable"] in (True, False)
    assert 0.0 <= robustness["ara"] <= 1.0
    assert robustness["threat_model"] == "Linf" and robustness["eps"] == 0.1
    assert robustness["n_examples"] == 60 and robustness["seed"] == 0
    assert robustness["attacks_run"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert robustness["autoattack_acc"] <= robustness["pgd20_acc"] <= robustness["clean_acc"]
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


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"name": "jsigr", "version": 1, "path": "OTHER_ZOO/plain"}, "entries[0].path"),
        ({"name": "jsigr", "version": 1, "path": "../zoo/plain"}, "entries[0].path"),
        ({"name": None, "version": 1}, "entries[0].name"),
        ({"name": "jsigr", "version": [1]}, "entries[0].version"),
        ({"name": "jsigr", "version": 1, "metrics": []}, "entries[0].metrics"),
    ],
)
def test_zoo_evaluate_refuses_a_malformed_index(zoo_dir, tmp_path, record, expected):
    if "path" in record:
        record = {**record, "path": record["path"].replace("OTHER_ZOO", str(zoo_dir))}
    (tmp_path / "index.json").write_text(json.dumps({"entries": [record]}))
    card = (zoo_dir / "plain" / "card.json").read_text()
    result = run("zoo", "evaluate", tmp_path, "--samples", 10)
    assert_one_line_error(result, f"{tmp_path / 'index.json'}: corrupt zoo index ({expected}")
    assert (zoo_dir / "plain" / "card.json").read_text() == card


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "directory"])
def test_unreadable_card_fails_before_the_evaluation(zoo_dir, tmp_path, content):
    entry = shutil.copytree(zoo_dir / "plain", tmp_path / "zoo" / "plain")
    (entry / "card.json").unlink()
    if content == "directory":
        (entry / "card.json").mkdir()
    else:
        (entry / "card.json").write_text(content)
    result = run("evaluate", entry, "--samples", 10, "--out", tmp_path / "report")
    assert_one_line_error(result, f"{entry / 'card.json'}: corrupt model card", only_line=True)
    assert not (tmp_path / "report").exists()


def test_card_updates_say_what_they_replace(tmp_path, monkeypatch):
    entry = tmp_path / "jsigr"
    entry.mkdir()
    write_json_atomic(entry / "card.json", {"name": "jsigr", "robustness": {"samples": 1000}})
    monkeypatch.setattr(
        "tfjsigr.evaluation.report.card_section",
        lambda report, path, training: {"samples": 10},
    )
    report = {"models": [{"name": "jsigr"}, {"name": "no card"}]}
    entries = {"jsigr": entry, "no card": tmp_path / "absent"}
    lines = runner.update_cards(entries, report, tmp_path / "report.json")
    assert lines == [f"updated {entry / 'card.json'}: robustness on 10 test images (was 1000)"]
    assert read_card(entry)["robustness"] == {"dataset": None, "samples": 10}


def test_models_that_do_not_fit_the_data_are_refused_before_any_attack(tmp_path):
    import numpy as np

    from tfjsigr import testing as model_testing

    nan, cifar = tmp_path / "nan.keras", tmp_path / "cifar.keras"
    model = model_testing.tiny_cnn((28, 28, 1), 10)
    (tmp_path / "zoo" / "tiny").mkdir(parents=True)
    model.save(tmp_path / "zoo" / "tiny" / "model.keras")
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    model.save(nan)
    model_testing.tiny_cnn((32, 32, 3), 10).save(cifar)
    cases = [
        (["evaluate", nan], f"{nan}: logits are NaN or infinite on 10 of 10"),
        (["evaluate", cifar], f"{cifar}: model expects 32x32x3 images and 10 classes"),
        (["zoo", "evaluate", tmp_path / "zoo", "--transfer-source", cifar], f"{cifar}: model"),
        (["evaluate", nan, "--seed", 10**20], "Invalid value for '--seed'"),
        (["zoo", "evaluate", tmp_path / "zoo", "--seed", -1], "Invalid value for '--seed'"),
    ]
    for arguments, expected in cases:
        result = run(*arguments, "--samples", 10, "--out", tmp_path / "report")
        assert_one_line_error(result, expected)
    assert not (tmp_path / "report").exists()


def test_the_report_folder_is_checked_before_the_evaluation(zoo_dir, tmp_path):
    (tmp_path / "img.png").write_text("")
    under_a_file = tmp_path / "img.png" / "sub"
    plain, other = zoo_dir / "plain", zoo_dir / "other"
    cases = [
        (["evaluate", plain, "--out", under_a_file], f"{tmp_path / 'img.png'} is a file"),
        (["zoo", "evaluate", zoo_dir, "--out", under_a_file], f"{tmp_path / 'img.png'} is a file"),
        (["evaluate", plain, "--out", plain], f"lies inside the zoo entry {plain.resolve()}"),
        (["evaluate", plain, "--out", plain / "r"], f"lies inside the zoo entry {plain.resolve()}"),
        (["zoo", "evaluate", zoo_dir, "--out", other / "r"], f"the zoo entry {other.resolve()}"),
    ]
    for arguments, expected in cases:
        assert_one_line_error(run(*arguments, "--samples", 10), expected, only_line=True)
    assert not (plain / "r").exists() and not (other / "r").exists()


def test_an_unwritable_report_folder_is_refused_before_the_evaluation(
    zoo_dir, tmp_path, monkeypatch
):
    def read_only(dir):
        raise PermissionError(13, "Permission denied", dir)

    monkeypatch.setattr(runner.tempfile, "TemporaryFile", read_only)
    result = run("evaluate", zoo_dir / "plain", "--samples", 10, "--out", tmp_path / "r")
    assert_one_line_error(result, f"cannot write in {tmp_path} (", only_line=True)


@pytest.fixture
def evaluations(monkeypatch):
    """The arguments of each evaluation the commands start (none runs)."""
    calls = []

    def evaluate_saved(models, out, **_):
        calls.append((models, out))
        return types.SimpleNamespace(
            card_updates=[], leaderboard_lines=list, json_path="r.json", markdown_path="r.md",
            seconds=0.0,
        )  # fmt: skip

    monkeypatch.setattr(runner, "evaluate_saved", evaluate_saved)
    return calls


def test_a_model_keras_is_named_after_its_folder(zoo_dir, tmp_path, monkeypatch, evaluations):
    run_dir = tmp_path / "runs" / "jr"
    run_dir.mkdir(parents=True)
    (run_dir / "model.keras").write_bytes(b"")  # Never loaded: the evaluation is mocked.
    monkeypatch.chdir(run_dir)
    for model in (zoo_dir / "plain" / "model.keras", "."):
        assert run("evaluate", model).exit_code == 0
    [(plain_paths, plain_out), (jr_paths, jr_out)] = evaluations
    assert list(plain_paths) == ["plain"] and plain_out == pathlib.Path("evaluation/plain")
    assert list(jr_paths) == ["jr"] and jr_out == pathlib.Path("evaluation/jr")


def test_evaluate_refuses_a_zoo_and_a_default_report_inside_an_entry(
    zoo_dir, tmp_path, monkeypatch, evaluations
):
    (tmp_path / "indexed").mkdir()
    (tmp_path / "indexed" / "index.json").write_text('{"entries": []}')
    for zoo in (zoo_dir, tmp_path / "indexed"):
        result = run("evaluate", zoo)
        assert_one_line_error(result, f"use `tfjsigr zoo evaluate {zoo}`", only_line=True)
    monkeypatch.chdir(zoo_dir / "plain")
    result = run("evaluate", ".")
    expected = "the default report folder evaluation/plain lies inside the zoo entry"
    assert_one_line_error(result, expected, only_line=True)
    assert not evaluations


def test_transfer_sources_get_unique_meaningful_names(tmp_path):
    for folder in ("zoo/plain", "other/plain", "zoo/jsigr", "zoo/igr"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "model.keras").write_bytes(b"")
    (tmp_path / "a.keras").write_bytes(b"")
    (tmp_path / "zoo" / "a.keras").write_bytes(b"")
    sources = ["zoo/plain", "other/plain", "zoo/jsigr/model.keras", "zoo/igr/model.keras",
               "a.keras", "zoo/a.keras", "zoo/plain"]  # fmt: skip
    paths = [str(tmp_path / source) for source in sources]
    names = runner.transfer_source_names(paths, taken={"plain"})
    assert list(names) == [
        "zoo/plain (extra)",
        "other/plain (extra)",
        "jsigr (extra)",
        "igr (extra)",
        f"{tmp_path.name}/a (extra)",
        "zoo/a (extra)",
        "zoo/plain (extra 2)",
    ]
    assert list(names.values()) == paths
