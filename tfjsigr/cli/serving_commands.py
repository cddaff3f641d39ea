"""`tfjsigr serving config|check`, `tfjsigr serve` and `tfjsigr predict`: serving the zoo."""

import ipaddress
import math

import click

from tfjsigr.cli.errors import user_errors
from tfjsigr.cli.group import cli
from tfjsigr.serving.backends import BACKENDS
from tfjsigr.zoo.layout import DEFAULT_ZOO_DIR

DEFAULT_OUT_DIR = "serving"
MAX_BODY_MB = 4096
MAX_TIMEOUT_S = 3600


@cli.group()
def serving():
    """TF Serving deployment files for the zoo."""


def _absolute_base_path(ctx, param, value):
    from tfjsigr.serving import config as config_lib

    try:
        config_lib.check_base_path_root(value)
    except config_lib.ConfigError as error:
        raise click.BadParameter(str(error)) from None
    return value


@serving.command("config")
@click.argument("zoo", type=click.Path(file_okay=False), default=str(DEFAULT_ZOO_DIR))
@click.option("--out", type=click.Path(file_okay=False), default=DEFAULT_OUT_DIR, show_default=True,
              help="Folder for models.config, batching/monitoring configs, docker-compose.yml.")  # fmt: skip
@click.option("--base-path", default="/models", show_default=True, callback=_absolute_base_path,
              help="Where TF Serving sees the zoo (the container mount point), absolute.")  # fmt: skip
def serving_config(zoo, out, base_path):
    """Write TF Serving's configuration for the models of ZOO (default: zoo/).

    Rewrites the files an earlier run wrote, and refuses to overwrite any other file.

    \b
    Examples:
      tfjsigr serving config
      tfjsigr serving config zoo --out serving/
      docker compose -f serving/docker-compose.yml up
    """
    from tfjsigr.serving import config as config_lib

    with user_errors():
        models = _servable_models(zoo)
        written = config_lib.write_serving_config(zoo, out, base_path_root=base_path)
    for path in written.values():
        click.echo(f"wrote {path}")
    click.echo(f"{len(models)} model(s): {', '.join(models) or '-'}")


def _servable_models(zoo):
    """The zoo's servable models (`versions.list_models`), warning about what is left out."""
    from tfjsigr.serving import versions as versions_lib

    models = versions_lib.list_models(zoo)
    for message in versions_lib.zoo_warnings(zoo):
        click.echo(f"warning: {message}", err=True)
    return models


def _check_max_body_mb(ctx, param, value):
    if math.isnan(value):  # NaN passes every range check.
        raise click.BadParameter("nan is not a size in MB")
    return value


def _check_seconds(ctx, param, value):
    if math.isnan(value):
        raise click.BadParameter("nan is not a number of seconds")
    return value


@serving.command("check")
@click.argument("config", type=click.Path(dir_okay=False), required=False)
def serving_check(config):
    """Validate a models.config (ModelServerConfig text proto; default: serving/models.config)
    as TF Serving parses it."""
    from tfjsigr.serving import config as config_lib

    config = config or f"{DEFAULT_OUT_DIR}/{config_lib.MODELS_CONFIG}"
    with user_errors():
        parsed = config_lib.load_model_server_config(config)
    names = [entry.name for entry in parsed.model_config_list.config]
    click.echo(f"{config}: valid, {len(names)} model(s): {', '.join(names) or '-'}")


@cli.command()
@click.argument("zoo", type=click.Path(file_okay=False), default=str(DEFAULT_ZOO_DIR))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback exposes the models to the network.")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="REST port; 0 picks a free one (the URL printed holds it).")  # fmt: skip
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=8500, show_default=True,
              help="gRPC port (TF Serving's gRPC API); 0 picks a free one.")  # fmt: skip
@click.option("--backend", type=click.Choice(BACKENDS), default="savedmodel",
              show_default=True, help="Run the SavedModels with TensorFlow or onnxruntime.")  # fmt: skip
@click.option("--poll-seconds", type=click.FloatRange(0), default=1.0, show_default=True,
              help="How often to look for new version directories (0: never).")  # fmt: skip
@click.option("--max-body-mb", type=click.FloatRange(0, MAX_BODY_MB, min_open=True), default=16.0,
              callback=_check_max_body_mb, show_default=True,
              help="Larger request bodies get 413.")  # fmt: skip
@click.option("--request-timeout", type=click.FloatRange(0, MAX_TIMEOUT_S, min_open=True),
              default=30.0, show_default=True, callback=_check_seconds,
              help="Seconds a REST client has to send a whole request (else 408).")  # fmt: skip
@click.option("--keep-alive", type=click.FloatRange(0, MAX_TIMEOUT_S, min_open=True),
              default=5.0, show_default=True, callback=_check_seconds,
              help="Seconds an idle REST connection is kept open.")  # fmt: skip
@click.option("--access-log", is_flag=True, help="Log one line per request.")
def serve(zoo, host, port, grpc_port, backend, poll_seconds, max_body_mb, request_timeout,
          keep_alive, access_log):
    """Serve the models of ZOO with TF Serving's REST and gRPC APIs (no Docker needed).

    Serves the two highest versions of each model that verify against their card (checksums,
    listed versions, no symlinks out of the zoo), labelled stable (the older one, or the
    only one) and canary (the newest, once there are two), and picks up new version
    directories while running. Ctrl-C or SIGTERM finish the requests in flight, then stop.

    \b
    Examples:
      tfjsigr serve zoo --port 8501
      curl http://127.0.0.1:8501/v1/models/jsigr
      tfjsigr predict --url http://127.0.0.1:8501/v1/models/jsigr image.png
    """
    from tfjsigr.serving import server as server_lib

    with user_errors():
        if not _servable_models(zoo):
            raise ValueError(f"{zoo} has no SavedModel versions to serve")
        sock = server_lib.bind_socket(host, port)  # Before the minutes of loading models.
    if not _is_loopback(host):
        click.echo(f"warning: serving on {host}, reachable from other machines", err=True)

    def announce(url, served, grpc_url):
        click.echo(f"serving {', '.join(served)} from {zoo} on {url} and {grpc_url} ({backend})")

    with user_errors():
        server_lib.serve(zoo, host=host, port=port, backend=backend, poll_interval_s=poll_seconds,
                         max_body_bytes=int(max_body_mb * 1024 * 1024), access_log=access_log,
                         on_ready=announce, sock=sock, grpc_port=grpc_port,
                         request_timeout_s=request_timeout, keep_alive_s=keep_alive)


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
      tfjsigr predict --url http://127.0.0.1:8501/v1/models/jsigr/labels/stable batch.npy
    """
    from tfjsigr.serving import client

    with user_errors():
        rows = client.classify_files(url, images)
    for path, index, label_name, probability in rows:
        click.echo(f"{path}\t{index}\t{label_name}\t{probability:.4f}")
