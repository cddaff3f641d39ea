"""Side-by-side front of several `tfjsigr tune` run folders (the README's figure and table).

    python benchmarks/tune_fronts.py runs/tune-igr runs/tune-jr runs/tune-jsigr runs/tune-trades \
        --trials 4 --out docs/tune_front.png

Takes the first TRIALS trials of each study (an equal budget), the baselines any of them
recorded, and prints a Markdown table: per method, its Pareto set (within the cost tolerance).
"""

import argparse
import json
import pathlib

from tfjsigr.tuning import front
from tfjsigr.tuning.study import COST_TOLERANCE


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path)
    parser.add_argument("--trials", type=int, default=None, help="first N trials of each study")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("docs/tune_front.png"))
    args = parser.parse_args()
    groups, baselines, label = {}, {}, None
    for run in args.runs:
        data = json.loads((run / "trials.json").read_text())
        name = run.name.removeprefix("tune-")
        groups[name] = sorted(data["trials"], key=lambda t: t["number"])[: args.trials]
        baselines.update(data.get("baselines") or {})
        label = data["robustness"]
    title = f"{len(groups)} methods, {args.trials or 'all'} trials each (marker area: training s)"
    front.plot_front(groups, args.out, baselines, label, title, COST_TOLERANCE)
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
