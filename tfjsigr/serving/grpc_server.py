"""TF Serving's gRPC API for the local server: PredictionService.Predict and GetModelMetadata,
ModelService.GetModelStatus, on the official protos (tensorflow-serving-api) and grpcio.

It serves the same `ModelRepository` as the REST API (the same versions, labels, hot reload
and verification), from its own thread and asyncio loop, so neither API's traffic runs on
the other's event loop.
"""

import asyncio
import threading

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

from tfjsigr.serving import batching, codec, protocol

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_GRACE_S = 10.0


class _Service(prediction_service_pb2_grpc.PredictionServiceServicer,
               model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository):
        self.repository = repository

    def _servable(self, model_spec):
        spec = protocol.spec_from_proto(model_spec)
        return self.repository.resolve(spec.name, spec.version, spec.label)

    async def Predict(self, request, context):
        try:
            protocol.check_signature_name(request.model_spec.signature_name, grpc=True)
            servable = self._servable(request.model_spec)
            try:
                outputs = await servable.batcher.submit(_input(request, servable.signature))
            except batching.BatcherClosed:  # Unloaded meanwhile: ask again, as REST does.
                servable = self._servable(request.model_spec)
                outputs = await servable.batcher.submit(_input(request, servable.signature))
            names = list(request.output_filter) or sorted(outputs)
            for name in names:
                if name not in outputs:
                    raise protocol.invalid(f"output tensor alias not found in signature: {name}")
            answer = predict_pb2.PredictResponse()
            answer.model_spec.name = servable.name
            answer.model_spec.version.value = servable.version
            answer.model_spec.signature_name = protocol.DEFAULT_SIGNATURE
            for name in names:
                answer.outputs[name].CopyFrom(protocol.array_to_tensor(outputs[name]))
            return answer
        except protocol.ProtocolError as error:
            await context.abort(getattr(grpc.StatusCode, error.code), error.message)

    async def GetModelMetadata(self, request, context):
        try:
            fields = set(request.metadata_field)
            if not fields:
                raise protocol.invalid("GetModelMetadataRequest must specify at least one "
                                       "metadata_field")
            for field in fields - {"signature_def"}:
                raise protocol.invalid(f"Metadata field {field} is not supported")
            return self._servable(request.model_spec).metadata
        except protocol.ProtocolError as error:
            await context.abort(getattr(grpc.StatusCode, error.code), error.message)

    async def GetModelStatus(self, request, context):
        try:
            return self.repository.status(protocol.spec_from_proto(request.model_spec))
        except protocol.ProtocolError as error:
            await context.abort(getattr(grpc.StatusCode, error.code), error.message)


def _input(request, signature):
    """The validated input batch of a PredictRequest (as the REST codec validates it)."""
    spec = signature.input
    if set(request.inputs) != {spec.name}:
        raise protocol.invalid(
            f"input size does not match signature: {len(request.inputs)}!=1 "
            f"len({{{','.join(sorted(request.inputs))}}}) != len({{{spec.name}}})")
    array = protocol.tensor_to_array(request.inputs[spec.name], f"input {spec.name!r}")
    if array.dtype != spec.dtype:
        raise protocol.invalid(f"Expects input {spec.name!r} to be {spec.dtype.name} but "
                               f"{array.dtype.name} is provided")
    codec.validate(array, spec)
    return array


class GrpcServer:
    """The gRPC server of a repository, on its own thread and event loop.

    Args:
        repository: the `ModelRepository` to serve.
        host: the address to bind.
        port: the port; 0 picks a free one (`port` holds it once started).
        grace_s: how long `stop` lets the calls in flight finish.
    """

    def __init__(self, repository, host, port, grace_s=DEFAULT_GRACE_S):
        self.repository = repository
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.host, self.grace_s = host, grace_s
        self.port = None
        self._requested_port = port
        self._thread = self._loop = self._stop = None

    @property
    def url(self):
        """grpc://HOST:PORT, once started."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"grpc://{host}:{self.port}"

    def start(self):
        """Binds the port and starts serving.

        Raises:
            OSError: the address cannot be bound; the message names it.
        """
        ready, failure = threading.Event(), []
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name="grpc",
                                        daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def _run(self, ready, failure):
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve(ready, failure))
        finally:
            self._loop.close()
            ready.set()

    async def _serve(self, ready, failure):
        server = grpc.aio.server(options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                          ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                          ("grpc.so_reuseport", 0)])
        service = _Service(self.repository)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(service, server)
        try:
            port = server.add_insecure_port(self.address)
        except RuntimeError as error:
            port, reason = 0, str(error)
        else:
            reason = "address in use or not this machine's"
        if not port:
            failure.append(OSError(f"cannot listen on {self.address} (gRPC): {reason}"))
            return
        await server.start()
        self.port, self._stop = port, asyncio.Event()
        ready.set()
        await self._stop.wait()
        await server.stop(self.grace_s)

    def stop(self):
        """Stops serving, letting the calls in flight finish (within `grace_s`)."""
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

