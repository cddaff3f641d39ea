"""Tests of the local server over real HTTP on a free loopback port."""

import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import orjson
import pytest
import requests

from tfjsigr.serving import Client, ServingError, create_app, testing


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    zoo_dir = tmp_path_factory.mktemp("zoo")
    models = testing.write_tiny_zoo(zoo_dir, versions=(1, 2))
    return zoo_dir, models


@pytest.fixture(scope="module")
def url(zoo):
    with testing.running_server(create_app(zoo[0], poll_interval_s=0)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)


def expected(models, version, images):
    logits = models[("tiny", version)](images, training=False).numpy()
    return logits


@pytest.mark.parametrize("request_format", ["instances", "inputs"])
@pytest.mark.parametrize("input_name", [None, "image"])
def test_predictions_equal_the_in_process_model(zoo, url, images, request_format, input_name):
    with Client(url) as client:
        outputs = client.predict("tiny", images, request_format=request_format,
                                 input_name=input_name)
    logits = expected(zoo[1], 2, images)
    np.testing.assert_allclose(outputs["logits"], logits, atol=1e-5)
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(outputs["probabilities"], softmax, atol=1e-5)


def test_responses_have_tf_serving_format(url, images):
    body = {"instances": images[:2].tolist()}
    rows = requests.post(f"{url}/v1/models/tiny:predict", json=body).json()
    assert list(rows) == ["predictions"] and len(rows["predictions"]) == 2
    assert sorted(rows["predictions"][0]) == ["logits", "probabilities"]
    body = {"inputs": {"image": images[:2].tolist()}}
    columns = requests.post(f"{url}/v1/models/tiny:predict", json=body).json()
    assert sorted(columns["outputs"]) == ["logits", "probabilities"]
    assert np.asarray(columns["outputs"]["logits"]).shape == (2, 10)


def test_versions_and_labels_address_their_model(zoo, url, images):
    with Client(url) as client:
        for version in (1, 2):
            outputs = client.predict("tiny", images, version=version)
            np.testing.assert_allclose(outputs["logits"], expected(zoo[1], version, images), atol=1e-5)
        for label, version in (("stable", 1), ("canary", 2)):
            outputs = client.predict("tiny", images, label=label)
            np.testing.assert_allclose(outputs["logits"], expected(zoo[1], version, images), atol=1e-5)
            status = client.status("tiny", label=label)["model_version_status"]
            assert [s["version"] for s in status] == [str(version)]


def test_status_and_metadata(url):
    with Client(url) as client:
        status = client.status("tiny")["model_version_status"]
        assert sorted(s["version"] for s in status) == ["1", "2"]
        assert {s["state"] for s in status} == {"AVAILABLE"}
        assert client.status("tiny", version=1)["model_version_status"][0]["version"] == "1"
        metadata = client.metadata("tiny", version=1)
    assert metadata["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    dims = [d["size"] for d in signature["inputs"]["image"]["tensor_shape"]["dim"]]
    assert dims == ["-1", "28", "28", "1"]
    assert signature["inputs"]["image"]["dtype"] == "DT_FLOAT"
    assert sorted(signature["outputs"]) == ["logits", "probabilities"]


def test_health(url):
    answer = requests.get(f"{url}/healthz")
    assert answer.status_code == 200 and answer.json()["models"] == {"tiny": [1, 2]}


def _body(value):
    return json.dumps({"instances": value}).encode()


GOOD = np.full((1, 28, 28, 1), 0.5).tolist()
NAN = np.full((1, 28, 28, 1), 0.5)
NAN[0, 3, 4, 0] = np.nan
BAD_REQUESTS = {
    "bad json": ("tiny:predict", b'{"instances": [[[', 400),
    "not an object": ("tiny:predict", b"[1, 2]", 400),
    "no instances": ("tiny:predict", b'{"examples": []}', 400),
    "wrong shape": ("tiny:predict", _body(np.zeros((1, 27, 28, 1)).tolist()), 400),
    "wrong rank": ("tiny:predict", _body(np.zeros((28, 28)).tolist()), 400),
    "ragged": ("tiny:predict", _body([GOOD[0], GOOD[0][:5]]), 400),
    "strings": ("tiny:predict", _body([[["a"] * 1] * 28] * 28), 400),
    "booleans": ("tiny:predict", _body(np.zeros((1, 28, 28, 1), bool).tolist()), 400),
    "nan": ("tiny:predict", json.dumps({"instances": NAN.tolist()}).encode(), 400),
    "infinity": ("tiny:predict", _body(GOOD).replace(b"0.5", b"Infinity", 1), 400),
    "out of range": ("tiny:predict", _body(GOOD).replace(b"0.5", b"1.5", 1), 400),
    "empty batch": ("tiny:predict", b'{"inputs": []}', 400),
    "wrong input name": ("tiny:predict", json.dumps({"inputs": {"x": GOOD}}).encode(), 400),
    "wrong signature": ("tiny:predict", b'{"signature_name": "other", "inputs": []}', 400),
    "unknown model": ("nope:predict", _body(GOOD), 404),
    "unknown version": ("tiny/versions/7:predict", _body(GOOD), 404),
    "unknown label": ("tiny/labels/beta:predict", _body(GOOD), 404),
    "unsupported verb": ("tiny:classify", _body(GOOD), 404),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_malformed_requests_get_4xx_and_the_server_keeps_serving(url, images, case):
    path, body, status = BAD_REQUESTS[case]
    answer = requests.post(f"{url}/v1/models/{path}", data=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]
    with Client(url) as client:
        assert client.predict("tiny", images)["logits"].shape == (5, 10)


@pytest.mark.parametrize("path", ["nope", "tiny/versions/7", "tiny/labels/beta", "nope/metadata"])
def test_unknown_models_versions_and_labels_are_404(url, path):
    answer = requests.get(f"{url}/v1/models/{path}")
    assert answer.status_code == 404 and "error" in answer.json()


def test_oversized_body_is_413(zoo, images):
    app = create_app(zoo[0], poll_interval_s=0, max_body_bytes=64 * 1024)
    with testing.running_server(app) as url, Client(url) as client:
        with pytest.raises(ServingError) as error:
            client.predict("tiny", np.zeros((16, 28, 28, 1), np.float32))
        assert error.value.status == 413
        assert client.predict("tiny", images[:1])["logits"].shape == (1, 10)


def test_client_splits_a_large_batch_into_requests_under_the_limit(zoo, images):
    def body_size(count):
        return len(orjson.dumps({"instances": images[:count]}, option=orjson.OPT_SERIALIZE_NUMPY))

    app = create_app(zoo[0], poll_interval_s=0, max_body_bytes=body_size(2) + 1000)
    with testing.running_server(app) as url, Client(url) as client:
        with pytest.raises(ServingError) as error:
            client.predict("tiny", images)
        assert error.value.status == 413
        outputs = client.predict("tiny", images, max_images_per_request=2)
    assert outputs["probabilities"].shape == (5, 10)
    np.testing.assert_allclose(outputs["logits"], expected(zoo[1], 2, images), atol=1e-5)


def test_client_raises_serving_error_with_the_message(url):
    with Client(url) as client, pytest.raises(ServingError, match="Latest\\(nope\\)") as error:
        client.status("nope")
    assert error.value.status == 404


def test_onnx_backend_matches_the_in_process_model(zoo, images):
    app = create_app(zoo[0], "onnx", poll_interval_s=0)
    with testing.running_server(app) as url, Client(url) as client:
        outputs = client.predict("tiny", images, version=1, request_format="inputs")
    np.testing.assert_allclose(outputs["logits"], expected(zoo[1], 1, images), atol=1e-4)


def test_load_has_no_5xx(url, images):
    requests_total, clients = 2000, 16
    body = json.dumps({"instances": images[:1].tolist()}).encode()
    local = threading.local()

    def one(_):
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        start = time.perf_counter()
        answer = session.post(f"{url}/v1/models/tiny:predict", data=body, timeout=30)
        return answer.status_code, time.perf_counter() - start

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests_total)))
    elapsed = time.perf_counter() - start
    statuses = [s for s, _ in results]
    latencies = np.array([t for _, t in results]) * 1000
    print(
        f"\nload: {requests_total} requests, {clients} clients: p50 {np.percentile(latencies, 50):.1f} ms, "
        f"p99 {np.percentile(latencies, 99):.1f} ms, {requests_total / elapsed:.0f} req/s"
    )
    assert sum(s >= 500 for s in statuses) == 0
    assert statuses.count(200) == requests_total
    assert elapsed < 90


def _poll_requests(url, images, stop, seen):
    with Client(url) as client:
        while not stop.is_set():
            try:
                client.predict("tiny", images[:1])
                seen.append(200)
            except ServingError as error:
                seen.append(error.status)


def test_hot_reload_serves_new_versions_and_never_half_written_ones(tmp_path, images):
    models = testing.write_tiny_zoo(tmp_path, versions=(1,))
    base = tmp_path / "tiny" / "saved_model"
    app = create_app(tmp_path, poll_interval_s=0.1)
    stop, seen = threading.Event(), []
    with testing.running_server(app) as url, Client(url) as client:
        poller = threading.Thread(target=_poll_requests, args=(url, images, stop, seen))
        poller.start()
        try:
            # A version still being written: under a temporary name, and an integer-named
            # directory without its saved_model.pb yet, and one with a corrupt one.
            staging = base / ".2.partial"
            shutil.copytree(base / "1", staging)
            (base / "3").mkdir()
            shutil.copytree(base / "1" / "variables", base / "3" / "variables")
            corrupt = base / "4"
            corrupt.mkdir()
            (corrupt / "saved_model.pb").write_bytes(b"half a file")
            time.sleep(0.6)
            assert [s["version"] for s in client.status("tiny")["model_version_status"]] == ["1"]
            with pytest.raises(ServingError, match="Specific"):
                client.predict("tiny", images, version=4)
            shutil.rmtree(staging)
            shutil.rmtree(corrupt)
            shutil.rmtree(base / "3")
            new_model = testing.tiny_model(seed=42)
            testing.save_version(new_model, base, 2)
            deadline = time.monotonic() + 30
            while "2" not in str(client.status("tiny")) and time.monotonic() < deadline:
                time.sleep(0.05)
            outputs = client.predict("tiny", images, version=2)
            np.testing.assert_allclose(outputs["logits"], new_model(images).numpy(), atol=1e-5)
            latest = client.predict("tiny", images)
            np.testing.assert_allclose(latest["logits"], new_model(images).numpy(), atol=1e-5)
            stable = client.predict("tiny", images, label="stable")
            np.testing.assert_allclose(stable["logits"], models[("tiny", 1)](images).numpy(), atol=1e-5)
            # A third version retires the first (two are served) while requests keep coming.
            testing.save_version(testing.tiny_model(seed=43), base, 3)
            while "3" not in str(client.status("tiny")) and time.monotonic() < deadline:
                time.sleep(0.05)
            versions = [s["version"] for s in client.status("tiny")["model_version_status"]]
            assert sorted(versions) == ["2", "3"]
            with pytest.raises(ServingError) as error:
                client.predict("tiny", images, version=1)
            assert error.value.status == 404
        finally:
            stop.set()
            poller.join()
    assert seen and set(seen) == {200}


def _cli(*args):
    code = "from tfjsigr.cli import main; main()"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _announced_url(process):
    """The URL `tfjsigr serve` prints once it has bound its port."""
    for line in process.stdout:
        match = re.match(r"serving tiny from .* on (http://127\.0\.0\.1:(\d+)) ", line)
        if match:
            assert int(match[2]) != 0
            return match[1]
    raise AssertionError("tfjsigr serve stopped before announcing its URL")


def _healthy_url(process):
    """The URL of a `tfjsigr serve` process, once it answers /healthz."""
    url = _announced_url(process)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    return url


def test_serve_command_on_port_0_announces_its_port_and_stops_gracefully(zoo, images):
    process = _cli("serve", str(zoo[0]), "--port", "0", "--poll-seconds", "0")
    try:
        url = _healthy_url(process)
        port = int(url.rpartition(":")[2])
        with Client(url) as client:
            assert client.predict("tiny", images)["logits"].shape == (5, 10)
        # A request in flight (half its body sent) when SIGTERM arrives is still answered.
        body = json.dumps({"instances": images.tolist()}).encode()
        head = (f"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head.encode() + body[:100])
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            sock.sendall(body[100:])
            answer = sock.makefile("rb").read().decode()
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert answer.startswith("HTTP/1.1 200"), answer
    assert '"predictions"' in answer
    assert process.returncode == 0, output
    assert "Finished server process" in output


def test_a_second_signal_during_shutdown_is_quiet_and_the_shutdown_still_graceful(zoo):
    process = _cli("serve", str(zoo[0]), "--port", "0", "--poll-seconds", "0")
    try:
        _healthy_url(process)
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "Traceback" not in output and "ERROR" not in output, output
    assert "Application shutdown complete" in output
