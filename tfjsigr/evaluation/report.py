"""Reports: JSON (atomic), a Markdown summary, and the robustness section of model cards."""

import pathlib

import numpy as np

from tfjsigr.evaluation.evaluate import find_record, square_accuracy
from tfjsigr.io import write_json_atomic, write_text_atomic

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"


def _percent(value):
    return "-" if value is None else f"{100 * value:.1f}"


def card_section(report, report_path=None, training=None):
    """The `robustness` section of a model card, from one model's report.

    Its first keys follow RobustBench's model_info fields (threat model, eps, clean_acc,
    autoattack_acc, n_examples), with the attacks run and the seed; the PGD-20 and Square
    figures follow as fast checks beside the headline.

    Args:
        report: one model's report (`evaluate_model(...).report`).
        report_path: where the full report lies (recorded as given).
        training: the card's `training` facts (method, epochs, wall time, hardware), if known.
    """
    guards = report.get("guards", {})
    headline = report["headline"]
    eps = headline["eps"]
    return {
        "threat_model": headline["threat_model"],
        "eps": eps,
        "clean_acc": headline["clean_accuracy"],
        "autoattack_acc": headline["accuracy"],
        "autoattack_version": headline["attack"],
        "attacks_run": headline["attacks"],
        "n_examples": headline["samples"],
        "seed": headline["seed"],
        "pgd20_acc": find_record(report["robust_accuracy"], "pgd", eps),
        "square_acc": square_accuracy(guards, eps),
        "training": training,
        "reliable": guards.get("reliable"),
        "failed_guards": guards.get("failed", []),
        "flagged": guards.get("flagged", []),
        "clean_accuracy": report["clean_accuracy"]["value"],
        "autoattack": [
            {k: r[k] for k in ("eps", "accuracy", "samples", "version")}
            for r in report.get("autoattack", [])
        ],
        "robust_accuracy": [
            {k: r[k] for k in ("attack", "eps", "accuracy")} for r in report["robust_accuracy"]
        ],
        "uap_accuracy": [{k: r[k] for k in ("eps", "accuracy")} for r in report["uap"]],
        "ara": report["ara"]["value"],
        "ara_units": "rmse",
        "mean_jacobian_frobenius_norm": report["jacobian_norm"]["value"],
        "interpretability": {
            m: {k: v[k] for k in ("deletion_auc", "concentration_top10")}
            for m, v in report["interpretability"]["methods"].items()
        },
        "samples": report["samples"],
        "report": None if report_path is None else str(report_path),
        "note": _card_note(guards),
    }


def _card_note(guards):
    if guards.get("failed"):
        return "robustness unreliable: a gradient-masking guard failed"
    note = "all gradient-masking guards passed"
    if guards.get("flagged"):
        note += "; " + ", ".join(guards["flagged"])
    return note


def _table_row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _guards_line(guards):
    def verdict(passed):
        return "pass" if passed else "FAIL"

    black_box = "; ".join(
        f"eps {c['eps']}: Square {_percent(c['square_accuracy'])}% vs {c['white_box']} "
        f"{_percent(c['white_box_accuracy'])}%"
        for c in guards["black_box"]["comparisons"]
    )
    status = "reliable" if guards["reliable"] else "UNRELIABLE"
    unbounded = guards["unbounded_pgd"]
    return (
        f"Guards: **{status}**. Monotone in eps: {verdict(guards['monotone']['passed'])}; "
        f"unbounded PGD (eps 1) accuracy {_percent(unbounded['accuracy'])}%: "
        f"{verdict(unbounded['passed'])}; black-box ({black_box}, "
        f"n={guards['black_box']['samples']}): {verdict(guards['black_box']['passed'])}."
        + _gap_sentence(guards.get("pgd_overestimates"))
    )


def _gap_sentence(gap):
    if gap is None:
        return ""
    verdict = "**PGD overestimates**" if not gap["passed"] else "within bounds"
    return (
        f" PGD-20 {_percent(gap['pgd_accuracy'])}% vs AutoAttack "
        f"{_percent(gap['autoattack_accuracy'])}% at eps {gap['eps']} (n={gap['samples']}, "
        f"flag above {_percent(gap['max_gap'])} points): {verdict}."
    )


def _model_section(report):
    eps_grid = sorted({r["eps"] for r in report["robust_accuracy"]})
    attacks = sorted({r["attack"] for r in report["robust_accuracy"]})
    clean = report["clean_accuracy"]
    lines = [
        f"### {report['name']}",
        "",
        f"Clean accuracy {_percent(clean['value'])}% (n={clean['samples']}, seed {report['seed']}).",
        "",
        *_autoattack_lines(report.get("autoattack", [])),
        _table_row(["attack"] + [f"eps {e}" for e in eps_grid]),
        _table_row(["---"] * (len(eps_grid) + 1)),
    ]
    for attack in attacks:
        accuracies = [_percent(find_record(report["robust_accuracy"], attack, e)) for e in eps_grid]
        lines.append(_table_row([attack, *accuracies]))
    uap = [_percent(find_record(report["uap"], "sgd_uap", e)) for e in eps_grid]
    lines.append(_table_row(["sgd_uap (universal)", *uap]))
    ara, jacobian = report["ara"], report["jacobian_norm"]
    lines += [
        "",
        (
            f"ARA {ara['value']:.4f} (RMSE units, DDN minimum-norm attack, n={ara['samples']}, "
            f"{ara['failures']} failures); mean exact ‖J‖_F {jacobian['value']:.3f} "
            f"(n={jacobian['samples']})."
        ),
    ]
    if report.get("guards"):
        lines += ["", _guards_line(report["guards"])]
    lines += [
        "",
        _table_row(["saliency", "deletion AUC (lower: more faithful)", "top-10% concentration"]),
        _table_row(["---"] * 3),
    ]
    for method, v in report["interpretability"]["methods"].items():
        lines.append(
            _table_row([method, f"{v['deletion_auc']:.3f}", f"{v['concentration_top10']:.3f}"])
        )
    return [*lines, ""]


def _autoattack_lines(records):
    lines = []
    for r in records:
        stages = ", ".join(
            f"{s['attack']} {_percent(s['accuracy'])}%" for s in r["stages"]
        )
        lines.append(
            f"AutoAttack ({r['version']}, L-inf eps {r['eps']}, n={r['samples']}, seed "
            f"{r['seed']}): **{_percent(r['accuracy'])}%**; after each attack: {stages} "
            f"({r['seconds']:.0f} s)."
        )
    return [*lines, ""] if lines else []


LEADERBOARD_COLUMNS = (
    "rank",
    "model",
    "clean",
    "AutoAttack",
    "PGD-20 (fast)",
    "Square",
    "FGSM",
    "UAP",
    "ARA",
    "mean ‖J‖_F",
    "deletion AUC",
    "concentration",
    "guards",
)


def _leaderboard_lines(board):
    lines = [
        f"## Leaderboard (sorted by {board['sorted_by']})",
        "",
        _table_row(LEADERBOARD_COLUMNS),
        _table_row(["---"] * len(LEADERBOARD_COLUMNS)),
    ]
    for row in board["rows"]:
        if row["reliable"] is None:
            status = "not run"
        elif row["reliable"]:
            status = "reliable"
        else:
            status = "**unreliable** (" + ", ".join(row["failed_guards"]) + ")"
        if row.get("flagged"):
            status += "; " + ", ".join(row["flagged"])
        lines.append(
            _table_row(
                [
                    row["rank"],
                    row["name"],
                    _percent(row["clean"]),
                    _percent(row["autoattack"]),
                    _percent(row["pgd"]),
                    _percent(row.get("square")),
                    _percent(row["fgsm"]),
                    _percent(row["uap"]),
                    f"{row['ara']:.4f}",
                    f"{row['jacobian_norm']:.2f}",
                    f"{row['deletion_auc']:.3f}",
                    f"{row['concentration']:.3f}",
                    status,
                ]
            )
        )
    note = (
        f"Accuracies in % at L-inf eps {board['eps']}. AutoAttack is the headline figure; PGD-20 "
        "is the fast check beside it, Square (5,000 queries) the black-box one. Saliency scores "
        "of the plain gradient."
    )
    return [*lines, "", note, ""]


def _transfer_lines(name, entry):
    lines = [
        (
            f"## Transfer, {name.upper()} eps {entry['eps']} (rows: source, columns: target; "
            f"accuracy %, n={entry['samples']}; diagonal = white-box)"
        ),
        "",
        _table_row(["source \\ target", *entry["targets"]]),
        _table_row(["---"] * (len(entry["targets"]) + 1)),
    ]
    for source, row in zip(entry["sources"], entry["accuracy"]):
        lines.append(_table_row([source, *(_percent(v) for v in row)]))
    return [*lines, ""]


def markdown(report, title="Robustness evaluation"):
    """A Markdown summary of a report: leaderboard, transfer tables, per-model sections, figures."""
    config = report["config"]
    intro = (
        f"{report['samples']} test images, seed {report['seed']}. Headline: AutoAttack "
        f"({config.get('autoattack', 'standard')}: APGD-CE, APGD-T, FAB-T, Square; on the first "
        f"{config.get('autoattack_samples', '?')} images) at L-inf eps "
        f"{list(config.get('autoattack_eps', []))}. Fast figures: {list(config['attacks'])} "
        f"over the eps grid {list(config['eps_grid'])} (PGD-20: 20 steps of eps/4 from a random "
        f"start; FGSM: one step). Square ({config['square_samples']} images) and unbounded PGD "
        f"guard against gradient masking. Every figure in report.json carries its attack "
        f"parameters, sample size and seed."
    )
    lines = [f"# {title}", "", intro, ""]
    data = report.get("data")
    if isinstance(data, dict) and data.get("name"):
        lines += [_data_line(data), ""]
    if report.get("leaderboard"):
        lines += _leaderboard_lines(report["leaderboard"])
    for name, entry in (report.get("transfer") or {}).items():
        lines += _transfer_lines(name, entry)
    lines += ["## Models", ""]
    for model_report in report["models"]:
        lines += _model_section(model_report)
    figures = report.get("figures", {})
    if figures:
        lines += ["## Figures", "", *(f"![{k}]({v})" for k, v in figures.items()), ""]
    return "\n".join(lines)


def _data_line(data):
    shape = "x".join(str(side) for side in data.get("image_shape", []))
    names = ", ".join(map(str, data.get("class_names", [])))
    line = (
        f"Data: {data['name']} ({data.get('origin', '?')}), {data.get('test', '')} of its test "
        f"split, images {shape}, {data.get('num_classes', '?')} classes: {names}."
    )
    if data.get("mixed"):
        line += " Some models were trained on another data set (flagged in the leaderboard)."
    return line


def write_report(report, out_dir, title="Robustness evaluation"):
    """Writes report.json and report.md into out_dir (atomically); returns their paths."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / REPORT_JSON, _plain(report))
    write_text_atomic(out_dir / REPORT_MARKDOWN, markdown(report, title))
    return out_dir / REPORT_JSON, out_dir / REPORT_MARKDOWN


def _plain(value):
    """JSON-ready copy: numpy scalars to Python, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def training_facts(card):
    """Method and cost of a zoo entry's training, from its card's recipe and metrics."""
    recipe = card.get("recipe") if isinstance(card.get("recipe"), dict) else {}
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    penalties = [p.get("type", "?") for p in recipe.get("penalties") or [] if isinstance(p, dict)]
    adversarial = recipe.get("adversarial_training")
    method = "+".join(penalties) or "plain"
    if isinstance(adversarial, dict):
        method = f"adversarial training ({adversarial.get('attack', '?')})"
    return {
        "method": method,
        "epochs": metrics.get("epochs", recipe.get("epochs")),
        "train_seconds": metrics.get("train_seconds"),
        "hardware": metrics.get("hardware"),
        "quick": metrics.get("quick"),
    }
