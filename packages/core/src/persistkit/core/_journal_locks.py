"""The journal's flush generations: one lock byte each, in the coordination file.

A flush *generation* is one ``fdatasync`` of the log (or a rebuild or recycle, which do one
too). Its leader holds the byte ``generation % SLOTS`` of the coordination file exclusively
from the moment it claims the generation until that flush is over; whoever waits for the
generation takes the same byte shared, which the kernel grants when the leader lets go or
dies. Each generation has its own byte, so a waiter that is slow to wake after its flush ended
is never caught again by the next leader's lock (it would be by one lock shared by all
generations: the next leader takes it before the slow waiter runs).

On Linux these are open-file-description locks (``F_OFD_SETLK``): like ``flock`` they belong
to the open file, so the kernel drops them when the holder dies, and they lock a byte range,
so one file holds every generation's lock. Elsewhere they are POSIX record locks, which
belong to the process; the journal lets one thread per process take part at a time, and
never opens the coordination file twice, so that is equivalent there.
"""

from __future__ import annotations

import errno
import fcntl
import struct
import sys

SLOTS = 64
"""Lock bytes: a waiter is caught by a later leader only if it sleeps through 64 flushes."""

_OFD = sys.platform.startswith("linux") and hasattr(fcntl, "F_OFD_SETLK")
if _OFD:
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), native layout.
    _FLOCK = struct.Struct("@hhqqi")
    _SET = fcntl.F_OFD_SETLK
    _SET_WAIT = fcntl.F_OFD_SETLKW
    _EXCLUSIVE = tuple(_FLOCK.pack(fcntl.F_WRLCK, 0, slot, 1, 0) for slot in range(SLOTS))
    _SHARED = tuple(_FLOCK.pack(fcntl.F_RDLCK, 0, slot, 1, 0) for slot in range(SLOTS))
    _UNLOCK = tuple(_FLOCK.pack(fcntl.F_UNLCK, 0, slot, 1, 0) for slot in range(SLOTS))


class GenerationLocks:
    """The generation locks of one open coordination file."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    if _OFD:

        def try_hold(self, generation: int) -> bool:
            """Take ``generation``'s lock exclusively if nobody holds it; say whether taken."""
            try:
                fcntl.fcntl(self._fd, _SET, _EXCLUSIVE[generation % SLOTS])
            except BlockingIOError:
                return False
            return True

        def wait(self, generation: int) -> None:
            """Return once ``generation``'s leader has let go of it (finished, failed, died)."""
            slot = generation % SLOTS
            fcntl.fcntl(self._fd, _SET_WAIT, _SHARED[slot])
            fcntl.fcntl(self._fd, _SET, _UNLOCK[slot])

        def release(self, generation: int) -> None:
            """Let go of ``generation``'s lock: everybody waiting for it wakes."""
            fcntl.fcntl(self._fd, _SET, _UNLOCK[generation % SLOTS])

    else:  # pragma: no cover - not Linux

        def try_hold(self, generation: int) -> bool:
            """Take ``generation``'s lock exclusively if nobody holds it; say whether taken."""
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, generation % SLOTS)
            except OSError as error:
                if error.errno in (errno.EACCES, errno.EAGAIN):
                    return False
                raise
            return True

        def wait(self, generation: int) -> None:
            """Return once ``generation``'s leader has let go of it (finished, failed, died)."""
            slot = generation % SLOTS
            fcntl.lockf(self._fd, fcntl.LOCK_SH, 1, slot)
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot)

        def release(self, generation: int) -> None:
            """Let go of ``generation``'s lock: everybody waiting for it wakes."""
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, generation % SLOTS)
