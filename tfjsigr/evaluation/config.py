"""What an evaluation runs, and on how many inputs (no TensorFlow here: the CLI reads it)."""

import dataclasses

import numpy as np

from tfjsigr import checks

# The versions of `tfjsigr.attacks.auto_attack` (its VERSIONS), for option choices.
AUTOATTACK_VERSIONS = ("standard", "fast")
# The headline L-inf radius by kind of image, in pixel units (pixels in [0, 1]): 0.1 for
# grayscale digits and clothing (MNIST, Fashion-MNIST, as in the J-SIGR paper), 8/255 for
# small colour images (CIFAR-10, SVHN: RobustBench's), 4/255 above 64 pixels (ImageNet's).
GRAY_EPS = 0.1
SMALL_COLOUR_EPS = 8 / 255
LARGE_COLOUR_EPS = 4 / 255
# Extra transfer tables of a zoo evaluation: "jsigr", the J-SIGR paper's ensemble MI-FGSM.
TRANSFER_PROTOCOLS = ("jsigr",)


@dataclasses.dataclass
class EvaluationConfig:
    """What to run and on how many inputs (the first N of the test set each time).

    Attributes:
        eps_grid: L-inf radii of the accuracy curves (and UAP).
        attacks: attacks of the curves (see `attacks.ATTACK_PARAMETERS`: also "mim", "bim",
            "square", "spsa"); must include "pgd", the fast figure beside AutoAttack.
        seed: seed of every random draw.
        batch_size: inputs per attack batch.
        autoattack: AutoAttack version of the headline figure, "standard" or "fast".
        autoattack_eps: L-inf radii AutoAttack runs at; must hold `headline_eps`.
        autoattack_samples: inputs AutoAttack runs on (the first N).
        headline_eps: radius of the headline figure, the leaderboard and the card.
        pgd_gap: AutoAttack this far (share of the sample) below PGD flags "PGD overestimates".
        square_eps: radii where Square checks the white-box attacks (each in eps_grid).
        square_samples: inputs Square runs on.
        ara_samples: inputs of the minimum-norm attack (ARA).
        jacobian_samples: inputs of the exact mean ||J||_F.
        saliency_samples: inputs of the interpretability scores.
        transfer_eps: radius of the transfer matrix.
        uap_samples: training inputs the UAP is crafted on.
        guards: run the gradient-masking guards.
    """

    eps_grid: tuple = (0.02, 0.05, 0.1, 0.2, 0.3)
    attacks: tuple = ("fgsm", "pgd")
    seed: int = 0
    batch_size: int = 500
    autoattack: str = "standard"
    autoattack_eps: tuple = (0.1, 0.3)
    autoattack_samples: int = 1000
    headline_eps: float = 0.1
    pgd_gap: float = 0.05
    square_eps: tuple = (0.1, 0.3)
    square_samples: int = 200
    ara_samples: int = 250
    jacobian_samples: int = 500
    saliency_samples: int = 100
    transfer_eps: float = 0.1
    uap_samples: int = 500
    guards: bool = True

    def __post_init__(self):
        if "pgd" not in self.attacks:
            raise ValueError("attacks must include 'pgd' (the guards compare against it)")
        checks.choice(self.autoattack, "autoattack", AUTOATTACK_VERSIONS)
        for name in ("eps_grid", "autoattack_eps", "square_eps"):
            setattr(self, name, tuple(float(e) for e in getattr(self, name)))
        if not any(np.isclose(self.headline_eps, e) for e in self.autoattack_eps):
            raise ValueError(
                f"autoattack_eps {self.autoattack_eps} must hold headline_eps {self.headline_eps}"
            )
        if not any(np.isclose(self.headline_eps, e) for e in self.eps_grid):
            raise ValueError(f"eps_grid {self.eps_grid} must hold headline_eps {self.headline_eps}")
        for name in ("batch_size", "autoattack_samples", "square_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def for_data(cls, image_shape, eps=None, **overrides):
        """The configuration whose radii suit a data set's images (see `headline_eps`): the
        curves at eps/5 to 3 eps for grayscale (0.02 to 0.3) and eps/4 to 2 eps for colour,
        AutoAttack and Square at eps and at the largest radius of the curves.

        Args:
            image_shape: (H, W, C) of the images.
            eps: the headline radius, in pixel units [default: `headline_eps(image_shape)`].
            **overrides: other fields.
        """
        eps = headline_eps(image_shape) if eps is None else float(eps)
        gray = image_shape[-1] == 1
        if gray:  # Rounded: 3 * 0.1 is 0.30000000000000004.
            grid = {round(e, 6) for e in (eps / 5, eps / 2, 2 * eps, 3 * eps)} | {eps}
        else:  # Powers of two: exact multiples, e.g. 2/255 to 16/255.
            grid = {eps / 4, eps / 2, eps, 2 * eps}
        grid = tuple(sorted(e for e in grid if 0 < e <= 1))
        radii = (eps, grid[-1]) if grid[-1] > eps else (eps,)
        defaults = {
            "eps_grid": grid, "autoattack_eps": radii, "square_eps": radii, "headline_eps": eps,
            "transfer_eps": eps,
        }  # fmt: skip
        return cls(**{**defaults, **overrides})


def headline_eps(image_shape):
    """The L-inf radius of a data set's headline figure, in pixel units: `GRAY_EPS` for
    grayscale images, `SMALL_COLOUR_EPS` for colour ones up to 64 pixels a side, else
    `LARGE_COLOUR_EPS`."""
    height, width, channels = image_shape
    if channels == 1:
        return GRAY_EPS
    return SMALL_COLOUR_EPS if max(height, width) <= 64 else LARGE_COLOUR_EPS
