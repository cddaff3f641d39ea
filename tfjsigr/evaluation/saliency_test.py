import keras
import numpy as np
import pytest

from tfjsigr.evaluation import saliency, testing


def test_concentration_of_uniform_and_peaked_maps():
    uniform = np.ones((2, 10, 10))
    peaked = np.zeros((1, 10, 10))
    peaked[0, 0, :5] = 1.0
    assert saliency.concentration(uniform) == pytest.approx(0.1)
    assert saliency.concentration(peaked) == pytest.approx(1.0)


def test_integrated_gradients_of_linear_model_is_exact():
    inputs = keras.Input((3, 3, 1))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    x = np.random.default_rng(0).uniform(size=(4, 3, 3, 1)).astype(np.float32)
    y = np.array([0, 1, 0, 1], np.int32)
    w = model.layers[-1].get_weights()[0]
    maps = saliency.saliency(lambda v: model(v, training=False), x, y, "integrated_gradients")
    expected = np.abs(x[..., 0] * w[:, y].T.reshape(4, 3, 3))
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-6)


def test_deletion_of_salient_pixels_hurts_more_than_random():
    model = testing.tiny_model()
    _, _, x, y = testing.sample_data()
    x, y = x[:100], y[:100]
    f = lambda v: model(v, training=False)
    maps = saliency.saliency(f, x, y, "smoothgrad")
    curve, auc = saliency.deletion_curve(f, x, y, maps)
    _, random_auc = saliency.deletion_curve(
        f, x, y, np.random.default_rng(0).uniform(size=maps.shape)
    )
    assert curve[0] == pytest.approx(testing.accuracy(f, x, y))
    assert auc < random_auc
