import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
import tf2onnx

from tfjsigr.layers import HalfHuberReLU, half_huber_relu

POINTS = np.linspace(-2.0, 2.0, 401).astype(np.float32)


def test_values_follow_the_three_pieces():
    delta = 0.5
    expected = np.where(POINTS <= 0, 0.0, np.where(POINTS <= delta, POINTS**2 / (2 * delta), POINTS - delta / 2))
    np.testing.assert_allclose(half_huber_relu(POINTS, delta).numpy(), expected, atol=1e-7)


@pytest.mark.parametrize("delta", [0.5, 0.2])
def test_derivative_is_clamp_over_delta(delta):
    x = tf.constant(POINTS)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = half_huber_relu(x, delta)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), np.clip(POINTS, 0, delta) / delta, atol=1e-6)


def model_with_half_huber():
    inputs = keras.Input((8,), name="image")
    h = keras.layers.Dense(6, activation=half_huber_relu)(inputs)
    h = HalfHuberReLU(0.3)(keras.layers.Dense(5)(h))
    return keras.Model(inputs, keras.layers.Dense(3)(h))


def test_layer_and_activation_round_trip_through_keras_files(tmp_path):
    model = model_with_half_huber()
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    np.testing.assert_array_equal(restored(x).numpy(), model(x).numpy())
    assert restored.layers[-2].delta == 0.3


def test_exports_to_onnx_with_equal_outputs():
    model = model_with_half_huber()
    function = tf.function(lambda image: model(image), input_signature=[tf.TensorSpec([None, 8], tf.float32, name="image")])
    proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=17)
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32)
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(onnx_out, model(x).numpy(), atol=1e-5)
