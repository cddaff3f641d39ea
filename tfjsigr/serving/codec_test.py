"""Tests of predict request decoding and response encoding."""

import json

import numpy as np
import orjson
import pytest

from tfjsigr.serving import backends, codec, protocol

SPEC = backends.TensorSpec("image", np.dtype("float32"), (None, 4, 3, 1))


def test_fast_path_agrees_with_the_general_path():
    images = np.random.default_rng(1).random((3, 4, 3, 1)).astype(np.float32)
    images[0, 0, 0, 0] = 1
    for body in (
        orjson.dumps({"instances": images}, option=orjson.OPT_SERIALIZE_NUMPY),
        json.dumps({"inputs": images.tolist()}, indent=2).encode(),
    ):
        fast = codec._fast_decode(body, SPEC)
        assert fast is not None
        slow = codec._slow_decode(body, SPEC)
        assert fast[0] == slow[0]
        np.testing.assert_array_equal(fast[1], slow[1])
        np.testing.assert_array_equal(fast[1], images)


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [[[[1],[2],[3]]]]}',  # wrong shape, same flat size per row is not met
        b'{"instances": [[1,2,3,4,5,6,7,8,9,10,11,12]]}',  # right count, wrong nesting
        b'{"instances": [[[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]],[[0],[0]],[0]]]]}',
        b'{"instances": [1e999]}',
        b'{"inputs": {"image": []}}',
    ],
)
def test_fast_path_declines_what_it_cannot_check(body):
    assert codec._fast_decode(body, SPEC) is None


def test_named_instances_and_columns():
    images = np.zeros((2, 4, 3, 1)).tolist()
    rows = json.dumps({"instances": [{"image": i} for i in images]}).encode()
    columns = json.dumps({"signature_name": "serving_default", "inputs": {"image": images}}).encode()
    assert codec.decode_predict_request(rows, SPEC)[0] == "instances"
    kind, array = codec.decode_predict_request(columns, SPEC)
    assert kind == "inputs" and array.shape == (2, 4, 3, 1) and array.dtype == np.float32


@pytest.mark.parametrize(
    "value, message",
    [
        (np.zeros((2, 4, 3)).tolist(), "shape \\[2, 4, 3\\]"),
        (np.full((1, 4, 3, 1), -0.1).tolist(), "outside"),
        ([[[["x"]] * 3] * 4], "expected numbers"),
        ([np.zeros((4, 3, 1)).tolist(), [[0]]], "ragged|shape"),
    ],
)
def test_invalid_inputs_raise_request_errors(value, message):
    with pytest.raises(codec.RequestError, match=message):
        codec.decode_predict_request(json.dumps({"instances": value}).encode(), SPEC)


def test_nan_is_named_in_the_error():
    body = json.dumps({"instances": np.full((1, 4, 3, 1), np.nan).tolist()}).encode()
    with pytest.raises(codec.RequestError, match="NaN"):
        codec.decode_predict_request(body, SPEC)


def test_response_formats():
    outputs = {"logits": np.array([[1.0, 2.0]], np.float32), "probabilities": np.array([[0.25, 0.75]], np.float32)}
    rows = orjson.loads(codec.encode_predict_response("instances", outputs))
    assert rows == {"predictions": [{"logits": [1.0, 2.0], "probabilities": [0.25, 0.75]}]}
    columns = orjson.loads(codec.encode_predict_response("inputs", outputs))
    assert columns == {"outputs": {"logits": [[1.0, 2.0]], "probabilities": [[0.25, 0.75]]}}
    single = orjson.loads(codec.encode_predict_response("instances", {"y": outputs["logits"]}))
    assert single == {"predictions": [[1.0, 2.0]]}


@pytest.mark.parametrize("named", [True, False])
def test_named_inputs_and_a_signature_name_take_the_fast_path(named):
    images = np.random.default_rng(2).random((3, 4, 3, 1)).astype(np.float32)
    rows = [{"image": row} for row in images] if named else images
    columns = {"image": images} if named else images
    for request in ({"signature_name": "serving_default", "instances": rows},
                    {"signature_name": "", "inputs": columns}, {"instances": rows}):
        body = orjson.dumps(request, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_INDENT_2)
        fast = codec._fast_decode(body, SPEC)
        assert fast is not None, body[:60]
        np.testing.assert_array_equal(fast[1], images)


@pytest.mark.parametrize("body", [
    (b'{"instances": [{"image": [[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]]]},'
     b' [[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]]]]}'),  # mixed
    (b'{"instances": [{"image": [[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]]]},'
     b' {"image": [[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]]]]}}'),  # bad JSON
    b'{"instances": [{"image": [[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]]], "x": 1}]}',
    b'{"inputs": {"image": [[[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]],[[0],[0],[0]]]]}, "x": 1}',
])
def test_the_named_fast_path_declines_what_is_not_exactly_named_instances(body):
    assert codec._fast_decode(body, SPEC) is None


@pytest.mark.parametrize("body, message", [
    (b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}", "too deep|nested too deeply"),
    (b'{"instances": [{"image": [0]}, [0]]}', "Expecting object but got list at item 1"),
    (b'{"instances": [[0], {"image": [0]}]}', "Expecting value/list but got object at item 1"),
    (b'{"signature_name": "", "instances": [[[[2]]]]}', "shape|outside"),
    (b'{"signature_name": "x", "instances": [1]}', 'Serving signature name: "x" not found'),
])
def test_client_errors_are_request_errors(body, message):
    with pytest.raises(protocol.ProtocolError, match=message) as error:
        codec.decode_predict_request(body, SPEC)
    assert error.value.http_status == 400


def test_extra_top_level_keys_are_ignored():
    images = np.zeros((2, 4, 3, 1)).tolist()
    body = json.dumps({"model": "x", "instances": images, "options": {"a": [1]}}).encode()
    kind, array = codec.decode_predict_request(body, SPEC)
    assert kind == "instances" and array.shape == (2, 4, 3, 1)
