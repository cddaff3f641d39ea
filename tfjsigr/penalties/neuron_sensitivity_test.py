import keras
import numpy as np
import pytest

import tfjsigr
from tfjsigr import testing
from tfjsigr.penalties import Jacobian, NeuronSensitivity
from tfjsigr.penalties.neuron_sensitivity import hidden_activation_layers

RNG = np.random.default_rng(0)
W1 = RNG.normal(size=(5, 4)).astype(np.float32)
W2 = (10.0 * RNG.normal(size=(4, 6))).astype(np.float32)
W3 = RNG.normal(size=(6, 3)).astype(np.float32)


def two_linear_hidden_layers():
    """h1 = x W1, h2 = h1 W2, z = h2 W3: d h1_j / dx = W1[:, j], d h2_j / dx = (W1 W2)[:, j]."""
    inputs = keras.Input((5,), name="image")
    h1 = keras.layers.Dense(4, use_bias=False, kernel_initializer=keras.initializers.Constant(W1), name="h1")(inputs)
    h2 = keras.layers.Dense(6, use_bias=False, kernel_initializer=keras.initializers.Constant(W2), name="h2")(h1)
    logits = keras.layers.Dense(3, kernel_initializer=keras.initializers.Constant(W3), name="logits")(h2)
    return keras.Model(inputs, logits)


MEAN_H1 = np.mean(np.sum(W1**2, axis=0))
MEAN_H2 = np.mean(np.sum((W1 @ W2) ** 2, axis=0))
MEAN_BOTH = (4 * MEAN_H1 + 6 * MEAN_H2) / 10


def value(penalty, batch=20000):
    model = tfjsigr.RegularizedModel(two_linear_hidden_layers(), [penalty])
    x = RNG.uniform(size=(batch, 5)).astype(np.float32)
    _, values = model.compute_penalties(x, np.zeros(batch, np.int32))
    return float(values[penalty.name])


def test_all_neurons_of_one_layer_converge_to_the_mean_squared_gradient_norm():
    penalty = NeuronSensitivity(layers=["h1"], layer_fraction=1.0, neuron_fraction=1.0)
    np.testing.assert_allclose(value(penalty), MEAN_H1, rtol=0.03)


def test_all_neurons_of_two_layers_converge_to_the_mean_over_both():
    penalty = NeuronSensitivity(layers=["h1", "h2"], layer_fraction=1.0, neuron_fraction=1.0, projections=2)
    np.testing.assert_allclose(value(penalty), MEAN_BOTH, rtol=0.03)


def test_half_of_two_layers_samples_exactly_one_layer_per_step():
    penalty = NeuronSensitivity(layers=["h1", "h2"], layer_fraction=0.5, neuron_fraction=1.0)
    seen = {("h1" if abs(v - MEAN_H1) < 0.05 * MEAN_H1 else "h2" if abs(v - MEAN_H2) < 0.05 * MEAN_H2 else v)
            for v in (value(penalty, batch=5000) for _ in range(12))}
    assert seen == {"h1", "h2"}


def test_default_layers_are_the_hidden_nonlinear_ones_and_training_runs_with_jacobian():
    backbone = testing.tiny_cnn()
    assert hidden_activation_layers(backbone) == [backbone.layers[1].name]
    model = testing.compiled(backbone, [NeuronSensitivity(1.0, neuron_fraction=0.5), Jacobian(0.1)])
    x = RNG.uniform(size=(32, 16, 16, 1)).astype(np.float32)
    y = RNG.integers(0, 3, size=32).astype(np.int32)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert history["neuron_sensitivity"][0] > 0 and history["jacobian"][0] > 0


def test_subclassed_backbones_and_unknown_layers_are_clear_errors():
    from tfjsigr.training.regularized_model_test import SubclassedBackbone

    with pytest.raises(ValueError, match="functional or Sequential"):
        tfjsigr.RegularizedModel(SubclassedBackbone(), [NeuronSensitivity()])
    with pytest.raises(ValueError, match="nope"):
        tfjsigr.RegularizedModel(two_linear_hidden_layers(), [NeuronSensitivity(layers=["nope"])])
    with pytest.raises(ValueError, match="neuron_fraction"):
        NeuronSensitivity(neuron_fraction=0.0)
