"""Adversarial attacks: each one a short function of (model_fn, x, y, ...)."""

from tfjsigr.attacks.auto_attack import auto_attack
from tfjsigr.attacks.auto_projected_gradient_descent import (
    auto_projected_gradient_descent,
    auto_projected_gradient_descent_targeted,
)
from tfjsigr.attacks.basic_iterative_method import basic_iterative_method
from tfjsigr.attacks.carlini_wagner_l2 import carlini_wagner_l2
from tfjsigr.attacks.decoupled_direction_norm import decoupled_direction_norm
from tfjsigr.attacks.fast_adaptive_boundary import fast_adaptive_boundary_targeted
from tfjsigr.attacks.fast_gradient_method import fast_gradient_method
from tfjsigr.attacks.momentum_iterative_method import momentum_iterative_method
from tfjsigr.attacks.projected_gradient_descent import projected_gradient_descent
from tfjsigr.attacks.sgd_uap import sgd_uap
from tfjsigr.attacks.spsa import spsa
from tfjsigr.attacks.square import square

__all__ = [
    "auto_attack",
    "auto_projected_gradient_descent",
    "auto_projected_gradient_descent_targeted",
    "basic_iterative_method",
    "carlini_wagner_l2",
    "decoupled_direction_norm",
    "fast_adaptive_boundary_targeted",
    "fast_gradient_method",
    "momentum_iterative_method",
    "projected_gradient_descent",
    "sgd_uap",
    "spsa",
    "square",
]
