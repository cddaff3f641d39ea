"""Adversarial-training modes of `RegularizedModel`: train on attacked inputs.

FGSM with random start (Wong, Rice & Kolter 2020, "fast is better than free") and PGD-K
(Madry et al. 2018). The attack runs before the shared forward pass, so every penalty and the
loss see the adversarial batch, and penalties can be combined with either mode.
"""

import keras
import numpy as np
import tensorflow as tf

from tfjsigr.attacks.projected_gradient_descent import projected_gradient_descent

FGSM_RS = "fgsm_rs"
PGD = "pgd"
ATTACKS = (FGSM_RS, PGD)


@keras.saving.register_keras_serializable(package="tfjsigr")
class AdversarialTraining:
    """Replaces each training batch by its adversarial version (L-inf).

    Args:
        attack: "fgsm_rs" (one step of 1.25 epsilon from a uniform random start) or "pgd"
            (`steps` steps of 2.5 epsilon / steps from a uniform random start).
        epsilon: L-inf radius.
        steps: PGD steps (ignored by fgsm_rs, which takes one).
        step_size: overrides the default step size.
    """

    def __init__(self, attack=PGD, epsilon=0.1, steps=7, step_size=None):
        if attack not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
        if not float(epsilon) > 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        self.attack = attack
        self.epsilon = float(epsilon)
        self.steps = 1 if attack == FGSM_RS else int(steps)
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        default_step = 1.25 * self.epsilon if attack == FGSM_RS else 2.5 * self.epsilon / self.steps
        self.step_size = float(step_size) if step_size is not None else default_step

    def __call__(self, model, x, y):
        """Adversarial inputs for the batch (x, y), crafted against `model` in inference mode."""
        x_adv = projected_gradient_descent(
            lambda inputs: model(inputs, training=False),
            x,
            y,
            eps=self.epsilon,
            step_size=self.step_size,
            steps=self.steps,
            norm=np.inf,
            rand_init=True,
        )
        return tf.stop_gradient(x_adv)

    def get_config(self):
        return {
            "attack": self.attack,
            "epsilon": self.epsilon,
            "steps": self.steps,
            "step_size": self.step_size,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"AdversarialTraining({self.get_config()})"


def get(identifier):
    """An `AdversarialTraining` from None, "fgsm_rs", "pgd", a config dict or an instance."""
    if identifier is None or isinstance(identifier, AdversarialTraining):
        return identifier
    if isinstance(identifier, str):
        return AdversarialTraining(identifier)
    if isinstance(identifier, dict):
        if "class_name" in identifier:
            return keras.saving.deserialize_keras_object(identifier)
        return AdversarialTraining(**identifier)
    raise ValueError(f"cannot interpret {identifier!r} as an adversarial-training mode")
