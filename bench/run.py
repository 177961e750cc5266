"""Run the benchmarks: ``python bench/run.py [--quick] [--repeats N] [--only TEXT] [module ...]``.

Each ``bench/bench_<name>.py`` module defines ``workloads(quick: bool) -> list[Workload]``.
Every workload's cases are measured interleaved and printed as a markdown table; the whole
report is also written to ``bench/results/latest.md``, and the measurements to
``bench/results/latest.json`` (which ``bench/plots.py`` draws). ``--only TEXT`` keeps the
tables whose title holds TEXT, e.g. ``--only "8 processes"``, and leaves out the costly extra
reports (a module's ``brief_report`` of what was measured, such as commits per flush, stays).

A table whose measurement raises is reported as not measured and the run goes on (a long run
is not lost to one table); the run then exits with status 1 and does not count as complete.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Scratch, measure, record, table  # noqa: E402 - after the path is set


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modules", nargs="*", help="core, journal, store, iodict, tracker, spool")
    parser.add_argument("--quick", action="store_true", help="fewer operations, for a smoke run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="measure only the tables whose title holds TEXT (repeatable; skips costly extras)",
    )
    args = parser.parse_args()
    every = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    names = args.modules or every
    report = [
        "# persistkit benchmarks",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}, Python {platform.python_version()}, "
        f"{platform.machine()}, repeats={args.repeats}{' (quick)' if args.quick else ''}",
        "",
    ]
    print("\n".join(report), flush=True)
    measured = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "repeats": args.repeats,
        "quick": args.quick,
        "complete": not args.quick and not args.only and sorted(names) == every,
    }
    workloads = []
    failed: list[str] = []
    scratch = Scratch()
    try:
        for name in names:
            module = importlib.import_module(f"bench_{name}")
            for workload in module.workloads(args.quick):
                if args.only and not any(text in workload.title for text in args.only):
                    continue
                try:
                    measure(workload, scratch, args.repeats)
                except Exception as error:  # any failure: report the table, measure the rest
                    traceback.print_exc()
                    rendered = (
                        f"### {workload.title}\n\nNot measured: {type(error).__name__}: {error}\n"
                    )
                    print(rendered, flush=True)
                    report.append(rendered)
                    failed.append(workload.title)
                    continue
                rendered = table(workload)
                print(rendered, flush=True)
                report.append(rendered)
                workloads.append(record(workload, name))
            # With --only, a module's cheap report of what was just measured (commits per
            # flush) still runs; its costly extra measurements do not.
            extra = getattr(module, "brief_report" if args.only else "extra_report", None)
            if extra is not None:
                # A report that needs data on disk gets the run's scratch space, kept until
                # the run ends (deleting many files slows the next creations on this disk).
                wants_scratch = "scratch" in inspect.signature(extra).parameters
                rendered = (
                    extra(args.quick, scratch=scratch) if wants_scratch else extra(args.quick)
                )
                print(rendered, flush=True)
                report.append(rendered)
    finally:
        scratch.close()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text("\n".join(report))
    measured["workloads"] = workloads
    measured["complete"] = measured["complete"] and not failed
    (results / "latest.json").write_text(json.dumps(measured, indent=1))
    if failed:
        print("Not measured: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
