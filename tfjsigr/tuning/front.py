"""The accuracy-robustness-cost front of a study: Pareto set, figure, table and best recipe.

A trial record is a dict with "number", "clean", "robust", "seconds" (the objectives: clean
and robust accuracy, maximized; training seconds, minimized) and "params"; records of trials
without values (pruned, failed) may carry None there and never join the front.
"""

import json
import math
import pathlib

from tfjsigr import io

OBJECTIVES = (("clean", 1), ("robust", 1), ("seconds", -1))  # (key, +1 maximize / -1 minimize)


def _values(record):
    return tuple(sign * record[key] for key, sign in OBJECTIVES)


def has_values(record):
    """Whether a trial record has every objective (a finished, unpruned trial)."""
    return all(isinstance(record.get(key), (int, float)) for key, _ in OBJECTIVES)


def dominates(a, b, cost_tolerance=0.0):
    """Whether record a is at least as good as b on every objective and better on one.

    Training seconds within a relative `cost_tolerance` of each other count as equal: on a
    shared machine wall-clock time varies by that much between identical runs.
    """
    (ca, ra, sa), (cb, rb, sb) = _values(a), _values(b)  # Seconds negated: larger is better.
    as_cheap = sa >= sb * (1 + cost_tolerance)
    cheaper = sa > sb * (1 - cost_tolerance) if cost_tolerance else sa > sb
    at_least = ca >= cb and ra >= rb and as_cheap
    return at_least and (ca > cb or ra > rb or cheaper)


def pareto_set(records, cost_tolerance=0.0):
    """The records no other record dominates (in the order given), trials without values out."""
    done = [r for r in records if has_values(r)]
    return [r for r in done if not any(dominates(o, r, cost_tolerance) for o in done)]


def best_trial(records, min_clean=0.0):
    """The most robust record with clean accuracy >= min_clean (ties: cleaner, then cheaper).

    It always lies on the Pareto set. Returns None when no trial reaches the floor.
    """
    eligible = [r for r in records if has_values(r) and r["clean"] >= min_clean]
    if not eligible:
        return None
    return max(eligible, key=lambda r: (r["robust"], r["clean"], -r["seconds"]))


def pareto_table(records, robust_label="robust", cost_tolerance=0.0):
    """A Markdown table of the Pareto set, most robust first."""
    front = sorted(pareto_set(records, cost_tolerance), key=lambda r: (-r["robust"], -r["clean"]))
    names = sorted({name for r in front for name in r.get("params", {})})
    header = ["trial", "clean", robust_label, "train s", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in front:
        params = [_short(r["params"].get(name)) for name in names]
        cells = [str(r["number"]), f"{r['clean']:.3f}", f"{r['robust']:.3f}", f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells + params) + " |")
    return "\n".join(lines) + "\n"


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_front(
    groups, path, baselines=None, robust_label="robust accuracy", title=None, cost_tolerance=0.0
):
    """PNG of clean against robust accuracy: every trial, the Pareto set marked, baselines.

    Args:
        groups: {label: [trial records]}, one colour each (one study, or several side by side).
        path: the PNG to write.
        baselines: {label: {"clean", "robust", "seconds"}} reference points (e.g. plain,
            FGSM-RS, PGD-AT, TRADES), drawn as labelled stars.
        robust_label: the y axis label (the attack, eps and samples).
        title: the figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = [r for records in groups.values() for r in records if has_values(r)]
    every += [b for b in (baselines or {}).values() if has_values(b)]
    longest = max([r["seconds"] for r in every] or [1.0]) or 1.0

    def size(record):  # Marker area grows with the training cost.
        return 20 + 280 * math.sqrt(max(record["seconds"], 0.0) / longest)

    figure, axes = plt.subplots(figsize=(7, 5.5))
    for index, (label, records) in enumerate(groups.items()):
        colour = f"C{index}"
        done = [r for r in records if has_values(r)]
        front = pareto_set(done, cost_tolerance)
        pruned = len(records) - len(done)
        axes.scatter(
            [r["clean"] for r in done], [r["robust"] for r in done], s=[size(r) for r in done],
            color=colour, alpha=0.35,
            label=f"{label}: {len(done)} trials" + (f" (+{pruned} pruned/failed)" if pruned else ""),
        )  # fmt: skip
        front.sort(key=lambda r: r["clean"])
        axes.scatter(
            [r["clean"] for r in front], [r["robust"] for r in front], s=[size(r) for r in front],
            facecolors="none", edgecolors=colour, linewidths=2, label=f"{label}: Pareto set",
        )  # fmt: skip
    for label, point in (baselines or {}).items():
        if has_values(point):
            axes.scatter([point["clean"]], [point["robust"]], s=size(point), marker="*", color="k")
            axes.annotate(label, (point["clean"], point["robust"]), xytext=(5, 5),
                          textcoords="offset points", fontsize=9)  # fmt: skip
    axes.set_xlabel("clean accuracy")
    axes.set_ylabel(robust_label)
    axes.set_title(title or "accuracy-robustness-cost front (marker area: training seconds)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
    return path


def to_toml(data, comment=""):
    """TOML text of recipe data: scalars, lists of scalars, tables and arrays of tables."""
    lines = [f"# {line}" for line in comment.splitlines()]
    scalars = {k: v for k, v in data.items() if not _is_table(v) and not _is_table_array(v)}
    lines += [f"{key} = {_toml_value(value)}" for key, value in scalars.items()]
    for key, value in data.items():
        if _is_table(value):
            lines += ["", f"[{key}]", *(f"{k} = {_toml_value(v)}" for k, v in value.items())]
        elif _is_table_array(value):
            for table in value:
                lines += ["", f"[[{key}]]", *(f"{k} = {_toml_value(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


def _is_table(value):
    return isinstance(value, dict)


def _is_table_array(value):
    return isinstance(value, (list, tuple)) and bool(value) and all(map(_is_table, value))


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # A TOML basic string.
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    raise ValueError(f"cannot write {value!r} as a TOML value")
