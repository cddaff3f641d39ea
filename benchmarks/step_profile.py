"""Where the time of a penalized train step goes: phases and ops (printed by `make bench`).

`benchmarks/train_step.py` calls `profile` after its ratio table, on models of its own (the
ratios are measured before and without it). For each default-estimator (double backprop)
penalty step it prints:

1. A phase breakdown. The step is cut into cumulative phases, each compiled as its own
   `tf.function` on the same model and batch, and timed interleaved (every repeat runs every
   function of every variant in turn, like the ratio table):

   1. forward + loss
   2. + weight gradient of the loss (phases 1-2 are a plain step without the optimizer)
   3. + input gradient(s): the forward pass runs under the input tape and every input-gradient
      target the penalties register is differentiated (the first backward pass; J-SIGR's
      self_topk mask needs 3: d CE/dx, d z_y/dx and one Jacobian projection)
   4. + penalty forward (norms, masks, top-k) from those gradients
   5. + double backward: the weight gradient of loss + penalties instead of the loss alone
   6. + optimizer apply: the whole step of `RegularizedModel.train_step` without its metrics

   A phase's marginal time is the median over repeats of its time minus the previous phase's
   in the same repeat (± half their interquartile range); shares are of phase 6's median. The phases mirror `RegularizedModel.compute_penalties` (input-gradient branch) and
   `train_step` step by step, through the same penalty objects and `PenaltyContext` (checked
   once: with the same random seed, phase 5's loss and weight gradients equal, bit for bit,
   those of `compute_penalties` + `compute_loss` for IGR and J-SIGR). Also timed in the same
   interleave: the plain step compiled the same way (phases 1-2 + apply), the library's own
   `train_on_batch` (phase 6 plus Keras' dispatch and metrics) and the plain `keras.Model`'s
   `train_on_batch` (the reference of the ratio table).

2. An op-level profile: `tf.profiler.experimental` traces a few `train_on_batch` steps of each
   variant (and of the plain keras step) to a temporary directory, in two rounds that take
   turns between the models; TensorFlow's own profiler
   plugin (`framework_op_stats`, in the tensorflow wheel: no extra package) sums each op's self
   time. Ops are grouped by pass, from their names: forward; first-order backward
   ("gradient_tape/": the input gradients and the weight gradient through the forward ops);
   second-order backward ("gradient_tape/gradient_tape/": the weight gradient through the
   input-gradient graph); optimizer (its name scope); other (loss, penalty, gradient accumulation,
   metrics). Times are CPU self time summed over threads, per step, so they can exceed the wall
   time of a step. The profiled backbones are `small_cnn` clones whose layers are renamed
   conv1, pool1, conv2, pool2, flatten, dense, logits (same architecture and weights) so that
   op names say which layer an op belongs to. If the profiler or its converter is missing, the
   op-level part says so and the phase breakdown still prints.
"""

import collections
import glob
import json
import os
import re
import statistics
import tempfile
import time

import keras
import tensorflow as tf

from tfjsigr.architectures import small_cnn
from tfjsigr.penalties.penalty import PenaltyContext

PHASES = (
    "1 forward + loss",
    "2 + weight gradient (= plain step w/o optimizer)",
    "3 + input gradient (first backward)",
    "4 + penalty forward",
    "5 + double backward (weight gradient of the penalty)",
    "6 + optimizer apply (= full step)",
)
LAYER_NAMES = ("conv1", "pool1", "conv2", "pool2", "flatten", "dense", "logits")
CATEGORIES = ("forward", "backward, 1st order", "backward, 2nd order", "optimizer", "other")


def renamed_backbone(backbone):
    """`backbone` (small_cnn) cloned with its layers named after their place in the network."""
    layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = dict(zip((id(layer) for layer in layers), LAYER_NAMES))

    def clone(layer):
        config = layer.get_config()
        config["name"] = names.get(id(layer), config["name"])
        return layer.__class__.from_config(config)

    clone_model = keras.models.clone_model(backbone, clone_function=clone)
    clone_model.set_weights(backbone.get_weights())
    return clone_model


def phase_function(model, phase):
    """A tf.function running phases 1..`phase` of `model`'s (a RegularizedModel) train step.

    Every intermediate the phase computes is returned, so no op is pruned from the graph.
    """
    penalties = model._trained_penalties
    weights = model.trainable_weights

    # No tensor-dependent Python control flow here: autograph off, so it does not try (and warn
    # about) converting the penalties' methods.
    @tf.function(jit_compile=False, reduce_retracing=True, autograph=False)
    def run(x, y):
        x = tf.cast(x, tf.float32)
        kept = []
        with tf.GradientTape() as tape:
            if phase >= 3:
                context = PenaltyContext(model, x, y, None, None, None, True)
                for penalty in penalties:
                    penalty.add_inputs(context)
                with tf.GradientTape(persistent=True, watch_accessed_variables=False) as input_tape:
                    input_tape.watch(x)
                    y_pred, context.activations, _ = model._forward(x, True)
                    context.logits = tf.cast(y_pred, tf.float32)
                    for penalty in penalties:
                        penalty.add_targets(context)
                context.compute_gradients(input_tape)
                kept.extend(context.gradient(key) for key in context._targets)
                for penalty in penalties:
                    penalty.add_gradient_inputs(context)
                if context.pending_inputs() is not None:
                    raise ValueError("the phase profile covers double-backprop penalties only")
            else:
                y_pred = model(x, training=True)
            loss = tf.cast(model.compute_loss(x=x, y=y, y_pred=y_pred), tf.float32)
            if phase >= 4:
                step = model.optimizer.iterations
                values = {p.name: p.compute(context) for p in penalties}
                penalty_total = tf.add_n([p.weight_at(step) * values[p.name] for p in penalties])
                kept.append(penalty_total)
                if phase >= 5:
                    loss = loss + penalty_total
        if phase == 1:
            return loss, kept
        gradients = tape.gradient(model.optimizer.scale_loss(loss), weights)
        if phase == 6:
            model.optimizer.apply_gradients(zip(gradients, weights))
            return loss, kept
        return loss, kept, gradients

    return run


def plain_step_function(model):
    """Forward, loss, weight gradient and optimizer apply, compiled like the phases."""
    weights = model.trainable_weights

    @tf.function(jit_compile=False, reduce_retracing=True, autograph=False)
    def run(x, y):
        with tf.GradientTape() as tape:
            y_pred = model(tf.cast(x, tf.float32), training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred)
        gradients = tape.gradient(loss, weights)
        model.optimizer.apply_gradients(zip(gradients, weights))
        return loss

    return run


def train_on_batch_function(model):
    return lambda x, y: model.train_on_batch(x, y)


def mean_seconds(function, x, y, steps):
    start = time.perf_counter()
    for _ in range(steps):
        function(x, y)
    return (time.perf_counter() - start) / steps


def timed_interleaved(functions, x, y, steps, repeats):
    """{key: [mean milliseconds per call, one per repeat]}; every repeat runs all keys in turn.

    Odd repeats run the keys in reverse order, so a drift in machine load within a repeat
    does not bias the differences between neighbouring keys.
    """
    for function in functions.values():
        mean_seconds(function, x, y, 2)  # trace and warm up
    timings = collections.defaultdict(list)
    keys = list(functions)
    for repeat in range(repeats):
        for key in keys if repeat % 2 == 0 else reversed(keys):
            timings[key].append(1000 * mean_seconds(functions[key], x, y, steps))
    return timings


def median_and_spread(values):
    """(median, half the interquartile range) of a list of numbers."""
    if len(values) < 2:
        return statistics.median(values), 0.0
    quartiles = statistics.quantiles(values, n=4)
    return statistics.median(values), (quartiles[2] - quartiles[0]) / 2


def phase_table(models, x, y, steps, repeats, targets):
    """Markdown lines of the phase breakdown of every penalized model in `models`.

    A phase's marginal time is the median over repeats of (its time - the previous phase's
    time in the same repeat); the +- is half the interquartile range of those differences.
    """
    reference = models["keras"]
    penalized = {name: model for name, model in models.items() if name != "keras"}
    functions = {("keras", "train_on_batch"): train_on_batch_function(reference)}
    for name, model in penalized.items():
        for phase in range(1, len(PHASES) + 1):
            functions[(name, phase)] = phase_function(model, phase)
        functions[(name, "plain")] = plain_step_function(model)
        functions[(name, "train_on_batch")] = train_on_batch_function(model)
    timings = timed_interleaved(functions, x, y, steps, repeats)
    ms = {key: statistics.median(values) for key, values in timings.items()}
    keras_ms = ms[("keras", "train_on_batch")]

    names = list(penalized)
    lines = [
        "| phase (cumulative) | " + " | ".join(f"{n}: ms (share)" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for phase, label in enumerate(PHASES, start=1):
        cells = []
        for name in names:
            current = timings[(name, phase)]
            previous = timings[(name, phase - 1)] if phase > 1 else [0.0] * len(current)
            marginal, spread = median_and_spread([a - b for a, b in zip(current, previous)])
            share = marginal / ms[(name, len(PHASES))]
            sign = "+" if phase > 1 else ""
            cells.append(f"{marginal:{sign}.1f} ± {spread:.1f} ({100 * share:.0f}%)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    full = [ms[(n, len(PHASES))] for n in names]
    plain = [ms[(n, "plain")] for n in names]
    library = [ms[(n, "train_on_batch")] for n in names]
    extra = [
        median_and_spread([a - b for a, b in zip(timings[(n, 5)], timings[(n, 2)])]) for n in names
    ]
    rows = [
        ("full step (phase 6), ms", [f"{v:.1f}" for v in full]),
        ("plain step compiled alike (phases 1, 2 + apply), ms", [f"{v:.1f}" for v in plain]),
        ("penalty's extra (phases 3-5), ms", [f"{m:.1f} ± {s:.1f}" for m, s in extra]),
        ("phase 6 / plain step", [f"{f / p:.2f}x" for f, p in zip(full, plain)]),
        ("library train_on_batch, ms", [f"{v:.1f}" for v in library]),
        (f"library train_on_batch / keras train_on_batch ({keras_ms:.1f} ms)", [
            f"{v / keras_ms:.2f}x" for v in library
        ]),
        ("target (ratio to keras)", [f"<= {targets[n]}x" if n in targets else "" for n in names]),
        ("ms to cut to meet it", [
            f"{v - targets[n] * keras_ms:.1f}" if n in targets else "" for n, v in zip(names, library)
        ]),
    ]
    lines.extend(f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows)
    return lines


def input_gradient_targets(model, x, y):
    """Names of the input-gradient targets the model's penalties register (traced once)."""
    context = PenaltyContext(model, x[:2], y[:2], model(x[:2], training=False))
    with tf.GradientTape(watch_accessed_variables=False):
        for penalty in model._trained_penalties:
            penalty.add_targets(context)
    return list(context._targets)


# ---- op-level profile -------------------------------------------------------------------------


def op_stats(function, x, y, steps):
    """[(op type, op name, self microseconds)] of `steps` calls, from TensorFlow's profiler."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    function(x, y)  # warm
    with tempfile.TemporaryDirectory(prefix="step_profile_") as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(steps):
                function(x, y)
        finally:
            tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        if not paths:
            raise RuntimeError("the profiler wrote no xplane.pb")
        data, _ = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    try:
        tables = json.loads(data)
    except ValueError:
        raise RuntimeError(f"framework_op_stats: {data[:200]!r}") from None
    table = tables[-1]  # the last table leaves IDLE out
    columns = [column["id"] for column in table["cols"]]
    stats = []
    for row in table["rows"]:
        cells = dict(zip(columns, (cell.get("v") if cell else None for cell in row["c"])))
        if cells["type"] != "IDLE":
            stats.append((cells["type"], cells["operation"], float(cells["total_self_time"])))
    return stats


def category(op_name, optimizer_name):
    if op_name.startswith("gradient_tape/gradient_tape/"):
        return "backward, 2nd order"
    if op_name.startswith("gradient_tape/"):
        return "backward, 1st order"
    if op_name.startswith(f"{optimizer_name}/"):
        return "optimizer"
    if any(re.fullmatch(rf"{layer}(_\d+)*", part) for part in op_name.split("/") for layer in LAYER_NAMES):
        return "forward"
    return "other"


def layer_of(op_name):
    for part in op_name.split("/"):
        for layer in LAYER_NAMES:
            if re.fullmatch(rf"{layer}(_\d+)*", part):
                return layer
    return ""


def op_tables(models, x, y, steps, top, rounds=2):
    """Markdown lines: CPU ms per step by pass for every model, and each penalized model's top ops.

    Each model's `steps` traced steps are split into `rounds` traces, the models taking turns.
    """
    rounds = max(1, min(rounds, steps))
    per_step = {name: collections.Counter() for name in models}
    for round_steps in [steps // rounds + (i < steps % rounds) for i in range(rounds)]:
        for name, model in models.items():
            for kind, op, micros in op_stats(train_on_batch_function(model), x, y, round_steps):
                per_step[name][(kind, op)] += micros / 1000 / steps
    per_step = {
        name: [(kind, op, ms) for (kind, op), ms in counter.items()]
        for name, counter in per_step.items()
    }

    names = list(models)
    lines = [
        (
            f"CPU self time per step (ms, summed over threads; share), by pass; {steps} traced "
            f"steps each, in {rounds} rounds:"
        ),
        "",
        "| pass | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    optimizers = {name: model.optimizer.name for name, model in models.items()}
    totals = {name: collections.Counter() for name in names}
    for name in names:
        for _, op, ms in per_step[name]:
            totals[name][category(op, optimizers[name])] += ms
    busy = {name: sum(totals[name].values()) for name in names}
    for kind in CATEGORIES:
        cells = (f"{totals[n][kind]:.1f} ({100 * totals[n][kind] / busy[n]:.0f}%)" for n in names)
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines.append("| total | " + " | ".join(f"{sum(totals[n].values()):.1f}" for n in names) + " |")

    for name in names:
        if name == "keras":
            continue
        grouped = collections.Counter()
        for kind, op, ms in per_step[name]:
            grouped[(category(op, optimizers[name]), kind, layer_of(op))] += ms
        busy = sum(grouped.values())
        lines += [
            "",
            f"{name}: top {top} ops by self time (pass, op type, layer), of {busy:.1f} CPU ms/step:",
            "",
            "| pass | op type | layer | ms/step | share | cumulative |",
            "|---|---|---|---:|---:|---:|",
        ]
        cumulative = 0.0
        for (kind_of_pass, kind, layer), ms in grouped.most_common(top):
            cumulative += ms
            lines.append(
                f"| {kind_of_pass} | {kind} | {layer} | {ms:.2f} | {100 * ms / busy:.1f}% "
                f"| {100 * cumulative / busy:.0f}% |"
            )
    return lines


def profile(build, configs, x, y, steps=5, repeats=20, trace_steps=10, top=12, targets=None):
    """Prints the phase breakdown and the op-level profile of `configs` ({name: build config}).

    Args:
        build: `train_step.build(config, backbone=...)`: a compiled model of a variant.
        configs: {name: config}; "keras" (the plain reference) must be among them.
        x, y: the batch.
        steps, repeats: calls per timing and interleaved repeats of the phase breakdown.
        trace_steps: train_on_batch steps traced per model by the op-level profile.
        top: ops listed per penalized model.
        targets: {name: target ratio to the keras step}, shown under the phase table.
    """
    models = {}
    for name, config in configs.items():
        keras.utils.set_random_seed(0)
        models[name] = build(config, backbone=renamed_backbone(small_cnn()))
    print(
        f"\n## Where the time goes (default estimator: double backprop)\n\n"
        f"Phase breakdown: each phase a separately compiled tf.function on the same model and "
        f"batch, {steps} calls x {repeats} interleaved repeats; marginal ms (median of the "
        f"per-repeat differences ± half their IQR) and share of phase 6."
    )
    for name, model in models.items():
        if name != "keras":
            print(f"- {name}: input-gradient targets {input_gradient_targets(model, x, y)}")
    print(f"load average before {os.getloadavg()}\n")
    for line in phase_table(models, x, y, steps, repeats, targets or {}):
        print(line)
    print(f"load average after {os.getloadavg()}\n")
    try:
        lines = op_tables(models, x, y, trace_steps, top)
    except Exception as error:  # noqa: BLE001 - the op-level part is optional
        print(f"op-level profile unavailable: {type(error).__name__}: {error}")
        return
    print("Op-level profile (tf.profiler.experimental + TensorFlow's framework_op_stats), "
          "train_on_batch of each model:\n")
    for line in lines:
        print(line)
