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
