"""Per-step training time and peak memory of each penalty, estimator and adversarial-training
mode, as ratios to a plain Keras step.

All variants train the same small CNN (tfjsigr.architectures.small_cnn, 28x28x1, 10 classes) on
the same batch of the embedded Fashion-MNIST sample, in one process. "keras" is a plain
`keras.Model` (the reference of every ratio); "plain" is `RegularizedModel` without penalties
(its ratio is the wrapper's overhead). Each repeat times every variant in turn (interleaved, so
drift in machine load hits all of them alike); the table gives the median over repeats of the
mean step time, and its ratio to the keras step.

Peak memory of a step: `tf.config.experimental.get_memory_info` peak minus the memory in use
before the steps (peak reset per variant), on the GPU, or on the CPU through TensorFlow's BFC
allocator, which this script turns on (TF_CPU_ALLOCATOR_USE_BFC=true, before TensorFlow loads):
the default CPU allocator keeps no statistics, and the process's resident set does not move
once malloc's caches are warm.

After the table, `benchmarks/step_profile.py` prints where the time of the default-estimator
IGR, JR and J-SIGR steps goes (a phase breakdown and an op-level profile), on models of its own:
the table above is measured before it and without it. It times 5 calls x 20 repeats per phase
(`--profile-steps`, `--profile-repeats`) and traces 10 steps per model (`--trace-steps`), about
one to two minutes on a loaded 2-core CPU (the whole run: 6-7 minutes); `--no-profile` leaves it
out.

Usage: python benchmarks/train_step.py [--batch 128] [--steps 20] [--repeats 5] [--only a,b]
    [--no-profile] [--profile-steps 5] [--profile-repeats 20] [--trace-steps 10]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # memory statistics on CPU

import keras
import tensorflow as tf
from step_profile import profile  # benchmarks/step_profile.py, beside this script

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

TARGETS = {"plain": 1.05, "igr_default": 1.6, "jr_1_default": 1.6, "jsigr_default": 2.0, "jr_exact": 6.0}
FD, RD = "finite_difference", "random_directions"
PROFILED = ("keras", "igr_default", "jr_1_default", "jsigr_default")  # where the time goes


def variants():
    return {
        "keras": {"keras": True},
        "plain": {},
        "igr_default": {"penalties": [InputGradient(10.0)]},
        "jr_1_default": {"penalties": [Jacobian(0.05)]},
        "jsigr_default": {"penalties": [JSIGR(0.05, 20.0)]},
        "igr": {"penalties": [InputGradient(10.0)]},
        "jr_1": {"penalties": [Jacobian(0.05)]},
        "jr_exact": {"penalties": [Jacobian(0.05, projections="exact")]},
        "jr_exact_batch_jacobian": {"naive_exact_jacobian": True},
        "sigr": {"penalties": [SelectiveInputGradient(20.0)]},
        "jsigr": {"penalties": [JSIGR(0.05, 20.0)]},
        "jsigr_perturbation_mask": {"penalties": [JSIGR(0.05, 20.0, mask="perturbation")]},
        **estimator_variants(),
        "neuron_sensitivity": {"penalties": [NeuronSensitivity(1.0)]},
        "neuron_sensitivity+jr_1": {"penalties": [NeuronSensitivity(1.0), Jacobian(0.05)]},
        "lipschitz": {"penalties": [Lipschitz()]},
        "fgsm_rs": {"adversarial_training": "fgsm_rs"},
        "pgd_7": {"adversarial_training": tfjsigr.adversarial_training.AdversarialTraining("pgd", 0.1, 7)},
    }


def estimator_variants():
    """Every estimator of IGR, JR, SIGR and J-SIGR, and the penalty fractions."""
    table = {}
    for estimator in ("double_backprop", FD, RD):
        table[f"igr_{estimator}"] = {"penalties": [InputGradient(10.0, estimator=estimator)]}
        table[f"sigr_{estimator}"] = {"penalties": [SelectiveInputGradient(20.0, estimator=estimator)]}
        table[f"jsigr_{estimator}"] = {"penalties": [JSIGR(0.05, 20.0, estimator=estimator)]}
        table[f"jsigr_perturbation_mask_{estimator}"] = {
            "penalties": [JSIGR(0.05, 20.0, mask="perturbation", estimator=estimator)]
        }
    for estimator in ("double_backprop", RD):
        table[f"jr_1_{estimator}"] = {"penalties": [Jacobian(0.05, estimator=estimator)]}
    for fraction in (0.5, 0.25):
        table[f"igr_{FD}_f{fraction}"] = {
            "penalties": [InputGradient(10.0, estimator=FD, penalty_fraction=fraction)]
        }
        table[f"igr_{RD}_f{fraction}"] = {
            "penalties": [InputGradient(10.0, estimator=RD, penalty_fraction=fraction)]
        }
        table[f"jr_1_{RD}_f{fraction}"] = {
            "penalties": [Jacobian(0.05, estimator=RD, penalty_fraction=fraction)]
        }
        table[f"jsigr_{FD}_f{fraction}"] = {
            "penalties": [JSIGR(0.05, 20.0, estimator=FD, penalty_fraction=fraction)]
        }
        table[f"jsigr_perturbation_mask_{FD}_f{fraction}"] = {
            "penalties": [JSIGR(0.05, 20.0, mask="perturbation", estimator=FD, penalty_fraction=fraction)]
        }
    return table


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


def build(config, seed=0, backbone=None):
    keras.utils.set_random_seed(seed)
    backbone = small_cnn() if backbone is None else backbone
    if config.get("naive_exact_jacobian"):
        model = BatchJacobianModel(backbone)
    elif config.get("keras"):
        model = backbone
    else:
        model = tfjsigr.RegularizedModel(backbone, **config)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,  # "auto" compiles a plain keras.Model with XLA, slower on this CPU
    )
    return model


def mean_step_seconds(model, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def peak_step_memory_mib(model, x, y, steps=3):
    """Peak allocator memory of `steps` training steps beyond what was in use before, in MiB."""
    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    tf.config.experimental.reset_memory_stats(device)
    before = tf.config.experimental.get_memory_info(device)["current"]
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (tf.config.experimental.get_memory_info(device)["peak"] - before) / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated variants (keras always runs)")
    parser.add_argument("--no-profile", action="store_true", help="leave out where the time goes")
    parser.add_argument("--profile-steps", type=int, default=5, help="calls per phase timing")
    parser.add_argument("--profile-repeats", type=int, default=20, help="interleaved phase repeats")
    parser.add_argument("--trace-steps", type=int, default=10, help="steps traced per model")
    args = parser.parse_args()

    images, labels, source = load_fashion_mnist("train", source="sample")
    x, y = tf.constant(images[: args.batch]), tf.constant(labels[: args.batch])
    table = variants()
    names = ["keras", *(n for n in args.only.split(",") if n and n != "keras")] if args.only else table
    models = {name: build(table[name]) for name in names}
    for model in models.values():
        mean_step_seconds(model, x, y, 3)  # trace and warm up
    memory = {name: peak_step_memory_mib(model, x, y) for name, model in models.items()}
    load_before = os.getloadavg()
    timings = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            timings[name].append(mean_step_seconds(model, x, y, args.steps))
    medians = {name: statistics.median(values) for name, values in timings.items()}

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU x{os.cpu_count()}"
    print(f"small_cnn on {source}; batch {args.batch}, {args.steps} steps x {args.repeats} repeats; {device}")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {tf.config.threading.get_inter_op_parallelism_threads() or 'default'} inter-op threads")
    print(f"load average (1, 5, 15 min) before timing {load_before}, after {os.getloadavg()}")
    print("\n| variant | ms/step | ratio to keras | peak step memory (MiB) | target |\n|---|---:|---:|---:|---:|")
    for name, seconds in medians.items():
        target = f"<= {TARGETS[name]}x" if name in TARGETS else ""
        ratio = seconds / medians["keras"]
        print(f"| {name} | {1000 * seconds:.1f} | {ratio:.2f}x | {memory[name]:.1f} | {target} |")

    if not args.no_profile:
        profiled = {name: table[name] for name in PROFILED}
        profile(
            build, profiled, x, y, args.profile_steps, args.profile_repeats, args.trace_steps,
            targets=TARGETS,
        )


if __name__ == "__main__":
    main()
