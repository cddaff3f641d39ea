"""Fashion-MNIST from IDX files: a given folder, Debian's package, or the shipped sample."""

import pathlib

import numpy as np

from tfjsigr.data import idx

SAMPLE_DIR = pathlib.Path(__file__).resolve().parent / "sample"
DEBIAN_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
PREFIXES = {"train": "train", "test": "t10k"}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def idx_files(directory, split):
    """The (images, labels) IDX paths of a split in a folder, each gzipped or not.

    Returns:
        The two paths (the .gz one where both forms are there), or None when neither file
        is in the folder.

    Raises:
        FileNotFoundError: only one of the two files is there (never silently skipped).
    """
    directory = pathlib.Path(directory)
    stems = (f"{PREFIXES[split]}-images-idx3-ubyte", f"{PREFIXES[split]}-labels-idx1-ubyte")
    images, labels = (_idx_file(directory, stem) for stem in stems)
    if images is None and labels is None:
        return None
    if images is None or labels is None:
        present, missing = (labels, stems[0]) if images is None else (images, stems[1])
        raise FileNotFoundError(f"{directory}: has {present.name} but no {missing}[.gz]")
    return images, labels


def _idx_file(directory, stem):
    for path in (directory / f"{stem}.gz", directory / stem):
        if path.is_file():
            return path
    return None


def read_idx_split(directory, split):
    """Images (N, 28, 28, 1) float32 in [0, 1] and labels (N,) int32 from a folder of IDX files."""
    files = idx_files(directory, split)
    if files is None:
        raise FileNotFoundError(f"no {PREFIXES[split]}-*-ubyte[.gz] IDX files in {directory}")
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
        source: "auto" (Debian's full data set, then the shipped sample), "full" (Debian's
            files, error if absent), or "sample".
        data_dir: a folder holding the IDX files (gzipped or not); when given, the data
            comes from it only (with source "auto" or "full").

    Returns:
        (images, labels, description): float32 (N, 28, 28, 1) in [0, 1], int32 (N,), and a
        string naming where they came from.

    Raises:
        ValueError: unknown split or source, data_dir with source "sample", or corrupt files.
        FileNotFoundError: no files at any of the places tried (all named in the message).
    """
    if split not in PREFIXES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if source not in ("auto", "full", "sample"):
        raise ValueError(f"source must be 'auto', 'full' or 'sample', got {source!r}")
    if data_dir and source == "sample":
        raise ValueError(f"data folder {data_dir} cannot be used with source 'sample'")
    candidates = _candidates(source, data_dir)
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


def _candidates(source, data_dir):
    """The folders to look in, in order: only `data_dir` when given."""
    if data_dir:
        return [pathlib.Path(data_dir)]
    full = [DEBIAN_DIR] if source in ("auto", "full") else []
    return full + ([SAMPLE_DIR] if source in ("auto", "sample") else [])
