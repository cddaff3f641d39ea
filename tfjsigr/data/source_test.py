import json

import numpy as np
import pytest
from PIL import Image

from tfjsigr.data import fashion_mnist, source
from tfjsigr.data.datasets_test import write_idx

COLORS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}


def write_npz(path, train=6, test=4, shape=(28, 28), classes=3, **extra):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (train, *shape), dtype=np.uint8),
        "y_train": np.arange(train).reshape(-1, 1) % classes,  # (N, 1) as keras' CIFAR-10
        "x_test": rng.integers(0, 256, (test, *shape), dtype=np.uint8),
        "y_test": np.arange(test) % classes,
    }
    np.savez(path, **{**arrays, **extra})
    return path


def write_folder(folder, counts, size=32, mode="RGB"):
    """One class subfolder per color; image i of a class has brightness index (to tell apart)."""
    for name, count in counts.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            color = tuple(min(255, c + i) for c in COLORS[name])
            image = Image.new("RGB", (size + i % 2, size), color)  # sizes differ: resized
            image.convert(mode).save(folder / name / f"{i:03d}.png")
    return folder


def assert_no_absolute_path(record, tmp_path):
    text = json.dumps(record)
    assert str(tmp_path) not in text and '"/' not in text and " /" not in text, text


def one_line_error(error_type, function, *args, match=None, **kwargs):
    with pytest.raises(error_type, match=match) as error:
        function(*args, **kwargs)
    assert "\n" not in str(error.value) and "Traceback" not in str(error.value)
    return str(error.value)


def test_npz_in_keras_layout_round_trips_without_absolute_paths(tmp_path):
    names = np.array(["bolt", "nut", "washer"])
    data = source.resolve_data(str(write_npz(tmp_path / "parts.npz", class_names=names)))
    images, labels, info = data.load("train")
    assert data.kind == "npz" and images.shape == (6, 28, 28, 1) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.max() > 0.9
    assert labels.dtype == np.int32 and labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert info == data.info()
    assert (info.name, info.kind, info.origin) == ("parts", "npz", "npz parts.npz")
    assert info.splits == {"train": 6, "test": 4} and info.image_shape == (28, 28, 1)
    assert info.num_classes == 3 and info.class_names == ("bolt", "nut", "washer")
    record = json.loads(json.dumps(info.to_dict()))
    assert_no_absolute_path(record, tmp_path)
    assert source.DataInfo.from_dict(record) == info
    assert_no_absolute_path(data.to_dict(), tmp_path)
    assert source.DataSource.from_dict(data.to_dict()).dataset == "parts.npz"


def test_npz_without_class_names_resized_to_rgb(tmp_path):
    data = source.resolve_data(
        write_npz(tmp_path / "mine.npz"), image_size="32x40", color_mode="rgb"
    )
    images, _, info = data.load("test")
    assert images.shape == (4, 32, 40, 3) and info.image_shape == (32, 40, 3)
    assert info.class_names == ("0", "1", "2")
    np.testing.assert_allclose(images[..., 0], images[..., 2])  # gray copied to R, G, B


def test_idx_folder_named_fashion_mnist_has_its_class_names(tmp_path):
    write_idx(tmp_path / "fashion-mnist", "train", 7)
    write_idx(tmp_path / "fashion-mnist", "test", 3)
    images, labels, info = source.resolve_data(tmp_path / "fashion-mnist").load("test")
    assert images.shape == (3, 28, 28, 1) and images.max() == 1.0 and labels.tolist() == [0, 1, 2]
    assert (info.kind, info.origin, info.splits) == (
        "idx",
        "IDX folder fashion-mnist/",
        {"train": 7, "test": 3},
    )
    assert info.class_names == fashion_mnist.CLASS_NAMES
    write_idx(tmp_path / "digits", "test", 4)
    info = source.resolve_data(tmp_path / "digits").info()
    assert info.class_names == ("0", "1", "2", "3") and info.splits == {"test": 4}
    one_line_error(FileNotFoundError, source.resolve_data(tmp_path / "digits").load, "train")


def test_rgb_image_folder_with_train_and_test_folders(tmp_path):
    write_folder(tmp_path / "shapes" / "train", {"red": 3, "green": 2, "blue": 2})
    write_folder(tmp_path / "shapes" / "test", {"red": 1, "green": 1, "blue": 2})
    data = source.resolve_data(str(tmp_path / "shapes"))
    images, labels, info = data.load("train")
    assert data.kind == "image_folder" and images.shape == (7, 32, 32, 3)
    assert info.class_names == ("blue", "green", "red") and info.splits == {"train": 7, "test": 4}
    assert info.origin == "image folder shapes/" and info.image_shape == (32, 32, 3)
    dominant = images.mean(axis=(1, 2)).argmax(axis=1)  # channel 2 blue, 1 green, 0 red
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 2] and dominant.tolist() == [2, 2, 1, 1, 0, 0, 0]
    assert data.load("test")[1].tolist() == [0, 0, 1, 2]
    assert_no_absolute_path({**info.to_dict(), **data.to_dict()}, tmp_path)


def test_single_image_folder_is_split_per_class_deterministically(tmp_path):
    data = source.resolve_data(write_folder(tmp_path / "colors", {"red": 6, "green": 5, "blue": 3}))
    train_images, train_labels, info = data.load("train")
    test_images, test_labels, _ = data.load("test")
    assert info.splits == {"train": 11, "test": 3} and len(train_labels) == 11
    assert test_labels.tolist() == [0, 1, 2]  # blue 002, green 004, red 004
    brightness = np.round(test_images.min(axis=(1, 2, 3)) * 255).astype(int)  # image index
    assert brightness.tolist() == [2, 4, 4]
    again = data.load("test")[0]
    np.testing.assert_array_equal(again, test_images)
    seen = {image.tobytes() for image in train_images}
    assert not seen & {image.tobytes() for image in test_images}


def test_grayscale_folder_resized_to_28x28_and_a_224x224_rgb_folder(tmp_path):
    gray = source.resolve_data(
        write_folder(tmp_path / "g", {"red": 2, "blue": 2}, 40, "L"), image_size=28
    )
    images, _, info = gray.load("train")
    assert images.shape == (2, 28, 28, 1) and info.image_shape == (28, 28, 1)
    big = source.resolve_data(
        write_folder(tmp_path / "big", {"red": 3, "green": 2, "blue": 2}, 224)
    )
    images, labels, info = big.load("test")
    assert images.shape == (3, 224, 224, 3) and labels.tolist() == [0, 1, 2]
    assert info.image_shape == (224, 224, 3) and info.splits == {"train": 4, "test": 3}


def test_fashion_mnist_resolves_offline_to_the_debian_copy_or_the_sample(monkeypatch):
    monkeypatch.setenv("TFJSIGR_OFFLINE", "1")
    info = source.resolve_data().info()
    assert info.origin in ("Debian dataset-fashion-mnist", "shipped sample")
    assert info.class_names == fashion_mnist.CLASS_NAMES and info.image_shape == (28, 28, 1)
    assert set(info.splits) == {"train", "test"}
    images, labels, info = source.resolve_data("fashion_mnist", source="sample").load("test")
    assert info.origin == "shipped sample" and info.splits == {"train": 4000, "test": 1000}
    assert images.shape == (1000, 28, 28, 1) and labels.max() == 9


@pytest.fixture
def mock_tfds():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=5):
        yield


@pytest.mark.parametrize(
    "name, shape, names",
    [
        ("cifar10", (32, 32, 3), source.KNOWN_CLASS_NAMES["cifar10"]),
        ("mnist", (28, 28, 1), tuple("0123456789")),
        ("beans", (500, 500, 3), ("angular_leaf_spot", "bean_rust", "healthy")),
    ],
)
def test_any_tfds_name_loads_with_info_from_the_builder(mock_tfds, name, shape, names):
    images, labels, info = source.resolve_data(name).load("test")
    assert images.shape == (5, *shape) and images.dtype == np.float32 and images.max() <= 1.0
    assert (info.kind, info.origin, info.image_shape) == ("tfds", f"tfds {name}", shape)
    assert info.class_names == names and labels.max() < len(names) and info.splits["test"] == 5


def test_tfds_images_of_varying_size_need_an_image_size(mock_tfds):
    images, _, info = source.resolve_data("oxford_flowers102", image_size=24).load("train")
    assert images.shape == (5, 24, 24, 3) and info.num_classes == 102
    one_line_error(ValueError, source.resolve_data("oxford_flowers102").info, match="vary in size")


def test_unknown_or_unfit_tfds_names_are_one_line_errors():
    message = one_line_error(ValueError, source.resolve_data, "cifar100x", match="unknown data set")
    assert "did you mean cifar100" in message
    one_line_error(ValueError, source.resolve_data, "glue", match="not an image-classification")


def corrupt(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 junk")
    return tmp_path / "bad.npz"


def mismatched(tmp_path):
    return write_npz(tmp_path / "m.npz", y_train=np.zeros(5, np.int64))


def with_nan(tmp_path):
    return write_npz(tmp_path / "n.npz", x_train=np.full((6, 28, 28), np.nan, np.float32))


def out_of_range(tmp_path):
    return write_npz(tmp_path / "o.npz", x_train=np.full((6, 28, 28), 255.0))


def tiny(tmp_path):
    return write_npz(tmp_path / "t.npz", shape=(4, 4))


def too_few_names(tmp_path):
    return write_npz(tmp_path / "c.npz", class_names=np.array(["a", "b"]))


def empty_class(tmp_path):
    (write_folder(tmp_path / "f", {"red": 2, "blue": 2}) / "green").mkdir()
    return tmp_path / "f"


def no_classes(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (9, 9)).save(tmp_path / "flat" / "a.png")
    return tmp_path / "flat"


def other_test_classes(tmp_path):
    write_folder(tmp_path / "s" / "train", {"red": 1, "blue": 1})
    write_folder(tmp_path / "s" / "test", {"red": 1, "green": 1})
    return tmp_path / "s"


def broken_image(tmp_path):
    folder = write_folder(tmp_path / "b", {"red": 2, "blue": 6})
    (folder / "blue" / "004.png").write_bytes(b"not a png")
    return folder


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda tmp: tmp / "absent.npz", FileNotFoundError, "no such file or folder"),
        (corrupt, ValueError, "bad.npz: cannot read npz"),
        (mismatched, ValueError, "x_train has 6 images but y_train 5 labels"),
        (with_nan, ValueError, "NaN"),
        (out_of_range, ValueError, "float pixels must lie in \\[0, 1\\], found 255"),
        (tiny, ValueError, "4x4 pixels is out of range"),
        (too_few_names, ValueError, "labels 0..2 outside 0..1"),
        (empty_class, ValueError, "class folder green/ has no"),
        (no_classes, ValueError, "has no class subfolders"),
        (other_test_classes, ValueError, "train/ has classes \\['blue', 'red'\\] but test/"),
        (broken_image, ValueError, "image folder b: cannot decode an image"),
    ],
)
def test_bad_data_is_a_one_line_error(tmp_path, make, error, message):
    def load():
        return source.resolve_data(make(tmp_path)).load("train")

    one_line_error(error, load, match=message)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_size": 5000}, "5000x5000 pixels is out of range"),
        ({"image_size": (0, 28)}, "0x28 pixels is out of range"),
        ({"image_size": "big"}, "image size must be like 64 or 64x48"),
        ({"color_mode": "cmyk"}, "color_mode must be one of"),
        ({"source": "web"}, "source must be one of"),
        ({"dataset": "x.npz", "data_dir": "d"}, "data_dir is for named data sets"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, kwargs, message):
    write_npz(tmp_path / "x.npz")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        one_line_error(ValueError, source.resolve_data, **kwargs, match=message)


@pytest.mark.parametrize(
    "text, value", [("8/255", 8 / 255), ("0.03", 0.03), (" 2/255 ", 2 / 255), (0, 0.0)]
)
def test_parse_eps(text, value):
    assert source.parse_eps(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["nan", "-0.1", "1.5", "1/0", "abc", "", "inf", "8/", None, True])
def test_parse_eps_rejects(text):
    one_line_error(ValueError, source.parse_eps, text, match="epsilon must be")


def cifar_info():
    return source.DataInfo(
        "cifar10", "tfds", "tfds cifar10", {"test": 10}, (32, 32, 3), 10, tuple("abcdefghij")
    )


def test_check_model_matches():
    source.check_model_matches((None, 32, 32, 3), 10, cifar_info())
    source.check_model_matches((None, None, None, 3), 10, cifar_info())
    expected = "model expects 28x28x1 images and 10 classes; data cifar10 has 32x32x3 images and 10 classes"
    assert (
        one_line_error(ValueError, source.check_model_matches, (None, 28, 28, 1), 10, cifar_info())
        == expected
    )
    one_line_error(
        ValueError, source.check_model_matches, (32, 32, 3), 9, cifar_info(), match="9 classes"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"class_names": ["a"]}, "1 class names for 10 classes"),
        ({"kind": "csv"}, "kind must be one of"),
        ({"image_shape": [32, 32]}, "image_shape must be"),
        ({"splits": {"test": -1}}, "split test must be a whole number"),
        ({"num_classes": "10"}, "num_classes must be a whole number"),
        ({"name": None}, "name must be a non-empty string"),
    ],
)
def test_malformed_info_dicts_are_one_line_errors(change, message):
    record = {**cifar_info().to_dict(), **change}
    one_line_error(ValueError, source.DataInfo.from_dict, record, match=message)


def test_info_and_source_dicts_round_trip():
    info = cifar_info()
    assert source.DataInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    one_line_error(ValueError, source.DataInfo.from_dict, {"name": "x"}, match="lacks kind")
    one_line_error(ValueError, source.DataInfo.from_dict, [], match="must be a dict")
    data = source.DataSource(
        "cifar10", data_dir="/data", image_size=(64, 64), color_mode="grayscale"
    )
    record = json.loads(json.dumps(data.to_dict()))
    assert record == {
        "dataset": "cifar10",
        "source": "auto",
        "image_size": [64, 64],
        "color_mode": "grayscale",
    }
    assert source.DataSource.from_dict(record, data_dir="/data") == data
    assert (
        source.DataSource.from_dict({"dataset": "data/shapes"}).to_dict()["dataset"]
        == "data/shapes"
    )
    one_line_error(
        ValueError, source.DataSource.from_dict, {"image_size": 32}, match="with a dataset"
    )
