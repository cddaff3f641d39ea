import numpy as np

from tfjsigr.evaluation import metrics, testing


def test_restarts_never_weaken_pgd_and_curve_starts_at_clean_accuracy():
    model = testing.tiny_model()
    _, _, x, y = testing.sample_data()
    x, y = x[:100], y[:100]
    one = metrics.pgd_accuracy(model, x, y, 0.05, 0.0125, 5, seed=0)
    three = metrics.pgd_accuracy(model, x, y, 0.05, 0.0125, 5, seed=0, restarts=3)
    assert three <= one
    records = metrics.accuracy_curve(model, x, y, "fgsm", eps_grid=(0.0, 0.1))
    assert records[0]["accuracy"] == metrics.accuracy(model, x, y)
    assert records[1]["accuracy"] < records[0]["accuracy"]
    assert records[1]["samples"] == 100 and records[1]["attack"] == "fgsm"
    assert np.isclose(records[1]["eps"], 0.1)
