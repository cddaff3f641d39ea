"""Small models and data for tfjsigr's tests (constant-weight linear models, tiny CNNs)."""

import keras
import numpy as np

import tfjsigr


def linear_model(weights, bias):
    """z = x W + b with constant weights: its input-logit Jacobian is W^T for every input."""
    weights = np.asarray(weights, np.float32)
    inputs = keras.Input((weights.shape[0],), name="image")
    logits = keras.layers.Dense(
        weights.shape[1],
        kernel_initializer=keras.initializers.Constant(weights),
        bias_initializer=keras.initializers.Constant(np.asarray(bias, np.float32)),
        name="logits",
    )(inputs)
    return keras.Model(inputs, logits, name="linear")


def tiny_cnn(input_shape=(16, 16, 1), num_classes=3, activation="tanh", seed=0):
    """A conv net small enough for finite differences: 16x16 inputs, a few filters."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    h = keras.layers.Conv2D(4, 3, padding="same", activation=activation)(inputs)
    h = keras.layers.AveragePooling2D(4)(h)
    h = keras.layers.Flatten()(h)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, logits, name="tiny_cnn")


def compiled(backbone, penalties=(), **kwargs):
    """A RegularizedModel compiled with Adam, sparse CE from logits and accuracy."""
    model = tfjsigr.RegularizedModel(backbone, penalties=penalties, **kwargs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
