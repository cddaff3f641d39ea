"""Robustness of each penalty estimator against double backprop, at equal epochs.

Trains the zoo's small CNN (relu) on the full Fashion-MNIST training set (60,000 images) with
each variant below, the same seed, optimizer (Adam 1e-3), batch (64) and epochs, then measures on
the first `--eval` test images: clean accuracy, PGD-20 accuracy (L-inf eps 0.1, step 0.01, one
random start, seed 0) and AutoAttack accuracy (`tfjsigr.attacks.auto_attack`, L-inf eps 0.1,
version `--auto-attack`, seed 0). One JSON line per variant is appended to `--out`; a markdown
table of everything in `--out` is printed at the end.

`--bias-variance` instead trains the small CNN without penalty for one epoch on the full set and
compares, on 128 test images, each estimator's batch-mean penalty over `--draws` independent draws
with the exact value (double backprop; exact Jacobian): relative bias of the mean and relative
standard deviation of one draw.

Usage: python benchmarks/estimator_robustness.py [--epochs 2] [--eval 1000]
           [--variants jsigr_double_backprop,jsigr_finite_difference,...] [--out results.jsonl]
       python benchmarks/estimator_robustness.py --bias-variance [--draws 50]
"""

import argparse
import json
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from tfjsigr import RegularizedModel
from tfjsigr.architectures import small_cnn
from tfjsigr.data import load_fashion_mnist, make_dataset
from tfjsigr.evaluation import metrics as robustness
from tfjsigr.penalties import JSIGR, InputGradient, Jacobian, SelectiveInputGradient

EPS, PGD_STEP, PGD_STEPS, SEED = 0.1, 0.01, 20, 0


def variants():
    """name -> penalties; the weights are the zoo recipes' (igr, jr, jsigr)."""
    table = {"plain": []}
    for estimator in ("double_backprop", "finite_difference", "random_directions"):
        table[f"jsigr_{estimator}"] = [JSIGR(0.05, 20.0, estimator=estimator)]
        table[f"igr_{estimator}"] = [InputGradient(10.0, estimator=estimator)]
    for fraction in (0.5, 0.25):
        table[f"jsigr_finite_difference_f{fraction}"] = [
            JSIGR(0.05, 20.0, estimator="finite_difference", penalty_fraction=fraction)
        ]
        table[f"igr_random_directions_f{fraction}"] = [
            InputGradient(10.0, estimator="random_directions", penalty_fraction=fraction)
        ]
        table[f"jr_random_directions_f{fraction}"] = [
            Jacobian(0.5, estimator="random_directions", penalty_fraction=fraction)
        ]
    table["jr_double_backprop"] = [Jacobian(0.5)]
    table["jr_random_directions"] = [Jacobian(0.5, estimator="random_directions")]
    return table


def train(penalties, train_images, train_labels, epochs):
    keras.utils.set_random_seed(SEED)
    model = RegularizedModel(small_cnn(activation="relu"), penalties=penalties)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    data = make_dataset(train_images, train_labels, 64, shuffle=True, seed=SEED)
    start = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0)
    return model, time.perf_counter() - start


def evaluate(model, x, y, auto_attack_version):
    logits = model.predict(x, batch_size=500, verbose=0)
    result = {
        "clean": float(np.mean(np.argmax(logits, 1) == y)),
        "pgd20": robustness.pgd_accuracy(model, x, y, EPS, PGD_STEP, PGD_STEPS, seed=SEED),
    }
    if auto_attack_version != "none":
        from tfjsigr.attacks import auto_attack

        x_adv = auto_attack(
            lambda inputs: model(inputs, training=False), x, y, eps=EPS,
            version=auto_attack_version, seed=SEED,
        )  # fmt: skip
        adv_logits = model.predict(np.asarray(x_adv), batch_size=500, verbose=0)
        result["auto_attack"] = float(np.mean(np.argmax(adv_logits, 1) == y))
    return result


def bias_variance(train_images, train_labels, x, y, draws, step):
    model, _ = train([], train_images, train_labels, 1)
    backbone = model.model
    fd, rd = "finite_difference", "random_directions"
    cases = {
        "igr": (InputGradient(), [(fd, {}), (rd, {}), (rd, {"directions": 4}), (fd, {"penalty_fraction": 0.25}),
                                  (rd, {"penalty_fraction": 0.25})]),
        "sigr (self_topk)": (SelectiveInputGradient(), [(fd, {}), (rd, {}), (fd, {"penalty_fraction": 0.25})]),
        "jr": (Jacobian(projections="exact"), [(rd, {}), (rd, {"penalty_fraction": 0.5}), ("double_backprop", {})]),
    }  # fmt: skip
    print("\n| penalty | estimator | exact | relative bias of the mean | relative std of one draw |")
    print("|---|---|---:|---:|---:|")
    for kind, (reference, estimators) in cases.items():
        exact = evaluate_penalty(backbone, reference, x, y, 1)[0]
        for estimator, extra in estimators:
            if kind == "jr":
                penalty = Jacobian(projections=1, estimator=estimator, step=step, **extra)
            else:
                penalty = type(reference)(estimator=estimator, step=step, **extra)
            values = evaluate_penalty(backbone, penalty, x, y, draws)
            label = estimator + "".join(f", {k}={v}" for k, v in extra.items())
            bias = (np.mean(values) - exact) / exact
            print(f"| {kind} | {label}, h={step} | {exact:.4g} | {100 * bias:+.2f}% | {100 * np.std(values) / exact:.1f}% |")


def evaluate_penalty(backbone, penalty, x, y, draws):
    model = RegularizedModel(backbone, penalties=[penalty])
    step = tf.function(lambda: model.compute_penalties(x, y, training=False)[1][penalty.name])
    return [float(step()) for _ in range(draws)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--eval", type=int, default=1000)
    parser.add_argument("--variants", default=",".join(variants()))
    parser.add_argument("--auto-attack", default="fast", choices=["fast", "standard", "none"])
    parser.add_argument("--out", default="estimator_robustness.jsonl")
    parser.add_argument("--bias-variance", action="store_true")
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--step", type=float, default=0.01, help="h of --bias-variance")
    args = parser.parse_args()

    train_images, train_labels, source = load_fashion_mnist("train", source="full")
    test_images, test_labels, _ = load_fashion_mnist("test", source="full")
    if args.bias_variance:
        bias_variance(train_images, train_labels, tf.constant(test_images[:128]), tf.constant(test_labels[:128]), args.draws, args.step)
        return
    x, y = test_images[: args.eval], test_labels[: args.eval]
    table = variants()
    for name in args.variants.split(","):
        model, seconds = train(table[name], train_images, train_labels, args.epochs)
        row = {"variant": name, "epochs": args.epochs, "train_seconds": round(seconds, 1),
               "eval_images": len(x), "source": source, "auto_attack_version": args.auto_attack}  # fmt: skip
        row.update(evaluate(model, x, y, args.auto_attack))
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    rows = [json.loads(line) for line in pathlib.Path(args.out).read_text().splitlines()]
    print("\n| variant | epochs | train s | clean | PGD-20 | AutoAttack |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        aa = f"{100 * r['auto_attack']:.1f}" if "auto_attack" in r else "-"
        print(f"| {r['variant']} | {r['epochs']} | {r['train_seconds']:.0f} | {100 * r['clean']:.1f} "
              f"| {100 * r['pgd20']:.1f} | {aa} |")  # fmt: skip


if __name__ == "__main__":
    main()
