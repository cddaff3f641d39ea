"""Throughput of the local server on batched requests, as a ratio to in-process onnxruntime.

Serves one model with `tfjsigr serve --backend onnx` in a subprocess on free loopback ports
and sends it batches of Fashion-MNIST sample images from several keep-alive connections, over
REST (JSON bodies encoded once up front, as a client would; decoding them is the server's job)
and over gRPC (PredictRequests with the official stubs, serialized by grpcio). The
same batches run in-process on the same ONNX conversion, once with the server's session
settings (no thread spinning) and once with onnxruntime's defaults; the ratio is taken to the
faster of the two. Repeats alternate server and in-process runs so load from other processes
hits both alike; the table gives medians.

Target: gRPC throughput >= 0.7 x in-process onnxruntime. The REST server's fixed cost is
decoding JSON (about 20-40 us per 28x28 image here), so its ratio grows with the model's cost
per image: compare the default small_cnn (--filters 16,32) with a wider one (--filters 64,128).

Usage: python benchmarks/serving.py [--zoo ZOO --model NAME] [--filters 16,32] [--batch 64]
       [--requests 200] [--clients 4] [--repeats 3]
"""

import argparse
import concurrent.futures
import http.client
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np
import onnxruntime
import orjson
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfjsigr.architectures import small_cnn
from tfjsigr.data import load_fashion_mnist
from tfjsigr.serving import backends, protocol, testing, versions

TARGET = 0.7


def model_version_dir(zoo, model, filters):
    """The highest version directory of `model` in `zoo`, or of a fresh small_cnn zoo."""
    if zoo is None:
        zoo = pathlib.Path(tempfile.mkdtemp(prefix="serving-bench-"))
        network = small_cnn(filters=filters, dense=4 * filters[0])
        testing.save_version(network, zoo / "small_cnn" / versions.SAVED_MODEL_DIR, 1)
        model = "small_cnn"
    zoo = pathlib.Path(zoo)
    model = model or next(iter(versions.list_models(zoo)))
    base = zoo / model / versions.SAVED_MODEL_DIR
    return zoo, model, base / str(versions.list_versions(base)[-1])


def in_process_seconds(session, batches):
    start = time.perf_counter()
    for batch in batches:
        session.run(None, {"image": batch})
    return time.perf_counter() - start


def start_server(zoo, port, grpc_port, backend="onnx"):
    """`tfjsigr serve` in a subprocess, once it answers /healthz."""
    code = "from tfjsigr.cli import main; main()"
    args = [sys.executable, "-c", code, "serve", str(zoo), "--port", str(port),
            "--grpc-port", str(grpc_port), "--backend", backend, "--poll-seconds", "0"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the server did not start")


def post_all(port, path, bodies, clients):
    """Posts every body over `clients` keep-alive connections; returns (seconds, first answer)."""

    def worker(share):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        answers = []
        for body in share:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"{response.status}: {answer[:200]!r}")
            answers.append(answer)
        connection.close()
        return answers[0]

    shares = [bodies[i::clients] for i in range(clients)]
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        firsts = list(pool.map(worker, shares))
    return time.perf_counter() - start, firsts[0]


def predict_all_grpc(port, requests, clients):
    """Sends every PredictRequest over `clients` channels; returns (seconds, first logits)."""

    def worker(share):
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[
                ("grpc.max_receive_message_length", 64 << 20)]) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            answers = [stub.Predict(request, timeout=60) for request in share]
        return protocol.tensor_to_array(answers[0].outputs["logits"])

    shares = [requests[i::clients] for i in range(clients)]
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        firsts = list(pool.map(worker, shares))
    return time.perf_counter() - start, firsts[0]


def grpc_requests(model, version, batches):
    requests = []
    for batch in batches:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.version.value = version
        request.inputs["image"].CopyFrom(protocol.array_to_tensor(batch))
        requests.append(request)
    return requests


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default=None, help="zoo directory [default: a fresh small_cnn]")
    parser.add_argument("--model", default=None, help="model name in --zoo [default: the first]")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--filters", default="16,32",
                        help="conv filters of the fresh small_cnn (without --zoo)")
    args = parser.parse_args()

    filters = tuple(int(f) for f in args.filters.split(","))
    zoo, model, version_dir = model_version_dir(args.zoo, args.model, filters)
    images, _, _ = load_fashion_mnist("test")
    batches = [
        np.take(images, range(i * args.batch, (i + 1) * args.batch), axis=0, mode="wrap")
        for i in range(args.requests)
    ]
    bodies = [orjson.dumps({"instances": b}, option=orjson.OPT_SERIALIZE_NUMPY) for b in batches]
    backend = backends.OnnxBackend(version_dir)
    sessions = {  # The server's settings (no spinning), and onnxruntime's defaults.
        "server settings": backend.session,
        "default session": onnxruntime.InferenceSession(backend.onnx_model),
    }
    for session in sessions.values():
        in_process_seconds(session, batches[:20])
    port, grpc_port = testing.free_port(), testing.free_port()
    server = start_server(zoo, port, grpc_port)
    path = f"/v1/models/{model}/versions/{version_dir.name}:predict"
    messages = grpc_requests(model, int(version_dir.name), batches)
    try:
        post_all(port, path, bodies, args.clients)  # warm-up: every batch size the batcher forms
        predict_all_grpc(grpc_port, messages, args.clients)
        local, served, served_grpc = {name: [] for name in sessions}, [], []
        for _ in range(args.repeats):
            for name, session in sessions.items():
                seconds = in_process_seconds(session, batches)
                local[name].append(len(batches) * args.batch / seconds)
            seconds, first = post_all(port, path, bodies, args.clients)
            served.append(len(batches) * args.batch / seconds)
            seconds, grpc_logits = predict_all_grpc(grpc_port, messages, args.clients)
            served_grpc.append(len(batches) * args.batch / seconds)
    finally:
        server.terminate()
        server.wait(timeout=60)
    answer = orjson.loads(first)["predictions"]
    logits = np.array([row["logits"] for row in answer], np.float32)
    expected = backend.run(batches[0])["logits"]
    assert np.allclose(logits, expected, atol=1e-4), "server and in-process logits differ"
    assert np.allclose(grpc_logits, expected, atol=1e-4), "gRPC and in-process logits differ"

    server, server_grpc = statistics.median(served), statistics.median(served_grpc)
    best = max(statistics.median(figures) for figures in local.values())
    print(f"model {model} v{version_dir.name}, {args.requests} requests of {args.batch} images, "
          f"{args.clients} clients, {args.repeats} repeats (median)")
    for name, figures in local.items():
        print(f"in-process onnxruntime, {name}: {statistics.median(figures):10.0f} images/s")
    print(f"local server (REST, onnx backend):      {server:10.0f} images/s "
          f"({server / args.batch:.0f} requests/s)")
    print(f"local server (gRPC, onnx backend):      {server_grpc:10.0f} images/s "
          f"({server_grpc / args.batch:.0f} requests/s)")
    ratio = server_grpc / best
    print(f"ratio to the faster in-process run: REST {server / best:.2f}, gRPC {ratio:.2f} "
          f"(target for gRPC >= {TARGET}) {'OK' if ratio >= TARGET else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
