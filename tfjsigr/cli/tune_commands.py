"""`tfjsigr tune RECIPE`: multi-objective search of a recipe's `[tune]` table on Optuna."""

import click

from tfjsigr.cli.errors import user_errors
from tfjsigr.cli.group import cli
from tfjsigr.data.datasets import SOURCES
from tfjsigr.tuning import ROBUSTNESS


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--trials", type=click.IntRange(0), default=8, show_default=True,
              help="Finished trials the study should hold (earlier and other workers' count).")  # fmt: skip
@click.option("--quick", is_flag=True,
              help="Train each trial with the recipe's [quick] overrides; evaluate on 200 images.")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder: study.db, trials/, front.png, pareto.md, best_recipe.toml "
                   "[default: runs/tune-<name>].")  # fmt: skip
@click.option("--study-name", default=None,
              help="Workers with the same study name and storage share one study "
                   "[default: <name>-<robustness>[-quick]].")  # fmt: skip
@click.option("--storage", default=None,
              help="Optuna storage URL, e.g. postgresql://user@host/db to share the study across "
                   "machines [default: sqlite:///OUT/study.db].")  # fmt: skip
@click.option("--robustness", type=click.Choice(ROBUSTNESS), default="autoattack", show_default=True,
              help="Robust objective at L-inf eps 0.1: fast AutoAttack, PGD-20, or MI-FGSM "
                   "transferred from an ensemble of plain models (the J-SIGR paper's protocol).")  # fmt: skip
@click.option("--min-clean", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Clean-accuracy floor of best_recipe.toml (the most robust trial above it).")  # fmt: skip
@click.option("--prune-below", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Prune a trial whose training accuracy is below this after an epoch.")  # fmt: skip
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Seed of the sampler [default: a fresh one per process, so workers differ].")  # fmt: skip
@click.option("--baseline", "baselines", multiple=True, type=click.Path(dir_okay=False),
              help="Recipe drawn as a reference point (trained once, same settings); repeatable.")  # fmt: skip
@click.option("--eval-examples", type=click.IntRange(1), default=None,
              help="Test images each trial is evaluated on [default: the recipe's].")  # fmt: skip
@click.option("--source", type=click.Choice(SOURCES), default="auto", show_default=True,
              help="Where the data may come from.")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of IDX or npz files; all the data then comes from it.")  # fmt: skip
def tune(recipe, trials, quick, out, study_name, storage, robustness, min_clean, prune_below,
         seed, baselines, eval_examples, source, data_dir):  # fmt: skip
    """Search the weights a RECIPE's [tune] table declares: clean accuracy, robustness, cost.

    A multi-objective Optuna study (TPE) trains one recipe per trial and measures clean and
    robust accuracy and training seconds. It writes the front (front.png), the Pareto set
    (pareto.md), every trial (trials.json) and best_recipe.toml, which `tfjsigr train` runs as
    it is. Run it again to resume: finished trials are kept, a killed trial is retried in its
    folder once its heartbeat is a minute old.

    \b
    Examples:
      tfjsigr tune zoo/recipes/jsigr.toml --trials 8 --quick
      tfjsigr tune zoo/recipes/jsigr.toml --robustness transfer --min-clean 0.85
      tfjsigr tune zoo/recipes/jr.toml --storage postgresql://me@db/tune --study-name jr  # on each machine
    """
    from tfjsigr.tuning import search_space, study

    with user_errors():
        space = search_space.load_search_space(recipe)
        options = study.TuneOptions(
            trials=trials, quick=quick, robustness=robustness, min_clean=min_clean,
            prune_below=prune_below, seed=seed, storage=storage, study_name=study_name,
            eval_examples=eval_examples, source=source, data_dir=data_dir, baselines=baselines,
        )  # fmt: skip
        result = study.tune(space, out or study.default_run_dir(space), options)
    for label, path in result.files.items():
        click.echo(f"wrote {path} ({label})")
    best = result.best
    if best is None:
        click.echo(f"no trial reached clean accuracy {min_clean}: no best_recipe.toml")
    else:
        click.echo(
            f"best (clean >= {min_clean}): trial {best['number']}, clean {best['clean']:.3f}, "
            f"{robustness} {best['robust']:.3f}, {best['seconds']:.0f} s; "
            f"train it with: tfjsigr train {result.files['best_recipe']}"
        )
