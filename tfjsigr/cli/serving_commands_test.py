"""Tests of `tfjsigr serving config|check`, `tfjsigr serve` and `tfjsigr predict`."""

import numpy as np
import pytest
from PIL import Image

from tfjsigr.cli.testing import run
from tfjsigr.data.fashion_mnist import CLASS_NAMES
from tfjsigr.serving import create_app, testing


def assert_user_error(result, message):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert message in result.output
    assert result.output.startswith("Error: ")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    zoo_dir = tmp_path_factory.mktemp("zoo")
    return zoo_dir, testing.write_tiny_zoo(zoo_dir, versions=(1, 2))


def test_serving_config_writes_valid_files(zoo, tmp_path):
    result = run("serving", "config", zoo[0], "--out", tmp_path / "serving")
    assert result.exit_code == 0, result.output
    assert "1 model(s): tiny" in result.output
    text = (tmp_path / "serving" / "models.config").read_text()
    assert 'base_path: "/models/tiny/saved_model"' in text
    checked = run("serving", "check", tmp_path / "serving" / "models.config")
    assert checked.exit_code == 0 and "valid, 1 model(s): tiny" in checked.output


def test_serving_check_rejects_a_malformed_config(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { name: 'a' base_pth: '/a' } }")
    assert_user_error(run("serving", "check", path), "not a valid ModelServerConfig")


def test_serving_config_of_a_missing_zoo_is_a_user_error(tmp_path):
    assert_user_error(run("serving", "config", tmp_path / "nope"), "no such zoo directory")


def test_serve_refuses_an_empty_zoo(tmp_path):
    assert_user_error(run("serve", tmp_path), "no SavedModel versions")


def test_predict_reads_png_and_npy_images(zoo, tmp_path):
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    Image.fromarray(pixels[0]).save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", pixels[1:, :, :, None].astype(np.float32) / 255)
    images = pixels[:, :, :, None].astype(np.float32) / 255
    probabilities = zoo[1][("tiny", 1)](images).numpy()
    with testing.running_server(create_app(zoo[0], poll_interval_s=0)) as url:
        result = run("predict", "--url", f"{url}/v1/models/tiny/versions/1", tmp_path / "a.png",
                     tmp_path / "b.npy")
        wrong = run("predict", "--url", f"{url}/v1/models/nope", tmp_path / "a.png")
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.output.strip().splitlines()]
    assert [line[1] for line in lines] == ["0", "0", "1"]
    assert [line[2] for line in lines] == [CLASS_NAMES[i] for i in probabilities.argmax(-1)]
    assert_user_error(wrong, "404")


def test_predict_user_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((5, 5)))
    assert_user_error(run("predict", "--url", "http://127.0.0.1:1/v2/x", tmp_path / "x.npy"),
                      "expected http://HOST:PORT/v1/models/NAME")
    port = testing.free_port()
    assert_user_error(run("predict", "--url", f"http://127.0.0.1:{port}/v1/models/tiny",
                          tmp_path / "x.npy"), "Connection")


def test_predict_rejects_images_of_the_wrong_size(zoo, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((5, 5)))
    with testing.running_server(create_app(zoo[0], poll_interval_s=0)) as url:
        result = run("predict", "--url", f"{url}/v1/models/tiny", tmp_path / "x.npy")
    assert_user_error(result, "shape [5, 5, 1], the model takes [28, 28, 1]")
