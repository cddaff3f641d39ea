import dataclasses
import json
import pathlib

import numpy as np
import pytest

from tfjsigr.cli.testing import assert_one_line_error, run

TINY = """
dataset = "fashion_mnist"
epochs = 1
batch_size = 8
eval_examples = 8

[architecture]
name = "mlp"
hidden = [4]

[[penalties]]
type = "jacobian"
weight = 0.1

[quick]
epochs = 1
train_examples = 16
"""


@pytest.fixture
def tiny_setup(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 28, 28), dtype=np.uint8)
    np.savez(data_dir / "fashion_mnist.npz", x_train=images, y_train=np.arange(24) % 10,
             x_test=images[:8], y_test=np.arange(8) % 10)  # fmt: skip
    (tmp_path / "tiny.toml").write_text(TINY)
    diverging = TINY.replace("epochs = 1\nbatch", "epochs = 4\nbatch").replace(
        "[architecture]", "[optimizer]\nname = 'sgd'\nlearning_rate = 1e30\n[architecture]"
    )
    (tmp_path / "diverging.toml").write_text(diverging)
    return tmp_path, data_dir


def test_build_unknown_recipe_names_the_places_tried(tmp_path):
    assert_one_line_error(
        run("zoo", "build", "nonexistent", "--out", tmp_path), "recipe 'nonexistent' not found"
    )


def test_verify_and_list_a_missing_zoo(tmp_path):
    assert_one_line_error(run("zoo", "verify", tmp_path / "absent"), "no such zoo directory")
    assert_one_line_error(run("zoo", "list", tmp_path / "absent"), "no such zoo directory")


def test_build_exports_what_trains_and_nothing_that_diverges(tiny_setup, monkeypatch):
    tmp_path, data_dir = tiny_setup
    exported = []

    def fake_export(model, zoo_dir, name, recipe, metrics, sample_images, data_description):
        exported.append((name, recipe, metrics, sample_images.shape))
        return pathlib.Path(zoo_dir) / name

    monkeypatch.setattr("tfjsigr.zoo.export.export_entry", fake_export)
    result = run(
        "zoo", "build", tmp_path / "tiny.toml", tmp_path / "diverging.toml", "--quick",
        "--out", tmp_path / "zoo", "--runs", tmp_path / "runs", "--data-dir", data_dir,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "FAILED diverging" in result.output and "loss became NaN" in result.output
    assert result.output.strip().splitlines()[-1] == "Error: 1 of 2 models failed: diverging"
    [(name, recipe, metrics, shape)] = exported
    assert (name, recipe["name"], recipe["epochs"], metrics["train_examples"]) == (
        "tiny",
        "tiny",
        1,
        16,
    )
    assert shape == (8, 28, 28, 1) and metrics["quick"] is True
    leaderboard = result.output[result.output.index("model ") : result.output.index("Error:")]
    assert "tiny" in leaderboard and "diverging" not in leaderboard
    assert f"{metrics['clean_accuracy']:7.3f}" in leaderboard
    assert not (tmp_path / "runs" / "diverging" / "model.keras").exists()


def test_build_reports_any_failed_recipe_and_builds_the_others(tiny_setup, monkeypatch):
    from tfjsigr.pipeline import runs as training

    tmp_path, data_dir = tiny_setup
    monkeypatch.setattr(
        "tfjsigr.zoo.export.export_entry", lambda model, zoo, name, *rest: pathlib.Path(zoo) / name
    )
    original_train = training.train

    def train(recipe, *args, **kwargs):
        if recipe.name == "boom":
            raise RuntimeError("an unexpected\nfailure")
        if recipe.name == "scope":  # Fails inside Keras, which leaves a name scope open.
            recipe = dataclasses.replace(recipe, name="my model")
        return original_train(recipe, *args, **kwargs)

    monkeypatch.setattr(training, "train", train)
    names = ("my model", "boom", "scope", "tiny")
    for name in names[:3]:
        (tmp_path / f"{name}.toml").write_text(TINY)
    result = run(
        "zoo", "build", *(tmp_path / f"{name}.toml" for name in names), "--quick",
        "--out", tmp_path / "zoo", "--runs", tmp_path / "runs", "--data-dir", data_dir,
    )  # fmt: skip
    assert "Traceback" not in result.output and result.exit_code == 1
    assert "FAILED my model: " in result.output and "'my model' is not a valid" in result.output
    assert "FAILED boom: RuntimeError: an unexpected failure" in result.output
    assert "FAILED scope: 'my model' is not a valid root scope name" in result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "Error: 3 of 4 models failed: my model, boom, scope"
    board = result.output[result.output.index("\nmodel ") : result.output.index("\nError:")]
    assert [line.split()[0] for line in board.strip().splitlines()[1:]] == ["tiny"]


def test_build_with_a_data_dir_that_does_not_exist(tmp_path):
    result = run("zoo", "build", "plain", "--quick", "--data-dir", tmp_path / "absent",
                 "--out", tmp_path / "zoo", "--runs", tmp_path / "runs")  # fmt: skip
    assert_one_line_error(result, f"data folder {tmp_path / 'absent'} does not exist", True)


@pytest.mark.slow
def test_build_list_verify_end_to_end(tiny_setup):
    tmp_path, data_dir = tiny_setup
    zoo_dir = tmp_path / "zoo"
    result = run("zoo", "build", tmp_path / "tiny.toml", "--quick", "--out", zoo_dir,
                 "--runs", tmp_path / "runs", "--data-dir", data_dir)  # fmt: skip
    assert result.exit_code == 0, result.output
    for artifact in ("model.keras", "model.onnx", "card.json", "README.md", "saved_model/1"):
        assert (zoo_dir / "tiny" / artifact).exists(), artifact
    card = json.loads((zoo_dir / "tiny" / "card.json").read_text())
    assert card["recipe"]["name"] == "tiny" and "clean_accuracy" in card["metrics"]

    listing = run("zoo", "list", zoo_dir)
    assert listing.exit_code == 0 and "tiny" in listing.output
    assert run("zoo", "verify", zoo_dir).exit_code == 0

    with open(zoo_dir / "tiny" / "model.onnx", "ab") as onnx_file:
        onnx_file.write(b"tampered")
    tampered = run("zoo", "verify", zoo_dir)
    assert tampered.exit_code == 1 and "model.onnx" in tampered.output


MALFORMED_INDEXES = [
    ('{"entries": [{"name": "a", "version": 1}, {"name": 3, "version": 1}]}', "entries[1].name"),
    ('{"entries": [{"name": null, "version": 1}]}', "entries[0].name"),
    ('{"entries": [{"name": "jr", "version": 1, "metrics": []}]}', "entries[0].metrics"),
    ('{"entries": [{"name": "jr", "version": [1]}]}', "entries[0].version"),
    ('{"entries": [{"name": "jr", "version": 1, "path": "/z/jr"}]}', "entries[0].path"),
]


@pytest.mark.parametrize("index, expected", MALFORMED_INDEXES)
def test_list_and_verify_a_malformed_index(tmp_path, index, expected):
    (tmp_path / "index.json").write_text(index)
    expected = f"{tmp_path / 'index.json'}: corrupt zoo index ({expected}"
    assert_one_line_error(run("zoo", "list", tmp_path), expected, only_line=True)
    result = run("zoo", "verify", tmp_path)
    assert_one_line_error(result, "problem(s) found")
    assert f"FAIL {expected}" in result.output


def test_list_shows_an_entry_without_a_creation_time(tmp_path):
    (tmp_path / "index.json").write_text('{"entries": [{"name": "jr", "version": 2}]}')
    result = run("zoo", "list", tmp_path)
    # clean, AutoAttack, PGD-20 and ||J||_F unknown: one dash each.
    assert result.exit_code == 0 and result.output.splitlines()[-1].split() == [
        "jr",
        "2",
        "-",
        "-",
        "-",
        "-",
    ]


def test_build_refuses_recipes_that_share_a_name(tiny_setup):
    tmp_path, _ = tiny_setup
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "tiny.toml").write_text(TINY.replace("hidden = [4]", "hidden = [8]"))
    for twin in (tmp_path / "tiny.toml", tmp_path / "other" / "tiny.toml"):
        result = run("zoo", "build", tmp_path / "tiny.toml", twin, "--quick",
                     "--out", tmp_path / "zoo", "--runs", tmp_path / "runs")  # fmt: skip
        assert_one_line_error(result, "recipes share a name (their runs and zoo entries would")
        assert f"tiny ({tmp_path / 'tiny.toml'}, {twin})" in result.output
    assert not (tmp_path / "zoo").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("runs", ["zoo", "zoo/runs", "."])
def test_build_refuses_a_runs_folder_that_is_or_holds_or_lies_in_the_zoo(tiny_setup, runs):
    tmp_path, _ = tiny_setup
    result = run("zoo", "build", tmp_path / "tiny.toml", "--quick",
                 "--out", tmp_path / "zoo", "--runs", tmp_path / runs)  # fmt: skip
    assert_one_line_error(result, "the training runs and the zoo need separate folders", True)
    assert not (tmp_path / "zoo").exists()


@pytest.mark.parametrize(
    "edit, reason",
    [
        (("hidden = [4]", "hidden = [0]"), "[architecture] 'mlp' cannot be built"),
        (
            ("dataset =", 'name = "report"\ndataset ='),
            "key 'name': entry name 'report' is reserved",
        ),
    ],
)
def test_build_checks_every_recipe_before_anything_trains(tiny_setup, edit, reason):
    tmp_path, data_dir = tiny_setup
    (tmp_path / "bad.toml").write_text(TINY.replace(*edit))
    result = run("zoo", "build", tmp_path / "bad.toml", "--quick", "--out", tmp_path / "zoo",
                 "--runs", tmp_path / "runs", "--data-dir", data_dir)  # fmt: skip
    assert_one_line_error(result, "1 of 1 models failed")
    assert f"FAILED {'report' if 'report' in reason else 'bad'}: {tmp_path / 'bad.toml'}: " in (
        result.output
    )
    assert reason in result.output and "===" not in result.output  # No model was started.
    assert not (tmp_path / "runs").exists() and not (tmp_path / "zoo").exists()


def test_an_entry_is_neither_a_zoo_nor_a_recipe(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "card.json").write_text("{}")
    for command in ("list", "verify"):
        result = run("zoo", command, tmp_path / "plain")
        assert_one_line_error(result, f"{tmp_path / 'plain'} is a zoo entry", True)
    result = run("zoo", "build", tmp_path / "plain", "--out", tmp_path / "zoo")
    assert_one_line_error(result, f"{tmp_path / 'plain'} is a zoo entry, not a recipe", True)
    result = run("zoo", "build", tmp_path, "--out", tmp_path / "zoo")
    assert_one_line_error(result, f"{tmp_path} is a folder, not a recipe", True)
