import dataclasses
import importlib.util
import json
import os
import pathlib
import re
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfjsigr.pipeline import recipes, strategies
from tfjsigr.pipeline import runs as training
from tfjsigr.zoo import layout

RECIPES_DIR = pathlib.Path(__file__).resolve().parents[2] / "zoo" / "recipes"
WORKER_SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "multi_worker_worker.py"


def import_worker_script():
    spec = importlib.util.spec_from_file_location("multi_worker_worker", WORKER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_tiny_fashion_mnist(folder, train=32, test=16):
    rng = np.random.default_rng(0)
    np.savez(
        folder / "fashion_mnist.npz",
        x_train=rng.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, train),
        x_test=rng.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        y_test=rng.integers(0, 10, test),
    )
    return folder


def tiny_recipe(**overrides):
    data = {
        "name": "tiny",
        "dataset": "fashion_mnist",
        "architecture": {"name": "mlp", "hidden": [8]},
        "epochs": 3,
        "batch_size": 8,
        "seed": 1,
        **overrides,
    }
    return recipes.parse_recipe(data)


class Interrupt(keras.callbacks.Callback):
    """Raises in the middle of an epoch, as a killed process would stop."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch = epoch, batch

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt("simulated kill")


class EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_interrupted_training_resumes_from_its_last_epoch(tmp_path):
    data_dir = write_tiny_fashion_mnist(tmp_path)
    run_dir = tmp_path / "run"
    recipe = tiny_recipe()
    with pytest.raises(KeyboardInterrupt):
        training.train(recipe, run_dir, data_dir=data_dir, verbose=0, evaluate=False,
                       callbacks=[Interrupt(epoch=1, batch=1)])  # fmt: skip
    backup = json.loads((run_dir / layout.BACKUP_DIR / "training_metadata.json").read_text())
    assert backup["epoch"] == 1
    assert sorted(p.name for p in run_dir.iterdir()) == [layout.BACKUP_DIR]
    record = run_dir / layout.BACKUP_DIR / layout.RECIPE_FILE
    assert json.loads(record.read_text())["name"] == recipe.name

    recorder = EpochRecorder()
    result = training.train(
        recipe, run_dir, data_dir=data_dir, verbose=0, evaluate=False, callbacks=[recorder]
    )
    assert recorder.epochs == [1, 2] and result.metrics["resumed_from_epoch"] == 1
    steps_per_epoch = 32 // 8
    assert int(result.model.optimizer.iterations) == 3 * steps_per_epoch
    assert (run_dir / layout.MODEL_FILE).is_file()
    assert not (run_dir / layout.BACKUP_DIR).exists()


def test_a_kill_after_the_last_epoch_keeps_the_checkpoint_until_the_model_is_saved(
    tmp_path, monkeypatch
):
    data_dir = write_tiny_fashion_mnist(tmp_path)
    run_dir = tmp_path / "run"
    recipe = tiny_recipe()

    def killed_while_evaluating(*args, **kwargs):
        raise KeyboardInterrupt("killed during the evaluation")

    monkeypatch.setattr(training, "run_figures", killed_while_evaluating)
    with pytest.raises(KeyboardInterrupt):
        training.train(recipe, run_dir, data_dir=data_dir, verbose=0)
    assert json.loads((run_dir / layout.BACKUP_DIR / "training_metadata.json").read_text())[
        "epoch"
    ] == 3
    monkeypatch.undo()

    recorder = EpochRecorder()
    result = training.train(recipe, run_dir, data_dir=data_dir, verbose=0, callbacks=[recorder])
    assert recorder.epochs == [] and result.metrics["resumed_from_epoch"] == 3
    assert int(result.model.optimizer.iterations) == 3 * (32 // 8)
    assert (run_dir / layout.MODEL_FILE).is_file() and "clean_accuracy" in result.metrics
    assert not (run_dir / layout.BACKUP_DIR).exists()


def test_a_changed_recipe_does_not_resume_an_old_checkpoint(tmp_path):
    data_dir = write_tiny_fashion_mnist(tmp_path)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.train(tiny_recipe(), run_dir, data_dir=data_dir, verbose=0, evaluate=False,
                       callbacks=[Interrupt(epoch=1, batch=0)])  # fmt: skip
    recorder = EpochRecorder()
    wider = tiny_recipe(architecture={"name": "mlp", "hidden": [16]}, epochs=2)
    training.train(
        wider, run_dir, data_dir=data_dir, verbose=0, evaluate=False, callbacks=[recorder]
    )
    assert recorder.epochs == [0, 1]


RUN_FILES = (layout.MODEL_FILE, layout.METRICS_FILE, layout.RECIPE_FILE)


def test_a_failed_or_interrupted_run_keeps_the_previous_results(tmp_path):
    data_dir = write_tiny_fashion_mnist(tmp_path)
    run_dir = tmp_path / "run"
    first = tiny_recipe(name="v1.2-tiny_a", epochs=1)
    training.train(first, run_dir, data_dir=data_dir, verbose=0, evaluate=False)
    previous = {name: (run_dir / name).read_bytes() for name in RUN_FILES}

    diverging = tiny_recipe(optimizer={"name": "sgd", "learning_rate": 1e30})
    with pytest.raises(training.TrainingDiverged):
        training.train(diverging, run_dir, data_dir=data_dir, verbose=0, evaluate=False)
    wider = tiny_recipe(architecture={"name": "mlp", "hidden": [16]})
    with pytest.raises(KeyboardInterrupt):
        training.train(wider, run_dir, data_dir=data_dir, verbose=0, evaluate=False,
                       callbacks=[Interrupt(epoch=1, batch=0)])  # fmt: skip

    assert {name: (run_dir / name).read_bytes() for name in RUN_FILES} == previous
    assert json.loads(previous[layout.RECIPE_FILE])["name"] == "v1.2-tiny_a"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([*RUN_FILES, layout.BACKUP_DIR])
    record = run_dir / layout.BACKUP_DIR / layout.RECIPE_FILE
    assert json.loads(record.read_text())["architecture"]["hidden"] == [16]


def test_saved_run_files_are_readable_by_everyone(tmp_path):
    recipe = tiny_recipe()
    model = training.build_model(recipe, (28, 28, 1), 10)
    training.save_run(tmp_path, model, {"final_loss": np.float32(0.5)}, recipe)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(RUN_FILES)
    for name in RUN_FILES:
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    assert json.loads((tmp_path / layout.METRICS_FILE).read_text()) == {"final_loss": 0.5}


def test_a_zoo_entry_is_refused_as_run_folder(tmp_path):
    entry = tmp_path / "zoo" / "tiny"
    entry.mkdir(parents=True)
    (entry / "card.json").write_text("{}")
    with pytest.raises(ValueError, match=f"{entry} is a zoo entry \\(it holds card.json\\)"):
        training.train(tiny_recipe(), entry, verbose=0, evaluate=False)
    assert [p.name for p in entry.iterdir()] == ["card.json"]


@pytest.mark.parametrize(
    "marker, run, message",
    [
        ("zoo/tiny/card.json", "zoo/tiny/saved_model", "lies inside the zoo entry"),
        ("zoo/index.json", "zoo", "is a zoo (it holds index.json)"),
        ("zoo/index.json", "zoo/new/run", "lies inside the zoo"),
        ("zoo/.zoo.lock", "zoo/new", "lies inside the zoo"),
    ],
)
def test_a_folder_in_a_zoo_is_refused_as_run_folder(tmp_path, marker, run, message):
    (tmp_path / marker).parent.mkdir(parents=True)
    (tmp_path / marker).write_text('{"entries": []}')
    before = sorted(tmp_path.rglob("*"))
    expected = re.escape(f"{tmp_path / run} {message}") + ".*not a run folder"
    with pytest.raises(ValueError, match=expected):
        training.train(tiny_recipe(), tmp_path / run, verbose=0, evaluate=False)
    assert sorted(tmp_path.rglob("*")) == before


def test_a_folder_beside_an_index_json_of_another_kind_may_be_a_run_folder(tmp_path):
    (tmp_path / "index.json").write_text('{"pages": ["home"]}')
    training.check_run_dir(tmp_path / "run")


def write_checkpoint(backup, record):
    """A checkpoint folder as an interrupted run leaves it, with `record` as its recipe record."""
    backup.mkdir(parents=True)
    (backup / "training_metadata.json").write_text('{"epoch": 1, "weights": "w.weights.h5"}')
    if record is not None:
        (backup / layout.RECIPE_FILE).write_text(record)


@pytest.mark.parametrize(
    "record, problem",
    [
        ("[1]", "corrupt record of the checkpoint's recipe \\(not a JSON object\\)"),
        ("{not json", "corrupt record of the checkpoint's recipe \\(Expecting property name"),
        (None, "no such record of the checkpoint's recipe"),
    ],
)
def test_an_unusable_record_of_the_checkpoint_recipe_is_an_error_naming_it(
    tmp_path, record, problem
):
    data_dir = write_tiny_fashion_mnist(tmp_path)
    backup = tmp_path / "run" / layout.BACKUP_DIR
    write_checkpoint(backup, record)
    path = backup / layout.RECIPE_FILE
    with pytest.raises(ValueError, match=f"{path}: {problem}.*delete {backup}"):
        training.train(tiny_recipe(), tmp_path / "run", data_dir=data_dir, verbose=0)
    assert (backup / "training_metadata.json").is_file()


def test_unreadable_checkpoint_metadata_is_an_error_naming_it(tmp_path):
    data_dir = write_tiny_fashion_mnist(tmp_path)
    backup = tmp_path / "run" / layout.BACKUP_DIR
    write_checkpoint(backup, json.dumps(tiny_recipe().to_dict()))
    metadata = backup / "training_metadata.json"
    metadata.unlink()
    metadata.mkdir()
    with pytest.raises(ValueError, match=f"unreadable checkpoint: {metadata}: corrupt checkpoint metadata \\(not a file"):
        training.train(tiny_recipe(), tmp_path / "run", data_dir=data_dir, verbose=0)


@pytest.mark.parametrize(
    "tf_config, message",
    [
        ('{"cluster": 5}', "'cluster' must map task types to lists of \"host:port\" addresses"),
        ('{"cluster": {"worker": "h:1"}}', "'cluster' must map"),
        ('{"cluster": {"worker": ["h"]}}', "'cluster' must map"),
        ('{"cluster": {"worker": []}}', "'cluster' must map"),
        ('{"cluster": {"worker": ["h:1"]}}', "'task' must name a 'type' of the cluster \\(worker\\)"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief"}}', "'task' must name"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 1}}',
         "task 'index' must be an integer from 0 to 0"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": "0"}}',
         "task 'index' must be an integer"),
        ("[1]", "TF_CONFIG must be a JSON object, got \\[1\\]"),
        ("{", "TF_CONFIG is not valid JSON"),
        ("{}", "needs TF_CONFIG with a 'cluster'"),
    ],
)  # fmt: skip
def test_a_malformed_tf_config_is_a_value_error(monkeypatch, tf_config, message):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message) as error:
        strategies.make_strategy("multi-worker")
    assert "\n" not in str(error.value)


def test_nan_loss_stops_training_and_writes_no_model(tmp_path):
    data_dir = write_tiny_fashion_mnist(tmp_path)
    recipe = tiny_recipe(optimizer={"name": "sgd", "learning_rate": 1e30})
    with pytest.raises(training.TrainingDiverged, match="NaN.*no model was saved.*weight decay"):
        training.train(recipe, tmp_path / "run", data_dir=data_dir, verbose=0, evaluate=False)
    assert not (tmp_path / "run" / layout.MODEL_FILE).exists()


def test_evaluation_reports_sample_sizes_and_finite_figures(tmp_path):
    data_dir = write_tiny_fashion_mnist(tmp_path)
    result = training.train(tiny_recipe(epochs=1, eval_examples=12), data_dir=data_dir, verbose=0)
    metrics = result.metrics
    assert metrics["eval_examples"] == metrics["pgd"]["examples"] == 12
    assert metrics["autoattack"]["examples"] == 12 and metrics["autoattack"]["version"] == "fast"
    assert 0 <= metrics["pgd_accuracy"] <= metrics["clean_accuracy"] <= 1
    assert 0 <= metrics["autoattack_accuracy"] <= metrics["clean_accuracy"]
    assert metrics["hardware"].startswith(("CPU", "1 GPU"))
    assert metrics["mean_jacobian_norm"] > 0 and metrics["train_seconds"] > 0


def test_a_zoo_recipe_runs_on_cifar10_with_augmentation(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "cifar10.npz", x_train=images, y_train=np.arange(16) % 10,
             x_test=images[:4], y_test=np.arange(4) % 10)  # fmt: skip
    recipe = recipes.load_recipe(RECIPES_DIR / "plain.toml")
    recipe = dataclasses.replace(
        recipe,
        dataset="cifar10",
        architecture={"name": "preact_resnet", "widths": (4, 8), "activation": "softplus"},
        epochs=1,
        batch_size=8,
        eval_examples=4,
    )
    result = training.train(recipe, data_dir=tmp_path, verbose=0, evaluate=False)
    assert result.model.model.input_shape == (None, 32, 32, 3)
    assert result.metrics["train_examples"] == 16 and "cifar10" in result.metrics["data"]["train"]


@pytest.mark.parametrize("name", ["ns_jr", "lipschitz", "jr_ensemble"])
def test_opt_in_zoo_recipes_train_save_and_reload(tmp_path, name):
    data_dir = write_tiny_fashion_mnist(tmp_path)
    recipe = recipes.load_recipe(RECIPES_DIR / f"{name}.toml")
    tiny = {**recipe.architecture, "filters": (2, 4), "dense": 8}
    recipe = dataclasses.replace(recipe, architecture=tiny, epochs=1, batch_size=8, eval_examples=4)
    result = training.train(recipe, tmp_path / "run", data_dir=data_dir, verbose=0)
    assert np.isfinite(result.history["loss"][-1]) and result.metrics["mean_jacobian_norm"] > 0
    reloaded = keras.saving.load_model(tmp_path / "run" / layout.MODEL_FILE)
    np.testing.assert_allclose(
        reloaded.predict(result.eval_images, verbose=0),
        result.model.predict(result.eval_images, verbose=0),
        atol=1e-6,
    )


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_match_one_worker_with_the_same_global_batch(tmp_path):
    data_dir = write_tiny_fashion_mnist(tmp_path, train=64)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
            "CUDA_VISIBLE_DEVICES": "",
        }
        command = [
            sys.executable,
            str(WORKER_SCRIPT),
            str(data_dir),
            str(tmp_path / f"worker{index}.npz"),
        ]
        workers.append(
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    single = tmp_path / "single.npz"
    import_worker_script().main(str(data_dir), str(single), strategy="default")
    try:
        outputs = [
            worker.communicate(timeout=240)[0].decode(errors="replace") for worker in workers
        ]
    finally:
        for worker in workers:
            worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]

    distributed, reference = np.load(tmp_path / "worker0.npz"), np.load(single)
    assert int(distributed["replicas"]) == 2 and int(reference["replicas"]) == 1
    np.testing.assert_allclose(distributed["loss"], reference["loss"], rtol=1e-5)
    weights = [key for key in reference.files if key.startswith("arr_")]
    assert len(weights) == 4
    for key in weights:
        np.testing.assert_allclose(distributed[key], reference[key], atol=1e-5)
    assert not np.allclose(reference["arr_0"], 0)
