"""`tfjsigr explain`: adversarial explanations of one image as a PNG grid."""

import pathlib

import click
import numpy as np

from tfjsigr.cli.errors import load_keras_model, resolve_model_path, user_errors
from tfjsigr.cli.group import cli


@cli.command()
@click.argument("model", type=click.Path())
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--target", "targets", type=int, multiple=True,
              help="Class to explain toward (repeatable) [default: every class].")  # fmt: skip
@click.option("--rho", type=float, default=0.1, show_default=True,
              help="RMS bound on the change, pixels in [0, 1].")  # fmt: skip
@click.option("--steps", type=int, default=35, show_default=True, help="Descent steps.")
@click.option("--out", type=click.Path(dir_okay=False), default="explanation.png",
              show_default=True, help="PNG grid to write (.png is appended if missing).")  # fmt: skip
def explain(model, image, targets, rho, steps, out):
    """Adversarial explanations of IMAGE (PNG or NPY) by MODEL (.keras file or zoo entry folder).

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
    _, model_file = resolve_model_path(model)
    keras_model = load_keras_model(model_file)
    with user_errors():
        pixels = conform_image(read_image(image_path), input_shape(keras_model), image_path)
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


def read_image(path):
    """Pixels of a PNG (scaled to [0, 1]) or an NPY file (taken as is), as float32.

    Raises:
        ValueError: the file is not a readable PNG or NPY array.
    """
    if path.suffix.lower() == ".npy":
        try:
            return np.asarray(np.load(path, allow_pickle=False), dtype=np.float32)
        except (ValueError, OSError, TypeError, EOFError) as error:
            raise ValueError(f"{path}: not a readable NPY array ({error})") from None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            pixels = np.asarray(opened)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path}: not a readable PNG image ({error})") from None
    scale = 65535.0 if pixels.dtype == np.uint16 else 255.0
    return pixels.astype(np.float32) / (scale if pixels.dtype != bool else 1.0)


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


def conform_image(pixels, shape, path):
    """The image as [H, W, C] for a model on `shape`: adds a gray channel, drops a batch of one.

    Raises:
        ValueError: the shape does not fit the model, or pixels outside [0, 1].
    """
    if pixels.ndim == 4 and pixels.shape[0] == 1:
        pixels = pixels[0]
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim == 3 and pixels.shape[-1] == 4 and shape[-1] == 3:
        pixels = pixels[..., :3]  # PNG alpha channel.
    if pixels.shape != tuple(shape):
        raise ValueError(
            f"{path}: image shape {pixels.shape} does not fit the model's input {shape}"
        )
    if not np.all(np.isfinite(pixels)) or pixels.min() < 0.0 or pixels.max() > 1.0:
        raise ValueError(f"{path}: pixel values must be in [0, 1]")
    return pixels
