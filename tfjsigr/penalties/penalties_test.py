"""Registry, config round trips, weight warm-up and composites of all penalties."""

import numpy as np
import pytest

import tfjsigr
from tfjsigr import penalties, testing
from tfjsigr.penalties import JSIGR, TRADES, InputGradient, Jacobian, SelectiveInputGradient

EXAMPLES = [
    InputGradient(12.5, variant="insensitive", warmup_steps=10),
    Jacobian(0.3, projections=3, name="jr"),
    Jacobian(0.3, projections="exact"),
    SelectiveInputGradient(2.0, mask="perturbation", top_k=0.3, smoothing=3),
    JSIGR(0.05, 20.0, projections=2, mask="annotation", top_k=0.1, warmup_steps=5),
    TRADES(3.0, epsilon=0.2, steps=4),
]


@pytest.mark.parametrize("penalty", EXAMPLES, ids=lambda p: p.name)
def test_config_round_trip(penalty):
    restored = type(penalty).from_config(penalty.get_config())
    assert restored.get_config() == penalty.get_config()
    via_keras = penalties.get(tfjsigr.RegularizedModel(testing.tiny_cnn(), [penalty]).get_config()["penalties"][0])
    assert type(via_keras) is type(penalty)
    assert via_keras.get_config() == penalty.get_config()


def test_get_accepts_names_dicts_and_instances():
    assert isinstance(penalties.get("jacobian"), Jacobian)
    from_dict = penalties.get({"type": "input_gradient", "weight": 5.0, "variant": "insensitive"})
    assert (from_dict.weight, from_dict.variant) == (5.0, "insensitive")
    instance = Jacobian(2.0)
    assert penalties.get(instance) is instance


@pytest.mark.parametrize(
    "identifier, message",
    [
        ("lipschitz_magic", "unknown penalty"),
        ({"weight": 1.0}, "needs a 'type'"),
        ({"type": "jacobian", "projection": 2}, "unexpected keyword"),
        (3.0, "cannot interpret"),
    ],
)
def test_get_rejects_bad_identifiers(identifier, message):
    with pytest.raises(ValueError, match=message):
        penalties.get(identifier)


def test_warmup_ramps_the_weight_linearly_then_holds():
    penalty = InputGradient(10.0, warmup_steps=4)
    weights = [float(penalty.weight_at(step)) for step in range(6)]
    np.testing.assert_allclose(weights, [2.5, 5.0, 7.5, 10.0, 10.0, 10.0])
    assert float(InputGradient(10.0).weight_at(0)) == 10.0


def test_jsigr_trains_its_two_components_and_reports_each():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 16, 16, 1)).astype(np.float32)
    y = rng.integers(0, 3, size=32).astype(np.int32)
    model = testing.compiled(testing.tiny_cnn(), [JSIGR(0.1, 5.0)])
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert history["jacobian"][0] > 0 and history["selective_input_gradient"][0] > 0
    penalty = model._trained_penalties
    assert [type(p) for p in penalty] == [Jacobian, SelectiveInputGradient]
    assert (penalty[0].weight, penalty[1].weight) == (0.1, 5.0)


def test_duplicate_metric_names_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        tfjsigr.RegularizedModel(testing.tiny_cnn(), [Jacobian(1.0), JSIGR()])


def test_jsigr_rejects_a_fractional_smoothing_instead_of_truncating_it():
    with pytest.raises(ValueError, match="smoothing must be a whole number >= 1, got 1.7"):
        JSIGR(smoothing=1.7)
