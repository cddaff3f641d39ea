"""Test helpers: a tiny zoo in TF Serving's layout and the local server on a free port."""

import contextlib
import http.server
import json
import os
import pathlib
import socket
import tempfile
import threading
import time

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def tiny_model(seed=0):
    """A tiny, randomly initialized `small_cnn` (deterministic for a given seed)."""
    import keras

    from tfjsigr.architectures.small_cnn import small_cnn

    keras.utils.set_random_seed(seed)
    return small_cnn(INPUT_SHAPE, NUM_CLASSES, filters=(4, 8), dense=16)


def save_version(model, base_path, version, update_card=True):
    """Saves `model` as `base_path/<version>` the way the zoo does: into a temporary
    directory, then renamed into place, with TF Serving's `serving_default` signature.

    Args:
        model: a Keras model from images to logits.
        base_path: the model's `saved_model` directory.
        version: the int version.
        update_card: then rewrite the entry's card (`write_card`), so that the server
            verifies the new version.

    Returns:
        The version directory.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32, name="image")

    @tf.function(input_signature=[spec])
    def serving_default(image):
        logits = model(image, training=False)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    module = tf.Module()
    module.model = model
    module.serving_default = serving_default
    base_path = pathlib.Path(base_path)
    base_path.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{version}.", dir=base_path))
    tf.saved_model.save(module, str(staging), signatures={"serving_default": serving_default})
    os.replace(staging, base_path / str(version))
    if update_card:
        write_card(base_path.parent)
    return base_path / str(version)


def write_card(entry_dir):
    """Writes the card of an entry as the zoo's export does, for what `serve` verifies: the
    versions on disk (`saved_model_versions`, the newest as `version`) and the sha256 of
    every file (`artifacts`); and, as the metadata gives them, the class names of its data
    (the tiny models classify 28x28 Fashion-MNIST-shaped images).

    Args:
        entry_dir: the entry directory (`ZOO/<name>`).

    Returns:
        The card written.
    """
    from tfjsigr.data.fashion_mnist import CLASS_NAMES
    from tfjsigr.zoo import card as card_lib
    from tfjsigr.zoo import layout, verify

    entry_dir = pathlib.Path(entry_dir)
    versions = layout.list_versions(entry_dir / layout.SAVED_MODEL_DIR)
    card = {"name": entry_dir.name, "version": versions[-1], "saved_model_versions": versions,
            "artifacts": verify.checksums(entry_dir),
            "data": {"name": "fashion_mnist", "class_names": list(CLASS_NAMES)}}
    card_lib.write_json_atomic(entry_dir / card_lib.CARD_FILE, card)
    return card


def write_tiny_zoo(zoo_dir, names=("tiny",), versions=(1,)):
    """Writes a zoo of tiny models: `zoo_dir/<name>/saved_model/<version>/`, `model.onnx` (of
    the last version) and `card.json` (`write_card`).

    Args:
        zoo_dir: the directory to create.
        names: the model names.
        versions: the versions of each model (each a differently seeded model).

    Returns:
        A dict from (name, version) to the Keras model saved there.
    """
    from tfjsigr.zoo import export, layout

    models = {}
    for index, name in enumerate(names):
        for version in versions:
            model = tiny_model(seed=100 * index + version)
            save_version(model, pathlib.Path(zoo_dir) / name / layout.SAVED_MODEL_DIR, version,
                         update_card=False)
            models[(name, version)] = model
        # The entry's model.onnx is that of its newest version, as the zoo's export writes it.
        export.write_onnx(export.serving_function(model, INPUT_SHAPE),
                          pathlib.Path(zoo_dir) / name / layout.ONNX_FILE)
        write_card(pathlib.Path(zoo_dir) / name)
    return models


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(app, timeout_s=60.0, **config_options):
    """Serves an ASGI app with uvicorn on a free loopback port in a thread.

    Args:
        app: the ASGI app (e.g. from `create_app`).
        timeout_s: how long start-up may take.
        **config_options: passed to `uvicorn.Config` (e.g. http, timeout_keep_alive).

    Yields:
        The base URL, e.g. "http://127.0.0.1:PORT". The server is shut down on exit.
    """
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5,
                                           **config_options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the local server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()



def metadata_answer(shape=INPUT_SHAPE, input_name="image"):
    """TF Serving's answer to GET .../metadata for a model on [N, *shape] images."""
    dims = [{"size": str(size), "name": ""} for size in (-1, *shape)]
    inputs = {input_name: {"dtype": "DT_FLOAT", "tensor_shape": {"dim": dims}, "name": input_name}}
    signature = {"inputs": inputs, "outputs": {}, "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": "fake", "version": "1"},
            "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}}}


@contextlib.contextmanager
def answering_server(answer):
    """An HTTP server (not a model server) on a free loopback port, answering every request.

    Args:
        answer: function from the request path to a 200 answer's body: bytes, or a value
            sent as JSON.

    Yields:
        The base URL, e.g. "http://127.0.0.1:PORT".
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = answer(self.path)
            body = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
