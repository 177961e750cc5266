"""The test process's handle on a power-cut filesystem: mount, cut, sync, snapshot, stop."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from persistkit.core import _capabilities, _syscalls
from persistkit.core._powercut import _wire
from persistkit.core._powercut._model import CrashReport

CutMode = Literal["strict", "random"]

_START_TIMEOUT = 120.0


class PowerCutUnavailableError(OSError):
    """The power-cut filesystem cannot run here (no FUSE, no libfuse 3, no mfusepy)."""


class PowerCutError(RuntimeError):
    """The power-cut filesystem's manager reported a failure; the message says which."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A saved state of a power-cut filesystem, to `PowerCutFS.restore` later."""

    key: int


class _Counters:
    """How many cuts this process made, crash states it drew and checked, violations it saw."""

    def __init__(self) -> None:
        self.cuts = 0
        self.states = 0
        self.checked = 0
        self.violations = 0


COUNTERS = _Counters()


class PowerCutFS:
    """A mounted power-cut filesystem. Make one with `power_cut_fs`.

    Programs see a POSIX filesystem at `root`. Behind it the filesystem keeps what a power
    cut would leave: file data, size, mode and extended attributes become durable only when
    that file is fsynced (``fsync`` or ``fdatasync``); names (create, rename, link, unlink,
    mkdir, rmdir) only when their directory is fsynced. ``syncfs`` and ``sync`` do nothing on
    it, as on every FUSE filesystem.

    Attributes:
        root: the mount point; every path of the test lives under it.
    """

    def __init__(self, root: Path, channel: socket.socket, process: subprocess.Popen[bytes]):
        self.root = root
        self._channel = channel
        self._process = process

    def _ask(self, *request: Any) -> tuple[Any, ...]:
        try:
            _wire.send(self._channel, request)
            reply = _wire.receive(self._channel)
        except (OSError, EOFError) as error:
            raise PowerCutError(f"the power-cut manager is gone ({error})") from error
        assert isinstance(reply, tuple)
        if reply[0] != "ok":
            _kind, name, message, trace = reply
            raise PowerCutError(f"{request[0]} failed: {name}: {message}\n{trace}")
        return reply

    def cut(
        self,
        mode: CutMode = "strict",
        *,
        seed: int | None = None,
        kill: Iterable[int | subprocess.Popen[Any]] = (),
    ) -> CrashReport:
        """Cut the power, then boot again: the mount now shows what the disk kept.

        At the moment of the cut the state is frozen and the FUSE connection is aborted:
        every process still using the mount gets errors (``EIO``, ``ENOTCONN``) from then on.
        The processes in ``kill`` are killed (SIGKILL) and reaped before the new mount
        appears, so none of them can touch the crash state. Then the crash state is mounted
        at the same place.

        Args:
            mode: ``"strict"``: everything not durable is lost. ``"random"``: each change not
                yet durable is kept or lost at random (a rename as a whole; a write page by
                page, its new size apart), so code that relies on an order without a barrier
                between is caught.
            seed: the random seed; drawn (and reported) when omitted in random mode.
            kill: processes (pids or `subprocess.Popen`) to kill before the reboot.

        Returns:
            What the cut did, with the seed used.
        """
        report = self.power_off(mode, seed=seed)
        for process in kill:
            _kill(process)
        self.power_on()
        return report

    def power_off(self, mode: CutMode = "strict", *, seed: int | None = None) -> CrashReport:
        """Cut the power without booting again (see `cut`); call `power_on` next."""
        return self.power_off_many([(mode, seed)])[0]

    def power_off_many(self, cuts: Sequence[tuple[CutMode, int | None]]) -> list[CrashReport]:
        """Cut the power once and draw several crash states from that one moment.

        Each ``(mode, seed)`` gives one crash state (a random seed is drawn where None);
        `power_on` boots into them one after the other, in order. Checking three crash
        states of one moment costs one run of the operation instead of three.
        """
        if not cuts:
            raise ValueError("no cut asked for")
        for mode, _seed in cuts:
            if mode not in ("strict", "random"):
                raise ValueError(f"mode must be 'strict' or 'random', not {mode!r}")
        plan = [
            (mode, random.randrange(2**32) if mode == "random" and seed is None else seed)
            for mode, seed in cuts
        ]
        reports: list[CrashReport] = self._ask("freeze", plan)[1]
        COUNTERS.cuts += 1
        COUNTERS.states += len(plan)
        if "PYTEST_CURRENT_TEST" in os.environ:
            # pytest shows a failing test's output: the seeds to replay it are in there.
            for report in reports:
                how = "strict" if report.seed is None else f"random, seed={report.seed}"
                print(f"power cut [{how}]: {report.kept} of {report.pending} pending changes kept")
        return reports

    def power_on(self) -> None:
        """Boot after `power_off`: mount the (next) crash state."""
        self._ask("power_on")
        self._forget_capabilities()

    def sync(self) -> None:
        """Make everything durable now, as ``sync`` does on a real disk (it does not here).

        Dirty pages of shared memory maps are written back to the filesystem first (the
        kernel does that much for ``syncfs``, though FUSE never passes the call on).
        """
        self._write_back()
        self._ask("sync")

    def _write_back(self) -> None:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _syscalls.syncfs(fd)
        finally:
            os.close(fd)

    def pending(self) -> int:
        """Count the changes a cut now could lose."""
        count: int = self._ask("pending")[1]
        return count

    def snapshot(self) -> Snapshot:
        """Save the current files (taken as durable) to come back to with `restore`."""
        self._write_back()
        return Snapshot(self._ask("snapshot")[1])

    def restore(self, snapshot: Snapshot) -> None:
        """Reboot into a saved state: every process's view ends, as at a cut."""
        self._ask("restore", snapshot.key)
        self._forget_capabilities()

    def close(self, *, write_back: bool = True) -> None:
        """Unmount and stop; with ``write_back`` the directory then holds the final files.

        The files written back are the live ones (a clean shutdown), or the crash state
        after a `power_off` without `power_on`.
        """
        if self._process.poll() is None:
            if write_back:
                with contextlib.suppress(OSError):
                    self._write_back()
            with contextlib.suppress(PowerCutError):
                self._ask("stop", write_back)
        self._channel.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _forget_capabilities(self) -> None:
        # A new mount can get the device number an earlier one had.
        _capabilities.forget(os.stat(self.root).st_dev)


def _kill(process: int | subprocess.Popen[Any]) -> None:
    if isinstance(process, subprocess.Popen):
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(process, 0)


def start(directory: str | os.PathLike[str]) -> PowerCutFS:
    """Mount a power-cut filesystem over ``directory``; see `power_cut_fs`."""
    if not sys.platform.startswith("linux"):
        raise PowerCutUnavailableError("the power-cut filesystem needs Linux FUSE")
    if not os.path.exists("/dev/fuse"):
        raise PowerCutUnavailableError("/dev/fuse does not exist (no FUSE in this kernel)")
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    ours, theirs = socket.socketpair()
    process = subprocess.Popen(
        [sys.executable, "-m", "persistkit.core._powercut._manager", str(theirs.fileno())],
        pass_fds=(theirs.fileno(),),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    theirs.close()
    try:
        hello = _wire.receive(ours, timeout=_START_TIMEOUT)
    except (EOFError, TimeoutError) as error:
        process.kill()
        process.wait()
        ours.close()
        raise PowerCutUnavailableError(f"the power-cut manager did not start: {error}") from None
    assert isinstance(hello, tuple)
    if hello[0] == "unavailable":
        process.wait()
        ours.close()
        raise PowerCutUnavailableError(f"the power-cut filesystem cannot run here: {hello[1]}")
    fs = PowerCutFS(root, ours, process)
    options: dict[str, Any] = {"fsname": "persistkit-powercut", "subtype": "persistkit-powercut"}
    if os.geteuid() == 0:
        options["allow_other"] = True
    try:
        fs._ask("start", str(root), options)
    except PowerCutError as error:
        fs.close(write_back=False)
        raise PowerCutUnavailableError(f"cannot mount the power-cut filesystem: {error}") from None
    fs._forget_capabilities()
    return fs


@contextlib.contextmanager
def power_cut_fs(directory: str | os.PathLike[str]) -> Iterator[PowerCutFS]:
    """Mount a power-cut filesystem over ``directory`` for the duration of the block.

    The directory's files are its starting state, all of them durable. Inside the block
    the directory is the mount; ``cut()`` replaces what it shows with what a power cut would
    have left. When the block ends the filesystem is unmounted, even after a failure, and
    the directory holds the final files.

    The files live in memory while mounted: this is a test filesystem, for test-sized data.

    Raises:
        PowerCutUnavailableError: FUSE, libfuse 3 or mfusepy is missing, or the mount
            failed (tests call `facility_unavailable` with the message).

    Example:
        >>> with power_cut_fs(tmp_path) as fs:  # doctest: +SKIP
        ...     write_bytes(fs.root / "state", b"new")
        ...     fs.cut()
        ...     assert (fs.root / "state").read_bytes() == b"new"
    """
    fs = start(directory)
    try:
        yield fs
    finally:
        fs.close()
