"""`tfjsigr zoo build|list|verify`: the default zoo from its recipes, its index, its checks."""

import click

from tfjsigr.cli.errors import one_line, user_errors
from tfjsigr.cli.group import zoo
from tfjsigr.data.datasets import SOURCES
from tfjsigr.zoo import layout


@zoo.command()
@click.argument("recipes", nargs=-1)
@click.option("--quick/--full", default=None,
              help="Quick: the recipes' [quick] overrides. Default: quick unless the full data is present.")  # fmt: skip
@click.option("--out", "zoo_dir", type=click.Path(file_okay=False),
              default=str(layout.DEFAULT_ZOO_DIR), show_default=True,
              help="Zoo folder to build into.")  # fmt: skip
@click.option("--runs", "runs_dir", type=click.Path(file_okay=False),
              default=str(layout.DEFAULT_RUNS_DIR), show_default=True,
              help="Folder of the training runs (checkpoints for resuming).")  # fmt: skip
@click.option("--dataset", default=None,
              help="Data set for every recipe instead of their own (tfds name, .npz, IDX or image folder).")  # fmt: skip
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of IDX or npz files of a named data set; all its data then comes from it.")  # fmt: skip
@click.option("--source", type=click.Choice(SOURCES), default="auto", show_default=True,
              help="Where a named data set may come from.")  # fmt: skip
def build(recipes, quick, zoo_dir, runs_dir, dataset, data_dir, source):
    """Train and export RECIPES (names or .toml files; default: the whole default zoo).

    The default zoo is plain, igr, jr, jsigr, fgsm_rs and pgd_at on Fashion-MNIST. Each data
    set is resolved and loaded once, before the first model trains. Each model
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
    from tfjsigr.zoo import builder

    with user_errors():
        result = builder.build(recipes, zoo_dir, runs_dir, quick, data_dir, source, dataset)
    click.echo(result.leaderboard())
    if result.failures:
        raise click.ClickException(
            f"{len(result.failures)} of {result.recipes} models failed: {', '.join(result.failures)}"
        )


@zoo.command(name="list")
@click.argument("zoo_dir", required=False, default=str(layout.DEFAULT_ZOO_DIR), type=click.Path())
def list_entries(zoo_dir):
    """List the entries of the zoo in ZOO_DIR [default: zoo] from its index.json.

    \b
    Examples:
      tfjsigr zoo list
      tfjsigr zoo list my_zoo
    """
    from tfjsigr.zoo import index

    with user_errors():
        layout.check_is_zoo_not_entry(zoo_dir)
        entries = index.read_index(zoo_dir)
    if not entries:
        click.echo(f"{zoo_dir}: no entries (build some with: tfjsigr zoo build --quick)")
        return
    click.echo(index.listing(entries))


@zoo.command()
@click.argument("zoo_dir", required=False, default=str(layout.DEFAULT_ZOO_DIR), type=click.Path())
def verify(zoo_dir):
    """Recompute every checksum and the ONNX/SavedModel parity of the zoo in ZOO_DIR [default: zoo].

    Exits nonzero and lists each problem when anything does not match.

    \b
    Examples:
      tfjsigr zoo verify
      tfjsigr zoo verify my_zoo
    """
    from tfjsigr.zoo.verify import verify_zoo

    with user_errors():
        problems = verify_zoo(zoo_dir)
    if problems:
        for problem in problems:
            click.echo(f"FAIL {one_line(problem)}", err=True)
        raise click.ClickException(f"{zoo_dir}: {len(problems)} problem(s) found")
    click.echo(f"{zoo_dir}: all entries verified")
