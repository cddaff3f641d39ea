"""Attack throughput (images/s): tfjsigr's PGD-20 against cleverhans', AutoAttack against ART.

Same model (a small CNN trained one epoch on the shipped sample), same images, same attack
parameters (L-inf, eps 0.1, step 0.01, 20 steps, no random start). Two rates of ours: the full
attack (the same computation as cleverhans, outputs identical) and the evaluation path
(`early_stop=True`: misclassified examples leave the batch and the attack stops once none
is left, as tfjsigr.evaluation runs it), each
with its ratio to cleverhans and the accuracy each leaves.

AutoAttack rows (`--autoattack-images`, default 200, L-inf eps 0.1, seed 0): ours, standard
(APGD-CE, APGD-T, FAB-T, Square 5,000) and fast (APGD-CE, APGD-T), against the same sequence
run with the Adversarial Robustness Toolbox's attacks at equal iterations: APGD-CE (100
iterations, first step 2 eps), APGD-T (targeted DLR, 100 iterations for each of the 9 most
likely wrong classes) and, for the standard version, Square (5,000 queries), each on the images
still robust. ART has no FAB, so its standard sequence does less work than ours: the standard
ratio understates our speed. Each row gives images/s, the accuracy left and the ratio.

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
from tfjsigr.attacks import auto_attack, projected_gradient_descent
from tfjsigr.attacks.auto_attack import predictions
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


def art_auto_attack(model, x, y, eps, version, seed=0):
    """AutoAttack's sequence from ART's attacks: robust flags after APGD-CE, APGD-T (, Square)."""
    import random
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "PyTorch not found"
        from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack
        from art.estimators.classification import TensorFlowV2Classifier

    classifier = TensorFlowV2Classifier(
        model=model, nb_classes=10, input_shape=x.shape[1:], clip_values=(0.0, 1.0),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )  # fmt: skip
    np.random.seed(seed)
    random.seed(seed)
    logits = model.predict(x, verbose=0)
    robust = np.argmax(logits, 1) == y
    targets = np.argsort(-logits, axis=1)[:, 1:10]

    def run(attack, labels):
        index = np.flatnonzero(robust)
        if len(index):
            found = attack.generate(x[index], labels[index])
            robust[index[np.argmax(model.predict(found, verbose=0), 1) != y[index]]] = False

    def apgd(targeted, loss):
        return AutoProjectedGradientDescent(
            classifier, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=100, targeted=targeted,
            nb_random_init=1, batch_size=len(x), loss_type=loss, verbose=False,
        )  # fmt: skip

    run(apgd(False, "cross_entropy"), y)
    targeted = apgd(True, "difference_logits_ratio")
    for k in range(targets.shape[1]):
        run(targeted, targets[:, k])
    if version == "standard":
        square = SquareAttack(classifier, norm=np.inf, eps=eps, max_iter=5000, p_init=0.8,
                              batch_size=len(x), verbose=False)  # fmt: skip
        run(square, y)
    return robust


def autoattack_rows(model, logits, x, y):
    """Ours and ART's AutoAttack (standard, fast): images/s, accuracy left, ratio."""
    y = np.asarray(y, np.int32)
    auto_attack(logits, x[:8], y[:8], EPS, version="fast", seed=0)  # Traces the compiled steps.
    print(f"AutoAttack L-inf eps {EPS}, {len(x)} images, seed 0 (ART: same sequence, no FAB)")
    for version in ("fast", "standard"):
        start = time.perf_counter()
        ours = np.mean(predictions(logits, auto_attack(logits, x, y, EPS, version=version)) == y)
        ours_rate = len(x) / (time.perf_counter() - start)
        start = time.perf_counter()
        theirs = art_auto_attack(model, x, y, EPS, version).mean()
        theirs_rate = len(x) / (time.perf_counter() - start)
        print(
            f"autoattack {version:8} ours {ours_rate:7.1f} images/s (accuracy left {ours:.3f})  "
            f"ART {theirs_rate:7.1f} images/s ({theirs:.3f})  ratio {ours_rate / theirs_rate:.2f}x"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--autoattack-images", type=int, default=200, help="0: skip those rows")
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
    if args.autoattack_images:
        count = args.autoattack_images
        autoattack_rows(model, logits, x[:count], y[:count])


if __name__ == "__main__":
    main()
