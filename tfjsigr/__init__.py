"""tfjsigr: adversarially robust, interpretable image classifiers on Keras 3."""

import os

# TensorFlow's C++ start-up chatter buries our output; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfjsigr import adversarial_training, attacks, ensemble, layers, penalties
from tfjsigr.regularized_model import RegularizedModel

__version__ = "0.1.0"

__all__ = [
    "RegularizedModel",
    "__version__",
    "adversarial_training",
    "attacks",
    "ensemble",
    "layers",
    "penalties",
]
