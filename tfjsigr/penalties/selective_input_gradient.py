"""Selective input-gradient regularization (SIGR, Liu et al., the "S" of J-SIGR)."""


import keras
import tensorflow as tf

from tfjsigr import checks, ops
from tfjsigr.penalties.input_gradient import (
    CROSS_ENTROPY,
    cross_entropy_target,
    finite_difference_penalty,
)
from tfjsigr.penalties.penalty import (
    DOUBLE_BACKPROP,
    FINITE_DIFFERENCE,
    RANDOM_DIRECTIONS,
    Penalty,
    estimator_options,
)

SELF_TOPK = "self_topk"
PERTURBATION = "perturbation"
ANNOTATION = "annotation"
MASKS = (SELF_TOPK, PERTURBATION, ANNOTATION)
TRUE_LOGIT = "true_logit"


def selective_input_gradient_penalty(input_gradients, mask, sample_weight=None):
    """R_sigr = mean_b ||M_b * g_b||_2^2; M is 1 on the features whose gradients are suppressed."""
    masked = tf.cast(input_gradients, tf.float32) * tf.cast(mask, tf.float32)
    return ops.batch_mean(ops.per_example_squared_norm(masked), sample_weight)


def smoothgrad_saliency(logits_fn, x, labels, samples, noise_std, seed=None):
    """SmoothGrad of |d z_y / dx|: mean over noisy copies of x (no gradient flows out)."""
    total = tf.zeros_like(x)
    for _ in range(samples):
        noisy = x + tf.random.normal(tf.shape(x), stddev=noise_std, seed=seed)
        with tf.GradientTape() as tape:
            tape.watch(noisy)
            target = tf.reduce_sum(ops.true_class_logit(labels, logits_fn(noisy)))
        total += tf.abs(tape.gradient(target, noisy))
    return tf.stop_gradient(total / samples)


@keras.saving.register_keras_serializable(package="tfjsigr")
class SelectiveInputGradient(Penalty):
    """Penalizes the input gradient of the loss on the *non-salient* features only.

    R = mean_b ||M_b * d CE_b / d x_b||^2, M_b in [0, 1]^d. The salient features are left
    free, so the model's saliency concentrates on them. Mask sources:

    - "self_topk": saliency s = |d z_y / d x| of the model itself (SmoothGrad when
      `smoothgrad_samples` > 0), optionally box-smoothed; M = 1 outside the top `top_k`
      fraction of s per example. No gradient flows through the mask.
    - "perturbation": saliency = magnitude of the one-step L2 adversarial perturbation,
      delta = eps * g / ||g|| with g = d CE / dx, so s = |g| (the CE gradient is shared with
      the penalty itself: no extra pass); same top-k rule.
    - "annotation": the user's mask (1 = gradient suppressed, 0 = free), fed with the data as
      `x = {"image": images, "annotation_mask": masks}` (same shape as the images).

    Estimators (g = d CE / dx, M the stopped mask):

    - "double_backprop": ||M g||^2 exactly, differentiated through g.
    - "finite_difference": along w = M (M g) / ||M g|| (stopped), g.w = ||M g||, so
      ||M g||^2 ~ ((CE(x + h w) - CE(x)) / h)^2. It reuses the first-order CE gradient the
      perturbation mask is taken from.
    - "random_directions": E[(g . (M u))^2] = ||M g||^2 for u ~ N(0, I_d), with
      g . (M u) ~ (CE(x + s M u) - CE(x)) / s, s = h / sqrt(d). Needs no input gradient with
      the annotation mask (the perturbed inputs then share the clean forward pass).

    Args:
        weight: penalty weight lambda_S.
        mask: "self_topk", "perturbation" or "annotation".
        top_k: fraction of features treated as salient (left free), in (0, 1).
        smoothing: box-filter size applied to the saliency before the top-k (1: none).
        smoothgrad_samples: noisy copies for SmoothGrad in the self_topk mask (0: plain gradient).
        smoothgrad_noise: standard deviation of SmoothGrad's noise.
        estimator: "double_backprop", "finite_difference" or "random_directions".
        step: finite-difference step h (L2 length of the perturbation).
        directions: Gaussian directions per example ("random_directions").
        penalty_fraction: share of each batch the penalty is computed on (unbiased).
        warmup_steps: linear warm-up of the weight, in optimizer steps.
        name: metric name (default "selective_input_gradient").
    """

    default_name = "selective_input_gradient"

    def __init__(
        self,
        weight=1.0,
        mask=SELF_TOPK,
        top_k=0.2,
        smoothing=1,
        smoothgrad_samples=0,
        smoothgrad_noise=0.1,
        estimator=DOUBLE_BACKPROP,
        step=0.01,
        directions=1,
        penalty_fraction=1.0,
        warmup_steps=0,
        name=None,
    ):
        super().__init__(weight, warmup_steps, name)
        self.mask = checks.choice(mask, "mask", MASKS)
        self.top_k = checks.fraction(top_k, "top_k", allow_one=False)
        self.smoothing = checks.whole(smoothing, "smoothing", low=1)
        self.smoothgrad_samples = checks.whole(smoothgrad_samples, "smoothgrad_samples", low=0)
        self.smoothgrad_noise = checks.number(smoothgrad_noise, "smoothgrad_noise", low=0.0)
        self.estimator, self.step, self.directions, self.penalty_fraction = estimator_options(
            estimator, step, directions, penalty_fraction
        )

    @property
    def _early(self):
        """Random directions with a mask known before the forward pass."""
        return self.estimator == RANDOM_DIRECTIONS and self.mask == ANNOTATION

    @property
    def needs_input_gradients(self):
        return not self._early

    def add_inputs(self, context):
        if self._early:
            self._add_gaussian_inputs(context)

    def _add_gaussian_inputs(self, context):
        x = context.take(context.x, self.penalty_fraction)
        inputs, context.state[self.name] = ops.gaussian_perturbations(
            x, self.directions, self.step, mask=self.suppression_mask(context)
        )
        context.add_input(self.name, inputs)

    def add_gradient_inputs(self, context):
        if self.estimator == RANDOM_DIRECTIONS and not self._early:
            self._add_gaussian_inputs(context)
        elif self.estimator == FINITE_DIFFERENCE:
            mask = self.suppression_mask(context)
            gradient = context.take(context.gradient(CROSS_ENTROPY), self.penalty_fraction)
            direction = mask * ops.unit_directions(mask * gradient)
            context.add_input(self.name, context.take(context.x, self.penalty_fraction) + self.step * direction)
            context.state[self.name] = self.step

    def add_targets(self, context):
        if self._early:
            return
        context.add_target(CROSS_ENTROPY, cross_entropy_target(context))
        if self.mask == SELF_TOPK and self.smoothgrad_samples == 0:
            context.add_target(
                TRUE_LOGIT,
                lambda: tf.reduce_sum(ops.true_class_logit(context.y, context.logits)),
            )

    def saliency(self, context):
        """The (stopped) saliency the top-k mask is taken from, for the penalty's subset."""
        fraction = self.penalty_fraction
        if self.mask == PERTURBATION:
            saliency = tf.abs(context.take(context.gradient(CROSS_ENTROPY), fraction))
        elif self.smoothgrad_samples:
            saliency = smoothgrad_saliency(
                lambda x: context.model(x, training=False),
                context.take(context.x, fraction),
                context.take(context.y, fraction),
                self.smoothgrad_samples,
                self.smoothgrad_noise,
            )
        else:
            saliency = tf.abs(context.take(context.gradient(TRUE_LOGIT), fraction))
        if self.smoothing > 1 and saliency.shape.rank == 4:
            saliency = ops.smooth_saliency(saliency, self.smoothing)
        return tf.stop_gradient(saliency)

    def suppression_mask(self, context):
        """M: 1 on the features whose input gradients are penalized (memoized per step)."""
        key = f"{self.name}_mask"
        if key not in context.state:
            context.state[key] = self._suppression_mask(context)
        return context.state[key]

    def _suppression_mask(self, context):
        if self.mask == ANNOTATION:
            if context.annotation is None:
                raise ValueError(
                    "mask='annotation' needs the data to carry masks: feed "
                    "x={'image': images, 'annotation_mask': masks}"
                )
            return tf.cast(context.take(context.annotation, self.penalty_fraction), tf.float32)
        return ops.top_k_mask(self.saliency(context), self.top_k)

    def compute(self, context):
        fraction = self.penalty_fraction
        weights = context.take(context.sample_weight, fraction)
        if self.estimator == DOUBLE_BACKPROP:
            gradient = context.take(context.gradient(CROSS_ENTROPY), fraction)
            return selective_input_gradient_penalty(gradient, self.suppression_mask(context), weights)
        y = context.take(context.y, fraction)
        clean = ops.per_example_cross_entropy(y, context.take(context.logits, fraction))
        perturbed_logits = context.input_logits(self.name)
        repeats = tf.shape(perturbed_logits)[0] // tf.shape(clean)[0]
        perturbed = ops.per_example_cross_entropy(ops.tile_batch(y, repeats), perturbed_logits)
        return finite_difference_penalty(perturbed, clean, context.state[self.name], weights)

    def get_config(self):
        return {
            **super().get_config(),
            "mask": self.mask,
            "top_k": self.top_k,
            "smoothing": self.smoothing,
            "smoothgrad_samples": self.smoothgrad_samples,
            "smoothgrad_noise": self.smoothgrad_noise,
            "estimator": self.estimator,
            "step": self.step,
            "directions": self.directions,
            "penalty_fraction": self.penalty_fraction,
        }
