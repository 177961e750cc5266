"""The benchmark harness every bench_*.py module uses.

A workload is a set of cases measured side by side: each repeat runs every case once, in an
order that rotates between repeats, so drift of the disk (this project's disk drifts by 20%
over minutes) hits every case alike. The table shows the median of the repeats and each
case's ratio to the workload's baseline case.

Before each timed run the harness calls ``sync()``, so no case pays for the dirty pages an
earlier one left behind. Each case run gets its own fresh directory, kept until the whole run
ends: on ext4 without a journal, creating files right after deleting many others is several
times slower, which would punish file-per-item designs for the previous case's cleanup.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FLOOR_PAYLOAD = b"f" * 100

Run = Callable[[Path, int], object]
"""A case body: do ``n`` operations inside the given fresh directory."""

Setup = Callable[[Path, int], object]
"""Prepares a fresh directory before timing (e.g. fills a queue); not timed."""


@dataclass
class Case:
    name: str
    run: Run
    setup: Setup | None = None
    note: str = ""
    seconds: list[float] = field(default_factory=list)


@dataclass
class Workload:
    """Cases that do the same work, compared against ``baseline``."""

    title: str
    ops: int
    baseline: str
    cases: list[Case] = field(default_factory=list)
    unit: str = "ops/s"

    def add(self, name: str, run: Run, *, setup: Setup | None = None, note: str = "") -> None:
        self.cases.append(Case(name, run, setup, note))


class Scratch:
    """Fresh directories for case runs, all removed at the end of the run."""

    def __init__(self) -> None:
        base = os.environ.get("PERSISTKIT_BENCH_DIR")
        if base:
            Path(base).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="persistkit-bench-", dir=base or None))
        # ext4's Orlov allocator spreads the subfolders of a +T folder over block groups, so
        # a case does not land among inodes another run freed minutes ago (see PEERS.md).
        with contextlib.suppress(OSError):
            subprocess.run(["chattr", "+T", str(self.root)], capture_output=True, check=False)
        self._count = 0

    def fresh(self) -> Path:
        self._count += 1
        path = self.root / f"{self._count:05d}"
        path.mkdir()
        return path

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def measure(workload: Workload, scratch: Scratch, repeats: int) -> None:
    """Time every case ``repeats`` times, interleaved and rotated."""
    cases = workload.cases
    for repeat in range(repeats):
        shift = repeat % len(cases)
        for case in cases[shift:] + cases[:shift]:
            directory = scratch.fresh()
            if case.setup is not None:
                case.setup(directory, workload.ops)
            # Write back what earlier cases left dirty, so no case pays for another's data
            # (a syncfs or a device cache flush drains everything pending on the disk).
            os.sync()
            start = time.perf_counter()
            case.run(directory, workload.ops)
            case.seconds.append(time.perf_counter() - start)


def table(workload: Workload) -> str:
    """Render a workload's results as a markdown table."""
    rates = {case.name: workload.ops / statistics.median(case.seconds) for case in workload.cases}
    base = rates[workload.baseline]
    lines = [
        f"### {workload.title}",
        "",
        f"{workload.ops} operations per repeat, median of {len(workload.cases[0].seconds)} "
        f"interleaved repeats; ratio against `{workload.baseline}`.",
        "",
        f"| case | {workload.unit} | ratio | note |",
        "|---|--:|--:|---|",
    ]
    for case in workload.cases:
        rate = rates[case.name]
        lines.append(f"| {case.name} | {rate:,.0f} | {rate / base:.2f}x | {case.note} |")
    return "\n".join(lines) + "\n"


def record(workload: Workload, module: str) -> dict[str, object]:
    """A workload's results as plain data, for ``latest.json`` (and ``plots.py``)."""
    rates = {case.name: workload.ops / statistics.median(case.seconds) for case in workload.cases}
    base = rates[workload.baseline]
    return {
        "module": module,
        "title": workload.title,
        "ops": workload.ops,
        "unit": workload.unit,
        "baseline": workload.baseline,
        "cases": [
            {
                "name": case.name,
                "note": case.note,
                "seconds": case.seconds,
                "rate": rates[case.name],
                "ratio": rates[case.name] / base,
            }
            for case in workload.cases
        ],
    }


def floor(directory: Path, n: int, *, after_each: Callable[[int], object] | None = None) -> None:
    """The disk's floor for one durable commit: ``n`` overwrites of 100 B in one spot, each
    followed by ``fdatasync`` (and by ``after_each(i)``, for a protocol built on it).

    The spot is written and flushed once before the loop, so no iteration pays for
    allocating it.
    """
    fd = os.open(directory / "floor", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        os.pwrite(fd, FLOOR_PAYLOAD, 0)
        os.fsync(fd)
        for i in range(n):
            os.pwrite(fd, FLOOR_PAYLOAD, 0)
            os.fdatasync(fd)
            if after_each is not None:
                after_each(i)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Fsync a directory (for the hand-written os-only baselines)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def os_only_replace(path: Path, data: bytes, *, sync: bool) -> None:
    """The hand-written protocol every writer is compared with: temp, fsync, rename, dir fsync."""
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    if sync:
        fsync_dir(path.parent)
