"""Runtimes for one model version: the SavedModel's `serving_default` or its ONNX conversion."""

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


class OnnxBackend(SavedModelBackend):
    """Runs the version's `serving_default` with onnxruntime, converted once by tf2onnx.

    The conversion is made from the same SavedModel the TensorFlow backend serves, so every
    version directory TF Serving can load is servable here too.

    Args:
        version_dir: the version directory (`.../saved_model/<version>`).

    Attributes:
        onnx_model: the converted model, serialized.
        session: the onnxruntime `InferenceSession` that runs it.
    """

    def __init__(self, version_dir):
        super().__init__(version_dir)
        import onnxruntime
        import tf2onnx

        tf = self._tf
        spec = self.signature.input
        function = self._function
        input_spec = [tf.TensorSpec(spec.shape, spec.dtype, name=spec.name)]
        wrapper = tf.function(lambda x: function(**{spec.name: x}), input_signature=input_spec)
        proto, _ = tf2onnx.convert.from_function(wrapper, input_signature=input_spec)
        options = onnxruntime.SessionOptions()
        # Idle onnxruntime threads spin by default, taking the CPU the event loop needs to
        # decode the next requests while a batch runs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.onnx_model = proto.SerializeToString()
        self.session = onnxruntime.InferenceSession(
            self.onnx_model, options, providers=["CPUExecutionProvider"]
        )
        self._output_names = [o.name for o in self.session.get_outputs()]
        self._function = self._loaded = None

    def run(self, batch):
        """Outputs of the ONNX graph on `batch`, as a dict of numpy arrays."""
        values = self.session.run(None, {self.signature.input.name: batch})
        return dict(zip(self._output_names, values))


def load_backend(version_dir, backend="savedmodel"):
    """Loads one version directory with the named backend.

    Args:
        version_dir: the version directory.
        backend: "savedmodel" or "onnx".

    Returns:
        An object with `signature` and `run(batch) -> dict`.
    """
    if backend == "savedmodel":
        return SavedModelBackend(version_dir)
    if backend == "onnx":
        return OnnxBackend(version_dir)
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
