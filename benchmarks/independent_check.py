"""Our AutoAttack and Square against attacks we did not write, on the exported SavedModels.

For each zoo entry, on the same N test images (the first N of the evaluation's test set), at
the same L-inf eps, the Adversarial Robustness Toolbox's APGD-CE and APGD-DLR (100 iterations,
first step 2 eps, one random start) and its Square (5,000 queries, p_init 0.8) attack the
entry's exported SavedModel (`saved_model/<version>/`, signature `serving_default`). An image
counts as robust for ART only if none of its three attacks flips it. Ours: `auto_attack`
(standard) and `square` (5,000 queries) on the same SavedModel.

PASS when ART's worst case is at most 2 points below our AutoAttack, and ART's Square at most
3 points below ours: our figures survive a stronger attack that we did not write.

Run: `python benchmarks/independent_check.py [--zoo zoo] [--images 300] [--models jsigr igr]`.
"""

import argparse
import pathlib
import random
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfjsigr import attacks
from tfjsigr.attacks.auto_attack import predictions
from tfjsigr.data import load_fashion_mnist
from tfjsigr.zoo.card import read_card

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # ART: "PyTorch not found"
    from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack
    from art.estimators.classification import TensorFlowV2Classifier


def saved_model_logits(entry):
    """Logits function of an entry's newest exported SavedModel (its `serving_default`)."""
    version = read_card(entry)["version"]
    loaded = tf.saved_model.load(str(entry / "saved_model" / str(version)))

    def logits(x, training=False):  # Holds `loaded`: its variables live as long as it.
        signature = loaded.signatures["serving_default"]
        return signature(image=tf.convert_to_tensor(x, tf.float32))["logits"]

    return logits


def art_attacks(model_fn, shape, classes, eps, images):
    classifier = TensorFlowV2Classifier(
        model=model_fn,
        nb_classes=classes,
        input_shape=shape,
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=(0.0, 1.0),
    )
    apgd = {
        f"apgd-{loss}": AutoProjectedGradientDescent(
            classifier,
            norm=np.inf,
            eps=eps,
            eps_step=2 * eps,
            max_iter=100,
            targeted=False,
            nb_random_init=1,
            batch_size=images,
            loss_type=art_loss,
            verbose=False,
        )
        for loss, art_loss in (("ce", "cross_entropy"), ("dlr", "difference_logits_ratio"))
    }
    square = SquareAttack(
        classifier, norm=np.inf, eps=eps, max_iter=5000, p_init=0.8, batch_size=images,
        verbose=False,
    )  # fmt: skip
    return {**apgd, "square": square}


def robust_under(model_fn, x_adv, x, y, eps):
    inside = np.abs(x_adv - x).reshape(len(x), -1).max(axis=1) <= eps + 1e-5
    return ~(inside & (predictions(model_fn, x_adv) != y))


def check(entry, x, y, eps, seed):
    model_fn = saved_model_logits(entry)
    classes = int(model_fn(x[:1]).shape[-1])
    start = time.perf_counter()
    ours = robust_under(model_fn, attacks.auto_attack(model_fn, x, y, eps, seed=seed), x, y, eps)
    ours_square = robust_under(
        model_fn, np.asarray(attacks.square(model_fn, x, y, eps, 5000, seed=seed)), x, y, eps
    )
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    theirs = {}
    for name, attack in art_attacks(model_fn, x.shape[1:], classes, eps, len(x)).items():
        np.random.seed(seed)
        random.seed(seed)
        theirs[name] = robust_under(model_fn, attack.generate(x, y), x, y, eps)
    art_worst = np.logical_and.reduce(list(theirs.values()))
    return {
        "clean": float(np.mean(predictions(model_fn, x) == y)),
        "ours_autoattack": float(ours.mean()),
        "art_worst": float(art_worst.mean()),
        "art": {name: float(flags.mean()) for name, flags in theirs.items()},
        "ours_square": float(ours_square.mean()),
        "both_worst": float((ours & art_worst).mean()),
        "seconds": (round(ours_seconds), round(time.perf_counter() - start)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--zoo", type=pathlib.Path, default=pathlib.Path("zoo"))
    parser.add_argument("--models", nargs="*", help="entry names (default: every entry)")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default="sample", help="test set of the evaluation")
    args = parser.parse_args(argv)
    names = args.models or sorted(p.parent.name for p in args.zoo.glob("*/card.json"))
    x, y, _ = load_fashion_mnist("test", args.source)
    x, y = x[: args.images], np.asarray(y[: args.images], np.int32)
    print(f"L-inf eps {args.eps}, first {len(x)} test images ({args.source}), seed {args.seed}")
    header = (
        f"{'model':10} {'clean':>6} {'ours AA':>8} {'ART worst':>9} {'AA-ART':>7} "
        f"{'ours Sq':>8} {'ART Sq':>7} {'Sq-ART':>7} {'both':>6}  ART per attack; seconds"
    )
    print(header)
    failed = False
    for name in names:
        r = check(args.zoo / name, x, y, args.eps, args.seed)
        gap, square_gap = r["ours_autoattack"] - r["art_worst"], r["ours_square"] - r["art"]["square"]
        passed = gap <= 0.02 + 1e-9 and square_gap <= 0.03 + 1e-9
        failed |= not passed
        per_attack = ", ".join(f"{k} {v:.3f}" for k, v in r["art"].items())
        print(
            f"{name:10} {r['clean']:6.3f} {r['ours_autoattack']:8.3f} {r['art_worst']:9.3f} "
            f"{100 * gap:+6.1f}p {r['ours_square']:8.3f} {r['art']['square']:7.3f} "
            f"{100 * square_gap:+6.1f}p {r['both_worst']:6.3f}  {per_attack}; "
            f"ours {r['seconds'][0]} s, ART {r['seconds'][1]} s  {'PASS' if passed else 'FAIL'}",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
