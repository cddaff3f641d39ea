"""Per-step training time of each penalty and adversarial-training mode, as ratios to plain.

All variants train the same small CNN (tfjsigr.architectures.small_cnn, 28x28x1, 10 classes) on
the same batch of the embedded Fashion-MNIST sample, in one process. Each repeat times every
variant in turn (interleaved, so drift in machine load hits all of them alike); the table gives
the median over repeats of the mean step time, and its ratio to plain training.

Usage: python benchmarks/train_step.py [--batch 128] [--steps 20] [--repeats 5]
"""

import argparse
import statistics
import time

import keras
import tensorflow as tf

import tfjsigr
from tfjsigr.architectures import small_cnn
from tfjsigr.data import load_fashion_mnist
from tfjsigr.penalties import (
    JSIGR,
    InputGradient,
    Jacobian,
    Lipschitz,
    NeuronSensitivity,
    SelectiveInputGradient,
)

TARGETS = {"igr": 1.9, "jr_1": 2.0, "jsigr": 2.3, "jr_exact": 6.0}


def variants():
    return {
        "plain": {},
        "igr": {"penalties": [InputGradient(10.0)]},
        "jr_1": {"penalties": [Jacobian(0.05)]},
        "jr_exact": {"penalties": [Jacobian(0.05, projections="exact")]},
        "jr_exact_batch_jacobian": {"naive_exact_jacobian": True},
        "sigr": {"penalties": [SelectiveInputGradient(20.0)]},
        "jsigr": {"penalties": [JSIGR(0.05, 20.0)]},
        "jsigr_perturbation_mask": {"penalties": [JSIGR(0.05, 20.0, mask="perturbation")]},
        "neuron_sensitivity": {"penalties": [NeuronSensitivity(1.0)]},
        "neuron_sensitivity+jr_1": {"penalties": [NeuronSensitivity(1.0), Jacobian(0.05)]},
        "lipschitz": {"penalties": [Lipschitz()]},
        "fgsm_rs": {"adversarial_training": "fgsm_rs"},
        "pgd_7": {"adversarial_training": tfjsigr.adversarial_training.AdversarialTraining("pgd", 0.1, 7)},
    }


class BatchJacobianModel(keras.Model):
    """Exact JR through `tape.batch_jacobian`: the naive baseline the exact mode is compared with."""

    def __init__(self, backbone, weight=0.05):
        super().__init__()
        self.backbone = backbone
        self.weight = weight

    def call(self, x, training=None):
        return self.backbone(x, training=training)

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            with tf.GradientTape() as input_tape:
                input_tape.watch(x)
                logits = self(x, training=True)
            jacobian = input_tape.batch_jacobian(logits, x)
            penalty = 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(jacobian), axis=[1, 2, 3, 4]))
            loss = self.compute_loss(x=x, y=y, y_pred=logits) + self.weight * penalty
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return {"loss": loss}


def build(config, seed=0):
    keras.utils.set_random_seed(seed)
    backbone = small_cnn()
    if config.get("naive_exact_jacobian"):
        model = BatchJacobianModel(backbone)
    else:
        model = tfjsigr.RegularizedModel(backbone, **config)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def mean_step_seconds(model, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    images, labels, source = load_fashion_mnist("train", source="sample")
    x, y = tf.constant(images[: args.batch]), tf.constant(labels[: args.batch])
    models = {name: build(config) for name, config in variants().items()}
    for model in models.values():
        mean_step_seconds(model, x, y, 3)  # trace and warm up
    timings = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            timings[name].append(mean_step_seconds(model, x, y, args.steps))
    medians = {name: statistics.median(values) for name, values in timings.items()}

    print(f"small_cnn on {source}; batch {args.batch}, {args.steps} steps x {args.repeats} repeats")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {tf.config.threading.get_inter_op_parallelism_threads() or 'default'} inter-op threads")
    print("\n| variant | ms/step | ratio to plain | target |\n|---|---:|---:|---:|")
    for name, seconds in medians.items():
        target = f"<= {TARGETS[name]}x" if name in TARGETS else ""
        print(f"| {name} | {1000 * seconds:.1f} | {seconds / medians['plain']:.2f}x | {target} |")


if __name__ == "__main__":
    main()
