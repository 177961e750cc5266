"""IODict's journal records: redo records of sets and deletes, as core's `Journal` stores them.

One record is one durable operation (a set, a delete, or every item of one `update`): a count,
then per entry its kind (``S`` set, ``D`` delete), the order stamp the item gets (epoch, ns,
birth time), the canonical key and, for a set, the encoded value. A record holds absolute
values, so applying it twice does no harm; entries apply in order (the last one for a key
wins, as when they were first made).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from persistkit.core import CorruptFileError, Journal
from persistkit.iodict._layouts import Stamp

_COUNT = struct.Struct("<I")
_ENTRY = struct.Struct("<cIQdII")
SET = b"S"
DELETE = b"D"


@dataclass(frozen=True, slots=True)
class Entry:
    """One change a record describes."""

    kind: bytes
    key: bytes
    stamp: Stamp
    payload: bytes = b""


def encode(entries: list[Entry]) -> bytes:
    """Return the record holding ``entries``."""
    parts = [_COUNT.pack(len(entries))]
    for entry in entries:
        stamp = entry.stamp
        parts.append(
            _ENTRY.pack(
                entry.kind,
                stamp.epoch,
                stamp.ns,
                stamp.birthtime,
                len(entry.key),
                len(entry.payload),
            )
        )
        parts.append(entry.key)
        parts.append(entry.payload)
    return b"".join(parts)


def decode(data: bytes) -> list[Entry]:
    """Return the entries of a record.

    Raises:
        ValueError: ``data`` is not a record of this format.
    """
    (count,) = _COUNT.unpack_from(data)
    position = _COUNT.size
    entries = []
    for _ in range(count):
        kind, epoch, ns, birth, key_length, payload_length = _ENTRY.unpack_from(data, position)
        position += _ENTRY.size
        key = data[position : position + key_length]
        position += key_length
        payload = data[position : position + payload_length]
        position += payload_length
        if kind not in (SET, DELETE) or len(key) != key_length or len(payload) != payload_length:
            raise ValueError("malformed IODict journal record")
        entries.append(Entry(kind, key, Stamp(epoch, ns, birth), payload))
    if position != len(data):
        raise ValueError("trailing bytes after an IODict journal record")
    return entries


def final_entries(journal: Journal, after: int | None = None) -> dict[bytes, Entry]:
    """Return the last entry of each key among the journal's records (what replay applies).

    Args:
        journal: the store's journal.
        after: read only the records after this position (None: from the start).

    Raises:
        CorruptFileError: a record that the journal returned is not an IODict record.
    """
    final: dict[bytes, Entry] = {}
    for record in journal.records(after=journal.start if after is None else after):
        try:
            entries = decode(record.data)
        except (ValueError, struct.error) as error:
            raise CorruptFileError(
                journal.path, f"the record at {record.lsn} is not an IODict record: {error}"
            ) from error
        for entry in entries:
            final[entry.key] = entry
    return final
