"""The data source: one description of a data set that every command reads the same way.

`resolve_data` turns what the user passed into a `DataSource` (how to read the data) and
`DataSource.load` returns a split with a `DataInfo` (what the data looks like, for the
model card). The `dataset` string decides the kind:

- a path to an ``.npz`` file ("npz"): the `keras.datasets` layout, arrays ``x_train,
  y_train, x_test, y_test`` (a split may be absent) and optionally ``class_names``;
- a folder of IDX files ("idx"), named as for MNIST (``train-images-idx3-ubyte[.gz]``...);
- a folder of images ("image_folder"), read with
  `keras.utils.image_dataset_from_directory` (``labels="inferred"``, no shuffle): either
  ``train/`` and ``test/`` folders, each of one subfolder per class, or one subfolder per
  class directly. In the second layout the split is deterministic and stratified: of each
  class's images in file-name order every fifth (the 5th, 10th, ...) is a test image, the
  others train images; a class of 2 to 4 images gives its last one to the test split, a
  class of one image only has a train image. Images are resized (bilinear, aspect ratio not
  kept) to `image_size`, by default the size of the first image of the first class; colour
  is that image's (grayscale or RGB) unless `color_mode` says otherwise;
- anything else is a tensorflow-datasets name ("tfds"): any image-classification data set,
  its image shape, classes and class names taken from the tfds builder's info, which needs
  no network. The pixels come from `datasets.load_split`, so the offline sources of
  `datasets` apply (`data_dir` files, a prepared tfds copy, Debian's Fashion-MNIST, a
  download, the shipped sample). Images of varying size need `image_size`.

A path that exists wins over a tfds name of the same spelling. Images come out float32 NHWC
in [0, 1] (uint8 pixels are divided by 255, float pixels must already lie in [0, 1]),
labels int32 in 0..num_classes-1. Sides of 8 to 1024 pixels are supported.
"""

import dataclasses
import difflib
import gzip
import math
import os
import pathlib
import struct
import zipfile
import zlib

import numpy as np

from tfjsigr.data import datasets, fashion_mnist, idx

KINDS = ("tfds", "npz", "idx", "image_folder")
COLOR_MODES = ("grayscale", "rgb")
SPLITS = datasets.SPLITS
DEFAULT_DATASET = "fashion_mnist"
SAMPLE_ORIGIN = "shipped sample"  # The origin of the sample the package ships.
MIN_SIDE, MAX_SIDE = 8, 1024
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # Keras' list
TEST_EVERY = 5  # single image folder: every fifth image of a class is a test image
_DIGITS = tuple(str(digit) for digit in range(10))
KNOWN_CLASS_NAMES = {
    "fashion_mnist": fashion_mnist.CLASS_NAMES,
    "mnist": _DIGITS,
    "svhn_cropped": _DIGITS,
    # tfds reads CIFAR-10's names from the downloaded files: offline they are "0".."9".
    "cifar10": (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ),
}  # fmt: skip
_GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)  # as tf.image.rgb_to_grayscale


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a data set looks like; its `to_dict` goes in the model card.

    Attributes:
        name: the tfds name, or the npz file's stem or the folder's name.
        kind: one of `KINDS`.
        origin: where the pixels were read from, never an absolute path ("tfds cifar10",
            "Debian dataset-fashion-mnist", "shipped sample", "npz parts.npz",
            "image folder shapes/").
        splits: {split: number of images} for the splits whose size is known.
        image_shape: (height, width, channels) of the images as loaded (after resizing).
        num_classes: number of classes.
        class_names: one string per class id.
    """

    name: str
    kind: str
    origin: str
    splits: dict = dataclasses.field(hash=False)
    image_shape: tuple
    num_classes: int
    class_names: tuple

    def __post_init__(self):
        for field in ("name", "kind", "origin"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                raise ValueError(f"data info {field} must be a non-empty string")
        if self.kind not in KINDS:
            raise ValueError(f"data info kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.splits, dict):
            raise ValueError(f"data info splits must be a dict, got {self.splits!r}")  # noqa: TRY004
        splits = {str(split): _count(n, f"split {split}") for split, n in self.splits.items()}
        object.__setattr__(self, "splits", splits)
        object.__setattr__(self, "image_shape", _image_shape(self.image_shape))
        object.__setattr__(self, "num_classes", _count(self.num_classes, "num_classes", 1))
        object.__setattr__(self, "class_names", _class_names(self.class_names, self.num_classes))

    def to_dict(self):
        """A JSON-able dict (lists for tuples) that `from_dict` reads back."""
        return {
            "name": self.name,
            "kind": self.kind,
            "origin": self.origin,
            "splits": dict(self.splits),
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
        }

    @classmethod
    def from_dict(cls, record):
        """The `DataInfo` a `to_dict` recorded (other keys are ignored).

        Raises:
            ValueError: not a dict, a key missing or a value of the wrong type.
        """
        fields = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(record, dict):
            raise ValueError(f"data info must be a dict, got {type(record).__name__}")  # noqa: TRY004
        missing = [field for field in fields if field not in record]
        if missing:
            raise ValueError(f"data info lacks {', '.join(missing)}")
        try:
            return cls(**{field: record[field] for field in fields})
        except (TypeError, ValueError) as error:
            raise ValueError(f"malformed data info: {error}") from None

    def summary(self):
        """One line for logs: name, origin, split sizes, image shape, classes."""
        sizes = ", ".join(f"{n} {split}" for split, n in self.splits.items())
        return (
            f"{self.name} ({self.origin}): {sizes or 'unknown number of'} images of "
            f"{_shape_text(self.image_shape)}, {self.num_classes} classes"
        )


def _count(value, what, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _image_shape(shape):
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3:
        raise ValueError(f"image_shape must be (height, width, channels), got {shape!r}")
    return tuple(_count(side, "image_shape entry", 1) for side in shape)


def _class_names(names, num_classes):
    if isinstance(names, (str, bytes)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"class_names must be a list of strings, got {names!r}")
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class DataSource:
    """How to read a data set: what the user passed (see the module's docstring).

    Attributes:
        dataset: a tfds name, or a path to an npz file, an IDX folder or an image folder.
        data_dir: a folder of local copies (IDX or npz files) of a named data set, the
            only place it is read from when given (tfds data sets only).
        source: `datasets.SOURCES` entry: which sources a named data set may come from.
        image_size: (height, width) to resize images to, or None for their own size.
        color_mode: "grayscale", "rgb", or None to keep the data's channels.
    """

    dataset: str = DEFAULT_DATASET
    data_dir: str | None = None
    source: str = "auto"
    image_size: tuple | None = None
    color_mode: str | None = None

    def __post_init__(self):
        if isinstance(self.dataset, os.PathLike):
            object.__setattr__(self, "dataset", os.fspath(self.dataset))
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ValueError(f"dataset must be a name or a path, got {self.dataset!r}")
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", os.fspath(self.data_dir) or None)
        if self.source not in datasets.SOURCES:
            raise ValueError(f"source must be one of {datasets.SOURCES}, got {self.source!r}")
        if self.image_size is not None:
            object.__setattr__(self, "image_size", parse_image_size(self.image_size))
        if self.color_mode not in (None, *COLOR_MODES):
            raise ValueError(
                f"color_mode must be one of {COLOR_MODES} or None, got {self.color_mode!r}"
            )

    @property
    def path(self):
        """The dataset string as a path (user folder expanded)."""
        return pathlib.Path(self.dataset).expanduser()

    @property
    def kind(self):
        """One of `KINDS`, from what is on disk.

        Raises:
            FileNotFoundError: the dataset looks like a path that does not exist.
            ValueError: a file that is not an npz archive.
        """
        path = self.path
        if path.is_file():
            if path.suffix.lower() != ".npz":
                raise ValueError(f"{self.dataset} is a file but not an .npz archive")
            return "npz"
        if path.is_dir():
            return "idx" if _idx_splits(path) else "image_folder"
        if self.dataset.lower().endswith(".npz") or self.dataset.startswith(("/", ".", "~")):
            raise FileNotFoundError(f"no such file or folder: {self.dataset}")
        return "tfds"

    @property
    def name(self):
        """The data set's name: the tfds name, the npz stem or the folder name."""
        if self.kind == "tfds":
            return self.dataset
        path = self.path.resolve()
        return path.stem if path.is_file() else path.name

    def info(self):
        """The `DataInfo`. Cheap for files and folders (headers, labels, file counts);
        a tfds data set loads its test split to know where the pixels come from.

        Raises:
            ValueError, FileNotFoundError: as `load`.
        """
        if self.kind == "tfds":
            return self.load("test")[2]
        return _READERS[self.kind][0](self)

    def load(self, split):
        """A whole split in memory.

        Args:
            split: "train" or "test".

        Returns:
            (images, labels, info): float32 NHWC in [0, 1], int32 class ids, `DataInfo`.

        Raises:
            FileNotFoundError: missing path, split or data (the message says what is missing).
            ValueError: unreadable or inconsistent data, or options that do not fit it.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        describe, read = _READERS[self.kind]
        info = describe(self)
        images, labels, info = read(self, split, info)
        images = _convert_channels(images, self.color_mode)
        where = f"{info.name} {split}"
        if images.shape[1:] != info.image_shape:
            raise ValueError(
                f"{where}: images are {_shape_text(images.shape[1:])}, expected "
                f"{_shape_text(info.image_shape)} as in the rest of the data"
            )
        _check_labels(labels, len(images), info.num_classes, where)
        return images, labels, info

    def to_dict(self):
        """A JSON-able record without absolute paths: a path is kept when relative (without
        ".."), its base name otherwise; `data_dir` is not recorded (pass it again)."""
        return {
            "dataset": self._recorded_dataset(),
            "source": self.source,
            "image_size": list(self.image_size) if self.image_size else None,
            "color_mode": self.color_mode,
        }

    def _recorded_dataset(self):
        path = self.path
        if not path.exists() or not (path.is_absolute() or ".." in path.parts):
            return self.dataset
        return path.resolve().name

    @classmethod
    def from_dict(cls, record, data_dir=None):
        """The `DataSource` a `to_dict` recorded (other keys are ignored); nothing is read.

        Args:
            record: the dict.
            data_dir: the data folder to use this time, if any.

        Raises:
            ValueError: not a dict, no dataset, or a bad value.
        """
        if not isinstance(record, dict) or "dataset" not in record:
            raise ValueError(f"a data source record must be a dict with a dataset, got {record!r}")
        fields = ("dataset", "source", "image_size", "color_mode")
        return cls(data_dir=data_dir, **{key: record[key] for key in fields if key in record})


def resolve_data(dataset=None, data_dir=None, source="auto", image_size=None, color_mode=None):
    """The `DataSource` of what the user passed, checked against what is on disk.

    Args:
        dataset: a tfds name or a path (see the module's docstring); None means
            `DEFAULT_DATASET`.
        data_dir: folder of local IDX or npz copies of a named data set.
        source: `datasets.SOURCES` entry, for named data sets.
        image_size: (height, width), an int, or text such as "64x64"; None keeps the size.
        color_mode: "grayscale", "rgb" or None.

    Returns:
        The `DataSource`.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: an unknown tfds name or one that is not image classification, a bad
            option, `data_dir` or `source` given with a path, or a file or folder whose
            description is wrong (see `DataSource.info`; pixels are checked by `load`).
    """
    data = DataSource(dataset or DEFAULT_DATASET, data_dir, source, image_size, color_mode)
    kind = data.kind
    if kind == "tfds":
        datasets.check_data_dir(data.data_dir, data.source)
        if data.dataset not in datasets.DATASETS:
            _builder_facts(data.dataset)
        return data
    if data.data_dir:
        raise ValueError(f"data_dir is for named data sets; {data.dataset} is read directly")
    if data.source != "auto":
        raise ValueError(
            f"source {data.source!r} is for named data sets; {data.dataset} is read directly"
        )
    data.info()  # cheap for files and folders: bad data fails here, not mid-command
    return data


def check_dataset_name(dataset, folders=()):
    """ValueError unless `dataset` is a path (in the working folder or one of `folders`), a
    data set tfjsigr knows, or a tensorflow-datasets name (its builder is looked up offline).
    Nothing is read."""
    path = pathlib.Path(dataset).expanduser()
    looks_like_path = "/" in dataset or dataset.lower().endswith(".npz") or path.exists()
    if looks_like_path or (path.suffix and any((pathlib.Path(f) / path).exists() for f in folders)):
        return
    if dataset not in datasets.DATASETS:
        _builder_facts(dataset)


def parse_image_size(value):
    """(height, width) from an int, a pair, or text such as "64", "64x48" or "64,48".

    Raises:
        ValueError: not one or two whole numbers, or a side outside 8..1024 pixels.
    """
    parts = value
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
    elif isinstance(value, (int, np.integer)):
        parts = (value,)
    try:
        sides = [int(str(part).strip()) for part in parts]
    except (TypeError, ValueError):
        raise ValueError(f"image size must be like 64 or 64x48, got {value!r}") from None
    if len(sides) not in (1, 2):
        raise ValueError(f"image size must be like 64 or 64x48, got {value!r}")
    height, width = sides * (3 - len(sides))
    _check_side(height, width, f"image size {value!r}")
    return height, width


def _check_side(height, width, where):
    if not all(MIN_SIDE <= side <= MAX_SIDE for side in (height, width)):
        raise ValueError(
            f"{where}: {height}x{width} pixels is out of range; each side must be "
            f"{MIN_SIDE} to {MAX_SIDE} pixels (pass an image size to resize)"
        )


def parse_eps(text):
    """A perturbation size in pixel units from "8/255", "0.03", "2/255" or a number.

    Raises:
        ValueError: not a number or fraction, or not a finite value in [0, 1].
    """
    try:
        if isinstance(text, str) and "/" in text:
            numerator, denominator = text.split("/", 1)
            value = float(numerator) / float(denominator)
        else:
            value = float(text)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError(f"epsilon must be a number such as 0.03 or 8/255, got {text!r}") from None
    if isinstance(text, bool) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"epsilon must be a number in [0, 1] (pixels are in [0, 1]), got {text!r}")
    return value


def check_model_matches(input_shape, num_classes, info):
    """ValueError unless a model's input shape (a None side matches any) and class count
    fit the data.

    Args:
        input_shape: the model's input shape, with or without the batch dimension.
        num_classes: the model's number of outputs.
        info: the data's `DataInfo`.
    """
    shape = tuple(input_shape)[-3:]
    fits = len(shape) == 3 and all(m in (None, d) for m, d in zip(shape, info.image_shape))
    if not fits or num_classes != info.num_classes:
        raise ValueError(
            f"model expects {_shape_text(shape)} images and {num_classes} classes; data "
            f"{info.name} has {_shape_text(info.image_shape)} images and "
            f"{info.num_classes} classes"
        )


def _shape_text(shape):
    return "x".join("?" if side is None else str(side) for side in shape)


def _final_shape(data, native, where):
    """The (height, width, channels) images will have once resized and converted."""
    height, width, channels = native
    if data.image_size:
        height, width = data.image_size
    elif height is None or width is None:
        raise ValueError(f"{where}: images vary in size; pass an image size such as 64x64")
    if data.color_mode:
        channels = 1 if data.color_mode == "grayscale" else 3
    _check_side(height, width, where)
    if channels not in (1, 2, 3, 4):
        raise ValueError(f"{where}: images have {channels} channels; 1 to 4 are supported")
    return height, width, channels


def _known_names(name):
    """The `KNOWN_CLASS_NAMES` entry of a name ("fashion-mnist" and "mnist:3.0.1" count)."""
    return KNOWN_CLASS_NAMES.get(name.split(":")[0].lower().replace("-", "_"))


def _class_names_for(name, num_classes):
    """The known class names of the data set when they fit, else "0", "1", ..."""
    known = _known_names(name)
    if known is not None and len(known) == num_classes:
        return known
    return tuple(str(label) for label in range(num_classes))


def _to_pixels(images, where):
    """float32 NHWC in [0, 1] from uint8 or [0, 1] float images, NHW or NHWC."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    if images.dtype.kind != "f":
        raise ValueError(f"{where}: pixels must be uint8 or floats in [0, 1], got {images.dtype}")
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{where}: images contain NaN or infinite pixels")
    if images.size and (images.min() < 0.0 or images.max() > 1.0):
        raise ValueError(
            f"{where}: float pixels must lie in [0, 1], found {images.min():g} to "
            f"{images.max():g} (store uint8 or divide by 255)"
        )
    return images.astype(np.float32, copy=False)


def _fit(images, image_shape):
    """Images resized to the (height, width) of `image_shape` (channels are converted later)."""
    return datasets.resize_images(images, image_shape[:2])


def _convert_channels(images, color_mode):
    channels = images.shape[-1]
    if color_mode == "grayscale" and channels >= 3:
        return (images[..., :3] @ _GRAY_WEIGHTS)[..., None]
    if color_mode == "grayscale" and channels == 2:
        return images[..., :1]
    if color_mode == "rgb" and channels <= 2:
        return np.repeat(images[..., :1], 3, axis=-1)
    if color_mode == "rgb" and channels == 4:
        return images[..., :3]
    return images


def _check_labels(labels, count, num_classes, where):
    if labels.shape != (count,):
        raise ValueError(f"{where}: {count} images but labels shaped {labels.shape}")
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{where}: labels {labels.min()}..{labels.max()} outside 0..{num_classes - 1}"
        )


def _labels(values, where):
    """int32 class ids from an (N,) or (N, 1) array of whole numbers."""
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"{where}: labels must be shaped (N,) or (N, 1), got {values.shape}")
    return datasets._to_labels(values, where)


# --- npz files -----------------------------------------------------------------------


def _open_npz(path):
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        reason = datasets._npz_problem(error)
        raise ValueError(f"{path.name}: cannot read npz ({reason})") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise ValueError(f"{path.name}: cannot read npz (a single array, not an npz archive)")  # noqa: TRY004
    return arrays


def _npz_array(arrays, key, path):
    try:
        return arrays[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        reason = datasets._npz_problem(error)
        raise ValueError(f"{path.name}: cannot read {key} ({reason})") from None


def _npz_header_shape(path, key):
    """The shape of an npz member, from its header only."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                version, np.lib.format.read_array_header_2_0
            )
            return read_header(member)[0]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{path.name}: cannot read {key} ({error})") from None


def _describe_npz(data):
    path = data.path
    with _open_npz(path) as arrays:
        keys = set(arrays.files)
        present = [split for split in SPLITS if {f"x_{split}", f"y_{split}"} & keys]
        if not present:
            raise ValueError(
                f"{path.name}: needs x_train, y_train, x_test, y_test arrays, has {sorted(keys)}"
            )
        labels = {}
        for split in present:
            for key in (f"x_{split}", f"y_{split}"):
                if key not in keys:
                    raise ValueError(f"{path.name}: has {split} arrays but no {key}")
            labels[split] = _labels(
                _npz_array(arrays, f"y_{split}", path), f"{path.name}: y_{split}"
            )
        names = _npz_class_names(arrays, path) if "class_names" in keys else None
    native = _npz_native_shape(path, labels)
    num_classes = _npz_num_classes(path, labels, names)
    return DataInfo(
        name=path.stem,
        kind="npz",
        origin=f"npz {path.name}",
        splits={split: len(y) for split, y in labels.items()},
        image_shape=_final_shape(data, native, path.name),
        num_classes=num_classes,
        class_names=names or _class_names_for(path.stem, num_classes),
    )


def _npz_num_classes(path, labels, names):
    """len(class_names), or the highest label + 1; ValueError for labels outside."""
    everything = np.concatenate(list(labels.values()))
    num_classes = len(names) if names is not None else int(everything.max(initial=0)) + 1
    if everything.size and (everything.min() < 0 or everything.max() >= num_classes):
        raise ValueError(
            f"{path.name}: labels {everything.min()}..{everything.max()} outside "
            f"0..{num_classes - 1} ({num_classes} class names)"
        )
    return num_classes


def _npz_class_names(arrays, path):
    names = _npz_array(arrays, "class_names", path)
    if names.ndim != 1 or names.dtype.kind not in "US" or not len(names):
        raise ValueError(f"{path.name}: class_names must be a 1-D array of strings")
    return tuple(str(n, "utf-8") if isinstance(n, bytes) else str(n) for n in names.tolist())


def _npz_native_shape(path, labels):
    """(height, width, channels) shared by every split's images, from the headers."""
    shapes = {}
    for split, y in labels.items():
        shape = tuple(_npz_header_shape(path, f"x_{split}"))
        if len(shape) not in (3, 4):
            raise ValueError(
                f"{path.name}: x_{split} must be shaped (N, H, W) or (N, H, W, C), got {shape}"
            )
        if shape[0] != len(y):
            raise ValueError(
                f"{path.name}: x_{split} has {shape[0]} images but y_{split} {len(y)} labels"
            )
        shapes[split] = (*shape[1:3], shape[3] if len(shape) == 4 else 1)
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{path.name}: image shapes differ between splits: {shapes}")
    return next(iter(shapes.values()))


def _read_npz(data, split, info):
    path = data.path
    if split not in info.splits:
        raise FileNotFoundError(f"{path.name} has no {split} split (x_{split}, y_{split})")
    with _open_npz(path) as arrays:
        images = _to_pixels(_npz_array(arrays, f"x_{split}", path), f"{path.name}: x_{split}")
        labels = _labels(_npz_array(arrays, f"y_{split}", path), f"{path.name}: y_{split}")
    return _fit(images, info.image_shape), labels, info


# --- IDX folders ---------------------------------------------------------------------


def _idx_splits(folder):
    """{split: (images path, labels path)} of the IDX pairs in a folder."""
    found = {split: fashion_mnist.idx_files(folder, split) for split in SPLITS}
    return {split: files for split, files in found.items() if files is not None}


def _idx_header_shape(path):
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:3] != b"\x00\x00\x08":
                raise ValueError("not an unsigned-byte IDX file")
            dims = f.read(4 * head[3])
            return struct.unpack(f">{head[3]}I", dims)
    except (OSError, EOFError, zlib.error, struct.error, ValueError) as error:
        raise ValueError(f"{path.name}: cannot read IDX header ({error})") from None


def _idx_origin(folder):
    folder = folder.resolve()
    if folder == fashion_mnist.SAMPLE_DIR.resolve():
        return SAMPLE_ORIGIN
    if folder == fashion_mnist.DEBIAN_DIR.resolve():
        return "Debian dataset-fashion-mnist"
    return f"IDX folder {folder.name}/"


def _describe_idx(data):
    folder = data.path
    name = folder.resolve().name
    shapes, counts, highest = {}, {}, 0
    for split, (images, labels) in _idx_splits(folder).items():
        shape = _idx_header_shape(images)
        label_ids = idx.read(labels)
        if len(shape) != 3 or label_ids.ndim != 1 or shape[0] != len(label_ids):
            raise ValueError(
                f"{name}: {split} images {shape} and labels {label_ids.shape} do not match"
            )
        shapes[split], counts[split] = (*shape[1:], 1), len(label_ids)
        highest = max(highest, int(label_ids.max(initial=0)))
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{name}: image shapes differ between splits: {shapes}")
    known = _known_names(name)
    num_classes = len(known) if known and highest < len(known) else highest + 1
    return DataInfo(
        name=name,
        kind="idx",
        origin=_idx_origin(folder),
        splits=counts,
        image_shape=_final_shape(data, next(iter(shapes.values())), name),
        num_classes=num_classes,
        class_names=_class_names_for(name, num_classes),
    )


def _read_idx(data, split, info):
    files = _idx_splits(data.path).get(split)
    if files is None:
        prefix = fashion_mnist.PREFIXES[split]
        raise FileNotFoundError(
            f"{info.name} has no {split} split ({prefix}-images-idx3-ubyte[.gz])"
        )
    images, labels = (idx.read(path) for path in files)
    return _fit(_to_pixels(images, info.name), info.image_shape), labels.astype(np.int32), info


# --- image folders -------------------------------------------------------------------


def _folder_layout(folder):
    """{split or "all": folder of class subfolders} and the sorted class names.

    Raises:
        ValueError: no class subfolders, a class folder without images, or train/ and
            test/ with different classes.
    """
    train, test = folder / "train", folder / "test"
    if train.is_dir() and test.is_dir() and _class_dirs(train):
        layout = {"train": train, "test": test}
    else:
        layout = {"all": folder}
    classes = {part: _class_dirs(path) for part, path in layout.items()}
    for part, names in classes.items():
        _check_classes(folder, layout[part], names)
    if len({tuple(names) for names in classes.values()}) > 1:
        raise ValueError(
            f"image folder {folder.name}: train/ has classes {classes['train']} but test/ "
            f"has {classes['test']}"
        )
    return layout, tuple(classes[next(iter(layout))])


def _class_dirs(folder):
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def _check_classes(folder, part, names):
    where = f"image folder {folder.name}" + ("" if part == folder else f" ({part.name}/)")
    if not names:
        raise ValueError(
            f"{where} has no class subfolders; expected <folder>/<class>/<image> or "
            "<folder>/train/<class>/<image> with <folder>/test/<class>/<image>"
        )
    if len(names) < 2:
        raise ValueError(f"{where} has one class folder ({names[0]}); at least 2 are needed")
    for name in names:
        if not _image_files(part / name):
            raise ValueError(
                f"{where}: class folder {name}/ has no {'/'.join(IMAGE_EXTENSIONS)} images"
            )


def _image_files(folder):
    """Image files under a class folder, recursively, in file-name order (as Keras lists them)."""
    found = []
    for root, _, files in sorted(os.walk(folder), key=lambda walked: walked[0]):
        found += [
            pathlib.Path(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return found


def _test_ranks(count):
    """Which of a class's `count` images (in file-name order) are test images."""
    ranks = [rank for rank in range(count) if rank % TEST_EVERY == TEST_EVERY - 1]
    return set(ranks or ([count - 1] if count >= 2 else []))


def _folder_counts(layout, classes):
    if "all" not in layout:
        return {
            split: sum(len(_image_files(layout[split] / c)) for c in classes) for split in SPLITS
        }
    sizes = [len(_image_files(layout["all"] / c)) for c in classes]
    test = sum(len(_test_ranks(n)) for n in sizes)
    return {"train": sum(sizes) - test, "test": test}


def _first_image(path):
    """(height, width, channels) of an image file: 1 for grayscale, else 3."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            gray = image.mode in ("1", "L", "LA", "I", "I;16", "F")
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"cannot read image {path.name} ({error})") from None
    return height, width, 1 if gray else 3


def _describe_folder(data):
    folder = data.path
    layout, classes = _folder_layout(folder)
    first = _image_files(next(iter(layout.values())) / classes[0])[0]
    name = folder.resolve().name
    return DataInfo(
        name=name,
        kind="image_folder",
        origin=f"image folder {name}/",
        splits=_folder_counts(layout, classes),
        image_shape=_final_shape(data, _first_image(first), f"image folder {name}"),
        num_classes=len(classes),
        class_names=classes,
    )


def _read_folder(data, split, info):
    layout, _ = _folder_layout(data.path)
    images, labels = _keras_folder(layout.get(split, layout.get("all")), info)
    if "all" in layout:
        keep = _split_indices(labels, split)
        images, labels = images[keep], labels[keep]
    return images, labels, info


def _split_indices(labels, split):
    """Indices of a split's images among a single folder's (sorted by class, then file)."""
    ranks = np.zeros(len(labels), np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        ranks[members] = np.arange(len(members))
    counts = np.bincount(labels)
    is_test = np.array(
        [rank in _test_ranks(counts[label]) for rank, label in zip(ranks, labels)], bool
    )
    return np.flatnonzero(is_test if split == "test" else ~is_test)


def _keras_folder(folder, info, batch_size=64):
    import keras
    import tensorflow as tf

    dataset = keras.utils.image_dataset_from_directory(
        folder,
        labels="inferred",
        label_mode="int",
        class_names=list(info.class_names),
        color_mode="grayscale" if info.image_shape[2] == 1 else "rgb",
        batch_size=batch_size,
        image_size=info.image_shape[:2],
        shuffle=False,
        interpolation="bilinear",
        verbose=False,
    )
    images, labels = [], []
    try:
        for image_batch, label_batch in dataset.as_numpy_iterator():
            images.append(np.clip(image_batch / 255.0, 0.0, 1.0).astype(np.float32))
            labels.append(label_batch.astype(np.int32))
    except tf.errors.OpError as error:
        reason = (
            error.message.strip().splitlines()[0] if error.message.strip() else type(error).__name__
        )
        raise ValueError(
            f"image folder {info.name}: cannot decode an image ({reason[:200]})"
        ) from None
    return np.concatenate(images), np.concatenate(labels)


# --- tensorflow-datasets names -------------------------------------------------------


def _builder_facts(name):
    """(native (H, W, C) with None for a varying side, class names, {split: count}) of a
    tfds image-classification data set, from its builder (no network needed).

    Raises:
        ValueError: not a tfds name, or not an (image, class label) data set.
    """
    import tensorflow_datasets as tfds

    try:
        info = tfds.builder(name).info
    except Exception as error:  # noqa: BLE001 (tfds raises many types for unknown names)
        raise ValueError(_unknown_name(name, error)) from None
    keys = info.supervised_keys
    image, label = (info.features[key] if isinstance(key, str) else None for key in keys or (0, 0))
    is_image = isinstance(image, tfds.features.Image) and isinstance(
        label, tfds.features.ClassLabel
    )
    if not is_image:
        raise ValueError(f"tensorflow-datasets {name!r} is not an image-classification data set")
    counts = {split: info.splits[split].num_examples for split in SPLITS if split in info.splits}
    return tuple(image.shape), tuple(label.names), counts


def _unknown_name(name, error):
    import tensorflow_datasets as tfds

    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if type(error).__name__ != "DatasetNotFoundError":
        return f"tensorflow-datasets {name!r}: {text[:200]}"
    close = difflib.get_close_matches(name.split(":")[0], tfds.list_builders(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown data set {name!r}: no such file or folder, and not a tensorflow-datasets name{hint}"


def _tfds_facts(name):
    """`_builder_facts`, falling back to `datasets.DATASETS` when tfds cannot say."""
    spec = datasets.DATASETS.get(name)
    try:
        return _builder_facts(name)
    except (ImportError, ValueError):
        if spec is None:
            raise
    return spec.image_shape, _class_names_for(name, spec.num_classes), {}


def _describe_tfds(data):
    native, names, counts = _tfds_facts(data.dataset)
    num_classes = len(names)
    return DataInfo(
        name=data.dataset,
        kind="tfds",
        origin=f"tfds {data.dataset}",
        splits=counts,
        image_shape=_final_shape(data, native, data.dataset),
        num_classes=num_classes,
        class_names=names
        if _known_names(data.dataset) is None
        else _class_names_for(data.dataset, num_classes),
    )


def _tfds_spec(data, info):
    spec = datasets.DATASETS.get(data.dataset)
    if spec is None:
        native, _, _ = _tfds_facts(data.dataset)
        spec = datasets.DatasetSpec(data.dataset, data.dataset, native, info.num_classes)
    return spec


def _read_tfds(data, split, info):
    spec = _tfds_spec(data, info)
    native = spec.image_shape[:2]
    size = info.image_shape[:2] if tuple(native) != info.image_shape[:2] else None
    images, labels, where = datasets.load_split(
        spec, split, data.source, data.data_dir, image_size=size
    )
    kind, _, place = where.partition(" ")
    counts = {**info.splits, **_counts_at(kind, pathlib.Path(place)), split: len(labels)}
    info = dataclasses.replace(info, origin=_tfds_origin(kind, place, data), splits=counts)
    return images, labels, info


def _tfds_origin(kind, place, data):
    if kind == "tfds":
        return f"tfds {place}"
    if kind in ("sample", "IDX") and not data.data_dir:
        return _idx_origin(pathlib.Path(place))
    return f"{kind} {pathlib.Path(place).name} in the data folder"


def _counts_at(kind, place):
    """{split: count} of the IDX files in the folder a named data set was read from."""
    if kind not in ("sample", "IDX"):
        return {}
    return {split: len(idx.read(files[1])) for split, files in _idx_splits(place).items()}


_READERS = {
    "npz": (_describe_npz, _read_npz),
    "idx": (_describe_idx, _read_idx),
    "image_folder": (_describe_folder, _read_folder),
    "tfds": (_describe_tfds, _read_tfds),
}
