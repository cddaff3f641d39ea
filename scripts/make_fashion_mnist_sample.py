"""Writes the Fashion-MNIST sample shipped in tfjsigr/data/sample/.

Takes a class-balanced subset of the official IDX files (Debian package
`dataset-fashion-mnist`) and writes it back in the same gzipped IDX format, so
one reader serves the sample and the full data set.

Usage: python scripts/make_fashion_mnist_sample.py [SOURCE_DIR] [--train N] [--test N]
"""

import argparse
import gzip
import pathlib

import numpy as np

from tfjsigr.data import idx

OUT = pathlib.Path(__file__).resolve().parents[1] / "tfjsigr" / "data" / "sample"


def balanced_subset(labels, per_class, seed):
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(chosen))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source", nargs="?", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    source = pathlib.Path(args.source)
    OUT.mkdir(parents=True, exist_ok=True)
    for split, prefix, count, seed in [("train", "train", args.train, 0), ("test", "t10k", args.test, 1)]:
        images = idx.read(source / f"{prefix}-images-idx3-ubyte.gz")
        labels = idx.read(source / f"{prefix}-labels-idx1-ubyte.gz")
        keep = balanced_subset(labels, count // 10, seed)
        for kind, array in [("images-idx3", images[keep]), ("labels-idx1", labels[keep])]:
            path = OUT / f"{prefix}-{kind}-ubyte.gz"
            with gzip.GzipFile(path, "wb", mtime=0) as f:
                f.write(idx.encode(array))
            print(f"{split}: wrote {path} {array.shape}")


if __name__ == "__main__":
    main()
