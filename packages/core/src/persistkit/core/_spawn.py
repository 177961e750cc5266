"""Starting a real Python program for a test to watch and kill."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass


def spawn_python(
    code: str, *args: str | os.PathLike[str], env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``python -c code args...`` as a real, separate program, to be killed for real.

    Its stdin and stdout are text pipes (stderr is inherited, so a traceback shows in the test
    report): the program tells the test where it is by printing a line (flush it), and the test
    waits for that line with ``proc.stdout.readline()`` before it kills, so no test sleeps.

    Args:
        code: the program's source.
        args: its command-line arguments (``sys.argv[1:]``).
        env: its environment (default: this process's).

    Example:
        >>> code = "import sys; print('ready', flush=True); sys.stdin.read()"
        >>> proc = spawn_python(code)  # doctest: +SKIP
        >>> assert proc.stdout.readline() == "ready" + chr(10)  # doctest: +SKIP
        >>> kill_hard(proc)  # doctest: +SKIP
    """
    return subprocess.Popen(
        [sys.executable, "-c", code, *(os.fspath(arg) for arg in args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@dataclass(frozen=True)
class KilledRun:
    """What a program printed around a kill `run_until_killed` made.

    Attributes:
        acks: the words of every ``ack ...`` line, in the order printed (before and after
            the kill).
        lines: every line it printed after the kill.
        returncode: its exit status.
    """

    acks: list[list[str]]
    lines: list[str]
    returncode: int


def run_until_killed(
    proc: subprocess.Popen[str], kill: Callable[[], None], *, after: int, timeout: float = 120
) -> KilledRun:
    """Call ``kill`` after ``proc`` acknowledged ``after`` operations, then collect the rest.

    ``proc`` (started with `spawn_python`) prints ``ack ...`` once per operation it saw
    acknowledged, and ``error <type>`` when the failure ``kill`` causes (a server or a disk
    going away) reaches it as a typed error. No sleep: the kill happens at the line.

    Raises:
        AssertionError: the program ended without an ``error`` line (it crashed, or never
            saw the failure).
    """
    assert proc.stdout is not None
    acks: list[list[str]] = []
    for line in proc.stdout:
        if line.startswith("ack"):
            acks.append(line.split()[1:])
            if len(acks) == after:
                kill()
                break
    lines = proc.stdout.read().splitlines()
    returncode = proc.wait(timeout=timeout)
    acks += [line.split()[1:] for line in lines if line.startswith("ack")]
    assert any(line.startswith("error ") for line in lines), lines  # typed, not a crash
    return KilledRun(acks, lines, returncode)
