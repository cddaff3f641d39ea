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
