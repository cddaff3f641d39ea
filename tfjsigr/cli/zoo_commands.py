"""`tfjsigr zoo build|list|verify`: the default zoo from its recipes, its index, its checks."""

import pathlib

import click
from tqdm import tqdm

import tfjsigr
from tfjsigr.cli.errors import one_line, user_errors
from tfjsigr.cli.group import zoo
from tfjsigr.cli.training_commands import (
    DATA_SOURCES,
    DEFAULT_RUNS_DIR,
    DEFAULT_ZOO_DIR,
    export_to_zoo,
    load_recipe_for_cli,
    parity_images,
)
from tfjsigr.zoo.card import CARD_FILE

DEFAULT_ZOO = ("plain", "igr", "jr", "jsigr", "fgsm_rs", "pgd_at")
RECIPES_SUBDIR = "recipes"
CHECKOUT_RECIPES = pathlib.Path(tfjsigr.__file__).resolve().parents[1] / "zoo" / RECIPES_SUBDIR


def recipe_paths(recipes, zoo_dir):
    """Recipe files from paths or names (looked up in <zoo>/recipes, then the checkout's)."""
    folders = [pathlib.Path(zoo_dir) / RECIPES_SUBDIR, CHECKOUT_RECIPES]
    paths = []
    for recipe in recipes or DEFAULT_ZOO:
        path = pathlib.Path(recipe)
        if not path.is_file():
            candidates = [folder / f"{recipe}.toml" for folder in folders]
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                raise click.ClickException(_not_found(recipe, candidates))
        paths.append(path)
    return paths


def _not_found(recipe, candidates):
    """Why a recipe was not found: what its path is instead, or the places tried."""
    path = pathlib.Path(recipe)
    if (path / CARD_FILE).is_file():
        return f"{path} is a zoo entry, not a recipe (a .toml file or a recipe name)"
    if path.is_dir():
        return f"{path} is a folder, not a recipe (a .toml file or a recipe name)"
    tried = ", ".join(str(c) for c in [path, *candidates])
    return f"recipe {recipe!r} not found; tried {tried}"


def full_data_available(dataset, data_dir, source):
    """Whether a data set exists beyond the shipped sample (data_dir, tfds, Debian)."""
    from tfjsigr import data

    if source == "sample":
        return False
    try:
        data.load_dataset(dataset, "test", source="full", data_dir=data_dir, download=False)
        return True
    except FileNotFoundError:
        return False


@zoo.command()
@click.argument("recipes", nargs=-1)
@click.option("--quick/--full", default=None,
              help="Quick: the recipes' [quick] overrides. Default: quick unless the full data is present.")  # fmt: skip
@click.option("--out", "zoo_dir", type=click.Path(file_okay=False), default=str(DEFAULT_ZOO_DIR),
              show_default=True, help="Zoo folder to build into.")  # fmt: skip
@click.option("--runs", "runs_dir", type=click.Path(file_okay=False), default=str(DEFAULT_RUNS_DIR),
              show_default=True, help="Folder of the training runs (checkpoints for resuming).")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of IDX or npz files; all the data then comes from it.")  # fmt: skip
@click.option("--source", type=click.Choice(DATA_SOURCES), default="auto", show_default=True,
              help="Where the data may come from.")  # fmt: skip
def build(recipes, quick, zoo_dir, runs_dir, data_dir, source):
    """Train and export RECIPES (names or .toml files; default: the whole default zoo).

    The default zoo is plain, igr, jr, jsigr, fgsm_rs and pgd_at on Fashion-MNIST. Each model
    is trained (resuming an interrupted run), evaluated (clean accuracy, PGD-20 L-inf eps 0.1,
    mean exact ||J||_F), exported to <out>/<name>/ and listed in a leaderboard. A model that
    fails (an invalid recipe, a diverged run, any error) is reported as "FAILED name: reason"
    and the others are still built; the command then exits nonzero. Every recipe is checked,
    its architecture built once, before anything trains; recipes that share a name, or a
    --runs folder that is or holds the zoo (or lies inside it), stop the command at once.

    \b
    Examples:
      tfjsigr zoo build --quick            # the default zoo in a few minutes on 2 CPU cores
      tfjsigr zoo build plain jsigr --full --data-dir ~/data/fashion-mnist
      tfjsigr zoo build my_recipe.toml --out my_zoo
    """
    from tfjsigr.data.datasets import check_data_dir

    paths = recipe_paths(recipes, zoo_dir)
    check_separate_folders(zoo_dir, runs_dir)
    with user_errors():
        check_data_dir(data_dir, source)
    parsed, failures = valid_recipes(paths, runs_dir)
    rows = []
    for recipe in tqdm(parsed, desc="zoo build", unit="model", dynamic_ncols=True):
        try:
            recipe_quick = quick
            if quick is None:
                recipe_quick = not full_data_available(recipe.dataset, data_dir, source)
            rows.append(build_entry(recipe, recipe_quick, zoo_dir, runs_dir, data_dir, source))
        except Exception as error:  # noqa: BLE001 (one failed model must not stop the others)
            failures.append(report_failure(recipe.name, error))
            reset_keras_state()
    click.echo(leaderboard(rows))
    if failures:
        raise click.ClickException(
            f"{len(failures)} of {len(paths)} models failed: {', '.join(failures)}"
        )


def check_separate_folders(zoo_dir, runs_dir):
    """Click error unless the runs folder and the zoo are apart (neither holds the other)."""
    zoo_path, runs_path = pathlib.Path(zoo_dir).resolve(), pathlib.Path(runs_dir).resolve()
    if zoo_path == runs_path or zoo_path in runs_path.parents or runs_path in zoo_path.parents:
        raise click.ClickException(
            f"--runs {runs_dir} and --out {zoo_dir}: the training runs and the zoo need "
            "separate folders, neither inside the other"
        )


def valid_recipes(paths, runs_dir):
    """(recipes, names of failed ones): every recipe loaded and checked before anything trains.

    An invalid recipe fails alone (reported as FAILED); recipes sharing a name fail the command.
    """
    loaded, failures = [], []
    for path in paths:
        try:
            loaded.append(load_recipe_for_cli(path))
        except click.ClickException as error:
            failures.append((path.stem, error))
    refuse_shared_names(loaded)
    valid = []
    for recipe in loaded:
        try:
            check_buildable(recipe, runs_dir)
            valid.append(recipe)
        except Exception as error:  # noqa: BLE001 (one invalid recipe must not stop the others)
            failures.append((recipe.name, error))
    return valid, [report_failure(name, error) for name, error in failures]


def refuse_shared_names(recipes):
    """Click error listing the names several recipes share (each would overwrite the other)."""
    sources = {}
    for recipe in recipes:
        sources.setdefault(recipe.name, []).append(recipe.source)
    shared = [f"{name} ({', '.join(files)})" for name, files in sources.items() if len(files) > 1]
    if shared:
        raise click.ClickException(
            f"recipes share a name (their runs and zoo entries would overwrite each other): "
            f"{'; '.join(shared)}"
        )


def check_buildable(recipe, runs_dir):
    """Click error unless the recipe's entry name, run folder and architecture are usable.

    The architecture is built once for the data set's images (then the Keras session cleared):
    some arguments of the right type, such as `filters = [0]`, only fail there.
    """
    import keras

    from tfjsigr import training
    from tfjsigr.data import get_spec
    from tfjsigr.zoo.export import check_name

    spec = get_spec(recipe.dataset)
    try:
        check_name(recipe.name)
    except ValueError as error:
        raise click.ClickException(f"{recipe.source}: key 'name': {one_line(error)}") from None
    with user_errors():
        training.check_run_dir(pathlib.Path(runs_dir) / recipe.name)
        try:
            recipe.build_architecture(spec.image_shape, spec.num_classes)
        finally:
            keras.backend.clear_session()


def report_failure(name, error):
    """Prints `FAILED name: reason` (the type too for unexpected errors); returns the name."""
    if isinstance(error, click.ClickException):
        reason = error.message
    else:
        reason = f"{type(error).__name__}: {one_line(error)[:500]}"
    tqdm.write(f"FAILED {name}: {reason}")
    return name


def reset_keras_state():
    """Starts a fresh Keras session after a failed model.

    Keras can leave a name scope open when building a model fails, which would make every later
    model of the build fail too.
    """
    import keras

    keras.backend.clear_session()


def build_entry(recipe, quick, zoo_dir, runs_dir, data_dir, source):
    """Trains one recipe, exports it and returns its leaderboard row."""
    from tfjsigr import training

    recipe = recipe.quick_variant() if quick else recipe
    tqdm.write(f"=== {recipe.name} ({'quick' if quick else 'full'})")
    with user_errors():
        result = training.train(
            recipe,
            pathlib.Path(runs_dir) / recipe.name,
            data_dir=data_dir,
            source=source,
            verbose=2,
        )
    metrics = {**result.metrics, "quick": quick}
    images, _ = parity_images(recipe.dataset, data_dir)
    export_to_zoo(
        result.model, zoo_dir, recipe.name, recipe.to_dict(), metrics, images, metrics["data"]
    )
    return {"model": recipe.name, **metrics}


def leaderboard(rows):
    """A plain-text table: model, clean, fast AutoAttack and PGD accuracy, ||J||_F, time."""
    if not rows:
        return "no models built"
    pgd, autoattack = rows[0]["pgd"], rows[0]["autoattack"]
    lines = [
        f"AutoAttack ({autoattack['version']}: APGD-CE + APGD-T) and PGD-{pgd['steps']} (step "
        f"{pgd['step_size']}) at L-inf eps {pgd['eps']}, seed {pgd['seed']}, seeded test subsets of "
        + ", ".join(sorted({str(r["eval_examples"]) for r in rows}))
        + " images (`tfjsigr zoo evaluate` runs the standard AutoAttack)",
        f"{'model':12} {'clean':>7} {'AA-fast':>8} {'PGD-20':>8} {'||J||_F':>8} {'train s':>8}",
    ]
    for row in rows:
        lines.append(
            f"{row['model']:12} {row['clean_accuracy']:7.3f} {row['autoattack_accuracy']:8.3f} "
            f"{row['pgd_accuracy']:8.3f} {row['mean_jacobian_norm']:8.2f} {row['train_seconds']:8.1f}"
        )
    return "\n".join(lines)


@zoo.command(name="list")
@click.argument("zoo_dir", required=False, default=str(DEFAULT_ZOO_DIR), type=click.Path())
def list_entries(zoo_dir):
    """List the entries of the zoo in ZOO_DIR [default: zoo] from its index.json.

    \b
    Examples:
      tfjsigr zoo list
      tfjsigr zoo list my_zoo
    """
    from tfjsigr.zoo.index import read_index

    check_not_an_entry(zoo_dir)
    with user_errors():
        entries = read_index(zoo_dir)
    if not entries:
        click.echo(f"{zoo_dir}: no entries (build some with: tfjsigr zoo build --quick)")
        return
    click.echo(
        f"{'name':12} {'version':>7} {'clean':>7} {'AA@0.1':>8} {'PGD-20':>8} {'||J||_F':>8}  created"
    )
    for entry in entries:
        metrics = entry.get("metrics", {})
        click.echo(
            f"{entry['name']:12} {entry.get('version', '?'):>7} {_figure(metrics, 'clean_accuracy', 3)} "
            f"{_figure(metrics, 'autoattack_accuracy', 3, 8)} "
            f"{_figure(metrics, 'pgd_accuracy', 3, 8)} {_figure(metrics, 'mean_jacobian_norm', 2, 8)}"
            f"  {entry.get('created') or ''}"
        )


def check_not_an_entry(zoo_dir):
    """Click error for a zoo entry given where a zoo is expected."""
    path = pathlib.Path(zoo_dir)
    if (path / CARD_FILE).exists():
        raise click.ClickException(
            f"{path} is a zoo entry (it holds {CARD_FILE}), not a zoo; its zoo is "
            f"{path.resolve().parent}"
        )


def _figure(metrics, key, digits, width=7):
    value = metrics.get(key)
    return f"{value:{width}.{digits}f}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


@zoo.command()
@click.argument("zoo_dir", required=False, default=str(DEFAULT_ZOO_DIR), type=click.Path())
def verify(zoo_dir):
    """Recompute every checksum and the ONNX/SavedModel parity of the zoo in ZOO_DIR [default: zoo].

    Exits nonzero and lists each problem when anything does not match.

    \b
    Examples:
      tfjsigr zoo verify
      tfjsigr zoo verify my_zoo
    """
    from tfjsigr.zoo.verify import verify_zoo

    if not pathlib.Path(zoo_dir).is_dir():
        raise click.ClickException(f"{zoo_dir}: no such zoo directory")
    check_not_an_entry(zoo_dir)
    with user_errors():
        problems = verify_zoo(zoo_dir)
    if problems:
        for problem in problems:
            click.echo(f"FAIL {one_line(problem)}", err=True)
        raise click.ClickException(f"{zoo_dir}: {len(problems)} problem(s) found")
    click.echo(f"{zoo_dir}: all entries verified")
