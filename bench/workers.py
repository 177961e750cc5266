"""Worker processes for the multi-process rows: started before the clock, released together.

A worker program prints ``ready`` once it has opened what it writes to, waits for ``go`` on
stdin, does its share, prints ``done`` and the CPU time its share took (`DONE` prints it),
and (when the row asks for it) waits for ``exit`` so that its closing work stays outside the
clock. `run` returns the workers' CPU time together: with more workers than cores, ops/s
cannot exceed the cores divided by the CPU time per op.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

_started: dict[Path, list[subprocess.Popen[str]]] = {}

# The lines a worker program starts with and ends its share with.
BEGIN = (
    "import sys, time\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "_cpu = time.process_time()\n"
)
DONE = "print('done', time.process_time() - _cpu, flush=True)\n"


def start(
    directory: Path,
    program: str,
    arguments: Sequence[Sequence[str]],
    *,
    env: Mapping[str, str] | None = None,
    envs: Sequence[Mapping[str, str]] | None = None,
) -> None:
    """Start one worker per argument list and wait until every one says ``ready``.

    ``envs`` gives each worker its own environment (e.g. its own S3 gateway); else ``env``.
    """
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", program, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=envs[index] if envs is not None else env,
        )
        for index, args in enumerate(arguments)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline() != "ready\n":
            raise RuntimeError(f"a worker did not start: {proc.args!r}")
    _started[directory] = procs


def run(directory: Path, *, then_exit: bool = False) -> float:
    """Release the workers started for ``directory`` and wait until all are done.

    Args:
        directory: The folder `start` was given.
        then_exit: Tell each worker ``exit`` after every one said ``done`` (for workers that
            close their store, off the clock, only when told).

    Returns:
        The CPU time (user + system) the workers' shares took, together.
    """
    procs = _started.pop(directory)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    cpu = 0.0
    for proc in procs:
        assert proc.stdout is not None
        said, _, seconds = proc.stdout.readline().partition(" ")
        if said != "done":
            raise RuntimeError(f"a worker failed: {proc.args!r}")
        cpu += float(seconds)
    for proc in procs:
        if then_exit:
            assert proc.stdin is not None
            proc.stdin.write("exit\n")
            proc.stdin.flush()
        proc.wait()
    return cpu


class CpuPerOp:
    """The CPU time per operation of multi-process rows, per case, over the repeats."""

    def __init__(self) -> None:
        self._seconds: dict[str, list[float]] = {}

    def add(self, case: str, seconds: float, ops: int) -> None:
        """Record one repeat: ``seconds`` of CPU (every process) for ``ops`` operations."""
        self._seconds.setdefault(case, []).append(seconds / max(ops, 1))

    def report(self, workload: str, op: str) -> list[str]:
        """The table of medians (no lines if nothing was recorded)."""
        if not self._seconds:
            return []
        lines = [
            "",
            f"CPU time per {op} in the {workload} (user + system, every process, median over",
            f"the repeats): with more processes than cores, {op}s/s cannot exceed the number",
            "of cores this run got divided by it.",
            "",
            f"| case | CPU per {op} |",
            "|---|--:|",
        ]
        for case, seconds in self._seconds.items():
            lines.append(f"| {case} | {statistics.median(seconds) * 1e6:.0f} us |")
        return lines
