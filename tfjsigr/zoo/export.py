"""A trained model into a zoo entry (Keras, SavedModel, ONNX, card), atomically: `export_entry`
for a model in memory, `export_run` for a run folder, entry or .keras file."""

import datetime
import logging
import os
import pathlib
import platform
import shutil
import tempfile

import numpy as np

from tfjsigr import io
from tfjsigr.checks import one_line
from tfjsigr.zoo import card as card_lib
from tfjsigr.zoo import index as index_lib
from tfjsigr.zoo import layout
from tfjsigr.zoo import verify as verify_lib
from tfjsigr.zoo.layout import (
    MODEL_FILE,
    NEW_SAVED_MODEL,
    ONNX_FILE,
    SAMPLE_FILE,
    SAVED_MODEL_DIR,
    STAGING_SUFFIX,
    check_name,
    list_versions,
)

MAX_PARITY_IMAGES = 1000
STORED_SAMPLE_IMAGES = 256
ONNX_OPSET = 17
FORMAT_VERSION = 1


class ParityError(ValueError):
    """An exported runtime (ONNX, SavedModel, reloaded .keras) disagrees with the Keras model.

    A ValueError, so command-line callers report it as a one-line error like other bad input.
    """


def export_entry(model, zoo_dir, name, recipe, metrics, sample_images, data_description):
    """Exports a trained model as the zoo entry `zoo_dir/<name>/`.

    The entry holds `model.keras`, `saved_model/<version>/` (TF Serving layout; signature
    `serving_default` with float32 NHWC input `image` in [0, 1] and outputs `logits` and
    `probabilities`), `model.onnx` (same names, dynamic batch), the parity sample, `card.json`
    and `README.md`. Everything is built and checked in a hidden temporary directory under
    `zoo_dir`, then swapped into place; re-exporting a name adds a SavedModel version and keeps
    the previous ones. `zoo_dir/index.json` is updated (rebuilt from the cards if absent); a
    corrupt index, lock file or previous card is refused before anything is built.

    Args:
        model: a trained `tfjsigr.RegularizedModel` (or any Keras model mapping images to logits).
        zoo_dir: the zoo directory (created if missing).
        name: entry name: letters, digits, ".", "_" and "-".
        recipe: the recipe as parsed (JSON-serializable dict).
        metrics: dict of figures for the card and index (clean accuracy, PGD accuracy,
            mean ||J||_F, training time, ...).
        sample_images: float32 NHWC test images in [0, 1]; up to 1,000 are used for the parity
            checks and 256 are stored for `verify_entry`.
        data_description: what the model was trained and evaluated on (JSON-serializable).

    Returns:
        The entry directory.

    Raises:
        ValueError: bad name or sample images, logits that are not finite, an existing
            non-entry directory in the way, a corrupt index.json or previous card, or a new
            version whose input shape or number of classes differs from the entry's card.
        ParityError: ONNX, SavedModel or reloaded model.keras logits differ from the model's by
            `verify.PARITY_TOLERANCE` or more; the zoo is left untouched.
    """
    zoo_dir = pathlib.Path(zoo_dir)
    entry = zoo_dir / check_name(name)
    backbone = serving_backbone(model)
    input_shape = _input_shape(backbone, sample_images, entry)
    images = _check_images(sample_images, input_shape)[:MAX_PARITY_IMAGES]
    signature = (input_shape, _classes(model, images, entry))
    # Before minutes of conversion; again under the lock.
    with card_lib.zoo_lock(zoo_dir):
        index_lib.read_index(zoo_dir)
        _check_previous_entry(entry, signature)
    staging = pathlib.Path(tempfile.mkdtemp(dir=zoo_dir, prefix=f".{name}.", suffix=STAGING_SUFFIX))
    staging.chmod(0o755)  # mkdtemp's 0700 would become the entry's mode.
    try:
        parity = write_artifacts(model, backbone, input_shape, images, staging, entry)
        sections = {
            "recipe": recipe,
            "data": data_description,
            "metrics": metrics,
            "parity": parity,
        }
        with card_lib.zoo_lock(zoo_dir):
            _publish(model, entry, staging, sections, signature)
    finally:
        # Holds the previous entry after a swap, the half-built one after a failure.
        _remove(staging)
    return entry


def _remove(path):
    """Deletes a folder tree, or the link itself where `path` is a symbolic link."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def _publish(model, entry, staging, sections, signature):
    """Under the zoo lock: SavedModel versions, card, swap into place, index.

    The index is read before the swap, and the swap is undone if writing it fails, so the zoo
    never holds an entry its index does not list.
    """
    previous = _check_previous_entry(entry, signature)
    _adopt_saved_model_versions(entry, staging, previous)
    versions = list_versions(staging / SAVED_MODEL_DIR)
    card = _card(model, entry.name, versions, signature, sections)
    card["history"] = _history(previous)
    card["artifacts"] = verify_lib.checksums(staging)
    card_lib.write_card(staging, card)
    entries = index_lib.with_record(entry.parent, index_lib.index_record(card))
    _swap_into_place(staging, entry)
    try:
        index_lib.write_index(entry.parent, entries)
    except BaseException:
        _undo_swap(staging, entry)
        raise


def serving_backbone(model):
    """The Keras model that maps images to logits: `model.model` of a RegularizedModel."""
    from tfjsigr.training.regularized_model import RegularizedModel

    return model.model if isinstance(model, RegularizedModel) else model


def serving_function(backbone, input_shape):
    """A `tf.function` from `image` [None, H, W, C] to {"logits", "probabilities"}."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, *input_shape], tf.float32, name=verify_lib.INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(image):
        logits = tf.cast(backbone(image, training=False), tf.float32)
        return {
            "logits": tf.identity(logits, name="logits"),
            "probabilities": tf.nn.softmax(logits, name="probabilities"),
        }

    return serve


def write_artifacts(model, backbone, input_shape, images, directory, entry=None):
    """Writes model.keras, the SavedModel, model.onnx and the parity sample; checks parity.

    The SavedModel goes to `directory/saved_model.new` (its version is decided at the swap).

    Args:
        model: the trained model.
        backbone: its Keras model from images to logits (`serving_backbone(model)`).
        input_shape: (H, W, C) of one image.
        images: float32 parity images.
        directory: where to write (the export's staging directory).
        entry: the entry the artifacts are for, named in errors [default: `directory`].

    Returns:
        Parity figures per runtime (see `verify.parity`).

    Raises:
        ParityError: a runtime differs from the Keras model by the tolerance or more.
    """
    import keras

    directory = pathlib.Path(directory)
    model.save(directory / MODEL_FILE)
    serve = serving_function(backbone, input_shape)
    write_saved_model(backbone, serve, directory / NEW_SAVED_MODEL)
    write_onnx(serve, directory / ONNX_FILE)
    reference = verify_lib.keras_logits(model, images)
    reloaded = keras.saving.load_model(directory / MODEL_FILE)
    reloaded_logits = verify_lib.keras_logits(reloaded, images)
    figures = {
        "onnx": verify_lib.parity(
            reference, verify_lib.onnx_outputs(directory / ONNX_FILE, images)
        ),
        "saved_model": verify_lib.parity(
            reference, verify_lib.saved_model_outputs(directory / NEW_SAVED_MODEL, images)
        ),
        "keras_reload": verify_lib.parity(
            reference, {"logits": reloaded_logits, "probabilities": _softmax(reloaded_logits)}
        ),
    }
    failures = verify_lib.parity_failures(figures)
    if failures:
        raise ParityError(
            f"export of {entry or directory} failed its parity check: {'; '.join(failures)}"
        )
    stored = slice(0, STORED_SAMPLE_IMAGES)
    np.savez(directory / SAMPLE_FILE, images=images[stored], logits=reference[stored])
    return {
        runtime: {**figure, "tolerance": verify_lib.PARITY_TOLERANCE}
        for runtime, figure in figures.items()
    }


def write_saved_model(backbone, serve, directory):
    """A SavedModel with `serving_default` = `serve`, through `keras.export.ExportArchive`."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(backbone)
    archive.add_endpoint("serving_default", serve)
    archive.write_out(str(directory), verbose=False)


def write_onnx(serve, path, opset=ONNX_OPSET):
    """Converts `serve` with tf2onnx, names the batch dimension and runs `onnx.checker`."""
    import onnx
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    proto, _ = tf2onnx.convert.from_function(
        serve, input_signature=serve.input_signature, opset=opset
    )
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def software_versions():
    """Versions of the libraries an export depends on."""
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    import tfjsigr

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tfjsigr": tfjsigr.__version__,
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnx_opset": ONNX_OPSET,
    }


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def model_input_shape(model):
    """The input shape of a model's serving backbone, batch first; None where it is undefined.

    Args:
        model: a Keras model (a `RegularizedModel` is looked through to its backbone).

    Returns:
        A tuple such as (None, 28, 28, 1), or None for a model without one input shape
        (a subclassed model not yet called, or several inputs).
    """
    try:
        shape = serving_backbone(model).input_shape
    except (AttributeError, ValueError):  # Subclassed models may have no defined input.
        return None
    return shape if isinstance(shape, tuple) and shape else None


def _input_shape(backbone, sample_images, entry):
    """(H, W, C) the model takes: its input shape, else (undefined) the sample images'."""
    shape = model_input_shape(backbone)
    if shape is not None and len(shape) == 4 and None not in shape[1:]:
        return tuple(int(d) for d in shape[1:])
    if shape is not None and len(shape) != 4:
        raise ValueError(
            f"export of {entry}: the model takes inputs of shape {list(shape)}, not images "
            "[N, height, width, channels]; the zoo serves image classifiers"
        )
    return tuple(np.shape(sample_images)[1:])


def _check_images(sample_images, input_shape):
    images = np.asarray(sample_images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1:] != tuple(input_shape) or len(images) == 0:
        raise ValueError(
            f"sample_images: expected float32 [N, {', '.join(map(str, input_shape))}] with N >= 1, "
            f"got shape {images.shape}"
        )
    if not np.all(np.isfinite(images)) or images.min() < 0.0 or images.max() > 1.0:
        raise ValueError("sample_images: pixel values must be finite and in [0, 1]")
    return images


def _classes(model, images, entry):
    """The number of classes the model outputs; its logits must be finite."""
    try:
        logits = verify_lib.keras_logits(model, images)
    except Exception as error:  # noqa: BLE001 (Keras raises many types for mismatched inputs)
        reason = one_line(error)[:300]
        raise ValueError(
            f"export of {entry}: the model does not run on the sample images of shape "
            f"{list(images.shape[1:])} ({reason})"
        ) from None
    if logits.ndim != 2:
        raise ValueError(
            f"export of {entry}: the model outputs shape {list(logits.shape[1:])} per image, "
            "not one logit per class"
        )
    if not np.all(np.isfinite(logits)):
        raise ValueError(
            f"export of {entry}: the model's logits are not finite on the sample images "
            "(NaN or infinite weights?); nothing exported"
        )
    return int(logits.shape[-1])


def _check_previous_entry(entry, signature):
    """The card of the entry's current version (None for a new entry), if compatible.

    Raises:
        ValueError: `entry` is not a zoo entry, its card is corrupt, or its recorded input
            shape or number of classes differs from `signature` (serving would take the new
            version for a canary of the old one).
    """
    if entry.is_symlink():
        raise ValueError(
            f"{entry}: is a symbolic link; not replacing it (export into the zoo it points to, "
            "or under another name)"
        )
    if not entry.exists():
        return None
    if not (entry / card_lib.CARD_FILE).exists():
        raise ValueError(
            f"{entry}: exists and is not a zoo entry (no {card_lib.CARD_FILE}); not replacing it"
        )
    try:
        previous = card_lib.read_card(entry)
    except ValueError as error:
        raise ValueError(f"{error}; not adding a version to {entry}") from None
    recorded = _recorded_signature(previous)
    if recorded is not None and recorded != signature:
        raise ValueError(
            f"{entry}: the new model takes {_describe(signature)} but the entry's current "
            f"version takes {_describe(recorded)}; export it under another name (--name)"
        )
    return previous


def _recorded_signature(card):
    """(input shape, classes) recorded in a card, or None where it records no usable one."""
    model = card.get("model")
    try:
        shape = model["input"]["shape"][1:]
        classes = model["outputs"]["logits"][-1]
    except (KeyError, IndexError, TypeError):
        return None
    if not all(index_lib.is_positive_int(d) for d in [*shape, classes]):
        return None
    return tuple(shape), classes


def _describe(signature):
    shape, classes = signature
    return f"images of shape {list(shape)} and outputs {classes} classes"


def _adopt_saved_model_versions(entry, staging, previous):
    """Links the entry's SavedModel versions into `staging`; moves the new one in as the next."""
    versions = list_versions(entry / SAVED_MODEL_DIR)
    root = staging / SAVED_MODEL_DIR
    root.mkdir()
    for version in versions:
        source = entry / SAVED_MODEL_DIR / str(version)
        shutil.copytree(source, root / str(version), copy_function=_link_or_copy)
    version = 1 + max([0, *versions, *_used_versions(previous)])
    os.rename(staging / NEW_SAVED_MODEL, root / str(version))
    return version


def _used_versions(card):
    """The versions a card records as published: its own and its history's.

    A version number is never reused, even after its folder was deleted: a server or client
    holding the old version 2 must not be handed another model as version 2.
    """
    if card is None:
        return []
    history = card.get("history")
    records = [card, *(history if isinstance(history, list) else [])]
    versions = [record.get("version") for record in records if isinstance(record, dict)]
    return [version for version in versions if index_lib.is_positive_int(version)]


def _undo_swap(staging, entry):
    """Puts the previous entry back at `entry` (or removes a new one) after `_swap_into_place`."""
    if staging.exists():
        _swap_into_place(staging, entry)
    else:
        os.rename(entry, staging)


def _swap_into_place(staging, entry):
    """Puts `staging` at `entry`; a previous entry ends up at `staging` (for the caller to delete)."""
    if not entry.exists():
        os.rename(staging, entry)
    elif not _exchange(staging, entry):
        aside = staging.with_name(staging.name + ".old")
        os.rename(entry, aside)
        try:
            os.rename(staging, entry)
        except BaseException:
            os.rename(aside, entry)
            raise
        os.rename(aside, staging)


def _exchange(first, second):
    """Atomically swaps two paths with Linux's renameat2(RENAME_EXCHANGE); False if unsupported."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    return result == 0


def _link_or_copy(source, destination):
    # Artifacts are never modified in place, so the new entry may share the old one's inodes.
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _history(previous):
    """The previous card's versions and metrics, most recent first ([] for a new entry)."""
    if previous is None:
        return []
    summary = {key: previous.get(key) for key in ("version", "created", "metrics", "robustness")}
    history = previous.get("history")
    return [summary, *(history if isinstance(history, list) else [])]


def _card(model, name, versions, signature, sections):
    """The card of a new entry version (history and artifacts are added by the caller)."""
    backbone = serving_backbone(model)
    input_shape, classes = signature
    card = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "version": versions[-1],
        "saved_model_versions": versions,
        **sections,
        "robustness": None,
        "model": {
            "class": type(model).__name__,
            "backbone": backbone.name,
            "parameters": int(backbone.count_params()),
            "trainable_parameters": int(sum(np.prod(w.shape) for w in backbone.trainable_weights)),
            "penalties": [
                getattr(p, "name", type(p).__name__) for p in getattr(model, "penalties", [])
            ],
            "adversarial_training": _name_or_none(getattr(model, "adversarial_training", None)),
            "input": {
                "name": "image",
                "shape": [None, *input_shape],
                "dtype": "float32",
                "range": [0.0, 1.0],
            },
            "outputs": {"logits": [None, classes], "probabilities": [None, classes]},
        },
        "software": software_versions(),
    }
    return io.to_json(card)


def _name_or_none(value):
    return None if value is None else getattr(value, "name", type(value).__name__)


def export_run(model, zoo_dir=layout.DEFAULT_ZOO_DIR, name=None, dataset=None, data_dir=None):
    """Exports a trained model (a run folder, a zoo entry folder or a .keras file) to the zoo.

    A run folder's recipe.json and metrics.json, or an entry folder's card.json, go onto the
    new card; the parity checks run on up to MAX_PARITY_IMAGES test images of the model's data
    set (the one its run recorded).

    Args:
        model: the run folder, entry folder or .keras file.
        zoo_dir: the zoo to export into.
        name: the entry name [default: the recipe's (or entry's), else `layout.default_entry_name`].
        dataset: the data set of the parity images (a name or a path) [default: the one the
            run recorded, else fashion_mnist]; it may not contradict the recorded one.
        data_dir: a folder of local copies of a named data set.

    Returns:
        The entry folder.

    Raises:
        FileNotFoundError, ValueError: a missing or unloadable model, corrupt side files, a bad
            name, a data set the model does not take, or failed parity (nothing exported);
            one line naming the file or argument.
    """
    record = layout.read_record(model)
    data = model_data(record, dataset, data_dir)
    name = _entry_name(name, model, record)
    keras_model = layout.load_model(model)
    images, _, info = data.load("test")
    images = images[:MAX_PARITY_IMAGES]
    _check_takes_images(layout.model_file(model), keras_model, images, info.name)
    card_data = record.data or {**info.to_dict(), "source": data.to_dict(), "test": "parity images"}
    try:
        return export_entry(
            keras_model, zoo_dir, name, record.recipe, record.metrics, images, card_data
        )
    except ParityError as error:  # The message names the entry.
        raise ParityError(f"{error}; nothing exported") from None


def model_data(record, dataset=None, data_dir=None, source=None):
    """The `DataSource` of a model: the one its run or card recorded (`dataset` may not
    contradict it), else `dataset`, else fashion_mnist.

    Args:
        record: the model's `layout.ModelRecord`.
        dataset: a data set name or path given by the user, or None.
        data_dir: a folder of local copies of a named data set.
        source: which sources a named data set may come from [default: the recorded one].

    Raises:
        ValueError: a recorded data set that is malformed or differs from `dataset`.
    """
    from tfjsigr.data.source import DEFAULT_DATASET, DataSource, resolve_data

    recorded = recorded_data(record)
    if recorded is None:
        return resolve_data(dataset or DEFAULT_DATASET, data_dir, source or "auto")
    if dataset is not None and pathlib.Path(dataset).name != pathlib.Path(recorded.dataset).name:
        raise ValueError(
            f"dataset {dataset}: the model was trained on {recorded.dataset} ({record.origin}); "
            "leave it out"
        )
    # A path is recorded relative (or bare); given again, the user's spelling finds it.
    fields = {**recorded.to_dict(), "dataset": dataset or recorded.dataset, "source": source or recorded.source}
    data = DataSource.from_dict(fields, data_dir)
    try:
        return resolve_data(data.dataset, data.data_dir, data.source, data.image_size, data.color_mode)
    except FileNotFoundError as error:
        if not pathlib.Path(data.dataset).suffix and "/" not in data.dataset:
            raise  # A named data set: the message lists every place tried.
        raise FileNotFoundError(
            f"{error} (the data set {record.origin} records; give its path as the dataset)"
        ) from None


def recorded_data(record):
    """The `DataSource` a model's run or card recorded, or None (a bare file).

    Raises:
        ValueError: the record's data set is malformed (naming the file and key).
    """
    from tfjsigr.data.source import DataSource

    source = record.data.get("source") if isinstance(record.data, dict) else None
    key = f"{record.origin}: key 'data.source'"
    if source is None:  # Runs and cards from before data sources were recorded.
        source, key = record.recipe.get("dataset"), f"{record.origin}: key 'dataset'"
        if source is None:
            return None
        source = {"dataset": source}
    try:
        if not isinstance(source.get("dataset"), str):
            raise ValueError(f"must name a data set, got {source.get('dataset')!r}")  # noqa: TRY004
        return DataSource.from_dict(source)
    except (AttributeError, ValueError) as error:
        raise ValueError(f"{key}: {error}") from None


def _entry_name(name, model, record):
    """The entry name: given, else the record's, else the default one; checked."""
    if name is not None:
        origin = "name"
    elif record.name is not None:
        name, origin = record.name, f"{record.origin}: key 'name'"
    else:
        name = layout.default_entry_name(model)
        origin = f"the default entry name, from {layout.model_file(model)} (choose a name)"
    try:
        return check_name(name)
    except ValueError as error:
        raise ValueError(f"{origin}: {error}") from None


def _check_takes_images(model_file, model, images, dataset):
    """ValueError naming the file unless the model takes images of the data set's shape."""
    shape = model_input_shape(model)
    if shape is None:  # Undefined (subclassed): the export finds out by running it.
        return
    if len(shape) != 4:
        raise ValueError(
            f"{model_file}: the model takes inputs of shape {list(shape)}, not images "
            "[N, height, width, channels]; the zoo serves image classifiers"
        )
    if any(d not in (None, size) for d, size in zip(shape[1:], images.shape[1:])):
        raise ValueError(
            f"{model_file}: the model takes images of shape {list(shape[1:])}, but {dataset} "
            f"test images are {list(images.shape[1:])}; name the model's data set (--dataset)"
        )
