"""PNG figures of a report (Matplotlib, Agg): curves, transfer heatmap, saliency and examples."""

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from tfjsigr import io


def _save(figure, path):
    with io.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)
    return str(path)


def literal(text):
    """`text` as Matplotlib shows it verbatim: a name's `$` signs escaped, never math.

    Args:
        text: a model's name (any object: its str is taken).

    Returns:
        The string with each `$` escaped.
    """
    return str(text).replace("$", r"\$")


def _label(c, class_names=None):
    return str(class_names[c]) if class_names and 0 <= c < len(class_names) else str(c)


def _show(axis, image):
    """An image in [0, 1]: grayscale as such, colour as RGB."""
    gray = image.shape[-1] == 1
    axis.imshow(image[..., 0] if gray else image, cmap="gray" if gray else None, vmin=0, vmax=1)


def accuracy_curves(reports, path):
    """One panel per attack (AutoAttack first, UAP last): accuracy against eps, a line per model."""
    attacks = sorted({r["attack"] for report in reports for r in report["robust_accuracy"]})
    headline = ["autoattack"] if any(report.get("autoattack") for report in reports) else []
    panels = headline + attacks + ["sgd_uap"]
    sources = {"sgd_uap": "uap", "autoattack": "autoattack"}
    figure, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False, layout="constrained"
    )
    for axis, attack in zip(axes[0], panels):
        lines = []
        for report in reports:
            records = report.get(sources.get(attack, "robust_accuracy"), [])
            points = sorted((r["eps"], r["accuracy"]) for r in records if r["attack"] == attack)
            eps = [0.0] + [p[0] for p in points]
            accuracy = [report["clean_accuracy"]["value"]] + [p[1] for p in points]
            lines += axis.plot(eps, accuracy, marker="o")
        samples = reports[0]["samples"]
        if attack == "autoattack":
            samples = reports[0]["headline"]["samples"]
        axis.set_title(f"{attack.upper()} (L-inf), n={samples}, seed {reports[0]['seed']}")
        axis.set_xlabel("eps (L-inf radius, pixels in [0, 1])")
        axis.set_ylabel("accuracy")
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
    # Labels given explicitly: Matplotlib would leave out of the legend a name starting with "_".
    names = [literal(report["name"]) for report in reports]
    axes[0][-1].legend(lines, names, loc="upper right", fontsize=8)
    figure.suptitle("Accuracy under attack against eps")
    return _save(figure, path)


def transfer_heatmap(transfer, path):
    """One heatmap per attack: rows are source models, columns targets, cells accuracy."""
    names = list(transfer)
    size = len(transfer[names[0]]["targets"])
    figure, axes = plt.subplots(
        1,
        len(names),
        figsize=(6.2 * len(names) + 0.4 * size, 5 + 0.35 * size),
        squeeze=False,
        layout="constrained",
    )
    for axis, name in zip(axes[0], names):
        entry = transfer[name]
        matrix = np.asarray(entry["accuracy"])
        image = axis.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(
                j,
                i,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value < 0.6 else "black",
            )
        targets, sources = map(literal, entry["targets"]), map(literal, entry["sources"])
        axis.set_xticks(range(len(entry["targets"])), list(targets), rotation=45, ha="right")
        axis.set_yticks(range(len(entry["sources"])), list(sources))
        axis.set_xlabel("target (evaluated)")
        axis.set_ylabel("source (crafted on)")
        axis.set_title(
            f"{name.upper()} eps {entry['eps']}, n={entry['samples']} (diagonal: white-box)",
            fontsize=9,
        )
        figure.colorbar(image, ax=axis, label="target accuracy", fraction=0.046)
    return _save(figure, path)


def saliency_grid(images, labels, saliencies, path, method="gradient", class_names=None):
    """Rows are images: the clean image, then each model's saliency map.

    Args:
        images: (K, H, W, C) clean images.
        labels: (K,) labels.
        saliencies: {model name: (K, H, W) maps}.
        path: PNG path.
        method: saliency method named in the title.
        class_names: names of the classes, by id (ids when absent).
    """
    names = list(saliencies)
    rows, cols = len(images), len(names) + 1
    figure, axes = plt.subplots(
        rows, cols, figsize=(1.7 * cols, 1.7 * rows + 0.6), squeeze=False, layout="constrained"
    )
    for i in range(rows):
        _show(axes[i][0], images[i])
        axes[i][0].set_ylabel(_label(int(labels[i]), class_names), fontsize=8)
        for j, name in enumerate(names, 1):
            axes[i][j].imshow(saliencies[name][i], cmap="hot")
        for axis in axes[i]:
            axis.set_xticks([])
            axis.set_yticks([])
    for j, title in enumerate(["clean image"] + [literal(name) for name in names]):
        axes[0][j].set_title(title, fontsize=9)
    figure.suptitle(f"{method} saliency |d z_y / d x| of each model (brighter = more salient)")
    return _save(figure, path)


def adversarial_grid(examples, labels, path, class_names=None):
    """First row clean images; then one row per model of its white-box PGD examples.

    Args:
        examples: {model name: {"x", "x_adv", "predictions", "eps"}}.
        labels: true labels of the images.
        path: PNG path.
        class_names: names of the classes, by id (ids when absent).
    """
    names = list(examples)
    first = examples[names[0]]
    cols = len(first["x"])
    figure, axes = plt.subplots(
        len(names) + 1,
        cols,
        figsize=(1.6 * cols, 1.75 * (len(names) + 1)),
        squeeze=False,
        layout="constrained",
    )
    for j in range(cols):
        _show(axes[0][j], first["x"][j])
        axes[0][j].set_title(f"true: {_label(int(labels[j]), class_names)}", fontsize=7)
    for i, name in enumerate(names, 1):
        entry = examples[name]
        for j in range(cols):
            prediction = int(entry["predictions"][j])
            _show(axes[i][j], entry["x_adv"][j])
            color = "green" if prediction == labels[j] else "red"
            axes[i][j].set_title(_label(prediction, class_names), fontsize=7, color=color)
        axes[i][0].set_ylabel(literal(name), fontsize=8)
    axes[0][0].set_ylabel("clean", fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(
        f"White-box PGD examples at eps {first['eps']:.4g} (title: prediction; red = fooled)",
        fontsize=10,
    )
    return _save(figure, path)


def write_all(report, evaluations, labels, out_dir):
    """Writes the four figures of a (zoo or one-model) report; returns their file names."""
    out_dir = pathlib.Path(out_dir)
    reports = [e.report for e in evaluations.values()]
    files = {"accuracy_curves": accuracy_curves(reports, out_dir / "accuracy_vs_eps.png")}
    if report.get("transfer"):
        files["transfer"] = transfer_heatmap(report["transfer"], out_dir / "transfer_heatmap.png")
    first = next(iter(evaluations.values())).artifacts
    class_names = (report.get("data") or {}).get("class_names")
    files["saliency"] = saliency_grid(
        first["adversarial"]["x"][:6],
        labels[:6],
        {name: e.artifacts["saliency"]["gradient"][:6] for name, e in evaluations.items()},
        out_dir / "saliency_grid.png",
        class_names=class_names,
    )
    files["adversarial"] = adversarial_grid(
        {name: e.artifacts["adversarial"] for name, e in evaluations.items()},
        labels,
        out_dir / "adversarial_examples.png",
        class_names=class_names,
    )
    return {k: pathlib.Path(v).name for k, v in files.items()}
