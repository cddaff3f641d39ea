"""End-to-end demo: a J-SIGR model and its unregularized twin on the embedded Fashion-MNIST.

Run with `python -m tfjsigr.pipeline.demo` (or `make demo`). Trains both with the same seed, then
prints the figures every training run ends with (`tfjsigr.evaluation.metrics.run_figures`):
clean accuracy, fast AutoAttack and PGD-20 accuracy (L-inf, eps 0.1) and the mean exact ||J||_F.
"""

import argparse
import time

import keras

import tfjsigr
from tfjsigr.architectures import small_cnn
from tfjsigr.data import load_fashion_mnist
from tfjsigr.evaluation.metrics import PGD_EVALUATION, run_figures


def train(penalties, x, y, epochs, seed):
    keras.utils.set_random_seed(seed)
    model = tfjsigr.RegularizedModel(small_cnn(), penalties=penalties)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=2)
    return model, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default="sample", choices=["sample", "full", "auto"])
    parser.add_argument("--eval-size", type=int, default=1000)
    parser.add_argument("--jacobian-weight", type=float, default=0.01)
    parser.add_argument("--selective-weight", type=float, default=5.0)
    args = parser.parse_args(argv)

    x_train, y_train, train_from = load_fashion_mnist("train", args.source)
    x_test, y_test, test_from = load_fashion_mnist("test", args.source)
    x_test, y_test = x_test[: args.eval_size], y_test[: args.eval_size]
    print(f"train: {train_from}\ntest: {test_from}")
    variants = {
        "plain": [],
        "jsigr": [tfjsigr.penalties.JSIGR(args.jacobian_weight, args.selective_weight)],
    }
    rows = []
    for name, penalties in variants.items():
        print(f"--- training {name}")
        model, seconds = train(penalties, x_train, y_train, args.epochs, args.seed)
        rows.append((name, run_figures(model.model, x_test, y_test, args.seed), seconds))
    pgd = PGD_EVALUATION
    print(
        f"\nAutoAttack (fast) and PGD-{pgd['steps']} (step {pgd['step_size']}) at L-inf eps "
        f"{pgd['eps']}, {len(x_test)} test images, seed {args.seed}"
    )
    print(f"{'model':8} {'clean':>7} {'AA-fast':>8} {'PGD':>7} {'||J||_F':>8} {'train s':>8}")
    for name, figures, seconds in rows:
        print(
            f"{name:8} {figures['clean_accuracy']:7.3f} {figures['autoattack_accuracy']:8.3f} "
            f"{figures['pgd_accuracy']:7.3f} {figures['mean_jacobian_norm']:8.2f} {seconds:8.1f}"
        )


if __name__ == "__main__":
    main()
