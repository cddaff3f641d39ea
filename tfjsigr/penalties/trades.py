"""TRADES (Zhang et al. 2019): KL between clean and adversarial predictions."""

import keras
import numpy as np
import tensorflow as tf

from tfjsigr import checks
from tfjsigr.attacks.projected_gradient_descent import projected_gradient_descent
from tfjsigr.penalties.penalty import Penalty


def kl_divergence_from_logits(reference_logits, logits):
    """KL(softmax(reference) || softmax(logits)) per example."""
    reference_log_p = tf.nn.log_softmax(tf.cast(reference_logits, tf.float32))
    log_q = tf.nn.log_softmax(tf.cast(logits, tf.float32))
    return tf.reduce_sum(tf.exp(reference_log_p) * (reference_log_p - log_q), axis=-1)


@keras.saving.register_keras_serializable(package="tfjsigr")
class TRADES(Penalty):
    """beta * mean_b KL(p(x_b) || p(x'_b)), x' maximizing the KL inside the L-inf eps-ball.

    The clean logits come from the shared forward pass; x' is found by `steps` signed
    gradient steps on the KL from x + 0.001 N(0, 1) (the paper's recipe), without gradient
    flow, and one more forward pass of x' carries the penalty's gradient.

    Args:
        weight: beta, the robustness trade-off (1 to 6 in the paper).
        epsilon: L-inf radius of the inner maximization.
        steps: steps of the inner maximization.
        step_size: size of each step (default epsilon / 4).
        warmup_steps: linear warm-up of the weight, in optimizer steps.
        name: metric name (default "trades").
    """

    default_name = "trades"

    def __init__(self, weight=6.0, epsilon=0.1, steps=10, step_size=None, warmup_steps=0, name=None):
        super().__init__(weight, warmup_steps, name)
        self.epsilon = checks.number(epsilon, "epsilon", low=0.0, high=1.0, low_open=True)
        self.steps = checks.whole(steps, "steps", low=1)
        step_size = self.epsilon / 4 if step_size is None else step_size
        self.step_size = checks.number(step_size, "step_size", low=0.0, high=1.0, low_open=True)

    def adversarial_inputs(self, model, x, clean_logits):
        reference = tf.stop_gradient(clean_logits)
        start = x + 0.001 * tf.random.normal(tf.shape(x))
        x_adv = projected_gradient_descent(
            lambda inputs: model(inputs, training=False),
            start,
            reference,
            eps=self.epsilon,
            step_size=self.step_size,
            steps=self.steps,
            norm=np.inf,
            rand_init=False,
            loss_fn=kl_divergence_from_logits,
        )
        # The ball is centred on x, not on the noisy start.
        return tf.stop_gradient(tf.clip_by_value(x_adv, x - self.epsilon, x + self.epsilon))

    def compute(self, context):
        x_adv = self.adversarial_inputs(context.model, context.x, context.logits)
        adversarial_logits = context.model(x_adv, training=context.training)
        return context.mean(kl_divergence_from_logits(context.logits, adversarial_logits))

    def get_config(self):
        return {
            **super().get_config(),
            "epsilon": self.epsilon,
            "steps": self.steps,
            "step_size": self.step_size,
        }
