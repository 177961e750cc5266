"""The names inside a DurableQueue directory, and the counters kept in marker names.

```
queue/
  .persistkit-queue.json              the value format (written by the first write)
  .persistkit-queue.journal           every change since the last checkpoint (core's Journal)
  .persistkit-queue.journal-shm       the journal's coordination file
  .persistkit-queue.lock              persistkit 0.1's lock (0.2 locks the journal instead)
  .persistkit-queue.head.<n>          the next item to deliver
  .persistkit-queue.tail.<n>          the number the next put gets
  .persistkit-queue.taken.<n>         items taken by get() and not yet task_done(), for join
  .persistkit-queue.legacy.json       iodict 0.0.8 items given numbers in this queue
  .persistkit-queue.items/<n>         the items, named by number (20 digits)
  .persistkit-queue.leases/<n>        items delivered by claim() and not settled yet
  .persistkit-queue.dead/<n>          dead letters, each with <n>.json saying why
```

Markers are empty files whose *name* holds the value, so a counter is read with one
``stat``. They, the item files and the lease files are the last *checkpoint*; every change
since is a record in the journal. persistkit 0.1 kept a ``done.<n>`` marker instead of
``taken``; it is converted on the first write (taken = head - done, which is what 0.1
counted as gotten and not done).
"""

from __future__ import annotations

import os

from persistkit.core import CorruptFileError, Durability, rename, write_bytes

PREFIX = ".persistkit-queue."
JOURNAL_NAME = PREFIX + "journal"
META_NAME = PREFIX + "json"
LEGACY_MAP_NAME = PREFIX + "legacy.json"
ITEMS_NAME = PREFIX + "items"
DEAD_NAME = PREFIX + "dead"
LEASES_NAME = PREFIX + "leases"
KINDS = ("head", "tail", "taken")
OLD_DONE_KIND = "done"
SEQ_DIGITS = 20
# How far a counter is probed upward from its cached value before the directory is listed.
_PROBE_LIMIT = 64


def item_name(seq: int) -> str:
    """Return the file name of item number ``seq``."""
    return f"{seq:0{SEQ_DIGITS}d}"


def parse_item_name(name: str) -> int | None:
    """Return the number an item file name stands for, or None for any other name."""
    if len(name) == SEQ_DIGITS and name.isdigit():
        return int(name)
    return None


class Markers:
    """The head, tail and done counters of one queue directory, cached per process.

    Reading needs no lock (a rename replaces one name by the other atomically), but a
    caller that changes a counter holds the queue's write lock.
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._values = {kind: -1 for kind in (*KINDS, OLD_DONE_KIND)}

    def path(self, kind: str, value: int) -> str:
        """Return the marker file that says counter ``kind`` is ``value``."""
        return os.path.join(self._directory, f"{PREFIX}{kind}.{value}")

    def scan(self) -> dict[str, list[int]]:
        """List the directory and return every marker value found, per kind."""
        found: dict[str, list[int]] = {kind: [] for kind in (*KINDS, OLD_DONE_KIND)}
        try:
            entries = os.scandir(self._directory)
        except FileNotFoundError:
            return found
        with entries:
            for entry in entries:
                if not entry.name.startswith(PREFIX):
                    continue
                kind, _, number = entry.name[len(PREFIX) :].partition(".")
                if kind in found and number.isdigit():
                    found[kind].append(int(number))
        return found

    def get(self, kind: str) -> int | None:
        """Return a counter's value, or None when its marker does not exist."""
        cached = self._values[kind]
        if cached >= 0:
            for value in range(cached, cached + _PROBE_LIMIT):
                if os.path.lexists(self.path(kind, value)):
                    self._values[kind] = value
                    return value
        values = self.scan()[kind]
        if not values:
            return None
        self._values[kind] = max(values)
        return self._values[kind]

    def require(self, kind: str) -> int:
        """Return a counter that must exist (the caller knows the queue is set up).

        Raises:
            CorruptFileError: the marker is gone.
        """
        value = self.get(kind)
        if value is None:
            raise CorruptFileError(self.path(kind, 0), f"the queue's {kind} marker is missing")
        return value

    def advance(self, kind: str, old: int, new: int, durability: Durability) -> None:
        """Change a counter with one rename (the caller holds the write lock)."""
        if old != new:
            rename(self.path(kind, old), self.path(kind, new), durability=durability)
        self._values[kind] = new

    def create(self, kind: str, value: int) -> None:
        """Create a missing marker, without fsync (the caller fsyncs the directory)."""
        write_bytes(
            self.path(kind, value), b"", overwrite=False, durability="atomic", follow_symlinks=False
        )
        self._values[kind] = value
