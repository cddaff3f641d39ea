"""Selective input-gradient regularization (SIGR, Liu et al., the "S" of J-SIGR)."""

import math
import numbers

import keras
import tensorflow as tf

from tfjsigr import ops
from tfjsigr.penalties.input_gradient import CROSS_ENTROPY, cross_entropy_target
from tfjsigr.penalties.penalty import Penalty

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


def _whole_number(value, name, minimum):
    """`value` as an int; ValueError for fractions (never truncated), bools and non-numbers."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and value == int(value) and value >= minimum):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


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

    Args:
        weight: penalty weight lambda_S.
        mask: "self_topk", "perturbation" or "annotation".
        top_k: fraction of features treated as salient (left free), in (0, 1).
        smoothing: box-filter size applied to the saliency before the top-k (1: none).
        smoothgrad_samples: noisy copies for SmoothGrad in the self_topk mask (0: plain gradient).
        smoothgrad_noise: standard deviation of SmoothGrad's noise.
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
        warmup_steps=0,
        name=None,
    ):
        super().__init__(weight, warmup_steps, name)
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
        if not 0.0 < float(top_k) < 1.0:
            raise ValueError(f"top_k must be in (0, 1), got {top_k}")
        if not float(smoothgrad_noise) >= 0:
            raise ValueError(f"smoothgrad_noise must be >= 0, got {smoothgrad_noise!r}")
        self.mask = mask
        self.top_k = float(top_k)
        self.smoothing = _whole_number(smoothing, "smoothing", 1)
        self.smoothgrad_samples = _whole_number(smoothgrad_samples, "smoothgrad_samples", 0)
        self.smoothgrad_noise = float(smoothgrad_noise)

    def add_targets(self, context):
        context.add_target(CROSS_ENTROPY, cross_entropy_target(context))
        if self.mask == SELF_TOPK and self.smoothgrad_samples == 0:
            context.add_target(
                TRUE_LOGIT,
                lambda: tf.reduce_sum(ops.true_class_logit(context.y, context.logits)),
            )

    def saliency(self, context):
        """The (stopped) saliency the top-k mask is taken from."""
        if self.mask == PERTURBATION:
            saliency = tf.abs(context.gradient(CROSS_ENTROPY))
        elif self.smoothgrad_samples:
            saliency = smoothgrad_saliency(
                lambda x: context.model(x, training=False),
                context.x,
                context.y,
                self.smoothgrad_samples,
                self.smoothgrad_noise,
            )
        else:
            saliency = tf.abs(context.gradient(TRUE_LOGIT))
        if self.smoothing > 1 and saliency.shape.rank == 4:
            saliency = ops.smooth_saliency(saliency, self.smoothing)
        return tf.stop_gradient(saliency)

    def suppression_mask(self, context):
        """M: 1 on the features whose input gradients are penalized."""
        if self.mask == ANNOTATION:
            if context.annotation is None:
                raise ValueError(
                    "mask='annotation' needs the data to carry masks: feed "
                    "x={'image': images, 'annotation_mask': masks}"
                )
            return tf.cast(context.annotation, tf.float32)
        return ops.top_k_mask(self.saliency(context), self.top_k)

    def compute(self, context):
        return selective_input_gradient_penalty(
            context.gradient(CROSS_ENTROPY), self.suppression_mask(context), context.sample_weight
        )

    def get_config(self):
        return {
            **super().get_config(),
            "mask": self.mask,
            "top_k": self.top_k,
            "smoothing": self.smoothing,
            "smoothgrad_samples": self.smoothgrad_samples,
            "smoothgrad_noise": self.smoothgrad_noise,
        }
