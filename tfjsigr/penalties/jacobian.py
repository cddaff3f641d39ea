"""Jacobian (Frobenius norm) regularization (Hoffman, Roberts & Yaida 2019)."""

import keras
import tensorflow as tf

from tfjsigr import ops
from tfjsigr.penalties.penalty import Penalty

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


def _is_positive_integer(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value) >= 1


@keras.saving.register_keras_serializable(package="tfjsigr")
class Jacobian(Penalty):
    """Penalizes 1/2 ||J||_F^2 of the input-logit Jacobian, per example.

    With `projections=n`, ||J||_F^2 is estimated by (C / n) sum_mu ||v_mu^T J||^2 with v_mu
    uniform on the unit sphere of R^C (one v per example per projection): n extra backward
    passes. `projections="exact"` computes all C rows through the shared forward pass.

    Args:
        weight: penalty weight lambda_J.
        projections: number of random projections n >= 1, or "exact".
        warmup_steps: linear warm-up of the weight, in optimizer steps.
        name: metric name (default "jacobian").
    """

    default_name = "jacobian"

    def __init__(self, weight=1.0, projections=1, warmup_steps=0, name=None):
        super().__init__(weight, warmup_steps, name)
        if projections != EXACT and not _is_positive_integer(projections):
            raise ValueError(f"projections must be a positive integer or 'exact', got {projections!r}")
        self.projections = projections if projections == EXACT else int(projections)

    def _target_keys(self, num_classes):
        if self.projections == EXACT:
            return [f"logit_{c}" for c in range(num_classes)]
        return [f"{self.name}_projection_{mu}" for mu in range(self.projections)]

    def add_targets(self, context):
        logits = context.logits
        num_classes = context.num_classes
        if self.projections == EXACT:
            for c, key in enumerate(self._target_keys(num_classes)):
                context.add_target(key, lambda c=c: tf.reduce_sum(logits[:, c]))
            return
        for key in self._target_keys(num_classes):
            v = tf.stop_gradient(ops.random_unit_vectors(context.batch_size, num_classes))
            context.add_target(key, lambda v=v: tf.reduce_sum(v * logits))

    def per_example(self, context):
        """||J_b||_F^2 (exact or estimated) per example."""
        gradients = [context.gradient(k) for k in self._target_keys(context.num_classes)]
        if self.projections == EXACT:
            return tf.add_n([ops.per_example_squared_norm(g) for g in gradients])
        return ops.jacobian_frobenius_from_projections(gradients, context.num_classes)

    def compute(self, context):
        return 0.5 * context.mean(self.per_example(context))

    def get_config(self):
        return {**super().get_config(), "projections": self.projections}
