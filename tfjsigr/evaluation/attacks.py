"""The attacks the evaluation runs, by name, batched and compiled, with recorded parameters."""

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tfjsigr import attacks
from tfjsigr.attacks.auto_attack import COMPONENTS, predictions

# Parameters of each attack as a function of eps (L-inf); recorded next to every figure.
ATTACK_PARAMETERS = {
    "fgsm": lambda eps: {"norm": "inf"},
    "pgd": lambda eps: {
        "norm": "inf",
        "steps": 20,
        "step_size": eps / 4,
        "rand_init": True,
        "restarts": 1,
    },
    "bim": lambda eps: {"norm": "inf", "steps": 20, "step_size": eps / 8},
    "mim": lambda eps: {"norm": "inf", "steps": 20, "step_size": eps / 8, "decay_factor": 1.0},
    # AutoAttack's budget, so the guard's Square is as strong as the one in the headline.
    "square": lambda eps: {"norm": "inf", **COMPONENTS["square"]},
    "spsa": lambda eps: {
        "norm": "inf",
        "steps": 50,
        "samples": 64,
        "delta": 0.01,
        "learning_rate": 0.01,
    },
}


def logits_function(model):
    """The compiled inference-mode logits of a Keras model: the one model function every attack
    and measure of tfjsigr runs on. Reuse one per model (compiled attacks trace once per
    function)."""
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True)


def _compiled(attack):
    return tf.function(attack, reduce_retracing=True)


_bim = _compiled(
    lambda f, x, y, eps, p: attacks.basic_iterative_method(f, x, y, eps, p["step_size"], p["steps"])
)
_mim = _compiled(
    lambda f, x, y, eps, p: attacks.momentum_iterative_method(
        f, x, y, eps, p["step_size"], p["steps"], p["decay_factor"]
    )
)
_square = _compiled(
    lambda f, x, y, eps, p, seed: attacks.square(f, x, y, eps, p["queries"], p["p_init"], seed=seed)
)
_spsa = _compiled(
    lambda f, x, y, eps, p, seed: attacks.spsa(
        f, x, y, eps, p["steps"], p["samples"], p["delta"], p["learning_rate"], seed=seed
    )
)


def craft(name, model_fn, x, y, eps, seed=0, parameters=None):
    """Adversarial inputs of one batch for the attack `name` at L-inf radius eps.

    Args:
        name: one of ATTACK_PARAMETERS.
        model_fn: logits function (see `logits_function`).
        x: clean batch.
        y: integer labels.
        eps: L-inf radius.
        seed: seed of the random draws.
        parameters: the attack's parameters (default ATTACK_PARAMETERS[name](eps)).

    Returns:
        The adversarial batch as a tensor.
    """
    if name not in ATTACK_PARAMETERS:
        raise ValueError(f"unknown attack {name!r}; known: {sorted(ATTACK_PARAMETERS)}")
    p = parameters or ATTACK_PARAMETERS[name](eps)
    x, y = tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y, tf.int32)
    if eps == 0:
        return x
    if name == "fgsm":
        # One unprojected step from x: FGSM, through PGD's compiled step (traced once per model).
        return attacks.projected_gradient_descent(model_fn, x, y, eps, eps, 1, rand_init=False)
    if name == "pgd":
        return attacks.projected_gradient_descent(
            model_fn,
            x,
            y,
            eps,
            p["step_size"],
            p["steps"],
            rand_init=p["rand_init"],
            seed=seed,
            restarts=p["restarts"],
            early_stop=True,
        )
    if name == "bim":
        return _bim(model_fn, x, y, eps, p)
    if name == "mim":
        return _mim(model_fn, x, y, eps, p)
    if name == "square":  # Stateless draws: a tensor seed, so one trace serves every batch.
        return _square(model_fn, x, y, eps, p, tf.constant(seed, tf.int64))
    tf.random.set_seed(seed)
    return _spsa(model_fn, x, y, eps, p, seed)


def craft_all(name, model_fn, x, y, eps, seed=0, batch_size=500, parameters=None):
    """`craft` over a whole array, batch by batch (batch b seeded seed + b); numpy result."""
    return np.concatenate(
        [
            np.asarray(
                craft(
                    name,
                    model_fn,
                    x[s : s + batch_size],
                    y[s : s + batch_size],
                    eps,
                    seed + b,
                    parameters,
                )
            )
            for b, s in enumerate(range(0, len(x), batch_size))
        ]
    )


def robust_flags(name, model_fn, x, y, eps, seed=0, batch_size=500, parameters=None):
    """(N,) bool: still correctly classified under the attack."""
    return (
        predictions(model_fn, craft_all(name, model_fn, x, y, eps, seed, batch_size, parameters))
        == y
    )


def accuracy_curve(name, model_fn, x, y, eps_grid, seed=0, batch_size=500, progress=None):
    """Accuracy under one attack for each eps, with its parameters, sample size and seed.

    Returns:
        (records, flags): a list of dicts {attack, eps, accuracy, samples, seed, parameters} and
        {eps: (N,) bool per-example robustness}.
    """
    records, flags = [], {}
    for eps in tqdm(eps_grid, desc=progress or name, leave=False, disable=progress is False):
        flags[eps] = robust_flags(name, model_fn, x, y, eps, seed, batch_size)
        records.append(
            {
                "attack": name,
                "eps": float(eps),
                "accuracy": float(flags[eps].mean()),
                "samples": len(x),
                "seed": int(seed),
                "parameters": ATTACK_PARAMETERS[name](eps),
            }
        )
    return records, flags
