"""A local server for the zoo that speaks TF Serving's REST API (Starlette on uvicorn)."""

import asyncio
import contextlib
import gc
import logging
import re
import signal
import socket

import numpy as np
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Route

from tfjsigr.serving import batching, codec
from tfjsigr.serving import repository as repository_lib

logger = logging.getLogger("tfjsigr.serving")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
_PATH = re.compile(
    r"\A(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:[A-Za-z]+)?\Z"
)
_DTYPES = {np.dtype("float32"): "DT_FLOAT", np.dtype("float64"): "DT_DOUBLE",
           np.dtype("int32"): "DT_INT32", np.dtype("int64"): "DT_INT64",
           np.dtype("uint8"): "DT_UINT8"}


def _json(data, status=200):
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(message, status):
    return _json({"error": message}, status)


def _status_entry(version):
    return {"version": str(version), "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}


def _tensor_info(spec):
    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape]
    return {"dtype": _DTYPES.get(spec.dtype, "DT_INVALID"),
            "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": spec.name}


def _metadata(servable):
    signature = servable.signature
    signature_def = {
        "inputs": {s.name: _tensor_info(s) for s in signature.inputs},
        "outputs": {s.name: _tensor_info(s) for s in signature.outputs},
        "method_name": "tensorflow/serving/predict",
        "defaults": {},
    }
    return {
        "model_spec": {"name": servable.name, "signature_name": "",
                       "version": str(servable.version)},
        "metadata": {"signature_def": {"signature_def": {"serving_default": signature_def}}},
    }


async def _read_body(request, limit):
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"Request body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"Request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class _Handlers:
    def __init__(self, repository, max_body_bytes):
        self.repository = repository
        self.max_body_bytes = max_body_bytes

    def _servable(self, match):
        version = match["version"]
        if version is not None and not version.isdigit():
            raise repository_lib.NotFound(f"Invalid version in request: {version}")
        return self.repository.resolve(
            match["name"], None if version is None else int(version), match["label"]
        )

    async def models(self, request):
        match = _PATH.match(request.path_params["path"])
        if match is None:
            return _error(f"Malformed request: {request.method} {request.url.path}", 404)
        suffix = match["suffix"]
        try:
            if suffix is None and request.method == "GET":
                return self._status(match)
            if suffix == "/metadata" and request.method == "GET":
                return _json(_metadata(self._servable(match)))
            if suffix == ":predict" and request.method == "POST":
                return await self._predict(request, match)
        except repository_lib.NotFound as error:
            return _error(str(error), 404)
        except codec.RequestError as error:
            return _error(str(error), 400)
        return _error(f"Malformed request: {request.method} {request.url.path}", 404)

    def _status(self, match):
        if match["version"] is None and match["label"] is None:
            versions = self.repository.versions(match["name"])
        else:
            versions = [self._servable(match).version]
        return _json({"model_version_status": [_status_entry(v) for v in reversed(versions)]})

    async def _predict(self, request, match):
        servable = self._servable(match)
        body = await _read_body(request, self.max_body_bytes)
        kind, batch = codec.decode_predict_request(body, servable.signature.input)
        try:
            outputs = await servable.batcher.submit(batch)
        except batching.BatcherClosed:
            # Unloaded by a reload while this request was read: ask again (a newer version
            # for an unversioned request, 404 for a version no longer served).
            servable = self._servable(match)
            kind, batch = codec.decode_predict_request(body, servable.signature.input)
            outputs = await servable.batcher.submit(batch)
        return Response(codec.encode_predict_response(kind, outputs),
                        media_type="application/json")

    async def health(self, request):
        models = self.repository.served()
        healthy = bool(models)
        return _json({"status": "ok" if healthy else "no models", "models": models},
                     200 if healthy else 503)


async def _http_error(request, error):
    return _error(error.detail, error.status_code)


async def _internal_error(request, error):
    return _error(f"Internal error: {type(error).__name__}: {error}", 500)


async def _poll(repository, interval_s):
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(repository.refresh)
        except Exception:
            logger.exception("refreshing the zoo failed")


def create_app(zoo_dir, backend="savedmodel", poll_interval_s=1.0,
               max_body_bytes=DEFAULT_MAX_BODY_BYTES, **repository_options):
    """The ASGI app of the local server.

    Args:
        zoo_dir: the zoo directory.
        backend: "savedmodel" (TensorFlow) or "onnx" (onnxruntime).
        poll_interval_s: how often to look for new version directories; 0 turns it off.
        max_body_bytes: larger request bodies get 413.
        **repository_options: passed to `ModelRepository` (num_versions, max_batch_size,
            batch_timeout_s).

    Returns:
        A Starlette app; its lifespan loads the models and unloads them at shutdown.
    """
    repository = repository_lib.ModelRepository(zoo_dir, backend, **repository_options)
    handlers = _Handlers(repository, max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await asyncio.to_thread(repository.refresh)
        # Requests build many short-lived lists; without this, collections keep scanning the
        # long-lived TensorFlow objects and stall requests for tens of milliseconds.
        gc.freeze()
        poller = asyncio.create_task(_poll(repository, poll_interval_s)) if poll_interval_s else None
        try:
            yield
        finally:
            if poller:
                poller.cancel()
            await asyncio.to_thread(repository.close)

    app = Starlette(
        routes=[
            Route("/v1/models/{path:path}", handlers.models, methods=["GET", "POST"]),
            Route("/healthz", handlers.health, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.repository = repository
    return app


def serve(zoo_dir, host=DEFAULT_HOST, port=DEFAULT_PORT, backend="savedmodel", log_level="info",
          access_log=False, on_ready=None, sock=None, **app_options):
    """Serves a zoo until interrupted (SIGINT/SIGTERM finish the requests in flight first).

    Binds the port, then loads the models before listening: versions that fail to load are
    logged and left out, and when none loads it raises instead of serving nothing.

    Args:
        zoo_dir: the zoo directory.
        host: the address to bind; loopback by default.
        port: the REST port; 0 picks a free one.
        backend: "savedmodel" or "onnx".
        log_level: uvicorn's log level.
        access_log: log one line per request (off by default, like TF Serving).
        on_ready: called as `on_ready(url, served)` once the models are loaded, with the
            base URL (holding the real port) and the served versions
            (`ModelRepository.served()`).
        sock: a socket from `bind_socket(host, port)`, to check the address before
            anything else; bound here when None.
        **app_options: passed to `create_app`.

    Raises:
        OSError: host:port cannot be bound.
        ValueError: no model version of the zoo loads.
    """
    sock = bind_socket(host, port) if sock is None else sock
    with sock, _logging_to_stderr(log_level):
        app = create_app(zoo_dir, backend, **app_options)
        served = _load_or_raise(app.state.repository, zoo_dir)
        # uvicorn re-raises the signal once it has shut down gracefully; as handled signals
        # they end the process with status 0, not a KeyboardInterrupt traceback or a kill status.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        signal.signal(signal.SIGINT, _exit_cleanly)
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                access_log=access_log, timeout_graceful_shutdown=10,
                                server_header=False)
        if on_ready is not None:
            on_ready(_base_url(host, sock.getsockname()[1]), served)
        _GracefulServer(config).run(sockets=[sock])


def bind_socket(host, port):
    """A TCP socket bound to host:port (not listening yet), as uvicorn binds it.

    Args:
        host: the address to bind (IPv4, IPv6 or a host name).
        port: the TCP port; 0 picks a free one.

    Returns:
        The bound `socket.socket`.

    Raises:
        OSError: the address is invalid, in use or not this machine's; the message names
            host:port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as error:
        sock.close()
        reason = getattr(error, "strerror", None) or str(error)
        raise OSError(f"cannot listen on {_address(host, port)}: {reason}") from None
    return sock


class _GracefulServer(uvicorn.Server):
    """uvicorn's server, where a second signal does not force the exit.

    A forced exit skips the app's shutdown, so the models are never unloaded and the
    lifespan task dies with a traceback; shutdown is bounded by timeout_graceful_shutdown.
    """

    def handle_exit(self, sig, frame):
        if not self.should_exit:
            super().handle_exit(sig, frame)


@contextlib.contextmanager
def _logging_to_stderr(log_level):
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(log_level.upper())
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _address(host, port):
    """HOST:PORT, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _base_url(host, port):
    """http://HOST:PORT, with an IPv6 host in brackets."""
    return f"http://{_address(host, port)}"


def _load_or_raise(repository, zoo_dir):
    repository.refresh()
    served = repository.served()
    if served:
        return served
    failures = repository.failures()
    repository.close()
    if not failures:
        raise ValueError(f"{zoo_dir}: no SavedModel versions to serve")
    (name, version), first = next(iter(failures.items()))
    raise ValueError(
        f"{zoo_dir}: no model version could be loaded ({len(failures)} failed; "
        f"{name} version {version}: {first[:300]})"
    )


def _exit_cleanly(signum, frame):
    # Only the first signal exits: a later one would raise again inside asyncio's clean-up
    # of the first exit and print a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(0)
