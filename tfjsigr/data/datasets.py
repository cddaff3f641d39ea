"""Named image-classification data sets: tensorflow-datasets first, local files offline.

Sources are tried in order and the first that has the data wins:

1. `data_dir`: IDX files (`train-images-idx3-ubyte[.gz]`, ... as for MNIST) or an npz file
   (`<name>.npz` with `x_train, y_train, x_test, y_test` as in `keras.datasets`, or
   `<split>.npz` with `images, labels`), directly in `data_dir` or in `data_dir/<name>/`;
2. a tensorflow-datasets copy already prepared in the tfds data folder (no network);
3. Debian's `dataset-fashion-mnist` files (Fashion-MNIST only);
4. a tensorflow-datasets download, only when the download host answers within seconds;
5. the sample shipped with the package (Fashion-MNIST only).
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
        data_dir: a folder of IDX or npz files, tried first.
        download: allow a tensorflow-datasets download; None means "if the host answers".
        tfds_dir: tensorflow-datasets' data folder (default: its own, ~/tensorflow_datasets).

    Returns:
        (images, labels, description): float32 NHWC in [0, 1], int32 class ids, and a string
        naming the source.

    Raises:
        ValueError: unknown name, split or source, a `data_dir` that is not a folder, or
            unreadable files or files of the wrong shape.
        FileNotFoundError: no source has the data; the message lists every place tried.
    """
    spec = get_spec(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    check_data_dir(data_dir)
    tried = []
    for attempt in _attempts(spec, source, data_dir, download, tfds_dir):
        found = attempt(split, tried)
        if found is not None:
            images, labels, where = found
            _check(spec, images, labels, where)
            return images, labels, f"{name}/{split} ({len(labels)} images, {where})"
    places = "; ".join(tried) or f"nothing (there is no shipped sample of {name})"
    raise FileNotFoundError(
        f"{name} {split} data not found; tried: {places}. "
        "Pass --data-dir with IDX or npz files, or run once with internet access."
    )


def check_data_dir(data_dir):
    """ValueError unless `data_dir` is None or an existing folder (never silently skipped)."""
    if data_dir and not pathlib.Path(data_dir).is_dir():
        raise ValueError(f"data folder {data_dir} does not exist (or is not a folder)")


def _attempts(spec, source, data_dir, download, tfds_dir):
    """The loaders to try, in order; each takes (split, tried) and returns data or None."""
    local = source in ("auto", "full")
    attempts = []
    if local and data_dir:
        attempts.append(functools.partial(_from_folder, spec, pathlib.Path(data_dir)))
    if local or source == "tfds":
        attempts.append(functools.partial(_from_tfds, spec, tfds_dir, False))
    if local:
        attempts += [functools.partial(_from_folder, spec, folder) for folder in spec.local_dirs]
    if (local or source == "tfds") and download is not False:
        attempts.append(functools.partial(_from_tfds, spec, tfds_dir, download))
    if source in ("auto", "sample") and spec.sample_dir is not None:
        attempts.append(functools.partial(_from_folder, spec, spec.sample_dir))
    return attempts


def _from_folder(spec, directory, split, tried):
    for folder in (directory, directory / spec.name):
        if fashion_mnist.idx_files(folder, split) is not None:
            images, labels = fashion_mnist.read_idx_split(folder, split)
            kind = "sample" if folder == spec.sample_dir else "IDX"
            return images, labels, f"{kind} {folder}"
        for npz in (folder / f"{spec.name}.npz", folder / f"{split}.npz"):
            if npz.is_file():
                return (*_read_npz(npz, split), f"npz {npz}")
    tried.append(f"IDX/npz files in {directory}")
    return None


def _read_npz(path, split):
    try:
        arrays = np.load(path)
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an npz archive")  # noqa: TRY004 (reported below)
        with arrays:
            for image_key, label_key in ((f"x_{split}", f"y_{split}"), ("images", "labels")):
                if image_key in arrays and label_key in arrays:
                    return _to_float_images(arrays[image_key]), arrays[label_key].astype(np.int32)
            keys = sorted(arrays.keys())
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{path}: cannot read npz ({reason})") from None
    raise ValueError(f"{path}: needs x_{split}/y_{split} or images/labels arrays, has {keys}")


def _to_float_images(images):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def _from_tfds(spec, tfds_dir, download, split, tried):
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
        images, labels = tfds.as_numpy(
            tfds.load(
                spec.tfds_name,
                split=split,
                data_dir=tfds_dir,
                download=bool(download),
                as_supervised=True,
                batch_size=-1,
            )
        )
    except Exception as error:  # noqa: BLE001 (tfds raises many types for absent data)
        reason = str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() else ""
        tried.append(f"tfds {'download' if download else 'prepared'} ({where}: {reason[:150]})")
        return None
    finally:
        absl_logger.setLevel(level)
    return _to_float_images(images), labels.astype(np.int32), f"tfds {spec.tfds_name}"


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


def _check(spec, images, labels, where):
    if images.shape[1:] != spec.image_shape:
        raise ValueError(
            f"{where}: images are {images.shape[1:]}, {spec.name} needs {spec.image_shape}"
        )
    if len(images) and (images.min() < 0.0 or images.max() > 1.0):
        raise ValueError(f"{where}: pixels must be uint8 or floats in [0, 1]")
    if len(images) != len(labels) or labels.ndim != 1:
        raise ValueError(f"{where}: {len(images)} images but labels shaped {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise ValueError(f"{where}: labels outside 0..{spec.num_classes - 1}")
