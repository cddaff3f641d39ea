"""`tfjsigr evaluate MODEL` and `tfjsigr zoo evaluate [DIR]`: robustness reports with plots."""

import pathlib
import time

import click

from tfjsigr.cli.errors import MODEL_FILE, load_keras_model, user_errors
from tfjsigr.cli.group import cli, zoo

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


def _config(seed, no_guards):
    from tfjsigr.evaluation import EvaluationConfig

    return EvaluationConfig(seed=seed, guards=not no_guards)


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
        section = card_section(model_report, report_path)
        with user_errors():
            previous = card.read_card(entry).get("robustness")
            card.update_card(entry, "robustness", section)
        click.echo(
            f"updated {entry / card.CARD_FILE}: robustness on {section['samples']} test images"
            + (f" (was {previous.get('samples', '?')})" if isinstance(previous, dict) else "")
        )


def _write(report, evaluations, labels, out, title):
    from tfjsigr.evaluation import plots
    from tfjsigr.evaluation.report import write_report

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report["figures"] = plots.write_all(report, evaluations, labels, out)
    return write_report(report, out, title)


def _run(
    model_paths, entries, out, samples, seed, source, no_guards, zoo_dir=None, extra_sources=None
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
    config = _config(seed, no_guards)
    click.echo(
        f"evaluating {len(models)} model(s) on {len(x)} test images ({description}), "
        f"seed {seed}; Square on {min(len(x), config.square_samples)}, ARA on "
        f"{min(len(x), config.ara_samples)}, saliency on {min(len(x), config.saliency_samples)}",
        err=True,
    )
    start = time.perf_counter()
    report, evaluations = evaluate_zoo(models, x, y, config, x_craft, y_craft, extra_sources)
    report["data"] = description
    json_path, markdown_path = _write(
        report,
        evaluations,
        np.asarray(y),
        out,
        "Zoo robustness evaluation" if zoo_dir else "Robustness evaluation",
    )
    _update_cards(entries, report, json_path.resolve())
    for row in report["leaderboard"]["rows"]:
        status = (
            "reliable" if row["reliable"] else ("UNRELIABLE" if row["reliable"] is False else "-")
        )
        click.echo(
            f"{row['rank']:2} {row['name']:16} clean {row['clean']:.3f}  PGD@{report['leaderboard']['eps']} "
            f"{row['pgd']:.3f}  ARA {row['ara']:.4f}  {status}"
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
]


def _options(function):
    for option in reversed(_common):
        function = option(function)
    return function


@cli.command()
@click.argument("model", type=click.Path(exists=True))
@_options
def evaluate(model, out, samples, seed, source, no_guards):
    """Robustness and interpretability report of one MODEL (.keras file or zoo entry directory)."""
    path = pathlib.Path(model)
    name = path.name if path.is_dir() else path.stem
    entries = {name: path} if path.is_dir() else {}
    _run(
        {name: path},
        entries,
        out or pathlib.Path("evaluation") / name,
        samples,
        seed,
        source,
        no_guards,
    )


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
def zoo_evaluate(directory, out, samples, seed, source, no_guards, transfer_sources):
    """Evaluate every zoo entry: report, transfer matrix, leaderboard, plots and card updates."""
    entries = _zoo_entries(directory)
    extra = {f"{pathlib.Path(p).stem} (extra)": p for p in transfer_sources}
    _run(
        dict(entries),
        entries,
        out or pathlib.Path(directory) / "report",
        samples,
        seed,
        source,
        no_guards,
        zoo_dir=directory,
        extra_sources=extra,
    )
