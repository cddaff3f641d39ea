"""A LeNet-5-style CNN, the model of Hoffman et al.'s Jacobian-regularization MNIST runs."""

import keras


def lenet(
    input_shape=(28, 28, 1), num_classes=10, activation="relu", filters=(6, 16), dense=(120, 84)
):
    """conv5x5, pool, conv5x5, pool, two dense layers, logits.

    Args:
        input_shape: (H, W, C) of the images.
        num_classes: number of logits.
        activation: activation of the hidden layers.
        filters: filters of the two 5x5 convolutions.
        dense: units of the hidden dense layers.

    Returns:
        A functional `keras.Model` from images in [0, 1] to logits.
    """
    inputs = keras.Input(input_shape, name="image")
    h = inputs
    for count in filters:
        h = keras.layers.Conv2D(count, 5, padding="same", activation=activation)(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    for units in dense:
        h = keras.layers.Dense(units, activation=activation)(h)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, logits, name="lenet")
