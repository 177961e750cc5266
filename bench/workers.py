"""Worker processes for the multi-process rows: started before the clock, released together.

A worker program prints ``ready`` once it has opened what it writes to, waits for ``go`` on
stdin, does its share, prints ``done``, and (when the row asks for it) waits for ``exit`` so
that its closing work stays outside the clock.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

_started: dict[Path, list[subprocess.Popen[str]]] = {}


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


def run(directory: Path, *, then_exit: bool = False) -> None:
    """Release the workers started for ``directory`` and wait until all are done.

    Args:
        directory: The folder `start` was given.
        then_exit: Tell each worker ``exit`` after every one said ``done`` (for workers that
            close their store, off the clock, only when told).
    """
    procs = _started.pop(directory)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline() != "done\n":
            raise RuntimeError(f"a worker failed: {proc.args!r}")
    for proc in procs:
        if then_exit:
            assert proc.stdin is not None
            proc.stdin.write("exit\n")
            proc.stdin.flush()
        proc.wait()
