"""A small pre-activation ResNet (He et al. 2016, "Identity mappings") for CIFAR-scale inputs."""

import keras


def preact_resnet(
    input_shape=(32, 32, 3),
    num_classes=10,
    widths=(16, 32, 64),
    blocks_per_stage=1,
    activation="relu",
):
    """A 3x3 stem, stages of pre-activation basic blocks (BN, act, conv, BN, act, conv), logits.

    Each stage after the first halves the resolution with a strided convolution and a 1x1
    projection shortcut. `blocks_per_stage=1` gives an 8-layer network that trains on CPU;
    3 gives PreAct-ResNet-20.

    Args:
        input_shape: (H, W, C) of the images.
        num_classes: number of logits.
        widths: filters of each stage.
        blocks_per_stage: basic blocks per stage.
        activation: activation inside the blocks.

    Returns:
        A functional `keras.Model` from images in [0, 1] to logits.
    """
    inputs = keras.Input(input_shape, name="image")
    h = keras.layers.Conv2D(widths[0], 3, padding="same", use_bias=False)(inputs)
    for stage, width in enumerate(widths):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            h = _preact_block(h, width, strides, activation)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation(activation)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, logits, name="preact_resnet")


def _preact_block(x, width, strides, activation):
    h = keras.layers.BatchNormalization()(x)
    h = keras.layers.Activation(activation)(h)
    shortcut = x
    if strides != 1 or x.shape[-1] != width:
        shortcut = keras.layers.Conv2D(width, 1, strides=strides, use_bias=False)(h)
    h = keras.layers.Conv2D(width, 3, strides=strides, padding="same", use_bias=False)(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation(activation)(h)
    h = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(h)
    return keras.layers.Add()([h, shortcut])
