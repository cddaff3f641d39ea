"""The training side: `RegularizedModel` (penalties in `train_step`), adversarial training and
ensembles. The penalties themselves live in `tfjsigr.penalties`."""

from tfjsigr.training import adversarial_training, ensemble
from tfjsigr.training.regularized_model import RegularizedModel

__all__ = ["RegularizedModel", "adversarial_training", "ensemble"]
