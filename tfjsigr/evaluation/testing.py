"""Small trained models shared by the attack and evaluation tests (seconds on 2 cores)."""

import functools

import keras
import numpy as np

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
