"""Waiting for a name to appear in a folder: inotify on Linux, polling with backoff elsewhere."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import select
import struct
import sys
import time
from typing import Literal, Protocol

from persistkit.core.errors import InvalidArgumentError, UnsupportedOperationError

WatchKind = Literal["auto", "inotify", "poll"]

# From <sys/inotify.h>.
_IN_CREATE = 0x00000100
_IN_MOVED_TO = 0x00000080
_IN_IGNORED = 0x00008000
_IN_Q_OVERFLOW = 0x00004000
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")

_POLL_FIRST = 0.001
_POLL_LONGEST = 0.5


class DirectoryWatch(Protocol):
    """Blocks until something may have appeared in the watched folder."""

    kind: str

    def wait(self, timeout: float | None) -> None:
        """Return once a visible name may have appeared, or after ``timeout`` seconds."""

    def found(self) -> None:
        """Tell the watch that the caller found work (resets polling backoff)."""

    def close(self) -> None:
        """Release what the watch holds."""


class PollingWatch:
    """Wait by sleeping, 1 ms at first and doubling up to 0.5 s while nothing turns up."""

    kind = "poll"

    def __init__(self) -> None:
        self._delay = _POLL_FIRST

    def wait(self, timeout: float | None) -> None:
        """Sleep for the current backoff step (never longer than ``timeout``)."""
        delay = self._delay if timeout is None else min(self._delay, timeout)
        self._delay = min(self._delay * 2, _POLL_LONGEST)
        time.sleep(max(delay, 0.0))

    def found(self) -> None:
        """Start the backoff again from its shortest step."""
        self._delay = _POLL_FIRST

    def close(self) -> None:
        """Nothing to release."""


class _Inotify:
    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name, use_errno=True)
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


class InotifyWatch:
    """Wait on an inotify descriptor watching one folder for names moved or created in it.

    Names starting with a dot (temporary files of writers at work) do not wake the waiter,
    so a delivery wakes it once, when the message is published.
    """

    kind = "inotify"

    def __init__(self, directory: str) -> None:
        api = _bindings()
        fd = api.init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), directory)
        self._fd = fd
        wd = api.add_watch(fd, os.fsencode(directory), _IN_MOVED_TO | _IN_CREATE)
        if wd < 0:
            code = ctypes.get_errno()
            os.close(fd)
            raise OSError(code, os.strerror(code), directory)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self.broken = False

    def wait(self, timeout: float | None) -> None:
        """Block until a visible name appears in the folder, or ``timeout`` passes."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if end is None else max(end - time.monotonic(), 0.0)
            ready = self._poll.poll(None if left is None else left * 1000)
            if ready and self._drain():
                return
            if end is not None and time.monotonic() >= end:
                return

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
                    # The folder is gone (or events were dropped): let the caller rescan
                    # and build a new watch.
                    self.broken = bool(mask & _IN_IGNORED) or self.broken
                    relevant = True
                elif not name.startswith(b"."):
                    relevant = True

    def found(self) -> None:
        """Nothing to reset: inotify does not back off."""

    def close(self) -> None:
        """Close the inotify descriptor."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()


def open_watch(kind: WatchKind, directory: str) -> DirectoryWatch:
    """Return a watch of ``directory``: inotify where asked or available, else polling.

    Raises:
        InvalidArgumentError: ``kind`` is not one of the known kinds.
        UnsupportedOperationError: inotify was asked for and is not available.
    """
    if kind == "poll":
        return PollingWatch()
    if kind == "inotify":
        return InotifyWatch(directory)
    if kind == "auto":
        if sys.platform.startswith("linux"):
            # No inotify, or its per-user limits reached (EMFILE, ENOSPC): poll instead.
            with contextlib.suppress(OSError):
                return InotifyWatch(directory)
        return PollingWatch()
    raise InvalidArgumentError(f"watch must be 'auto', 'inotify' or 'poll', not {kind!r}")
