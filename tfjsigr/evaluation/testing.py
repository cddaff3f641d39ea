"""Small trained models shared by the attack and evaluation tests (seconds on 2 cores)."""

import functools
import importlib

import keras
import numpy as np
import tensorflow as tf

from tfjsigr.architectures import small_cnn
from tfjsigr.data import load_fashion_mnist


@functools.cache
def sample_data(train=1000, test=200):
    """(x_train, y_train, x_test, y_test) from the shipped Fashion-MNIST sample."""
    x_train, y_train, _ = load_fashion_mnist("train", "sample")
    x_test, y_test, _ = load_fashion_mnist("test", "sample")
    return x_train[:train], y_train[:train], x_test[:test], y_test[:test]


@functools.cache
def tiny_model(seed=0, epochs=3):
    """A small CNN (4 and 8 filters) trained a few seconds on the sample; ~70% accurate."""
    x_train, y_train, _, _ = sample_data()
    keras.utils.set_random_seed(seed)
    model = small_cnn(filters=(4, 8), dense=32)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x_train, y_train, batch_size=50, epochs=epochs, verbose=0)
    return model


def accuracy(model_fn, x, y):
    return float(np.mean(np.argmax(np.asarray(model_fn(x)), axis=1) == np.asarray(y)))


class QuantizeInputs(keras.layers.Layer):
    """Rounds inputs to 4 levels; the gradient through it is exactly zero (masked)."""

    def call(self, x):
        return tf.stop_gradient(tf.round(x * 3.0) / 3.0) + 0.0 * x


def gradient_masked(model):
    """`model` behind input quantization: gradient attacks see zero gradients everywhere."""
    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, model(QuantizeInputs()(inputs)))


def small_autoattack_budgets(monkeypatch, square_queries=300):
    """AutoAttack's reference budgets (and the guard's Square) cut down for tests of seconds."""
    components = importlib.import_module("tfjsigr.attacks.auto_attack").COMPONENTS
    for name, key, value in [
        ("apgd-ce", "steps", 20),
        ("apgd-t", "steps", 10),
        ("apgd-t", "target_classes", 3),
        ("fab-t", "steps", 10),
        ("fab-t", "target_classes", 3),
        ("square", "queries", square_queries),
    ]:
        monkeypatch.setitem(components[name], key, value)
