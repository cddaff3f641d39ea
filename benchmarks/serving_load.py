"""Load test of the local server: REST and gRPC clients at once, some of their requests malformed.

Serves a tiny zoo (or --zoo) with `tfjsigr serve` in a subprocess on free loopback ports and
sends --requests requests (default 10,000) from --clients threads (default 32), each with its
own keep-alive HTTP connection and gRPC channel. Requests cycle through: well-formed REST
predicts (row and columnar, named and unnamed, by version and by label), well-formed gRPC
predicts, and malformed ones of both kinds (bad JSON, deep nesting, Unicode and overlong
versions, unknown labels, wrong shapes, NaN, unknown models and signatures).

Passes when no answer is a 5xx, every well-formed request gets its 200 (no dropped
connection), every malformed one gets a 4xx (gRPC: a client-error code), and the server's RSS
grows by less than --rss-bound-mb from after the warm-up to the end. Bounded in time by
--deadline-s; loopback only.

Usage: python benchmarks/serving_load.py [--requests 10000] [--clients 32] [--zoo ZOO]
"""

import argparse
import concurrent.futures
import http.client
import json
import pathlib
import sys
import tempfile
import time

import grpc
import numpy as np
import psutil
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import start_server  # benchmarks/serving.py, beside this script
from tfjsigr.serving import protocol, testing, versions

IMAGES = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
ROWS = IMAGES.tolist()
CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                 grpc.StatusCode.FAILED_PRECONDITION}


def rest(path, body, ok=True):
    return ("rest", "POST" if body is not None else "GET", path, body, ok)


def rpc(request, ok=True):
    return ("grpc", request, ok)


def predict_request(model, images=IMAGES, version=None, label=None, signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    elif label is not None:
        request.model_spec.version_label = label
    request.inputs["image"].CopyFrom(protocol.array_to_tensor(images))
    return request


def workload(model, version):
    """The cycle of requests: 7 well-formed and 3 malformed in 10, REST and gRPC."""
    base = f"/v1/models/{model}"
    nan = IMAGES.copy()
    nan[0, 0, 0, 0] = np.nan
    good = [
        rest(f"{base}:predict", json.dumps({"instances": ROWS}).encode()),
        rest(f"{base}/versions/{version}:predict", json.dumps({"inputs": {"image": ROWS}}).encode()),
        rest(f"{base}/labels/stable:predict",
             json.dumps({"signature_name": "", "instances": [{"image": r} for r in ROWS]}).encode()),
        rest(f"{base}/metadata", None),
        rpc(predict_request(model)),
        rpc(predict_request(model, version=version)),
        rpc(predict_request(model, label="stable", signature="serving_default")),
    ]
    bad = [
        rest(f"{base}:predict", b'{"instances": [[[', ok=False),
        rest(f"{base}:predict", b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}", ok=False),
        rest(f"{base}/versions/%C2%B9:predict", b'{"instances": [1]}', ok=False),
        rest(f"{base}/versions/99999999999999999999", None, ok=False),
        rest(f"{base}/labels/beta:predict", json.dumps({"instances": ROWS}).encode(), ok=False),
        rest(f"{base}:predict", json.dumps({"instances": nan.tolist()}).encode(), ok=False),
        rpc(predict_request(model, IMAGES[:, :27]), ok=False),
        rpc(predict_request("nope"), ok=False),
        rpc(predict_request(model, signature="other"), ok=False),
    ]
    return [*good[:4], bad[0], *good[4:], bad[1], bad[2]], bad


def run_client(rest_port, grpc_port, work, deadline):
    """Sends `work` in order; returns a list of (ok expected, outcome, seconds)."""
    connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=60)
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    results = []
    for item in work:
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        if item[0] == "rest":
            _, method, path, body, ok = item
            try:
                connection.request(method, path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                outcome = response.status
            except (OSError, http.client.HTTPException) as error:
                outcome = f"dropped: {type(error).__name__}"
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=60)
        else:
            _, request, ok = item
            try:
                stub.Predict(request, timeout=60)
                outcome = 200
            except grpc.RpcError as error:
                outcome = 400 if error.code() in CLIENT_ERRORS else f"grpc {error.code().name}"
        results.append((ok, outcome, time.perf_counter() - start))
    connection.close()
    channel.close()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default=None, help="zoo directory [default: a tiny one]")
    parser.add_argument("--model", default=None, help="model name in --zoo [default: the first]")
    parser.add_argument("--backend", default="onnx", choices=["onnx", "savedmodel"])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--deadline-s", type=float, default=600.0)
    parser.add_argument("--rss-bound-mb", type=float, default=200.0)
    args = parser.parse_args()
    if not 1 <= args.requests <= 1_000_000 or not 1 <= args.clients <= 256:
        parser.error("--requests must be in [1, 10**6] and --clients in [1, 256]")

    zoo = pathlib.Path(args.zoo or tempfile.mkdtemp(prefix="serving-load-"))
    if args.zoo is None:
        testing.write_tiny_zoo(zoo, versions=(1, 2))
    model = args.model or next(iter(versions.list_models(zoo)))
    version = versions.list_versions(zoo / model / versions.SAVED_MODEL_DIR)[-1]
    cycle, bad = workload(model, version)
    work = [cycle[i % len(cycle)] if i % 20 else bad[(i // 20) % len(bad)]
            for i in range(args.requests)]
    rest_port, grpc_port = testing.free_port(), testing.free_port()
    server = start_server(zoo, rest_port, grpc_port, args.backend)
    try:
        process = psutil.Process(server.pid)
        run_client(rest_port, grpc_port, cycle * 3 + bad, time.monotonic() + 60)  # warm-up
        rss_before = process.memory_info().rss
        deadline = time.monotonic() + args.deadline_s
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            shares = pool.map(lambda i: run_client(rest_port, grpc_port, work[i::args.clients],
                                                   deadline), range(args.clients))
            results = [result for share in shares for result in share]
        elapsed = time.perf_counter() - start
        rss_after = process.memory_info().rss
    finally:
        server.terminate()
        server.wait(timeout=60)
    outcomes = [outcome for _, outcome, _ in results]
    server_errors = sum(isinstance(o, int) and o >= 500 for o in outcomes) + sum(
        isinstance(o, str) and o.startswith("grpc") for o in outcomes)
    dropped = sum(isinstance(o, str) and o.startswith("dropped") for ok, o, _ in results if ok)
    wrong = sum((o == 200) != ok for ok, o, _ in results)
    latencies = np.array([s for ok, _, s in results if ok]) * 1000
    growth = (rss_after - rss_before) / 2**20
    print(f"{len(results)} of {args.requests} requests in {elapsed:.1f} s "
          f"({len(results) / elapsed:.0f}/s) from {args.clients} clients, REST and gRPC, "
          f"{sum(not ok for ok, _, _ in results)} malformed")
    print(f"well-formed latency: p50 {np.percentile(latencies, 50):.1f} ms, "
          f"p99 {np.percentile(latencies, 99):.1f} ms")
    print(f"5xx: {server_errors}, dropped well-formed: {dropped}, "
          f"unexpected answers: {wrong}")
    print(f"server RSS: {rss_before / 2**20:.0f} MB after warm-up, {rss_after / 2**20:.0f} MB "
          f"after ({growth:+.0f} MB; bound {args.rss_bound_mb:.0f} MB)")
    failed = (server_errors or dropped or wrong or len(results) < args.requests
              or growth > args.rss_bound_mb)
    print("FAILED" if failed else "OK")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
