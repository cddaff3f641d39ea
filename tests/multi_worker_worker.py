"""One process of tfjsigr/training_test.py's two-worker test: trains a tiny recipe, saves weights.

Usage: python multi_worker_worker.py DATA_DIR OUT.npz [STRATEGY]; TF_CONFIG names the cluster.
"""

import sys

import numpy as np

from tfjsigr.pipeline import recipes
from tfjsigr.pipeline import runs as training

RECIPE = {
    "name": "multi_worker",
    "dataset": "fashion_mnist",
    "architecture": {"name": "mlp", "hidden": [16]},
    "penalties": [{"type": "input_gradient", "weight": 1.0}],
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "epochs": 2,
    "batch_size": 16,
    "seed": 3,
}


def main(data_dir, out, strategy="multi-worker"):
    recipe = recipes.parse_recipe(RECIPE)
    result = training.train(
        recipe, strategy=strategy, data_dir=data_dir, source="full", verbose=0, evaluate=False
    )
    if result.is_chief:
        weights = result.model.get_weights()
        np.savez(
            out,
            *weights,
            loss=np.array(result.history["loss"]),
            replicas=result.metrics["replicas"],
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
