"""Named image-classification data sets: tensorflow-datasets first, local files offline.

With a `data_dir`, every split comes from it: IDX files (`train-images-idx3-ubyte[.gz]`,
... as for MNIST) or an npz file (`<name>.npz` with `x_train, y_train, x_test, y_test` as in
`keras.datasets`, or `<split>.npz` with `images, labels`), directly in `data_dir` or in
`data_dir/<name>/`; a split missing there, or a corrupt file, is an error. Without one,
sources are tried in order and the first that has the data wins:

1. a tensorflow-datasets copy already prepared in the tfds data folder (no network);
2. Debian's `dataset-fashion-mnist` files (Fashion-MNIST only);
3. a tensorflow-datasets download, only when the download host answers within seconds;
4. the sample shipped with the package (Fashion-MNIST only).
"""

import dataclasses
import functools
import logging
import os
import pathlib
import socket
import threading
import zipfile
import zlib

import numpy as np

from tfjsigr.checks import one_line
from tfjsigr.data import fashion_mnist

SPLITS = ("train", "test")
SOURCES = ("auto", "full", "tfds", "sample")
_DOWNLOAD_HOST = ("storage.googleapis.com", 443)
# Set (e.g. by the test suite) to never try a download nor probe the network.
OFFLINE_VARIABLE = "TFJSIGR_OFFLINE"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a named data set looks like and where its offline copies live."""

    name: str
    tfds_name: str
    image_shape: tuple
    num_classes: int
    local_dirs: tuple = ()
    sample_dir: pathlib.Path = None
    augment: bool = False


DATASETS = {
    "mnist": DatasetSpec("mnist", "mnist", (28, 28, 1), 10),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist",
        "fashion_mnist",
        (28, 28, 1),
        10,
        local_dirs=(fashion_mnist.DEBIAN_DIR,),
        sample_dir=fashion_mnist.SAMPLE_DIR,
    ),
    "cifar10": DatasetSpec("cifar10", "cifar10", (32, 32, 3), 10, augment=True),
    "svhn_cropped": DatasetSpec("svhn_cropped", "svhn_cropped", (32, 32, 3), 10),
}


def get_spec(name):
    """The `DatasetSpec` of a named data set; ValueError naming the known ones otherwise."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None


def load_dataset(name, split="train", source="auto", data_dir=None, download=None, tfds_dir=None):
    """Loads a whole split of a named data set into memory.

    Args:
        name: "mnist", "fashion_mnist", "cifar10" or "svhn_cropped".
        split: "train" or "test".
        source: "auto" (every source in the module's order), "full" (all but the shipped
            sample), "tfds" (tensorflow-datasets only) or "sample" (the shipped sample only).
        data_dir: a folder of IDX or npz files, the only source when given (with source
            "auto" or "full").
        download: allow a tensorflow-datasets download; None means "if the host answers".
        tfds_dir: tensorflow-datasets' data folder (default: its own, ~/tensorflow_datasets).

    Returns:
        (images, labels, description): float32 NHWC in [0, 1], int32 class ids, and a string
        naming the source.

    Raises:
        ValueError: unknown name, split or source, a `data_dir` that is not a folder or is
            given with source "tfds" or "sample", or unreadable files or files of the wrong
            shape.
        FileNotFoundError: no source has the data (the message lists every place tried),
            or `data_dir` lacks the split (or one file of an IDX pair).
    """
    images, labels, where = load_split(get_spec(name), split, source, data_dir, download, tfds_dir)
    return images, labels, f"{name}/{split} ({len(labels)} images, {where})"


def load_split(
    spec, split, source="auto", data_dir=None, download=None, tfds_dir=None, image_size=None
):
    """Loads a whole split of the data set a `DatasetSpec` describes (any tensorflow-datasets
    image-classification data set, not only those of `DATASETS`).

    Args:
        spec: the `DatasetSpec`; None in its `image_shape` means "varies" (then `image_size`
            is required).
        split, source, data_dir, download, tfds_dir: as for `load_dataset`.
        image_size: (height, width) to resize every image to (bilinear, as Keras does), or
            None to keep the data set's own size.

    Returns:
        (images, labels, where): float32 NHWC in [0, 1], int32 class ids, and where they came
        from: "tfds <name>", "IDX <folder>", "sample <folder>" or "npz <file>".

    Raises:
        ValueError, FileNotFoundError: as for `load_dataset`, and a varying image size
            without `image_size`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if image_size is None and None in spec.image_shape[:2]:
        raise ValueError(f"{spec.name} images vary in size; pass an image size such as 64x64")
    check_data_dir(data_dir, source)
    if data_dir:
        found = _from_data_dir(spec, pathlib.Path(data_dir), split)
    else:
        found = _from_sources(spec, split, source, download, tfds_dir, image_size)
    images, labels, where = found
    expected = spec.image_shape
    if image_size is not None:
        images = resize_images(images, image_size)
        expected = (*image_size, spec.image_shape[2])
    _check(spec, images, labels, where, expected)
    return images, labels, where


def resize_images(images, size, chunk=1024):
    """Images resized to `size` (bilinear, as Keras' image loading), clipped to [0, 1].

    Args:
        images: float32 NHWC in [0, 1] (uint8 is scaled first).
        size: (height, width).
        chunk: images resized at a time (bounds the memory used on top of the result).

    Returns:
        float32 NHWC in [0, 1]; the input itself when it already has that size.
    """
    images = _to_float_images(images)
    size = tuple(int(side) for side in size)
    if images.shape[1:3] == size:
        return images
    import tensorflow as tf

    resized = np.empty((len(images), *size, images.shape[-1]), np.float32)
    for start in range(0, len(images), chunk):
        batch = tf.image.resize(images[start : start + chunk], size, method="bilinear")
        resized[start : start + chunk] = np.clip(batch.numpy(), 0.0, 1.0)
    return resized


def check_data_dir(data_dir, source="auto"):
    """ValueError unless `data_dir` is None, or an existing folder and a source that reads it
    (a data folder is never silently skipped).

    Args:
        data_dir: the --data-dir folder, or None.
        source: the --source the data is loaded with.
    """
    if not data_dir:
        return
    if source not in ("auto", "full"):
        only = "the shipped sample" if source == "sample" else "tensorflow-datasets"
        raise ValueError(
            f"--data-dir {data_dir} cannot be combined with --source {source}, which reads "
            f"only {only}; drop one of the two"
        )
    if not pathlib.Path(data_dir).is_dir():
        raise ValueError(f"data folder {data_dir} does not exist (or is not a folder)")


def _from_data_dir(spec, data_dir, split):
    """A split from the data folder, which must have it."""
    for folder in (data_dir, data_dir / spec.name):
        found = _read_folder(spec, folder, split)
        if found is not None:
            return found
    prefix = fashion_mnist.PREFIXES[split]
    raise FileNotFoundError(
        f"data folder {data_dir} (--data-dir) has no {spec.name} {split} data: expected "
        f"{prefix}-images-idx3-ubyte[.gz] with {prefix}-labels-idx1-ubyte[.gz], "
        f"{spec.name}.npz or {split}.npz, in it or in {data_dir / spec.name}"
    )


def _from_sources(spec, split, source, download, tfds_dir, image_size=None):
    tried = []
    for attempt in _attempts(spec, source, download, tfds_dir, image_size):
        found = attempt(split, tried)
        if found is not None:
            return found
    places = "; ".join(tried) or f"nothing (there is no shipped sample of {spec.name})"
    raise FileNotFoundError(
        f"{spec.name} {split} data not found; tried: {places}. "
        "Pass --data-dir with IDX or npz files, or run once with internet access."
    )


def _attempts(spec, source, download, tfds_dir, image_size=None):
    """The loaders to try, in order; each takes (split, tried) and returns data or None."""
    local = source in ("auto", "full")
    attempts = []
    if local or source == "tfds":
        attempts.append(functools.partial(_from_tfds, spec, tfds_dir, False, image_size))
    if local:
        attempts += [functools.partial(_from_folder, spec, folder) for folder in spec.local_dirs]
    if (local or source == "tfds") and download is not False:
        attempts.append(functools.partial(_from_tfds, spec, tfds_dir, download, image_size))
    if source in ("auto", "sample") and spec.sample_dir is not None:
        attempts.append(functools.partial(_from_folder, spec, spec.sample_dir))
    return attempts


def _from_folder(spec, directory, split, tried):
    for folder in (directory, directory / spec.name):
        found = _read_folder(spec, folder, split)
        if found is not None:
            return found
    tried.append(f"IDX/npz files in {directory}")
    return None


def _read_folder(spec, folder, split):
    """(images, labels, where) of a split from the IDX or npz files in a folder, or None
    when it has none (a corrupt or half IDX pair is an error)."""
    if fashion_mnist.idx_files(folder, split) is not None:
        images, labels = fashion_mnist.read_idx_split(folder, split)
        kind = "sample" if folder == spec.sample_dir else "IDX"
        return images, labels, f"{kind} {folder}"
    for npz in (folder / f"{spec.name}.npz", folder / f"{split}.npz"):
        if npz.is_file():
            return (*_read_npz(npz, split), f"npz {npz}")
    return None


def _read_npz(path, split):
    try:
        arrays = np.load(path)
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an npz archive")  # noqa: TRY004 (reported below)
        with arrays:
            for image_key, label_key in ((f"x_{split}", f"y_{split}"), ("images", "labels")):
                if image_key in arrays and label_key in arrays:
                    labels = _to_labels(arrays[label_key], f"{path}: {label_key}")
                    return _to_float_images(arrays[image_key]), labels
            keys = sorted(arrays.keys())
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{path}: cannot read npz ({_npz_problem(error)})") from None
    raise ValueError(f"{path}: needs x_{split}/y_{split} or images/labels arrays, has {keys}")


def _npz_problem(error):
    reason = one_line(error)
    if "allow_pickle" in reason:  # numpy's advice would run the file's pickled code.
        return "not an npz archive of plain numeric arrays"
    return reason


def _to_labels(labels, where):
    """Integer class ids; fractional, non-numeric or too large labels are errors, not cast."""
    labels = np.asarray(labels)
    is_numeric = labels.dtype.kind in "iuf"
    if not is_numeric or not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
        raise ValueError(f"{where}: labels must be whole class ids, got {labels.dtype} values")
    if labels.size and np.abs(labels).max() > np.iinfo(np.int32).max:
        raise ValueError(f"{where}: labels beyond the int32 range")
    return labels.astype(np.int32)


def _to_float_images(images):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def _from_tfds(spec, tfds_dir, download, image_size, split, tried):
    import tensorflow_datasets as tfds

    where = tfds_dir or "tfds default folder"
    if download is None and os.environ.get(OFFLINE_VARIABLE):
        tried.append(f"tfds download (skipped: {OFFLINE_VARIABLE} is set)")
        return None
    if download is None and not host_answers(*_DOWNLOAD_HOST):
        tried.append(f"tfds download (offline: {_DOWNLOAD_HOST[0]} unreachable)")
        return None
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)  # tfds warns about every empty folder it looks in
    try:
        dataset = tfds.load(
            spec.tfds_name,
            split=split,
            data_dir=tfds_dir,
            download=bool(download),
            as_supervised=True,
        )
        images, labels = tfds_arrays(dataset, image_size)
    except Exception as error:  # noqa: BLE001 (tfds raises many types for absent data)
        reason = str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() else ""
        tried.append(f"tfds {'download' if download else 'prepared'} ({where}: {reason[:150]})")
        return None
    finally:
        absl_logger.setLevel(level)
    return _to_float_images(images), labels, f"tfds {spec.tfds_name}"


def tfds_arrays(dataset, image_size=None, batch_size=256):
    """All of a tensorflow-datasets (image, label) split as numpy arrays, read in batches.

    Args:
        dataset: a `tf.data.Dataset` of (uint8 HWC image, integer label) pairs.
        image_size: (height, width) to resize each image to before batching (required when
            the images differ in size), or None.
        batch_size: images decoded at a time.

    Returns:
        (images, labels): uint8 NHWC and int32 arrays.
    """
    import tensorflow as tf

    if image_size is not None:
        size = tuple(int(side) for side in image_size)
        dataset = dataset.map(
            lambda image, label: (_resize_to_uint8(image, size), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    images, labels = [], []
    for image_batch, label_batch in dataset.batch(batch_size).prefetch(2).as_numpy_iterator():
        images.append(image_batch)
        labels.append(label_batch)
    if not images:
        shape = [side or 0 for side in dataset.element_spec[0].shape]
        return np.zeros((0, *shape), np.uint8), np.zeros(0, np.int32)
    return np.concatenate(images), np.concatenate(labels).astype(np.int32)


def _resize_to_uint8(image, size):
    import tensorflow as tf

    resized = tf.image.resize(image, size, method="bilinear")
    return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)


def host_answers(host, port, timeout=3.0):
    """Whether a TCP connection to host:port opens within `timeout` s (DNS included)."""
    result = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result)


def _check(spec, images, labels, where, image_shape=None):
    """ValueError unless the arrays fit `image_shape` (default the spec's; None matches any
    size), [0, 1] and the spec's classes."""
    expected = image_shape or spec.image_shape
    have = images.shape[1:]
    if len(have) != 3 or any(want not in (None, side) for side, want in zip(have, expected)):
        raise ValueError(f"{where}: images are {have}, {spec.name} needs {expected}")
    if len(images) and (images.min() < 0.0 or images.max() > 1.0):
        raise ValueError(f"{where}: pixels must be uint8 or floats in [0, 1]")
    if len(images) != len(labels) or labels.ndim != 1:
        raise ValueError(f"{where}: {len(images)} images but labels shaped {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise ValueError(f"{where}: labels outside 0..{spec.num_classes - 1}")
