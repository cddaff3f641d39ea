"""Multi-objective tuning of a recipe's weights on Optuna: clean accuracy, robustness, cost.

`search_space` reads a recipe's `[tune]` table; `study` runs the Optuna study (imports Optuna
and TensorFlow); `front` computes the Pareto set and writes the figure, the table and the best
recipe. Import the submodules directly: this package imports nothing heavy.
"""

# The robust objectives of `tfjsigr tune` (`study.TuneOptions.robustness`).
ROBUSTNESS = ("autoattack", "pgd", "transfer")
