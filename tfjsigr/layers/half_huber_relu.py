"""The half-Huber ReLU of Woods et al.: quadratic near 0, so its derivative is continuous."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfjsigr")
def half_huber_relu(x, delta=0.5):
    """0 for x <= 0, x^2 / (2 delta) for 0 < x <= delta, x - delta / 2 above.

    Its derivative is clamp(x, 0, delta) / delta. Usable as `activation=half_huber_relu`.
    """
    x = tf.convert_to_tensor(x)
    delta = tf.cast(delta, x.dtype)
    positive = tf.nn.relu(x)
    return tf.where(positive <= delta, tf.square(positive) / (2 * delta), positive - delta / 2)


@keras.saving.register_keras_serializable(package="tfjsigr")
class HalfHuberReLU(keras.layers.Layer):
    """Layer form of `half_huber_relu`.

    Args:
        delta: width of the quadratic part.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, delta=0.5, **kwargs):
        super().__init__(**kwargs)
        if not float(delta) > 0:
            raise ValueError(f"delta must be > 0, got {delta}")
        self.delta = float(delta)

    def call(self, inputs):
        return half_huber_relu(inputs, self.delta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}
