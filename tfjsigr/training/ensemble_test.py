import keras
import numpy as np
import pytest

import tfjsigr
from tfjsigr import testing
from tfjsigr.architectures import small_cnn
from tfjsigr.penalties import Jacobian
from tfjsigr.training.ensemble import Ensemble, ensemble_from_members
from tfjsigr.zoo import export as export_lib
from tfjsigr.zoo import verify as verify_lib

SHAPE = (16, 16, 1)
RNG = np.random.default_rng(0)
X = RNG.uniform(size=(48, *SHAPE)).astype(np.float32)
Y = RNG.integers(0, 4, size=48).astype(np.int32)


def linear_members():
    """Three constant-weight linear models z = x W_m + b_m on 3 inputs, 4 classes."""
    rng = np.random.default_rng(1)
    return [
        testing.linear_model(rng.normal(size=(3, 4)) * scale, rng.normal(size=4))
        for scale in (1.0, 4.0, 10.0)
    ]


def tiny_backbone(seed):
    keras.utils.set_random_seed(seed)
    return small_cnn(input_shape=SHAPE, num_classes=4, filters=(4, 8), dense=16)


def log_mean_softmax(logits):
    return np.log(np.mean([testing.softmax(z) for z in logits], axis=0))


@pytest.mark.parametrize("combine", ["logits", "probabilities"])
def test_output_combines_the_members_logits(combine):
    members = linear_members()
    x = np.random.default_rng(2).uniform(size=(5, 3)).astype(np.float32)
    member_logits = [np.asarray(m(x)) for m in members]
    expected = (
        np.mean(member_logits, axis=0) if combine == "logits" else log_mean_softmax(member_logits)
    )
    got = np.asarray(Ensemble(members, combine=combine)(x))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # The two modes differ when members disagree (here they do).
    assert not np.allclose(
        np.mean(member_logits, axis=0), log_mean_softmax(member_logits), atol=1e-3
    )


@pytest.mark.parametrize(
    "members, combine, error",
    [([], "logits", ValueError), (None, "geometric", ValueError), (["model"], "logits", TypeError)],
    ids=["empty", "bad-combine", "not-a-model"],
)
def test_bad_arguments_raise(members, combine, error):
    with pytest.raises(error):
        Ensemble(linear_members() if members is None else members, combine=combine)


def test_independent_members_export_as_one_zoo_model_with_matching_runtimes(tmp_path):
    members = []
    for seed in (0, 1):
        member = testing.compiled(tiny_backbone(seed), [Jacobian(0.1)])
        keras.utils.set_random_seed(seed)
        member.fit(X, Y, batch_size=16, epochs=1, verbose=0)
        members.append(member)
    ensemble = ensemble_from_members(members, combine="probabilities")
    reference = verify_lib.keras_logits(ensemble, X)
    member_logits = [verify_lib.keras_logits(m.model, X) for m in members]
    np.testing.assert_allclose(reference, log_mean_softmax(member_logits), rtol=1e-5, atol=1e-5)

    entry = export_lib.export_entry(ensemble, tmp_path, "jr_ensemble", {}, {}, X, "random images")
    onnx = verify_lib.onnx_outputs(entry / verify_lib.ONNX_FILE, X)["logits"]
    saved = verify_lib.saved_model_outputs(entry / "saved_model" / "1", X)["logits"]
    np.testing.assert_allclose(onnx, reference, atol=1e-5)
    np.testing.assert_allclose(saved, reference, atol=1e-5)


def test_joint_training_updates_every_member_and_round_trips(tmp_path):
    members = [tiny_backbone(seed) for seed in (0, 1, 2)]
    before = [m.get_weights()[0].copy() for m in members]
    model = testing.compiled(Ensemble(members), [Jacobian(0.1, projections=2)])
    history = model.fit(X, Y, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and history["jacobian"][0] > 0.0
    for member, kernel in zip(members, before):
        assert not np.allclose(member.get_weights()[0], kernel)

    model.save(tmp_path / "ensemble.keras")
    restored = keras.saving.load_model(tmp_path / "ensemble.keras")
    assert isinstance(restored, tfjsigr.RegularizedModel)
    assert isinstance(restored.model, Ensemble) and restored.model.combine == "logits"
    for original, loaded in zip(members, restored.model.members):
        for w, v in zip(original.get_weights(), loaded.get_weights()):
            np.testing.assert_array_equal(w, v)
    np.testing.assert_allclose(
        restored.predict(X, verbose=0), model.predict(X, verbose=0), atol=1e-6
    )
    restored.fit(X, Y, batch_size=16, epochs=1, verbose=0)  # and it keeps training
