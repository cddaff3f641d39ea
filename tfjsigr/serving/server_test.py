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
    # TF Serving answers these with 400 (INVALID_ARGUMENT), not 404.
    "unknown label": ("tiny/labels/beta:predict", _body(GOOD), 400),
    "classify without such signature": ("tiny:classify", _body(GOOD), 400),
    "regress without such signature": ("tiny:regress", _body(GOOD), 400),
    "unknown verb": ("tiny:explain", _body(GOOD), 400),
    "uppercase verb": ("tiny:PREDICT", _body(GOOD), 400),  # TF compares the verb exactly.
    "deep nesting": ("tiny:predict", b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
    "unicode digit version": ("tiny/versions/%C2%B9:predict", _body(GOOD), 400),
    "fullwidth digit version": ("tiny/versions/%EF%BC%91:predict", _body(GOOD), 400),
    "overlong version": ("tiny/versions/99999999999999999999:predict", _body(GOOD), 400),
    "mixed named and unnamed instances": (
        "tiny:predict", json.dumps({"instances": [{"image": GOOD[0]}, GOOD[0]]}).encode(), 400),
    "mixed unnamed and named instances": (
        "tiny:predict", json.dumps({"instances": [GOOD[0], {"image": GOOD[0]}]}).encode(), 400),
    "signature name not a string": ("tiny:predict", b'{"signature_name": 1, "instances": [1]}', 400),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_malformed_requests_get_4xx_and_the_server_keeps_serving(url, images, case):
    path, body, status = BAD_REQUESTS[case]
    answer = requests.post(f"{url}/v1/models/{path}", data=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]
    with Client(url) as client:
        assert client.predict("tiny", images)["logits"].shape == (5, 10)


@pytest.mark.parametrize("path", ["nope", "tiny/versions/7", "nope/metadata"])
def test_unknown_models_and_versions_are_404(url, path):
    answer = requests.get(f"{url}/v1/models/{path}")
    assert answer.status_code == 404 and "error" in answer.json()


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/", "/v1/models/tiny/labels/beta",
                                  "/v1/models/tiny/oops", "/v1/models/tiny/versions/x",
                                  "/v1/models/tiny:predict", "/v1/anything"])
def test_tf_servings_400_answers(url, path):
    answer = requests.get(f"{url}{path}")
    assert answer.status_code == 400 and answer.json()["error"], path


def test_other_paths_are_404_and_other_methods_400(url):
    assert requests.get(f"{url}/v2/models/tiny").status_code == 404
    assert requests.put(f"{url}/v1/models/tiny").status_code == 400


def test_paths_are_case_insensitive_as_in_tf_serving(zoo, url, images):
    body = json.dumps({"instances": images[:2].tolist()}).encode()
    answer = requests.post(f"{url}/V1/MODELS/tiny/VERSIONS/1:predict", data=body)
    assert answer.status_code == 200, answer.text
    logits = [row["logits"] for row in answer.json()["predictions"]]
    np.testing.assert_allclose(logits, expected(zoo[1], 1, images[:2]), atol=1e-5)
    assert requests.get(f"{url}/v1/Models/tiny/Labels/stable/metadata").json()["model_spec"]["version"] == "1"
    assert requests.get(f"{url}/V1/models/tiny").json()["model_version_status"]
    # As TF Serving (absl::SimpleAtoi), a leading zero is the same version.
    assert requests.get(f"{url}/v1/models/tiny/versions/01").json()["model_version_status"][0]["version"] == "1"


@pytest.mark.parametrize("head", [
    {"signature_name": ""}, {"signature_name": "serving_default"}, {"extra": [1, {"x": 2}]},
])
@pytest.mark.parametrize("kind", ["instances", "inputs"])
def test_default_signature_and_extra_keys_are_accepted(zoo, url, images, head, kind):
    body = json.dumps({**head, kind: images[:2].tolist()}).encode()
    answer = requests.post(f"{url}/v1/models/tiny/versions/2:predict", data=body)
    assert answer.status_code == 200, answer.text
    key = "predictions" if kind == "instances" else "outputs"
    rows = answer.json()[key]
    logits = [r["logits"] for r in rows] if kind == "instances" else rows["logits"]
    np.testing.assert_allclose(logits, expected(zoo[1], 2, images[:2]), atol=1e-5)


def test_client_errors_leave_no_traceback_in_the_log(url, caplog):
    with caplog.at_level("DEBUG"):
        for path, body, _ in BAD_REQUESTS.values():
            requests.post(f"{url}/v1/models/{path}", data=body)
    assert not [r for r in caplog.records if r.exc_info or r.levelname in ("ERROR", "CRITICAL")]


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
            status = client.status("tiny")["model_version_status"]
            assert [s["version"] for s in status if s["state"] == "AVAILABLE"] == ["1"]
            # The corrupt version is reported, as TF Serving reports a failed load.
            assert [(s["version"], s["state"]) for s in status[1:]] == [("4", "END")]
            with pytest.raises(ServingError, match="Specific"):
                client.predict("tiny", images, version=4)
            shutil.rmtree(staging)
            shutil.rmtree(corrupt)
            shutil.rmtree(base / "3")
            new_model = testing.tiny_model(seed=42)
            testing.save_version(new_model, base, 2)
            deadline = time.monotonic() + 30
            # Until the card lists it, a new version is refused (END): wait for AVAILABLE.
            _wait_until_available(client, "2", deadline)
            outputs = client.predict("tiny", images, version=2)
            np.testing.assert_allclose(outputs["logits"], new_model(images).numpy(), atol=1e-5)
            latest = client.predict("tiny", images)
            np.testing.assert_allclose(latest["logits"], new_model(images).numpy(), atol=1e-5)
            stable = client.predict("tiny", images, label="stable")
            np.testing.assert_allclose(stable["logits"], models[("tiny", 1)](images).numpy(), atol=1e-5)
            # A third version retires the first (two are served) while requests keep coming.
            testing.save_version(testing.tiny_model(seed=43), base, 3)
            _wait_until_available(client, "3", deadline)
            versions = [s["version"] for s in client.status("tiny")["model_version_status"]]
            assert sorted(versions) == ["2", "3"]
            assert requests.get(f"{url}/healthz").json()["refused"] == {}
            with pytest.raises(ServingError) as error:
                client.predict("tiny", images, version=1)
            assert error.value.status == 404
        finally:
            stop.set()
            poller.join()
    assert seen and set(seen) == {200}


def _wait_until_available(client, version, deadline):
    while time.monotonic() < deadline:
        status = client.status("tiny")["model_version_status"]
        if (version, "AVAILABLE") in [(s["version"], s["state"]) for s in status]:
            return
        time.sleep(0.05)


def _cli(*args):
    code = "from tfjsigr.cli import main; main()"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _announced_url(process):
    """The URL `tfjsigr serve` prints once it has bound its port."""
    for line in process.stdout:
        match = re.match(r"serving tiny from .* on (http://127\.0\.0\.1:(\d+)) and "
                         r"(grpc://127\.0\.0\.1:(\d+)) ", line)
        if match:
            assert int(match[2]) != 0 and int(match[4]) != 0
            process.grpc_url = match[3]
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
    process = _cli("serve", str(zoo[0]), "--port", "0", "--grpc-port", "0", "--poll-seconds", "0")
    try:
        url = _healthy_url(process)
        port = int(url.rpartition(":")[2])
        with Client(url) as client, Client(process.grpc_url) as grpc_client:
            assert client.predict("tiny", images)["logits"].shape == (5, 10)
            np.testing.assert_allclose(grpc_client.predict("tiny", images)["logits"],
                                       expected(zoo[1], 2, images), atol=1e-5)
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
    process = _cli("serve", str(zoo[0]), "--port", "0", "--grpc-port", "0", "--poll-seconds", "0")
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


def _latency(session, url):
    start = time.perf_counter()
    assert session.get(f"{url}/healthz", timeout=60).status_code == 200
    return time.perf_counter() - start


LARGE_REQUESTS = 1


def test_a_large_body_decodes_off_the_event_loop(zoo, images):
    """/healthz stays fast while a large body decodes (named instances and an extra key:
    the general JSON path): measured as a ratio to the large
    requests' own time."""
    rows = np.random.default_rng(1).random((1500, 28, 28, 1)).round(3).tolist()
    body = json.dumps({"signature_name": "serving_default",
                       "instances": [{"image": row} for row in rows], "extra": 1}).encode()
    app = create_app(zoo[0], poll_interval_s=0, max_body_bytes=64 * 1024 * 1024)
    with testing.running_server(app) as url, requests.Session() as session:
        idle = np.median([_latency(session, url) for _ in range(20)])
        done, large = threading.Event(), []

        def post_large():
            start = time.perf_counter()
            answer = requests.post(f"{url}/v1/models/tiny:predict", data=body, timeout=120)
            large.append((answer.status_code, time.perf_counter() - start))
            if len(large) == LARGE_REQUESTS:
                done.set()

        posters = [threading.Thread(target=post_large) for _ in range(LARGE_REQUESTS)]
        for poster in posters:
            poster.start()
        busy = []
        while not done.is_set():
            busy.append(_latency(session, url))
        for poster in posters:
            poster.join()
    assert [status for status, _ in large] == [200] * LARGE_REQUESTS
    slowest = max(seconds for _, seconds in large)
    print(f"\n/healthz: idle {idle * 1000:.1f} ms, while decoding: median "
          f"{np.median(busy) * 1000:.1f} ms, max {max(busy) * 1000:.1f} ms "
          f"({len(busy)} checks); large requests {slowest * 1000:.0f} ms")
    # Decoded on the event loop, the check that arrives as the decode starts waits for all of
    # it: measured 0.60 and 0.69 of the large request's time. Off the loop only simdjson's
    # GIL-held parse can delay it: measured 0.20 and 0.22. One large request, not two: two
    # decoding threads contend for the GIL and blur the difference.
    assert len(busy) >= 5
    assert max(busy) < 0.4 * slowest


def _closed_within(sock, seconds):
    """What the server sent before closing the connection, or None if still open."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    return received


def test_idle_and_slow_clients_time_out(zoo):
    from tfjsigr.serving.server import http_protocol

    app = create_app(zoo[0], poll_interval_s=0)
    with testing.running_server(app, http=http_protocol(0.5), timeout_keep_alive=0.3) as url:
        port = int(url.rpartition(":")[2])
        silent = socket.create_connection(("127.0.0.1", port))
        half_headers = socket.create_connection(("127.0.0.1", port))
        half_headers.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n")
        half_body = socket.create_connection(("127.0.0.1", port))
        half_body.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 1000\r\n\r\n{\"instances\": ")
        kept = socket.create_connection(("127.0.0.1", port))
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for sock in (silent, half_headers, half_body, kept):
            answer = _closed_within(sock, 5)
            sock.close()
            assert answer is not None, "the connection is still open"
            if sock is kept:
                assert answer.startswith(b"HTTP/1.1 200")
            elif sock is not silent or answer:
                assert answer.startswith(b"HTTP/1.1 408"), answer
        assert requests.get(f"{url}/healthz").status_code == 200


def test_health_names_the_refused_versions(zoo, tmp_path):
    shutil.copytree(zoo[0], tmp_path / "zoo")
    shutil.copytree(tmp_path / "zoo" / "tiny" / "saved_model" / "2", tmp_path / "zoo" / "tiny" / "saved_model" / "3")
    with testing.running_server(create_app(tmp_path / "zoo", poll_interval_s=0)) as url:
        health = requests.get(f"{url}/healthz").json()
        status = requests.get(f"{url}/v1/models/tiny/versions/3").json()
    assert health["models"] == {"tiny": [1, 2]}
    assert health["refused"] == {"tiny": {"3": "not listed in the card's saved_model_versions [1, 2]"}}
    assert status["model_version_status"] == [{"version": "3", "state": "END", "status": {
        "error_code": "FAILED_PRECONDITION",
        "error_message": "not listed in the card's saved_model_versions [1, 2]"}}]
