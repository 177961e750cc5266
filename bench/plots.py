"""Draw the benchmark report's figures from a run's measurements.

``python bench/plots.py [RESULTS_JSON] [--out DIR] [--publish DIR]`` reads what
``bench/run.py`` wrote (``bench/results/latest.json`` by default) and draws one PNG per
package: a bar per case of every workload, its throughput relative to the workload's baseline
(the hand-written os-only protocol, or the peer the package replaces), on the same axis as the
tables in the report. The figures go to ``bench/results/plots/``; with ``--publish DIR`` a
complete run (every package, not ``--quick``) also writes them to DIR, where the documentation
site takes them from (``docs/images/benchmarks``: commit them with the tables of the same run).
``nox -s bench`` calls this after every run.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
COLORS = {"persistkit": "#2b6cb0", "baseline": "#8a8a8a", "os": "#c4c4c4", "peer": "#dd8452"}


def color(case: dict[str, Any], baseline: str) -> str:
    """Blue for persistkit, grey for the baseline (light: hand-written), orange for peers."""
    if case["name"] == baseline:
        return COLORS["baseline"]
    if case["name"].startswith("os-only"):
        return COLORS["os"]
    if case["name"].startswith(("persistkit", "core ")):
        return COLORS["persistkit"]
    return COLORS["peer"]


def draw(module: str, workloads: list[dict[str, Any]], run: dict[str, Any], path: Path) -> None:
    """One figure for one package: a panel per workload, a bar per case."""
    heights = [0.9 + 0.32 * len(workload["cases"]) for workload in workloads]
    figure, axes = plt.subplots(
        len(workloads),
        1,
        figsize=(7.2, sum(heights) + 0.5),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for axis, workload in zip(axes[:, 0], workloads, strict=True):
        cases = workload["cases"]
        ratios = [case["ratio"] for case in cases]
        positions = range(len(cases))
        axis.barh(
            positions,
            ratios,
            color=[color(case, workload["baseline"]) for case in cases],
            height=0.7,
        )
        axis.set_yticks(list(positions), [case["name"] for case in cases], fontsize=8)
        axis.invert_yaxis()
        axis.axvline(1.0, color="#444444", linewidth=0.8)
        wide = max(ratios) / min(ratios) > 30
        if wide:
            axis.set_xscale("log")
        axis.set_xlim(right=max(ratios) * (1.5 if wide else 1.05))
        for position, case in zip(positions, cases, strict=True):
            # Labels may run past the axis into the figure's margin, which tight_layout makes.
            axis.annotate(
                f"{case['rate']:,.0f} {workload['unit']} ({case['ratio']:.2f}x)",
                (case["ratio"], position),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                annotation_clip=False,
            )
        axis.set_title(f"{workload['title']}", fontsize=9, loc="left")
        axis.tick_params(axis="x", labelsize=7)
        axis.spines[["top", "right"]].set_visible(False)
    axes[-1, 0].set_xlabel(
        "throughput relative to each panel's baseline (the grey bar, 1.0); "
        "log scale where the spread is wide",
        fontsize=7,
    )
    figure.suptitle(
        f"{module}: {run['date']}, Python {run['python']}, median of {run['repeats']} "
        f"interleaved repeats{' (quick)' if run['quick'] else ''}",
        fontsize=9,
        x=0.01,
        ha="left",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")  # labels past the axes included
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="?", default=str(HERE / "results" / "latest.json"))
    parser.add_argument("--out", default=str(HERE / "results" / "plots"))
    parser.add_argument("--publish", help="also write here, if the run was complete")
    args = parser.parse_args()
    run = json.loads(Path(args.results).read_text(encoding="utf-8"))
    targets = [Path(args.out)]
    if args.publish and run["complete"]:
        targets.append(Path(args.publish))
    elif args.publish:
        print(f"not a complete run (--quick, or not every package): {args.publish} unchanged")
    modules: dict[str, list[dict[str, Any]]] = {}
    for workload in run["workloads"]:
        modules.setdefault(workload["module"], []).append(workload)
    for target in targets:
        target.mkdir(parents=True, exist_ok=True)
        for module, workloads in modules.items():
            finite = [w for w in workloads if all(math.isfinite(c["ratio"]) for c in w["cases"])]
            draw(module, finite, run, target / f"{module}.png")
        print(f"{len(modules)} figures in {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
