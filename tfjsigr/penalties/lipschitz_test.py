import keras
import numpy as np
import pytest

import tfjsigr
from tfjsigr import ops, testing
from tfjsigr.penalties import Lipschitz

RNG = np.random.default_rng(0)
W = RNG.normal(size=(6, 4)).astype(np.float32)
B = RNG.normal(size=4).astype(np.float32)
X = RNG.uniform(size=(16, 6)).astype(np.float32)
Y = RNG.integers(0, 4, size=16).astype(np.int32)


def test_margin_output_gives_the_closed_form_penalty():
    # With zeta = 1, s_b is the margin z_y - z_k* whose input gradient is W[:, y] - W[:, k*].
    logits = X @ W + B
    runner_up = np.argmax(np.where(np.eye(4)[Y] > 0, -np.inf, logits), axis=1)
    gradients = (W[:, Y] - W[:, runner_up]).T
    expected = np.mean(np.sum(gradients**2, axis=1) / 6)
    model = tfjsigr.RegularizedModel(testing.linear_model(W, B), [Lipschitz(zeta=1.0)])
    _, values = model.compute_penalties(X, Y)
    np.testing.assert_allclose(float(values["lipschitz"]), expected, rtol=1e-5)


def test_psi_schedule_follows_the_update_rule_step_by_step():
    penalty = Lipschitz(k0=3.0, target_loss=1.4, growth=0.5)
    model = tfjsigr.RegularizedModel(testing.linear_model(W, B), [penalty])
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    intensity = 0.0
    steps = []
    for _ in range(12):
        cross_entropy = float(np.mean(ops.per_example_cross_entropy(Y, model(X)).numpy()))
        logs = model.train_on_batch(X, Y, return_dict=True)
        intensity = max(0.0, intensity + float(np.clip(-np.log(cross_entropy / 1.4), -0.01, 1.0)))
        steps.append(np.clip(-np.log(cross_entropy / 1.4), -0.01, 1.0))
        np.testing.assert_allclose(float(penalty.intensity.numpy()), intensity, rtol=1e-4, atol=1e-6)
        psi = 3.0 * np.exp(0.5 * intensity)
        np.testing.assert_allclose(
            logs["loss"] - logs["task_loss"], psi * logs["lipschitz"], rtol=1e-3, atol=1e-6
        )
    # Both branches of the rule were exercised: growth while CE < L_target, decay before.
    assert min(steps) < 0 < max(steps)


def test_intensity_is_saved_and_restored_with_the_model(tmp_path):
    model = testing.compiled(testing.linear_model(W, B), [Lipschitz(target_loss=5.0)])
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0)
    saved = float(model._trained_penalties[0].intensity.numpy())
    assert saved > 0
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert float(restored._trained_penalties[0].intensity.numpy()) == saved


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        Lipschitz(target_loss=0.0)
    with pytest.raises(ValueError):
        Lipschitz(zeta=1.5)
