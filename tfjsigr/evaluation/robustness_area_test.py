import keras
import numpy as np
import pytest

from tfjsigr.evaluation import robustness_area


def linear_binary_model(w, b, shape=(4, 4, 1)):
    inputs = keras.Input(shape)
    logits = keras.layers.Dense(2)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, logits)
    model.layers[-1].set_weights([w.astype(np.float32), b.astype(np.float32)])
    return model


def test_distances_match_closed_form_for_linear_classifier():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(16, 2)), rng.normal(size=2) * 0.3
    model = linear_binary_model(w, b)
    x = rng.uniform(0.2, 0.8, size=(64, 4, 4, 1)).astype(np.float32)
    flat = x.reshape(64, -1)
    margin = flat @ (w[:, 1] - w[:, 0]) + (b[1] - b[0])
    y = (margin > 0).astype(np.int32)
    y[:4] = 1 - y[:4]  # misclassified: distance 0
    expected = np.abs(margin) / np.linalg.norm(w[:, 1] - w[:, 0]) / np.sqrt(16)
    expected[:4] = 0.0
    distances = robustness_area.minimum_rmse_distances(
        lambda v: model(v, training=False), x, y, clip_min=None, clip_max=None
    )
    np.testing.assert_allclose(distances, expected, rtol=0.02, atol=1e-4)


def test_ara_integrates_surviving_share_above_chance():
    # A(r) = 2/3 on [0, .1), 1/3 on [.1, .2): only the first step is above 1/C = 1/2.
    assert robustness_area.ara_from_distances([0.0, 0.1, 0.2], 2) == pytest.approx(
        0.1 * (2 / 3 - 1 / 2)
    )
    # All robust up to 0.5, ten classes: 0.5 * (1 - 0.1).
    assert robustness_area.ara_from_distances([0.5] * 4, 10) == pytest.approx(0.45)
    # A failed attack counts as the largest possible distance.
    assert robustness_area.ara_from_distances([np.inf], 10) == pytest.approx(0.9)
    assert robustness_area.ara_from_distances([0.0, 0.0], 10) == 0.0
