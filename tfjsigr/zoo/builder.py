"""`build`: recipes trained, evaluated and exported into a zoo, with a leaderboard.

Every recipe is checked (its architecture built once) before anything trains. Each data set is
resolved and loaded once, before the first model trains, so every model of a build trains and
is evaluated on the same data, whatever appears on the machine meanwhile. A model that fails
is reported as "FAILED name: reason" and the others are still built.
"""

import dataclasses
import pathlib
import sys

from tqdm import tqdm

from tfjsigr.checks import is_user_error, one_line
from tfjsigr.data.source import SAMPLE_ORIGIN
from tfjsigr.zoo import layout

DEFAULT_ZOO = ("plain", "igr", "jr", "jsigr", "fgsm_rs", "pgd_at")


@dataclasses.dataclass
class BuildResult:
    """What `build` did: a leaderboard row per exported model, the names of the failed ones."""

    rows: list
    failures: list
    recipes: int

    def leaderboard(self):
        return leaderboard(self.rows)


def build(
    recipes=(),
    zoo_dir=layout.DEFAULT_ZOO_DIR,
    runs_dir=layout.DEFAULT_RUNS_DIR,
    quick=None,
    data_dir=None,
    source="auto",
    dataset=None,
):
    """Trains, evaluates and exports recipes into a zoo (a failed model does not stop the others).

    Args:
        recipes: recipe files or names (looked up in <zoo>/recipes, then the checkout's);
            default: the default zoo (plain, igr, jr, jsigr, fgsm_rs, pgd_at).
        zoo_dir: the zoo to export into.
        runs_dir: the folder of the training runs (resumed when interrupted); apart from the zoo.
        quick: apply the recipes' [quick] overrides; None: quick when the data is the shipped
            sample.
        data_dir, source: where a named data set comes from (see `tfjsigr.data.source`).
        dataset: a data set (name or path) for every recipe instead of their own.

    Returns:
        A `BuildResult`.

    Raises:
        FileNotFoundError, ValueError: a recipe not found, recipes sharing a name, runs and zoo
            folders inside one another, or a bad data folder (before anything trains).
    """
    from tfjsigr.data.datasets import check_data_dir
    from tfjsigr.pipeline.runs import DataCache

    paths = recipe_paths(recipes, zoo_dir)
    check_separate_folders(zoo_dir, runs_dir)
    check_data_dir(data_dir, source)
    loaded, failures = valid_recipes(paths, runs_dir, DataCache(data_dir, source, dataset))
    rows = []
    for recipe, data in tqdm(loaded, desc="zoo build", unit="model", dynamic_ncols=True):
        try:
            recipe_quick = data.info.origin == SAMPLE_ORIGIN if quick is None else quick
            rows.append(build_entry(recipe, recipe_quick, zoo_dir, runs_dir, data))
        except Exception as error:  # noqa: BLE001 (one failed model must not stop the others)
            failures.append(report_failure(recipe.name, error))
            _reset_keras_state()
    return BuildResult(rows, failures, len(paths))


def recipe_paths(recipes, zoo_dir):
    """Recipe files from paths or names (looked up in <zoo>/recipes, then the checkout's)."""
    folders = [pathlib.Path(zoo_dir) / layout.RECIPES_DIR, layout.CHECKOUT_RECIPES]
    paths = []
    for recipe in recipes or DEFAULT_ZOO:
        path = pathlib.Path(recipe)
        if not path.is_file():
            candidates = [folder / f"{recipe}.toml" for folder in folders]
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                raise FileNotFoundError(_not_found(recipe, candidates))
        paths.append(path)
    return paths


def _not_found(recipe, candidates):
    """Why a recipe was not found: what its path is instead, or the places tried."""
    path = pathlib.Path(recipe)
    if (path / layout.CARD_FILE).is_file():
        return f"{path} is a zoo entry, not a recipe (a .toml file or a recipe name)"
    if path.is_dir():
        return f"{path} is a folder, not a recipe (a .toml file or a recipe name)"
    tried = ", ".join(str(c) for c in [path, *candidates])
    return f"recipe {recipe!r} not found; tried {tried}"


def check_separate_folders(zoo_dir, runs_dir):
    """ValueError unless the runs folder and the zoo are apart (neither holds the other)."""
    zoo_path, runs_path = pathlib.Path(zoo_dir).resolve(), pathlib.Path(runs_dir).resolve()
    if zoo_path == runs_path or zoo_path in runs_path.parents or runs_path in zoo_path.parents:
        raise ValueError(
            f"runs folder {runs_dir} and zoo {zoo_dir}: the training runs and the zoo need "
            "separate folders, neither inside the other"
        )


def valid_recipes(paths, runs_dir, cache):
    """([(recipe, its data)], names of failed ones): every recipe loaded, its data loaded, and
    checked before anything trains.

    An invalid recipe fails alone (reported as FAILED); recipes sharing a name fail the build.
    """
    from tfjsigr.pipeline import recipes

    loaded, failures = [], []
    for path in paths:
        try:
            loaded.append(recipes.load_recipe(path))
        except (OSError, ValueError) as error:
            failures.append((path.stem, error))
    refuse_shared_names(loaded)
    valid = []
    for recipe in loaded:
        try:
            data = cache.get(recipe)
            check_buildable(recipe, runs_dir, data.info)
            valid.append((recipe, data))
        except Exception as error:  # noqa: BLE001 (one invalid recipe must not stop the others)
            failures.append((recipe.name, error))
    return valid, [report_failure(name, error) for name, error in failures]


def refuse_shared_names(recipes):
    """ValueError listing the names several recipes share (each would overwrite the other)."""
    sources = {}
    for recipe in recipes:
        sources.setdefault(recipe.name, []).append(recipe.source)
    shared = [f"{name} ({', '.join(files)})" for name, files in sources.items() if len(files) > 1]
    if shared:
        raise ValueError(
            f"recipes share a name (their runs and zoo entries would overwrite each other): "
            f"{'; '.join(shared)}"
        )


def check_buildable(recipe, runs_dir, info):
    """ValueError unless the recipe's entry name, run folder and architecture are usable.

    The architecture is built once for the data set's images (then the Keras session cleared):
    some arguments of the right type, such as `filters = [0]`, only fail there.
    """
    import keras

    from tfjsigr.pipeline import runs

    try:
        layout.check_name(recipe.name)
    except ValueError as error:
        raise ValueError(f"{recipe.source}: key 'name': {error}") from None
    runs.check_run_dir(pathlib.Path(runs_dir) / recipe.name)
    try:
        recipe.build_architecture(info.image_shape, info.num_classes)
    finally:
        keras.backend.clear_session()


def report_failure(name, error):
    """Prints `FAILED name: reason` (the type too for errors a user does not cause, see
    `checks.is_user_error`); returns the name."""
    reason = one_line(error)
    if not is_user_error(error):
        reason = f"{type(error).__name__}: {reason[:500]}"
    tqdm.write(f"FAILED {name}: {reason}", file=sys.stdout)
    return name


def _reset_keras_state():
    """Starts a fresh Keras session after a failed model: Keras can leave a name scope open
    when building a model fails, which would make every later model of the build fail too."""
    import keras

    keras.backend.clear_session()


def build_entry(recipe, quick, zoo_dir, runs_dir, data):
    """Trains one recipe on its loaded data, exports it and returns its leaderboard row."""
    from tfjsigr.pipeline import runs
    from tfjsigr.zoo.export import MAX_PARITY_IMAGES, export_entry

    recipe = recipe.quick_variant() if quick else recipe
    tqdm.write(f"=== {recipe.name} ({'quick' if quick else 'full'})", file=sys.stdout)
    result = runs.train(recipe, pathlib.Path(runs_dir) / recipe.name, verbose=2, data=data)
    metrics = {**result.metrics, "quick": quick}
    export_entry(
        result.model, zoo_dir, recipe.name, recipe.to_dict(), metrics,
        data.x_test[:MAX_PARITY_IMAGES], metrics["data"],
    )  # fmt: skip
    return {"model": recipe.name, **metrics}


def leaderboard(rows):
    """A plain-text table: model, clean, fast AutoAttack and PGD accuracy, ||J||_F, time."""
    if not rows:
        return "no models built"
    pgd, autoattack = rows[0]["pgd"], rows[0]["autoattack"]
    lines = [
        f"AutoAttack ({autoattack['version']}: APGD-CE + APGD-T) and PGD-{pgd['steps']} (step "
        f"{pgd['step_size']:.4g}) at L-inf eps {pgd['eps']:.4g}, seed {pgd['seed']}, seeded test subsets of "
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
