"""PGD-20 throughput (images/s): tfjsigr's compiled attack against cleverhans', one run.

Same model (a small CNN trained one epoch on the shipped sample), same images, same attack
parameters (L-inf, eps 0.1, step 0.01, 20 steps, no random start). Two rates of ours: the full
attack (the same computation as cleverhans, outputs identical) and the evaluation path
(`early_stop=True`: misclassified examples leave the batch and the attack stops once none
is left, as tfjsigr.evaluation runs it), each
with its ratio to cleverhans and the accuracy each leaves.
Run: `python benchmarks/attacks.py [--images 1000] [--batch 500] [--repeats 3]`.
"""

import argparse
import time

import keras
import numpy as np
from cleverhans.tf2.attacks.projected_gradient_descent import (
    projected_gradient_descent as cleverhans_pgd,
)

from tfjsigr.architectures import small_cnn
from tfjsigr.attacks import projected_gradient_descent
from tfjsigr.data import load_fashion_mnist

EPS, STEP, STEPS = 0.1, 0.01, 20


def rate(attack, x, y, batch, repeats):
    """Best of `repeats` images/s over all of x, after one warm-up batch."""
    attack(x[:batch], y[:batch])
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            np.asarray(attack(x[i : i + batch], y[i : i + batch]))
        best = max(best, len(x) / (time.perf_counter() - start))
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    x_train, y_train, _ = load_fashion_mnist("train", "sample")
    x, y, _ = load_fashion_mnist("test", "sample")
    x, y = x[: args.images], y[: args.images]
    keras.utils.set_random_seed(0)
    model = small_cnn()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0)

    def logits(v):
        return model(v, training=False)

    def attack(early_stop):
        return lambda xb, yb: projected_gradient_descent(
            logits, xb, yb, EPS, STEP, STEPS, rand_init=False, early_stop=early_stop
        )

    ours, ours_early = attack(False), attack(True)

    def theirs(xb, yb):
        return cleverhans_pgd(
            model, xb, EPS, STEP, STEPS, np.inf, clip_min=0.0, clip_max=1.0, y=yb, rand_init=False
        )

    difference = np.abs(np.asarray(ours(x[:64], y[:64])) - np.asarray(theirs(x[:64], y[:64]))).max()
    # Interleaved, best of each: other processes on the machine slow all alike.
    attacks = {"tfjsigr full": ours, "tfjsigr early-stop": ours_early, "cleverhans": theirs}
    rates = dict.fromkeys(attacks, 0.0)
    for _ in range(args.repeats):
        for name, attack in attacks.items():
            rates[name] = max(rates[name], rate(attack, x, y, args.batch, 1))
    print(f"PGD-{STEPS} L-inf eps {EPS}, {len(x)} images, batch {args.batch}, small_cnn, CPU")
    print(f"max |ours full - cleverhans| on 64 images: {difference:.2e}")
    for name, attack in attacks.items():
        adversarial = np.concatenate(
            [
                np.asarray(attack(x[i : i + args.batch], y[i : i + args.batch]))
                for i in range(0, len(x), args.batch)
            ]
        )
        accuracy = np.mean(np.argmax(model.predict(adversarial, verbose=0), 1) == y)
        print(
            f"{name:20} {rates[name]:8.1f} images/s  accuracy left {accuracy:.3f}  "
            f"ratio to cleverhans {rates[name] / rates['cleverhans']:.2f}x"
        )


if __name__ == "__main__":
    main()
