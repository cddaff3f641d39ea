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
