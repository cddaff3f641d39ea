"""tfjsigr: adversarially robust, interpretable image classifiers on Keras 3."""

from tfjsigr import adversarial_training, attacks, penalties
from tfjsigr.regularized_model import RegularizedModel

__version__ = "0.1.0"

__all__ = ["RegularizedModel", "adversarial_training", "attacks", "penalties", "__version__"]
