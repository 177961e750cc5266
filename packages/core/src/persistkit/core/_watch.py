"""`DirectoryWatch`: sleep until a folder changes, with inotify on Linux and polling elsewhere.

A consumer waiting for work (a spool's ``new/``, a queue's items) must neither spin nor
sleep a fixed time. On Linux an inotify descriptor (bound with ctypes: no compiler, no
dependency) lets it sleep in the kernel until a name appears; the kernel queues every event
from the moment the watch exists, so a change made between the caller's last look and its
``wait`` still wakes it. Elsewhere, and on network filesystems (inotify does not see other
hosts' changes), the watch polls with backoff, 1 ms doubling to 0.5 s.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import select
import struct
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Literal

from persistkit.core import _platform
from persistkit.core.errors import InvalidArgumentError, UnsupportedOperationError

WatchKind = Literal["auto", "inotify", "poll"]
"""How a `DirectoryWatch` waits: inotify, polling with backoff, or ``"auto"`` (inotify if any)."""
WatchEvent = Literal["added", "removed", "changed"]
"""What a `DirectoryWatch` wakes for: a name appearing in, leaving, or changing in the folder."""

# From <sys/inotify.h>.
_IN_MODIFY = 0x00000002
_IN_ATTRIB = 0x00000004
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_MASKS: dict[str, int] = {
    "added": _IN_CREATE | _IN_MOVED_TO,
    "removed": _IN_DELETE | _IN_MOVED_FROM,
    "changed": _IN_MODIFY | _IN_CLOSE_WRITE | _IN_ATTRIB,
}
_EVENT = struct.Struct("iIII")

_POLL_FIRST = 0.001
_POLL_LONGEST = 0.5


class _Inotify:
    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.init1 = libc.inotify_init1
        self.init1.argtypes = [ctypes.c_int]
        self.init1.restype = ctypes.c_int
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.add_watch.restype = ctypes.c_int


@functools.cache
def _bindings() -> _Inotify:
    try:
        return _Inotify()
    except (OSError, AttributeError) as error:
        raise UnsupportedOperationError(0, f"inotify is not available here ({error})") from None


def _open_inotify(directory: str, mask: int) -> int:
    """Return a non-blocking inotify descriptor watching ``directory`` for ``mask``."""
    api = _bindings()
    fd = int(api.init1(_IN_NONBLOCK | _IN_CLOEXEC))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), directory)
    if api.add_watch(fd, os.fsencode(directory), mask) < 0:
        code = ctypes.get_errno()
        os.close(fd)
        raise OSError(code, os.strerror(code), directory)
    return fd


class DirectoryWatch:
    """Wait until names are added to (or removed from, or changed in) one folder.

    Create the watch *before* looking into the folder, then look, then `wait` when there
    was nothing to do: every change from the watch's creation on wakes a waiter, so none is
    missed between the look and the wait. Names starting with a dot (persistkit's
    temporary files, and maildir's rule for writers at work) do not wake it unless
    ``hidden`` is set, so a write published by a rename wakes a waiter once, when the
    final name appears.

    The inotify watch belongs to the process that made it; after ``fork`` the child's
    first `wait` makes its own and returns at once (look again: what changed in between
    was not seen). If the folder is removed (or the kernel's event queue overflows), `wait`
    returns at once and the next `wait` watches the folder anew, polling while it is
    missing.

    A watch is meant for one thread at a time.

    Args:
        path: the folder to watch; it must exist when the watch is made.
        kind: ``"inotify"`` (raises `UnsupportedOperationError` where there is none),
            ``"poll"`` (sleep with backoff, 1 ms doubling up to 0.5 s; use it on network
            filesystems, where inotify misses other hosts' changes) or ``"auto"`` (inotify
            where it can be had, including within the per-user inotify limits, else
            polling).
        events: which changes wake a waiter: ``"added"`` (a name created, linked or
            renamed into the folder; the default), ``"removed"`` (unlinked or renamed
            away), ``"changed"`` (a file in it written or its attributes set).
        hidden: whether names starting with a dot wake a waiter too.

    Attributes:
        path: the folder.
        kind: ``"inotify"`` or ``"poll"``: how this watch waits.

    Raises:
        InvalidArgumentError: an unknown ``kind`` or event.
        UnsupportedOperationError: ``kind="inotify"`` where there is no inotify.
        OSError: ``kind="inotify"`` and the folder cannot be watched (missing, or the
            per-user inotify limits are reached).

    Example:
        >>> watch = DirectoryWatch("/var/spool/jobs/new")  # doctest: +SKIP
        >>> while not (names := os.listdir(watch.path)):  # doctest: +SKIP
        ...     watch.wait(timeout=10)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kind: WatchKind = "auto",
        events: Iterable[WatchEvent] = ("added",),
        hidden: bool = False,
    ) -> None:
        if kind not in ("auto", "inotify", "poll"):
            raise InvalidArgumentError(f"kind must be 'auto', 'inotify' or 'poll', not {kind!r}")
        chosen = tuple(events)
        unknown = [event for event in chosen if event not in _MASKS]
        if unknown or not chosen:
            raise InvalidArgumentError(
                f"events must be some of {sorted(_MASKS)}, not {list(chosen)!r}"
            )
        self.path = os.fspath(path)
        self._mask = 0
        for event in chosen:
            self._mask |= _MASKS[event]
        self._hidden = hidden
        self._fd = -1
        self._pid = os.getpid()
        self._broken = False
        self._delay = _POLL_FIRST
        self._poll: select.poll | None = None
        if kind == "inotify" or (kind == "auto" and _platform.IS_LINUX):
            try:
                self._start_inotify()
            except OSError:
                # No inotify, or its per-user limits reached (EMFILE, ENOSPC): poll instead.
                if kind == "inotify":
                    raise
        self.kind: Literal["inotify", "poll"] = "inotify" if self._poll is not None else "poll"

    def _start_inotify(self) -> None:
        self._fd = _open_inotify(self.path, self._mask)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._pid = os.getpid()
        self._broken = False

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until the folder may have changed, or until ``timeout`` seconds have passed.

        Args:
            timeout: the longest wait in seconds; None waits as long as it takes.

        Returns:
            True when a change may have happened (look again); False when the timeout
            passed with none. A polling watch cannot tell, so it returns True after each
            backoff step.
        """
        if self.kind == "poll":
            return self._sleep(timeout)
        if self._pid != os.getpid() or self._broken:
            # Changes made while no watch of ours was in place went unseen: look again.
            return self._sleep(timeout) if not self._restart() else True
        end = None if timeout is None else time.monotonic() + timeout
        poll = self._poll
        if poll is None:  # pragma: no cover - set whenever kind is "inotify"
            return self._sleep(timeout)
        while True:
            left = None if end is None else max(end - time.monotonic(), 0.0)
            ready = poll.poll(None if left is None else left * 1000)
            if ready and self._drain():
                return True
            if end is not None and time.monotonic() >= end:
                return False

    def found(self) -> None:
        """Tell the watch the caller found work: polling starts again at its shortest step."""
        self._delay = _POLL_FIRST

    def _sleep(self, timeout: float | None) -> bool:
        delay = self._delay if timeout is None else min(self._delay, timeout)
        self._delay = min(self._delay * 2, _POLL_LONGEST)
        time.sleep(max(delay, 0.0))
        return True

    def _restart(self) -> bool:
        """Watch the folder anew (after fork, or after it was removed); False while missing."""
        # After fork the inherited descriptor shares the parent's event queue: reading it
        # would steal the parent's events. Closing the child's copy leaves the parent's open.
        self._close_fd()
        try:
            self._start_inotify()
        except OSError:
            self._pid = os.getpid()
            self._broken = True
            return False
        return True

    def _drain(self) -> bool:
        relevant = False
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return relevant
            offset = 0
            while offset + _EVENT.size <= len(chunk):
                _, mask, _, length = _EVENT.unpack_from(chunk, offset)
                name = chunk[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                if mask & (_IN_IGNORED | _IN_Q_OVERFLOW):
                    # The folder is gone, or events were dropped: the caller must look again,
                    # and a removed folder needs a new watch.
                    self._broken = self._broken or bool(mask & _IN_IGNORED)
                    relevant = True
                elif self._hidden or not name.startswith(b"."):
                    relevant = True

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        """Release the inotify descriptor (idempotent); a later `wait` watches anew."""
        self._close_fd()
        self._broken = True

    def __enter__(self) -> DirectoryWatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()

    def __repr__(self) -> str:
        return f"<DirectoryWatch {self.path!r} {self.kind}>"
