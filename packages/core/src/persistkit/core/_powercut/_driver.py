"""Drive power cuts: at every sync barrier of an operation, at random points, across processes.

The operation runs in a forked child that reports each filesystem call through core's seam
(`persistkit.core._fs`). To cut before the child's k-th call, the child stops there and
waits; the state is frozen and the child killed, then the crash state is mounted and the
caller's check runs in this process, on the remounted filesystem.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import selectors
import signal
import struct
import subprocess
import tempfile
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from persistkit.core import _fs
from persistkit.core._powercut._client import COUNTERS, CutMode, PowerCutFS
from persistkit.core._powercut._model import CrashReport

BARRIER_CALLS = frozenset({"fsync", "fdatasync", "fsync_dir", "syncfs"})
"""The seam calls that are sync barriers: a cut is tried just before and just after each."""

_HEADER = struct.Struct("!I")


class OperationFailedError(RuntimeError):
    """The operation raised in its child before the cut; the message holds its traceback."""


@dataclass(frozen=True, slots=True)
class PowerCut:
    """Where one run was cut, and how.

    Attributes:
        k: the run was cut just before the operation's k-th filesystem call (counting the
            calls core's seam reports, from 1); past the last call it was cut after the
            operation returned.
        call: the name of that call (``"fsync"``, ``"rename"``...), or None when the
            operation had returned before the cut.
        path: the file or directory of that call, or None.
        mode: ``"strict"`` or ``"random"``.
        seed: the random seed of a random cut.
        report: what the cut did (pending changes, how many were kept).
    """

    k: int
    call: str | None
    path: str | None
    mode: str
    seed: int | None
    report: CrashReport

    @property
    def completed(self) -> bool:
        """Whether the operation returned before the cut (everything it promised must hold)."""
        return self.call is None

    def describe(self) -> str:
        """Say where and how the run was cut, seed included, for a failure message."""
        if self.call is None:
            where = "after the operation returned"
        else:
            where = f"just before call {self.k} ({self.call} {self.path})"
        how = "strict" if self.seed is None else f"random, seed={self.seed}"
        kept = f"{self.report.kept} of {self.report.pending} pending changes kept"
        return f"power cut {where} [{how}; {kept}]"


@dataclass(slots=True)
class CutSummary:
    """What a driver did: its cuts, in order.

    Attributes:
        cuts: every cut made and checked.
        calls: the filesystem calls of one full run of the operation, by name.
    """

    cuts: list[PowerCut] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    @property
    def barriers(self) -> int:
        """How many sync barriers one run of the operation passes."""
        return sum(1 for name in self.calls if name in BARRIER_CALLS)


def _check(check: Callable[[PowerCut], object], point: PowerCut) -> None:
    try:
        check(point)
    except BaseException as error:
        COUNTERS.violations += 1
        error.add_note(point.describe())
        raise
    COUNTERS.checked += 1


def _child(operation: Callable[[], object], stop_at: int | None, report: int) -> NoReturn:
    seen: list[tuple[str, str]] = []

    def observe(name: str, path: str) -> None:
        seen.append((name, path))
        if stop_at is not None and len(seen) == stop_at:
            _send(report, ("call", name, path))
            # Wait to be killed: the parent freezes the filesystem with this process here.
            while True:
                signal.pause()

    _fs.set_observer(observe)
    try:
        operation()
    except BaseException:  # reported to the parent
        _send(report, ("error", traceback.format_exc()))
        os._exit(1)
    _send(report, ("done", [name for name, _path in seen]))
    os._exit(0)


def _send(fd: int, message: object) -> None:
    body = pickle.dumps(message)
    data = _HEADER.pack(len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


def _receive(fd: int) -> Any:
    header = _read_exactly(fd, _HEADER.size)
    if not header:
        return None
    return pickle.loads(_read_exactly(fd, _HEADER.unpack(header)[0]))


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return data
        data += chunk
    return data


@dataclass(slots=True)
class _Run:
    pid: int
    message: Any


def _start(operation: Callable[[], object], stop_at: int | None) -> _Run:
    """Fork the operation; return once it stopped at call ``stop_at`` or finished."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(read_end)
        _child(operation, stop_at, write_end)
    os.close(write_end)
    try:
        message = _receive(read_end)
    finally:
        os.close(read_end)
    if message is None or message[0] == "error":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        detail = "it died without a word" if message is None else message[1]
        raise OperationFailedError(f"the operation failed before the cut:\n{detail}")
    return _Run(pid, message)


def _record(fs: PowerCutFS, operation: Callable[[], object], base: Any) -> list[str]:
    """Run the operation to completion once, from ``base``, and return its calls by name.

    It starts from a boot of ``base`` as every cut run does, so it makes the same calls.
    """
    fs.restore(base)
    run = _start(operation, None)
    os.waitpid(run.pid, 0)
    calls: list[str] = run.message[1]
    return calls


def _cut_and_check(
    fs: PowerCutFS,
    operation: Callable[[], object],
    k: int,
    plan: Sequence[tuple[CutMode, int | None]],
    check: Callable[[PowerCut], object],
) -> list[PowerCut]:
    """Run the operation up to call ``k``, cut there, and check each crash state of ``plan``."""
    run = _start(operation, k)
    try:
        reports = fs.power_off_many(plan)
    finally:
        _kill(run.pid)
    points = []
    for report in reports:
        fs.power_on()
        if run.message[0] == "call":
            point = PowerCut(k, run.message[1], run.message[2], report.mode, report.seed, report)
        else:
            point = PowerCut(k, None, None, report.mode, report.seed, report)
        _check(check, point)
        points.append(point)
    return points


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _modes(modes: Sequence[CutMode], seeds: Sequence[int]) -> list[tuple[CutMode, int | None]]:
    plan: list[tuple[CutMode, int | None]] = []
    for mode in modes:
        if mode == "strict":
            plan.append(("strict", None))
        else:
            plan.extend(("random", seed) for seed in seeds)
    return plan


def cut_at_every_barrier(
    fs: PowerCutFS,
    operation: Callable[[], object],
    *,
    check: Callable[[PowerCut], object],
    setup: Callable[[], object] | None = None,
    modes: Sequence[CutMode] = ("strict", "random"),
    seeds: Sequence[int] = (0,),
) -> CutSummary:
    """Cut the power just before and just after each sync barrier of ``operation``.

    ``setup()`` runs once, on the mount; what it leaves is taken as durable (as after a
    ``sync``) and restored before every run. The operation then runs in a forked child that
    is stopped at the chosen call; the state is cut there, the child killed, and
    ``check(point)`` runs here on the rebooted mount, once per crash state drawn from that
    moment. The barriers are the seam's fsync,
    fdatasync, directory fsync and syncfs calls: for each, a cut just before it and one just
    after it (before the next call); one more cut comes after the operation returned. Each
    point is cut in every mode: ``"strict"`` once, ``"random"`` once per seed.

    Args:
        fs: the mounted power-cut filesystem.
        operation: what to cut; it runs in the child. It must make the same filesystem
            calls on every run from the same state.
        check: asserts what must hold after the cut (``point.completed`` says whether the
            operation had returned). A failure is re-raised with the point and seed noted.
        setup: puts the starting files in place.
        modes: which crash states to check.
        seeds: the seeds of the random cuts at each point.

    Returns:
        Every cut made, and the operation's calls.

    Raises:
        OperationFailedError: the operation raised before reaching a cut point.
    """
    base = _prepare(fs, setup)
    calls = _record(fs, operation, base)
    points = {len(calls) + 1}  # after the operation returned: all it promised must hold
    for index, name in enumerate(calls, start=1):
        if name in BARRIER_CALLS:
            points.update((index, index + 1))
    summary = CutSummary(calls=calls)
    plan = _modes(modes, seeds)
    for k in sorted(points):
        fs.restore(base)
        summary.cuts.extend(_cut_and_check(fs, operation, k, plan, check))
    return summary


def cut_at_random_points(
    fs: PowerCutFS,
    operation: Callable[[], object],
    *,
    check: Callable[[PowerCut], object],
    setup: Callable[[], object] | None = None,
    runs: int = 10,
    seed: int = 0,
    modes: Sequence[CutMode] = ("strict", "random"),
) -> CutSummary:
    """Cut the power before a randomly chosen filesystem call of ``operation``, ``runs`` times.

    As `cut_at_every_barrier`, but each run draws the call to cut before (any call, or
    after the operation returned), the mode and the random cut's seed from ``seed``: the
    same ``seed`` gives the same runs.
    """
    rng = random.Random(seed)
    base = _prepare(fs, setup)
    calls = _record(fs, operation, base)
    summary = CutSummary(calls=calls)
    for _ in range(runs):
        k = rng.randint(1, len(calls) + 1)
        mode = rng.choice(list(modes))
        cut_seed = rng.randrange(2**32) if mode == "random" else None
        fs.restore(base)
        summary.cuts.extend(_cut_and_check(fs, operation, k, [(mode, cut_seed)], check))
    return summary


def _prepare(fs: PowerCutFS, setup: Callable[[], object] | None) -> Any:
    if setup is not None:
        setup()
    fs.sync()
    return fs.snapshot()


@dataclass(frozen=True, slots=True)
class ProcessesCut:
    """What `cut_processes` saw.

    Attributes:
        output: each process's complete stdout lines up to its death, in start order.
        returncodes: each process's exit status (negative: killed by that signal).
        report: what the cut did.
        stderr: each process's stderr (the errors it met after the cut, ``ENOTCONN`` and
            the like, are expected there).
    """

    output: list[list[str]]
    returncodes: list[int]
    report: CrashReport
    stderr: list[str]

    @property
    def lines(self) -> list[str]:
        """Every output line of every process."""
        return [line for lines in self.output for line in lines]


def cut_processes(
    fs: PowerCutFS,
    commands: Sequence[Sequence[str]],
    *,
    after_lines: int,
    mode: CutMode = "strict",
    seed: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> ProcessesCut:
    """Run real processes on the mount, then kill them all and cut the power.

    Each command runs as its own process. A process says what it has achieved by printing
    a line to stdout (say, ``"ack KEY"`` once a durable call has returned). Once the
    processes have printed ``after_lines`` lines between them (or have all exited), every
    process is killed (SIGKILL), the power is cut and the crash state mounted. Every line
    printed before the kill is returned, and is a promise to check: whatever a line
    acknowledges was durable before the power went.

    Args:
        fs: the mounted power-cut filesystem.
        commands: one argv per process.
        after_lines: cut once this many lines were printed in all.
        mode: ``"strict"`` or ``"random"``.
        seed: the seed of a random cut (drawn when omitted).
        env: the processes' environment (by default this one's).
        cwd: their working directory (by default the mount).

    Returns:
        Their output, exit statuses and what the cut did.
    """
    errors = [tempfile.TemporaryFile() for _ in commands]  # noqa: SIM115 - closed below
    processes = [
        subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=error,
            stdin=subprocess.DEVNULL,
            env=None if env is None else dict(env),
            cwd=os.fspath(fs.root if cwd is None else cwd),
        )
        for command, error in zip(commands, errors, strict=True)
    ]
    output: list[list[str]] = [[] for _ in processes]
    partial = [b"" for _ in processes]
    selector = selectors.DefaultSelector()
    try:
        for index, process in enumerate(processes):
            assert process.stdout is not None
            os.set_blocking(process.stdout.fileno(), False)
            selector.register(process.stdout, selectors.EVENT_READ, index)
        while selector.get_map() and sum(map(len, output)) < after_lines:
            _pump(selector, output, partial, timeout=None)
        # Kill first, then cut: no process sees the dead filesystem and acts on its errors.
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()
        report = fs.cut(mode, seed=seed)
        while selector.get_map():
            _pump(selector, output, partial, timeout=None)
    finally:
        selector.close()
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        stderr = []
        for error in errors:
            error.seek(0)
            stderr.append(error.read().decode(errors="replace"))
            error.close()
    codes = [process.returncode for process in processes]
    return ProcessesCut(output, codes, report, stderr)


def _pump(
    selector: selectors.BaseSelector,
    output: list[list[str]],
    partial: list[bytes],
    timeout: float | None,
) -> None:
    for key, _events in selector.select(timeout):
        index: int = key.data
        stream: Any = key.fileobj
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            selector.unregister(stream)
            continue
        data = partial[index] + chunk
        *complete, partial[index] = data.split(b"\n")
        output[index].extend(line.decode(errors="replace") for line in complete)
