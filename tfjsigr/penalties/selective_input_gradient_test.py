import numpy as np
import pytest
import tensorflow as tf

import tfjsigr
from tfjsigr import ops, testing
from tfjsigr.penalties import SelectiveInputGradient

RNG = np.random.default_rng(0)
W = RNG.normal(size=(10, 3)).astype(np.float32)
B = RNG.normal(size=3).astype(np.float32)
X = RNG.uniform(size=(8, 10)).astype(np.float32)
Y = RNG.integers(0, 3, size=8).astype(np.int32)


def loss_gradients():
    """d CE / dx = W (p - e_y) for the linear model."""
    return (testing.softmax(X @ W + B) - np.eye(3)[Y]) @ W.T


def penalty_value(penalty, x=X, y=Y, annotation=None):
    model = tfjsigr.RegularizedModel(testing.linear_model(W, B), penalties=[penalty])
    _, values = model.compute_penalties(x, y, annotation=annotation)
    return float(values[penalty.name])


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_top_k_mask_frees_the_stated_fraction_of_the_most_salient_features(fraction):
    saliency = RNG.uniform(size=(5, 8, 8, 2)).astype(np.float32)
    mask = ops.top_k_mask(tf.constant(saliency), fraction).numpy()
    features = 8 * 8 * 2
    freed = features - mask.reshape(5, -1).sum(axis=1)
    np.testing.assert_array_equal(freed, np.ceil(fraction * features))
    for example, example_mask in zip(saliency, mask):
        assert example[example_mask == 0].min() >= example[example_mask == 1].max()


def test_self_topk_masks_the_features_outside_the_top_k_of_the_true_logit_gradient():
    # d z_y / dx = W[:, y]: the saliency is |W[:, y]|; with top_k 0.2 the two largest are free.
    mask = np.ones_like(X)
    for b, label in enumerate(Y):
        mask[b, np.argsort(-np.abs(W[:, label]))[:2]] = 0.0
    expected = np.mean(np.sum((mask * loss_gradients()) ** 2, axis=1))
    np.testing.assert_allclose(penalty_value(SelectiveInputGradient(top_k=0.2)), expected, rtol=1e-5)


def test_perturbation_mask_masks_outside_the_top_k_of_the_loss_gradient():
    gradients = loss_gradients()
    mask = np.ones_like(X)
    for b in range(len(X)):
        mask[b, np.argsort(-np.abs(gradients[b]))[:3]] = 0.0
    expected = np.mean(np.sum((mask * gradients) ** 2, axis=1))
    penalty = SelectiveInputGradient(mask="perturbation", top_k=0.3)
    np.testing.assert_allclose(penalty_value(penalty), expected, rtol=1e-5)


def test_annotation_path_uses_the_given_mask():
    annotation = (RNG.uniform(size=X.shape) > 0.5).astype(np.float32)
    expected = np.mean(np.sum((annotation * loss_gradients()) ** 2, axis=1))
    got = penalty_value(SelectiveInputGradient(mask="annotation"), annotation=annotation)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_all_zero_annotation_mask_gives_zero_penalty():
    got = penalty_value(SelectiveInputGradient(mask="annotation"), annotation=np.zeros_like(X))
    assert got == 0.0
    full = penalty_value(SelectiveInputGradient(mask="annotation"), annotation=np.ones_like(X))
    assert full > 0.0


def test_annotation_travels_with_the_data_through_fit():
    model = testing.compiled(
        testing.linear_model(W, B), [SelectiveInputGradient(weight=1.0, mask="annotation")]
    )
    zeros = {"image": X, "annotation_mask": np.zeros_like(X)}
    history = model.fit(zeros, Y, epochs=1, batch_size=8, verbose=0)
    assert history.history["selective_input_gradient"][0] == 0.0
    ones = {"image": X, "annotation_mask": np.ones_like(X)}
    history = model.fit(ones, Y, epochs=1, batch_size=8, verbose=0)
    assert history.history["selective_input_gradient"][0] > 0.0


def test_annotation_mask_without_annotations_is_a_clear_error():
    with pytest.raises(ValueError, match="annotation_mask"):
        penalty_value(SelectiveInputGradient(mask="annotation"))


def test_smoothgrad_saliency_runs_on_a_conv_net_and_is_nonnegative():
    penalty = SelectiveInputGradient(smoothgrad_samples=3, smoothing=3)
    model = tfjsigr.RegularizedModel(testing.tiny_cnn(), penalties=[penalty])
    x = RNG.uniform(size=(2, 16, 16, 1)).astype(np.float32)
    _, values = model.compute_penalties(x, np.array([0, 1], np.int32))
    assert float(values[penalty.name]) > 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"mask": "random"}, {"top_k": 0.0}, {"top_k": 1.0}, {"smoothing": 0},
     {"smoothgrad_noise": -0.1}],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        SelectiveInputGradient(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"smoothing": 1.7}, "smoothing must be a whole number >= 1, got 1.7"),
     ({"smoothing": True}, "smoothing must be a whole number"),
     ({"smoothing": float("nan")}, "smoothing must be a whole number"),
     ({"smoothing": "3"}, "smoothing must be a whole number"),
     ({"smoothgrad_samples": 2.5}, "smoothgrad_samples must be a whole number >= 0, got 2.5"),
     ({"smoothgrad_samples": -1}, "smoothgrad_samples must be a whole number >= 0")],
)
def test_fractional_or_non_numeric_counts_are_rejected_not_truncated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelectiveInputGradient(**kwargs)


def test_whole_floats_are_accepted_as_ints():
    penalty = SelectiveInputGradient(smoothing=3.0, smoothgrad_samples=2.0)
    assert (penalty.smoothing, penalty.smoothgrad_samples) == (3, 2)
    assert isinstance(penalty.smoothing, int)
