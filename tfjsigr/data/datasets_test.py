import gzip
import io
import time

import numpy as np
import pytest

from tfjsigr.data import datasets, idx, make_dataset


def write_npz(path, train=6, test=4, shape=(28, 28)):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (train, *shape), dtype=np.uint8),
        y_train=rng.integers(0, 10, train),
        x_test=rng.integers(0, 256, (test, *shape), dtype=np.uint8),
        y_test=rng.integers(0, 10, test),
    )


def write_idx(folder, split, count):
    folder.mkdir(parents=True, exist_ok=True)
    prefix = {"train": "train", "test": "t10k"}[split]
    images = np.full((count, 28, 28), 255, dtype=np.uint8)
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx.encode(images)))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx.encode(np.arange(count) % 10))
    )


@pytest.fixture
def no_system_copies(monkeypatch, tmp_path):
    """No Debian copy, an empty tfds folder and no network: only what the test provides."""
    spec = datasets.DATASETS["fashion_mnist"]
    missing = tmp_path / "no-debian"
    monkeypatch.setitem(
        datasets.DATASETS,
        "fashion_mnist",
        datasets.dataclasses.replace(spec, local_dirs=(missing,)),
    )
    monkeypatch.setattr(datasets, "host_answers", lambda *args, **kwargs: False)
    monkeypatch.delenv(datasets.OFFLINE_VARIABLE, raising=False)  # probe (stubbed) as users do
    return tmp_path / "tfds"


def test_data_dir_wins_over_the_other_sources(tmp_path, no_system_copies):
    write_npz(tmp_path / "fashion_mnist.npz", train=6)
    images, labels, description = datasets.load_dataset(
        "fashion_mnist", "train", data_dir=tmp_path, tfds_dir=no_system_copies
    )
    assert images.shape == (6, 28, 28, 1) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and labels.dtype == np.int32
    assert "npz" in description


def test_idx_files_in_a_named_subfolder(tmp_path, no_system_copies):
    write_idx(tmp_path / "mnist", "test", 5)
    images, labels, _ = datasets.load_dataset(
        "mnist", "test", data_dir=tmp_path, tfds_dir=no_system_copies
    )
    assert images.shape == (5, 28, 28, 1) and images.max() == 1.0
    assert list(labels) == [0, 1, 2, 3, 4]


def test_falls_back_to_the_shipped_sample_then_errors_naming_every_place(no_system_copies):
    _, labels, description = datasets.load_dataset(
        "fashion_mnist", "test", tfds_dir=no_system_copies
    )
    assert "sample" in description and len(labels) == 1000
    with pytest.raises(FileNotFoundError) as error:
        datasets.load_dataset("fashion_mnist", "test", "full", tfds_dir=no_system_copies)
    message = str(error.value)
    assert "\n" not in message
    for place in ("tfds prepared", "no-debian", "tfds download (offline"):
        assert place in message


def test_an_empty_data_dir_is_an_error_not_a_fall_back_to_other_data(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        datasets.load_dataset("fashion_mnist", "test", data_dir=tmp_path)
    assert f"data folder {tmp_path} (--data-dir) has no fashion_mnist test data" in str(error.value)
    assert "t10k-images-idx3-ubyte[.gz]" in str(error.value)


def test_every_split_comes_from_the_data_dir_and_a_corrupt_file_there_is_an_error(tmp_path):
    write_idx(tmp_path, "train", 4)
    write_idx(tmp_path, "test", 3)
    images = tmp_path / "t10k-images-idx3-ubyte"
    images.write_bytes(gzip.decompress((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())[:-5])
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    _, labels, description = datasets.load_dataset("fashion_mnist", "train", data_dir=tmp_path)
    assert len(labels) == 4 and str(tmp_path) in description
    with pytest.raises(ValueError, match=f"{images}: header announces 2352 values"):
        datasets.load_dataset("fashion_mnist", "test", data_dir=tmp_path)


def test_half_an_idx_pair_is_an_error_naming_the_missing_file(tmp_path):
    write_idx(tmp_path, "test", 3)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="has t10k-images-idx3-ubyte.gz but no t10k-labels-idx1-ubyte"):
        datasets.load_dataset("fashion_mnist", "test", data_dir=tmp_path)


@pytest.mark.parametrize("source", ["sample", "tfds"])
def test_a_data_dir_with_a_source_that_ignores_it_is_an_error(tmp_path, source):
    write_idx(tmp_path, "test", 3)
    with pytest.raises(ValueError, match=f"--data-dir {tmp_path} cannot be combined with --source {source}"):
        datasets.load_dataset("fashion_mnist", "test", source, data_dir=tmp_path)


def test_fractional_npz_labels_are_an_error_not_truncated(tmp_path):
    np.savez(tmp_path / "test.npz", images=np.zeros((2, 28, 28), np.uint8), labels=[1.0, 2.5])
    with pytest.raises(ValueError, match="labels: labels must be whole class ids"):
        datasets.load_dataset("fashion_mnist", "test", data_dir=tmp_path)


def test_an_offline_tfds_attempt_fails_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="tfds prepared"):
        datasets.load_dataset("cifar10", "test", "tfds", tfds_dir=tmp_path, download=False)
    assert time.perf_counter() - start < 30


def test_wrong_shape_and_unknown_names_are_value_errors(tmp_path):
    write_npz(tmp_path / "cifar10.npz", shape=(28, 28))
    with pytest.raises(ValueError, match="needs \\(32, 32, 3\\)"):
        datasets.load_dataset("cifar10", "train", data_dir=tmp_path)
    np.savez(tmp_path / "mnist.npz", x_test=np.full((2, 28, 28), 255.0), y_test=np.zeros(2))
    with pytest.raises(ValueError, match="pixels must be uint8 or floats in \\[0, 1\\]"):
        datasets.load_dataset("mnist", "test", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        datasets.load_dataset("imagenet")
    with pytest.raises(ValueError, match="split"):
        datasets.load_dataset("mnist", "validation")


def test_pipeline_shuffle_is_seeded_and_augmentation_keeps_shape_and_range():
    images = np.random.default_rng(0).random((20, 32, 32, 3), dtype=np.float32)
    labels = np.arange(20, dtype=np.int32)

    def first_epoch(seed):
        dataset = make_dataset(images, labels, 5, shuffle=True, seed=seed, augment=True)
        return [(x.numpy(), y.numpy()) for x, y in dataset]

    batches = first_epoch(1)
    assert [y.tolist() for _, y in batches] == [y.tolist() for _, y in first_epoch(1)]
    assert [y.tolist() for _, y in batches] != [y.tolist() for _, y in first_epoch(2)]
    assert sorted(np.concatenate([y for _, y in batches]).tolist()) == list(range(20))
    assert all(x.shape[1:] == (32, 32, 3) and x.min() >= 0 and x.max() <= 1 for x, _ in batches)


def test_offline_variable_skips_the_download_without_probing(no_system_copies, monkeypatch):
    def probe(*args, **kwargs):
        raise AssertionError("the network was probed")

    monkeypatch.setattr(datasets, "host_answers", probe)
    monkeypatch.setenv(datasets.OFFLINE_VARIABLE, "1")
    with pytest.raises(FileNotFoundError, match="TFJSIGR_OFFLINE is set"):
        datasets.load_dataset("fashion_mnist", "test", "full", tfds_dir=no_system_copies)


def test_a_data_dir_that_does_not_exist_is_an_error_not_skipped(tmp_path):
    with pytest.raises(ValueError, match=f"data folder {tmp_path / 'absent'} does not exist"):
        datasets.load_dataset("fashion_mnist", "test", data_dir=tmp_path / "absent")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ValueError, match="is not a folder"):
        datasets.load_dataset("fashion_mnist", "test", data_dir=tmp_path / "file")


def npy_bytes():
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"PK\x03\x04 junk after the zip magic", "File is not a zip file"),
        (b"", "No data left in file"),
        (npy_bytes(), "a single array, not an npz archive"),
        (b"junk that is neither zip nor npy", "not an npz archive of plain numeric arrays"),
    ],
)
def test_an_unreadable_npz_is_a_value_error_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "fashion_mnist.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path}: cannot read npz \\({reason}\\)") as error:
        datasets.load_dataset("fashion_mnist", "test", data_dir=tmp_path)
    assert "allow_pickle" not in str(error.value)


def test_an_idx_file_that_is_only_a_header_is_a_value_error_naming_it(tmp_path):
    write_idx(tmp_path, "test", 3)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(b"\x00\x00\x08\x03"))
    with pytest.raises(ValueError, match=f"{images}: truncated IDX header"):
        datasets.load_dataset("fashion_mnist", "test", data_dir=tmp_path)
