"""Robustness and interpretability evaluation: attacks over an eps grid, UAP, ARA, exact ||J||_F,
transfer matrix, gradient-masking guards, saliency scores, JSON/Markdown reports and plots."""

from tfjsigr import _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    {
        "Evaluation": "evaluate",
        "EvaluationConfig": "config",
        "check_model": "evaluate",
        "evaluate_model": "evaluate",
        "evaluate_zoo": "evaluate",
        "leaderboard": "evaluate",
        "black_box_guard": "guards",
        "monotone_guard": "guards",
        "unbounded_guard": "guards",
        "ara": "robustness_area",
        "ara_from_distances": "robustness_area",
        "minimum_rmse_distances": "robustness_area",
        "transfer_matrix": "transfer",
        "run_figures": "metrics",
        "logits_function": "attacks",
    },
)
