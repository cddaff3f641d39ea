"""Adversarial attacks: each one a short function of (model_fn, x, y, ...)."""

from tfjsigr.attacks.fast_gradient_method import fast_gradient_method
from tfjsigr.attacks.projected_gradient_descent import projected_gradient_descent

__all__ = ["fast_gradient_method", "projected_gradient_descent"]
