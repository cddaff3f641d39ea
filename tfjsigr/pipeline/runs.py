"""Trains a recipe with `model.fit`: seeds, distribution strategies, resume, NaN guard, metrics."""

import contextlib
import dataclasses
import json
import pathlib
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from tfjsigr import data as data_lib
from tfjsigr import io
from tfjsigr.evaluation.metrics import describe_hardware, run_figures
from tfjsigr.pipeline.checkpoints import AtomicBackupAndRestore, checkpointed_epoch
from tfjsigr.pipeline.recipes import build_optimizer
from tfjsigr.pipeline.strategies import make_strategy, worker_index
from tfjsigr.training.regularized_model import RegularizedModel
from tfjsigr.zoo.layout import (
    BACKUP_DIR,
    CARD_FILE,
    CHECKPOINT_METADATA_FILE,
    METRICS_FILE,
    MODEL_FILE,
    RECIPE_FILE,
    zoo_folder_around,
)


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
    data: object = None


@dataclasses.dataclass
class TrainingData:
    """A recipe's data in memory: seeded subsets of the train and test splits, and what they are.

    `described` says where each split came from (no machine path), for the run's metrics and
    the model card.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: object
    source: object
    described: dict

    def card_section(self):
        """The `data` section of a card: the data set's description, its source and subsets."""
        return {**self.info.to_dict(), "source": self.source.to_dict(), **self.described}


def load_training_data(recipe, data_dir=None, source="auto", data=None):
    """The `TrainingData` of a recipe, subsets seeded.

    Args:
        recipe: the `Recipe`.
        data_dir, source: where a named data set comes from (see `tfjsigr.data.source`).
        data: a `DataSource` to read instead of the recipe's (`resolve_data`), or a
            `TrainingData` already loaded (a zoo build loads each data set once), whose
            subsets are then drawn for this recipe.
    """
    if not isinstance(data, TrainingData):
        data = load_all(data or recipe.data_source(data_dir, source))
    info = data.info
    x_train, y_train, train_from = _seeded_subset(data.x_train, data.y_train, recipe.train_examples, recipe.seed)
    x_test, y_test, test_from = _seeded_subset(data.x_test, data.y_test, recipe.eval_examples, recipe.seed + 1)
    described = {
        "train": f"{train_from} of {info.name} train ({info.origin})",
        "test": f"{test_from} of {info.name} test ({info.origin})",
    }
    return TrainingData(x_train, y_train, x_test, y_test, info, data.source, described)


def load_all(data):
    """Both splits of a `DataSource`, every image, as a `TrainingData` (recipes then draw their
    own subsets from it)."""
    x_train, y_train, info = data.load("train")
    x_test, y_test, _ = data.load("test")
    described = {split: f"all {len(y)} images" for split, y in (("train", y_train), ("test", y_test))}
    return TrainingData(x_train, y_train, x_test, y_test, info, data, described)


class DataCache:
    """Each data set, resolved and loaded once (both splits, every image): a zoo build's
    recipes and a tune study's trials all train and evaluate on the same data, whatever
    appears on the machine meanwhile."""

    def __init__(self, data_dir=None, source="auto", dataset=None):
        self.data_dir, self.source, self.dataset = data_dir, source, dataset
        self.loaded = {}

    def get(self, recipe):
        """The `TrainingData` of a recipe's data set (`dataset` instead, when given), loaded on
        first use."""
        key = (self.dataset or recipe.dataset, recipe.image_size, recipe.color_mode)
        if key not in self.loaded:
            self.loaded[key] = load_all(recipe.data_source(self.data_dir, self.source, self.dataset))
        return self.loaded[key]


def _seeded_subset(x, y, count, seed):
    if count is None or count >= len(y):
        return x, y, f"all {len(y)} images"
    order = np.random.default_rng(seed).permutation(len(y))[:count]
    return x[order], y[order], f"{count} images drawn with seed {seed}"


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
    data=None,
):
    """Trains a recipe, resuming from `run_dir`'s checkpoint if a previous run was interrupted.

    Args:
        recipe: a `tfjsigr.pipeline.recipes.Recipe` (apply `quick_variant()` first for a quick run).
        run_dir: folder for the checkpoint (`backup/`, with a record of its recipe), and for
            `model.keras`, `metrics.json` and `recipe.json`, which replace the previous run's
            only once training has succeeded; not in a zoo (see `check_run_dir`). None trains without checkpoints
            or files.
        strategy: "default", "mirrored" or "multi-worker" (TF_CONFIG).
        data_dir: folder of IDX or npz files of a named data set, its only source when given.
        source: data source ("auto", "full", "tfds", "sample"; see `tfjsigr.data.load_dataset`).
        data: a `DataSource` or loaded `TrainingData` instead of the recipe's data set.
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
    is_chief, worker = worker_index() if strategy == "multi-worker" else (True, 0)
    keras.utils.set_random_seed(recipe.seed)
    data = load_training_data(recipe, data_dir, source, data)
    with distribution.scope():
        model = build_model(recipe, data.info.image_shape, data.info.num_classes)
    train_ds = data_lib.make_dataset(
        data.x_train,
        data.y_train,
        recipe.batch_size,
        shuffle=True,
        seed=recipe.seed,
        augment=_augment(recipe, data.info),
    )
    all_callbacks = [keras.callbacks.TerminateOnNaN(), *callbacks]
    resumed_from = 0
    if run_dir is not None:
        backup = _prepare_checkpoint_dir(run_dir, recipe, is_chief, worker)
        resumed_from = checkpointed_epoch(backup)
        # Kept until the model is saved: a kill while evaluating or saving loses no training.
        all_callbacks.append(AtomicBackupAndRestore(backup, delete_checkpoint=False))
    print(
        f"training {recipe.name}: {data.described['train']}, {recipe.epochs} epochs, batch {recipe.batch_size}"
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
        "train_examples": len(data.y_train),
        "replicas": int(distribution.num_replicas_in_sync),
        "hardware": describe_hardware(),
        "data": data.card_section(),
        "final_loss": _last(history.history.get("loss")),
        "final_train_accuracy": _last(history.history.get("accuracy")),
    }
    if evaluate:
        metrics.update(run_figures(model.model, data.x_test, data.y_test, recipe.seed, data.info))
    if run_dir is not None:
        if is_chief:
            save_run(run_dir, model, metrics, recipe)
        shutil.rmtree(backup, ignore_errors=True)
    return TrainingResult(model, metrics, history.history, data.x_test, data.y_test, is_chief, data)


def format_metrics(metrics):
    """The headline figures of a training run, one per line."""
    pgd = metrics.get("pgd", {})
    lines = [
        f"clean accuracy:   {metrics['clean_accuracy']:.4f} ({metrics['eval_examples']} test images)"
    ]
    autoattack = metrics.get("autoattack")
    if autoattack:
        lines.append(
            f"AutoAttack:       {metrics['autoattack_accuracy']:.4f} ({autoattack['version']} "
            f"version, L-inf eps {autoattack['eps']}, {autoattack['examples']} images, seed "
            f"{autoattack['seed']})"
        )
    lines += [
        (
            f"PGD-20 (fast):    {metrics['pgd_accuracy']:.4f} (PGD-{pgd.get('steps')} L-inf eps "
            f"{pgd.get('eps')}, {pgd.get('examples')} images, seed {pgd.get('seed')})"
        ),
        f"mean ||J||_F:     {metrics['mean_jacobian_norm']:.3f}",
        f"training time:    {metrics['train_seconds']:.1f} s",
    ]
    return "\n".join(lines)


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
    io.write_json_atomic(backup / RECIPE_FILE, recipe.to_dict())
    return backup


def _discard_checkpoint_of_another_recipe(backup, recipe):
    """Resuming is only valid for the same recipe: a changed one starts from scratch."""
    if not (backup / CHECKPOINT_METADATA_FILE).exists():
        return
    recorded = _read_resume_record(backup)
    if _resumable_part(recorded) != _resumable_part(recipe.to_dict()):
        print(f"{backup.parent}: the recipe changed since the interrupted run; starting over")
        shutil.rmtree(backup)


def _read_resume_record(backup):
    """The recipe (a dict) a checkpoint was trained with; ValueError naming the file otherwise."""
    try:
        return io.read_json_object(backup / RECIPE_FILE, "record of the checkpoint's recipe")
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"{error}; delete {backup} to start over") from None


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


def _augment(recipe, info):
    """The recipe's `augment` setting, else the data set's default (crop/flip for CIFAR-10)."""
    if recipe.augment is not None:
        return recipe.augment
    known = data_lib.DATASETS.get(info.name)
    return bool(known and known.augment)


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
    with contextlib.ExitStack() as staged:
        model.save(staged.enter_context(io.atomic_path(run_dir / MODEL_FILE)))
        for name, data in ((METRICS_FILE, metrics), (RECIPE_FILE, recipe.to_dict())):
            text = json.dumps(data, indent=2, sort_keys=True, default=io.json_default) + "\n"
            staged.enter_context(io.atomic_path(run_dir / name)).write_text(text)
