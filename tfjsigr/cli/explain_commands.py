"""`tfjsigr explain`: adversarial explanations of one image as a PNG grid."""

import pathlib

import click

from tfjsigr.cli.errors import load_keras_model, resolve_model_path, user_errors
from tfjsigr.cli.group import cli
from tfjsigr.cli.images import read_image

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
    from tfjsigr import explanations

    image_path = pathlib.Path(image)
    if not image_path.is_file():
        raise click.ClickException(f"image not found: {image_path}")
    out = png_path(out)
    if out.resolve() == image_path.resolve():
        raise click.ClickException(f"--out {out} is the input image; choose another file")
    _, model_file = resolve_model_path(model)
    keras_model = load_keras_model(model_file)
    with user_errors():
        pixels = read_image(image_path, input_shape(keras_model))
        try:
            _, _, figures = explanations.explanation_grid(
                keras_model, pixels, rho, out, targets=targets or None, steps=steps
            )
        except explanations.NonFiniteOutputs as error:
            raise ValueError(f"{model_file}: {error}") from None
    classes = targets or range(len(figures))
    for target, (before, after) in zip(classes, figures):
        click.echo(f"target {target}: probability {before:.3f} -> {after:.3f} (RMS <= {rho:g})")
    click.echo(f"wrote {out}")


def png_path(out):
    """The --out path with ".png" appended unless it ends in .png (matplotlib would add it).

    Raises:
        click.ClickException: no file name, or an existing part of its folder path is a file.
    """
    out = pathlib.Path(out)
    if not out.name:
        raise click.ClickException("--out: expected a file name, got a folder path")
    if out.suffix.lower() != ".png":
        out = out.with_name(out.name + ".png")
    existing = next(parent for parent in out.parents if parent.exists())
    if not existing.is_dir():
        raise click.ClickException(f"--out {out}: {existing} is a file, not a folder")
    return out


def input_shape(model):
    """(H, W, C) the model takes (a RegularizedModel's backbone's)."""
    from tfjsigr.zoo.export import serving_backbone

    try:
        shape = tuple(serving_backbone(model).input_shape)
    except (AttributeError, ValueError):
        raise ValueError("cannot tell the model's input shape") from None
    if len(shape) != 4 or None in shape[1:]:
        raise ValueError(f"expected a model on [N, H, W, C] images, got input shape {shape}")
    return shape[1:]
