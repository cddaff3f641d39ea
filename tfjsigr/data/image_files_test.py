import numpy as np
import pytest
from PIL import Image

from tfjsigr.data.image_files import read_image, read_images

GRAY, RGB = (8, 8, 1), (8, 8, 3)
PIXELS = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
UNIT = PIXELS.astype(np.float32) / 255  # PIXELS as the reader scales them.


def save_picture(path, array, mode=None):
    """Saves `array` as a picture (converted to `mode` when given) and returns its path."""
    picture = Image.fromarray(array)
    (picture.convert(mode) if mode else picture).save(path)
    return path


@pytest.mark.parametrize("mode", [None, "RGB", "RGBA", "LA", "P"])
def test_pictures_of_a_gray_image_read_as_its_gray_pixels(tmp_path, mode):
    path = save_picture(tmp_path / "image.png", PIXELS, mode)
    np.testing.assert_array_equal(read_images(path, GRAY), UNIT[None, :, :, None])


def test_a_16_bit_png_is_scaled_not_clipped(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 65536, (8, 8)).astype(np.uint16)
    path = save_picture(tmp_path / "deep.png", pixels)
    np.testing.assert_allclose(read_image(path, GRAY)[..., 0], pixels / 65535.0, rtol=1e-6)


def test_gray_and_color_pictures_conform_to_the_model_channels(tmp_path):
    gray = save_picture(tmp_path / "gray.png", PIXELS)
    color = np.stack([PIXELS, 255 - PIXELS, PIXELS // 2], axis=-1)
    colored = save_picture(tmp_path / "color.png", color)
    np.testing.assert_array_equal(read_image(gray, RGB), np.repeat(UNIT[..., None], 3, -1))
    np.testing.assert_array_equal(read_image(colored, RGB), color.astype(np.float32) / 255)
    luma = np.asarray(Image.fromarray(color).convert("L")) / 255.0
    np.testing.assert_allclose(read_image(colored, GRAY)[..., 0], luma, atol=1 / 255)


def test_npy_uint8_is_scaled_and_a_batch_may_leave_out_the_gray_channel(tmp_path):
    np.save(tmp_path / "bytes.npy", PIXELS)
    np.save(tmp_path / "batch.npy", np.stack([PIXELS, PIXELS]) / 255.0)
    np.testing.assert_array_equal(read_images(tmp_path / "bytes.npy", GRAY), UNIT[None, ..., None])
    batch = read_images(tmp_path / "batch.npy", GRAY)
    assert batch.shape == (2, *GRAY) and batch.dtype == np.float32


def write_bad_files(folder):
    """{file name: expected error} of files no reader may accept for a GRAY model."""
    save_picture(folder / "clear.png", np.stack([PIXELS, PIXELS], -1), "LA")
    save_picture(folder / "wide.png", np.zeros((8, 9), np.uint8))
    (folder / "cut.png").write_bytes((save_picture(folder / "x.png", PIXELS)).read_bytes()[:60])
    (folder / "text.png").write_text("hello")
    frames = [Image.fromarray(PIXELS), Image.fromarray(255 - PIXELS)]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:])
    (folder / "empty.npy").write_bytes(b"")
    np.save(folder / "full.npy", np.zeros(GRAY, np.float32))
    (folder / "cut.npy").write_bytes((folder / "full.npy").read_bytes()[:-10])
    np.savez(folder / "zip.npz", a=np.zeros(GRAY))
    (folder / "zip.npy").write_bytes((folder / "zip.npz").read_bytes())
    arrays = {
        "strings.npy": np.array(["a", "b"]),
        "objects.npy": np.array([None, 1], dtype=object),
        "nan.npy": np.full(GRAY, np.nan),
        "inf.npy": np.full(GRAY, np.inf),
        "bright.npy": np.full(GRAY, 1.5),
        "ints.npy": np.full(GRAY, 255, np.int64),
        "none.npy": np.zeros((0, *GRAY), np.float32),
        "wide.npy": np.zeros((8, 9), np.float32),
    }
    for name, array in arrays.items():
        np.save(folder / name, array)
    return {
        "clear.png": "has transparent pixels",
        "wide.png": "an image of 8x9 pixels, the model takes 8x8",
        "cut.png": "not a readable image",
        "text.png": "not a readable image",
        "moving.gif": "an animation of 2 frames",
        "empty.npy": "not a readable .npy array",
        "cut.npy": "not a readable .npy array",
        "zip.npy": "not a readable .npy array",
        "strings.npy": "holds <U1 values, not pixel values",
        "objects.npy": "not a readable .npy array",
        "nan.npy": "holds NaN or infinite values",
        "inf.npy": "holds NaN or infinite values",
        "bright.npy": "pixel values must be in [0, 1]",
        "ints.npy": "pixel values must be in [0, 1]",
        "none.npy": "holds no images",
        "wide.npy": "array of shape (8, 9), the model takes one image of shape (8, 8, 1)",
    }


def test_bad_files_are_value_errors_naming_the_file(tmp_path):
    for name, expected in write_bad_files(tmp_path).items():
        with pytest.raises(ValueError, match="^" + str(tmp_path / name)) as raised:
            read_images(tmp_path / name, GRAY)
        assert expected in str(raised.value), name


def test_read_image_refuses_a_batch(tmp_path):
    np.save(tmp_path / "two.npy", np.zeros((2, *GRAY), np.float32))
    with pytest.raises(ValueError, match="two.npy: holds 2 images, expected one"):
        read_image(tmp_path / "two.npy", GRAY)


def write_npy_header(path, shape, descr="<f4", data=b""):
    """A .npy file whose header claims `shape`, followed by `data` only."""
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(
            file, {"descr": descr, "fortran_order": False, "shape": shape}
        )
        file.write(data)
    return path


def test_a_npy_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path, monkeypatch):
    bomb = write_npy_header(tmp_path / "bomb.npy", (10**8, 28, 28, 1))
    assert bomb.stat().st_size < 200
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: pytest.fail("allocated"))
    with pytest.raises(ValueError, match="more than the limit of 67108864") as raised:
        read_images(bomb, (28, 28, 1))
    assert str(raised.value).startswith(f"{bomb}: array of shape (100000000, 28, 28, 1) holds ")


def test_a_npy_cut_short_or_of_strings_is_refused_from_its_header(tmp_path):
    short = write_npy_header(tmp_path / "short.npy", (2, 8, 8, 1), data=b"\0" * 100)
    with pytest.raises(ValueError, match="short.npy: not a readable .npy array \\(truncated: 412 bytes"):
        read_images(short, GRAY)
    strings = write_npy_header(tmp_path / "strings.npy", (1000000,), descr="<U100")
    with pytest.raises(ValueError, match="strings.npy: holds <U100 values"):
        read_images(strings, GRAY)
