"""Adversarial explanations (Woods et al., paper 6): RMS-bounded targeted descent, PNG grids.

An explanation toward class k is the image changed, within a root-mean-square budget rho, to
make the model predict k: what the model "thinks" distinguishes k. On a robust model the
change is visible and semantic; on a fragile one it is noise.
"""

import pathlib

import numpy as np
import tensorflow as tf

from tfjsigr import io

DEFAULT_RHO = 0.1
DEFAULT_STEPS = 35
TOTAL_STEP_FACTOR = 5.0  # The steps' RMS lengths add up to 5 rho (SPEC.md).


class NonFiniteOutputs(ValueError):
    """The model's outputs are NaN or infinite (typically: corrupt weights)."""


def rms(delta):
    """Per-example root mean square over every axis but the first: [N, ...] -> [N]."""
    delta = tf.convert_to_tensor(delta, tf.float32)
    return tf.sqrt(tf.reduce_mean(tf.square(tf.reshape(delta, [tf.shape(delta)[0], -1])), axis=1))


def adversarial_explanation(model, images, target_class, rho=DEFAULT_RHO, steps=DEFAULT_STEPS):
    """Targeted descent on the cross-entropy toward `target_class` under an RMS bound.

    Each of `steps` steps moves delta by 5 rho / steps (in RMS) along the normalized
    gradient of CE(f(clip(x + delta)), target); when RMS(delta) exceeds rho, delta is scaled
    back onto the RMS ball; x + delta is clipped to [0, 1] (which only shrinks delta).

    Args:
        model: a Keras model (or `RegularizedModel`) mapping images in [0, 1] to logits.
        images: one image [H, W, C] or a batch [N, H, W, C], float in [0, 1].
        target_class: an int, or one int per image.
        rho: the RMS bound on the change, in (0, 1].
        steps: number of descent steps (>= 1).

    Returns:
        The explanations, float32 in [0, 1], shaped like `images`.

    Raises:
        ValueError: bad rho, steps, images or target classes (not in [0, classes)).
        NonFiniteOutputs: the model's outputs on the images are NaN or infinite.
    """
    x, single = _as_batch(images)
    _check_rho(rho)
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps}")
    targets = _targets(target_class, len(x))
    classes = _probabilities(model, x).shape[-1]
    if targets.min() < 0 or targets.max() >= classes:
        raise ValueError(f"target classes must be in [0, {classes - 1}], got {target_class!r}")
    explanation = _descend(model, tf.constant(x), tf.constant(targets), float(rho), int(steps))
    explanation = explanation.numpy()
    return explanation[0] if single else explanation


def _descend(model, x, targets, rho, steps):
    step_size = TOTAL_STEP_FACTOR * rho / steps
    delta = tf.zeros_like(x)
    shape = [-1] + [1] * (len(x.shape) - 1)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(delta)
            logits = tf.cast(
                model(tf.clip_by_value(x + delta, 0.0, 1.0), training=False), tf.float32
            )
            loss = tf.reduce_sum(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            )
        gradient = tape.gradient(loss, delta)
        direction = gradient / tf.reshape(tf.maximum(rms(gradient), 1e-12), shape)
        delta = delta - step_size * direction
        scale = tf.minimum(1.0, rho / tf.maximum(rms(delta), 1e-12))
        delta = delta * tf.reshape(scale, shape)
        delta = tf.clip_by_value(x + delta, 0.0, 1.0) - x
    return x + delta


def _check_rho(rho):
    # The RMS of a change to pixels in [0, 1] is at most 1: larger bounds are typos.
    if not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1] (an RMS of pixels in [0, 1]), got {rho}")


def _as_batch(images):
    x = np.asarray(images, dtype=np.float32)
    if x.ndim not in (3, 4) or x.size == 0:
        raise ValueError(f"images must be [H, W, C] or [N, H, W, C], got shape {x.shape}")
    if not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0:
        raise ValueError("image pixel values must be finite and in [0, 1]")
    return (x[None], True) if x.ndim == 3 else (x, False)


def _targets(target_class, count):
    targets = np.asarray(target_class)
    if targets.ndim == 0:
        targets = np.full(count, targets)
    if targets.shape != (count,) or not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"target_class must be an int or {count} ints, got {target_class!r}")
    return targets.astype(np.int32)


def explanation_grid(model, image, rho=DEFAULT_RHO, path="explanations.png", targets=None,
                     class_names=None, steps=DEFAULT_STEPS):  # fmt: skip
    """Writes a PNG grid: the original and the explanation toward each class, their differences.

    The top row shows the original (titled with its prediction) and each explanation (titled
    with the target and its probability before and after); the bottom row the difference
    explanation - original on a shared symmetric color scale, with a colorbar.

    Args:
        model: a Keras model mapping images in [0, 1] to logits.
        image: one image [H, W, C] in [0, 1].
        rho: the RMS bound, in (0, 1].
        path: the PNG file to write (its folder is created), as named: no suffix is added.
        targets: the target classes (default: every class).
        class_names: optional names of the classes, for the titles.
        steps: descent steps.

    Returns:
        (path, explanations [T, H, W, C], probabilities of each target before and after [T, 2]).

    Raises:
        ValueError: bad image, rho or targets.
        NonFiniteOutputs: the model's outputs are NaN or infinite.
    """
    x, single = _as_batch(image)
    if not single:
        raise ValueError(f"explanation_grid takes one image [H, W, C], got shape {np.shape(image)}")
    _check_rho(rho)
    probabilities = _probabilities(model, x)[0]
    classes = len(probabilities)
    targets = list(range(classes)) if targets is None else [int(t) for t in targets]
    if not targets or any(t < 0 or t >= classes for t in targets):
        raise ValueError(f"targets must be classes in [0, {classes - 1}], got {targets}")
    explanations = adversarial_explanation(
        model, np.repeat(x, len(targets), axis=0), np.asarray(targets), rho, steps
    )
    after = _probabilities(model, explanations)[np.arange(len(targets)), targets]
    figures = np.stack([probabilities[targets], after], axis=1)
    names = class_names or [str(k) for k in range(classes)]
    predicted = int(np.argmax(probabilities))
    title = f"original\n{names[predicted]} p {probabilities[predicted]:.2f}"
    _plot(x[0], title, explanations, targets, figures, names, rho, pathlib.Path(path))
    return pathlib.Path(path), explanations, figures


def _probabilities(model, x):
    logits = tf.cast(model(tf.constant(x), training=False), tf.float32)
    probabilities = tf.nn.softmax(logits).numpy()
    if not np.all(np.isfinite(probabilities)):
        raise NonFiniteOutputs(
            "the model's outputs are NaN or infinite on the image (are its weights corrupt?)"
        )
    return probabilities


def _plot(original, title, explanations, targets, figures, names, rho, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = len(targets) + 1
    fig, axes = plt.subplots(
        2, columns, figsize=(1.6 * columns + 1.0, 3.8), squeeze=False, layout="constrained"
    )
    differences = explanations - original[None]
    limit = max(float(np.abs(differences).max()), 1e-6)
    _show(axes[0, 0], original, title)
    axes[1, 0].axis("off")
    axes[1, 0].text(0.5, 0.5, f"difference\nRMS <= {rho:g}", ha="center", va="center")
    for column, (target, explanation, (before, after)) in enumerate(
        zip(targets, explanations, figures), start=1
    ):
        _show(axes[0, column], explanation, f"-> {names[target]}\np {before:.2f} -> {after:.2f}")
        shown = axes[1, column].imshow(
            differences[column - 1].mean(axis=-1), cmap="RdBu_r", vmin=-limit, vmax=limit
        )
        axes[1, column].axis("off")
    fig.colorbar(shown, ax=axes[1, :].tolist(), shrink=0.8, label="explanation - original")
    path.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(path) as temporary:  # At `path` exactly, whatever its suffix.
        fig.savefig(temporary, dpi=100, format="png")
    plt.close(fig)


def _show(axis, image, title):
    gray = image.shape[-1] == 1
    axis.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None, vmin=0.0, vmax=1.0)
    axis.set_title(title, fontsize=8)
    axis.axis("off")


def png_path(out):
    """`out` with ".png" appended unless it ends in .png (matplotlib would add it).

    Raises:
        ValueError: no file name, or an existing part of its folder path is a file.
    """
    out = pathlib.Path(out)
    if not out.name:
        raise ValueError("out: expected a file name, got a folder path")
    if out.suffix.lower() != ".png":
        out = out.with_name(out.name + ".png")
    existing = next(parent for parent in out.parents if parent.exists())
    if not existing.is_dir():
        raise ValueError(f"out {out}: {existing} is a file, not a folder")
    return out


def model_image_shape(model):
    """(H, W, C) of the images a model (a RegularizedModel's backbone) takes."""
    from tfjsigr.zoo.export import model_input_shape

    shape = model_input_shape(model)
    if shape is None:
        raise ValueError("cannot tell the model's input shape")
    if len(shape) != 4 or None in shape[1:]:
        raise ValueError(f"expected a model on [N, H, W, C] images, got input shape {shape}")
    return tuple(shape[1:])


def explain_file(model, image, out="explanation.png", targets=None, rho=DEFAULT_RHO, steps=DEFAULT_STEPS):
    """Adversarial explanations of an image file by a saved model, as a PNG grid.

    Args:
        model: a .keras file, run folder or zoo entry.
        image: a PNG, JPEG (anything Pillow reads) or .npy image.
        out: the PNG to write (".png" appended if missing); not the input image.
        targets: classes to explain toward [default: every class].
        rho: RMS bound on the change, pixels in [0, 1].
        steps: descent steps.

    The titles name the classes as the model's run or card recorded them (ids otherwise).

    Returns:
        (the PNG path, [(probability before, after) per target], the targets, the class names
        or None).

    Raises:
        FileNotFoundError, ValueError: a missing file, an unloadable model or image, or a model
            with NaN outputs (one line naming the file).
    """
    from tfjsigr.data.image_files import read_image
    from tfjsigr.zoo import layout

    image = pathlib.Path(image)
    if not image.is_file():
        raise FileNotFoundError(f"image not found: {image}")
    out = png_path(out)
    if out.resolve() == image.resolve():
        raise ValueError(f"out {out} is the input image; choose another file")
    keras_model = layout.load_model(model)
    pixels = read_image(image, model_image_shape(keras_model))
    names = recorded_class_names(model)
    try:
        _, _, figures = explanation_grid(
            keras_model, pixels, rho, out, targets=targets or None, class_names=names, steps=steps
        )
    except NonFiniteOutputs as error:
        raise ValueError(f"{layout.model_file(model)}: {error}") from None
    return out, figures, list(targets or range(len(figures))), names


def recorded_class_names(model):
    """The class names a model's run or card recorded with its data, or None."""
    from tfjsigr.zoo import layout

    return list(layout.class_names(layout.read_record(model).data)) or None
