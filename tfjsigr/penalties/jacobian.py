"""Jacobian (Frobenius norm) regularization (Hoffman, Roberts & Yaida 2019)."""

import keras
import tensorflow as tf

from tfjsigr import checks, ops
from tfjsigr.penalties.penalty import DOUBLE_BACKPROP, RANDOM_DIRECTIONS, Penalty, estimator_options

EXACT = "exact"


def exact_squared_frobenius(logits_fn, x):
    """Exact ||J_b||_F^2 per example, for evaluation (no training graph).

    Batched VJPs: the batch is repeated C times, one forward pass runs on the B*C copies and one
    backward pass of sum_{b,c} z_{(b,c), c} yields every row of every Jacobian.

    Args:
        logits_fn: callable mapping a batch of inputs to logits (B, C).
        x: input batch (B, ...).

    Returns:
        (B,) float32 squared Frobenius norms.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    batch_size = tf.shape(x)[0]
    num_classes = logits_fn(x[:1]).shape[-1]
    tiled = tf.repeat(x, num_classes, axis=0)
    selector = tf.tile(tf.eye(num_classes), [batch_size, 1])
    with tf.GradientTape() as tape:
        tape.watch(tiled)
        logits = tf.cast(logits_fn(tiled), tf.float32)
        target = tf.reduce_sum(logits * selector)
    rows = tape.gradient(target, tiled)
    per_row = ops.per_example_squared_norm(rows)
    return tf.reduce_sum(tf.reshape(per_row, [batch_size, num_classes]), axis=1)


@keras.saving.register_keras_serializable(package="tfjsigr")
class Jacobian(Penalty):
    """Penalizes 1/2 ||J||_F^2 of the input-logit Jacobian, per example.

    With `projections=n`, ||J||_F^2 is estimated by (C / n) sum_mu ||v_mu^T J||^2 with v_mu
    uniform on the unit sphere of R^C (one v per example per projection): n extra backward
    passes. `projections="exact"` computes all C rows through the shared forward pass.

    `estimator="random_directions"` needs no input gradient: for n Gaussian input directions
    u ~ N(0, I_d), E||J u||^2 = ||J||_F^2 and J u ~ (z(x + s u) - z(x)) / s with s = h / sqrt(d);
    the n * B perturbed inputs run in the clean batch's forward pass.

    Args:
        weight: penalty weight lambda_J.
        projections: number of random projections n >= 1 (output projections, or input
            directions with "random_directions"), or "exact" (double backprop only).
        estimator: "double_backprop" or "random_directions" ("finite_difference" along the
            gradient has no Frobenius-norm analogue).
        step: finite-difference step h (L2 length of the perturbation).
        penalty_fraction: share of each batch the penalty is computed on (unbiased).
        warmup_steps: linear warm-up of the weight, in optimizer steps.
        name: metric name (default "jacobian").
    """

    default_name = "jacobian"

    def __init__(
        self,
        weight=1.0,
        projections=1,
        estimator=DOUBLE_BACKPROP,
        step=0.01,
        penalty_fraction=1.0,
        warmup_steps=0,
        name=None,
    ):
        super().__init__(weight, warmup_steps, name)
        if projections != EXACT:
            projections = checks.whole(projections, "projections (or 'exact')", low=1)
        self.projections = projections
        if projections == EXACT and estimator != DOUBLE_BACKPROP:
            raise ValueError("projections='exact' needs estimator='double_backprop'")
        self.estimator, self.step, _, self.penalty_fraction = estimator_options(
            estimator, step, 1, penalty_fraction, allowed=(DOUBLE_BACKPROP, RANDOM_DIRECTIONS)
        )

    @property
    def needs_input_gradients(self):
        return self.estimator == DOUBLE_BACKPROP

    def add_inputs(self, context):
        if self.estimator == RANDOM_DIRECTIONS:
            x = context.take(context.x, self.penalty_fraction)
            inputs, context.state[self.name] = ops.gaussian_perturbations(x, self.projections, self.step)
            context.add_input(self.name, inputs)

    def _target_keys(self, num_classes):
        if self.projections == EXACT:
            return [f"logit_{c}" for c in range(num_classes)]
        return [f"{self.name}_projection_{mu}" for mu in range(self.projections)]

    def add_targets(self, context):
        if self.estimator == RANDOM_DIRECTIONS:
            return
        logits = context.take(context.logits, self.penalty_fraction)
        num_classes = context.num_classes
        if self.projections == EXACT:
            for c, key in enumerate(self._target_keys(num_classes)):
                context.add_target(key, lambda c=c: tf.reduce_sum(logits[:, c]))
            return
        for key in self._target_keys(num_classes):
            v = tf.stop_gradient(ops.random_unit_vectors(tf.shape(logits)[0], num_classes))
            context.add_target(key, lambda v=v: tf.reduce_sum(v * logits))

    def per_example(self, context):
        """||J_b||_F^2 (exact or estimated) per example, for the `penalty_fraction` subset."""
        if self.estimator == RANDOM_DIRECTIONS:
            clean = context.take(context.logits, self.penalty_fraction)
            perturbed = context.input_logits(self.name)
            return ops.squared_difference_quotient(perturbed, clean, context.state[self.name])
        gradients = [
            context.take(context.gradient(k), self.penalty_fraction)
            for k in self._target_keys(context.num_classes)
        ]
        if self.projections == EXACT:
            return tf.add_n([ops.per_example_squared_norm(g) for g in gradients])
        return ops.jacobian_frobenius_from_projections(gradients, context.num_classes)

    def compute(self, context):
        return 0.5 * context.mean(self.per_example(context), self.penalty_fraction)

    def get_config(self):
        return {
            **super().get_config(),
            "projections": self.projections,
            "estimator": self.estimator,
            "step": self.step,
            "penalty_fraction": self.penalty_fraction,
        }
