"""Tests of the local server's gRPC API: the project's client and the official stubs."""

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

from tfjsigr.serving import Client, ServingError, create_app, testing


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    zoo_dir = tmp_path_factory.mktemp("zoo")
    return zoo_dir, testing.write_tiny_zoo(zoo_dir, versions=(1, 2))


@pytest.fixture(scope="module")
def target(zoo):
    app = create_app(zoo[0], poll_interval_s=0, grpc_port=0)
    with testing.running_server(app):
        yield f"127.0.0.1:{app.state.grpc.port}"


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(8).random((4, 28, 28, 1), dtype=np.float32)


def logits_of(zoo, version, images):
    return zoo[1][("tiny", version)](images, training=False).numpy()


def test_the_projects_grpc_client(zoo, target, images):
    with Client(f"grpc://{target}") as client:
        latest = client.predict("tiny", images)
        stable = client.predict("tiny", images, label="stable")
        split = client.predict("tiny", images, version=2, max_images_per_request=3)
        status = client.status("tiny")
        one = client.status("tiny", label="canary")
        metadata = client.metadata("tiny", version=1)
    np.testing.assert_allclose(latest["logits"], logits_of(zoo, 2, images), atol=1e-5)
    np.testing.assert_allclose(stable["logits"], logits_of(zoo, 1, images), atol=1e-5)
    np.testing.assert_allclose(split["logits"], latest["logits"], atol=1e-6)
    assert latest["probabilities"].shape == (4, 10)
    assert [(s["version"], s["state"]) for s in status["model_version_status"]] == [
        ("2", "AVAILABLE"), ("1", "AVAILABLE")]
    assert status["model_version_status"][0]["status"] == {"error_code": "OK", "error_message": ""}
    assert [s["version"] for s in one["model_version_status"]] == ["2"]
    assert metadata["model_spec"]["version"] == "1"
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    dims = [d["size"] for d in signature["inputs"]["image"]["tensor_shape"]["dim"]]
    assert dims == ["-1", "28", "28", "1"] and sorted(signature["outputs"]) == ["logits", "probabilities"]


def test_rest_and_grpc_answer_the_same_metadata_and_status(zoo, images):
    app = create_app(zoo[0], poll_interval_s=0, grpc_port=0)
    with testing.running_server(app) as url, Client(url) as rest, \
            Client(app.state.grpc.url) as grpc_client:
        assert rest.metadata("tiny") == grpc_client.metadata("tiny")
        assert rest.status("tiny") == grpc_client.status("tiny")


@pytest.mark.parametrize("call, code, message", [
    (lambda c, x: c.predict("nope", x), "NOT_FOUND", "Latest\\(nope\\)"),
    (lambda c, x: c.predict("tiny", x, version=7), "NOT_FOUND", "Specific\\(tiny, 7\\)"),
    (lambda c, x: c.predict("tiny", x, label="beta"), "INVALID_ARGUMENT", "label: beta"),
    (lambda c, x: c.predict("tiny", x[:, :27]), "INVALID_ARGUMENT", "shape \\[4, 27, 28, 1\\]"),
    (lambda c, x: c.predict("tiny", x + 1), "INVALID_ARGUMENT", "outside \\[0.0, 1.0\\]"),
    (lambda c, x: c.predict("tiny", x, input_name="x"), "INVALID_ARGUMENT", "does not match"),
    (lambda c, x: c.status("nope"), "NOT_FOUND", "Latest\\(nope\\)"),
    (lambda c, x: c.metadata("tiny", label="beta"), "INVALID_ARGUMENT", "label: beta"),
])
def test_grpc_errors_have_tf_servings_codes(target, images, call, code, message):
    with Client(f"grpc://{target}") as client:
        with pytest.raises(ServingError, match=message) as error:
            call(client, images)
        assert error.value.status == code
        assert client.predict("tiny", images[:1])["logits"].shape == (1, 10)


def test_a_client_written_with_the_official_stubs_only(zoo, target, images):
    with grpc.insecure_channel(target) as channel:
        predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "tiny"
        request.model_spec.version_label = "stable"
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(images))
        request.output_filter.append("logits")
        answer = predictions.Predict(request, timeout=30)
        # A client that lists the values (float_val) instead of tensor_content.
        listed = predict_pb2.PredictRequest()
        listed.model_spec.name = "tiny"
        listed.model_spec.version.value = 2
        listed.model_spec.signature_name = "serving_default"
        tensor = listed.inputs["image"]
        tensor.dtype = tf.float32.as_datatype_enum
        tensor.tensor_shape.dim.add(size=1)
        for size in (28, 28, 1):
            tensor.tensor_shape.dim.add(size=size)
        tensor.float_val.extend(images[0].ravel().tolist())
        listed_answer = predictions.Predict(listed, timeout=30)
        metadata = predictions.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec={"name": "tiny"}, metadata_field=["signature_def"]), timeout=30)
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "tiny"}), timeout=30)
        with pytest.raises(grpc.RpcError) as error:
            wrong = predict_pb2.PredictRequest()
            wrong.CopyFrom(request)
            wrong.model_spec.signature_name = "other"
            predictions.Predict(wrong, timeout=30)
    assert list(answer.outputs) == ["logits"]
    assert (answer.model_spec.name, answer.model_spec.version.value) == ("tiny", 1)
    np.testing.assert_allclose(tf.make_ndarray(answer.outputs["logits"]), logits_of(zoo, 1, images),
                               atol=1e-5)
    np.testing.assert_allclose(tf.make_ndarray(listed_answer.outputs["probabilities"]),
                               tf.nn.softmax(logits_of(zoo, 2, images[:1])).numpy(), atol=1e-5)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.inputs["image"].dtype == tf.float32.as_datatype_enum
    assert signature.method_name == "tensorflow/serving/predict"
    assert [s.version for s in status.model_version_status] == [2, 1]
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert 'Serving signature key "other" not found' in error.value.details()


def test_a_grpc_port_in_use_is_a_one_line_os_error(zoo):
    app = create_app(zoo[0], poll_interval_s=0, grpc_port=0)
    with testing.running_server(app):
        taken = create_app(zoo[0], poll_interval_s=0, grpc_port=app.state.grpc.port).state.grpc
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{app.state.grpc.port} \\(gRPC\\)"):
            taken.start()
