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


def evaluation_data(models, dataset=None, data_dir=None, source=None, allow_mixed=False):
    """The data set the models are evaluated on: each model's own, as its run or card recorded
    (or `dataset`, which overrides them). Models of different data sets are refused unless
    `allow_mixed`: they are then evaluated on the first model's data.

    Args:
        models: {name: path} of the saved models.
        dataset: a data set name or path for all of them, or None.
        data_dir: a folder of local copies of a named data set.
        source: which sources a named data set may come from [default: the recorded one].
        allow_mixed: evaluate models trained on different data sets together.

    Returns:
        (the `DataSource`, {name: the data set the model was trained on, or None if unknown}).

    Raises:
        ValueError: models of different data sets without `allow_mixed`, or a malformed record.
    """
    from tfjsigr.data.source import resolve_data
    from tfjsigr.zoo.export import model_data, recorded_data

    records = {name: layout.read_record(path) for name, path in models.items()}
    recorded = {name: recorded_data(record) for name, record in records.items()}
    trained_on = {name: None if data is None else data.dataset for name, data in recorded.items()}
    if dataset is None:
        groups = {}
        for name, data in recorded.items():
            groups.setdefault(_data_key(data), []).append(name)
        if len(groups) > 1 and not allow_mixed:
            listed = "; ".join(f"{', '.join(names)}: {key[0]}" for key, names in groups.items())
            raise ValueError(
                f"the models were trained on different data sets ({listed}): evaluate them "
                "apart, or allow mixed data sets (--allow-mixed) to rank them all on the data of "
                f"{next(iter(models))}, marked in the leaderboard"
            )
        data = model_data(records[next(iter(models))], data_dir=data_dir, source=source)
    else:
        data = resolve_data(dataset, data_dir, source or "auto")
    return data, trained_on


def _data_key(data):
    """What makes two models' data sets the same; a model without a record is taken to be on
    the default data set, as it is evaluated."""
    if data is None:
        from tfjsigr.data.source import DEFAULT_DATASET

        return (DEFAULT_DATASET, None, None)
    return (data.dataset, data.image_size, data.color_mode)


def load_evaluation_data(data, samples, log=print):
    """(x, y, x_craft, y_craft, info): the first `samples` test images of a `DataSource`, and
    its training images (the universal perturbation is crafted on them)."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    x, y, info = data.load("test")
    x_craft, y_craft, _ = data.load("train")
    if samples > len(x):
        log(f"only {len(x)} test images: evaluating all of them")
    return x[:samples], y[:samples], x_craft, y_craft, info


def load_checked(paths, x, y, info):
    """{name: backbone} of {name: saved model path}, each checked against the data on load
    (its input shape and number of classes, then its logits on the images)."""
    from tfjsigr.data.source import check_model_matches
    from tfjsigr.evaluation.evaluate import check_model

    models = {}
    for name, path in paths.items():
        model = layout.load_model(path)
        backbone = getattr(model, "model", model)
        try:
            check_model_matches(backbone.input_shape, backbone.output_shape[-1], info)
        except (AttributeError, ValueError) as error:
            raise ValueError(f"{layout.model_file(path)}: {error}") from None
        check_model(backbone, x, y, name=str(path))
        models[name] = backbone
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
        # Relative to the entry: a card records no path of the machine.
        relative = os.path.relpath(pathlib.Path(report_path).resolve(), entry.resolve())
        section = {
            "dataset": (report.get("data") or {}).get("name"),
            **card_section(model_report, relative, training_facts(current)),
        }
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
    guards=True,
    autoattack="standard",
    entries=None,
    extra_sources=None,
    transfer_protocol=None,
    title="Robustness evaluation",
    log=print,
    dataset=None,
    data_dir=None,
    source=None,
    allow_mixed=False,
    eps=None,
):
    """Evaluates saved models and writes the report, its plots and the entries' card updates.

    Args:
        models: {name: path} of the models (.keras files, run folders or zoo entries).
        out: the report folder (not inside a zoo entry).
        samples: test images (the first N).
        seed: seed of every attack.
        guards: run the gradient-masking guards.
        autoattack: AutoAttack version of the headline ("standard" or "fast").
        entries: {name: entry folder} whose cards get the robustness section.
        extra_sources: {name: path} of models that only craft transfer attacks.
        transfer_protocol: "jsigr" adds the J-SIGR paper's ensemble MI-FGSM transfer table.
        title: the report's title.
        log: where progress lines go.
        dataset, data_dir, source, allow_mixed: the data set (see `evaluation_data`).
        eps: the headline L-inf radius in pixel units [default: the data's, `config.headline_eps`].

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
    data, trained_on = evaluation_data(models, dataset, data_dir, source, allow_mixed)
    x, y, x_craft, y_craft, info = load_evaluation_data(data, samples, log)
    # Every model and transfer source must fit the data before minutes of attacks start.
    loaded = load_checked(models, x, y, info)
    sources = load_checked(extra_sources or {}, x, y, info)
    config = EvaluationConfig.for_data(
        info.image_shape, eps, seed=seed, guards=guards, autoattack=autoattack
    )
    log(
        f"evaluating {len(loaded)} model(s) on {len(x)} test images of {info.summary()}, "
        f"L-inf eps {config.headline_eps:.4g}, "
        f"seed {seed}; AutoAttack ({autoattack}) on {min(len(x), config.autoattack_samples)}, "
        f"Square on {min(len(x), config.square_samples)}, ARA on "
        f"{min(len(x), config.ara_samples)}, saliency on {min(len(x), config.saliency_samples)}"
    )
    start = time.perf_counter()
    report, evaluations = evaluate_zoo(loaded, x, y, config, x_craft, y_craft, sources)
    report["data"] = {**info.to_dict(), "source": data.to_dict(), "test": f"first {len(x)} images"}
    _mark_other_data(report, trained_on, data.dataset)
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


def _mark_other_data(report, trained_on, evaluated_on):
    """Flags the leaderboard rows of models trained on another data set than the evaluation's."""
    mixed = False
    for row in report["leaderboard"]["rows"]:
        other = trained_on.get(row["name"])
        if other is not None and other != evaluated_on:
            row["flagged"].append(f"trained on {other}, evaluated on {evaluated_on}")
            mixed = True
    report["data"]["mixed"] = mixed
