"""The cheaper estimators (finite differences, random directions, penalty fraction) against the
exact penalties: closed forms on z = xW + b, weight gradients on a tiny conv net, and training
under mixed precision and through a .keras round trip. MirroredStrategy: tests/test_distribution.py.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfjsigr
from tfjsigr import testing
from tfjsigr.penalties import JSIGR, InputGradient, Jacobian, SelectiveInputGradient

FD, RD, DB = "finite_difference", "random_directions", "double_backprop"
RNG = np.random.default_rng(0)
W = RNG.normal(size=(6, 4)).astype(np.float32)
B = RNG.normal(size=4).astype(np.float32)
X = RNG.uniform(size=(64, 6)).astype(np.float32)
Y = RNG.integers(0, 4, size=64).astype(np.int32)
MASK = (RNG.uniform(size=(64, 6)) < 0.5).astype(np.float32)
# d CE / dx = (p - e_y) W^T for z = x W + b; the Jacobian is W^T.
G = (testing.softmax(X @ W + B) - np.eye(4)[Y]) @ W.T


def value(penalty, x=X, y=Y, annotation=None, backbone=None):
    model = tfjsigr.RegularizedModel(backbone or testing.linear_model(W, B), penalties=[penalty])
    return float(model.compute_penalties(x, y, annotation=annotation)[1][penalty.name])


def exact(kind):
    if kind == "igr":
        return np.mean(np.sum(G**2, 1))
    if kind == "sigr":
        return np.mean(np.sum((MASK * G) ** 2, 1))
    return 0.5 * np.sum(W**2)


def make(kind, **kwargs):
    if kind == "igr":
        return InputGradient(**kwargs)
    if kind == "sigr":
        return SelectiveInputGradient(mask="annotation", **kwargs)
    return Jacobian(projections=kwargs.pop("directions", 1), **kwargs)


def annotation(kind):
    return MASK if kind == "sigr" else None


@pytest.mark.parametrize("kind", ["igr", "sigr"])
def test_finite_difference_converges_to_the_exact_penalty_as_h_goes_to_zero(kind):
    errors = [
        abs(value(make(kind, estimator=FD, step=h), annotation=annotation(kind)) - exact(kind))
        for h in (1.0, 0.1, 0.01, 0.001)
    ]
    assert errors[0] > errors[1] > errors[2] > errors[3]  # bias O(h)
    assert errors[3] < 1e-3 * exact(kind)


@pytest.mark.parametrize("kind", ["igr", "sigr", "jr"])
def test_random_directions_converge_as_the_directions_grow(kind):
    # Per example, (g.u)^2 for u ~ N(0, I) has variance 2 ||g||^4 (||J u||^2: 2 ||J J^T||_F^2).
    if kind == "jr":
        per_direction_variance = 0.25 * 2 * np.sum((W.T @ W) ** 2) * np.ones(len(X))
    else:
        g = G if kind == "igr" else MASK * G
        per_direction_variance = 2 * np.sum(g**2, 1) ** 2
    tf.random.set_seed(1)
    for directions in (1, 256):
        sigma = np.sqrt(per_direction_variance.sum() / directions) / len(X)
        got = value(make(kind, estimator=RD, step=1e-3, directions=directions), annotation=annotation(kind))
        assert abs(got - exact(kind)) < 4 * sigma + 2e-3 * exact(kind), (directions, got, exact(kind))
    assert 4 * sigma < 0.1 * exact(kind)  # 256 directions: within a few percent


@pytest.mark.parametrize("kind", ["igr", "jr"])
def test_penalty_fraction_is_an_unbiased_estimate_of_the_batch_mean(kind):
    tf.random.set_seed(2)
    estimator = DB if kind == "igr" else RD
    draws = [value(make(kind, estimator=estimator, penalty_fraction=0.25, directions=8)) for _ in range(40)]
    per_example = np.sum(G**2, 1) if kind == "igr" else np.full(len(X), exact("jr"))
    # Without-replacement sampling of 16 of 64: standard error of one draw.
    sigma = per_example.std() * np.sqrt((64 - 16) / (63 * 16)) + (0.1 * exact(kind) if kind == "jr" else 0)
    assert abs(np.mean(draws) - exact(kind)) < 4 * sigma / np.sqrt(len(draws)) + 1e-4
    if kind == "igr":
        assert np.std(draws) > 0.2 * sigma  # it does sample


def weight_gradients(penalty, x, y, repeats=1):
    """`repeats` draws of the penalty's weight gradients (one model: the seed is set once)."""
    model = tfjsigr.RegularizedModel(testing.tiny_cnn(seed=3), penalties=[penalty])
    draws = []
    for _ in range(repeats):
        with tf.GradientTape() as tape:
            _, values = model.compute_penalties(x, y, training=True)
        gradients = tape.gradient(values[penalty.name], model.trainable_weights)
        draws.append(np.concatenate([
            np.zeros(w.shape).ravel() if g is None else g.numpy().ravel()
            for w, g in zip(model.trainable_weights, gradients)
        ]))  # fmt: skip
    return np.array(draws)


@pytest.mark.parametrize(
    "exact_penalty, estimated, repeats",
    [
        (InputGradient(), InputGradient(estimator=FD, step=1e-3), 1),
        (SelectiveInputGradient(mask="perturbation"), SelectiveInputGradient(mask="perturbation", estimator=FD, step=1e-3), 1),
        (InputGradient(), InputGradient(estimator=RD, directions=4), 24),
        (Jacobian(), Jacobian(projections=4, estimator=RD), 24),
    ],
    ids=["igr_fd", "sigr_fd", "igr_rd", "jr_rd"],
)
def test_weight_gradients_agree_with_double_backprop_within_the_measured_variance(exact_penalty, estimated, repeats):
    x, y = RNG.uniform(size=(16, 16, 16, 1)).astype(np.float32), RNG.integers(0, 3, 16).astype(np.int32)
    if isinstance(exact_penalty, Jacobian):
        reference = weight_gradients(Jacobian(projections="exact"), x, y)[0]
    else:
        reference = weight_gradients(exact_penalty, x, y)[0]
    draws = weight_gradients(estimated, x, y, repeats)
    mean = draws.mean(0)
    scale = np.abs(reference).max()
    if repeats == 1:
        np.testing.assert_allclose(mean, reference, atol=2e-2 * scale)
        return
    standard_error = draws.std(0, ddof=1) / np.sqrt(repeats)
    z = np.abs(mean - reference) / (standard_error + 1e-2 * scale)
    assert np.mean(z < 3) > 0.95 and np.max(z) < 6, (np.mean(z < 3), np.max(z))
    cosine = mean @ reference / np.linalg.norm(mean) / np.linalg.norm(reference)
    assert cosine > 0.8


ESTIMATED = [
    InputGradient(2.0, estimator=FD),
    InputGradient(2.0, estimator=RD, directions=2, penalty_fraction=0.5),
    Jacobian(0.5, estimator=RD, penalty_fraction=0.5),
    SelectiveInputGradient(2.0, estimator=FD),
    SelectiveInputGradient(2.0, estimator=RD),
    JSIGR(0.1, 3.0, estimator=FD, penalty_fraction=0.5),
    JSIGR(0.1, 3.0, mask="perturbation", estimator=RD),
]
XC = RNG.uniform(size=(32, 16, 16, 1)).astype(np.float32)
YC = RNG.integers(0, 3, size=32).astype(np.int32)


@pytest.mark.parametrize("penalty", ESTIMATED, ids=repr)
def test_config_round_trip_keeps_the_estimator(penalty):
    assert type(penalty).from_config(penalty.get_config()).get_config() == penalty.get_config()
    assert tfjsigr.penalties.get({"class_name": type(penalty).__name__, "config": penalty.get_config(),
                                  "module": None, "registered_name": f"tfjsigr>{type(penalty).__name__}"}
                                 ).get_config() == penalty.get_config()  # fmt: skip


@pytest.mark.parametrize("penalty", [ESTIMATED[1], ESTIMATED[4], ESTIMATED[5]], ids=repr)
def test_keras_round_trip_keeps_the_estimator_and_trains(tmp_path, penalty):
    model = testing.compiled(testing.tiny_cnn(), [penalty])
    model.fit(XC, YC, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.penalties[0].get_config() == penalty.get_config()
    history = restored.fit(XC, YC, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


@pytest.mark.parametrize("penalty", [ESTIMATED[2], ESTIMATED[5]], ids=repr)
def test_mixed_precision_trains_with_float32_penalties(penalty):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = testing.compiled(testing.tiny_cnn(), [type(penalty).from_config({**penalty.get_config(), "step": 0.1})])
        _, values = model.compute_penalties(XC[:8], YC[:8], training=True)
        assert all(v.dtype == tf.float32 for v in values.values())
        history = model.fit(XC, YC, batch_size=16, epochs=2, verbose=0).history
    finally:
        keras.config.set_dtype_policy("float32")
    assert np.all(np.isfinite(history["loss"]))
    assert all(np.isfinite(v[-1]) and v[-1] > 0 for k, v in history.items() if k != "accuracy")


def test_estimators_reject_bad_arguments():
    with pytest.raises(ValueError, match="estimator"):
        InputGradient(estimator="magic")
    with pytest.raises(ValueError, match="estimator"):
        Jacobian(estimator=FD)
    with pytest.raises(ValueError, match="exact"):
        Jacobian(projections="exact", estimator=RD)
    with pytest.raises(ValueError, match="penalty_fraction"):
        SelectiveInputGradient(penalty_fraction=0.0)
    with pytest.raises(ValueError, match="step"):
        InputGradient(step=-1.0)
    with pytest.raises(ValueError, match="directions"):
        InputGradient(directions=1.5)


def test_random_directions_need_no_input_tape_and_share_the_clean_forward_pass():
    calls = []
    backbone = testing.linear_model(W, B)
    model = tfjsigr.RegularizedModel(backbone, penalties=[Jacobian(estimator=RD, projections=3)])
    original = backbone.call
    backbone.call = lambda inputs, *a, **k: calls.append(inputs.shape[0]) or original(inputs, *a, **k)
    model.compute_penalties(X[:8], Y[:8])
    assert calls == [8 + 3 * 8]  # one forward pass: the clean batch and its 3 perturbed copies
