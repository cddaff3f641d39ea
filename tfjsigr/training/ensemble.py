"""`Ensemble`: M classifiers combined into one model that maps images to logits (paper 5)."""

import keras
import tensorflow as tf

COMBINE_MODES = ("logits", "probabilities")


@keras.saving.register_keras_serializable(package="tfjsigr")
class Ensemble(keras.Model):
    """Averages the logits, or the probabilities, of M member models.

    With `combine="probabilities"` the output is log(mean_m softmax(z_m)), the log of the
    averaged probabilities: still logits-like (its softmax is the mean probability), so
    cross-entropy from logits, attacks and the zoo export treat it like any classifier.

    Train the members independently (each a `RegularizedModel` with its own seed, then
    `ensemble_from_members`) or jointly (`RegularizedModel(Ensemble(members), penalties=[...])`
    penalizes the ensemble's own Jacobian).

    Example:

    ```python
    ensemble = tfjsigr.ensemble.Ensemble([small_cnn() for _ in range(3)])
    model = tfjsigr.RegularizedModel(ensemble, penalties=[tfjsigr.penalties.Jacobian(0.5)])
    ```

    Args:
        members: list of Keras models mapping the same images to logits of the same classes.
        combine: "logits" (mean of the logits) or "probabilities" (log of the mean softmax).
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Raises:
        ValueError: no members or an unknown `combine`.
        TypeError: a member that is not a Keras model.
    """

    def __init__(self, members, combine="logits", **kwargs):
        super().__init__(**kwargs)
        members = list(members)
        if not members:
            raise ValueError("an Ensemble needs at least one member")
        for member in members:
            if not isinstance(member, keras.Model):
                raise TypeError(
                    f"members must be keras.Model instances, got {type(member).__name__}"
                )
        if combine not in COMBINE_MODES:
            raise ValueError(f"combine must be one of {list(COMBINE_MODES)}, got {combine!r}")
        self.members = members
        self.combine = combine
        if all(member.built for member in members):
            self.built = True

    # Read by export and evaluation code that expects a functional model's shapes.
    @property
    def input_shape(self):
        return self.members[0].input_shape

    @property
    def output_shape(self):
        return self.members[0].output_shape

    def build(self, input_shape=None):
        for member in self.members:
            if not member.built:
                member.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        outputs = [
            tf.cast(member(inputs, training=training), tf.float32) for member in self.members
        ]
        return combine_outputs(outputs, self.combine)

    def compute_output_shape(self, input_shape):
        return self.members[0].compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "members": [keras.saving.serialize_keras_object(m) for m in self.members],
                "combine": self.combine,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        members = [
            keras.saving.deserialize_keras_object(m, custom_objects) for m in config.pop("members")
        ]
        return cls(members, **config)


def combine_outputs(logits, combine="logits"):
    """Combines per-member logits.

    Args:
        logits: list of M float tensors [B, C].
        combine: "logits" (their mean) or "probabilities" (log of the mean softmax).

    Returns:
        A [B, C] float tensor.
    """
    stacked = tf.stack(logits, axis=0)
    if combine == "logits":
        return tf.reduce_mean(stacked, axis=0)
    count = tf.cast(tf.shape(stacked)[0], stacked.dtype)
    # log mean_m p_m = logsumexp_m(log_softmax(z_m)) - log M, stable for large logits.
    return tf.reduce_logsumexp(tf.nn.log_softmax(stacked, axis=-1), axis=0) - tf.math.log(count)


def ensemble_from_members(members, combine="logits", name="ensemble"):
    """An `Ensemble` of independently trained models.

    Args:
        members: trained models; `RegularizedModel`s are unwrapped to their backbones (their
            penalties only matter in training).
        combine: "logits" or "probabilities" (see `Ensemble`).
        name: the ensemble's name.

    Returns:
        An `Ensemble` over the members' backbones (weights shared, not copied).
    """
    from tfjsigr.training.regularized_model import RegularizedModel

    backbones = [m.model if isinstance(m, RegularizedModel) else m for m in members]
    return Ensemble(backbones, combine=combine, name=name)
