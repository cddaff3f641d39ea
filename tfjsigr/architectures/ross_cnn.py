"""The CNN of Ross & Doshi-Velez (AAAI 2018) for 28x28 digits and clothing."""

import keras


def ross_cnn(input_shape=(28, 28, 1), num_classes=10, activation="relu", dropout=0.5):
    """conv5x5x32, pool, conv5x5x64, pool, FC1024, dropout, FC10 (the paper's MNIST model).

    Args:
        input_shape: (H, W, C) of the images.
        num_classes: number of logits.
        activation: activation of the hidden layers (e.g. "relu", "softplus", "tanh").
        dropout: dropout rate before the output layer.

    Returns:
        A functional `keras.Model` from images in [0, 1] to logits.
    """
    inputs = keras.Input(input_shape, name="image")
    h = keras.layers.Conv2D(32, 5, padding="same", activation=activation)(inputs)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 5, padding="same", activation=activation)(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(1024, activation=activation)(h)
    h = keras.layers.Dropout(dropout)(h)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, logits, name="ross_cnn")
