"""`tfjsigr evaluate MODEL` and `tfjsigr zoo evaluate [DIR]`: robustness reports with plots."""

import functools

import click

from tfjsigr.cli.errors import user_errors
from tfjsigr.cli.group import cli, zoo
from tfjsigr.data.datasets import SOURCES
from tfjsigr.evaluation.config import AUTOATTACK_VERSIONS, TRANSFER_PROTOCOLS

MAX_SEED = 2**31 - 1


def _options(function):
    options = [
        click.option("--out", type=click.Path(file_okay=False), default=None,
                     help="Report directory (default: evaluation/<name>, or DIR/report for a zoo)."),
        click.option("--samples", type=int, default=1000, show_default=True,
                     help="Test images to evaluate on (the first N)."),
        click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
                     help="Seed of every attack."),
        click.option("--dataset", default=None,
                     help="Data set to evaluate on (tfds name, .npz, IDX or image folder) "
                          "[default: the one each model's run or card records]."),
        click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                     help="Folder of IDX or npz files of a named data set."),
        click.option("--source", type=click.Choice(SOURCES), default=None,
                     help="Where a named data set may come from [default: as recorded]."),
        click.option("--eps", default=None,
                     help="Headline L-inf radius in pixel units, e.g. 0.1 or 8/255 "
                          "[default: the data's: 0.1 grayscale, 8/255 colour]."),
        click.option("--no-guards", is_flag=True, help="Skip the gradient-masking guards."),
        click.option("--autoattack", type=click.Choice(AUTOATTACK_VERSIONS), default="standard",
                     show_default=True,
                     help="AutoAttack version of the headline figure (fast: APGD-CE and APGD-T only)."),
    ]  # fmt: skip
    return functools.reduce(lambda f, option: option(f), reversed(options), function)


def _echo(result):
    for line in result.card_updates:
        click.echo(line)
    for line in result.leaderboard_lines():
        click.echo(line)
    click.echo(f"wrote {result.json_path} and {result.markdown_path} in {result.seconds:.0f} s")


def _log(line):
    click.echo(line, err=True)


@cli.command()
@click.argument("model", type=click.Path(exists=True))
@_options
def evaluate(model, out, samples, seed, dataset, data_dir, source, eps, no_guards, autoattack):
    """Robustness and interpretability report of one MODEL (.keras file or zoo entry directory).

    The model is named as `tfjsigr export` names it: after its folder for a model.keras, else
    after the file; the report goes to evaluation/<name> unless --out says otherwise.
    """
    from tfjsigr.data.source import parse_eps
    from tfjsigr.evaluation import runner

    with user_errors():
        result = runner.evaluate_model_path(
            model, out, samples=samples, seed=seed, dataset=dataset, data_dir=data_dir,
            source=source, eps=None if eps is None else parse_eps(eps), guards=not no_guards,
            autoattack=autoattack, log=_log,
        )  # fmt: skip
    _echo(result)


@zoo.command("evaluate")
@click.argument("directory", type=click.Path(), default="zoo")
@_options
@click.option("--transfer-source", "transfer_sources", multiple=True, type=click.Path(exists=True),
              help="Extra model (.keras or entry dir) crafting transfer attacks only; repeatable.")  # fmt: skip
@click.option("--transfer-protocol", type=click.Choice(TRANSFER_PROTOCOLS), default=None,
              help="Add the J-SIGR paper's transfer table: MI-FGSM (10 steps of eps/10, momentum 1) "
                   "on the ensemble of the --transfer-source models, evaluated on every entry.")  # fmt: skip
@click.option("--allow-mixed", is_flag=True,
              help="Rank entries trained on different data sets together, on the first entry's "
                   "data (each marked in the leaderboard).")  # fmt: skip
def zoo_evaluate(directory, out, samples, seed, dataset, data_dir, source, eps, no_guards,
                 autoattack, transfer_sources, transfer_protocol, allow_mixed):  # fmt: skip
    """Evaluate every zoo entry: report, transfer matrix, leaderboard, plots and card updates.

    Every entry is evaluated on the data set its card records; entries of different data sets
    are refused unless --allow-mixed.
    """
    from tfjsigr.data.source import parse_eps
    from tfjsigr.evaluation import runner

    with user_errors():
        result = runner.evaluate_zoo_dir(
            directory, out, transfer_sources=transfer_sources, transfer_protocol=transfer_protocol,
            samples=samples, seed=seed, dataset=dataset, data_dir=data_dir, source=source,
            eps=None if eps is None else parse_eps(eps), allow_mixed=allow_mixed,
            guards=not no_guards, autoattack=autoattack, log=_log,
        )  # fmt: skip
    _echo(result)
