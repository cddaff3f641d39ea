"""`tfjsigr explain`: adversarial explanations of one image as a PNG grid."""

import click

from tfjsigr.cli.errors import user_errors
from tfjsigr.cli.group import cli

MAX_STEPS = 10_000


@cli.command()
@click.argument("model", type=click.Path())
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--target", "targets", type=int, multiple=True,
              help="Class to explain toward (repeatable) [default: every class].")  # fmt: skip
@click.option("--rho", type=click.FloatRange(0, 1, min_open=True), default=0.1, show_default=True,
              help="RMS bound on the change, pixels in [0, 1]: in (0, 1].")  # fmt: skip
@click.option("--steps", type=click.IntRange(1, MAX_STEPS), default=35, show_default=True,
              help="Descent steps.")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False), default="explanation.png",
              show_default=True, help="PNG grid to write (.png is appended if missing).")  # fmt: skip
def explain(model, image, targets, rho, steps, out):
    """Adversarial explanations of IMAGE (PNG, JPEG or .npy) by MODEL (.keras file or zoo entry folder).

    Changes the image, within an RMS budget rho, toward each target class by targeted descent
    on the cross-entropy, and writes a grid: the original, each explanation (titled with the
    target's probability before and after) and each difference.

    \b
    Examples:
      tfjsigr explain zoo/jr shirt.png --target 0 --out shirt_to_tshirt.png
      tfjsigr explain runs/jsigr/model.keras image.npy --rho 0.05
    """
    from tfjsigr.evaluation import explanations

    with user_errors():
        out, figures, classes, names = explanations.explain_file(
            model, image, out, targets, rho, steps
        )
    for target, (before, after) in zip(classes, figures):
        named = f"{target} ({names[target]})" if names and target < len(names) else target
        click.echo(f"target {named}: probability {before:.3f} -> {after:.3f} (RMS <= {rho:g})")
    click.echo(f"wrote {out}")
