"""`tfjsigr evaluate MODEL` and `tfjsigr zoo evaluate [DIR]`: robustness reports with plots."""

import pathlib
import time

import click

from tfjsigr.cli.errors import MODEL_FILE, load_keras_model
from tfjsigr.cli.group import cli, zoo


def _load(path):
    """The backbone of a saved model (.keras file or zoo entry directory)."""
    model = load_keras_model(path)
    return getattr(model, "model", model)


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
    """{name: entry dir} from index.json, else every subdirectory holding model.keras."""
    from tfjsigr.zoo.index import read_index

    zoo_dir = pathlib.Path(zoo_dir)
    if not zoo_dir.is_dir():
        raise click.ClickException(f"{zoo_dir}: no such zoo directory")
    try:
        entries = {e["name"]: zoo_dir / e.get("path", e["name"]) for e in read_index(zoo_dir)}
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    if not entries:
        entries = {d.name: d for d in sorted(zoo_dir.iterdir()) if (d / MODEL_FILE).is_file()}
    if not entries:
        raise click.ClickException(f"{zoo_dir}: no index.json entries and no */{MODEL_FILE}")
    return entries


def _update_cards(entries, report, report_path):
    """The `robustness` section of every evaluated entry's card (update_card takes the lock)."""
    from tfjsigr.evaluation.report import card_section
    from tfjsigr.zoo import card

    for model_report in report["models"]:
        entry = entries.get(model_report["name"])
        if entry is not None and (pathlib.Path(entry) / card.CARD_FILE).is_file():
            card.update_card(entry, "robustness", card_section(model_report, report_path))


def _write(report, evaluations, labels, out, title):
    from tfjsigr.evaluation import plots
    from tfjsigr.evaluation.report import write_report

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report["figures"] = plots.write_all(report, evaluations, labels, out)
    return write_report(report, out, title)


def _run(models, entries, out, samples, seed, source, no_guards, zoo_dir=None, extra_sources=None):
    import numpy as np
    import tensorflow as tf

    from tfjsigr.evaluation import evaluate_zoo

    # Each model traces each compiled attack once; TensorFlow's retracing warnings are noise here.
    tf.get_logger().setLevel("ERROR")
    x, y, x_craft, y_craft, description = _data(samples, source)
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
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of every attack."),
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
        {name: _load(path)},
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
    models = {name: _load(entry) for name, entry in entries.items()}
    extra = {f"{pathlib.Path(p).stem} (extra)": _load(p) for p in transfer_sources}
    _run(
        models,
        entries,
        out or pathlib.Path(directory) / "report",
        samples,
        seed,
        source,
        no_guards,
        zoo_dir=directory,
        extra_sources=extra,
    )
