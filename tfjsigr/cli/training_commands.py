"""`tfjsigr train` and `tfjsigr export`: one recipe into a run folder, a run into the zoo."""

import json
import pathlib

import click

from tfjsigr.cli.errors import (
    MODEL_FILE,
    load_keras_model,
    one_line,
    resolve_model_path,
    user_errors,
)
from tfjsigr.cli.group import cli

STRATEGIES = ("default", "mirrored", "multi-worker")
DATA_SOURCES = ("auto", "full", "tfds", "sample")
DEFAULT_RUNS_DIR = pathlib.Path("runs")
DEFAULT_ZOO_DIR = pathlib.Path("zoo")


def load_recipe_for_cli(path, quick=False):
    """A validated recipe (its quick variant with `quick`), user errors as click errors."""
    from tfjsigr import recipes

    with user_errors():
        recipe = recipes.load_recipe(path)
    return recipe.quick_variant() if quick else recipe


def print_metrics(metrics):
    """The headline figures of a training run, one per line."""
    pgd = metrics.get("pgd", {})
    click.echo(
        f"clean accuracy:   {metrics['clean_accuracy']:.4f} ({metrics['eval_examples']} test images)"
    )
    click.echo(
        f"PGD accuracy:     {metrics['pgd_accuracy']:.4f} (PGD-{pgd.get('steps')} L-inf eps "
        f"{pgd.get('eps')}, {pgd.get('examples')} images, seed {pgd.get('seed')})"
    )
    click.echo(f"mean ||J||_F:     {metrics['mean_jacobian_norm']:.3f}")
    click.echo(f"training time:    {metrics['train_seconds']:.1f} s")


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
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of IDX or npz files, tried before tfds and the built-in copies.")  # fmt: skip
@click.option("--source", type=click.Choice(DATA_SOURCES), default="auto", show_default=True,
              help="Where the data may come from.")  # fmt: skip
def train(recipe, out, strategy, quick, data_dir, source):
    """Train the model a RECIPE (.toml) describes and save it in a run folder.

    An interrupted run resumes from its last completed epoch when started again with the same
    --out. A NaN loss stops training with an error and writes no model.

    \b
    Examples:
      tfjsigr train zoo/recipes/jsigr.toml --quick
      tfjsigr train zoo/recipes/plain.toml --out runs/plain --data-dir ~/data/fashion-mnist
      TF_CONFIG='{"cluster": {...}, "task": {...}}' tfjsigr train zoo/recipes/jr.toml --strategy multi-worker
    """
    from tfjsigr import training

    parsed = load_recipe_for_cli(recipe, quick)
    run_dir = pathlib.Path(out) if out else DEFAULT_RUNS_DIR / parsed.name
    with user_errors():
        result = training.train(
            parsed, run_dir, strategy=strategy, data_dir=data_dir, source=source
        )
    if result.is_chief:
        print_metrics(result.metrics)
        click.echo(
            f"saved {run_dir / training.MODEL_FILE}; export it with: tfjsigr export {run_dir}"
        )


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--zoo", "zoo_dir", type=click.Path(file_okay=False), default=str(DEFAULT_ZOO_DIR),
              show_default=True, help="Zoo folder to export into.")  # fmt: skip
@click.option("--name", default=None,
              help="Entry name [default: the recipe's name, else the folder of a model.keras, "
                   "else the file's name without .keras].")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of IDX or npz files for the parity sample.")  # fmt: skip
def export(model, zoo_dir, name, data_dir):
    """Export a trained MODEL (a run folder from `train`, or a .keras file) into the zoo.

    Writes zoo/<name>/ with model.keras, saved_model/<version>/, model.onnx, card.json and
    README.md, and updates zoo/index.json. A new version of an existing entry must take the
    same input shape and output the same number of classes.

    \b
    Examples:
      tfjsigr export runs/jsigr
      tfjsigr export runs/jsigr/model.keras --zoo my_zoo --name jsigr-v2
    """
    run_dir, model_file = resolve_model_path(model)
    recipe = read_json_object(run_dir / "recipe.json")
    metrics = read_json_object(run_dir / "metrics.json")
    keras_model = load_keras_model(model_file)
    images, description = parity_images(recipe, data_dir)
    entry = export_to_zoo(
        keras_model,
        zoo_dir,
        name or default_entry_name(model_file, recipe),
        recipe,
        metrics,
        images,
        metrics.get("data") or description,
    )
    click.echo(f"exported {entry}")


def read_json_if_present(path):
    """A run's JSON side file, decoded ({} when absent); click error when unreadable or corrupt."""
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except OSError as error:  # A folder, or no permission.
        raise click.ClickException(f"{path}: unreadable ({one_line(error)})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise click.ClickException(f"{path}: corrupt JSON ({one_line(error)})") from None


def read_json_object(path):
    """A run's JSON side file that must hold a JSON object ({} when absent); click error if not."""
    value = read_json_if_present(path)
    if not isinstance(value, dict):
        raise click.ClickException(
            f"{path}: corrupt run file (expected a JSON object, got {type(value).__name__})"
        )
    return value


def default_entry_name(model_file, recipe):
    """The entry name `export` uses without --name.

    Args:
        model_file: the exported .keras file.
        recipe: the run folder's recipe.json ({} when it has none).

    Returns:
        The recipe's name; else, for a file named model.keras, its folder's name (a run folder
        or a zoo entry); else the file's name without its suffix.
    """
    if recipe.get("name"):
        return recipe["name"]
    if model_file.name == MODEL_FILE:
        return model_file.resolve().parent.name
    return model_file.stem


def parity_images(recipe, data_dir):
    """Up to 1,000 test images of the recipe's data set for the export's parity checks."""
    from tfjsigr import data
    from tfjsigr.zoo.export import MAX_PARITY_IMAGES

    dataset = recipe.get("dataset", "fashion_mnist")
    count = MAX_PARITY_IMAGES
    with user_errors():
        images, _, description = data.load_dataset(dataset, "test", data_dir=data_dir)
    return images[:count], {"test": description}


def export_to_zoo(model, zoo_dir, name, recipe, metrics, images, description):
    """`tfjsigr.zoo.export.export_entry` with user errors as click errors."""
    from tfjsigr.zoo import export as export_lib

    with user_errors():
        try:
            return export_lib.export_entry(
                model, zoo_dir, name, recipe, metrics, images, description
            )
        except export_lib.ParityError as error:  # The message names the entry.
            raise click.ClickException(f"{one_line(error)}; nothing exported") from None
