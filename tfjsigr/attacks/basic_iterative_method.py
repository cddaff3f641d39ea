"""Basic iterative method (Kurakin et al. 2017): PGD from the clean input."""

import numpy as np

from tfjsigr.attacks.projected_gradient_descent import projected_gradient_descent


def basic_iterative_method(
    model_fn, x, y, eps, step_size, steps, norm=np.inf, clip_min=0.0, clip_max=1.0, loss_fn=None
):
    """Iterated FGSM steps projected on the eps-ball, without random start.

    Args:
        model_fn: callable from inputs to logits.
        x: clean inputs (B, ...), float32.
        y: integer or one-hot labels.
        eps: radius of the ball.
        step_size: size of each step.
        steps: number of steps.
        norm: np.inf or 2.
        clip_min: lower bound of valid inputs (None: unbounded).
        clip_max: upper bound of valid inputs (None: unbounded).
        loss_fn: per-example loss of (y, logits) to ascend; default softmax CE.

    Returns:
        Adversarial inputs, within eps of x and within [clip_min, clip_max].
    """
    return projected_gradient_descent(
        model_fn,
        x,
        y,
        eps,
        step_size,
        steps,
        norm=norm,
        rand_init=False,
        clip_min=clip_min,
        clip_max=clip_max,
        loss_fn=loss_fn,
    )
