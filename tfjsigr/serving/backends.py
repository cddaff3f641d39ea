"""Runtimes for one model version: the SavedModel's `serving_default`, or ONNX with onnxruntime."""

import dataclasses

import numpy as np

SIGNATURE = "serving_default"
BACKENDS = ("savedmodel", "onnx")


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype and shape (None for any size) of a signature tensor."""

    name: str
    dtype: np.dtype
    shape: tuple


@dataclasses.dataclass(frozen=True)
class Signature:
    """The `serving_default` signature: one input tensor, named outputs."""

    inputs: tuple
    outputs: tuple

    @property
    def input(self):
        """The single input's spec."""
        return self.inputs[0]


def _spec(name, tensor_spec):
    shape = tuple(tensor_spec.shape.as_list())
    return TensorSpec(name, np.dtype(tensor_spec.dtype.as_numpy_dtype), shape)


class SavedModelBackend:
    """Runs a SavedModel's `serving_default` signature with TensorFlow.

    Args:
        version_dir: the version directory (`.../saved_model/<version>`).
    """

    def __init__(self, version_dir):
        import tensorflow as tf

        self._tf = tf
        loaded = tf.saved_model.load(str(version_dir))
        if SIGNATURE not in loaded.signatures:
            raise ValueError(f"{version_dir}: no {SIGNATURE!r} signature")
        self._loaded = loaded
        self._function = loaded.signatures[SIGNATURE]
        _, inputs = self._function.structured_input_signature
        if len(inputs) != 1:
            raise ValueError(f"{version_dir}: {SIGNATURE!r} must take one input, has {len(inputs)}")
        outputs = self._function.structured_outputs
        self.signature = Signature(
            inputs=tuple(_spec(k, v) for k, v in inputs.items()),
            outputs=tuple(_spec(k, outputs[k]) for k in sorted(outputs)),
        )

    def run(self, batch):
        """Outputs of the signature on `batch`, as a dict of numpy arrays."""
        result = self._function(**{self.signature.input.name: self._tf.constant(batch)})
        return {name: value.numpy() for name, value in result.items()}


class OnnxBackend:
    """Runs a version with onnxruntime: the zoo entry's own `model.onnx` when given, else the
    version's `serving_default` converted once by tf2onnx (an entry keeps one model.onnx, of
    its newest version).

    Args:
        version_dir: the version directory (`.../saved_model/<version>`).
        onnx_path: the ONNX model exported with this version, or None to convert.

    Attributes:
        onnx_model: the ONNX model, serialized.
        session: the onnxruntime `InferenceSession` that runs it.
    """

    def __init__(self, version_dir, onnx_path=None):
        import onnxruntime

        if onnx_path is None:
            self.onnx_model = _converted(SavedModelBackend(version_dir))
        else:
            with open(onnx_path, "rb") as file:
                self.onnx_model = file.read()
        options = onnxruntime.SessionOptions()
        # Idle onnxruntime threads spin by default, taking the CPU the event loop needs to
        # decode the next requests while a batch runs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            self.onnx_model, options, providers=["CPUExecutionProvider"]
        )
        outputs = self.session.get_outputs()
        self._output_names = [o.name for o in outputs]
        self.signature = Signature(
            inputs=tuple(_onnx_spec(i) for i in self.session.get_inputs()),
            outputs=tuple(sorted((_onnx_spec(o) for o in outputs), key=lambda s: s.name)),
        )
        if len(self.signature.inputs) != 1:
            raise ValueError(f"{onnx_path or version_dir}: the ONNX model must take one input")

    def run(self, batch):
        """Outputs of the ONNX graph on `batch`, as a dict of numpy arrays."""
        values = self.session.run(None, {self.signature.input.name: batch})
        return dict(zip(self._output_names, values))


_ONNX_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int32)": "int32",
               "tensor(int64)": "int64", "tensor(uint8)": "uint8"}


def _onnx_spec(value):
    shape = tuple(d if isinstance(d, int) else None for d in value.shape)
    return TensorSpec(value.name, np.dtype(_ONNX_TYPES.get(value.type, "float32")), shape)


def _converted(saved_model):
    """The serialized ONNX conversion (tf2onnx) of a loaded SavedModel's serving_default."""
    import tf2onnx

    tf = saved_model._tf
    spec = saved_model.signature.input
    function = saved_model._function
    input_spec = [tf.TensorSpec(spec.shape, spec.dtype, name=spec.name)]
    wrapper = tf.function(lambda x: function(**{spec.name: x}), input_signature=input_spec)
    proto, _ = tf2onnx.convert.from_function(wrapper, input_signature=input_spec)
    return proto.SerializeToString()


def load_backend(version_dir, backend="savedmodel", onnx_path=None):
    """Loads one version directory with the named backend.

    Args:
        version_dir: the version directory.
        backend: "savedmodel" or "onnx".
        onnx_path: for "onnx", the ONNX model of this version (None: converted).

    Returns:
        An object with `signature` and `run(batch) -> dict`.
    """
    if backend == "savedmodel":
        return SavedModelBackend(version_dir)
    if backend == "onnx":
        return OnnxBackend(version_dir, onnx_path)
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
