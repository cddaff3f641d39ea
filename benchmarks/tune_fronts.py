"""Side-by-side front of several `tfjsigr tune` run folders (the README's figure and table).

    python benchmarks/tune_fronts.py runs/tune-igr runs/tune-jr runs/tune-jsigr runs/tune-trades \
        --trials 4 --out docs/tune_front.png
    python benchmarks/tune_fronts.py runs/tune-igr-transfer runs/tune-jr-transfer \
        runs/tune-jsigr-transfer runs/tune-trades-transfer --trials 4 --min-clean-shown 0.55 \
        --out docs/tune_front_transfer.png

Takes the first TRIALS finished (complete or pruned) trials of each study, an equal budget: a
trial that failed, e.g. one whose worker was killed and that the study retried as a new trial,
is not counted. Also the baselines any of them recorded. All the studies must share one robust
objective. Prints a Markdown table: per method, its Pareto set (within the cost tolerance).
"""

import argparse
import json
import pathlib
import textwrap
from unittest import mock

from tfjsigr.tuning import front
from tfjsigr.tuning.study import COST_TOLERANCE, ROBUSTNESS

FINISHED = ("COMPLETE", "PRUNED")  # The states a study counts towards --trials.


def method_name(run):
    """The method of a run folder: jsigr for runs/tune-jsigr and runs/tune-jsigr-transfer."""
    name = run.name.removeprefix("tune-")
    for robustness in ROBUSTNESS:
        name = name.removesuffix(f"-{robustness}")
    return name


def plot(groups, out, baselines, label, title, min_clean_shown=None):
    """front.plot_front, its y label wrapped, the clean axis cut at `min_clean_shown`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ylabel = textwrap.fill(label, 55)
    if min_clean_shown is None:
        front.plot_front(groups, out, baselines, ylabel, title, COST_TOLERANCE)
        return
    with mock.patch.object(plt, "close"):  # Keep the figure open to cut its axis.
        front.plot_front(groups, out, baselines, ylabel, title, COST_TOLERANCE)
    figure = plt.gcf()
    axes = figure.axes[0]
    axes.set_xlim(left=min_clean_shown)
    hidden = [(name, r) for name, records in groups.items() for r in records
              if front.has_values(r) and r["clean"] < min_clean_shown]  # fmt: skip
    shown = [r["robust"] for records in groups.values() for r in records
             if front.has_values(r) and r["clean"] >= min_clean_shown]  # fmt: skip
    shown += [b["robust"] for b in baselines.values() if front.has_values(b)]
    axes.set_ylim(min(shown) - 0.02, max(shown) + 0.02)
    if hidden:
        note = "; ".join(f"{name} trial {r['number']}: clean {r['clean']:.3f}, robust "
                         f"{r['robust']:.3f}" for name, r in hidden)  # fmt: skip
        axes.text(0.99, 0.01, "off the axes: " + note, transform=axes.transAxes, fontsize=7,
                  ha="right", va="bottom", wrap=True)  # fmt: skip
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path)
    parser.add_argument("--trials", type=int, default=None, help="first N finished trials of each")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("docs/tune_front.png"))
    parser.add_argument("--min-clean-shown", type=float, default=None,
                        help="left edge of the clean axis; trials left of it are listed, not drawn")  # fmt: skip
    args = parser.parse_args()
    groups, baselines, labels = {}, {}, {}
    for run in args.runs:
        data = json.loads((run / "trials.json").read_text())
        finished = [t for t in data["trials"] if t["state"] in FINISHED]
        groups[method_name(run)] = sorted(finished, key=lambda t: t["number"])[: args.trials]
        baselines.update(data.get("baselines") or {})
        labels[run] = data["robustness"]
    if len(set(labels.values())) > 1:
        mixed = "; ".join(f"{run}: {label}" for run, label in labels.items())
        parser.error(f"the studies measure different robust objectives ({mixed})")
    label = next(iter(labels.values()))
    title = f"{len(groups)} methods, {args.trials or 'all'} trials each (marker area: training s)"
    plot(groups, args.out, baselines, label, title, args.min_clean_shown)
    print(f"wrote {args.out}\n\nrobust: {label}\n")
    print("| method | trial | clean | robust | train s | parameters |\n|---|---|---|---|---|---|")
    for name, records in groups.items():
        for r in sorted(front.pareto_set(records, COST_TOLERANCE), key=lambda r: -r["robust"]):
            params = ", ".join(f"{k.split('.')[-1]} {v:.3g}" for k, v in r["params"].items())
            print(f"| {name} | {r['number']} | {r['clean']:.3f} | {r['robust']:.3f} | "
                  f"{r['seconds']:.0f} | {params} |")  # fmt: skip
    for name, point in baselines.items():
        print(f"| {name} (baseline) | - | {point['clean']:.3f} | {point['robust']:.3f} | "
              f"{point['seconds']:.0f} | - |")  # fmt: skip


if __name__ == "__main__":
    main()
