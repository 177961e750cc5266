"""A queue's state in memory, and the journal records that change it.

The state is what the queue's files hold (the last checkpoint) with every journal record
since applied on top. Records are redo records with absolute values ("the head is 12",
"item 7 is leased for the 3rd time"), so applying one twice, as replay after a crash does,
changes nothing; counters only move forward (``max``), except ``taken``, which each record
that changes it states outright.

Records (one byte of type, then big-endian fields):

- ``Q`` count, then count x (length, payload): items put (``put_many`` is one). They get the
  next numbers at the tail when the record is applied: a producer appends without reading
  anything, and replay from the checkpoint's position numbers them the same way again.
- ``G`` item, head, taken: `get` took the item (the head or a given-back one).
- ``L`` item, head, tries, deadline (ms), owner: the item is leased (claim, re-claim,
  nack with an empty owner, renew).
- ``A`` item: the leased item was acknowledged.
- ``D`` item, head: the item was moved to the dead-letter area (its file first).
- ``H`` head: the head moved past items that left (holes; everything, for ``ingest``).
- ``T`` taken: `task_done`.
- ``M`` first, count, then count x (length, name): iodict 0.0.8 items numbered.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from persistkit.core import CorruptFileError
from persistkit.iodict._leases import Lease

_U32 = struct.Struct(">I")
_ADOPT = struct.Struct(">QI")
_TAKE = struct.Struct(">QQQ")
_LEASE = struct.Struct(">QQIQ")
_ONE = struct.Struct(">Q")
_TWO = struct.Struct(">QQ")


def _sized(parts: list[bytes]) -> bytes:
    return b"".join(_U32.pack(len(part)) + part for part in parts)


def _unsized(data: bytes, offset: int, count: int) -> list[bytes]:
    parts = []
    for _ in range(count):
        (length,) = _U32.unpack_from(data, offset)
        offset += _U32.size
        parts.append(data[offset : offset + length])
        offset += length
    return parts


def put_record(payloads: list[bytes]) -> bytes:
    """``payloads`` join the queue at its tail, in order."""
    return b"Q" + _U32.pack(len(payloads)) + _sized(payloads)


def take_record(item: int, head: int, taken: int) -> bytes:
    """`get` took ``item``; the head is ``head`` and ``taken`` items await `task_done`."""
    return b"G" + _TAKE.pack(item, head, taken)


def lease_record(lease: Lease, head: int) -> bytes:
    """``lease`` is the item's lease now; the head is ``head``."""
    return (
        b"L"
        + _LEASE.pack(lease.item, head, lease.tries, lease.deadline_ms)
        + (lease.owner.encode("ascii"))
    )


def ack_record(item: int) -> bytes:
    """The leased ``item`` was acknowledged: it is finished."""
    return b"A" + _ONE.pack(item)


def dead_record(item: int, head: int) -> bytes:
    """``item`` is in the dead-letter area now; the head is ``head``."""
    return b"D" + _TWO.pack(item, head)


def head_record(head: int) -> bytes:
    """The head is ``head``: every item below it that is not leased has left."""
    return b"H" + _ONE.pack(head)


def task_done_record(taken: int) -> bytes:
    """``taken`` items taken by `get` await `task_done`."""
    return b"T" + _ONE.pack(taken)


def adopt_record(first: int, names: list[str]) -> bytes:
    """Items ``first``, ``first + 1``... are the iodict 0.0.8 files ``names``."""
    return b"M" + _ADOPT.pack(first, len(names)) + _sized([name.encode() for name in names])


@dataclass
class QueueState:
    """Where every item of a queue is, as of one position in its journal.

    Attributes:
        head: items below it have left, unless they are leased.
        tail: the number the next put gets.
        taken: items taken by `get` that await `task_done`.
        leases: the items delivered by `claim` and not settled.
        pending: the items put since the last checkpoint that are still in the queue
            (their only copy on disk is in the journal).
        legacy: iodict 0.0.8 items, by number: they stay in the files iodict wrote.
        gone: items that left since the last checkpoint; their files, if any, are
            removed (by whoever took them, and for sure at the next checkpoint).
    """

    head: int = 0
    tail: int = 0
    taken: int = 0
    leases: dict[int, Lease] = field(default_factory=dict)
    pending: dict[int, bytes] = field(default_factory=dict)
    legacy: dict[int, str] = field(default_factory=dict)
    gone: set[int] = field(default_factory=set)

    def _leave(self, item: int) -> None:
        self.pending.pop(item, None)
        self.gone.add(item)

    def _move_head(self, head: int) -> None:
        for item in range(self.head, head):
            if item not in self.leases:
                self._leave(item)
        self.head = max(self.head, head)

    def apply(self, data: bytes, *, where: str = "journal") -> None:
        """Apply one record.

        Raises:
            CorruptFileError: the record is not one of a queue (``where`` names the file).
        """
        try:
            self._apply(data)
        except (struct.error, IndexError, UnicodeDecodeError) as error:
            raise CorruptFileError(where, f"a queue record does not decode: {error}") from error

    def _apply(self, data: bytes) -> None:
        handler = _HANDLERS.get(data[:1])
        if handler is None:
            raise IndexError(f"unknown record type {data[:1]!r}")
        handler(self, data[1:])

    def _put(self, body: bytes) -> None:
        (count,) = _U32.unpack_from(body)
        for payload in _unsized(body, _U32.size, count):
            self.pending[self.tail] = payload
            self.tail += 1

    def _take(self, body: bytes) -> None:
        item, head, taken = _TAKE.unpack_from(body)
        self.leases.pop(item, None)
        self._leave(item)
        self._move_head(head)
        self.taken = taken

    def _lease(self, body: bytes) -> None:
        item, head, tries, deadline = _LEASE.unpack_from(body)
        owner = body[_LEASE.size :].decode("ascii")
        self.leases[item] = Lease(item, tries, deadline, owner)
        self.gone.discard(item)
        self._move_head(head)

    def _ack(self, body: bytes) -> None:
        (item,) = _ONE.unpack_from(body)
        self.leases.pop(item, None)
        self._leave(item)

    def _dead(self, body: bytes) -> None:
        item, head = _TWO.unpack_from(body)
        self.leases.pop(item, None)
        self._leave(item)
        self._move_head(head)

    def _head(self, body: bytes) -> None:
        self._move_head(_ONE.unpack_from(body)[0])

    def _task_done(self, body: bytes) -> None:
        self.taken = _ONE.unpack_from(body)[0]

    def _adopt(self, body: bytes) -> None:
        first, count = _ADOPT.unpack_from(body)
        for offset, name in enumerate(_unsized(body, _ADOPT.size, count)):
            self.legacy[first + offset] = name.decode("ascii")
        self.tail = max(self.tail, first + count)

    def leased_between(self, low: int, high: int) -> int:
        """How many leased items are numbered in [low, high)."""
        return sum(1 for item in self.leases if low <= item < high)


_HANDLERS: dict[bytes, Callable[[QueueState, bytes], None]] = {
    b"Q": QueueState._put,
    b"G": QueueState._take,
    b"L": QueueState._lease,
    b"A": QueueState._ack,
    b"D": QueueState._dead,
    b"H": QueueState._head,
    b"T": QueueState._task_done,
    b"M": QueueState._adopt,
}
