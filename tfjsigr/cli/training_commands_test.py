import json
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tfjsigr.cli.testing import assert_one_line_error, run

CLI_SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "cli.py"
RECIPE = """
dataset = "fashion_mnist"
epochs = 1
batch_size = 8

[architecture]
name = "mlp"
hidden = [4]
"""


@pytest.fixture
def recipe_file(tmp_path):
    def write(*edits):
        text = RECIPE
        for old, new in edits:
            text = text.replace(old, new)
        path = tmp_path / "recipe.toml"
        path.write_text(text)
        return path

    return write


def test_train_missing_recipe_file(tmp_path):
    assert_one_line_error(run("train", tmp_path / "absent.toml"), "recipe not found")


@pytest.mark.parametrize(
    "edit, expected",
    [
        (('"fashion_mnist"', '"imagenet"'), "unknown dataset 'imagenet'"),
        (('name = "mlp"', 'name = "vgg"'), "unknown architecture 'vgg'"),
        (("epochs = 1", "epochz = 1"), "unknown key 'epochz'"),
        (("epochs = 1", "epochs = 1.5"), "key 'epochs' must be an integer"),
        (("epochs = 1", "epochs = = 1"), "malformed TOML"),
    ],
)
def test_train_bad_recipe(recipe_file, edit, expected):
    path = recipe_file(edit)
    assert_one_line_error(run("train", path, "--out", path.parent / "run"), expected)
    assert not (path.parent / "run").exists()


def test_train_without_data_names_the_places_tried(recipe_file, tmp_path):
    path = recipe_file(('"fashion_mnist"', '"svhn_cropped"'))
    result = run(
        "train", path, "--out", tmp_path / "run", "--data-dir", tmp_path, "--source", "full"
    )
    assert_one_line_error(result, "svhn_cropped train data not found; tried:")


def test_train_multi_worker_without_tf_config(recipe_file, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert_one_line_error(
        run("train", recipe_file(), "--strategy", "multi-worker"), "needs TF_CONFIG"
    )


def test_train_nan_loss_fails_and_writes_no_model(recipe_file, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 28, 28), dtype=np.uint8)
    np.savez(data_dir / "fashion_mnist.npz", x_train=images, y_train=np.arange(16) % 10,
             x_test=images, y_test=np.arange(16) % 10)  # fmt: skip
    path = recipe_file(
        ("epochs = 1", "epochs = 4"),
        ("[architecture]", "[optimizer]\nname = 'sgd'\nlearning_rate = 1e30\n[architecture]"),
    )
    result = run("train", path, "--out", tmp_path / "run", "--data-dir", data_dir)
    assert_one_line_error(result, "loss became NaN")
    assert not (tmp_path / "run" / "model.keras").exists()


def test_export_missing_and_corrupt_model(tmp_path):
    assert_one_line_error(run("export", tmp_path / "absent.keras"), "model not found")
    corrupt = tmp_path / "model.keras"
    corrupt.write_bytes(b"PK\x03\x04 this is not a keras archive")
    result = run("export", corrupt, "--zoo", tmp_path / "zoo")
    assert_one_line_error(result, "not a loadable Keras model")
    assert not (tmp_path / "zoo").exists()


def test_every_command_has_help_with_examples():
    for command in (["train"], ["export"], ["zoo", "build"], ["zoo", "list"], ["zoo", "verify"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Examples:" in result.output, command


@pytest.mark.slow
def test_a_killed_train_resumes_from_its_checkpoint(recipe_file, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (128, 28, 28), dtype=np.uint8)
    np.savez(data_dir / "fashion_mnist.npz", x_train=images, y_train=np.arange(128) % 10,
             x_test=images[:8], y_test=np.arange(8) % 10)  # fmt: skip
    path = recipe_file(("epochs = 1", "epochs = 12\neval_examples = 8"))
    run_dir = tmp_path / "run"
    command = [sys.executable, str(CLI_SCRIPT), "train", str(path), "--out", str(run_dir),
               "--data-dir", str(data_dir)]  # fmt: skip
    checkpoint = run_dir / "backup" / "training_metadata.json"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while checkpoint_epoch(checkpoint) < 2 and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    killed_at = checkpoint_epoch(checkpoint)
    assert process.returncode == -signal.SIGKILL and 2 <= killed_at < 12
    assert not (run_dir / "model.keras").exists()

    rerun = subprocess.run(command, check=False, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert f"resuming after epoch {killed_at}" in rerun.stdout
    assert f"Epoch {killed_at + 1}/12" in rerun.stdout and "Epoch 1/12" not in rerun.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == killed_at and (run_dir / "model.keras").is_file()


def checkpoint_epoch(path):
    try:
        return json.loads(path.read_text())["epoch"]
    except (FileNotFoundError, ValueError, KeyError):
        return 0
