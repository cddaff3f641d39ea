"""Images for a model from PNG, JPEG (any format Pillow reads) or .npy files, as pixels in [0, 1].

The one reader of every command that takes image files (`explain`, `predict`).
"""

import contextlib
import math
import os
import pathlib

import numpy as np

from tfjsigr.checks import one_line

# The most values a .npy file may hold (checked from its header, before reading it): 67 million,
# 256 MB as float32, about 85,000 images of 28x28.
MAX_NPY_VALUES = 2**26
# The largest value of each Pillow mode read as it is; other modes are converted to RGB(A).
_MODE_SCALES = {
    "1": 1.0,
    "L": 255.0,
    "LA": 255.0,
    "RGB": 255.0,
    "RGBA": 255.0,
    "I": 65535.0,  # How Pillow may open a 16-bit gray PNG.
    "I;16": 65535.0,
    "I;16L": 65535.0,
    "I;16B": 65535.0,
    "I;16N": 65535.0,
    "F": 1.0,
}
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as Pillow's convert("L").


def read_images(path, shape):
    """The images of a file, conformed to a model on `shape` images.

    A picture (PNG, JPEG, ...) is one image: 1-bit, 8- or 16-bit gray, palette, gray with
    alpha, RGB or RGBA; fully opaque if it has alpha. A gray picture is repeated for an RGB
    model; an RGB one is converted to gray (exactly, if its channels are equal) for a gray
    model. A .npy file holds one image or a batch, with or without the channel axis of a gray
    model: uint8 in [0, 255] (scaled by 1/255), or bool, integers or floats in [0, 1].

    Args:
        path: the image file.
        shape: (H, W, C) of the model's images.

    Returns:
        float32 [N, H, W, C] in [0, 1], N >= 1.

    Raises:
        ValueError: naming the file: unreadable or truncated, no pixel values (strings,
            objects), NaN or infinite, out of range, empty, a shape that does not fit, or
            (.npy) more than `MAX_NPY_VALUES` values.
    """
    path, shape = pathlib.Path(path), tuple(shape)
    if path.suffix.lower() == ".npy":
        return _batch(_load_array(path), shape, path)
    return _conform_channels(_load_picture(path, shape), shape[-1], path)[None]


def read_image(path, shape):
    """The one image of a file, as `read_images` reads it: float32 [H, W, C] in [0, 1].

    Raises:
        ValueError: as `read_images`, or the file holds a batch of more than one image.
    """
    images = read_images(path, shape)
    if len(images) != 1:
        raise ValueError(f"{path}: holds {len(images)} images, expected one")
    return images[0]


def _load_array(path):
    try:
        with open(path, "rb") as file:
            _check_header(file, path)
            file.seek(0)
            array = np.lib.format.read_array(file, allow_pickle=False)  # .npy only, unlike np.load.
    except (OSError, ValueError, EOFError) as error:
        if str(error).startswith(f"{path}: "):
            raise
        raise ValueError(f"{path}: not a readable .npy array ({one_line(error)})") from None
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    _check_values(array, path)  # Before float32, where large float64 values would become inf.
    return array.astype(np.float32)


def _check_header(file, path):
    """Refuses, before anything is allocated, arrays that are not pixels, too large or cut short."""
    version = np.lib.format.read_magic(file)
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"unsupported .npy format version {version}")
    shape, _, dtype = readers[version](file)
    if dtype.hasobject:
        return  # read_array refuses it without reading on (allow_pickle=False).
    if dtype.kind not in "biuf":
        raise ValueError(f"{path}: holds {dtype} values, not pixel values")
    values = math.prod(shape)
    if values > MAX_NPY_VALUES:
        raise ValueError(
            f"{path}: array of shape {shape} holds {values} values, more than the limit of "
            f"{MAX_NPY_VALUES}; split it into smaller files"
        )
    missing = values * dtype.itemsize - (os.fstat(file.fileno()).st_size - file.tell())
    if missing > 0:
        raise ValueError(f"truncated: {missing} bytes of the array's data are missing")


def _batch(pixels, shape, path):
    """[N, H, W, C] of one image or a batch, the channel axis of a gray model optional."""
    gray = shape[-1] == 1
    batch = pixels[None] if pixels.shape in (shape, shape[:-1]) else pixels
    if gray and batch.shape[1:] == shape[:-1]:
        batch = batch[..., None]
    if batch.shape[1:] != shape:
        raise ValueError(
            f"{path}: array of shape {pixels.shape}, the model takes one image of shape "
            f"{shape} or a batch (N, {', '.join(map(str, shape))})"
        )
    if not len(batch):
        raise ValueError(f"{path}: holds no images")
    return batch


def _load_picture(path, shape):
    """[H, W, channels] in [0, 1]: channels 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA)."""
    from PIL import Image

    with _unreadable_picture(path):
        picture = Image.open(path)
    with picture:
        _check_picture(picture, shape, path)
        with _unreadable_picture(path):
            pixels = _decoded(picture)
    _check_values(pixels, path)
    return pixels


@contextlib.contextmanager
def _unreadable_picture(path):
    from PIL import Image

    try:
        yield
    except (OSError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: not a readable image ({one_line(error)})") from None


def _check_picture(picture, shape, path):
    """One still picture of the model's size (checked before decoding it)."""
    frames = getattr(picture, "n_frames", 1)
    if frames != 1:
        raise ValueError(f"{path}: an animation of {frames} frames, expected one image")
    width, height = picture.size
    if (height, width) != shape[:2]:
        raise ValueError(
            f"{path}: an image of {height}x{width} pixels, the model takes {shape[0]}x{shape[1]}"
        )


def _decoded(picture):
    if picture.mode not in _MODE_SCALES:  # Palette, CMYK, YCbCr, premultiplied alpha, ...
        picture = picture.convert("RGBA" if picture.has_transparency_data else "RGB")
    pixels = np.asarray(picture).astype(np.float32) / _MODE_SCALES[picture.mode]
    return pixels if pixels.ndim == 3 else pixels[..., None]


def _conform_channels(pixels, channels, path):
    """[H, W, channels] of gray or RGB pixels, without their (fully opaque) alpha channel."""
    if pixels.shape[-1] in (2, 4):
        if pixels[..., -1].min() < 1.0:
            raise ValueError(f"{path}: has transparent pixels; save it without transparency")
        pixels = pixels[..., :-1]
    if pixels.shape[-1] == channels:
        return pixels
    if pixels.shape[-1] == 1 and channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    if pixels.shape[-1] == 3 and channels == 1:
        if np.array_equal(pixels[..., :1], pixels[..., 1:2]) and np.array_equal(
            pixels[..., :1], pixels[..., 2:]
        ):
            return pixels[..., :1]
        return np.clip(pixels @ _LUMA, 0.0, 1.0)[..., None]
    kind = "a gray" if pixels.shape[-1] == 1 else "an RGB"
    raise ValueError(f"{path}: {kind} image, the model takes images of {channels} channels")


def _check_values(pixels, path):
    if not np.all(np.isfinite(pixels)):
        raise ValueError(f"{path}: holds NaN or infinite values")
    if pixels.size and (pixels.min() < 0 or pixels.max() > 1):
        raise ValueError(f"{path}: pixel values must be in [0, 1] (or uint8 in [0, 255])")

