"""Trains a recipe with `model.fit`: seeds, distribution strategies, resume, NaN guard, metrics."""

import dataclasses
import json
import os
import pathlib
import platform
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfjsigr import data as data_lib
from tfjsigr import robustness
from tfjsigr.atomic_backup_and_restore import (
    METADATA_FILE,
    AtomicBackupAndRestore,
    checkpointed_epoch,
)
from tfjsigr.attacks.auto_attack import auto_attack, predictions
from tfjsigr.recipes import build_optimizer
from tfjsigr.regularized_model import RegularizedModel
from tfjsigr.zoo.card import CARD_FILE, json_default, write_json_atomic
from tfjsigr.zoo.index import zoo_folder_around

STRATEGIES = ("default", "mirrored", "multi-worker")
PGD_EVALUATION = {"eps": 0.1, "step_size": 0.025, "steps": 20}
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
RECIPE_FILE = "recipe.json"
BACKUP_DIR = "backup"
# The recipe a checkpoint belongs to, kept in the checkpoint folder: the run folder's own
# recipe.json describes its model.keras, which a new run only replaces once it has finished.
RESUME_RECORD = "recipe.json"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model is unusable and must not be exported."""


@dataclasses.dataclass
class TrainingResult:
    """What `train` returns: the trained model, its metrics and the Keras history."""

    model: RegularizedModel
    metrics: dict
    history: dict
    eval_images: np.ndarray
    eval_labels: np.ndarray
    is_chief: bool = True


def make_strategy(name):
    """A `tf.distribute` strategy from "default", "mirrored" or "multi-worker" (reads TF_CONFIG).

    Raises:
        ValueError: unknown name, or multi-worker without a valid TF_CONFIG (a cluster of
            "host:port" lists and this process's task in it).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        _check_tf_config(_tf_config())
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; known: {list(STRATEGIES)}")


def _tf_config():
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object, got {_short_json(config)}")  # noqa: TRY004
    return config


def _check_tf_config(config):
    """ValueError unless TF_CONFIG has a cluster of "host:port" lists and a task within it."""
    if "cluster" not in config:
        raise ValueError("--strategy multi-worker needs TF_CONFIG with a 'cluster' (see README)")
    cluster = config["cluster"]
    if not (isinstance(cluster, dict) and cluster and all(map(_is_address_list, cluster.values()))):
        raise ValueError(
            "TF_CONFIG: 'cluster' must map task types to lists of \"host:port\" addresses, "
            f"got {_short_json(cluster)}"
        )
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ValueError(
            f"TF_CONFIG: 'task' must name a 'type' of the cluster ({', '.join(sorted(cluster))}) "
            f"and an 'index', got {_short_json(task)}"
        )
    index, addresses = task.get("index", 0), cluster[task["type"]]
    if not _is_integer(index) or not 0 <= index < len(addresses):
        raise ValueError(
            f"TF_CONFIG: task 'index' must be an integer from 0 to {len(addresses) - 1} "
            f"(the {task['type']} addresses), got {_short_json(index)}"
        )


def _is_address_list(addresses):
    return isinstance(addresses, list) and len(addresses) > 0 and all(map(_is_address, addresses))


def _is_address(address):
    if not isinstance(address, str) or ":" not in address:
        return False
    host, port = address.rsplit(":", 1)
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def _is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _short_json(value):
    return json.dumps(value)[:200]


def _worker_index():
    """(is_chief, index) of this process in a multi-worker cluster (chief: worker 0 or 'chief')."""
    task = _tf_config().get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    return kind == "chief" or (kind == "worker" and index == 0), index


def load_training_data(recipe, data_dir=None, source="auto"):
    """(x_train, y_train, x_eval, y_eval, descriptions) for a recipe, subsets seeded."""
    x_train, y_train, train_from = data_lib.load_dataset(recipe.dataset, "train", source, data_dir)
    x_test, y_test, test_from = data_lib.load_dataset(recipe.dataset, "test", source, data_dir)
    x_train, y_train, train_from = _seeded_subset(
        x_train, y_train, train_from, recipe.train_examples, recipe.seed
    )
    x_test, y_test, test_from = _seeded_subset(
        x_test, y_test, test_from, recipe.eval_examples, recipe.seed + 1
    )
    return x_train, y_train, x_test, y_test, {"train": train_from, "test": test_from}


def _seeded_subset(x, y, description, count, seed):
    if count is None or count >= len(y):
        return x, y, description
    order = np.random.default_rng(seed).permutation(len(y))[:count]
    return x[order], y[order], f"{count} images drawn with seed {seed} from {description}"


def build_model(recipe, input_shape, num_classes):
    """The compiled `RegularizedModel` a recipe describes (call inside a strategy scope)."""
    model = RegularizedModel(
        recipe.build_architecture(input_shape, num_classes),
        penalties=recipe.build_penalties(),
        adversarial_training=recipe.build_adversarial_training(),
        name=recipe.name,
    )
    model.compile(
        optimizer=build_optimizer(recipe.optimizer),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train(
    recipe,
    run_dir=None,
    strategy="default",
    data_dir=None,
    source="auto",
    verbose="auto",
    callbacks=(),
    evaluate=True,
):
    """Trains a recipe, resuming from `run_dir`'s checkpoint if a previous run was interrupted.

    Args:
        recipe: a `tfjsigr.recipes.Recipe` (apply `quick_variant()` first for a quick run).
        run_dir: folder for the checkpoint (`backup/`, with a record of its recipe), and for
            `model.keras`, `metrics.json` and `recipe.json`, which replace the previous run's
            only once training has succeeded; not in a zoo (see `check_run_dir`). None trains without checkpoints
            or files.
        strategy: "default", "mirrored" or "multi-worker" (TF_CONFIG).
        data_dir: folder of IDX or npz files, tried before the other sources.
        source: data source ("auto", "full", "tfds", "sample"; see `tfjsigr.data.load_dataset`).
        verbose: Keras `fit` verbosity (progress bars by default).
        callbacks: extra Keras callbacks.
        evaluate: measure clean and PGD accuracy and mean ||J||_F afterwards.

    Returns:
        A `TrainingResult`.

    Raises:
        TrainingDiverged: the loss became NaN (nothing is written; a previous run's files stay).
        ValueError: bad strategy, data or checkpoint, or `run_dir` is (or lies inside) a zoo
            entry or a zoo.
        FileNotFoundError: missing data.
    """
    if run_dir is not None:
        run_dir = pathlib.Path(run_dir)
        check_run_dir(run_dir)
    distribution = make_strategy(strategy)
    is_chief, worker = _worker_index() if strategy == "multi-worker" else (True, 0)
    keras.utils.set_random_seed(recipe.seed)
    x_train, y_train, x_eval, y_eval, described = load_training_data(recipe, data_dir, source)
    spec = data_lib.get_spec(recipe.dataset)
    with distribution.scope():
        model = build_model(recipe, spec.image_shape, spec.num_classes)
    train_ds = data_lib.make_dataset(
        x_train,
        y_train,
        recipe.batch_size,
        shuffle=True,
        seed=recipe.seed,
        augment=_augment(recipe, spec),
    )
    all_callbacks = [keras.callbacks.TerminateOnNaN(), *callbacks]
    resumed_from = 0
    if run_dir is not None:
        backup = _prepare_checkpoint_dir(run_dir, recipe, is_chief, worker)
        resumed_from = checkpointed_epoch(backup)
        # Kept until the model is saved: a kill while evaluating or saving loses no training.
        all_callbacks.append(AtomicBackupAndRestore(backup, delete_checkpoint=False))
    print(
        f"training {recipe.name}: {described['train']}, {recipe.epochs} epochs, batch {recipe.batch_size}"
        + (f", resuming after epoch {resumed_from}" if resumed_from else "")
    )
    if strategy == "multi-worker":
        _adapt_to_multi_worker(model)
    start = time.perf_counter()
    with distribution.scope():
        history = model.fit(
            train_ds, epochs=recipe.epochs, verbose=verbose, callbacks=all_callbacks, shuffle=False
        )
    seconds = time.perf_counter() - start
    try:
        _check_finite(model, history.history, recipe.name)
    except TrainingDiverged:
        if run_dir is not None:
            shutil.rmtree(backup, ignore_errors=True)  # Its last epoch holds the NaN weights.
        raise
    metrics = {
        "train_seconds": round(seconds, 2),
        "resumed_from_epoch": resumed_from,
        "epochs": recipe.epochs,
        "train_examples": len(y_train),
        "replicas": int(distribution.num_replicas_in_sync),
        "hardware": describe_hardware(),
        "data": described,
        "final_loss": _last(history.history.get("loss")),
        "final_train_accuracy": _last(history.history.get("accuracy")),
    }
    if evaluate:
        metrics.update(evaluate_model(model.model, x_eval, y_eval, recipe.seed))
    if run_dir is not None:
        if is_chief:
            save_run(run_dir, model, metrics, recipe)
        shutil.rmtree(backup, ignore_errors=True)
    return TrainingResult(model, metrics, history.history, x_eval, y_eval, is_chief)


def check_run_dir(run_dir):
    """ValueError unless `run_dir` may be a run folder: it is no zoo entry or zoo, nor inside one.

    Training writes checkpoints and model files the zoo's checksums and index do not list.
    """
    found = zoo_folder_around(run_dir)
    if found is None:
        return
    folder, marker = found
    kind = "zoo entry" if marker == CARD_FILE else "zoo"
    where = f"lies inside the {kind} {folder}"
    if folder == pathlib.Path(run_dir).resolve():
        where = f"is a {kind}"
    raise ValueError(
        f"{run_dir} {where} (it holds {marker}), not a run folder: train into another "
        "folder (the default is runs/<name>) and export the run from there"
    )


def _prepare_checkpoint_dir(run_dir, recipe, is_chief, worker):
    """This worker's checkpoint folder, recording the recipe it is for.

    The previous run's results (model.keras, metrics.json, recipe.json) stay untouched: only
    `save_run` replaces them, once the new ones are complete.
    """
    # Each worker keeps its own copy of the (identical) state: no two write one file.
    backup = run_dir / (BACKUP_DIR if is_chief else f"{BACKUP_DIR}-worker-{worker}")
    _discard_checkpoint_of_another_recipe(backup, recipe)
    backup.mkdir(parents=True, exist_ok=True)
    write_json_atomic(backup / RESUME_RECORD, recipe.to_dict())
    return backup


def _discard_checkpoint_of_another_recipe(backup, recipe):
    """Resuming is only valid for the same recipe: a changed one starts from scratch."""
    if not (backup / METADATA_FILE).exists():
        return
    recorded = _read_resume_record(backup)
    if _resumable_part(recorded) != _resumable_part(recipe.to_dict()):
        print(f"{backup.parent}: the recipe changed since the interrupted run; starting over")
        shutil.rmtree(backup)


def _read_resume_record(backup):
    """The recipe (a dict) a checkpoint was trained with; ValueError naming the file otherwise."""
    path = backup / RESUME_RECORD
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        problem = "missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"unreadable ({error})"
    else:
        if isinstance(recorded, dict):
            return recorded
        problem = f"not a JSON object ({_short_json(recorded)})"
    raise ValueError(
        f"{path}: the record of the checkpoint's recipe is {problem}; delete {backup} to start over"
    )


def _resumable_part(recipe_dict):
    """What must not change for a checkpoint to be resumed (more epochs are fine)."""
    plain = json.loads(json.dumps(recipe_dict))
    return {k: v for k, v in plain.items() if k not in ("epochs", "description")}


def _adapt_to_multi_worker(model):
    """Works around two gaps of Keras 3.15's fit under MultiWorkerMirroredStrategy.

    Its symbolic build strategy.reduce-s a PerReplica batch (rejected); without a recorded
    strategy Keras builds while tracing, in the scope fit runs in. And it reduces the step's logs
    with `reduce("MEAN", axis=0)`, which fails on scalars: the logs get a batch axis of one.
    """
    model._distribute_strategy = None
    train_step = model.train_step

    def train_step_with_vector_logs(data):
        return {key: tf.reshape(value, [1]) for key, value in train_step(data).items()}

    model.train_step = train_step_with_vector_logs


def _augment(recipe, spec):
    """The recipe's `augment` setting, else the data set's default (crop/flip for CIFAR-10)."""
    return spec.augment if recipe.augment is None else recipe.augment


def _last(values):
    return float(values[-1]) if values else None


def _check_finite(model, history, name):
    losses = history.get("loss", [])
    bad_epoch = next((i for i, value in enumerate(losses) if not np.isfinite(value)), None)
    weights_finite = all(np.all(np.isfinite(w)) for w in model.get_weights())
    if bad_epoch is not None or not weights_finite:
        where = f" in epoch {bad_epoch + 1}" if bad_epoch is not None else ""
        raise TrainingDiverged(
            f"{name}: the loss became NaN{where}; training stopped, and no model was saved or "
            "exported (lower the learning rate, the weight decay or the penalty weights)"
        )


def describe_hardware():
    """The machine a run trained on, in words: GPUs (if any), else CPU cores and model."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
        return f"{len(gpus)} GPU(s): " + ", ".join(names)
    processor = platform.processor() or platform.machine()
    return f"CPU: {os.cpu_count()} cores ({processor})"


def evaluate_model(backbone, x, y, seed=0):
    """Clean accuracy, PGD-20 and fast AutoAttack (L-inf, eps 0.1) accuracy, mean exact ||J||_F.

    Fast AutoAttack (APGD-CE then APGD-T) is the robust figure of a run; PGD-20 is the fast one
    beside it. `tfjsigr evaluate` runs the standard AutoAttack.
    """
    eps = PGD_EVALUATION["eps"]
    print(
        f"evaluating on {len(y)} test images (seed {seed}): clean, AutoAttack (fast) and "
        f"PGD-{PGD_EVALUATION['steps']} at L-inf eps {eps}, exact ||J||_F"
    )
    logits = robustness.logits_function(backbone)
    y = np.asarray(y, np.int32)
    x_adv = auto_attack(logits, x, y, eps, version="fast", seed=seed)
    return {
        "clean_accuracy": robustness.accuracy(backbone, x, y),
        "autoattack_accuracy": float(np.mean(predictions(logits, x_adv) == y)),
        "autoattack": {"version": "fast", "norm": "linf", "eps": eps, "examples": len(y), "seed": seed},
        "pgd_accuracy": robustness.pgd_accuracy(backbone, x, y, seed=seed, **PGD_EVALUATION),
        "pgd": {"norm": "linf", **PGD_EVALUATION, "examples": len(y), "seed": seed},
        "mean_jacobian_norm": robustness.mean_jacobian_norm(backbone, x),
        "eval_examples": len(y),
    }


def save_run(run_dir, model, metrics, recipe):
    """Writes model.keras, metrics.json and recipe.json into `run_dir`, replacing a previous run's.

    All three are written in full under temporary names, then renamed into place one right after
    the other: a failure while saving leaves the previous run's files as they were.

    Args:
        run_dir: the run folder (created if needed).
        model: the trained `RegularizedModel`.
        metrics: the run's metrics (JSON-serializable, NumPy scalars allowed).
        recipe: the `Recipe` it was trained with.
    """
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    staged = {}
    try:
        staged[MODEL_FILE] = _temporary_file_beside(run_dir / MODEL_FILE)
        model.save(staged[MODEL_FILE])
        for name, data in ((METRICS_FILE, metrics), (RECIPE_FILE, recipe.to_dict())):
            staged[name] = _temporary_file_beside(run_dir / name)
            text = json.dumps(data, indent=2, sort_keys=True, default=json_default) + "\n"
            staged[name].write_text(text)
        for temporary in staged.values():
            _make_durable_and_readable(temporary)
        for name, temporary in staged.items():
            os.replace(temporary, run_dir / name)
    finally:
        for temporary in staged.values():
            temporary.unlink(missing_ok=True)


def _temporary_file_beside(path):
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix
    )
    os.close(handle)
    return pathlib.Path(temporary)


def _make_durable_and_readable(path):
    with open(path, "rb") as written:
        os.fsync(written.fileno())
    os.chmod(path, 0o644)  # mkstemp's 0600 would hide the files from servers and other users.
