"""Base class of the training penalties and the context they share in one train step."""


import tensorflow as tf

from tfjsigr import checks, ops

DOUBLE_BACKPROP = "double_backprop"
FINITE_DIFFERENCE = "finite_difference"
RANDOM_DIRECTIONS = "random_directions"
ESTIMATORS = (DOUBLE_BACKPROP, FINITE_DIFFERENCE, RANDOM_DIRECTIONS)


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
        self.logits = None if logits is None else tf.cast(logits, tf.float32)
        self.sample_weight = sample_weight
        self.annotation = annotation
        self.training = training
        self.activations = {}
        self.state = {}
        self._targets = {}
        self._gradients = {}
        self._inputs = {}
        self._input_logits = {}
        self._pending = []
        self._subsets = {}

    @property
    def num_classes(self):
        return self.logits.shape[-1]

    @property
    def batch_size(self):
        return tf.shape(self.x)[0]

    def take(self, tensor, fraction):
        """The rows of `tensor` (None passes through) in this step's random subset for `fraction`.

        Every penalty with the same fraction sees the same subset (J-SIGR's components share it).
        """
        if tensor is None or fraction >= 1.0:
            return tensor
        if fraction not in self._subsets:
            self._subsets[fraction] = ops.random_subset(self.batch_size, fraction)
        return tf.gather(tensor, self._subsets[fraction])

    def add_input(self, key, inputs):
        """Registers a perturbed input batch for the next forward pass (once per key)."""
        if key not in self._inputs:
            self._inputs[key] = tf.stop_gradient(tf.cast(inputs, tf.float32))

    def pending_inputs(self):
        """The registered inputs not yet run, as one concatenated batch (None if there are none)."""
        pending = [k for k in self._inputs if k not in self._input_logits]
        self._pending = pending
        return tf.concat([self._inputs[k] for k in pending], axis=0) if pending else None

    def set_input_logits(self, logits):
        """Splits the logits of `pending_inputs()`' batch back into the registered keys."""
        sizes = [tf.shape(self._inputs[k])[0] for k in self._pending]
        parts = tf.split(tf.cast(logits, tf.float32), tf.stack(sizes), axis=0)
        self._input_logits.update(zip(self._pending, parts))

    def input_logits(self, key):
        """Float32 logits of the perturbed inputs registered under `key`."""
        return self._input_logits[key]

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

    def mean(self, per_example, fraction=1.0):
        """Batch mean of a per-example penalty, weighted like the loss.

        With `fraction` < 1, `per_example` holds the rows of `take(..., fraction)`: its mean is an
        unbiased estimate of the full batch mean.
        """
        return ops.batch_mean(per_example, self.take(self.sample_weight, fraction))


class Penalty:
    """A weighted, per-example regularizer averaged over the batch.

    Subclasses implement `add_targets` (inside the input tape: register the scalars whose input
    gradients are needed) and `compute` (after it: return the unweighted batch-mean penalty).
    Finite-difference estimators also register perturbed inputs (`context.add_input`), either
    before the forward pass (`add_inputs`: they then share the clean batch's forward pass) or
    after the input gradients (`add_gradient_inputs`: one more batched forward pass).

    Args:
        weight: multiplier of the penalty in the training objective.
        warmup_steps: the weight grows linearly from weight / warmup_steps to `weight` over
            this many optimizer steps (0: full weight from the first step).
        name: metric name; defaults to the class's `default_name`.
    """

    default_name = "penalty"

    def __init__(self, weight=1.0, warmup_steps=0, name=None):
        self.weight = checks.number(weight, "weight", low=0.0)
        self.warmup_steps = checks.whole(warmup_steps, "warmup_steps", low=0)
        self.name = name or self.default_name

    def weight_at(self, step):
        """The weight at optimizer step `step` (a scalar tensor), after warm-up."""
        if self.warmup_steps == 0:
            return tf.constant(self.weight, tf.float32)
        ramp = (tf.cast(step, tf.float32) + 1.0) / float(self.warmup_steps)
        return self.weight * tf.minimum(ramp, 1.0)

    @property
    def needs_input_gradients(self):
        """Whether `add_targets` registers input-gradient targets (an input tape is needed)."""
        return True

    def add_inputs(self, context):
        """Before the forward pass: registers perturbed inputs that do not depend on the model."""

    def add_gradient_inputs(self, context):
        """After the input gradients: registers perturbed inputs that depend on them."""

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

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, repr(self)))

    def clone(self):
        """A fresh penalty with the same configuration (no per-model state)."""
        return type(self).from_config(self.get_config())


class CompositePenalty(Penalty):
    """A penalty made of other penalties (J-SIGR), each with its own weight and metric.

    `RegularizedModel` trains and reports the `components`; the composite itself has no weight.
    Outside training, `compute` returns the weighted sum of the components.

    Args:
        components: the component penalties, in order.
        warmup_steps: the components' shared warm-up (recorded in the composite's config).
        name: name of the composite (its components keep their own metric names).
    """

    default_name = "composite"

    def __init__(self, components, warmup_steps=0, name=None):
        self.components = list(components)
        self.weight = None
        self.warmup_steps = checks.whole(warmup_steps, "warmup_steps", low=0)
        self.name = name or self.default_name

    def weight_at(self, step):
        raise TypeError(f"{self.name} is a composite: train its components, each with its weight")

    @property
    def needs_input_gradients(self):
        return any(component.needs_input_gradients for component in self.components)

    def add_inputs(self, context):
        for component in self.components:
            component.add_inputs(context)

    def add_gradient_inputs(self, context):
        for component in self.components:
            component.add_gradient_inputs(context)

    def activation_layers(self, backbone):
        return [name for c in self.components for name in c.activation_layers(backbone)]

    def build(self, model):
        for component in self.components:
            component.build(model)

    def add_targets(self, context):
        for component in self.components:
            component.add_targets(context)

    def compute(self, context):
        return sum(c.weight * c.compute(context) for c in self.components)


def flatten(penalties):
    """The penalties with every composite replaced by its components, in order."""
    flat = []
    for penalty in penalties:
        is_composite = isinstance(penalty, CompositePenalty)
        flat.extend(flatten(penalty.components) if is_composite else [penalty])
    return flat




def estimator_options(estimator, step, directions, penalty_fraction, allowed=ESTIMATORS):
    """Validated (estimator, step, directions, penalty_fraction) of a penalty.

    Finlay & Oberman (arXiv 1905.11468) replace the double backward pass by finite differences:

    - "double_backprop": the exact penalty, differentiated through the input gradient.
    - "finite_difference": along the stopped, normalised input gradient d = g/||g||,
      ||g|| = g.d ~ (L(x + h d) - L(x)) / h, so ||g||^2 ~ ((L(x + h d) - L(x)) / h)^2: one
      first-order input gradient and one more forward pass; bias O(h), no variance.
    - "random_directions": for u ~ N(0, I_d), E[(g.u)^2] = ||g||^2 and E||J u||^2 = ||J||_F^2,
      g.u and J u taken by the same finite differences; the step along u is h / sqrt(d), so each
      perturbation has L2 length about h. Unbiased up to O(h); relative variance 2 per direction
      for a rank-1 g g^T, averaged over `directions` draws.

    `penalty_fraction` < 1 computes the penalty on a random subset of ceil(fraction * B) examples
    of each batch: an unbiased estimate of the batch mean.

    Raises:
        ValueError: an unknown estimator, step <= 0, directions < 1 or a fraction outside (0, 1].
    """
    return (
        checks.choice(estimator, "estimator", allowed),
        checks.number(step, "step", low=0.0, low_open=True),
        checks.whole(directions, "directions", low=1),
        checks.fraction(penalty_fraction, "penalty_fraction"),
    )
