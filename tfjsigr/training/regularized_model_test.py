import keras
import numpy as np
import pytest
import tensorflow as tf

import tfjsigr
from tfjsigr import testing
from tfjsigr.penalties import JSIGR, TRADES, InputGradient, Jacobian, SelectiveInputGradient
from tfjsigr.training.adversarial_training import AdversarialTraining

RNG = np.random.default_rng(0)
X = RNG.uniform(size=(32, 16, 16, 1)).astype(np.float32)
Y = RNG.integers(0, 3, size=32).astype(np.int32)
ALL_PENALTIES = [
    InputGradient(1.0),
    InputGradient(1.0, variant="insensitive"),
    Jacobian(1.0),
    Jacobian(1.0, projections="exact"),
    SelectiveInputGradient(1.0),
    SelectiveInputGradient(1.0, mask="perturbation"),
    TRADES(1.0, steps=2),
]


@pytest.mark.parametrize("penalty", ALL_PENALTIES, ids=repr)
def test_penalty_gradients_with_respect_to_weights_are_finite_and_nonzero(penalty):
    model = tfjsigr.RegularizedModel(testing.tiny_cnn(), penalties=[penalty])
    with tf.GradientTape() as tape:
        _, values = model.compute_penalties(X[:8], Y[:8], training=True)
    gradients = tape.gradient(values[penalty.name], model.trainable_weights)
    for weight, gradient in zip(model.trainable_weights, gradients):
        if gradient is None:  # The Jacobian does not depend on the logits' bias.
            assert weight.path == "logits/bias"
            continue
        assert np.all(np.isfinite(gradient.numpy())), weight.path
    first_conv_kernel = gradients[0].numpy()
    assert np.abs(first_conv_kernel).max() > 0.0


def test_fit_reports_loss_task_loss_and_each_penalty_and_evaluate_reports_clean_metrics():
    model = testing.compiled(testing.tiny_cnn(), [InputGradient(2.0), Jacobian(0.5)])
    history = model.fit(X, Y, batch_size=16, epochs=2, verbose=0, validation_data=(X, Y)).history
    assert set(history) == {
        "loss", "task_loss", "input_gradient", "jacobian", "accuracy", "val_loss", "val_accuracy",
    }  # fmt: skip
    # The objective is the task loss plus the weighted penalties.
    for epoch in range(2):
        combined = history["task_loss"][epoch] + 2.0 * history["input_gradient"][epoch]
        assert history["loss"][epoch] > combined
    clean = model.evaluate(X, Y, verbose=0, return_dict=True)
    logits = model.predict(X, verbose=0)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(Y, logits)
    np.testing.assert_allclose(clean["loss"], float(expected), rtol=1e-5)


@pytest.mark.parametrize(
    "make_backbone",
    [
        testing.tiny_cnn,
        lambda: keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]),
    ],
    ids=["functional", "sequential"],
)
def test_keras_round_trip_restores_penalties_and_predictions(tmp_path, make_backbone):
    penalties = [JSIGR(0.1, 3.0, projections=2, top_k=0.3), TRADES(2.0, epsilon=0.05, steps=2)]
    model = testing.compiled(
        make_backbone(), penalties, adversarial_training=AdversarialTraining("fgsm_rs", 0.05)
    )
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, tfjsigr.RegularizedModel)
    assert [p.get_config() for p in restored.penalties] == [p.get_config() for p in penalties]
    assert restored.adversarial_training.get_config() == model.adversarial_training.get_config()
    np.testing.assert_array_equal(restored.predict(X, verbose=0), model.predict(X, verbose=0))
    restored.fit(X, Y, batch_size=16, epochs=1, verbose=0)  # and it keeps training


@keras.saving.register_keras_serializable(package="tfjsigr_tests")
class SubclassedBackbone(keras.Model):
    def __init__(self, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(classes)

    def build(self, input_shape):
        self.dense.build((None, int(np.prod(input_shape[1:]))))

    def call(self, inputs):
        return self.dense(self.flatten(inputs))

    def get_config(self):
        return {**super().get_config(), "classes": self.classes}


def test_subclassed_backbone_trains_and_round_trips(tmp_path):
    model = testing.compiled(SubclassedBackbone(), [InputGradient(1.0)])
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(restored.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6)


def test_regularized_model_can_itself_be_subclassed():
    class LoggingModel(tfjsigr.RegularizedModel):
        steps = 0

        def train_step(self, data):
            type(self).steps += 1
            return super().train_step(data)

    model = testing.compiled(testing.tiny_cnn(), [Jacobian(1.0)])
    model.__class__ = LoggingModel
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    assert LoggingModel.steps > 0


def _one_step_weights(jit_compile, penalties):
    keras.utils.set_random_seed(3)
    model = tfjsigr.RegularizedModel(testing.tiny_cnn(seed=3), penalties=penalties)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    model.fit(X, Y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    return [w.numpy() for w in model.trainable_weights]


def test_jit_compile_on_and_off_give_the_same_update():
    penalties = [InputGradient(5.0), Jacobian(1.0, projections="exact"), SelectiveInputGradient(5.0)]
    for on, off in zip(_one_step_weights(True, penalties), _one_step_weights(False, penalties)):
        np.testing.assert_allclose(on, off, rtol=1e-4, atol=1e-6)


def test_jit_compile_runs_random_projections_and_adversarial_training():
    _one_step_weights(True, [JSIGR(0.1, 1.0), TRADES(1.0, steps=2)])


def test_mixed_precision_computes_penalties_in_float32_and_scales_the_loss():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = testing.compiled(testing.tiny_cnn(), [InputGradient(5.0), Jacobian(1.0)])
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        _, values = model.compute_penalties(X[:8], Y[:8])
        assert all(v.dtype == tf.float32 for v in values.values())
        history = model.fit(X, Y, batch_size=16, epochs=2, verbose=0).history
    finally:
        keras.config.set_dtype_policy("float32")
    for name in ("loss", "input_gradient", "jacobian"):
        assert np.all(np.isfinite(history[name])) and history[name][-1] > 0
    assert history["loss"][1] < history["loss"][0]


@pytest.mark.parametrize("attack", ["fgsm_rs", "pgd"])
def test_adversarial_training_trains_on_inputs_inside_the_eps_ball(attack):
    mode = AdversarialTraining(attack, epsilon=0.05, steps=3)
    model = testing.compiled(testing.tiny_cnn(), adversarial_training=mode)
    x_adv = mode(model, tf.constant(X), Y).numpy()
    assert np.abs(x_adv - X).max() <= 0.05 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - X).max() > 0.01
    history = model.fit(X, Y, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


def test_bad_constructor_arguments_raise():
    with pytest.raises(TypeError, match="keras.Model"):
        tfjsigr.RegularizedModel(lambda x: x)
    with pytest.raises(ValueError, match="attack"):
        AdversarialTraining("deepfool")
    with pytest.raises(ValueError, match="unknown penalty"):
        tfjsigr.RegularizedModel(testing.tiny_cnn(), ["nonsense"])


def test_mixed_precision_scales_the_input_gradients_against_float16_underflow():
    # A confident linear model: p - e_y is about 2e-9, below float16's smallest subnormal.
    weights = np.random.default_rng(2).normal(size=(8, 3)).astype(np.float32)
    bias = np.array([20.0, 0.0, 0.0], np.float32)
    x = np.zeros((4, 8), np.float32)
    y = np.zeros(4, np.int32)
    reference = tfjsigr.RegularizedModel(testing.linear_model(weights, bias), [InputGradient(1.0)])
    expected = float(reference.compute_penalties(x, y)[1]["input_gradient"])
    assert expected > 0.0
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = testing.compiled(testing.linear_model(weights, bias), [InputGradient(1.0)])
        _, scaled = model.compute_penalties(x, y, training=True)
        _, unscaled = model.compute_penalties(x, y, training=False)
    finally:
        keras.config.set_dtype_policy("float32")
    assert float(unscaled["input_gradient"]) == 0.0
    np.testing.assert_allclose(float(scaled["input_gradient"]), expected, rtol=2e-2)
