"""Input-gradient regularization ("double backprop", Ross & Doshi-Velez 2018)."""

import keras

from tfjsigr import ops
from tfjsigr.penalties.penalty import Penalty

CROSS_ENTROPY = "cross_entropy"
INSENSITIVE = "insensitive"
VARIANTS = (CROSS_ENTROPY, INSENSITIVE)


def input_gradient_penalty(input_gradients, sample_weight=None):
    """R_igr = mean_b ||g_b||_2^2 for per-example input gradients g (B, ...)."""
    return ops.batch_mean(ops.per_example_squared_norm(input_gradients), sample_weight)


def cross_entropy_target(context):
    """Sum over the batch of per-example CE: its input gradient holds d CE_b / d x_b per row."""
    return lambda: keras.ops.sum(ops.per_example_cross_entropy(context.y, context.logits))


@keras.saving.register_keras_serializable(package="tfjsigr")
class InputGradient(Penalty):
    """Penalizes the squared L2 norm of the input gradient of the loss, per example.

    R = mean_b ||d CE_b / d x_b||^2. Ross & Doshi-Velez's code penalizes the gradient of the
    *batch-mean* CE with `tf.nn.l2_loss`, so their lambda converts to this one as
    lambda_here = lambda_ross / (2 B): MNIST 10^4.75 at B = 256 gives about 110.

    Args:
        weight: penalty weight lambda.
        variant: "cross_entropy" (gradient of the true-label CE) or "insensitive" (gradient of
            -(1/C) sum_k log p_k, label-free "certainty insensitivity").
        warmup_steps: linear warm-up of the weight, in optimizer steps.
        name: metric name (default "input_gradient").
    """

    default_name = "input_gradient"

    def __init__(self, weight=1.0, variant=CROSS_ENTROPY, warmup_steps=0, name=None):
        super().__init__(weight, warmup_steps, name)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant

    def add_targets(self, context):
        if self.variant == CROSS_ENTROPY:
            context.add_target(CROSS_ENTROPY, cross_entropy_target(context))
        else:
            context.add_target(
                INSENSITIVE,
                lambda: keras.ops.sum(ops.certainty_insensitivity(context.logits)),
            )

    def compute(self, context):
        return input_gradient_penalty(context.gradient(self.variant), context.sample_weight)

    def get_config(self):
        return {**super().get_config(), "variant": self.variant}
