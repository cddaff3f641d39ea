"""Tests of the gRPC side of `Client`, and of the client against a real TF Serving."""

import concurrent.futures
import shutil
import subprocess
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfjsigr.serving import Client, ServingError, backends, config, testing


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer,
                        model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving's gRPC services for one model version, answering the way it does."""

    def __init__(self, name, version_dir, version):
        self.name, self.version = name, version
        self.backend = backends.SavedModelBackend(version_dir)
        self.requests = []

    def _check(self, spec, context):
        self.requests.append(spec)
        if spec.name != self.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")

    def Predict(self, request, context):
        self._check(request.model_spec, context)
        outputs = self.backend.run(tf.make_ndarray(request.inputs["image"]))
        answer = predict_pb2.PredictResponse()
        answer.model_spec.name = self.name
        for name, value in outputs.items():
            answer.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return answer

    def GetModelStatus(self, request, context):
        self._check(request.model_spec, context)
        answer = get_model_status_pb2.GetModelStatusResponse()
        status = answer.model_version_status.add()
        status.version, status.state = self.version, get_model_status_pb2.ModelVersionStatus.AVAILABLE
        status.status.SetInParent()  # error_code OK
        return answer

    def GetModelMetadata(self, request, context):
        self._check(request.model_spec, context)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        signature = signatures.signature_def["serving_default"]
        signature.method_name = "tensorflow/serving/predict"
        signature.inputs["image"].dtype = tf.float32.as_datatype_enum
        answer = get_model_metadata_pb2.GetModelMetadataResponse()
        answer.model_spec.name = self.name
        answer.metadata["signature_def"].Pack(signatures)
        return answer


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    zoo_dir = tmp_path_factory.mktemp("zoo")
    return zoo_dir, testing.write_tiny_zoo(zoo_dir, versions=(1, 2))


def test_grpc_client_speaks_tf_servings_protos(zoo):
    zoo_dir, models = zoo
    service = PredictionService("tiny", zoo_dir / "tiny" / "saved_model" / "1", 1)
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    images = np.random.default_rng(3).random((4, 28, 28, 1), dtype=np.float32)
    try:
        with Client(f"grpc://127.0.0.1:{port}") as client:
            outputs = client.predict("tiny", images, label="stable")
            split = client.predict("tiny", images, label="stable", max_images_per_request=3)
            status = client.status("tiny", version=1)
            metadata = client.metadata("tiny")
            with pytest.raises(ServingError, match="Latest\\(nope\\)") as error:
                client.predict("nope", images)
    finally:
        server.stop(grace=None)
    np.testing.assert_allclose(outputs["logits"], models[("tiny", 1)](images).numpy(), atol=1e-5)
    assert outputs["probabilities"].shape == (4, 10)
    np.testing.assert_allclose(split["logits"], outputs["logits"], atol=1e-6)
    assert [r.version_label for r in service.requests[:3]] == ["stable"] * 3
    assert service.requests[3].version.value == 1
    assert status == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["image"]["dtype"] == "DT_FLOAT"
    assert error.value.status == "NOT_FOUND"


@pytest.mark.parametrize("body", [{}, [1, 2], b"<html>hello</html>", b""])
def test_answers_unlike_tf_servings_are_serving_errors(body):
    with testing.answering_server(lambda path: body) as url, Client(url) as client:
        for call in (client.status, client.metadata,
                     lambda name: client.predict(name, np.zeros((1, 2, 2, 1), np.float32))):
            with pytest.raises(ServingError, match="did not answer like TF Serving") as error:
                call("tiny")
            assert error.value.status == "INVALID_ANSWER"


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_predict_refuses_images_json_cannot_carry(value):
    images = np.zeros((1, 2, 2, 1), np.float32)
    images[0, 1, 1, 0] = value
    with Client("http://127.0.0.1:1") as client, pytest.raises(ValueError, match="NaN or inf"):
        client.predict("tiny", images)


@pytest.mark.parametrize("limit", [0, -1, 2.5, True])
def test_predict_refuses_a_bad_request_size(limit):
    with Client("http://127.0.0.1:1") as client, pytest.raises(ValueError, match="max_images_per_request"):
        client.predict("tiny", np.zeros((1, 2, 2, 1), np.float32), max_images_per_request=limit)


def test_client_rejects_unknown_schemes():
    with pytest.raises(ValueError, match="grpc://"):
        Client("ftp://127.0.0.1:8500")


def _wait_for(client, name, deadline):
    while time.monotonic() < deadline:
        try:
            return client.status(name)
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    raise TimeoutError("tensorflow_model_server did not serve the model in time")


def test_same_client_against_a_real_tensorflow_model_server(zoo, tmp_path):
    binary = shutil.which("tensorflow_model_server")
    if binary is None:
        reason = "tensorflow_model_server is not on PATH: skipping the check against real TF Serving"
        print(f"\nSKIPPED: {reason}")
        pytest.skip(reason)
    zoo_dir, models = zoo
    written = config.write_serving_config(zoo_dir, tmp_path, base_path_root=str(zoo_dir))
    grpc_port, rest_port = testing.free_port(), testing.free_port()
    process = subprocess.Popen(
        [binary, f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         f"--model_config_file={written['models.config']}",
         "--allow_version_labels_for_unavailable_models=true"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    images = np.random.default_rng(4).random((3, 28, 28, 1), dtype=np.float32)
    try:
        for url in (f"http://127.0.0.1:{rest_port}", f"grpc://127.0.0.1:{grpc_port}"):
            with Client(url) as client:
                _wait_for(client, "tiny", time.monotonic() + 60)
                for version, label in ((2, "canary"), (1, "stable")):
                    outputs = client.predict("tiny", images, label=label, input_name="image")
                    np.testing.assert_allclose(
                        outputs["logits"], models[("tiny", version)](images).numpy(), atol=1e-4
                    )
                with pytest.raises(ServingError):
                    client.predict("nope", images, input_name="image")
    finally:
        process.terminate()
        process.wait(timeout=30)
