import numpy as np

from tfjsigr.evaluation import attacks as attacks_lib
from tfjsigr.evaluation import testing, transfer_matrix


def test_diagonal_equals_white_box_accuracy():
    _, _, x, y = testing.sample_data()
    x, y = x[:100], y[:100].astype(np.int32)
    model_fns = {
        "a": attacks_lib.logits_function(testing.tiny_model(0)),
        "b": attacks_lib.logits_function(testing.tiny_model(1, epochs=1)),
    }
    result = transfer_matrix(model_fns, x, y, eps=0.1, seed=3)
    for attack, entry in result.items():
        matrix = np.asarray(entry["accuracy"])
        assert matrix.shape == (2, 2)
        for i, name in enumerate(entry["sources"]):
            records, _ = attacks_lib.accuracy_curve(
                attack, model_fns[name], x, y, [0.1], seed=3, progress=False
            )
            assert matrix[i, i] == records[0]["accuracy"]
        # Crafted on the other model, an attack transfers less than white-box.
        assert matrix[0, 1] >= matrix[1, 1] and matrix[1, 0] >= matrix[0, 0]


def test_ensemble_transfer_is_mim_on_the_average_logits_and_evaluated_on_each_target():
    from tfjsigr.attacks import momentum_iterative_method
    from tfjsigr.evaluation.transfer import ensemble_logits, ensemble_transfer_accuracy

    _, _, x, y = testing.sample_data()
    x, y = x[:64], y[:64].astype(np.int32)
    sources = [attacks_lib.logits_function(testing.tiny_model(s, epochs=1)) for s in (1, 2)]
    target = attacks_lib.logits_function(testing.tiny_model(0, epochs=1))
    result = ensemble_transfer_accuracy(sources, {"t": target, "s1": sources[0]}, x, y, eps=0.2)
    assert result["parameters"] == {
        "attack": "mim", "norm": "inf", "steps": 10, "decay_factor": 1.0, "step_size": 0.02
    }  # fmt: skip
    assert result["samples"] == 64 and len(result["sources"]) == 2
    # The same examples, crafted by hand: MI-FGSM, 10 steps of eps/10, on the mean logits.
    x_adv = np.asarray(momentum_iterative_method(ensemble_logits(sources), x, y, 0.2, 0.02, 10))
    for name, fn in (("t", target), ("s1", sources[0])):
        assert result["accuracy"][name] == np.mean(attacks_lib.predictions(fn, x_adv) == y)
    # A member of the crafting ensemble is hurt at least as much as an independent target
    # (on this sample it is): the attack works and is not white-box on the target.
    assert result["accuracy"]["s1"] <= result["accuracy"]["t"] < testing.accuracy(target, x, y)


def test_the_jsigr_protocol_entry_is_a_one_row_transfer_table():
    from tfjsigr.evaluation.report import markdown
    from tfjsigr.evaluation.transfer import jsigr_protocol_entry

    _, _, x, y = testing.sample_data()
    x, y = x[:32], y[:32].astype(np.int32)
    sources = {"p1": testing.tiny_model(1, epochs=1), "p2": testing.tiny_model(2, epochs=1)}
    targets = {"a": testing.tiny_model(0, epochs=1), "b": sources["p1"]}
    entry = jsigr_protocol_entry(sources, targets, x, y, eps=0.1, seed=4)
    assert entry["sources"] == ["ensemble of p1 + p2"] and entry["targets"] == ["a", "b"]
    assert np.asarray(entry["accuracy"]).shape == (1, 2) and entry["samples"] == 32
    report = {"config": {"attacks": [], "eps_grid": [], "square_samples": 0}, "samples": 32,
              "seed": 4, "models": [], "transfer": {"mim-ensemble": entry}}  # fmt: skip
    assert "| ensemble of p1 + p2 |" in markdown(report)
