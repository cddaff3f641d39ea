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
        (('"fashion_mnist"', '"imagenet"'), "unknown data set 'imagenet'"),
        (('name = "mlp"', 'name = "vgg"'), "unknown architecture 'vgg'"),
        (("epochs = 1", "epochz = 1"), "unknown key 'epochz'"),
        (("epochs = 1", "epochs = 1.5"), "key 'epochs' must be an integer"),
        (("epochs = 1", "epochs = = 1"), "malformed TOML"),
        (("epochs = 1", 'name = ".."'), "key 'name': '..' is not a valid model name"),
        (("hidden = [4]", "hidden = 3"), "argument 'hidden' must be a list of integers"),
        (("hidden = [4]", "num_classes = 3"), "'architecture.num_classes': set by the data set"),
        (
            ("[architecture]", "[optimizer]\nlearning_rate = -0.01\n[architecture]"),
            "'optimizer.learning_rate' must be a finite number > 0",
        ),
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
    assert_one_line_error(result, "svhn_cropped train data")


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
    assert "no model was saved" in result.output
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


def tiny_data_dir(folder, count=16):
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (count, 28, 28), dtype=np.uint8)
    np.savez(folder / "fashion_mnist.npz", x_train=images, y_train=np.arange(count) % 10,
             x_test=images[:8], y_test=np.arange(8) % 10)  # fmt: skip
    return folder


def test_a_failed_train_keeps_the_previous_run_files(recipe_file, tmp_path):
    data_dir = tiny_data_dir(tmp_path / "data")
    run_dir = tmp_path / "run"
    (run_dir / "backup").mkdir(parents=True)
    (run_dir / "model.keras").write_bytes(b"the previous model")
    (run_dir / "recipe.json").write_text("[1]")
    diverging = recipe_file(
        ("epochs = 1", "epochs = 4"),
        ("[architecture]", "[optimizer]\nname = 'sgd'\nlearning_rate = 1e30\n[architecture]"),
    )
    result = run("train", diverging, "--out", run_dir, "--data-dir", data_dir)
    assert_one_line_error(result, "loss became NaN")
    assert (run_dir / "model.keras").read_bytes() == b"the previous model"
    assert (run_dir / "recipe.json").read_text() == "[1]"

    converging = recipe_file(("epochs = 1", "epochs = 1\neval_examples = 8"))
    result = run("train", converging, "--out", run_dir, "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "recipe.json").read_text())["name"] == "recipe"


def test_train_refuses_a_zoo_entry_as_out(recipe_file, tmp_path):
    (tmp_path / "entry").mkdir()
    (tmp_path / "entry" / "card.json").write_text("{}")
    result = run("train", recipe_file(), "--out", tmp_path / "entry")
    assert_one_line_error(result, f"{tmp_path / 'entry'} is a zoo entry")
    assert [p.name for p in (tmp_path / "entry").iterdir()] == ["card.json"]


def test_train_with_a_data_dir_that_does_not_exist(recipe_file, tmp_path):
    result = run("train", recipe_file(), "--out", tmp_path / "run", "--data-dir", tmp_path / "no")
    assert_one_line_error(result, f"data folder {tmp_path / 'no'} does not exist")
    assert not (tmp_path / "run").exists()


def test_train_multi_worker_with_a_malformed_tf_config(recipe_file, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": 5}')
    result = run("train", recipe_file(), "--strategy", "multi-worker")
    assert_one_line_error(result, "TF_CONFIG: 'cluster' must map task types to lists")


def test_train_with_a_corrupt_checkpoint_record(recipe_file, tmp_path):
    backup = tmp_path / "run" / "backup"
    backup.mkdir(parents=True)
    (backup / "training_metadata.json").write_text('{"epoch": 1, "weights": "w.weights.h5"}')
    (backup / "recipe.json").write_text("{not json")
    data_dir = tiny_data_dir(tmp_path / "data")
    result = run("train", recipe_file(), "--out", tmp_path / "run", "--data-dir", data_dir)
    assert_one_line_error(result, f"{backup / 'recipe.json'}: corrupt record of the checkpoint's recipe")
    assert sorted(p.name for p in backup.iterdir()) == ["recipe.json", "training_metadata.json"]


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


@pytest.fixture(scope="module")
def exportable(tmp_path_factory):
    """Untrained 28x28 models (10 and 3 classes) in models/, and a folder of 8 test images."""
    from tfjsigr.architectures import small_cnn

    root = tmp_path_factory.mktemp("export")
    (root / "models").mkdir()
    for name, classes in (("dyn", 10), ("three", 3)):
        small_cnn(num_classes=classes, filters=(2, 2), dense=4).save(
            root / "models" / f"{name}.keras"
        )
    (root / "data").mkdir()
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    np.savez(root / "data" / "fashion_mnist.npz", x_train=images, y_train=np.arange(8),
             x_test=images, y_test=np.arange(8))  # fmt: skip
    return root


def test_export_bare_files_into_their_own_entries_and_refuse_incompatible_versions(
    exportable, tmp_path
):
    models, zoo_dir = exportable / "models", tmp_path / "zoo"
    data = ("--zoo", zoo_dir, "--data-dir", exportable / "data")
    for name in ("dyn", "three"):
        result = run("export", models / f"{name}.keras", *data)
        assert result.exit_code == 0 and f"exported {zoo_dir / name}" in result.output, (
            result.output
        )
    card = (zoo_dir / "dyn" / "card.json").read_text()
    result = run("export", models / "three.keras", *data, "--name", "dyn")
    assert_one_line_error(result, "outputs 3 classes but the entry's current version")
    assert (zoo_dir / "dyn" / "card.json").read_text() == card
    assert sorted(p.name for p in (zoo_dir / "dyn" / "saved_model").iterdir()) == ["1"]


@pytest.mark.parametrize("side_file", ["recipe.json", "metrics.json"])
def test_export_run_files_that_are_not_objects(exportable, tmp_path, side_file):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_bytes((exportable / "models" / "dyn.keras").read_bytes())
    (run_dir / side_file).write_text("[]")
    result = run("export", run_dir, "--zoo", tmp_path / "zoo")
    assert_one_line_error(
        result, f"{run_dir / side_file}: corrupt run file (not a JSON object)"
    )
    assert not (tmp_path / "zoo").exists()


@pytest.mark.parametrize(
    "index, lock, expected",
    [
        ('{"entries": [{"name": "a", "version": 1}, {"name": 3}]}', None, "entries[1].name"),
        ('{"entries": [{"name": null, "version": 1}]}', None, "entries[0].name"),
        ("directory", None, "index.json: corrupt zoo index (not a file)"),
        (None, "directory", ".zoo.lock: cannot open the zoo's lock file"),
    ],
)
def test_export_into_a_zoo_with_a_broken_index_or_lock(exportable, tmp_path, index, lock, expected):
    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    for path, content in ((zoo_dir / "index.json", index), (zoo_dir / ".zoo.lock", lock)):
        if content == "directory":
            path.mkdir()
        elif content is not None:
            path.write_text(content)
    before = sorted(p.name for p in zoo_dir.iterdir())
    data = ("--zoo", zoo_dir, "--data-dir", exportable / "data")
    assert_one_line_error(run("export", exportable / "models" / "dyn.keras", *data), expected)
    assert sorted(p.name for p in zoo_dir.iterdir()) == sorted({*before, ".zoo.lock"})


def test_train_prints_an_export_hint_that_can_be_pasted(recipe_file, tmp_path):
    data_dir = tiny_data_dir(tmp_path / "data")
    path = recipe_file(("epochs = 1", "epochs = 1\neval_examples = 8"))
    result = run("train", path, "--out", tmp_path / "sp ace" / "run 1", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    assert f"export it with: tfjsigr export '{tmp_path / 'sp ace' / 'run 1'}'" in result.output


@pytest.mark.parametrize(
    "marker, out, message",
    [
        ("zoo/plain/card.json", "zoo/plain/saved_model", "lies inside the zoo entry"),
        ("zoo/index.json", "zoo", "is a zoo (it holds index.json)"),
    ],
)
def test_train_refuses_a_run_folder_in_a_zoo(recipe_file, tmp_path, marker, out, message):
    (tmp_path / marker).parent.mkdir(parents=True)
    (tmp_path / marker).write_text('{"entries": []}')
    result = run("train", recipe_file(), "--out", tmp_path / out)
    assert_one_line_error(result, f"{tmp_path / out} {message}")
    assert not (tmp_path / "zoo" / "plain" / "saved_model").exists()


def run_folder(exportable, folder, recipe=None):
    """A run folder holding the untrained 28x28 model and, as recipe.json, `recipe`."""
    folder.mkdir()
    (folder / "model.keras").write_bytes((exportable / "models" / "dyn.keras").read_bytes())
    if recipe is not None:
        (folder / "recipe.json").write_text(json.dumps(recipe))
    return folder


@pytest.mark.parametrize(
    "recipe, options, expected",
    [
        ({"name": 5}, (), "recipe.json: key 'name': entry name 5: use letters"),
        ({"name": "a b"}, (), "recipe.json: key 'name': entry name 'a b': use letters"),
        ({}, ("--name", "a b"), "name: entry name 'a b': use letters"),
        ({}, ("--name", "report"), "entry name 'report' is reserved for the zoo's evaluation"),
        ({"dataset": 7}, (), "recipe.json: key 'dataset': must name a data set, got 7"),
        (
            {"dataset": "mnist"},
            ("--dataset", "cifar10"),
            "dataset cifar10: the model was trained on mnist",
        ),
    ],
)
def test_export_errors_name_the_file_or_option(exportable, tmp_path, recipe, options, expected):
    run_dir = run_folder(exportable, tmp_path / "run", recipe)
    result = run("export", run_dir, "--zoo", tmp_path / "zoo", *options)
    assert_one_line_error(result, expected, only_line=True)
    assert not (tmp_path / "zoo").exists()


def test_export_a_zoo_entry_folder_keeps_its_card(exportable, tmp_path):
    entry = run_folder(exportable, tmp_path / "entry")
    card = {"name": "from-card", "recipe": {"name": "r", "dataset": "fashion_mnist"},
            "metrics": {"clean_accuracy": 0.5}, "data": {"test": "the card's data"}}  # fmt: skip
    (entry / "card.json").write_text(json.dumps(card))
    zoo_dir = tmp_path / "zoo"
    result = run("export", entry, "--zoo", zoo_dir, "--data-dir", exportable / "data")
    assert result.exit_code == 0, result.output
    exported = json.loads((zoo_dir / "from-card" / "card.json").read_text())
    assert exported["recipe"] == card["recipe"] and exported["data"] == card["data"]
    assert exported["metrics"] == card["metrics"]


def test_export_names_the_file_of_a_model_that_does_not_take_the_images(exportable, tmp_path):
    import keras

    inputs = keras.Input((784,))
    keras.Model(inputs, keras.layers.Dense(10)(inputs)).save(tmp_path / "flat.keras")
    data = ("--zoo", tmp_path / "zoo", "--data-dir", exportable / "data")
    result = run("export", tmp_path / "flat.keras", *data)
    assert_one_line_error(result, f"{tmp_path / 'flat.keras'}: the model takes inputs of shape")

    from tfjsigr.architectures import small_cnn

    small_cnn(input_shape=(32, 32, 3), filters=(2, 2), dense=4).save(tmp_path / "cifar.keras")
    result = run("export", tmp_path / "cifar.keras", *data)
    assert_one_line_error(result, "takes images of shape [32, 32, 3], but fashion_mnist test")
    assert "--dataset" in result.output and not (tmp_path / "zoo").exists()


def test_export_dataset_chooses_the_parity_images_of_a_bare_file(exportable, tmp_path):
    from tfjsigr.architectures import small_cnn

    small_cnn(input_shape=(32, 32, 3), filters=(2, 2), dense=4).save(tmp_path / "cifar.keras")
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "cifar10.npz", x_train=images, y_train=np.arange(4),
             x_test=images, y_test=np.arange(4))  # fmt: skip
    result = run("export", tmp_path / "cifar.keras", "--dataset", "cifar10",
                 "--zoo", tmp_path / "zoo", "--data-dir", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "zoo" / "cifar" / "card.json").read_text())
    assert card["data"]["name"] == "cifar10" and card["data"]["image_shape"] == [32, 32, 3]
    assert card["recipe"] == {}
