"""Base class of the training penalties and the context they share in one train step."""

import tensorflow as tf

from tfjsigr import ops


class PenaltyContext:
    """What the penalties of one train step share: inputs, labels, logits and input gradients.

    `RegularizedModel` runs one forward pass under an input tape. While that tape records, each
    penalty registers the scalar targets whose input gradients it needs (`add_target`); shared
    keys are computed once (IGR and SIGR both need d CE / dx). After the tape closes, the
    gradients are taken and each penalty reads them (`gradient`).

    Attributes:
        model: the `RegularizedModel` (callable on inputs, for penalties that need more passes).
        x: the float32 input batch, watched by the input tape.
        y: the labels (integer ids or one-hot).
        logits: the float32 logits of the shared forward pass.
        sample_weight: per-example weights or None.
        annotation: per-example annotation masks shaped like `x`, or None.
        training: whether this is a training pass.
        activations: {layer name: activation} of the backbone layers the penalties asked for
            (`Penalty.activation_layers`), from the same forward pass.
        state: values a penalty passes from `add_targets` to `compute` within one step.
    """

    def __init__(self, model, x, y, logits, sample_weight=None, annotation=None, training=True):
        self.model = model
        self.x = x
        self.y = y
        self.logits = tf.cast(logits, tf.float32)
        self.sample_weight = sample_weight
        self.annotation = annotation
        self.training = training
        self.activations = {}
        self.state = {}
        self._targets = {}
        self._gradients = {}

    @property
    def num_classes(self):
        return self.logits.shape[-1]

    @property
    def batch_size(self):
        return tf.shape(self.logits)[0]

    def add_target(self, key, target_fn):
        """Registers `target_fn()` (a scalar) under `key`; call only inside the input tape."""
        if key not in self._targets:
            self._targets[key] = target_fn()

    def compute_gradients(self, input_tape, scale=None):
        """Takes d target / dx for every registered target (the tape must be persistent).

        Args:
            input_tape: the persistent tape that recorded the forward pass and the targets.
            scale: optional loss scale: each target is multiplied by it before the backward
                pass and its gradient divided by it after, so float16 backward passes under
                mixed precision do not underflow (an overflow shows as inf, which the loss-scale
                optimizer answers by skipping the step and lowering the scale).
        """
        for key, target in self._targets.items():
            if scale is None:
                self._gradients[key] = input_tape.gradient(target, self.x)
            else:
                seed = tf.cast(scale, target.dtype)
                gradient = input_tape.gradient(target, self.x, output_gradients=seed)
                self._gradients[key] = tf.cast(gradient, tf.float32) / scale

    def gradient(self, key):
        """The input gradient of the target registered under `key`."""
        return self._gradients[key]

    def mean(self, per_example):
        """Batch mean of a per-example penalty, weighted like the loss."""
        return ops.batch_mean(per_example, self.sample_weight)


class Penalty:
    """A weighted, per-example regularizer averaged over the batch.

    Subclasses implement `add_targets` (inside the input tape: register the scalars whose input
    gradients are needed) and `compute` (after it: return the unweighted batch-mean penalty).

    Args:
        weight: multiplier of the penalty in the training objective.
        warmup_steps: the weight grows linearly from weight / warmup_steps to `weight` over
            this many optimizer steps (0: full weight from the first step).
        name: metric name; defaults to the class's `default_name`.
    """

    default_name = "penalty"

    def __init__(self, weight=1.0, warmup_steps=0, name=None):
        weight = float(weight)
        if not weight >= 0.0:
            raise ValueError(f"weight must be a non-negative number, got {weight}")
        if int(warmup_steps) < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.weight = weight
        self.warmup_steps = int(warmup_steps)
        self.name = name or self.default_name

    def weight_at(self, step):
        """The weight at optimizer step `step` (a scalar tensor), after warm-up."""
        if self.warmup_steps == 0:
            return tf.constant(self.weight, tf.float32)
        ramp = (tf.cast(step, tf.float32) + 1.0) / float(self.warmup_steps)
        return self.weight * tf.minimum(ramp, 1.0)

    def activation_layers(self, backbone):
        """Names of the backbone layers whose outputs this penalty needs (default none)."""
        return []

    def build(self, model):
        """Creates any state variables on the `RegularizedModel` (default none)."""

    def add_targets(self, context):
        """Registers the scalar targets this penalty needs the input gradients of."""

    def compute(self, context):
        """Returns the unweighted batch-mean penalty (a float32 scalar)."""
        raise NotImplementedError

    def get_config(self):
        return {"weight": self.weight, "warmup_steps": self.warmup_steps, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

