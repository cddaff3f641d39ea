"""Transfer attacks: crafted on each source model, evaluated on each target."""

import numpy as np
from tqdm.auto import tqdm

from tfjsigr.evaluation import attacks as attacks_lib


def transfer_matrix(
    model_fns, x, y, eps=0.1, attack_names=("fgsm", "pgd"), seed=0, batch_size=500, sources=None
):
    """Accuracy of every target on inputs crafted white-box on every source.

    Args:
        model_fns: {name: logits function} of the targets.
        x: clean inputs.
        y: integer labels.
        eps: L-inf radius.
        attack_names: attacks to craft with.
        seed: seed of the crafting.
        batch_size: inputs per attack batch.
        sources: {name: logits function} of the sources (default: the targets; an extra model
            outside the zoo can be added here).

    Returns:
        {attack: {"sources": [...], "targets": [...], "accuracy": [[...]] (source rows),
        "eps", "samples", "seed", "parameters"}}. The diagonal (source = target) is white-box.
    """
    sources = sources or model_fns
    result = {}
    for name in attack_names:
        matrix = []
        for source, source_fn in tqdm(sources.items(), desc=f"transfer {name}", leave=False):
            x_adv = attacks_lib.craft_all(name, source_fn, x, y, eps, seed, batch_size)
            matrix.append(
                [
                    float(np.mean(attacks_lib.predictions(target_fn, x_adv) == y))
                    for target_fn in model_fns.values()
                ]
            )
        result[name] = {
            "sources": list(sources),
            "targets": list(model_fns),
            "accuracy": matrix,
            "eps": float(eps),
            "samples": len(x),
            "seed": int(seed),
            "parameters": attacks_lib.ATTACK_PARAMETERS[name](eps),
        }
    return result


# The J-SIGR paper's protocol (Liu et al. 2024; its published attack script): momentum
# iterative FGSM, 10 iterations, momentum 1.0, step eps / 10, on an ensemble of sources.
JSIGR_PROTOCOL = {"attack": "mim", "norm": "inf", "steps": 10, "decay_factor": 1.0}


def ensemble_logits(sources):
    """The logits function averaging the logits of several sources (logits functions)."""
    sources = list(sources)
    if not sources:
        raise ValueError("the transfer ensemble needs at least one source model")
    return lambda x: sum(source(x) for source in sources) / len(sources)


def ensemble_transfer_accuracy(sources, targets, x, y, eps=0.1, seed=0, batch_size=500):
    """Accuracy of each target on MI-FGSM examples crafted on the ensemble of the sources.

    The J-SIGR paper's transfer protocol: momentum iterative FGSM (10 iterations, momentum 1.0,
    step eps / 10, L-inf) against the average logits of source models trained independently
    of the targets; the examples are then classified by each target.

    Args:
        sources: {name: logits function} (or a list of them) of the source models.
        targets: {name: logits function} of the targets.
        x: clean inputs in [0, 1].
        y: integer labels.
        eps: L-inf radius.
        seed: recorded (the attack draws nothing at random).
        batch_size: inputs per attack batch.

    Returns:
        {"accuracy": {target: accuracy}, "sources": [...], "eps", "samples", "seed",
        "parameters"}.
    """
    if not isinstance(sources, dict):
        sources = {f"source {i}": fn for i, fn in enumerate(sources)}
    parameters = {**JSIGR_PROTOCOL, "step_size": eps / 10}
    y = np.asarray(y, np.int32)
    x_adv = attacks_lib.craft_all(
        "mim", ensemble_logits(sources.values()), x, y, eps, seed, batch_size, parameters
    )
    return {
        "accuracy": {
            name: float(np.mean(attacks_lib.predictions(fn, x_adv) == y))
            for name, fn in targets.items()
        },
        "sources": list(sources),
        "eps": float(eps),
        "samples": len(x),
        "seed": int(seed),
        "parameters": parameters,
    }


def jsigr_protocol_entry(sources, targets, x, y, eps=0.1, seed=0):
    """`ensemble_transfer_accuracy` of Keras models as a transfer table of a report.

    Args:
        sources: {name: Keras model} crafting as one ensemble (independent of the targets).
        targets: {name: Keras model} evaluated.

    Returns:
        An entry like `transfer_matrix`'s: one source row (the ensemble), a column per target.
    """
    result = ensemble_transfer_accuracy(
        {name: attacks_lib.logits_function(m) for name, m in sources.items()},
        {name: attacks_lib.logits_function(m) for name, m in targets.items()},
        x, y, eps, seed,
    )  # fmt: skip
    accuracy = result.pop("accuracy")
    return {
        **result,
        "sources": ["ensemble of " + " + ".join(result["sources"])],
        "targets": list(accuracy),
        "accuracy": [list(accuracy.values())],
    }
