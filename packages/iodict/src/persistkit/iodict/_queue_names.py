"""The names inside a DurableQueue directory, and the counters kept in marker names.

```
queue/
  .persistkit-queue.json              the value format (written by the first write)
  .persistkit-queue.journal           every change since the last checkpoint (core's Journal)
  .persistkit-queue.journal-shm       the journal's coordination file
  .persistkit-queue.lock              persistkit 0.1's lock (0.2 locks the journal instead)
  .persistkit-queue.state             the checkpoint's counters, and the journal position
                                      it covers (JSON)
  .persistkit-queue.legacy.json       iodict 0.0.8 items given numbers in this queue
  .persistkit-queue.items/<first>-<last>.segment
                                      the items one checkpoint wrote (numbers of 20 digits)
  .persistkit-queue.items/<n>         an item in a file of its own (persistkit 0.1)
  .persistkit-queue.leases/<n>        items delivered by claim() and not settled yet
  .persistkit-queue.dead/<n>          dead letters, each with <n>.json saying why
```

The state file, the segments and the lease files are the last *checkpoint*; every change
since is a record in the journal. persistkit 0.1 kept its counters in empty *marker* files
whose names held the values (``.persistkit-queue.head.<n>``, ``tail.<n>``, ``done.<n>``);
they are read when there is no state file and replaced by one on the first write (taken =
head - done, which is what 0.1 counted as gotten and not done).
"""

from __future__ import annotations

import os

PREFIX = ".persistkit-queue."
JOURNAL_NAME = PREFIX + "journal"
META_NAME = PREFIX + "json"
LEGACY_MAP_NAME = PREFIX + "legacy.json"
ITEMS_NAME = PREFIX + "items"
DEAD_NAME = PREFIX + "dead"
LEASES_NAME = PREFIX + "leases"
STATE_NAME = PREFIX + "state"
KINDS = ("head", "tail", "taken")
OLD_DONE_KIND = "done"
SEQ_DIGITS = 20


def item_name(seq: int) -> str:
    """Return the file name of item number ``seq``."""
    return f"{seq:0{SEQ_DIGITS}d}"


def parse_item_name(name: str) -> int | None:
    """Return the number an item file name stands for, or None for any other name."""
    if len(name) == SEQ_DIGITS and name.isdigit():
        return int(name)
    return None


class Markers:
    """The counters of a queue written by persistkit 0.1, read from its marker files.

    Reading needs no lock: a rename replaces one name by the other atomically.
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
        if cached >= 0 and os.path.lexists(self.path(kind, cached)):
            return cached
        values = self.scan()[kind]
        if not values:
            return None
        self._values[kind] = max(values)
        return self._values[kind]
