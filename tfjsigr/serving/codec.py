"""TF Serving's REST predict format: request decoding with validation, response encoding."""

import functools
import json
import re
import threading

import numpy as np
import orjson
import simdjson

# The common request `{"instances": [[...numbers...]]}` is decoded without building nested
# Python lists: simdjson flattens the nested array straight into a float64 buffer, and the
# shape is checked by comparing the body's bracket skeleton (numbers and whitespace removed)
# with the one of the expected shape. Anything else takes the general path.
_FAST_HEAD = re.compile(rb'\A\s*\{\s*"(instances|inputs)"\s*:\s*\[')
_SKELETON_DROPS = b"0123456789.eE+- \t\r\n"
_local = threading.local()


class RequestError(ValueError):
    """A predict request the server answers with 400 and `{"error": message}`."""


def _loads(body):
    try:
        # The standard parser, unlike orjson, reads NaN and Infinity, so they get their own
        # error message instead of "bad JSON".
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(f"JSON Parse error: {error}") from None


@functools.lru_cache(maxsize=64)
def _skeleton(kind, shape):
    inner = b""
    for size in reversed(shape):
        inner = b"[" + b",".join([inner] * size) + b"]"
    return (b'{"' + kind.encode() + b'":' + inner + b"}").translate(None, _SKELETON_DROPS)


def _flat_numbers(body, kind):
    parser = getattr(_local, "parser", None) or simdjson.Parser()
    _local.parser = parser
    document = parser.parse(body)
    try:
        return np.frombuffer(document[kind].as_buffer(of_type="d"), np.float64)
    finally:
        del document  # The parser can only be reused once its document is gone.


def _fast_decode(body, spec):
    head = _FAST_HEAD.match(body)
    if head is None or None in spec.shape[1:]:
        return None
    kind = head.group(1).decode()
    try:
        numbers = _flat_numbers(body, kind)
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError):
        return None
    row = int(np.prod(spec.shape[1:]))
    if not len(numbers) or len(numbers) % row:
        return None
    shape = (len(numbers) // row, *spec.shape[1:])
    if body.translate(None, _SKELETON_DROPS) != _skeleton(kind, shape):
        return None
    return kind, numbers.astype(spec.dtype).reshape(shape)


def _to_array(value, spec, what):
    try:
        array = np.asarray(value)
    except ValueError:
        raise RequestError(f"{what}: ragged nested lists, expected a tensor") from None
    if array.dtype.kind not in "iuf":
        raise RequestError(
            f"{what}: expected numbers for {np.dtype(spec.dtype).name} input "
            f"{spec.name!r}, got {array.dtype.kind!r} values"
        )
    return array


def _named(value, spec, what):
    if not isinstance(value, dict):
        return value
    if set(value) != {spec.name}:
        raise RequestError(f"{what}: expected the input {spec.name!r}, got {sorted(value)}")
    return value[spec.name]


def _slow_decode(body, spec):
    request = _loads(body)
    if not isinstance(request, dict):
        raise RequestError("Request body must be a JSON object")
    keys = set(request) - {"signature_name"}
    signature = request.get("signature_name", "serving_default")
    if signature != "serving_default":
        raise RequestError(f"Serving signature name: {signature!r} not found in signature def")
    if keys not in ({"instances"}, {"inputs"}):
        raise RequestError('Request body must have exactly one of "instances" or "inputs"')
    kind = keys.pop()
    value = request[kind]
    if kind == "instances":
        if not isinstance(value, list) or not value:
            raise RequestError('"instances" must be a non-empty list')
        if any(isinstance(v, dict) for v in value):
            value = [_named(v, spec, "instances") for v in value]
    else:
        value = _named(value, spec, "inputs")
    return kind, _to_array(value, spec, kind).astype(spec.dtype)


def _validate(array, spec, value_range):
    expected = list(spec.shape)
    if array.ndim != len(expected) or any(
        e is not None and e != a for e, a in zip(expected, array.shape)
    ):
        shown = [-1 if e is None else e for e in expected]
        raise RequestError(
            f"Input {spec.name!r} has shape {list(array.shape)}, expected {shown}"
        )
    if array.shape[0] == 0:
        raise RequestError(f"Input {spec.name!r} is an empty batch")
    if not np.isfinite(array).all():
        raise RequestError(f"Input {spec.name!r} contains NaN or infinity")
    low, high = value_range
    if array.min() < low or array.max() > high:
        raise RequestError(f"Input {spec.name!r} has values outside [{low}, {high}]")


def decode_predict_request(body, spec, value_range=(0.0, 1.0)):
    """Decodes and validates the body of a `:predict` request.

    Args:
        body: the raw request body (bytes).
        spec: the `TensorSpec` of the signature's input (first dim the batch).
        value_range: the (low, high) every input value must lie in.

    Returns:
        A tuple (`"instances"` or `"inputs"`, the input batch as a numpy array).

    Raises:
        RequestError: bad JSON, wrong keys, shape, dtype, NaN/inf or out-of-range values.
    """
    decoded = _fast_decode(body, spec) or _slow_decode(body, spec)
    _validate(decoded[1], spec, value_range)
    return decoded


def encode_predict_response(kind, outputs):
    """The JSON body TF Serving returns for a predict request.

    Args:
        kind: "instances" (row format: `predictions`) or "inputs" (columnar: `outputs`).
        outputs: dict from output name to numpy array, first dim the batch.

    Returns:
        The response body (bytes).
    """
    names = sorted(outputs)
    if kind == "inputs":
        value = outputs[names[0]] if len(names) == 1 else {n: outputs[n] for n in names}
        return orjson.dumps({"outputs": value}, option=orjson.OPT_SERIALIZE_NUMPY)
    if len(names) == 1:
        predictions = outputs[names[0]]
    else:
        rows = len(outputs[names[0]])
        predictions = [{n: outputs[n][i] for n in names} for i in range(rows)]
    return orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
