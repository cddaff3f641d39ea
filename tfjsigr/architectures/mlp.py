"""A multilayer perceptron on flattened images."""

import keras


def mlp(input_shape=(28, 28, 1), num_classes=10, hidden=(256, 256), activation="relu", dropout=0.0):
    """Flatten, hidden dense layers (each optionally followed by dropout), logits.

    Args:
        input_shape: (H, W, C) of the images.
        num_classes: number of logits.
        hidden: units of each hidden layer.
        activation: activation of the hidden layers.
        dropout: dropout rate after each hidden layer (0 for none).

    Returns:
        A functional `keras.Model` from images in [0, 1] to logits.
    """
    inputs = keras.Input(input_shape, name="image")
    h = keras.layers.Flatten()(inputs)
    for units in hidden:
        h = keras.layers.Dense(units, activation=activation)(h)
        if dropout:
            h = keras.layers.Dropout(dropout)(h)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, logits, name="mlp")
