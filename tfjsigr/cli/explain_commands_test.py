import keras
import numpy as np
import pytest
from PIL import Image

import tfjsigr
from tfjsigr.architectures import small_cnn
from tfjsigr.cli.testing import assert_one_line_error, run

SHAPE = (16, 16, 1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved tiny RegularizedModel (3 classes, 16x16 gray), a PNG and an NPY image."""
    folder = tmp_path_factory.mktemp("explain")
    keras.utils.set_random_seed(0)
    model = tfjsigr.RegularizedModel(
        small_cnn(input_shape=SHAPE, num_classes=3, filters=(2, 4), dense=8)
    )
    model.save(folder / "model.keras")
    pixels = np.random.default_rng(0).uniform(size=SHAPE).astype(np.float32)
    gray = (pixels[..., 0] * 255).astype(np.uint8)
    Image.fromarray(gray).save(folder / "image.png")
    Image.fromarray(gray).convert("RGBA").save(folder / "rgba.png")
    Image.fromarray((pixels[..., 0] * 65535).astype(np.uint16)).save(folder / "deep.png")
    np.save(folder / "image.npy", pixels)
    np.save(folder / "bytes.npy", gray)
    return folder


def nan_weights(model_file, out):
    """Saves the model of `model_file` with every weight NaN as `out`."""
    model = keras.saving.load_model(model_file)
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    model.save(out)


@pytest.mark.parametrize("image", ["image.png", "image.npy", "rgba.png", "deep.png", "bytes.npy"])
def test_explain_writes_the_grid_and_reports_each_target(files, tmp_path, image):
    out = tmp_path / "grid.png"
    result = run("explain", files / "model.keras", files / image, "--target", 2,
                 "--rho", 0.05, "--steps", 4, "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "target 2: probability" in result.output and "target 0" not in result.output


def test_explain_accepts_a_model_folder_and_defaults_to_every_class(files, tmp_path):
    result = run("explain", files, files / "image.npy", "--steps", 2, "--out", tmp_path / "g.png")
    assert result.exit_code == 0, result.output
    assert all(f"target {k}:" in result.output for k in range(3))


def test_explain_bad_input(files, tmp_path):
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"not a zip")
    wrong_shape = tmp_path / "wide.npy"
    np.save(wrong_shape, np.zeros((16, 20), np.float32))
    out_of_range = tmp_path / "bright.npy"
    np.save(out_of_range, np.full(SHAPE, 2.0, np.float32))
    not_png = tmp_path / "text.png"
    not_png.write_text("hello")
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    nan_model = tmp_path / "nan.keras"
    nan_weights(files / "model.keras", nan_model)
    model, image = files / "model.keras", files / "image.npy"
    cases = [
        ((tmp_path / "absent.keras", image), "model not found"),
        ((model, tmp_path / "absent.png"), "image not found"),
        ((corrupt, image), "not a loadable Keras model"),
        ((model, wrong_shape), "the model takes one image of shape (16, 16, 1)"),
        ((model, out_of_range), "pixel values must be in [0, 1]"),
        ((model, not_png), "text.png: not a readable image"),
        ((model, image, "--target", 3), "targets must be classes in [0, 2]"),
        ((model, image, "--rho", "nan"), "rho must be in (0, 1]"),
        ((model, empty), "empty.npy: not a readable .npy array"),
        ((nan_model, image), "nan.keras: the model's outputs are NaN or infinite"),
    ]
    for arguments, expected in cases:
        assert_one_line_error(
            run("explain", *arguments, "--out", tmp_path / "x.png"), expected, only_line=True
        )


def test_explain_writes_a_png_where_it_says(files, tmp_path):
    result = run("explain", files, files / "image.npy", "--target", 1, "--steps", 1,
                 "--out", tmp_path / "grid")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(f"wrote {tmp_path / 'grid.png'}")
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_explain_out_under_a_file_is_a_one_line_error(files, tmp_path):
    (tmp_path / "afile").write_text("")
    result = run("explain", files, files / "image.npy", "--out", tmp_path / "afile" / "x.png")
    assert_one_line_error(result, f"{tmp_path / 'afile'} is a file, not a folder", only_line=True)


@pytest.mark.parametrize(
    "option",
    [("--rho", -1), ("--rho", "inf"), ("--rho", 2), ("--rho", 1e38), ("--steps", 10_001)],
)
def test_explain_refuses_a_rho_above_1_and_endless_steps(files, tmp_path, option):
    out = tmp_path / "x.png"
    result = run("explain", files, files / "image.npy", *option, "--target", 0, "--out", out)
    assert_one_line_error(result, f"Invalid value for '{option[0]}'")
    assert not (tmp_path / "x.png").exists()


def test_explain_refuses_to_overwrite_its_input_image(files, tmp_path, monkeypatch):
    image = tmp_path / "in.png"
    image.write_bytes((files / "image.png").read_bytes())
    monkeypatch.chdir(tmp_path)
    result = run("explain", files, image, "--target", 0, "--out", "in.png")
    assert_one_line_error(result, "out in.png is the input image", only_line=True)
    assert image.read_bytes() == (files / "image.png").read_bytes()
