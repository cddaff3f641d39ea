"""Evaluating saved models end to end: data, checks, attacks, report, plots and card updates.

What `tfjsigr evaluate` and `tfjsigr zoo evaluate` run; a notebook calls `evaluate_saved` (or
`evaluate_zoo_dir`) the same way.
"""

import dataclasses
import os
import pathlib
import tempfile
import time

import numpy as np

from tfjsigr.zoo import layout


@dataclasses.dataclass
class SavedEvaluation:
    """What `evaluate_saved` produced: the report, its files, and the card updates it made."""

    report: dict
    json_path: pathlib.Path
    markdown_path: pathlib.Path
    card_updates: list
    seconds: float

    def leaderboard_lines(self):
        """One line per model: rank, clean, AutoAttack and PGD accuracy, ARA, reliability."""
        board = self.report["leaderboard"]
        lines = []
        for row in board["rows"]:
            status = "reliable" if row["reliable"] else ("UNRELIABLE" if row["reliable"] is False else "-")
            status += "".join(f"; {flag}" for flag in row["flagged"])
            lines.append(
                f"{row['rank']:2} {row['name']:16} clean {row['clean']:.3f}  AutoAttack@{board['eps']} "
                f"{row['autoattack']:.3f}  PGD-20@{board['eps']} (fast) {row['pgd']:.3f}  "
                f"ARA {row['ara']:.4f}  {status}"
            )
        return lines


def load_evaluation_data(samples, source="sample", log=print):
    """(x, y, x_craft, y_craft, description): the first `samples` test images of Fashion-MNIST,
    and its training images (the universal perturbation is crafted on them)."""
    from tfjsigr.data import load_fashion_mnist

    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    x, y, description = load_fashion_mnist("test", source)
    x_craft, y_craft, _ = load_fashion_mnist("train", source)
    if samples > len(x):
        log(f"only {len(x)} test images: evaluating all of them")
    return x[:samples], y[:samples], x_craft, y_craft, description


def load_checked(paths, x, y):
    """{name: backbone} of {name: saved model path}, each checked against the data on load."""
    from tfjsigr.evaluation.evaluate import check_model

    models = {}
    for name, path in paths.items():
        model = layout.load_model(path)
        models[name] = getattr(model, "model", model)
        check_model(models[name], x, y, name=str(path))
    return models


def check_report_folder(out, option="report folder"):
    """ValueError if the report folder lies in a zoo entry or cannot be written.

    Report files inside an entry are files `tfjsigr zoo verify` refuses.
    """
    resolved = pathlib.Path(out).resolve()
    for folder in (resolved, *resolved.parents):
        if (folder / layout.CARD_FILE).is_file():
            raise ValueError(
                f"{option} {out} lies inside the zoo entry {folder} (reports there break "
                "`tfjsigr zoo verify`); choose a folder outside it"
            )
    existing = next(p for p in (resolved, *resolved.parents) if os.path.exists(p))
    if not existing.is_dir():
        raise ValueError(f"{option} {out}: {existing} is a file, not a folder")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        raise ValueError(f"{option} {out}: cannot write in {existing} ({error.strerror or error})") from None


def transfer_source_names(paths, taken=()):
    """{name: path} of extra transfer-source models: each a unique name, none dropped.

    A name is "<name> (extra)" with <name> as `export` names a model; names several sources
    share get their parent folder ("zoo/plain (extra)"), then a counter if still shared.

    Args:
        paths: the sources, .keras files or folders holding model.keras.
        taken: names already used (the zoo's entries).
    """
    model_files = [layout.model_file(path).resolve() for path in paths]
    short = [layout.default_entry_name(model_file) for model_file in model_files]
    names = {}
    for path, model_file, name in zip(paths, model_files, short):
        if short.count(name) > 1:
            folder = model_file.parent.parent if model_file.name == layout.MODEL_FILE else model_file.parent
            name = f"{folder.name}/{name}"
        unique, count = f"{name} (extra)", 1
        while unique in names or unique in taken:
            count += 1
            unique = f"{name} (extra {count})"
        names[unique] = path
    return names


def entries_with_cards(entries):
    """{name: entry folder} of the entries whose card the evaluation updates."""
    return {
        name: pathlib.Path(entry)
        for name, entry in entries.items()
        if (pathlib.Path(entry) / layout.CARD_FILE).exists()
    }


def check_cards(entries):
    """Fails before the evaluation if a card it would update cannot be read or locked."""
    from tfjsigr.zoo import card

    for entry in entries_with_cards(entries).values():
        with card.zoo_lock(entry.resolve().parent):
            card.read_card(entry)


def update_cards(entries, report, report_path):
    """Writes the `robustness` section of every evaluated entry's card (under the zoo's lock).

    Returns:
        One line per update, with the sample size it replaces (it overwrites the card's
        previous evaluation).
    """
    from tfjsigr.evaluation.report import card_section, training_facts
    from tfjsigr.zoo import card

    with_cards = entries_with_cards(entries)
    lines = []
    for model_report in report["models"]:
        entry = with_cards.get(model_report["name"])
        if entry is None:
            continue
        current = card.read_card(entry)
        section = card_section(model_report, report_path, training_facts(current))
        previous = current.get("robustness")
        card.update_card(entry, "robustness", section)
        lines.append(
            f"updated {entry / layout.CARD_FILE}: robustness on {section['samples']} test images"
            + (f" (was {previous.get('samples', '?')})" if isinstance(previous, dict) else "")
        )
    return lines


def evaluate_saved(
    models,
    out,
    samples=1000,
    seed=0,
    source="sample",
    guards=True,
    autoattack="standard",
    entries=None,
    extra_sources=None,
    transfer_protocol=None,
    title="Robustness evaluation",
    log=print,
):
    """Evaluates saved models and writes the report, its plots and the entries' card updates.

    Args:
        models: {name: path} of the models (.keras files, run folders or zoo entries).
        out: the report folder (not inside a zoo entry).
        samples: test images (the first N).
        seed: seed of every attack.
        source: where the test data comes from.
        guards: run the gradient-masking guards.
        autoattack: AutoAttack version of the headline ("standard" or "fast").
        entries: {name: entry folder} whose cards get the robustness section.
        extra_sources: {name: path} of models that only craft transfer attacks.
        transfer_protocol: "jsigr" adds the J-SIGR paper's ensemble MI-FGSM transfer table.
        title: the report's title.
        log: where progress lines go.

    Returns:
        A `SavedEvaluation`.
    """
    import tensorflow as tf

    from tfjsigr.evaluation import plots
    from tfjsigr.evaluation.config import EvaluationConfig
    from tfjsigr.evaluation.evaluate import evaluate_zoo
    from tfjsigr.evaluation.report import write_report

    # Each model traces each compiled attack once; TensorFlow's retracing warnings are noise here.
    tf.get_logger().setLevel("ERROR")
    entries = entries or {}
    check_report_folder(out)
    check_cards(entries)
    x, y, x_craft, y_craft, description = load_evaluation_data(samples, source, log)
    # Every model and transfer source must fit the data before minutes of attacks start.
    loaded = load_checked(models, x, y)
    sources = load_checked(extra_sources or {}, x, y)
    config = EvaluationConfig(seed=seed, guards=guards, autoattack=autoattack)
    log(
        f"evaluating {len(loaded)} model(s) on {len(x)} test images ({description}), "
        f"seed {seed}; AutoAttack ({autoattack}) on {min(len(x), config.autoattack_samples)}, "
        f"Square on {min(len(x), config.square_samples)}, ARA on "
        f"{min(len(x), config.ara_samples)}, saliency on {min(len(x), config.saliency_samples)}"
    )
    start = time.perf_counter()
    report, evaluations = evaluate_zoo(loaded, x, y, config, x_craft, y_craft, sources)
    report["data"] = description
    if transfer_protocol == "jsigr":  # MI-FGSM on the ensemble of the extra sources.
        from tfjsigr.evaluation.transfer import jsigr_protocol_entry

        report["transfer"]["mim-ensemble (J-SIGR protocol)"] = jsigr_protocol_entry(
            sources, loaded, x, y, config.transfer_eps, seed
        )
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report["figures"] = plots.write_all(report, evaluations, np.asarray(y), out)
    json_path, markdown_path = write_report(report, out, title)
    updates = update_cards(entries, report, json_path.resolve())
    return SavedEvaluation(report, json_path, markdown_path, updates, time.perf_counter() - start)


def evaluate_zoo_dir(zoo_dir, out=None, transfer_sources=(), transfer_protocol=None, **options):
    """`evaluate_saved` on every entry of a zoo (report in <zoo>/report by default).

    Args:
        zoo_dir: the zoo.
        out: the report folder.
        transfer_sources: extra models crafting transfer attacks only.
        transfer_protocol: "jsigr" (needs `transfer_sources`: plain models trained
            independently of the zoo).
        **options: as `evaluate_saved`.
    """
    from tfjsigr import checks
    from tfjsigr.evaluation.config import TRANSFER_PROTOCOLS

    if transfer_protocol is not None:
        checks.choice(transfer_protocol, "transfer_protocol", TRANSFER_PROTOCOLS)
    if transfer_protocol and not transfer_sources:
        raise ValueError(
            "the jsigr transfer protocol crafts on the transfer sources: give plain models "
            "trained independently of the zoo (other seeds)"
        )
    entries = layout.entries(zoo_dir)
    extra = transfer_source_names(transfer_sources, taken=set(entries))
    check_report_folder(out or pathlib.Path(zoo_dir) / layout.REPORT_DIR, _out_label(out))
    out = pathlib.Path(out) if out else pathlib.Path(zoo_dir) / layout.REPORT_DIR
    return evaluate_saved(
        dict(entries), out, entries=entries, extra_sources=extra,
        transfer_protocol=transfer_protocol, title="Zoo robustness evaluation", **options,
    )  # fmt: skip


def evaluate_model_path(model, out=None, **options):
    """`evaluate_saved` on one model (a .keras file, run folder or zoo entry); the report goes
    to evaluation/<name> by default, named as `export` names the model."""
    path = pathlib.Path(model)
    if layout.is_zoo(path):
        raise ValueError(f"{path} is a zoo, not a model: use `tfjsigr zoo evaluate {path}`")
    name = layout.default_entry_name(layout.model_file(path))
    entries = {name: path} if path.is_dir() else {}
    check_report_folder(out or pathlib.Path("evaluation") / name, _out_label(out))
    out = pathlib.Path(out) if out else pathlib.Path("evaluation") / name
    return evaluate_saved({name: path}, out, entries=entries, **options)


def _out_label(out):
    return "report folder" if out else "the default report folder"
