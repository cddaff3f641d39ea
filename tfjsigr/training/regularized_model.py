"""`RegularizedModel`: a Keras model whose train_step adds input-gradient penalties."""

import keras
import tensorflow as tf

from tfjsigr import penalties as penalties_lib
from tfjsigr.penalties import penalty as penalty_lib
from tfjsigr.penalties.penalty import PenaltyContext
from tfjsigr.training import adversarial_training as adversarial_training_lib

IMAGE_KEY = "image"
ANNOTATION_KEY = "annotation_mask"


def split_annotation(x):
    """(images, annotation masks or None) from plain inputs or {"image", "annotation_mask"}."""
    if isinstance(x, dict) and IMAGE_KEY in x:
        return x[IMAGE_KEY], x.get(ANNOTATION_KEY)
    return x, None


class _Untracked:
    """Holds an object out of Keras' attribute tracking (so it is not saved twice)."""

    def __init__(self, value):
        self.value = value


def feature_model(backbone, layer_names):
    """A model sharing the backbone's layers that outputs [logits, *named layer outputs].

    Raises:
        ValueError: the backbone is not a functional or Sequential model, or a name is unknown.
    """
    if not getattr(backbone, "outputs", None):  # Subclassed models have no symbolic graph.
        raise ValueError(
            "penalties on hidden activations need a functional or Sequential backbone, "
            f"got {type(backbone).__name__}"
        )
    try:
        outputs = [backbone.get_layer(name).output for name in layer_names]
    except ValueError as error:
        raise ValueError(f"backbone {backbone.name!r}: {error}") from None
    return keras.Model(backbone.inputs, [backbone.outputs[0], *outputs])


@keras.saving.register_keras_serializable(package="tfjsigr")
class RegularizedModel(keras.Model):
    """Wraps a Keras model that outputs logits and trains it with input-gradient penalties.

    Every penalty is computed from one shared forward pass, under a `tf.GradientTape` watching
    the input and nested in the weight tape, so the penalties' own gradients (double backprop)
    reach the weights. Finite-difference estimators add perturbed inputs: those chosen before
    the pass (random directions) are concatenated with the clean batch into that one forward
    pass when no penalty needs an input gradient; the others (along an input gradient) run as
    one more batched forward pass after it. Without penalties the step is a plain Keras step.
    Each penalty's unweighted value is a metric named after it; `task_loss` is the compiled loss
    alone and `loss` the full objective. `test_step` (and so
    `evaluate` and validation) reports the clean loss and metrics only.

    Example:

    ```python
    model = tfjsigr.RegularizedModel(
        backbone, penalties=[tfjsigr.penalties.JSIGR(jacobian_weight=0.05, selective_weight=5.0)]
    )
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(train_ds, epochs=3, validation_data=test_ds)
    ```

    Args:
        model: any Keras model (Sequential, functional, subclassed) mapping images to logits.
        penalties: list of penalties (instances, names or dicts; see `tfjsigr.penalties.get`).
        adversarial_training: None, "fgsm_rs", "pgd" or an `AdversarialTraining`: train on
            attacked batches (the penalties are then computed on them too).
        **kwargs: passed to `keras.Model` (e.g. `name`).
    """

    def __init__(self, model, penalties=(), adversarial_training=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
        self.model = model
        self.penalties = [penalties_lib.get(p) for p in penalties]
        self.adversarial_training = adversarial_training_lib.get(adversarial_training)
        self._trained_penalties = penalty_lib.flatten(self.penalties)
        names = [p.name for p in self._trained_penalties]
        if len(set(names)) != len(names):
            raise ValueError(f"penalty names must be unique (they name metrics), got {names}")
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        self.penalty_trackers = [keras.metrics.Mean(name=name) for name in names]
        self._activation_names = sorted(
            {name for p in self._trained_penalties for name in p.activation_layers(model)}
        )
        self._feature_model = _Untracked(
            feature_model(model, self._activation_names) if self._activation_names else None
        )
        for penalty in self._trained_penalties:
            penalty.build(self)
        if model.built:
            self.build(model.input_shape if hasattr(model, "input_shape") else None)

    def build(self, input_shape=None):
        if not self.model.built and input_shape is not None:
            self.model.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        images, _ = split_annotation(inputs)
        return self.model(images, training=training)

    def compute_penalties(self, x, y, sample_weight=None, annotation=None, training=False):
        """Forward pass and unweighted penalties, sharing one input tape.

        Must run inside the weight tape when the penalties are to be trained.

        Args:
            x: float32 input batch.
            y: labels (integer ids or one-hot).
            sample_weight: optional per-example weights.
            annotation: optional annotation masks (for mask="annotation").
            training: passed to the model.

        Returns:
            (logits, {penalty name: unweighted value}).
        """
        x = tf.convert_to_tensor(x, tf.float32)
        penalties = self._trained_penalties
        if not penalties:
            return self(x, training=training), {}
        context = PenaltyContext(self, x, y, None, sample_weight, annotation, training)
        for penalty in penalties:
            penalty.add_inputs(context)
        if any(p.needs_input_gradients for p in penalties):
            # The perturbed inputs wait for the second pass, so the input backward passes do
            # not run over them.
            with tf.GradientTape(persistent=True, watch_accessed_variables=False) as input_tape:
                input_tape.watch(x)
                y_pred, activations, _ = self._forward(x, training)
                context.logits = tf.cast(y_pred, tf.float32)
                context.activations = activations
                for penalty in penalties:
                    penalty.add_targets(context)
            context.compute_gradients(input_tape, self._input_gradient_scale(training))
            for penalty in penalties:
                penalty.add_gradient_inputs(context)
            perturbed = context.pending_inputs()
            if perturbed is not None:
                context.set_input_logits(self(perturbed, training=training))
        else:
            # Perturbed inputs chosen before the pass share the clean batch's forward pass.
            y_pred, context.activations, perturbed_logits = self._forward(
                x, training, context.pending_inputs()
            )
            context.logits = tf.cast(y_pred, tf.float32)
            if perturbed_logits is not None:
                context.set_input_logits(perturbed_logits)
        values = {p.name: p.compute(context) for p in penalties}
        return y_pred, values

    def _forward(self, x, training, perturbed=None):
        """Logits, the activations the penalties asked for, and the logits of `perturbed` inputs.

        Clean and perturbed inputs run as one concatenated batch; the activations are the clean
        rows'.
        """
        batch = x if perturbed is None else tf.concat([x, perturbed], axis=0)
        features = self._feature_model.value
        if features is None:
            outputs, activations = self(batch, training=training), {}
        else:
            outputs = features(batch, training=training)
            outputs, activations = outputs[0], dict(zip(self._activation_names, outputs[1:]))
        if perturbed is None:
            return outputs, activations, None
        size = tf.shape(x)[0]
        activations = {name: value[:size] for name, value in activations.items()}
        return outputs[:size], activations, outputs[size:]

    def _input_gradient_scale(self, training):
        """The optimizer's loss scale under float16 training, else None."""
        uses_float16 = self.model.compute_dtype == "float16"
        if not (training and uses_float16 and isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)):
            return None
        return tf.cast(self.optimizer.scale_loss(tf.constant(1.0)), tf.float32)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, annotation = split_annotation(x)
        x = tf.cast(x, tf.float32)
        if self.adversarial_training is not None:
            x = self.adversarial_training(self, x, y)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        step = self.optimizer.iterations
        with tf.GradientTape() as tape:
            y_pred, values = self.compute_penalties(x, y, sample_weight, annotation, training=True)
            task_loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
            weighted = [p.weight_at(step) * values[p.name] for p in self._trained_penalties]
            # compute_loss already divides by the replica count; the penalties are ours to divide.
            penalty_total = tf.add_n(weighted) / replicas if weighted else 0.0
            loss = tf.cast(task_loss, tf.float32) + penalty_total
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        self._update_trackers(loss, task_loss, values, tf.shape(x)[0], replicas)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _update_trackers(self, loss, task_loss, values, batch_size, replicas):
        self._loss_tracker.update_state(loss * replicas, sample_weight=batch_size)
        self.task_loss_tracker.update_state(
            tf.cast(task_loss, tf.float32) * replicas, sample_weight=batch_size
        )
        for penalty, tracker in zip(self._trained_penalties, self.penalty_trackers):
            tracker.update_state(values[penalty.name], sample_weight=batch_size)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, _ = split_annotation(x)
        y_pred = self(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self._loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(x)[0])
        results = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        training_only = {"task_loss", *(p.name for p in self._trained_penalties)}
        return {k: v for k, v in results.items() if k not in training_only}

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(split_annotation(x)[0], training=False)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.model),
                "penalties": [keras.saving.serialize_keras_object(p) for p in self.penalties],
                "adversarial_training": keras.saving.serialize_keras_object(
                    self.adversarial_training
                ),
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"), custom_objects)
        penalties = [
            keras.saving.deserialize_keras_object(p, custom_objects) for p in config.pop("penalties")
        ]
        adversarial = config.pop("adversarial_training", None)
        if adversarial is not None:
            adversarial = keras.saving.deserialize_keras_object(adversarial, custom_objects)
        return cls(model, penalties=penalties, adversarial_training=adversarial, **config)
