"""Lipschitz-inspired adaptive penalty (Woods, Chen & Teuscher 2019)."""

import keras
import tensorflow as tf

from tfjsigr import checks, ops
from tfjsigr.penalties.penalty import Penalty


def random_output_or_margin(labels, logits, zeta):
    """Per example: the margin z_y - max_{k != y} z_k with probability zeta, else a random logit."""
    logits = tf.cast(logits, tf.float32)
    batch, classes = tf.shape(logits)[0], tf.shape(logits)[1]
    true_class = ops.integer_labels(labels, logits)
    true_logit = tf.gather(logits, true_class, axis=1, batch_dims=1)
    others = tf.where(tf.one_hot(true_class, classes) > 0, tf.float32.min, logits)
    margin = true_logit - tf.reduce_max(others, axis=1)
    random_class = tf.random.uniform([batch], 0, classes, dtype=tf.int32)
    random_logit = tf.gather(logits, random_class, axis=1, batch_dims=1)
    return tf.where(tf.random.uniform([batch]) < zeta, margin, random_logit)


def next_intensity(intensity, cross_entropy, target_loss, min_step=-0.01, max_step=1.0):
    """I_t = max(0, I_{t-1} + clip(-ln(CE_t / L_target), min_step, max_step))."""
    step = tf.clip_by_value(-tf.math.log(cross_entropy / target_loss), min_step, max_step)
    return tf.maximum(0.0, intensity + step)


@keras.saving.register_keras_serializable(package="tfjsigr")
class Lipschitz(Penalty):
    """R = mean(|g|^2) over all pixels, g = d(sum_b s_b)/dx, with an adaptive weight psi.

    s_b is the margin z_y - max_{k != y} z_k with probability `zeta`, else a random logit.
    The weight is psi = k0 exp(growth * I): the intensity I grows while the batch's mean
    cross-entropy CE_t is below `target_loss` (I_t = max(0, I_{t-1} + clip(-ln(CE_t /
    target_loss), -0.01, 1))), so the penalty tightens as the task is learnt. I lives in a
    non-trainable variable of the model: saved and restored with it, and averaged over
    replicas under tf.distribute. It is updated in each training step before the weight is
    read, so step t uses psi from I_t.

    Args:
        k0: base weight (220 in the paper's CIFAR-10 code).
        target_loss: L_target (1.5 in the paper's code).
        zeta: probability of the margin output (0.2).
        growth: exponent rate of psi (0.02).
        warmup_steps: linear warm-up of psi, in optimizer steps.
        name: metric name (default "lipschitz").
    """

    default_name = "lipschitz"

    def __init__(self, k0=220.0, target_loss=1.5, zeta=0.2, growth=0.02, warmup_steps=0, name=None):
        super().__init__(k0, warmup_steps, name)
        self.target_loss = checks.number(target_loss, "target_loss", low=0.0, low_open=True)
        self.zeta = checks.fraction(zeta, "zeta", allow_zero=True)
        self.growth = checks.number(growth, "growth")
        self.intensity = None

    def build(self, model):
        self.intensity = model.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            name=f"{self.name}_intensity",
            aggregation="mean",
        )

    def weight_at(self, step):
        return super().weight_at(step) * tf.exp(self.growth * tf.cast(self.intensity, tf.float32))

    def add_targets(self, context):
        context.add_target(
            self.name,
            lambda: tf.reduce_sum(random_output_or_margin(context.y, context.logits, self.zeta)),
        )

    def compute(self, context):
        gradient = context.gradient(self.name)
        pixels = tf.cast(tf.reduce_prod(tf.shape(gradient)[1:]), tf.float32)
        penalty = context.mean(ops.per_example_squared_norm(gradient) / pixels)
        if context.training:
            cross_entropy = tf.reduce_mean(ops.per_example_cross_entropy(context.y, context.logits))
            self.intensity.assign(next_intensity(self.intensity, cross_entropy, self.target_loss))
        return penalty

    def get_config(self):
        config = super().get_config()
        return {
            "k0": config.pop("weight"),
            **config,
            "target_loss": self.target_loss,
            "zeta": self.zeta,
            "growth": self.growth,
        }
