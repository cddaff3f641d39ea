"""TF Serving's REST predict format: request decoding with validation, response encoding."""

import functools
import json
import re
import threading

import numpy as np
import orjson
import simdjson

from tfjsigr.serving import protocol

# The common request `{"instances": [[...numbers...]]}` is decoded without building nested
# Python lists: simdjson flattens the nested array straight into a float64 buffer, and the
# shape is checked by comparing the body's bracket skeleton (numbers and whitespace removed)
# with the one of the expected shape. Named inputs (`{"instances": [{"image": ...}, ...]}`,
# `{"inputs": {"image": ...}}`) take the same path once their names are stripped. Anything
# else takes the general path.
_FAST_HEAD = re.compile(
    rb'\A\s*\{\s*(?:"signature_name"\s*:\s*"(?:serving_default)?"\s*,\s*)?'
    rb'"(instances|inputs)"\s*:\s*(?=[\[{])')
_NAMED_START = re.compile(rb"\[?\s*\{")
_SKELETON_DROPS = b"0123456789.eE+- \t\r\n"
# Bodies that simdjson refuses and that are no larger are read again by the standard parser.
_STANDARD_PARSER_BYTES = 1 << 20
_local = threading.local()


class RequestError(protocol.ProtocolError, ValueError):
    """A predict request the server answers with 400 and `{"error": message}`."""

    def __init__(self, message):
        super().__init__("INVALID_ARGUMENT", message)


def _loads(body):
    try:
        # The standard parser, unlike orjson, reads NaN and Infinity, so they get their own
        # error message instead of "bad JSON".
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(f"JSON Parse error: {error}") from None
    except RecursionError:
        raise RequestError("JSON Parse error: nested too deeply") from None


@functools.lru_cache(maxsize=64)
def _skeleton(shape, end=b"}"):
    """The bracket skeleton of a nested list of this shape, then `end`."""
    inner = b""
    for size in reversed(shape):
        inner = b"[" + b",".join([inner] * size) + b"]"
    return (inner + end).translate(None, _SKELETON_DROPS)


def _flat_numbers(body, kind):
    parser = getattr(_local, "parser", None) or simdjson.Parser()
    _local.parser = parser
    document = parser.parse(body)
    try:
        return np.frombuffer(document[kind].as_buffer(of_type="d"), np.float64)
    finally:
        del document  # The parser can only be reused once its document is gone.


@functools.lru_cache(maxsize=16)
def _name_pattern(name):
    return re.compile(rb'\{\s*"' + re.escape(name.encode()) + rb'"\s*:\s*')


def _unnamed(body, head, name):
    """A body of named inputs, rewritten without the names; None unless every instance (or
    the one "inputs" object) is an object of that one name."""
    region = body[head.end():]
    stripped, count = _name_pattern(name).subn(b"", region)
    if not count or b"{" in stripped or stripped.count(b"}") != count + 1:
        return None
    try:  # Valid JSON, and exactly the objects that were stripped.
        document = simdjson.Parser().parse(body)
        value = document[head.group(1).decode()]
        if isinstance(value, simdjson.Array):
            ok = len(value) == count and all(
                isinstance(v, simdjson.Object) and len(v) == 1 for v in value)
        else:
            ok = count == 1 and len(value) == 1
        del value, document
    except (ValueError, RuntimeError, KeyError, TypeError):
        return None
    return head.group(0) + stripped.replace(b"}", b"", count) if ok else None


def _fast_decode(body, spec):
    head = _FAST_HEAD.match(body)
    if head is None or None in spec.shape[1:]:
        return None
    if _NAMED_START.match(body, head.end()):
        body = _unnamed(body, head, spec.name)
        head = body and _FAST_HEAD.match(body)
        if not head or _NAMED_START.match(body, head.end()):
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
    if body[head.end():].translate(None, _SKELETON_DROPS) != _skeleton(shape):
        return None
    return kind, numbers.astype(spec.dtype).reshape(shape)


def _parse(body):
    """The request as simdjson's document, or for a small body that simdjson refuses, as the
    standard parser reads it (it reads NaN and Infinity, which then get their own error).

    simdjson parses in one short step; the values are then converted one instance at a
    time, so that a large body never holds the interpreter for long (the event loop and the
    other requests go on between instances)."""
    try:
        return simdjson.Parser().parse(body)  # A parser of its own: its document lives on.
    except (ValueError, RuntimeError) as error:
        if len(body) > _STANDARD_PARSER_BYTES:
            raise RequestError(f"JSON Parse error: {error}") from None
        return _loads(body)


def _is_object(value):
    return isinstance(value, (dict, simdjson.Object))


def _is_array(value):
    return isinstance(value, (list, simdjson.Array))


def _row(value, shape):
    """One instance as an array: straight from simdjson's buffer when its skeleton is that of
    `shape` (no Python numbers are made), else through Python lists."""
    if not isinstance(value, simdjson.Array):
        return np.asarray(value)
    if None not in shape:
        try:
            if value.mini.translate(None, _SKELETON_DROPS) == _skeleton(shape, b""):
                return np.frombuffer(value.as_buffer(of_type="d"), np.float64).reshape(shape)
        except (ValueError, TypeError, RuntimeError):
            pass
    return np.asarray(value.as_list())


def _to_array(values, spec, what):
    """One array of a list of instances, converted one instance at a time."""
    try:
        rows = [_row(v, spec.shape[1:]) for v in values]
    except ValueError:
        raise RequestError(f"{what}: ragged nested lists, expected a tensor") from None
    if len({(row.shape, row.dtype.kind) for row in rows}) > 1:
        shapes = {row.shape for row in rows}
        if len(shapes) > 1:
            raise RequestError(f"{what}: ragged nested lists, expected a tensor")
    array = np.stack(rows) if rows else np.zeros((0,))
    if array.dtype.kind not in "iuf":
        raise RequestError(
            f"{what}: expected numbers for {np.dtype(spec.dtype).name} input "
            f"{spec.name!r}, got {array.dtype.kind!r} values"
        )
    return array


def _named(value, spec, what):
    if set(value.keys()) != {spec.name}:
        raise RequestError(f"{what}: expected the input {spec.name!r}, got {sorted(value.keys())}")
    return value[spec.name]


def _slow_decode(body, spec):
    request = _parse(body)
    if not _is_object(request):
        raise RequestError("Request body must be a JSON object")
    signature = request.get("signature_name", "")
    if not isinstance(signature, str):
        raise RequestError("'signature_name' key must be a string value.")
    protocol.check_signature_name(signature)
    # As in TF Serving, other top-level keys are ignored.
    kinds = [kind for kind in ("instances", "inputs") if kind in request]
    if len(kinds) != 1:
        raise RequestError('Request body must have exactly one of "instances" or "inputs"')
    kind = kinds[0]
    value = request[kind]
    if kind == "instances":
        if not _is_array(value) or not len(value):
            raise RequestError('"instances" must be a non-empty list')
        named = [_is_object(v) for v in value]
        if any(named) and not all(named):  # TF Serving: a list of objects, or of values.
            item = named.index(not named[0])
            expected, got = ("object", "list") if named[0] else ("value/list", "object")
            raise RequestError(f"Expecting {expected} but got {got} at item {item} of input list")
        if named[0]:
            value = [_named(v, spec, "instances") for v in value]
    elif _is_object(value):
        value = _named(value, spec, "inputs")
    if not _is_array(value):
        raise RequestError(f'"{kind}" must hold a list of instances')
    return kind, _to_array(value, spec, kind).astype(spec.dtype)


def validate(array, spec, value_range=(0.0, 1.0)):
    """Checks an input batch: shape, finite values in `value_range`.

    Raises:
        RequestError: naming what is wrong.
    """
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
    validate(decoded[1], spec, value_range)
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
