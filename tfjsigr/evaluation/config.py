"""What an evaluation runs, and on how many inputs (no TensorFlow here: the CLI reads it)."""

import dataclasses

import numpy as np

from tfjsigr import checks

# The versions of `tfjsigr.attacks.auto_attack` (its VERSIONS), for option choices.
AUTOATTACK_VERSIONS = ("standard", "fast")
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
