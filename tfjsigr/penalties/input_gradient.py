"""Input-gradient regularization ("double backprop", Ross & Doshi-Velez 2018)."""

import keras
import tensorflow as tf

from tfjsigr import checks, ops
from tfjsigr.penalties.penalty import (
    DOUBLE_BACKPROP,
    FINITE_DIFFERENCE,
    RANDOM_DIRECTIONS,
    Penalty,
    estimator_options,
)

CROSS_ENTROPY = "cross_entropy"
INSENSITIVE = "insensitive"
VARIANTS = (CROSS_ENTROPY, INSENSITIVE)


def input_gradient_penalty(input_gradients, sample_weight=None):
    """R_igr = mean_b ||g_b||_2^2 for per-example input gradients g (B, ...)."""
    return ops.batch_mean(ops.per_example_squared_norm(input_gradients), sample_weight)


def cross_entropy_target(context):
    """Sum over the batch of per-example CE: its input gradient holds d CE_b / d x_b per row."""
    return lambda: keras.ops.sum(ops.per_example_cross_entropy(context.y, context.logits))


def finite_difference_penalty(perturbed_losses, clean_losses, step, sample_weight=None):
    """mean_b of ((L_b(x_b + h d_b) - L_b(x_b)) / h)^2, averaged over the directions d.

    Along d = g/||g|| this estimates ||g||^2 (Finlay & Oberman); along Gaussian d (step h/sqrt(d))
    it is an unbiased estimate of the same, up to O(h).
    """
    return ops.batch_mean(ops.squared_difference_quotient(perturbed_losses, clean_losses, step), sample_weight)


def per_example_loss(variant, y, logits):
    """The per-example loss whose input gradient is penalized."""
    if variant == CROSS_ENTROPY:
        return ops.per_example_cross_entropy(y, logits)
    return ops.certainty_insensitivity(logits)


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
        estimator: "double_backprop" (exact), "finite_difference" (along the normalised input
            gradient) or "random_directions" (Gaussian directions, no input gradient at all);
            see `tfjsigr.penalties.penalty.estimator_options`.
        step: finite-difference step h (L2 length of the perturbation).
        directions: Gaussian directions per example ("random_directions").
        penalty_fraction: share of each batch the penalty is computed on (unbiased).
        warmup_steps: linear warm-up of the weight, in optimizer steps.
        name: metric name (default "input_gradient").
    """

    default_name = "input_gradient"

    def __init__(
        self,
        weight=1.0,
        variant=CROSS_ENTROPY,
        estimator=DOUBLE_BACKPROP,
        step=0.01,
        directions=1,
        penalty_fraction=1.0,
        warmup_steps=0,
        name=None,
    ):
        super().__init__(weight, warmup_steps, name)
        self.variant = checks.choice(variant, "variant", VARIANTS)
        self.estimator, self.step, self.directions, self.penalty_fraction = estimator_options(
            estimator, step, directions, penalty_fraction
        )

    @property
    def needs_input_gradients(self):
        return self.estimator != RANDOM_DIRECTIONS

    def add_inputs(self, context):
        if self.estimator == RANDOM_DIRECTIONS:
            x = context.take(context.x, self.penalty_fraction)
            inputs, context.state[self.name] = ops.gaussian_perturbations(x, self.directions, self.step)
            context.add_input(self.name, inputs)

    def add_targets(self, context):
        if self.estimator != RANDOM_DIRECTIONS:
            y, logits = context.y, context.logits
            context.add_target(self.variant, lambda: tf.reduce_sum(per_example_loss(self.variant, y, logits)))

    def add_gradient_inputs(self, context):
        if self.estimator == FINITE_DIFFERENCE:
            x = context.take(context.x, self.penalty_fraction)
            gradient = context.take(context.gradient(self.variant), self.penalty_fraction)
            context.add_input(self.name, x + self.step * ops.unit_directions(gradient))
            context.state[self.name] = self.step

    def compute(self, context):
        fraction = self.penalty_fraction
        weights = context.take(context.sample_weight, fraction)
        if self.estimator == DOUBLE_BACKPROP:
            return input_gradient_penalty(context.take(context.gradient(self.variant), fraction), weights)
        y = context.take(context.y, fraction)
        clean = per_example_loss(self.variant, y, context.take(context.logits, fraction))
        perturbed_logits = context.input_logits(self.name)
        repeats = tf.shape(perturbed_logits)[0] // tf.shape(clean)[0]
        perturbed = per_example_loss(self.variant, ops.tile_batch(y, repeats), perturbed_logits)
        return finite_difference_penalty(perturbed, clean, context.state[self.name], weights)

    def get_config(self):
        return {
            **super().get_config(),
            "variant": self.variant,
            "estimator": self.estimator,
            "step": self.step,
            "directions": self.directions,
            "penalty_fraction": self.penalty_fraction,
        }
