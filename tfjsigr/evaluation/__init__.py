"""Robustness and interpretability evaluation: attacks over an eps grid, UAP, ARA, exact ||J||_F,
transfer matrix, gradient-masking guards, saliency scores, JSON/Markdown reports and plots."""

from tfjsigr.evaluation.evaluate import (
    Evaluation,
    EvaluationConfig,
    check_model,
    evaluate_model,
    evaluate_zoo,
    leaderboard,
)
from tfjsigr.evaluation.guards import black_box_guard, monotone_guard, unbounded_guard
from tfjsigr.evaluation.robustness_area import ara, ara_from_distances, minimum_rmse_distances
from tfjsigr.evaluation.transfer import transfer_matrix

__all__ = [
    "Evaluation",
    "EvaluationConfig",
    "ara",
    "ara_from_distances",
    "black_box_guard",
    "check_model",
    "evaluate_model",
    "evaluate_zoo",
    "leaderboard",
    "minimum_rmse_distances",
    "monotone_guard",
    "transfer_matrix",
    "unbounded_guard",
]
