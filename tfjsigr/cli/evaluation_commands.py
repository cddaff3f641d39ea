"""`tfjsigr evaluate MODEL` and `tfjsigr zoo evaluate [DIR]`: robustness reports with plots."""

import os
import pathlib
import tempfile
import time

import click

from tfjsigr.cli.errors import (
    MODEL_FILE,
    load_keras_model,
    one_line,
    resolve_model_path,
    user_errors,
)
from tfjsigr.cli.group import cli, zoo
from tfjsigr.cli.training_commands import default_entry_name

MAX_SEED = 2**31 - 1


def _load(path):
    """The backbone of a saved model (.keras file or zoo entry directory)."""
    model = load_keras_model(path)
    return getattr(model, "model", model)


def _load_checked(paths, x, y):
    """{name: backbone} of {name: path}, each checked against the evaluation data on load."""
    from tfjsigr.evaluation import check_model

    models = {}
    for name, path in paths.items():
        models[name] = _load(path)
        with user_errors():
            check_model(models[name], x, y, name=str(path))
    return models


def _data(samples, source):
    from tfjsigr.data import load_fashion_mnist

    if samples < 1:
        raise click.ClickException(f"--samples must be >= 1, got {samples}")
    x, y, description = load_fashion_mnist("test", source)
    x_craft, y_craft, _ = load_fashion_mnist("train", source)
    if samples > len(x):
        click.echo(f"only {len(x)} test images: evaluating all of them", err=True)
    return x[:samples], y[:samples], x_craft, y_craft, description


def _config(seed, no_guards, autoattack):
    from tfjsigr.evaluation import EvaluationConfig

    return EvaluationConfig(seed=seed, guards=not no_guards, autoattack=autoattack)


def _zoo_entries(zoo_dir):
    """{name: entry dir} from index.json, else every subdirectory holding model.keras.

    The index is validated, so every entry directory lies inside `zoo_dir`.
    """
    from tfjsigr.zoo import index as index_lib

    zoo_dir = pathlib.Path(zoo_dir)
    if not zoo_dir.is_dir():
        raise click.ClickException(f"{zoo_dir}: no such zoo directory")
    with user_errors():
        records = index_lib.read_index(zoo_dir)
    entries = {record["name"]: index_lib.entry_dir(zoo_dir, record) for record in records}
    if not entries:
        entries = {
            d.name: d
            for d in sorted(zoo_dir.iterdir())
            if not d.name.startswith(".") and (d / MODEL_FILE).is_file()  # Not export staging.
        }
    if not entries:
        raise click.ClickException(f"{zoo_dir}: no index.json entries and no */{MODEL_FILE}")
    return entries


def _entries_with_cards(entries):
    """{name: entry dir} of the entries whose card the evaluation updates."""
    from tfjsigr.zoo.card import CARD_FILE

    return {
        name: pathlib.Path(entry)
        for name, entry in entries.items()
        if (pathlib.Path(entry) / CARD_FILE).exists()
    }


def _check_cards(entries):
    """Fails before the evaluation if a card it would update cannot be read or locked."""
    from tfjsigr.zoo import card

    for entry in _entries_with_cards(entries).values():
        with user_errors(), card.zoo_lock(entry.resolve().parent):
            card.read_card(entry)


def _update_cards(entries, report, report_path):
    """The `robustness` section of every evaluated entry's card (update_card takes the lock).

    Each update is reported, with the sample size it replaces, since it overwrites the card's
    previous evaluation.
    """
    from tfjsigr.evaluation.report import card_section
    from tfjsigr.zoo import card

    with_cards = _entries_with_cards(entries)
    for model_report in report["models"]:
        entry = with_cards.get(model_report["name"])
        if entry is None:
            continue
        with user_errors():
            current = card.read_card(entry)
        section = card_section(model_report, report_path, training_facts(current))
        with user_errors():
            previous = current.get("robustness")
            card.update_card(entry, "robustness", section)
        click.echo(
            f"updated {entry / card.CARD_FILE}: robustness on {section['samples']} test images"
            + (f" (was {previous.get('samples', '?')})" if isinstance(previous, dict) else "")
        )


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


def _report_folder(out, default):
    """The report folder, --out else `default`, checked before the evaluation starts."""
    folder = pathlib.Path(out or default)
    _check_out(folder, "--out" if out else "the default --out")
    return folder


def _check_out(out, option):
    """Fails if the report folder lies in a zoo entry or cannot be written.

    Report files inside an entry are files `tfjsigr zoo verify` refuses.
    """
    from tfjsigr.zoo.card import CARD_FILE

    resolved = pathlib.Path(out).resolve()
    for folder in (resolved, *resolved.parents):
        if (folder / CARD_FILE).is_file():
            raise click.ClickException(
                f"{option} {out} lies inside the zoo entry {folder} (reports there break "
                "`tfjsigr zoo verify`); pass --out a folder outside it"
            )
    existing = next(p for p in (resolved, *resolved.parents) if os.path.exists(p))
    if not existing.is_dir():
        raise click.ClickException(f"{option} {out}: {existing} is a file, not a folder")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        raise click.ClickException(
            f"{option} {out}: cannot write in {existing} ({one_line(error)})"
        ) from None


def _write(report, evaluations, labels, out, title):
    from tfjsigr.evaluation import plots
    from tfjsigr.evaluation.report import write_report

    out = pathlib.Path(out)
    with user_errors():
        out.mkdir(parents=True, exist_ok=True)
        report["figures"] = plots.write_all(report, evaluations, labels, out)
        return write_report(report, out, title)


def _run(
    model_paths,
    entries,
    out,
    samples,
    seed,
    source,
    no_guards,
    autoattack,
    zoo_dir=None,
    extra_sources=None,
    transfer_protocol=None,
):
    """Evaluates {name: path} models (extra_sources: {name: path} crafting transfers only)."""
    import numpy as np
    import tensorflow as tf

    from tfjsigr.evaluation import evaluate_zoo

    # Each model traces each compiled attack once; TensorFlow's retracing warnings are noise here.
    tf.get_logger().setLevel("ERROR")
    _check_cards(entries)
    with user_errors():
        x, y, x_craft, y_craft, description = _data(samples, source)
    # Every model and transfer source must fit the data before minutes of attacks start.
    models = _load_checked(model_paths, x, y)
    extra_sources = _load_checked(extra_sources or {}, x, y)
    config = _config(seed, no_guards, autoattack)
    click.echo(
        f"evaluating {len(models)} model(s) on {len(x)} test images ({description}), "
        f"seed {seed}; AutoAttack ({autoattack}) on {min(len(x), config.autoattack_samples)}, "
        f"Square on {min(len(x), config.square_samples)}, ARA on "
        f"{min(len(x), config.ara_samples)}, saliency on {min(len(x), config.saliency_samples)}",
        err=True,
    )
    start = time.perf_counter()
    report, evaluations = evaluate_zoo(models, x, y, config, x_craft, y_craft, extra_sources)
    report["data"] = description
    if transfer_protocol == "jsigr":  # MI-FGSM on the ensemble of the --transfer-source models.
        from tfjsigr.evaluation.transfer import jsigr_protocol_entry

        report["transfer"]["mim-ensemble (J-SIGR protocol)"] = jsigr_protocol_entry(
            extra_sources, models, x, y, config.transfer_eps, seed
        )
    json_path, markdown_path = _write(
        report,
        evaluations,
        np.asarray(y),
        out,
        "Zoo robustness evaluation" if zoo_dir else "Robustness evaluation",
    )
    _update_cards(entries, report, json_path.resolve())
    eps = report["leaderboard"]["eps"]
    for row in report["leaderboard"]["rows"]:
        status = (
            "reliable" if row["reliable"] else ("UNRELIABLE" if row["reliable"] is False else "-")
        )
        status += "".join(f"; {flag}" for flag in row["flagged"])
        click.echo(
            f"{row['rank']:2} {row['name']:16} clean {row['clean']:.3f}  AutoAttack@{eps} "
            f"{row['autoattack']:.3f}  PGD-20@{eps} (fast) {row['pgd']:.3f}  "
            f"ARA {row['ara']:.4f}  {status}"
        )
    click.echo(f"wrote {json_path} and {markdown_path} in {time.perf_counter() - start:.0f} s")


_common = [
    click.option(
        "--out",
        type=click.Path(file_okay=False),
        default=None,
        help="Report directory (default: evaluation/<name>, or DIR/report for a zoo).",
    ),
    click.option(
        "--samples",
        type=int,
        default=1000,
        show_default=True,
        help="Test images to evaluate on (the first N).",
    ),
    click.option(
        "--seed",
        type=click.IntRange(0, MAX_SEED),
        default=0,
        show_default=True,
        help="Seed of every attack.",
    ),
    click.option(
        "--source",
        type=click.Choice(["sample", "full", "auto"]),
        default="sample",
        show_default=True,
        help="Fashion-MNIST: shipped sample, full set, or full if present.",
    ),
    click.option("--no-guards", is_flag=True, help="Skip the gradient-masking guards."),
    click.option(
        "--autoattack",
        type=click.Choice(["standard", "fast"]),
        default="standard",
        show_default=True,
        help="AutoAttack version of the headline figure (fast: APGD-CE and APGD-T only).",
    ),
]


def _options(function):
    for option in reversed(_common):
        function = option(function)
    return function


@cli.command()
@click.argument("model", type=click.Path(exists=True))
@_options
def evaluate(model, out, samples, seed, source, no_guards, autoattack):
    """Robustness and interpretability report of one MODEL (.keras file or zoo entry directory).

    The model is named as `tfjsigr export` names it: after its folder for a model.keras, else
    after the file; the report goes to evaluation/<name> unless --out says otherwise.
    """
    path = pathlib.Path(model)
    if path.is_dir() and _is_zoo(path):
        raise click.ClickException(
            f"{path} is a zoo, not a model: use `tfjsigr zoo evaluate {path}`"
        )
    _, model_file = resolve_model_path(path)
    name = default_entry_name(model_file)
    entries = {name: path} if path.is_dir() else {}
    folder = _report_folder(out, pathlib.Path("evaluation") / name)
    _run({name: path}, entries, folder, samples, seed, source, no_guards, autoattack)


def _is_zoo(path):
    """Whether a folder is a zoo (index.json, or entries with model.keras), not an entry."""
    from tfjsigr.zoo.index import INDEX_FILE

    if (path / MODEL_FILE).exists():
        return False
    with user_errors():
        return (path / INDEX_FILE).is_file() or any(
            (folder / MODEL_FILE).is_file() for folder in path.iterdir()
        )


def _transfer_source_names(paths, taken=()):
    """{name: path} of the --transfer-source models: each a unique name, none dropped.

    A name is "<name> (extra)" with <name> as `export` names a model; names several sources
    share get their parent folder ("zoo/plain (extra)"), then a counter if still shared.

    Args:
        paths: the sources, .keras files or folders holding model.keras.
        taken: names already used (the zoo's entries).
    """
    model_files = [resolve_model_path(path)[1].resolve() for path in paths]
    short = [default_entry_name(model_file) for model_file in model_files]
    names = {}
    for path, model_file, name in zip(paths, model_files, short):
        if short.count(name) > 1:
            folder = (
                model_file.parent.parent if model_file.name == MODEL_FILE else model_file.parent
            )
            name = f"{folder.name}/{name}"
        unique, count = f"{name} (extra)", 1
        while unique in names or unique in taken:
            count += 1
            unique = f"{name} (extra {count})"
        names[unique] = path
    return names


@zoo.command("evaluate")
@click.argument("directory", type=click.Path(), default="zoo")
@_options
@click.option(
    "--transfer-source",
    "transfer_sources",
    multiple=True,
    type=click.Path(exists=True),
    help="Extra model (.keras or entry dir) crafting transfer attacks only; repeatable.",
)
@click.option(
    "--transfer-protocol",
    type=click.Choice(["jsigr"]),
    default=None,
    help="Add the J-SIGR paper's transfer table: MI-FGSM (10 steps of eps/10, momentum 1) on "
    "the ensemble of the --transfer-source models, evaluated on every entry.",
)
def zoo_evaluate(
    directory,
    out,
    samples,
    seed,
    source,
    no_guards,
    autoattack,
    transfer_sources,
    transfer_protocol,
):
    """Evaluate every zoo entry: report, transfer matrix, leaderboard, plots and card updates."""
    if transfer_protocol and not transfer_sources:
        raise click.ClickException(
            "--transfer-protocol jsigr crafts on the --transfer-source models: give plain models "
            "trained independently of the zoo (other seeds)"
        )
    entries = _zoo_entries(directory)
    extra = _transfer_source_names(transfer_sources, taken=set(entries))
    folder = _report_folder(out, pathlib.Path(directory) / "report")
    _run(
        dict(entries),
        entries,
        folder,
        samples,
        seed,
        source,
        no_guards,
        autoattack,
        zoo_dir=directory,
        extra_sources=extra,
        transfer_protocol=transfer_protocol,
    )
