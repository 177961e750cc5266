"""Checkpoint segments: the items one checkpoint wrote, together in one file.

A checkpoint writes every item still waiting in the journal into one *segment*,
``.persistkit-queue.items/<first>-<last>.segment`` (the lowest and highest item numbers in it,
20 digits each), so a checkpoint of thousands of items creates one file, and a `get` of a
checkpointed item reads it in place and removes nothing: on a disk where every unlink costs
a discard, a file per item made each `get` pay for one. A segment is removed by the first
checkpoint after every item in it has left the queue.

Layout (big-endian)::

    magic "PKQSEG" 0x00 0x01, count (u32)
    count x (item u64, offset u64, length u32, crc32 u32)    sorted by item
    crc32 of everything above (u32)
    the payloads, at their offsets

A payload whose checksum does not match is reported as damaged (the queue moves that item to
the dead-letter area and goes on); a damaged index is a `CorruptFileError` naming the file.
"""

from __future__ import annotations

import bisect
import os
import struct
import zlib
from array import array
from dataclasses import dataclass

from persistkit.core import CorruptFileError
from persistkit.iodict._queue_names import SEQ_DIGITS

SUFFIX = ".segment"
_MAGIC = b"PKQSEG\x00\x01"
_COUNT = struct.Struct(">I")
_ENTRY = struct.Struct(">QQII")
_CRC = struct.Struct(">I")
_HEAD = len(_MAGIC) + _COUNT.size
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def segment_name(first: int, last: int) -> str:
    """Return the file name of a segment holding items ``first`` to ``last``."""
    return f"{first:0{SEQ_DIGITS}d}-{last:0{SEQ_DIGITS}d}{SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """Return the first and last item of a segment file name, or None for any other name."""
    if not name.endswith(SUFFIX):
        return None
    first, dash, last = name[: -len(SUFFIX)].partition("-")
    if not dash or len(first) != SEQ_DIGITS or len(last) != SEQ_DIGITS:
        return None
    if not (first.isdigit() and last.isdigit()) or int(first) > int(last):
        return None
    return int(first), int(last)


def encode_segment(items: list[tuple[int, bytes]]) -> bytes:
    """Return a segment's bytes for ``items`` (item number, payload), sorted by number."""
    offset = _HEAD + len(items) * _ENTRY.size + _CRC.size
    index = [_MAGIC, _COUNT.pack(len(items))]
    for item, payload in items:
        index.append(_ENTRY.pack(item, offset, len(payload), zlib.crc32(payload)))
        offset += len(payload)
    head = b"".join(index)
    return b"".join((head, _CRC.pack(zlib.crc32(head)), *(payload for _, payload in items)))


@dataclass(frozen=True, slots=True)
class SegmentItem:
    """An item read from a segment.

    Attributes:
        path: the segment file.
        data: the item's payload as stored.
        damage: why the payload cannot be trusted (its checksum), or None.
    """

    path: str
    data: bytes
    damage: str | None


class _Index:
    """One segment's index, read once: item numbers, offsets, lengths and checksums."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb", opener=lambda p, _: os.open(p, _OPEN_FLAGS)) as f:
            head = f.read(_HEAD)
            if len(head) != _HEAD or not head.startswith(_MAGIC):
                raise CorruptFileError(path, "not a queue segment (offset 0: bad magic)")
            (count,) = _COUNT.unpack_from(head, len(_MAGIC))
            body = f.read(count * _ENTRY.size + _CRC.size)
        if len(body) != count * _ENTRY.size + _CRC.size:
            raise CorruptFileError(path, f"the segment index ends early (offset {_HEAD})")
        (stored,) = _CRC.unpack_from(body, count * _ENTRY.size)
        if zlib.crc32(body[: count * _ENTRY.size], zlib.crc32(head)) != stored:
            raise CorruptFileError(path, f"the segment index fails its checksum (offset {_HEAD})")
        # Arrays, not tuples: a segment can index hundreds of thousands of items.
        self.items, self.offsets = array("Q"), array("Q")
        self.lengths, self.crcs = array("I"), array("I")
        for item, offset, length, crc in _ENTRY.iter_unpack(body[: count * _ENTRY.size]):
            self.items.append(item)
            self.offsets.append(offset)
            self.lengths.append(length)
            self.crcs.append(crc)

    def read(self, item: int) -> SegmentItem | None:
        at = bisect.bisect_left(self.items, item)
        if at == len(self.items) or self.items[at] != item:
            return None
        offset, length, crc = self.offsets[at], self.lengths[at], self.crcs[at]
        fd = os.open(self.path, _OPEN_FLAGS)
        try:
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        damage = None
        if len(data) != length or zlib.crc32(data) != crc:
            damage = f"item {item} at offset {offset} of the segment fails its checksum"
        return SegmentItem(self.path, data, damage)


class Segments:
    """The segments of one queue's item folder, as listed at the last checkpoint load.

    Args:
        folder: the item folder.
    """

    def __init__(self, folder: str) -> None:
        self._folder = folder
        self._ranges: list[tuple[int, int, str]] = []
        self._inodes: dict[str, int] = {}
        self._indexes: dict[tuple[str, int], _Index] = {}

    def scan(self) -> None:
        """List the folder again (segments appear and leave only at checkpoints)."""
        ranges, inodes = [], {}
        try:
            with os.scandir(self._folder) as entries:
                for entry in entries:
                    found = parse_segment_name(entry.name)
                    if found is not None:
                        ranges.append((*found, entry.path))
                        inodes[entry.path] = entry.inode()
        except FileNotFoundError:
            pass
        self._ranges = sorted(ranges)
        self._inodes = inodes
        # Keyed by inode too: a checkpoint cut short leaves a segment that the next one can
        # replace under the same name with other items at other offsets.
        self._indexes = {
            key: index for key, index in self._indexes.items() if inodes.get(key[0]) == key[1]
        }

    def read(self, item: int) -> SegmentItem | None:
        """Return ``item`` from the segment holding it, or None when none does.

        Raises:
            CorruptFileError: the index of a segment whose range covers ``item`` is damaged.
        """
        # Ranges can overlap: a checkpoint cut short by a crash leaves a segment whose
        # items the next checkpoint writes again, with the same bytes.
        stop = bisect.bisect_right(self._ranges, (item, _LAST, ""))
        for first, last, path in reversed(self._ranges[:stop]):
            if first <= item <= last:
                found = self._index(path).read(item)
                if found is not None:
                    return found
        return None

    def _index(self, path: str) -> _Index:
        key = (path, self._inodes[path])
        index = self._indexes.get(key)
        if index is None:
            index = self._indexes[key] = _Index(path)
        return index

    def write_path(self, first: int, last: int) -> str:
        """Return where a checkpoint writes a segment of items ``first`` to ``last``."""
        return os.path.join(self._folder, segment_name(first, last))

    def finished(self, live: set[int], head: int) -> list[str]:
        """Return the segments none of whose items is in the queue any more.

        Args:
            live: items below ``head`` that are still in the queue (leased).
            head: every item from here on may still be waiting.
        """
        return [
            path
            for first, last, path in self._ranges
            if last < head and not any(first <= item <= last for item in live)
        ]


_LAST = (1 << 64) - 1
