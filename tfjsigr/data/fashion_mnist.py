"""Fashion-MNIST from IDX files: a given folder, Debian's package, or the shipped sample."""

import pathlib

import numpy as np

from tfjsigr.data import idx

SAMPLE_DIR = pathlib.Path(__file__).resolve().parent / "sample"
DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
_PREFIX = {"train": "train", "test": "t10k"}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def idx_files(directory, split):
    """The (images, labels) IDX paths of a split in a folder, gzipped or not, or None."""
    directory = pathlib.Path(directory)
    prefix = _PREFIX[split]
    for suffix in (".gz", ""):
        images = directory / f"{prefix}-images-idx3-ubyte{suffix}"
        labels = directory / f"{prefix}-labels-idx1-ubyte{suffix}"
        if images.is_file() and labels.is_file():
            return images, labels
    return None


def read_idx_split(directory, split):
    """Images (N, 28, 28, 1) float32 in [0, 1] and labels (N,) int32 from a folder of IDX files."""
    files = idx_files(directory, split)
    if files is None:
        raise FileNotFoundError(f"no {_PREFIX[split]}-*-ubyte[.gz] IDX files in {directory}")
    images, labels = (idx.read(path) for path in files)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{directory}: images {images.shape} and labels {labels.shape} do not match")
    if labels.max(initial=0) >= 10:
        raise ValueError(f"{directory}: labels outside 0..9")
    return (images[..., None].astype(np.float32) / 255.0), labels.astype(np.int32)


def load_fashion_mnist(split="train", source="auto", data_dir=None):
    """Loads Fashion-MNIST from local IDX files.

    Args:
        split: "train" or "test".
        source: "auto" (data_dir, then Debian's full data set, then the shipped sample),
            "full" (data_dir or Debian's files, error if absent), or "sample".
        data_dir: a folder holding the four IDX files (gzipped or not).

    Returns:
        (images, labels, description): float32 (N, 28, 28, 1) in [0, 1], int32 (N,), and a
        string naming where they came from.

    Raises:
        ValueError: unknown split or source.
        FileNotFoundError: no files at any of the places tried (all named in the message).
    """
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if source not in ("auto", "full", "sample"):
        raise ValueError(f"source must be 'auto', 'full' or 'sample', got {source!r}")
    candidates = []
    if source in ("auto", "full"):
        candidates += [pathlib.Path(data_dir)] if data_dir else []
        candidates += [DEBIAN_DIR]
    if source in ("auto", "sample"):
        candidates += [SAMPLE_DIR]
    for directory in candidates:
        if idx_files(directory, split) is not None:
            images, labels = read_idx_split(directory, split)
            kind = "sample" if directory == SAMPLE_DIR else "full"
            return images, labels, f"fashion_mnist/{split} ({kind}, {len(labels)} images, {directory})"
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"Fashion-MNIST {split} IDX files not found; tried: {tried}. "
        "Install Debian's dataset-fashion-mnist or pass data_dir."
    )
