"""`tfjsigr train` and `tfjsigr export`: one recipe into a run folder, a run into the zoo."""

import dataclasses
import json
import pathlib
import shlex

import click

from tfjsigr.cli.errors import (
    MODEL_FILE,
    load_keras_model,
    one_line,
    resolve_model_path,
    user_errors,
)
from tfjsigr.cli.group import cli
from tfjsigr.data import DATASETS
from tfjsigr.zoo.card import CARD_FILE

STRATEGIES = ("default", "mirrored", "multi-worker")
DATA_SOURCES = ("auto", "full", "tfds", "sample")
DEFAULT_RUNS_DIR = pathlib.Path("runs")
DEFAULT_ZOO_DIR = pathlib.Path("zoo")
# The data set of a bare .keras file without --dataset (the default zoo's).
DEFAULT_DATASET = "fashion_mnist"


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
    autoattack = metrics.get("autoattack")
    if autoattack:
        click.echo(
            f"AutoAttack:       {metrics['autoattack_accuracy']:.4f} ({autoattack['version']} "
            f"version, L-inf eps {autoattack['eps']}, {autoattack['examples']} images, seed "
            f"{autoattack['seed']})"
        )
    click.echo(
        f"PGD-20 (fast):    {metrics['pgd_accuracy']:.4f} (PGD-{pgd.get('steps')} L-inf eps "
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
              help="Folder of IDX or npz files; all the data then comes from it.")  # fmt: skip
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
            f"saved {run_dir / training.MODEL_FILE}; export it with: "
            f"tfjsigr export {shlex.quote(str(run_dir))}"
        )


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--zoo", "zoo_dir", type=click.Path(file_okay=False), default=str(DEFAULT_ZOO_DIR),
              show_default=True, help="Zoo folder to export into.")  # fmt: skip
@click.option("--name", default=None,
              help="Entry name [default: the recipe's (or entry's) name, else the folder of a "
                   "model.keras, else the file's name without .keras].")  # fmt: skip
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), default=None,
              help="Data set of the parity images [default: the recipe's, else "
                   f"{DEFAULT_DATASET}].")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of IDX or npz files for the parity sample.")  # fmt: skip
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
    folder, model_file = resolve_model_path(model)
    record = read_model_record(folder, model_file)
    dataset = export_dataset(dataset, record)
    name = export_entry_name(name, model_file, record)
    keras_model = load_keras_model(model_file)
    images, description = parity_images(dataset, data_dir)
    check_takes_images(model_file, keras_model, images, dataset)
    entry = export_to_zoo(
        keras_model,
        zoo_dir,
        name,
        record.recipe,
        record.metrics,
        images,
        record.data or description,
    )
    click.echo(f"exported {entry}")


@dataclasses.dataclass
class ModelRecord:
    """What a run folder or a zoo entry records about its model (nothing for a bare file).

    `name_key` and `dataset_key` say where the name and data set come from, for errors.
    """

    recipe: dict
    metrics: dict
    data: object = None
    name: object = None
    name_key: str = ""
    dataset_key: str = ""


def read_model_record(folder, model_file):
    """The ModelRecord of a run folder (recipe.json, metrics.json) or entry folder (card.json).

    Only a folder's model.keras is described by its side files; any other .keras file is bare.
    """
    if model_file.name != MODEL_FILE:
        return ModelRecord({}, {})
    if (folder / CARD_FILE).exists():
        return read_entry_record(folder)
    recipe_file = folder / "recipe.json"
    recipe = read_json_object(recipe_file)
    metrics = read_json_object(folder / "metrics.json")
    key = f"{recipe_file}: key"
    return ModelRecord(
        recipe,
        metrics,
        metrics.get("data"),
        recipe.get("name"),
        f"{key} 'name'",
        f"{key} 'dataset'",
    )


def read_entry_record(entry):
    """The ModelRecord of a zoo entry, from its card."""
    from tfjsigr.zoo import card as card_lib

    with user_errors():
        card = card_lib.read_card(entry)
    card_file = entry / CARD_FILE
    recipe, metrics = (card_section(card, key, card_file) for key in ("recipe", "metrics"))
    key = f"{card_file}: key"
    return ModelRecord(
        recipe,
        metrics,
        card.get("data"),
        card.get("name"),
        f"{key} 'name'",
        f"{key} 'recipe.dataset'",
    )


def card_section(card, key, card_file):
    """A card's section that must be a JSON object ({} when absent or null); click error if not."""
    value = card.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise click.ClickException(
            f"{card_file}: corrupt model card ('{key}' must be a JSON object, got "
            f"{type(value).__name__})"
        )
    return value


def export_dataset(option, record):
    """The data set `export` takes parity images from: the recipe's, else --dataset's or the default.

    Raises:
        click.ClickException: the recipe names an unknown data set, or --dataset contradicts it.
    """
    from tfjsigr.data import get_spec

    recorded = record.recipe.get("dataset")
    if recorded is None:
        return option or DEFAULT_DATASET
    try:
        get_spec(recorded)
    except ValueError as error:
        raise click.ClickException(f"{record.dataset_key}: {one_line(error)}") from None
    if option is not None and option != recorded:
        raise click.ClickException(
            f"--dataset {option}: the model was trained on {recorded} ({record.dataset_key}); "
            "leave --dataset out"
        )
    return recorded


def export_entry_name(name, model_file, record):
    """The entry name `export` uses (see `default_entry_name`), checked; errors say its origin."""
    from tfjsigr.zoo.export import check_name

    if name is not None:
        origin = "--name"
    elif record.name is not None:
        name, origin = record.name, record.name_key
    else:
        name = default_entry_name(model_file)
        origin = f"the default entry name, from {model_file} (choose one with --name)"
    try:
        return check_name(name)
    except ValueError as error:
        raise click.ClickException(f"{origin}: {one_line(error)}") from None


def check_takes_images(model_file, model, images, dataset):
    """Click error naming the file unless the model takes images of the data set's shape."""
    from tfjsigr.zoo.export import model_input_shape

    shape = model_input_shape(model)
    if shape is None:  # Undefined (subclassed): the export finds out by running it.
        return
    if len(shape) != 4:
        raise click.ClickException(
            f"{model_file}: the model takes inputs of shape {list(shape)}, not images "
            "[N, height, width, channels]; the zoo serves image classifiers"
        )
    if any(d not in (None, size) for d, size in zip(shape[1:], images.shape[1:])):
        raise click.ClickException(
            f"{model_file}: the model takes images of shape {list(shape[1:])}, but {dataset} "
            f"test images are {list(images.shape[1:])}; name the model's data set with "
            f"--dataset ({', '.join(sorted(DATASETS))})"
        )


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


def default_entry_name(model_file):
    """The entry name `export` uses without --name.

    Args:
        model_file: the exported .keras file.

    Returns:
        For a file named model.keras, its folder's name (a run folder or a zoo entry); else the
        file's name without its suffix.
    """
    if model_file.name == MODEL_FILE:
        return model_file.resolve().parent.name
    return model_file.stem


def parity_images(dataset, data_dir):
    """Up to 1,000 test images of a data set for the export's parity checks, and their origin."""
    from tfjsigr import data
    from tfjsigr.zoo.export import MAX_PARITY_IMAGES

    with user_errors():
        images, _, description = data.load_dataset(dataset, "test", data_dir=data_dir)
    return images[:MAX_PARITY_IMAGES], {"test": description}


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
