"""J-SIGR: Jacobian norm with selective input-gradient regularization (Liu et al. 2024)."""

import keras

from tfjsigr.penalties.jacobian import Jacobian
from tfjsigr.penalties.penalty import DOUBLE_BACKPROP, RANDOM_DIRECTIONS, CompositePenalty
from tfjsigr.penalties.selective_input_gradient import SELF_TOPK, SelectiveInputGradient


@keras.saving.register_keras_serializable(package="tfjsigr")
class JSIGR(CompositePenalty):
    """mean CE + lambda_J * R_jr + lambda_S * R_sigr, in one forward pass.

    A `CompositePenalty`: `RegularizedModel` trains its two `components` and reports them as
    the `jacobian` and `selective_input_gradient` metrics.

    Estimators: "double_backprop" (both terms exact in g, JR by output projections);
    "finite_difference" (SIGR along the masked CE gradient, JR along Gaussian input directions);
    "random_directions" (both along Gaussian directions). Both terms share the step's first-order
    CE gradient (and the perturbation mask is taken from it), the random subset of
    `penalty_fraction`, and one batched forward pass of all their perturbed inputs.

    Args:
        jacobian_weight: lambda_J of the Jacobian term (1/2 ||J||_F^2).
        selective_weight: lambda_S of the selective input-gradient term.
        projections: random projections of the Jacobian estimate, or "exact".
        mask: SIGR mask source ("self_topk", "perturbation" or "annotation").
        top_k: fraction of features treated as salient by the top-k masks.
        smoothing: box-filter size applied to the saliency before the top-k.
        estimator: "double_backprop", "finite_difference" or "random_directions".
        step: finite-difference step h of both terms.
        penalty_fraction: share of each batch both terms are computed on (unbiased).
        warmup_steps: linear warm-up of both weights, in optimizer steps.
        name: name of the composite (its components keep their own metric names).
    """

    default_name = "jsigr"

    def __init__(
        self,
        jacobian_weight=1.0,
        selective_weight=1.0,
        projections=1,
        mask=SELF_TOPK,
        top_k=0.2,
        smoothing=1,
        estimator=DOUBLE_BACKPROP,
        step=0.01,
        penalty_fraction=1.0,
        warmup_steps=0,
        name=None,
    ):
        self.estimator = estimator
        jacobian_estimator = DOUBLE_BACKPROP if estimator == DOUBLE_BACKPROP else RANDOM_DIRECTIONS
        self.jacobian = Jacobian(
            jacobian_weight, projections, jacobian_estimator, step, penalty_fraction, warmup_steps
        )
        self.selective = SelectiveInputGradient(
            selective_weight,
            mask,
            top_k,
            smoothing,
            estimator=estimator,
            step=step,
            penalty_fraction=penalty_fraction,
            warmup_steps=warmup_steps,
        )
        super().__init__([self.jacobian, self.selective], warmup_steps, name)

    def get_config(self):
        return {
            "jacobian_weight": self.jacobian.weight,
            "selective_weight": self.selective.weight,
            "projections": self.jacobian.projections,
            "mask": self.selective.mask,
            "top_k": self.selective.top_k,
            "smoothing": self.selective.smoothing,
            "estimator": self.estimator,
            "step": self.selective.step,
            "penalty_fraction": self.selective.penalty_fraction,
            "warmup_steps": self.warmup_steps,
            "name": self.name,
        }
