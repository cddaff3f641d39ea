"""`tfjsigr train` and `tfjsigr export`: one recipe into a run folder, a run into the zoo."""

import pathlib
import shlex

import click

from tfjsigr.cli.errors import user_errors
from tfjsigr.cli.group import cli
from tfjsigr.data.datasets import SOURCES
from tfjsigr.pipeline.strategies import STRATEGIES
from tfjsigr.zoo import layout


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option(
    "--out", type=click.Path(file_okay=False), default=None,
    help="Run folder for the checkpoint, model.keras and metrics.json [default: runs/<name>].",
)  # fmt: skip
@click.option("--strategy", type=click.Choice(STRATEGIES), default="default", show_default=True,
              help="tf.distribute strategy; multi-worker reads TF_CONFIG.")  # fmt: skip
@click.option(
    "--quick", is_flag=True, help="Apply the recipe's [quick] overrides (fewer epochs/images)."
)
@click.option("--dataset", default=None,
              help="Data set instead of the recipe's: a tfds name, a keras.datasets .npz, an IDX "
                   "folder, or an image folder (one subfolder per class).")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of IDX or npz files of a named data set; all its data then comes from it.")  # fmt: skip
@click.option("--source", type=click.Choice(SOURCES), default="auto", show_default=True,
              help="Where a named data set may come from.")  # fmt: skip
def train(recipe, out, strategy, quick, dataset, data_dir, source):
    """Train the model a RECIPE (.toml) describes and save it in a run folder.

    An interrupted run resumes from its last completed epoch when started again with the same
    --out. A NaN loss stops training with an error and writes no model.

    \b
    Examples:
      tfjsigr train zoo/recipes/jsigr.toml --quick
      tfjsigr train zoo/recipes/plain.toml --out runs/plain --data-dir ~/data/fashion-mnist
      tfjsigr train zoo/recipes/jsigr.toml --dataset parts.npz --out runs/parts
      TF_CONFIG='{"cluster": {...}, "task": {...}}' tfjsigr train zoo/recipes/jr.toml --strategy multi-worker
    """
    from tfjsigr.pipeline import recipes, runs

    with user_errors():
        parsed = recipes.load_recipe(recipe)
        parsed = parsed.quick_variant() if quick else parsed
        run_dir = pathlib.Path(out) if out else layout.DEFAULT_RUNS_DIR / parsed.name
        data = parsed.data_source(data_dir, source, dataset)
        result = runs.train(parsed, run_dir, strategy=strategy, data=data)
    if result.is_chief:
        click.echo(runs.format_metrics(result.metrics))
        click.echo(
            f"saved {run_dir / layout.MODEL_FILE}; export it with: "
            f"tfjsigr export {shlex.quote(str(run_dir))}"
        )


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--zoo", "zoo_dir", type=click.Path(file_okay=False),
              default=str(layout.DEFAULT_ZOO_DIR), show_default=True,
              help="Zoo folder to export into.")  # fmt: skip
@click.option("--name", default=None,
              help="Entry name [default: the recipe's (or entry's) name, else the folder of a "
                   "model.keras, else the file's name without .keras].")  # fmt: skip
@click.option("--dataset", default=None,
              help="Data set of the parity images (name or path) [default: the one the run "
                   "recorded, else fashion_mnist].")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of IDX or npz files of a named data set.")  # fmt: skip
def export(model, zoo_dir, name, dataset, data_dir):
    """Export a trained MODEL (a run folder from `train`, a zoo entry folder, or a .keras file).

    Writes zoo/<name>/ with model.keras, saved_model/<version>/, model.onnx, card.json and
    README.md, and updates zoo/index.json. A run folder's recipe.json and metrics.json, or an
    entry folder's card.json, go onto the new card. A new version of an existing entry must
    take the same input shape and output the same number of classes.

    \b
    Examples:
      tfjsigr export runs/jsigr
      tfjsigr export zoo/jsigr --zoo my_zoo
      tfjsigr export cifar.keras --dataset cifar10 --zoo my_zoo --name cifar-v2
    """
    from tfjsigr.zoo.export import export_run

    with user_errors():
        entry = export_run(model, zoo_dir, name=name, dataset=dataset, data_dir=data_dir)
    click.echo(f"exported {entry}")
