"""One-model and whole-zoo evaluation: every figure with its attack, parameters, sample size, seed."""

import dataclasses

import numpy as np
from tqdm.auto import tqdm

from tfjsigr.attacks import auto_attack, sgd_uap
from tfjsigr.attacks.auto_attack import COMPONENTS, VERSIONS
from tfjsigr.checks import one_line
from tfjsigr.evaluation import attacks as attacks_lib
from tfjsigr.evaluation import guards as guards_lib
from tfjsigr.evaluation import metrics
from tfjsigr.evaluation import robustness_area as ara_lib
from tfjsigr.evaluation import saliency as saliency_lib
from tfjsigr.evaluation import transfer as transfer_lib
from tfjsigr.evaluation.config import EvaluationConfig

UAP_PARAMETERS = {"epochs": 5, "batch_size": 100, "beta": 12.0, "step_size": "eps / 10"}


@dataclasses.dataclass
class Evaluation:
    """A model's report (JSON-ready) and the arrays the plots need."""

    report: dict
    artifacts: dict


def uap_accuracy(model_fn, x, y, x_craft, y_craft, eps_grid, seed=0):
    """Accuracy on x of one universal perturbation per eps, crafted by SGD-UAP on x_craft."""
    records, perturbations = [], {}
    for eps in tqdm(eps_grid, desc="uap", leave=False):
        delta = sgd_uap(
            model_fn,
            x_craft,
            y_craft,
            eps,
            epochs=UAP_PARAMETERS["epochs"],
            batch_size=UAP_PARAMETERS["batch_size"],
            beta=UAP_PARAMETERS["beta"],
        )
        perturbations[eps] = np.asarray(delta)[0]
        x_adv = np.clip(x + perturbations[eps], 0.0, 1.0)
        records.append(
            {
                "attack": "sgd_uap",
                "eps": float(eps),
                "accuracy": float(np.mean(attacks_lib.predictions(model_fn, x_adv) == y)),
                "samples": len(x),
                "crafted_on": len(x_craft),
                "seed": int(seed),
                "parameters": UAP_PARAMETERS,
            }
        )
    return records, perturbations


def autoattack_accuracy(model_fn, x, y, eps_values, version="standard", seed=0, batch_size=500):
    """Robust accuracy under AutoAttack (L-inf) at each eps, with the accuracy after each attack.

    Returns:
        (records, flags, white_box_flags): a list of dicts {attack: "autoattack", version, norm,
        eps, accuracy, samples, seed, attacks, parameters, stages, seconds}; {eps: (N,) bool
        robust under AutoAttack}; {eps: (N,) bool robust after its gradient-based attacks}.
    """
    records, flags, white_box = [], {}, {}
    for eps in tqdm(eps_values, desc=f"autoattack ({version})", leave=False):
        _, stages = auto_attack(
            model_fn, x, y, eps, version=version, seed=seed, batch_size=batch_size,
            return_stages=True,
        )
        flags[eps] = stages[-1]["robust"]
        gradient_stages = [s for s in stages if s["attack"] != "square"]
        white_box[eps] = gradient_stages[-1]["robust"]
        records.append(
            {
                "attack": "autoattack",
                "version": version,
                "norm": "inf",
                "eps": float(eps),
                "accuracy": stages[-1]["accuracy"],
                "samples": len(x),
                "seed": int(seed),
                "attacks": list(VERSIONS[version]),
                "parameters": {name: COMPONENTS[name] for name in VERSIONS[version]},
                "stages": [
                    {k: s[k] for k in ("attack", "accuracy", "seconds")} for s in stages
                ],
                "seconds": round(sum(s["seconds"] for s in stages), 2),
            }
        )
    return records, flags, white_box


def at_eps(by_eps, eps):
    """The value of a {eps: value} dict at eps (None if absent), keys compared with isclose."""
    for key, value in by_eps.items():
        if np.isclose(key, eps):
            return value
    return None


def run_guards(model_fn, x, y, curves, pgd_flags, config, white_box_flags=None, autoattack=None):
    """The gradient-masking guards, the PGD-gap flag and their summary (reliable or not).

    Args:
        model_fn: logits function.
        x: evaluation inputs.
        y: labels.
        curves: the attack curve records (monotone guard).
        pgd_flags: {eps: per-example PGD robustness}.
        config: an `EvaluationConfig`.
        white_box_flags: {eps: per-example robustness after AutoAttack's gradient attacks}:
            what Square is checked against where given (else PGD).
        autoattack: (records, flags) of `autoattack_accuracy`, for the PGD-gap flag.

    Returns:
        (guards report, {eps: Square's per-example robustness flags}).
    """
    white_box_flags = white_box_flags or {}
    square_count = config.square_samples
    if white_box_flags:
        square_count = min(square_count, min(len(f) for f in white_box_flags.values()))
    square_x = x[:square_count]
    references, names = {}, {}
    for eps in config.square_eps:
        own = at_eps(white_box_flags, eps)
        references[eps] = at_eps(pgd_flags, eps) if own is None else own
        names[eps] = "pgd" if own is None else "autoattack white-box (" + config.autoattack + ")"
    black_box, square_flags = guards_lib.black_box_guard(
        model_fn,
        square_x,
        y[:square_count],
        references,
        config.square_eps,
        config.seed,
        config.batch_size,
        reference_names=names,
    )
    guards = {
        "monotone": guards_lib.monotone_guard(curves),
        "unbounded_pgd": guards_lib.unbounded_guard(model_fn, x, y, config.seed, config.batch_size),
        "black_box": black_box,
    }
    flags = {}
    if autoattack is not None:
        _, autoattack_flags = autoattack
        eps = config.headline_eps
        flags["pgd_overestimates"] = guards_lib.pgd_gap_guard(
            at_eps(pgd_flags, eps), at_eps(autoattack_flags, eps), eps, config.pgd_gap, config.seed
        )
    return {**guards, **flags, **guards_lib.summarize(guards, flags)}, square_flags


def check_model(model, x, y, name="model", batch_size=1000):
    """Checks a model can be evaluated on (x, y), before any attack runs.

    Args:
        model: a Keras model from images to logits.
        x: the evaluation inputs (N, H, W, C).
        y: their integer labels.
        name: the model's name (or file) in error messages.
        batch_size: inputs per forward pass.

    Returns:
        The number of classes (logits per input).

    Raises:
        ValueError: the model takes inputs of another shape, has fewer logits than the
            labels have classes, or gives NaN or infinite logits on x.
    """
    data_shape = tuple(np.shape(x)[1:])
    try:
        input_shape = model.input_shape
    except (AttributeError, ValueError):  # Subclassed or unbuilt: the forward pass tells.
        input_shape = None
    if input_shape is not None and not _shape_fits(input_shape, data_shape):
        raise ValueError(
            f"{name}: takes inputs of shape {input_shape}, the evaluation data is "
            f"{(None, *data_shape)}"
        )
    logits = _logits(model, x, batch_size, name)
    if logits.ndim != 2:
        raise ValueError(
            f"{name}: outputs shape {(None, *logits.shape[1:])}, expected logits (None, classes)"
        )
    top_label = int(np.max(y))
    if logits.shape[1] <= max(top_label, 1):
        raise ValueError(
            f"{name}: gives {logits.shape[1]} logits per image, but the evaluation labels go "
            f"up to {top_label}"
        )
    finite = np.isfinite(logits).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"{name}: logits are NaN or infinite on {int((~finite).sum())} of {len(x)} "
            "evaluation images (are its weights corrupt?)"
        )
    return int(logits.shape[1])


def _shape_fits(input_shape, data_shape):
    model_shape = tuple(input_shape)[1:]
    return len(model_shape) == len(data_shape) and all(
        m is None or m == d for m, d in zip(model_shape, data_shape)
    )


def _logits(model, x, batch_size, name):
    try:
        batches = [
            np.asarray(model(x[start : start + batch_size], training=False), np.float32)
            for start in range(0, len(x), batch_size)
        ]
    except Exception as error:  # noqa: BLE001 (Keras and TensorFlow raise many types here)
        reason = one_line(error)[:200]
        raise ValueError(f"{name}: cannot run on the evaluation data ({reason})") from None
    return np.concatenate(batches)


def evaluate_model(model, x, y, config=None, x_craft=None, y_craft=None, name="model"):
    """Clean and robust accuracy, UAP, ARA, exact ||J||_F, guards and interpretability of a model.

    Args:
        model: a Keras model from images in [0, 1] to logits.
        x: test inputs (N, H, W, C) float32 in [0, 1].
        y: integer labels.
        config: an `EvaluationConfig`.
        x_craft: inputs to craft the UAP on (default: x itself).
        y_craft: their labels.
        name: the model's name in the report.

    Returns:
        An `Evaluation`.

    Raises:
        ValueError: a bad config, or a model `check_model` refuses.
    """
    config = config or EvaluationConfig()
    model_fn = attacks_lib.logits_function(model)
    y = np.asarray(y, np.int32)
    num_classes = check_model(model, x, y, name, config.batch_size)
    clean = attacks_lib.predictions(model_fn, x) == y
    curves, flags = [], {}
    steps = tqdm(config.attacks, desc=f"{name}: attacks", leave=False)
    for attack in steps:
        records, flags[attack] = attacks_lib.accuracy_curve(
            attack, model_fn, x, y, config.eps_grid, config.seed, config.batch_size
        )
        curves.extend(records)
    autoattack_x, autoattack_y = x[: config.autoattack_samples], y[: config.autoattack_samples]
    autoattack_records, autoattack_flags, white_box_flags = autoattack_accuracy(
        model_fn,
        autoattack_x,
        autoattack_y,
        config.autoattack_eps,
        config.autoattack,
        config.seed,
        config.batch_size,
    )
    x_craft, y_craft = (
        (x, y)
        if x_craft is None
        else (x_craft[: config.uap_samples], y_craft[: config.uap_samples])
    )
    uap, perturbations = uap_accuracy(
        model_fn, x, y, x_craft, y_craft, config.eps_grid, config.seed
    )
    ara_x, ara_y = x[: config.ara_samples], y[: config.ara_samples]
    jacobian_x = x[: config.jacobian_samples]
    saliency_x, saliency_y = x[: config.saliency_samples], y[: config.saliency_samples]
    report = {
        "name": name,
        "num_classes": num_classes,
        "samples": len(x),
        "seed": config.seed,
        "config": config.to_dict(),
        "clean_accuracy": {"value": float(clean.mean()), "samples": len(x)},
        "headline": headline(autoattack_records, clean, config),
        "autoattack": autoattack_records,
        "robust_accuracy": curves,
        "uap": uap,
        "ara": ara_lib.ara(model_fn, ara_x, ara_y, num_classes, config.seed, config.batch_size),
        "jacobian_norm": {
            "value": metrics.mean_jacobian_norm(model, jacobian_x),
            "exact": True,
            "norm": "frobenius",
            "samples": len(jacobian_x),
        },
        "interpretability": saliency_lib.interpretability(
            model_fn, saliency_x, saliency_y, config.seed
        ),
    }
    square_flags = {}
    if config.guards:
        report["guards"], square_flags = run_guards(
            model_fn,
            x,
            y,
            curves,
            flags["pgd"],
            config,
            white_box_flags,
            (autoattack_records, autoattack_flags),
        )
    artifacts = {
        "uap": perturbations,
        "flags": {**flags, "autoattack": autoattack_flags},
        "square_flags": square_flags,
        "saliency": {
            m: saliency_lib.saliency(model_fn, x[:8], y[:8], m, config.seed)
            for m in saliency_lib.METHODS
        },
    }
    example_eps = config.transfer_eps
    artifacts["adversarial"] = {
        "eps": example_eps,
        "x": x[:8],
        "x_adv": attacks_lib.craft_all("pgd", model_fn, x[:8], y[:8], example_eps, config.seed),
    }
    artifacts["adversarial"]["predictions"] = attacks_lib.predictions(
        model_fn, artifacts["adversarial"]["x_adv"]
    )
    return Evaluation(report, artifacts)


def headline(autoattack_records, clean, config):
    """The headline robust figure: AutoAttack at `config.headline_eps`, with its provenance."""
    record = next(r for r in autoattack_records if np.isclose(r["eps"], config.headline_eps))
    return {
        "attack": f"autoattack ({record['version']})",
        "threat_model": "Linf",
        "eps": record["eps"],
        "accuracy": record["accuracy"],
        "clean_accuracy": float(np.mean(clean[: record["samples"]])),
        "samples": record["samples"],
        "seed": record["seed"],
        "attacks": record["attacks"],
    }


def find_record(records, attack, eps):
    """The accuracy of `attack` at `eps` in a list of curve records (None if absent)."""
    for record in records:
        if record["attack"] == attack and np.isclose(record["eps"], eps):
            return record["accuracy"]
    return None


def leaderboard(evaluations, eps=0.1):
    """Rows sorted by AutoAttack accuracy at eps (unreliable models last), for the zoo report.

    PGD-20 stays beside it as the fast figure; "flagged" lists warnings such as "PGD
    overestimates" (AutoAttack well below PGD-20).
    """
    rows = []
    for report in evaluations:
        guards = report.get("guards", {})
        rows.append(
            {
                "name": report["name"],
                "clean": report["clean_accuracy"]["value"],
                "autoattack": find_record(report.get("autoattack", []), "autoattack", eps),
                "autoattack_samples": report.get("headline", {}).get("samples"),
                "pgd": find_record(report["robust_accuracy"], "pgd", eps),
                "fgsm": find_record(report["robust_accuracy"], "fgsm", eps),
                "square": square_accuracy(guards, eps),
                "uap": find_record(report["uap"], "sgd_uap", eps),
                "ara": report["ara"]["value"],
                "jacobian_norm": report["jacobian_norm"]["value"],
                "deletion_auc": report["interpretability"]["methods"]["gradient"]["deletion_auc"],
                "concentration": report["interpretability"]["methods"]["gradient"][
                    "concentration_top10"
                ],
                "reliable": guards.get("reliable"),
                "failed_guards": guards.get("failed", []),
                "flagged": guards.get("flagged", []),
            }
        )
    rows.sort(key=lambda r: (r["reliable"] is False, -(r["autoattack"] or 0.0)))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return {
        "eps": eps,
        "sorted_by": f"AutoAttack accuracy at eps {eps}; unreliable last",
        "rows": rows,
    }


def square_accuracy(guards, eps):
    """The black-box guard's Square accuracy at eps (None where it did not run)."""
    comparisons = guards.get("black_box", {}).get("comparisons", [])
    return next((c["square_accuracy"] for c in comparisons if np.isclose(c["eps"], eps)), None)


def evaluate_zoo(models, x, y, config=None, x_craft=None, y_craft=None, extra_sources=None):
    """`evaluate_model` on every model, the transfer matrix over all pairs and a leaderboard.

    Args:
        models: {name: Keras model}.
        x: test inputs.
        y: labels.
        config: an `EvaluationConfig`.
        x_craft: inputs to craft the UAPs on.
        y_craft: their labels.
        extra_sources: {name: Keras model} crafting transfer attacks only (not in the zoo).

    Returns:
        (report dict, {name: Evaluation}).

    Raises:
        ValueError: a model or extra source `check_model` refuses (checked before any attack).
    """
    config = config or EvaluationConfig()
    for name, model in {**models, **(extra_sources or {})}.items():
        check_model(model, x, y, name, config.batch_size)
    evaluations = {}
    for name, model in tqdm(models.items(), desc="models"):
        evaluations[name] = evaluate_model(model, x, y, config, x_craft, y_craft, name)
    model_fns = {name: attacks_lib.logits_function(m) for name, m in models.items()}
    sources = dict(model_fns)
    for name, model in (extra_sources or {}).items():
        sources[name] = attacks_lib.logits_function(model)
    transfer = transfer_lib.transfer_matrix(
        model_fns,
        x,
        np.asarray(y, np.int32),
        config.transfer_eps,
        ("fgsm", "pgd"),
        config.seed,
        config.batch_size,
        sources,
    )
    reports = [e.report for e in evaluations.values()]
    report = {
        "config": config.to_dict(),
        "samples": len(x),
        "seed": config.seed,
        "models": reports,
        "transfer": transfer,
        "leaderboard": leaderboard(reports, config.headline_eps),
    }
    return report, evaluations
