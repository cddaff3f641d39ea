"""Neuron-sensitivity regularization (Fidel et al., "stochastic regularization of neural
activation sensitivity")."""

import keras
import tensorflow as tf

from tfjsigr import checks, ops
from tfjsigr.penalties.penalty import Penalty


def hidden_activation_layers(backbone):
    """Names of the backbone's hidden layers with a nonlinear activation (the logits excluded)."""
    names = []
    for layer in backbone.layers[:-1]:
        activation = getattr(layer, "activation", None)
        is_activation_layer = isinstance(
            layer, (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU)
        )
        if is_activation_layer or (activation is not None and activation is not keras.activations.linear):
            names.append(layer.name)
    return names


def rademacher(shape):
    """Independent +1 / -1 entries with equal probability."""
    return 2.0 * tf.cast(tf.random.uniform(shape) < 0.5, tf.float32) - 1.0


@keras.saving.register_keras_serializable(package="tfjsigr")
class NeuronSensitivity(Penalty):
    """Penalizes the mean squared input-gradient norm of randomly sampled hidden neurons.

    Each step samples `layer_fraction` of the candidate layers (at least one) and, in each, a
    Bernoulli(`neuron_fraction`) subset of neurons shared by the batch. With u a Rademacher
    vector per example over the sampled neurons, E ||d (u . a_S) / dx||^2 = sum_{j in S}
    ||d a_j / dx||^2, so one backward pass per projection covers every sampled neuron; the
    penalty is that sum divided by the number of sampled neurons, averaged over `projections`
    and the batch. The activations come from the shared forward pass (functional and
    Sequential backbones; no rebuilding by the user). Combine with `Jacobian` by listing both.

    Args:
        weight: penalty weight.
        layers: names of the hidden layers to sample from (default: every hidden layer with
            a nonlinear activation).
        layer_fraction: share of the candidate layers sampled per step, in (0, 1].
        neuron_fraction: probability that a neuron of a sampled layer is sampled, in (0, 1].
        projections: Rademacher projections (backward passes) per step.
        warmup_steps: linear warm-up of the weight, in optimizer steps.
        name: metric name (default "neuron_sensitivity").
    """

    default_name = "neuron_sensitivity"

    def __init__(
        self,
        weight=1.0,
        layers=None,
        layer_fraction=0.5,
        neuron_fraction=0.1,
        projections=1,
        warmup_steps=0,
        name=None,
    ):
        super().__init__(weight, warmup_steps, name)
        self.layers = list(layers) if layers is not None else None
        self.layer_fraction = checks.fraction(layer_fraction, "layer_fraction")
        self.neuron_fraction = checks.fraction(neuron_fraction, "neuron_fraction")
        self.projections = checks.whole(projections, "projections", low=1)

    def activation_layers(self, backbone):
        if self.layers is not None:
            return self.layers
        names = hidden_activation_layers(backbone) if getattr(backbone, "outputs", None) else []
        if not names:
            raise ValueError(
                f"{self.name}: no hidden layer with a nonlinear activation in {backbone.name!r}; "
                "pass layers=[...] (a functional or Sequential backbone is needed)"
            )
        return names

    def _sampled_target(self, activations):
        """(sum over sampled neurons of u * a, number of sampled neurons)."""
        count = len(activations)
        chosen = max(1, round(self.layer_fraction * count))
        included = tf.reduce_sum(tf.one_hot(tf.random.shuffle(tf.range(count))[:chosen], count), axis=0)
        target, sampled = 0.0, 0.0
        for index, activation in enumerate(activations):
            activation = tf.cast(activation, tf.float32)
            neurons = tf.cast(tf.random.uniform(tf.shape(activation)[1:]) < self.neuron_fraction, tf.float32)
            projection = rademacher(tf.shape(activation)) * neurons
            target += included[index] * tf.reduce_sum(projection * activation)
            sampled += included[index] * tf.reduce_sum(neurons)
        return target, tf.maximum(sampled, 1.0)

    def add_targets(self, context):
        names = self.activation_layers(context.model.model)
        activations = [context.activations[name] for name in names]
        counts = []
        for mu in range(self.projections):
            target, sampled = self._sampled_target(activations)
            context.add_target(f"{self.name}_projection_{mu}", lambda target=target: target)
            counts.append(sampled)
        context.state[self.name] = counts

    def compute(self, context):
        per_example = tf.add_n(
            [
                ops.per_example_squared_norm(context.gradient(f"{self.name}_projection_{mu}")) / count
                for mu, count in enumerate(context.state[self.name])
            ]
        )
        return context.mean(per_example / self.projections)

    def get_config(self):
        return {
            **super().get_config(),
            "layers": self.layers,
            "layer_fraction": self.layer_fraction,
            "neuron_fraction": self.neuron_fraction,
            "projections": self.projections,
        }
