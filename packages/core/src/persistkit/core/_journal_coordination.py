"""The journal's coordination file (``<log>-shm``): shared memory for every process on a host.

Like SQLite's ``-shm``: a small file every writer maps (``MAP_SHARED``), so the processes
using one journal agree on where the log ends, how far it is flushed and which epoch is
current without reading the log. It holds nothing that durability depends on: it is rebuilt
from the log whenever it may be stale (a new boot, a log replaced, a writer that died in the
middle of updating it), and a power cut may leave it in any state.

Fields are native 64-bit words. A word is written by one aligned store, so a process that
reads it without holding the lock that guards its writes (the flush leader reading ``END``)
sees the old or the new value, never a mix.
"""

from __future__ import annotations

import mmap
import os
import time
import uuid

SIZE = 4096
MAGIC = int.from_bytes(b"PKJSHM01", "little")
VERSION = 1

# Word indexes.
W_MAGIC = 0
W_VERSION = 1
W_BOOT_A = 2
W_BOOT_B = 3
W_DEVICE = 4
W_INODE = 5
W_SALT = 6
W_SLOT = 7
W_EPOCH = 8
W_START = 9
W_END = 10  # after the last complete record; written last in an append
W_FLUSHED = 11  # everything before it is durable; written only by a flush leader
W_PREV = 12  # crc of the last record (the header's when none)
W_LAST = 13  # position of the last record, NO_RECORD when none
W_DIRTY = 14  # a multi-word update is under way; a lock holder that sees it set rebuilds
W_POISONED = 15  # an fdatasync failed: refuse to promise durability until rebuilt
W_CAPACITY = 16  # size of the log file, all of it written (zeros past the records)
W_RECORDS = 17  # records appended since the rebuild
W_FLUSHES = 18  # fdatasyncs done since the rebuild
W_HEADER_CRC = 19
# Flush generations (see _journal_locks): hints for waiting well, never for durability.
W_CLAIMED = 20  # the latest generation claimed by a leader (who holds its lock)
W_STARTED = 21  # the latest generation whose leader has read the end it will flush to
W_DONE = 22  # the latest generation whose leader has published what it flushed
WORDS = 23

NO_RECORD = (1 << 64) - 1


def _read_boot_id() -> tuple[int, int]:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            value = uuid.UUID(file.read().strip()).int
    except (OSError, ValueError):  # pragma: no cover - not Linux
        # No boot id: the boot time to the minute. A wrong guess only costs a rebuild.
        value = int(time.time() - time.monotonic()) // 60
    return value >> 64, value & ((1 << 64) - 1)


BOOT_ID = _read_boot_id()


class Coordination:
    """The mapped words of one coordination file."""

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.words = memoryview(self._map).cast("Q")

    def stamp(self, device: int, inode: int) -> None:
        """Mark the words as describing this log in this boot."""
        words = self.words
        words[W_VERSION] = VERSION
        words[W_BOOT_A], words[W_BOOT_B] = BOOT_ID
        words[W_DEVICE] = device
        words[W_INODE] = inode
        words[W_MAGIC] = MAGIC

    def stamped_for(self, device: int, inode: int) -> bool:
        """Whether the words were stamped for this log in this boot (maybe mid-update)."""
        words = self.words
        return (
            words[W_MAGIC] == MAGIC
            and words[W_VERSION] == VERSION
            and (words[W_BOOT_A], words[W_BOOT_B]) == BOOT_ID
            and words[W_DEVICE] == device
            and words[W_INODE] == inode
        )

    def describes(self, device: int, inode: int) -> bool:
        """Whether the words were stamped for this log in this boot and are not mid-update."""
        return self.stamped_for(device, inode) and self.words[W_DIRTY] == 0

    def close(self) -> None:
        """Unmap the file."""
        self.words.release()
        self._map.close()


def device_and_inode(fd: int) -> tuple[int, int]:
    """The identity of an open file."""
    info = os.fstat(fd)
    return info.st_dev, info.st_ino
