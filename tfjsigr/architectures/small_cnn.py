"""A small CNN for 28x28 grayscale inputs (tests, demo, benchmarks)."""

import keras


def small_cnn(input_shape=(28, 28, 1), num_classes=10, filters=(16, 32), dense=64, activation="relu"):
    """Two conv-pool blocks and a dense layer.

    Args:
        input_shape: (H, W, C) of the images.
        num_classes: number of logits.
        filters: filters of the two 3x3 convolutions.
        dense: units of the hidden dense layer.
        activation: activation of the hidden layers.

    Returns:
        A functional `keras.Model` from images in [0, 1] to logits.
    """
    inputs = keras.Input(input_shape, name="image")
    h = inputs
    for count in filters:
        h = keras.layers.Conv2D(count, 3, padding="same", activation=activation)(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(dense, activation=activation)(h)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, logits, name="small_cnn")
