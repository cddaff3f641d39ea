"""`tfjsigr serving config|check`, `tfjsigr serve` and `tfjsigr predict`: serving the zoo."""

import ipaddress
import pathlib
import re
import urllib.parse

import click
import numpy as np

from tfjsigr.cli.errors import user_errors
from tfjsigr.cli.group import cli

DEFAULT_ZOO_DIR = "zoo"
DEFAULT_OUT_DIR = "serving"
_MODEL_URL = re.compile(
    r"\A/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?::predict)?/?\Z"
)


@cli.group()
def serving():
    """TF Serving deployment files for the zoo."""


@serving.command("config")
@click.argument("zoo", type=click.Path(file_okay=False), default=DEFAULT_ZOO_DIR)
@click.option("--out", type=click.Path(file_okay=False), default=DEFAULT_OUT_DIR, show_default=True,
              help="Folder for models.config, batching/monitoring configs, docker-compose.yml.")  # fmt: skip
@click.option("--base-path", default="/models", show_default=True,
              help="Where TF Serving sees the zoo (the container mount point).")  # fmt: skip
def serving_config(zoo, out, base_path):
    """Write TF Serving's configuration for the models of ZOO (default: zoo/).

    \b
    Examples:
      tfjsigr serving config
      tfjsigr serving config zoo --out serving/
      docker compose -f serving/docker-compose.yml up
    """
    from tfjsigr.serving import config as config_lib
    from tfjsigr.serving import versions as versions_lib

    with user_errors():
        models = versions_lib.list_models(zoo)
        written = config_lib.write_serving_config(zoo, out, base_path_root=base_path)
    if not models:
        click.echo(f"warning: {zoo} has no SavedModel versions yet; models.config is empty", err=True)
    for path in written.values():
        click.echo(f"wrote {path}")
    click.echo(f"{len(models)} model(s): {', '.join(models) or '-'}")


@serving.command("check")
@click.argument("config", type=click.Path(dir_okay=False), default=f"{DEFAULT_OUT_DIR}/models.config")
def serving_check(config):
    """Validate a models.config (ModelServerConfig text proto) as TF Serving parses it."""
    from tfjsigr.serving import config as config_lib

    with user_errors():
        parsed = config_lib.load_model_server_config(config)
    names = [entry.name for entry in parsed.model_config_list.config]
    click.echo(f"{config}: valid, {len(names)} model(s): {', '.join(names) or '-'}")


@cli.command()
@click.argument("zoo", type=click.Path(file_okay=False), default=DEFAULT_ZOO_DIR)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback exposes the models to the network.")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True)
@click.option("--backend", type=click.Choice(["savedmodel", "onnx"]), default="savedmodel",
              show_default=True, help="Run the SavedModels with TensorFlow or onnxruntime.")  # fmt: skip
@click.option("--poll-seconds", type=click.FloatRange(0), default=1.0, show_default=True,
              help="How often to look for new version directories (0: never).")  # fmt: skip
@click.option("--max-body-mb", type=click.FloatRange(0, min_open=True), default=16.0,
              show_default=True, help="Larger request bodies get 413.")  # fmt: skip
@click.option("--access-log", is_flag=True, help="Log one line per request.")
def serve(zoo, host, port, backend, poll_seconds, max_body_mb, access_log):
    """Serve the models of ZOO with TF Serving's REST API (no Docker needed).

    Serves the two highest versions of each model, labelled stable (older) and canary
    (newest), and picks up new version directories while running. Ctrl-C or SIGTERM finish
    the requests in flight, then stop.

    \b
    Examples:
      tfjsigr serve zoo --port 8501
      curl http://127.0.0.1:8501/v1/models/jsigr
      tfjsigr predict --url http://127.0.0.1:8501/v1/models/jsigr image.png
    """
    from tfjsigr.serving import server as server_lib
    from tfjsigr.serving import versions as versions_lib

    with user_errors():
        models = versions_lib.list_models(zoo)
    if not models:
        raise click.ClickException(f"{zoo} has no SavedModel versions to serve")
    if not _is_loopback(host):
        click.echo(f"warning: serving on {host}, reachable from other machines", err=True)
    click.echo(f"serving {', '.join(models)} from {zoo} on http://{host}:{port} ({backend})")
    server_lib.serve(zoo, host=host, port=port, backend=backend, poll_interval_s=poll_seconds,
                     max_body_bytes=int(max_body_mb * 1024 * 1024), access_log=access_log)


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_model_url(url):
    parsed = urllib.parse.urlsplit(url)
    match = _MODEL_URL.match(parsed.path)
    if parsed.scheme not in ("http", "https", "grpc") or not parsed.netloc or match is None:
        raise click.ClickException(
            f"{url!r}: expected http://HOST:PORT/v1/models/NAME[/versions/V|/labels/L] "
            "(or grpc://HOST:PORT/v1/models/NAME...)"
        )
    version = int(match["version"]) if match["version"] else None
    return f"{parsed.scheme}://{parsed.netloc}", match["name"], version, match["label"]


def _input_shape(metadata):
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    (tensor,) = signature["inputs"].values()
    return tuple(int(d["size"]) for d in tensor["tensor_shape"]["dim"])[1:]


def _to_images(array, shape, path):
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == len(shape) - 1 and shape[-1] == 1:
        array = array[..., None]
    if array.shape == shape:
        array = array[None]
    if array.shape[1:] != shape:
        raise click.ClickException(f"{path}: shape {list(array.shape)}, the model takes {list(shape)}")
    return array


def read_images(path, shape):
    """Images from a PNG or NPY file, as float32 [N, H, W, C] in the model's input shape."""
    path = pathlib.Path(path)
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            from PIL import Image

            with Image.open(path) as image:
                array = np.asarray(image.convert("L" if shape[-1] == 1 else "RGB"))
    except (OSError, ValueError) as error:
        raise click.ClickException(f"{path}: cannot read an image ({error})") from None
    return _to_images(array, shape, path)


@cli.command()
@click.option("--url", required=True,
              help="http://HOST:PORT/v1/models/NAME[/versions/V|/labels/L] (grpc:// for gRPC).")  # fmt: skip
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def predict(url, images):
    """Classify IMAGES (PNG, or NPY arrays of one or more images) with a served model.

    Works against `tfjsigr serve` and TF Serving alike. Prints one line per image: file,
    index, predicted class and its probability.

    \b
    Examples:
      tfjsigr predict --url http://127.0.0.1:8501/v1/models/jsigr shirt.png
      tfjsigr predict --url http://127.0.0.1:8501/v1/models/jsigr/labels/canary batch.npy
    """
    from tfjsigr.data.fashion_mnist import CLASS_NAMES
    from tfjsigr.serving import Client

    base, name, version, label = _parse_model_url(url)
    with user_errors(), Client(base) as client:
        shape = _input_shape(client.metadata(name, version, label))
        batches = [(path, read_images(path, shape)) for path in images]
        batch = np.concatenate([b for _, b in batches])
        outputs = client.predict(name, batch, version, label, input_name="image")
    probabilities = outputs["probabilities"]
    row = 0
    for path, images_in_file in batches:
        for index in range(len(images_in_file)):
            best = int(probabilities[row].argmax())
            label_name = CLASS_NAMES[best] if len(CLASS_NAMES) == probabilities.shape[1] else best
            click.echo(f"{path}\t{index}\t{label_name}\t{probabilities[row, best]:.4f}")
            row += 1
