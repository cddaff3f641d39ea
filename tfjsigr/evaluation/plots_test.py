import numpy as np
import pytest

from tfjsigr.evaluation import plots

# Would be math to Matplotlib (the first fails to parse), or left out of a legend.
NAMES = ["a$^$b", "cost$5 and $6", "_underscore"]


def model_report(name):
    curve = [{"attack": "pgd", "eps": 0.1, "accuracy": 0.5}]
    uap = [{"attack": "sgd_uap", "eps": 0.1, "accuracy": 0.6}]
    return {"name": name, "robust_accuracy": curve, "uap": uap,
            "clean_accuracy": {"value": 0.9}, "samples": 2, "seed": 0}  # fmt: skip


def transfer(names):
    accuracy = np.eye(len(names)).tolist()
    return {"pgd": {"sources": names, "targets": names, "accuracy": accuracy, "eps": 0.1,
                    "samples": 2}}  # fmt: skip


@pytest.fixture
def figures(monkeypatch):
    """The figures the plots save, kept for their texts."""
    kept, save = [], plots._save
    monkeypatch.setattr(
        plots, "_save", lambda figure, path: kept.append(figure) or save(figure, path)
    )
    return kept


def shown(texts):
    """What Matplotlib draws of each text, verbatim; None for a text it draws as math."""
    drawn = [t._preprocess_math(t.get_text()) for t in texts]
    return [None if math else text for text, math in drawn]


def test_model_names_are_drawn_verbatim(figures, tmp_path):
    images = np.zeros((1, 4, 4, 1), np.float32)
    adversarial = {"x": images, "x_adv": images, "predictions": [0], "eps": 0.1}
    plots.accuracy_curves([model_report(name) for name in NAMES], tmp_path / "curves.png")
    plots.transfer_heatmap(transfer(NAMES), tmp_path / "transfer.png")
    plots.saliency_grid(images, [0], {name: images[..., 0] for name in NAMES}, tmp_path / "s.png")
    plots.adversarial_grid({name: adversarial for name in NAMES}, [0], tmp_path / "a.png")
    curves, heatmap, saliency, examples = figures
    assert shown(curves.axes[-1].get_legend().get_texts()) == NAMES
    assert shown(heatmap.axes[0].get_xticklabels()) == NAMES
    assert shown(heatmap.axes[0].get_yticklabels()) == NAMES
    assert shown([axis.title for axis in saliency.axes[1:4]]) == NAMES
    assert shown([axis.yaxis.label for axis in examples.axes[1:4]]) == NAMES
