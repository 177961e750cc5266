"""The store's metadata file and the clock that orders items.

``.persistkit-iodict.json`` records the layout (``"xattr"`` or ``"header"``), the value
format, and the order epoch. An item's place in iteration order is an *order stamp*
``(epoch, ns)``: ``ns`` is ``CLOCK_MONOTONIC``, which is one clock for every process on the
machine and never steps back (unlike the wall clock, or ctime), and ``epoch`` goes up by one
whenever a process of a new boot first writes, because the monotonic clock restarts at boot.
Stamps are taken while the store lock is held and the item is published before it is
released, so stamp order is the order in which inserts happened.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from persistkit.core import CorruptFileError, write_bytes
from persistkit.iodict._json_records import read_json_object

META_NAME = ".persistkit-iodict.json"
LOCK_NAME = ".persistkit-iodict.lock"
_MAGIC = "persistkit-iodict"
LAYOUTS = ("xattr", "header")


def _boot_identity() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:  # pragma: no cover - not Linux
        # Without a boot id every writing process starts a new epoch, which is always
        # correct (newer epochs sort later); it only costs one metadata write per process.
        return f"process-{os.getpid()}-{os.urandom(8).hex()}"


BOOT = _boot_identity()
BOOT_IS_EXACT = not BOOT.startswith("process-")


@dataclass(frozen=True, slots=True)
class StoreMeta:
    """What the metadata file holds."""

    layout: str
    format: str
    epoch: int
    boot: str

    def to_bytes(self) -> bytes:
        """Encode as the file's JSON."""
        document = {
            "store": _MAGIC,
            "version": 1,
            "layout": self.layout,
            "format": self.format,
            "epoch": self.epoch,
            "boot": self.boot,
        }
        return (json.dumps(document, indent=1) + "\n").encode()


def read_meta(directory: str) -> StoreMeta | None:
    """Read the metadata file, or return None when there is none.

    Raises:
        CorruptFileError: the file exists but is not valid metadata.
    """
    path = os.path.join(directory, META_NAME)
    document = read_json_object(path)
    if document is None:
        return None
    try:
        if document.get("store") != _MAGIC or document.get("layout") not in LAYOUTS:
            raise ValueError("not persistkit-iodict metadata")
        return StoreMeta(
            layout=str(document["layout"]),
            format=str(document["format"]),
            epoch=int(document["epoch"]),
            boot=str(document["boot"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptFileError(path, str(error)) from error


def write_meta(directory: str, meta: StoreMeta) -> None:
    """Replace the metadata file atomically and durably."""
    write_bytes(os.path.join(directory, META_NAME), meta.to_bytes(), follow_symlinks=False)


class OrderClock:
    """Hands out order stamps; call `stamp` only while holding the store lock.

    Args:
        directory: the store directory.
        meta: the metadata read when the store was opened, or None for a directory that
            has none yet (an iodict 0.0.8 directory).
        layout: the store's layout, recorded when the file is (re)written.
        format: the store's format name, likewise.
    """

    def __init__(self, directory: str, meta: StoreMeta | None, layout: str, format: str) -> None:
        self._directory = directory
        self._path = os.path.join(directory, META_NAME)
        self._layout = layout
        self._format = format
        self._meta = meta
        self._signature: tuple[int, int, int] | None = None
        self._last_ns = 0

    def _current_meta(self) -> StoreMeta | None:
        if BOOT_IS_EXACT and self._meta is not None and self._meta.boot == BOOT:
            # A boot id changes only at boot, so no other process can start a new epoch
            # while this one lives: the epoch read once stays right, with no stat per write.
            return self._meta
        try:
            info = os.stat(self._path)
        except FileNotFoundError:
            return None
        signature = (info.st_ino, info.st_mtime_ns, info.st_size)
        if signature != self._signature or self._meta is None:
            self._meta = read_meta(self._directory)
            self._signature = signature
        return self._meta

    def epoch(self, highest_epoch: Callable[[], int]) -> int:
        """Return this boot's epoch, starting a new one if this is the boot's first write.

        Args:
            highest_epoch: returns the largest epoch found on the items; called only when
                the metadata file is missing, so a lost file cannot restart the order.
        """
        meta = self._current_meta()
        if meta is not None and meta.boot == BOOT:
            return meta.epoch
        base = meta.epoch if meta is not None else highest_epoch()
        fresh = StoreMeta(self._layout, self._format, base + 1, BOOT)
        write_meta(self._directory, fresh)
        self._meta = fresh
        info = os.stat(self._path)
        self._signature = (info.st_ino, info.st_mtime_ns, info.st_size)
        return fresh.epoch

    def next_ns(self) -> int:
        """Return a monotonic nanosecond count, strictly above every earlier one here."""
        ns = max(time.monotonic_ns(), self._last_ns + 1)
        self._last_ns = ns
        return ns
