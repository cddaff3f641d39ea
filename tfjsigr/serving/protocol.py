"""TF Serving's API as the local server, the client and the CLI speak it: URL grammar, errors,
tensors, model status and metadata (REST JSON and gRPC protos from one source).

The grammar and the error codes follow tensorflow/serving's `http_rest_api_util.cc` and
`http_server.cc`: paths are matched case-insensitively, versions are ASCII digits that fit an
int64, names and labels are percent-decoded, and anything else under /v1/ is a 400.
"""

import dataclasses
import re
import urllib.parse

import numpy as np

DEFAULT_SIGNATURE = "serving_default"
CLASS_NAMES = "class_names"  # The metadata field of the class names (tfjsigr's, not TF Serving's).
PREDICT_METHOD = "tensorflow/serving/predict"
MAX_VERSION = 2**63 - 1
# TF Serving's regexes (kPredictionApiGegex, kModelStatusApiRegex), with RE2's ASCII \d.
_PART = r"(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
_PREDICT_PATH = re.compile(rf"/v1/models/{_PART}:(?P<verb>classify|regress|predict)", re.IGNORECASE)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/(?P<name>[^/:]+))?(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:/(?P<subresource>metadata))?", re.IGNORECASE)
# What `tfjsigr predict --url` takes: a model's URL, with or without the :predict verb.
_MODEL_URL_PATH = re.compile(rf"/v1/models/{_PART}(?::predict)?/?", re.IGNORECASE)
# TF Serving's error codes and the HTTP statuses its REST API answers them with.
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
               "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "INTERNAL": 500}


class ProtocolError(Exception):
    """An error answer: a gRPC status code name and TF Serving's message.

    Attributes:
        code: e.g. "INVALID_ARGUMENT" (HTTP 400) or "NOT_FOUND" (404).
        message: the message, one line.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return HTTP_STATUS.get(self.code, 500)


def invalid(message):
    return ProtocolError("INVALID_ARGUMENT", message)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The model a request addresses: a name, and a version or a label (or neither: latest)."""

    name: str
    version: int = None
    label: str = None


@dataclasses.dataclass(frozen=True)
class Route:
    """A parsed REST request: `action` is predict, classify, regress, metadata or status."""

    action: str
    spec: ModelSpec


def _decoded(text, what):
    try:
        return urllib.parse.unquote_to_bytes(text).decode()
    except UnicodeDecodeError:
        raise invalid(f"Failed to decode {what}: {text}") from None


def _spec(match):
    version = match["version"]
    if version is not None:
        version = int(version)
        if version > MAX_VERSION:
            raise invalid(f"Failed to convert version: {match['version']} to numeric.")
    label = match["label"] and _decoded(match["label"], "model version label")
    name = match["name"] and _decoded(match["name"], "model name")
    return ModelSpec(name, version, label)


def parse_rest_path(method, path):
    """The route of a REST request, as TF Serving's handler dispatches it.

    Args:
        method: the HTTP method.
        path: the raw (still percent-encoded) path, e.g. "/v1/models/jsigr/labels/stable:predict".

    Returns:
        A `Route`. As in TF Serving, the verb must be lowercase and a GET of any other
        subresource than "metadata" is a status request.

    Raises:
        ProtocolError: INVALID_ARGUMENT for a malformed path, a version beyond int64, a name
            or label that does not decode, or a GET /v1/models without a model name.
    """
    pattern = {"POST": _PREDICT_PATH, "GET": _STATUS_PATH}.get(method)
    match = pattern and pattern.fullmatch(path)
    malformed = invalid(f"Malformed request: {method} {path}")
    if match is None:
        raise malformed
    spec = _spec(match)
    if method == "POST":
        if match["verb"] not in ("predict", "classify", "regress"):
            raise malformed
        return Route(match["verb"], spec)
    if not spec.name:
        raise invalid("Missing model name in request.")
    return Route("metadata" if match["subresource"] == "metadata" else "status", spec)


def parse_model_url_path(path):
    """(name, version, label) of a model URL's path, e.g. /v1/models/jsigr/versions/2; None
    when the path is not one."""
    match = _MODEL_URL_PATH.fullmatch(path)
    if match is None:
        return None
    try:
        spec = _spec(match)
    except ProtocolError:
        return None
    return spec.name, spec.version, spec.label


def model_path(model, version=None, label=None):
    """The REST path of a model, a version or a label: /v1/models/NAME[/versions/V|/labels/L]."""
    if version is not None and label is not None:
        raise ValueError("give a version or a label, not both")
    path = f"/v1/models/{urllib.parse.quote(model, safe='')}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{urllib.parse.quote(label, safe='')}"
    return path


def spec_from_proto(proto):
    """The `ModelSpec` of a gRPC request's model_spec."""
    version = proto.version.value if proto.HasField("version") else None
    return ModelSpec(proto.name, version, proto.version_label or None)


def check_signature_name(name, grpc=False):
    """Refuses any signature but the default one ("" means the default, as in TF Serving)."""
    if name not in ("", DEFAULT_SIGNATURE):
        if grpc:
            raise ProtocolError("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
        raise invalid(f'Serving signature name: "{name}" not found in signature def')


# Tensors: numpy arrays <-> tensorflow.TensorProto, without TensorFlow's Python runtime.
_DTYPES = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int32": "DT_INT32",
           "int64": "DT_INT64", "uint8": "DT_UINT8"}
_VALUE_FIELDS = {"DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT32": "int_val",
                 "DT_INT64": "int64_val", "DT_UINT8": "int_val"}


def _types():
    from tensorflow.core.framework import types_pb2

    return types_pb2


def dtype_enum(dtype):
    """TF's DataType enum of a numpy dtype (DT_INVALID for others)."""
    return _types().DataType.Value(_DTYPES.get(np.dtype(dtype).name, "DT_INVALID"))


def array_to_tensor(array):
    """A TensorProto holding `array` (its bytes in tensor_content)."""
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    array = np.ascontiguousarray(array)
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in array.shape])
    return tensor_pb2.TensorProto(dtype=dtype_enum(array.dtype), tensor_shape=shape,
                                  tensor_content=array.tobytes())


def tensor_to_array(tensor, what="input"):
    """The numpy array of a request's TensorProto (tensor_content or the typed value list).

    Raises:
        ProtocolError: INVALID_ARGUMENT for an unsupported dtype, an unknown-rank or negative
            shape, or values that do not fill the shape.
    """
    dtype_name = _types().DataType.Name(tensor.dtype)
    numpy_dtype = {v: k for k, v in _DTYPES.items()}.get(dtype_name)
    if numpy_dtype is None or tensor.tensor_shape.unknown_rank:
        raise invalid(f"{what}: unsupported tensor of {dtype_name}")
    shape = tuple(d.size for d in tensor.tensor_shape.dim)
    if any(s < 0 for s in shape):
        raise invalid(f"{what}: negative dimension in shape {list(shape)}")
    size = int(np.prod(shape, dtype=object))
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, numpy_dtype)
    else:
        values = np.asarray(getattr(tensor, _VALUE_FIELDS[dtype_name]), numpy_dtype)
        if len(values) == 1 and size > 1:  # TF's shorthand: one value fills the tensor.
            values = np.full(size, values[0], numpy_dtype)
    if len(values) != size:
        raise invalid(f"{what}: {len(values)} values do not fill shape {list(shape)}")
    return values.reshape(shape)


def _signature_def(signature):
    from tensorflow.core.protobuf import meta_graph_pb2

    definition = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for specs, field in ((signature.inputs, definition.inputs),
                         (signature.outputs, definition.outputs)):
        for spec in specs:
            info = field[spec.name]
            info.name, info.dtype = spec.name, dtype_enum(spec.dtype)
            for size in spec.shape:
                info.tensor_shape.dim.add(size=-1 if size is None else size)
    return definition


def metadata_proto(name, version, signature, class_names=()):
    """TF Serving's GetModelMetadataResponse for one served version.

    Beside TF Serving's "signature_def", the metadata map holds "class_names" (a string
    TensorProto, one name per output class) when the zoo's card records them; clients of TF
    Serving read the fields they know and ignore it.
    """
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    answer = get_model_metadata_pb2.GetModelMetadataResponse()
    answer.model_spec.name = name
    answer.model_spec.version.value = version
    signatures = get_model_metadata_pb2.SignatureDefMap()
    signatures.signature_def[DEFAULT_SIGNATURE].CopyFrom(_signature_def(signature))
    answer.metadata["signature_def"].Pack(signatures)
    if class_names:
        names = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, string_val=[str(n).encode() for n in class_names]
        )
        names.tensor_shape.dim.add(size=len(class_names))
        answer.metadata[CLASS_NAMES].Pack(names)
    return answer


def metadata_json(answer):
    """The REST JSON of a GetModelMetadataResponse, as TF Serving's ToJsonString writes it."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    signatures = get_model_metadata_pb2.SignatureDefMap()
    answer.metadata["signature_def"].Unpack(signatures)
    metadata = {"signature_def": _to_dict(signatures)}
    if CLASS_NAMES in answer.metadata:
        from tensorflow.core.framework import tensor_pb2

        names = tensor_pb2.TensorProto()
        answer.metadata[CLASS_NAMES].Unpack(names)
        metadata[CLASS_NAMES] = [n.decode() for n in names.string_val]
    return {"model_spec": _to_dict(answer.model_spec), "metadata": metadata}


def class_names(metadata):
    """The class names in a metadata answer (REST JSON), or None (TF Serving has none)."""
    names = (metadata.get("metadata") or {}).get(CLASS_NAMES)
    return [str(n) for n in names] if isinstance(names, list) and names else None


def _to_dict(message):
    from google.protobuf import json_format

    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def status_proto(available, refused=()):
    """TF Serving's GetModelStatusResponse: available versions, then refused ones.

    Args:
        available: the served versions.
        refused: (version, reason) pairs of versions left out; they are reported in state END
            with error code FAILED_PRECONDITION and the reason, as TF Serving reports a
            version that failed to load.
    """
    from tensorflow_serving.apis import get_model_status_pb2

    states = get_model_status_pb2.ModelVersionStatus
    answer = get_model_status_pb2.GetModelStatusResponse()
    for version in available:
        entry = answer.model_version_status.add(version=version, state=states.AVAILABLE)
        entry.status.SetInParent()
    for version, reason in refused:
        entry = answer.model_version_status.add(version=version, state=states.END)
        entry.status.error_code = 9  # FAILED_PRECONDITION
        entry.status.error_message = reason
    return answer


def status_json(answer):
    """The REST JSON of a GetModelStatusResponse."""
    return _to_dict(answer)


def parse_model_url(url):
    """(base URL, name, version, label) of a model URL such as
    http://HOST:PORT/v1/models/NAME[/versions/V|/labels/L] (grpc:// for gRPC).

    Raises:
        ValueError: not such a URL (one line saying what is expected).
    """
    expected = ("expected http://HOST:PORT/v1/models/NAME[/versions/V|/labels/L] "
                "(or grpc://HOST:PORT/v1/models/NAME...)")  # fmt: skip
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as error:
        raise ValueError(f"{url!r}: {error}; {expected}") from None
    model = parse_model_url_path(parsed.path)
    if parsed.scheme not in ("http", "https", "grpc") or not parsed.netloc or model is None:
        raise ValueError(f"{url!r}: {expected}")
    return f"{parsed.scheme}://{parsed.netloc}", *model
