"""A client for TF Serving (and the local server): REST or gRPC, answers as numpy arrays."""

import numbers
import urllib.parse

import numpy as np
import orjson
import requests

from tfjsigr.serving import protocol
from tfjsigr.serving.protocol import model_path as _model_path

GRPC_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Larger batches go as several requests: one request of thousands of images would exceed
# the servers' body limits (16 MB for `tfjsigr serve`).
MAX_IMAGES_PER_REQUEST = 256


INVALID_ANSWER = "INVALID_ANSWER"


class ServingError(RuntimeError):
    """An error answer from the server, or an answer that is not TF Serving's.

    Attributes:
        status: the HTTP status (REST) or the gRPC status code name; `INVALID_ANSWER` when
            the server answered with something other than what TF Serving sends.
        message: the server's error message.
    """

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _preview(value, limit=80):
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _invalid(where, expected, answer):
    return ServingError(
        INVALID_ANSWER, f"{where} did not answer like TF Serving (expected {expected}, got "
        f"{_preview(answer)!r}); is the URL that of a model server?"
    )


def _require(answer, keys, where):
    """answer[keys[0]][keys[1]]..., or ServingError naming what the answer lacks."""
    value = answer
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise _invalid(where, ".".join(keys), answer)
        value = value[key]
    return value


def _check_status(answer, where):
    if not isinstance(_require(answer, ("model_version_status",), where), list):
        raise _invalid(where, "a model_version_status list", answer)
    return answer


def _check_metadata(answer, where):
    keys = ("metadata", "signature_def", "signature_def", "serving_default", "inputs")
    if not isinstance(_require(answer, keys, where), dict):
        raise _invalid(where, "a serving_default signature with inputs", answer)
    return answer


def _outputs_from_json(answer, where):
    try:
        if "predictions" in answer:
            predictions = answer["predictions"]
            if predictions and isinstance(predictions[0], dict):
                return {k: np.asarray([p[k] for p in predictions], np.float32)
                        for k in predictions[0]}
            return {"predictions": np.asarray(predictions, np.float32)}
        outputs = answer["outputs"]
        if isinstance(outputs, dict):
            return {k: np.asarray(v, np.float32) for k, v in outputs.items()}
        return {"outputs": np.asarray(outputs, np.float32)}
    except (KeyError, TypeError, ValueError):
        raise _invalid(where, "numeric predictions or outputs", answer) from None


class _Rest:
    def __init__(self, base_url, timeout):
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()

    def _call(self, method, path, body=None):
        """The JSON object answered, with the URL it came from."""
        url = self._base + path
        headers = {"Content-Type": "application/json"} if body is not None else None
        response = self._session.request(
            method, url, data=body, headers=headers, timeout=self._timeout
        )
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = response.text.strip()
        if response.status_code != 200:
            if isinstance(answer, dict) and answer.get("error"):
                raise ServingError(response.status_code, _preview(answer["error"], 300))
            raise ServingError(
                response.status_code, f"{url}: {response.reason or 'error'} (answered "
                f"{_preview(answer)!r}; is the URL that of a model server?)"
            )
        if not isinstance(answer, dict):
            raise _invalid(url, "a JSON object", answer or "an empty body")
        return answer, url

    def status(self, model, version, label):
        return _check_status(*self._call("GET", _model_path(model, version, label)))

    def metadata(self, model, version, label):
        path = _model_path(model, version, label) + "/metadata"
        return _check_metadata(*self._call("GET", path))

    def predict(self, model, images, version, label, request_format, input_name):
        images = np.ascontiguousarray(images, dtype=np.float32)
        value = images if input_name is None else {input_name: images}
        if request_format == "instances" and input_name is not None:
            value = [{input_name: row} for row in images]
        body = orjson.dumps({request_format: value}, option=orjson.OPT_SERIALIZE_NUMPY)
        answer, url = self._call("POST", _model_path(model, version, label) + ":predict", body)
        return _outputs_from_json(answer, url)

    def close(self):
        self._session.close()


class _Grpc:
    def __init__(self, target, timeout):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self._grpc = grpc
        options = [("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES)]
        self._target = f"grpc://{target}"
        self._channel = grpc.insecure_channel(target, options=options)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._timeout = timeout

    def _call(self, method, request):
        try:
            return method(request, timeout=self._timeout)
        except self._grpc.RpcError as error:
            raise ServingError(error.code().name, error.details()) from None

    @staticmethod
    def _spec(spec, model, version, label):
        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        spec.name = model
        if version is not None:
            spec.version.value = int(version)
        elif label is not None:
            spec.version_label = label

    def status(self, model, version, label):
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, model, version, label)
        return protocol.status_json(self._call(self._models.GetModelStatus, request))

    def metadata(self, model, version, label):
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, model, version, label)
        answer = self._call(self._predictions.GetModelMetadata, request)
        return _check_metadata(protocol.metadata_json(answer), self._target)

    def predict(self, model, images, version, label, request_format, input_name):
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, model, version, label)
        request.model_spec.signature_name = protocol.DEFAULT_SIGNATURE
        images = np.ascontiguousarray(images, dtype=np.float32)
        request.inputs[input_name or "image"].CopyFrom(protocol.array_to_tensor(images))
        answer = self._call(self._predictions.Predict, request)
        try:
            return {name: protocol.tensor_to_array(tensor, name)
                    for name, tensor in answer.outputs.items()}
        except protocol.ProtocolError as error:
            raise _invalid(self._target, "numeric output tensors", error) from None

    def close(self):
        self._channel.close()


def _split(images, limit):
    """`images` in slices of at most `limit` images (one slice when empty or not a batch)."""
    if images.ndim == 0 or len(images) <= limit:
        return [images]
    return [images[start:start + limit] for start in range(0, len(images), limit)]


def _join(answers, where):
    """The outputs of several predict answers, concatenated along the batch."""
    names = set(answers[0])
    if any(set(answer) != names for answer in answers):
        raise ServingError(INVALID_ANSWER, f"{where}: the answers to one batch's requests "
                           "name different outputs")
    try:
        return {name: np.concatenate([answer[name] for answer in answers]) for name in answers[0]}
    except ValueError as error:
        raise ServingError(INVALID_ANSWER, f"{where}: cannot join the answers ({error})") from None


class Client:
    """Talks to TF Serving or `tfjsigr serve` over REST or gRPC.

    Args:
        url: "http://HOST:PORT" for REST (TF Serving's 8501), "grpc://HOST:PORT" for gRPC
            (TF Serving's 8500); `tfjsigr serve` speaks both.
        timeout: seconds per call.

    Example:
        >>> client = Client("http://127.0.0.1:8501")
        >>> client.predict("fashion_small", images)["probabilities"].argmax(-1)
    """

    def __init__(self, url, timeout=30.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme in ("http", "https"):
            self._transport = _Rest(url, timeout)
        elif parsed.scheme == "grpc" and parsed.netloc:
            self._transport = _Grpc(parsed.netloc, timeout)
        else:
            raise ValueError(f"{url!r}: expected an http://, https:// or grpc:// URL")
        self.url = url

    def status(self, model, version=None, label=None):
        """The model's version status, as TF Serving's REST API returns it.

        Args:
            model: the model name.
            version: an int version, or None for every served version.
            label: a version label such as "stable", instead of a version.

        Returns:
            A dict `{"model_version_status": [{"version", "state", "status"}, ...]}`.

        Raises:
            ServingError: the server answered with an error (e.g. 404, unknown model), or
                not like TF Serving.
        """
        return self._transport.status(model, version, label)

    def metadata(self, model, version=None, label=None):
        """The model's signature metadata (`GET .../metadata`); args as in `status`."""
        return self._transport.metadata(model, version, label)

    def predict(self, model, images, version=None, label=None, request_format="instances",
                input_name=None, max_images_per_request=None):
        """Runs `serving_default` on a batch of images.

        Args:
            model: the model name.
            images: float32 NHWC images in [0, 1] (a batch).
            version: an int version, or None for the highest.
            label: a version label, instead of a version.
            request_format: "instances" (row format) or "inputs" (columnar), REST only.
            input_name: name the input explicitly (`{"image": ...}`); gRPC needs it,
                "image" by default.
            max_images_per_request: larger batches are sent as several requests and the
                answers joined; default `MAX_IMAGES_PER_REQUEST`.

        Returns:
            A dict from output name ("logits", "probabilities") to a numpy array.

        Raises:
            ServingError: the server answered with an error (400, 404, ...), or not like
                TF Serving.
            ValueError: bad request_format or max_images_per_request, or images that are
                not all finite (JSON would carry NaN and infinity as null).
        """
        if request_format not in ("instances", "inputs"):
            raise ValueError(f"request_format must be 'instances' or 'inputs', not {request_format!r}")
        limit = MAX_IMAGES_PER_REQUEST if max_images_per_request is None else max_images_per_request
        if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1:
            raise ValueError(f"max_images_per_request must be a positive int, not {limit!r}")
        images = np.asarray(images, dtype=np.float32)
        if not np.all(np.isfinite(images)):
            raise ValueError("images hold NaN or infinite values; a model server cannot take them")
        answers = [
            self._transport.predict(model, batch, version, label, request_format, input_name)
            for batch in _split(images, limit)
        ]
        return answers[0] if len(answers) == 1 else _join(answers, self.url)

    def close(self):
        """Closes the connection."""
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def image_input(metadata, url):
    """(name, (H, W, C)) of a served model's one image input, from its metadata.

    Raises:
        ServingError: the model does not take one batch of images of known size.
    """
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    try:
        ((name, tensor),) = signature["inputs"].items()
        shape = tuple(int(d["size"]) for d in tensor["tensor_shape"]["dim"])[1:]
    except (ValueError, KeyError, TypeError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ServingError(
            INVALID_ANSWER, f"{url}: the served model does not take one batch of images of known size"
        )
    return name, shape


def checked_probabilities(outputs, rows, url):
    """The `probabilities` output of a predict answer for `rows` images, checked.

    Raises:
        ServingError: no such output, the wrong shape, or NaN/infinite values.
    """
    probabilities = outputs.get("probabilities")
    problem = None
    if probabilities is None:
        problem = f"has no 'probabilities' output (it has {', '.join(outputs)})"
    elif probabilities.ndim != 2 or len(probabilities) != rows:
        problem = f"answered probabilities of shape {list(probabilities.shape)}, not [{rows}, classes]"
    elif not np.all(np.isfinite(probabilities)):
        problem = "answered NaN or infinite probabilities"
    if problem:
        raise ServingError(INVALID_ANSWER, f"{url}: the served model {problem}")
    return probabilities


def classify_files(url, paths, class_names=None):
    """Classifies the images of files (PNG, JPEG or .npy batches) with a served model.

    Args:
        url: the model URL, http://HOST:PORT/v1/models/NAME[/versions/V|/labels/L] or grpc://.
        paths: the image files.
        class_names: names of the classes, by index [default: those the server's metadata
            gives (`tfjsigr serve` gives the card's), else indices].

    Returns:
        One (path, index in the file, predicted class name or index, probability) per image.

    Raises:
        ValueError: a bad URL or unreadable image file; ServingError: the server refused.
    """
    from tfjsigr.data import image_files

    base, name, version, label = protocol.parse_model_url(url)
    with Client(base) as client:
        metadata = client.metadata(name, version, label)
        input_name, shape = image_input(metadata, url)
        class_names = class_names or protocol.class_names(metadata)
        batches = [(path, image_files.read_images(path, shape)) for path in paths]
        batch = np.concatenate([images for _, images in batches])
        outputs = client.predict(name, batch, version, label, input_name=input_name)
        probabilities = checked_probabilities(outputs, len(batch), url)
    rows, row = [], 0
    for path, images in batches:
        for index in range(len(images)):
            best = int(probabilities[row].argmax())
            named = class_names[best] if class_names and len(class_names) == probabilities.shape[1] else best
            rows.append((path, index, named, float(probabilities[row, best])))
            row += 1
    return rows
