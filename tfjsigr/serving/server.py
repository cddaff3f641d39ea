"""A local server for the zoo that speaks TF Serving's REST API (Starlette on uvicorn) and,
on its own port, its gRPC API (`grpc_server`)."""

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import os
import re
import signal
import socket

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tfjsigr.serving import batching, codec, protocol
from tfjsigr.serving import repository as repository_lib

logger = logging.getLogger("tfjsigr.serving")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501
DEFAULT_GRPC_PORT = 8500
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_REQUEST_TIMEOUT_S = 30.0
DEFAULT_KEEP_ALIVE_S = 5.0
# Requests are decoded and validated on these threads, never on the event loop.
DEFAULT_DECODE_WORKERS = min(4, os.cpu_count() or 1)
_API_PATH = re.compile(r"/v1/", re.IGNORECASE)  # TF Serving hands every path under /v1/ to its API.


def _json(data, status=200):
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(message, status):
    return _json({"error": message}, status)


async def _read_body(request, limit):
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"Request body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"Request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise HTTPException(400, "The client closed the connection before sending the body") from None
    return b"".join(chunks)


class _Handlers:
    def __init__(self, repository, max_body_bytes, pool):
        self.repository = repository
        self.max_body_bytes = max_body_bytes
        self.pool = pool

    async def api(self, request):
        path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        if not _API_PATH.match(path):
            return _error("Not Found", 404)
        try:
            route = protocol.parse_rest_path(request.method, path)
            spec = route.spec
            if route.action == "status":
                return _json(protocol.status_json(self.repository.status(spec)))
            servable = self.repository.resolve(spec.name, spec.version, spec.label)
            if route.action == "metadata":
                return _json(protocol.metadata_json(servable.metadata))
            if route.action != "predict":  # classify, regress: the model has no such signature
                kind = {"classify": "classification", "regress": "regression"}[route.action]
                raise protocol.invalid(
                    f"Expected {kind} signature method_name to be tensorflow/serving/"
                    f"{route.action}. Was: {protocol.PREDICT_METHOD}")
            return await self._predict(request, spec, servable)
        except protocol.ProtocolError as error:
            return _error(error.message, error.http_status)

    async def _decode(self, body, servable):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.pool, codec.decode_predict_request, body, servable.signature.input)

    async def _predict(self, request, spec, servable):
        body = await _read_body(request, self.max_body_bytes)
        kind, batch = await self._decode(body, servable)
        try:
            outputs = await servable.batcher.submit(batch)
        except batching.BatcherClosed:
            # Unloaded by a reload while this request was read: ask again (a newer version
            # for an unversioned request, 404 for a version no longer served).
            servable = self.repository.resolve(spec.name, spec.version, spec.label)
            kind, batch = await self._decode(body, servable)
            outputs = await servable.batcher.submit(batch)
        return Response(codec.encode_predict_response(kind, outputs),
                        media_type="application/json")

    async def health(self, request):
        models = self.repository.served()
        refused = {name: {str(v): reason for v, reason in versions.items()}
                   for name, versions in self.repository.refused().items()}
        healthy = bool(models)
        return _json({"status": "ok" if healthy else "no models", "models": models,
                      "refused": refused}, 200 if healthy else 503)


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


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, where a slow or idle client cannot hold a connection.

    A request must arrive whole (headers and body) within `request_timeout_s` of the
    connection's opening, or of the first byte of the next request on a kept-alive
    connection; otherwise the server answers 408 (when it has not answered yet) and closes
    the connection. Between requests, uvicorn's keep-alive timeout applies.
    """

    request_timeout_s = DEFAULT_REQUEST_TIMEOUT_S
    _timer = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self):
        super().on_message_begin()
        if self._timer is None:
            self._arm()

    def on_message_complete(self):
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc):
        self._disarm()
        super().connection_lost(exc)

    def _arm(self):
        self._timer = self.loop.call_later(self.request_timeout_s, self._expire)

    def _disarm(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self):
        self._timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            body = orjson.dumps({"error": f"Request not received within {self.request_timeout_s:g} s"})
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(body), body))
        self.transport.close()


def http_protocol(request_timeout_s=DEFAULT_REQUEST_TIMEOUT_S):
    """A `TimedHttpProtocol` class with this timeout, for uvicorn's `http` setting."""
    return type("TimedHttpProtocol", (TimedHttpProtocol,), {"request_timeout_s": request_timeout_s})


def create_app(zoo_dir, backend="savedmodel", poll_interval_s=1.0,
               max_body_bytes=DEFAULT_MAX_BODY_BYTES, grpc_port=None, grpc_host=DEFAULT_HOST,
               decode_workers=DEFAULT_DECODE_WORKERS, **repository_options):
    """The ASGI app of the local server (and its gRPC server, when given a port).

    Args:
        zoo_dir: the zoo directory.
        backend: "savedmodel" (TensorFlow) or "onnx" (onnxruntime).
        poll_interval_s: how often to look for new version directories; 0 turns it off.
        max_body_bytes: larger request bodies get 413.
        grpc_port: the gRPC port (0: a free one), or None for REST only. The gRPC server is
            `app.state.grpc`; it starts with the app unless started before, and its port is
            `app.state.grpc.port` once started.
        grpc_host: the address the gRPC server binds.
        decode_workers: threads that decode and validate request bodies.
        **repository_options: passed to `ModelRepository` (num_versions, max_batch_size,
            batch_timeout_s).

    Returns:
        A Starlette app; its lifespan loads the models and unloads them at shutdown.
    """
    from tfjsigr.serving import grpc_server

    repository = repository_lib.ModelRepository(zoo_dir, backend, **repository_options)
    pool = concurrent.futures.ThreadPoolExecutor(decode_workers, thread_name_prefix="decode")
    handlers = _Handlers(repository, max_body_bytes, pool)
    grpc = None if grpc_port is None else grpc_server.GrpcServer(repository, grpc_host, grpc_port)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await asyncio.to_thread(repository.refresh)
        if grpc is not None and grpc.port is None:
            await asyncio.to_thread(grpc.start)
        # Requests build many short-lived lists; without this, collections keep scanning the
        # long-lived TensorFlow objects and stall requests for tens of milliseconds.
        gc.freeze()
        poller = asyncio.create_task(_poll(repository, poll_interval_s)) if poll_interval_s else None
        try:
            yield
        finally:
            if poller:
                poller.cancel()
            if grpc is not None:
                await asyncio.to_thread(grpc.stop)
            await asyncio.to_thread(repository.close)
            pool.shutdown(wait=False, cancel_futures=True)

    app = Starlette(
        routes=[
            Route("/healthz", handlers.health, methods=["GET"]),
            Route("/{path:path}", handlers.api,
                  methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.repository = repository
    app.state.grpc = grpc
    return app


def serve(zoo_dir, host=DEFAULT_HOST, port=DEFAULT_PORT, backend="savedmodel", log_level="info",
          access_log=False, on_ready=None, sock=None, grpc_port=DEFAULT_GRPC_PORT,
          request_timeout_s=DEFAULT_REQUEST_TIMEOUT_S, keep_alive_s=DEFAULT_KEEP_ALIVE_S,
          **app_options):
    """Serves a zoo until interrupted (SIGINT/SIGTERM finish the requests in flight first).

    Binds the ports, then loads the models before listening: versions that do not verify
    against their card or fail to load are logged and left out, and when none loads it
    raises instead of serving nothing.

    Args:
        zoo_dir: the zoo directory.
        host: the address to bind (REST and gRPC); loopback by default.
        port: the REST port; 0 picks a free one.
        backend: "savedmodel" or "onnx".
        log_level: uvicorn's log level.
        access_log: log one line per request (off by default, like TF Serving).
        on_ready: called as `on_ready(url, served, grpc_url)` once the models are loaded,
            with the REST base URL (holding the real port), the served versions
            (`ModelRepository.served()`) and the gRPC URL (None without gRPC).
        sock: a socket from `bind_socket(host, port)`, to check the address before
            anything else; bound here when None.
        grpc_port: the gRPC port (0: a free one), or None for REST only.
        request_timeout_s: a REST request must arrive whole within this time (else 408).
        keep_alive_s: an idle kept-alive REST connection is closed after this time.
        **app_options: passed to `create_app`.

    Raises:
        OSError: host:port or host:grpc_port cannot be bound.
        ValueError: no model version of the zoo loads.
    """
    sock = bind_socket(host, port) if sock is None else sock
    with sock, _logging_to_stderr(log_level):
        app = create_app(zoo_dir, backend, grpc_port=grpc_port, grpc_host=host, **app_options)
        grpc = app.state.grpc
        if grpc is not None:
            grpc.start()  # Before the minutes of loading models.
        try:
            served = _load_or_raise(app.state.repository, zoo_dir)
            # uvicorn re-raises the signal once it has shut down gracefully; as handled
            # signals they end the process with status 0, not a traceback or a kill status.
            signal.signal(signal.SIGTERM, _exit_cleanly)
            signal.signal(signal.SIGINT, _exit_cleanly)
            config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                    access_log=access_log, timeout_graceful_shutdown=10,
                                    server_header=False, http=http_protocol(request_timeout_s),
                                    timeout_keep_alive=keep_alive_s)
            if on_ready is not None:
                on_ready(_base_url(host, sock.getsockname()[1]), served,
                         grpc and grpc.url)
            _GracefulServer(config).run(sockets=[sock])
        finally:
            if grpc is not None:
                grpc.stop()


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
