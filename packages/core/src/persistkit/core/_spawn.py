"""Starting a real Python program for a test to watch and kill."""

from __future__ import annotations

import os
import subprocess
import sys


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
