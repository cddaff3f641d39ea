"""Tests of `tfjsigr serving config|check`, `tfjsigr serve` and `tfjsigr predict`."""

import socket

import numpy as np
import orjson
import pytest
from PIL import Image

from tfjsigr.cli.testing import assert_one_line_error, run
from tfjsigr.data.fashion_mnist import CLASS_NAMES
from tfjsigr.serving import client as client_lib
from tfjsigr.serving import create_app, testing
from tfjsigr.serving.config_test import fake_zoo


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


def test_serving_config_never_overwrites_a_readme_it_did_not_write(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"tiny": [1]})
    (tmp_path / "README.md").write_text("# My project\n")
    result = run("serving", "config", zoo, "--out", tmp_path)
    assert_one_line_error(result, f"refusing to overwrite {tmp_path / 'README.md'}", only_line=True)
    assert (tmp_path / "README.md").read_text() == "# My project\n"
    assert not (tmp_path / "models.config").exists()


@pytest.mark.parametrize("base_path", ["", "models"])
def test_serving_config_needs_an_absolute_base_path(tmp_path, base_path):
    zoo = fake_zoo(tmp_path / "zoo", {"tiny": [1]})
    result = run("serving", "config", zoo, "--out", tmp_path / "s", "--base-path", base_path)
    assert_one_line_error(result, "'--base-path': base path")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "configures no model"),
        (b"\x89PNG\r\n\x1a\n\xff", "not a text file"),
        (b"model_config_list { config { name: 'a' base_path: 'zoo/a' model_platform: 'tensorflow' } }",
         "relative base_path 'zoo/a'"),
        (b"model_config_list { config { name: 'a' base_path: '/a' model_platform: 'bogus' } }",
         "model_platform 'bogus'"),
    ],
)
def test_serving_check_refuses_configs_tf_serving_cannot_serve(tmp_path, content, message):
    path = tmp_path / "models.config"
    path.write_bytes(content)
    result = run("serving", "check", path)
    assert_one_line_error(result, message, only_line=True)
    assert result.output.startswith(f"Error: {path}: ")


def test_serving_config_of_a_missing_zoo_is_a_user_error(tmp_path):
    assert_user_error(run("serving", "config", tmp_path / "nope"), "no such zoo directory")


def test_serve_refuses_an_empty_zoo(tmp_path):
    assert_user_error(run("serve", tmp_path), "no SavedModel versions")


def test_serve_fails_when_no_model_version_loads(tmp_path):
    version = tmp_path / "broken" / "saved_model" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"not a SavedModel")
    result = run("serve", tmp_path, "--port", 0, "--grpc-port", 0)
    assert_one_line_error(result, "no model version could be loaded (1 failed; broken version 1: ")
    assert "serving" not in result.output


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


def test_predict_scales_a_16_bit_png_like_explain(zoo, tmp_path):
    pixels = np.random.default_rng(6).integers(0, 65536, (28, 28)).astype(np.uint16)
    Image.fromarray(pixels).save(tmp_path / "deep.png")
    logits = zoo[1][("tiny", 1)](pixels[None, :, :, None] / np.float32(65535)).numpy()[0]
    probability = np.exp(logits.max()) / np.exp(logits).sum()
    with testing.running_server(create_app(zoo[0], poll_interval_s=0)) as url:
        result = run("predict", "--url", f"{url}/v1/models/tiny/versions/1", tmp_path / "deep.png")
    assert result.exit_code == 0, result.output
    _, _, label, shown = result.output.split("\t")
    assert label == CLASS_NAMES[logits.argmax()] and abs(float(shown) - probability) < 1e-3


def test_predict_user_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((5, 5)))
    assert_user_error(run("predict", "--url", "http://127.0.0.1:1/v2/x", tmp_path / "x.npy"),
                      "expected http://HOST:PORT/v1/models/NAME")
    assert_one_line_error(run("predict", "--url", "http://[::1:8501/v1/models/tiny",
                              tmp_path / "x.npy"), "Invalid IPv6 URL", only_line=True)
    port = testing.free_port()
    assert_user_error(run("predict", "--url", f"http://127.0.0.1:{port}/v1/models/tiny",
                          tmp_path / "x.npy"), "Connection")


def test_predict_rejects_images_of_the_wrong_size(zoo, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((5, 5)))
    with testing.running_server(create_app(zoo[0], poll_interval_s=0)) as url:
        result = run("predict", "--url", f"{url}/v1/models/tiny", tmp_path / "x.npy")
    assert_user_error(result, "array of shape (5, 5), the model takes one image of shape (28, 28, 1)")


@pytest.mark.parametrize("body", [{}, b"<html>hello</html>"])
def test_predict_refuses_servers_that_are_not_model_servers(tmp_path, body):
    np.save(tmp_path / "x.npy", np.zeros((28, 28), np.float32))
    with testing.answering_server(lambda path: body) as url:
        result = run("predict", "--url", f"{url}/v1/models/tiny", tmp_path / "x.npy")
    assert_one_line_error(result, "did not answer like TF Serving", only_line=True)


def test_predict_needs_a_probabilities_output(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((28, 28), np.float32))

    def answer(path):
        if path.endswith("/metadata"):
            return testing.metadata_answer()
        return {"predictions": [{"logits": [0.0] * 10}]}

    with testing.answering_server(answer) as url:
        result = run("predict", "--url", f"{url}/v1/models/tiny", tmp_path / "x.npy")
    assert_one_line_error(result, "has no 'probabilities' output (it has logits)", only_line=True)


def test_predict_names_the_image_file_it_cannot_send(tmp_path):
    nan = np.zeros((28, 28), np.float32)
    nan[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    (tmp_path / "empty.npy").write_bytes(b"")
    cases = {
        "nan.npy": "nan.npy: holds NaN or infinite values",
        "strings.npy": "strings.npy: holds <U1 values",
        "empty.npy": "empty.npy: not a readable .npy array",
    }
    with testing.answering_server(lambda path: testing.metadata_answer()) as url:
        for name, message in cases.items():
            result = run("predict", "--url", f"{url}/v1/models/tiny", tmp_path / name)
            assert_one_line_error(result, message, only_line=True)


@pytest.mark.parametrize("value", ["inf", "1e308", "nan", "0", "4097"])
def test_serve_refuses_a_body_limit_out_of_range_before_loading_models(tmp_path, value):
    zoo = fake_zoo(tmp_path / "zoo", {"broken": [1]})  # Loading it would fail differently.
    result = run("serve", zoo, "--port", 0, "--max-body-mb", value)
    assert_one_line_error(result, "'--max-body-mb'")


def test_serve_checks_the_address_before_loading_models(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"broken": [1]})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = run("serve", zoo, "--port", port)
    assert_one_line_error(in_use, f"cannot listen on 127.0.0.1:{port}: Address already in use",
                          only_line=True)
    bad_host = run("serve", zoo, "--host", "999.1.1.1", "--port", 0)
    assert_one_line_error(bad_host, "cannot listen on 999.1.1.1:0: ", only_line=True)


def test_serve_and_serving_config_name_a_zoo_entry_given_as_the_zoo(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"plain": [1]})
    for args in (["serve", zoo / "plain"], ["serving", "config", zoo / "plain", "--out", tmp_path / "s"]):
        assert_one_line_error(run(*args), f"{zoo / 'plain'} is a zoo entry", only_line=True)


def test_serving_config_warns_about_every_entry_it_leaves_out(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"jsigr": [1, 99999999999999999999]})
    (zoo / "plain" / "saved_model").mkdir(parents=True)
    (zoo / "index.json").write_text('{"entries": [{"name": "plain", "version": 1}, '
                                    '{"name": "igr", "version": 1}]}')
    result = run("serving", "config", zoo, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, result.output
    assert "99999999999999999999: version number beyond TF Serving's int64 range" in warnings[0]
    assert [w.split(": ")[1] for w in warnings[1:]] == [str(zoo / "igr"), str(zoo / "plain")]
    assert "1 model(s): jsigr" in result.output


def test_serving_config_refuses_a_base_path_that_breaks_the_compose_volume(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"plain": [1]})
    result = run("serving", "config", zoo, "--out", tmp_path / "s", "--base-path", "/x:ro,/etc")
    assert_one_line_error(result, "would break the docker-compose volume")
    assert not (tmp_path / "s").exists()


def test_predict_sends_a_large_batch_as_several_requests(zoo, tmp_path, monkeypatch):
    images = np.random.default_rng(7).random((5, 28, 28, 1), dtype=np.float32)
    np.save(tmp_path / "five.npy", images)

    def body_size(count):
        rows = [{"image": row} for row in images[:count]]
        return len(orjson.dumps({"instances": rows}, option=orjson.OPT_SERIALIZE_NUMPY))

    limit = body_size(2) + 1000
    assert body_size(5) > limit
    app = create_app(zoo[0], poll_interval_s=0, max_body_bytes=limit)
    with testing.running_server(app) as url:
        url = f"{url}/v1/models/tiny/versions/1"
        assert_user_error(run("predict", "--url", url, tmp_path / "five.npy"), "413")
        monkeypatch.setattr(client_lib, "MAX_IMAGES_PER_REQUEST", 2)
        result = run("predict", "--url", url, tmp_path / "five.npy")
    assert result.exit_code == 0, result.output
    expected = zoo[1][("tiny", 1)](images).numpy().argmax(-1)
    lines = [line.split("\t") for line in result.output.strip().splitlines()]
    assert [line[2] for line in lines] == [CLASS_NAMES[i] for i in expected]


def test_serve_checks_the_grpc_address_before_loading_models(tmp_path):
    zoo = fake_zoo(tmp_path / "zoo", {"broken": [1]})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", zoo, "--port", 0, "--grpc-port", port)
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port} (gRPC)", only_line=True)


@pytest.mark.parametrize("option", ["--request-timeout", "--keep-alive"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "3601"])
def test_serve_refuses_timeouts_out_of_range(tmp_path, option, value):
    zoo = fake_zoo(tmp_path / "zoo", {"broken": [1]})
    assert_one_line_error(run("serve", zoo, "--port", 0, option, value), f"'{option}'")


def test_predict_refuses_a_npy_bomb_and_out_of_memory_in_one_line(tmp_path, monkeypatch):
    from tfjsigr.data import image_files
    from tfjsigr.data.image_files_test import write_npy_header

    bomb = write_npy_header(tmp_path / "bomb.npy", (10**8, 28, 28, 1))
    with testing.answering_server(lambda path: testing.metadata_answer()) as url:
        result = run("predict", "--url", f"{url}/v1/models/tiny", bomb)
        assert_one_line_error(result, "more than the limit of", only_line=True)

        def exhausted(path, shape):
            raise MemoryError("Unable to allocate 291. GiB")

        monkeypatch.setattr(image_files, "read_images", exhausted)
        result = run("predict", "--url", f"{url}/v1/models/tiny", bomb)
    assert_one_line_error(result, "out of memory (Unable to allocate 291. GiB)", only_line=True)
