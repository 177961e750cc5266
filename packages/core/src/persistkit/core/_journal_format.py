"""The journal's on-disk format: two header slots, then checksummed records; recovery scan.

Layout of a log file (all integers little-endian)::

    0      header slot A (40 bytes used of 512)
    512    header slot B
    4096   records, each 8-byte aligned, then zeros or records of an earlier epoch

A header holds ``magic, version, crc, epoch, salt, start_lsn``. The valid slot with the
higher epoch is current; recycling writes the other slot, so a torn header write leaves the
previous one (LMDB's two meta pages). ``salt`` is random per epoch: records left from an
earlier epoch can never pass for current ones.

A record is a 40-byte head ``salt, lsn, flushed, length, nonce, prev, crc`` and the payload,
padded to 8 bytes. ``lsn`` is the record's position in the endless logical stream
(``start_lsn`` + its offset past 4096). ``crc`` is crc32 over the head (without ``crc``) and
the payload; ``prev`` is the previous record's ``crc`` (the header's for the first record), so
a record left behind by a writer that died, at an offset a later record reused, never joins
the chain (``nonce``, random per process, keeps even an identical rewrite from matching).
``flushed`` is the position known durable when the record was appended: recovery uses it to
tell a torn tail (dropped) from damage to data that was already durable (an error).
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import NamedTuple

from persistkit.core.errors import CorruptJournalError

MAGIC = b"PKJRNL\x00\x01"
VERSION = 1
SLOT_OFFSETS = (0, 512)
DATA_OFFSET = 4096
ALIGN = 8
MAX_RECORD = (1 << 31) - 1

_HEADER = struct.Struct("<8sIIQQQ")
_HEAD = struct.Struct("<QQQIII")
_CRC = struct.Struct("<I")
_HEAD_AND_CRC = struct.Struct("<QQQIIII")
HEAD_SIZE = _HEAD.size + _CRC.size
_CHUNK = 1 << 20


class Header(NamedTuple):
    """One epoch of the log: where its records start and what marks them as its own."""

    slot: int
    epoch: int
    salt: int
    start: int
    crc: int

    def encode(self) -> bytes:
        """The header slot's bytes."""
        return _HEADER.pack(MAGIC, VERSION, self.crc, self.epoch, self.salt, self.start)


def make_header(slot: int, epoch: int, salt: int, start: int) -> Header:
    """Build a header and its checksum."""
    crc = zlib.crc32(_HEADER.pack(MAGIC, VERSION, 0, epoch, salt, start))
    return Header(slot, epoch, salt, start, crc)


def record_size(length: int) -> int:
    """Bytes a record with a ``length``-byte payload takes in the log."""
    return HEAD_SIZE + ((length + ALIGN - 1) & ~(ALIGN - 1))


def encode_record(
    data: bytes | bytearray | memoryview,
    *,
    salt: int,
    lsn: int,
    flushed: int,
    nonce: int,
    prev: int,
) -> tuple[bytes, int]:
    """Return a record's bytes (padded) and its checksum."""
    length = len(data)
    head = _HEAD.pack(salt, lsn, flushed, length, nonce, prev)
    crc = zlib.crc32(data, zlib.crc32(head))
    padding = b"\0" * (-length % ALIGN)
    return b"".join((head, _CRC.pack(crc), data, padding)), crc


def read_at(fd: int, offset: int, length: int) -> bytes:
    """Read up to ``length`` bytes at ``offset`` (fewer only at the end of the file)."""
    parts = []
    while length > 0:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(parts)


def read_header(fd: int, path: str) -> Header:
    """Return the current header of the log open on ``fd``.

    Raises:
        CorruptJournalError: neither slot holds a valid header of a known version.
    """
    raw = read_at(fd, 0, SLOT_OFFSETS[1] + _HEADER.size)
    found: list[Header] = []
    newer = 0
    for slot, offset in enumerate(SLOT_OFFSETS):
        chunk = raw[offset : offset + _HEADER.size]
        if len(chunk) < _HEADER.size:
            continue
        magic, version, crc, epoch, salt, start = _HEADER.unpack(chunk)
        if magic != MAGIC:
            continue
        if version != VERSION:
            newer = max(newer, version)
            continue
        header = make_header(slot, epoch, salt, start)
        if header.crc == crc:
            found.append(header)
    if found:
        return max(found, key=lambda header: header.epoch)
    if newer:
        reason = f"format version {newer} is unknown to this persistkit (it reads {VERSION})"
    elif MAGIC not in raw:
        reason = "not a persistkit journal (no header)"
    else:
        reason = "both header slots are damaged"
    raise CorruptJournalError(path, 0, reason)


class Record(NamedTuple):
    """A record found in the log."""

    lsn: int
    end: int
    flushed: int
    prev: int
    crc: int
    data: bytes


def _record_in(buffer: bytes, at: int, lsn: int, salt: int) -> Record | None:
    """The record of this epoch (``salt``) at ``lsn`` starting at ``buffer[at]``, if whole."""
    # One unpack of the head and its checksum: catching up runs this for every record.
    if at + HEAD_SIZE > len(buffer):
        return None
    salt_at, lsn_at, flushed, length, _nonce, prev, crc = _HEAD_AND_CRC.unpack_from(buffer, at)
    size = record_size(length)
    if salt_at != salt or lsn_at != lsn or at + size > len(buffer):
        return None
    data = buffer[at + HEAD_SIZE : at + HEAD_SIZE + length]
    if zlib.crc32(data, zlib.crc32(buffer[at : at + _HEAD.size])) != crc:
        return None
    return Record(lsn, lsn + size, flushed, prev, crc, data)


class LogReader:
    """Parse records from a log, reading it in large chunks."""

    def __init__(self, fd: int, path: str, header: Header, size: int | None = None) -> None:
        self.fd = fd
        self.path = path
        self.header = header
        self.size = os.fstat(fd).st_size if size is None else size
        self._window = b""
        self._window_start = 0

    def offset(self, lsn: int) -> int:
        """The file offset of a position of the current epoch."""
        return DATA_OFFSET + (lsn - self.header.start)

    def _bytes(self, offset: int, length: int) -> bytes:
        start = offset - self._window_start
        if start < 0 or start + length > len(self._window):
            self._window = read_at(self.fd, offset, max(length, _CHUNK))
            self._window_start = offset
            start = 0
        return self._window[start : start + length]

    def record_at(self, lsn: int) -> Record | None:
        """The self-consistent record at ``lsn``, or None (its ``prev`` is not checked)."""
        offset = self.offset(lsn)
        if offset + HEAD_SIZE > self.size:
            return None
        salt, at, _flushed, length, _nonce, _prev = _HEAD.unpack_from(
            self._bytes(offset, HEAD_SIZE)
        )
        if salt != self.header.salt or at != lsn:
            return None  # before trusting its length enough to read that much
        size = record_size(length)
        if offset + size > self.size:
            return None
        return _record_in(self._bytes(offset, size), 0, lsn, self.header.salt)

    def scan(self) -> tuple[int, int, int | None]:
        """Follow the chain from the epoch's start to its last complete record.

        Returns:
            ``(end, prev, last)``: the position after the last record, that record's
            checksum (the header's when there is none) and its position (or None).

        Raises:
            CorruptJournalError: the chain breaks at a record that was already durable.
        """
        lsn, prev, last = self.header.start, self.header.crc, None
        while True:
            record = self.record_at(lsn)
            if record is None or record.prev != prev:
                break
            prev, last, lsn = record.crc, lsn, record.end
        self._check_tail(lsn)
        return lsn, prev, last

    def _check_tail(self, end: int) -> None:
        # A record is torn only if it was never flushed. Any intact record of this epoch
        # further on that was appended when the log was already durable past `end` proves
        # the break at `end` is damage to durable data, not a tear.
        salt = struct.pack("<Q", self.header.salt)
        offset = self.offset(end) + ALIGN
        while offset < self.size:
            chunk = read_at(self.fd, offset, _CHUNK + HEAD_SIZE)
            found = chunk.find(salt)
            while found >= 0:
                at = offset + found
                if (at - DATA_OFFSET) % ALIGN == 0:
                    record = self.record_at(self.header.start + at - DATA_OFFSET)
                    if record is not None and record.flushed > end:
                        raise CorruptJournalError(
                            self.path,
                            self.offset(end),
                            f"the record there is damaged, but the record at offset {at} was "
                            "appended after it had been flushed",
                        )
                found = chunk.find(salt, found + 1)
            offset += _CHUNK

    def records(self, after: int, end: int, prev: int | None) -> list[Record]:
        """Return the records from ``after`` to ``end``, each required to be intact.

        Args:
            after: the position of the first record.
            end: the position after the last one.
            prev: the checksum the first record must chain to, or None to not check it.

        Raises:
            CorruptJournalError: a record in the range is damaged or out of the chain.
        """
        # One read of the whole range: catching up with other processes runs this for every
        # record they appended.
        window = read_at(self.fd, self.offset(after), end - after)
        salt = self.header.salt
        found = []
        lsn = after
        while lsn < end:
            record = _record_in(window, lsn - after, lsn, salt)
            if record is None or (prev is not None and record.prev != prev):
                raise CorruptJournalError(
                    self.path, self.offset(lsn), "a record below the end of the log is damaged"
                )
            found.append(record)
            prev, lsn = record.crc, record.end
        return found
