"""Trains one epoch on 1 device and under MirroredStrategy on 2 logical CPUs; prints JSON.

Run by tests/test_distribution.py in a fresh process, since logical devices must be configured
before TensorFlow starts.
"""

import json

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
import numpy as np

import tfjsigr
from tfjsigr import testing


def exact_penalties():
    return [
        tfjsigr.penalties.InputGradient(20.0),
        tfjsigr.penalties.Jacobian(1.0, projections="exact"),
    ]


def finite_difference_penalties():
    """Deterministic estimators (no random draw): one device and two must agree."""
    return [
        tfjsigr.penalties.InputGradient(20.0, estimator="finite_difference"),
        tfjsigr.penalties.SelectiveInputGradient(20.0, mask="perturbation", estimator="finite_difference"),
    ]


def random_penalties():
    """Random directions and subsets: the step runs and trains under the strategy."""
    return [
        tfjsigr.penalties.JSIGR(0.5, 20.0, estimator="finite_difference", penalty_fraction=0.5),
        tfjsigr.penalties.InputGradient(20.0, estimator="random_directions", penalty_fraction=0.5, name="igr_rd"),
    ]


def train(strategy, make_penalties=exact_penalties):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 16, 16, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=64).astype(np.int32)
    with strategy.scope():
        model = tfjsigr.RegularizedModel(testing.tiny_cnn(seed=1), penalties=make_penalties())
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    return model, history


def lipschitz_intensity(strategy):
    """Trains the adaptive Lipschitz penalty (a state variable updated in replica context)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(64, 16, 16, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=64).astype(np.int32)
    with strategy.scope():
        penalty = tfjsigr.penalties.Lipschitz(k0=1.0, target_loss=5.0, zeta=1.0)
        model = tfjsigr.RegularizedModel(testing.tiny_cnn(seed=1), penalties=[penalty])
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    return float(penalty.intensity.numpy())


def main():
    single, single_history = train(tf.distribute.get_strategy())
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mirrored, mirrored_history = train(mirrored_strategy)
    initial = testing.tiny_cnn(seed=1)
    moved = max(
        float(np.abs(a.numpy() - b.numpy()).max())
        for a, b in zip(single.trainable_weights, initial.trainable_weights)
    )
    difference = max(
        float(np.abs(a.numpy() - b.numpy()).max())
        for a, b in zip(single.trainable_weights, mirrored.trainable_weights)
    )
    fd_single, fd_single_history = train(tf.distribute.get_strategy(), finite_difference_penalties)
    fd_mirrored, fd_mirrored_history = train(mirrored_strategy, finite_difference_penalties)
    _, random_history = train(mirrored_strategy, random_penalties)
    print(
        json.dumps(
            {
                "finite_difference": {
                    "single": fd_single_history,
                    "mirrored": fd_mirrored_history,
                    "max_weight_difference": max(
                        float(np.abs(a.numpy() - b.numpy()).max())
                        for a, b in zip(fd_single.trainable_weights, fd_mirrored.trainable_weights)
                    ),
                },
                "random_directions_mirrored": random_history,
                "replicas": mirrored_strategy.num_replicas_in_sync,
                "lipschitz_intensity": {
                    "single": lipschitz_intensity(tf.distribute.get_strategy()),
                    "mirrored": lipschitz_intensity(mirrored_strategy),
                },
                "max_weight_change": moved,
                "max_weight_difference": difference,
                "single": single_history,
                "mirrored": mirrored_history,
            }
        )
    )


if __name__ == "__main__":
    main()
