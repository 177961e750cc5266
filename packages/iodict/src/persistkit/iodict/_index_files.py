"""The order index: every key of a store, in insertion order, beside the items.

Two files in ``.persistkit-iodict.d/``:

``order``: a 64-byte head (magic, version, generation, the store folder's device and inode,
the boot it was built in, how many item files had no recoverable key, CRC), a *state
block* (live and total slot counts, the first and last live slot, where the key heap ends,
the store folder's mtime and ctime when the state was written, the end of the store's
journal the items reflect, CRC), then from byte 256
one 32-byte *slot* per inserted key, sorted by order stamp::

    state (L/D) | 3 pad | key length u32 | key offset u64 | epoch u32 | ns u64 | chain u32

``keys``: a 32-byte head with the same generation, then the canonical key bytes of every
slot, appended in slot order, with no gaps. A slot's *chain* is the CRC-32 of all key bytes
up to and including its own, so one CRC over a run of keys checks them all, and their
slots' offsets and lengths must tile that run exactly.

The state block is the commit point of an index change: a slot appended past ``count`` is
invisible until the state block counts it, and a deletion is a one-byte tombstone plus a
state block update. Both files are updated in place with core's `write_at` and never
flushed: the index is a cache of the folder, trusted only while the folder's times match
the state block and the boot has not changed (`persistkit.iodict._order`); otherwise it is
rebuilt from the items (`persistkit.iodict._rebuild`). Compaction and rebuilds replace
both files atomically (keys first, then order; a reader checks that generations agree).

All integers are little-endian.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import operator
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from persistkit.core import write_at, write_bytes

INDEX_DIR = ".persistkit-iodict.d"
ORDER_NAME = "order"
KEYS_NAME = "keys"

_ORDER_MAGIC = b"PKIODORD"
_KEYS_MAGIC = b"PKIODKEY"
_VERSION = 2
_HEAD = struct.Struct("<8sIQQQ16sQ")
_CRC = struct.Struct("<I")
_STATE = struct.Struct("<QQQQQqqQQ")
_STATE_OFFSET = 64
_SLOTS = 256
_KEYS_HEAD = struct.Struct("<8sIQ")
KEYS_START = 32
SLOT = struct.Struct("<c3xIQIQI")
LIVE = b"L"
DEAD = b"D"
NONE = (1 << 64) - 1
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_FIRST_CHUNK = 64
_MAX_CHUNK = 4096

StampKey = tuple[int, int]
"""An order stamp as the index sorts it: (epoch, ns); epoch 0 holds a birth time in ns."""

Row = tuple[bytes, int, int, int, int, int]
"""A slot as unpacked: (state, key length, key offset, epoch, ns, chain)."""


def boot_tag(boot: str) -> bytes:
    """Return the 16 bytes that identify a boot in an index head."""
    return hashlib.sha256(boot.encode()).digest()[:16]


class DamagedIndexError(Exception):
    """The index files are missing, inconsistent or damaged; rebuild from the items."""


@dataclass(frozen=True, slots=True)
class Head:
    """What an index was built for."""

    generation: int
    device: int
    inode: int
    boot: bytes
    keyless: int = 0


@dataclass(frozen=True, slots=True)
class State:
    """The state block: counts, ends, and the folder times the index matches."""

    live: int
    count: int
    head: int
    tail: int
    keys_end: int
    mtime_ns: int
    ctime_ns: int
    seq: int
    applied: int = 0

    # Built field by field: dataclasses.replace cost more than the index writes of a set.
    def moved(self, live: int, count: int, head: int, tail: int, keys_end: int) -> State:
        """Return this state with new counts and ends."""
        return State(
            live, count, head, tail, keys_end, self.mtime_ns, self.ctime_ns, self.seq, self.applied
        )

    def stamped(self, mtime_ns: int, ctime_ns: int, applied: int) -> State:
        """Return the next state: this one recorded with the folder's times and journal end."""
        return State(
            self.live,
            self.count,
            self.head,
            self.tail,
            self.keys_end,
            mtime_ns,
            ctime_ns,
            self.seq + 1,
            applied,
        )

    def to_bytes(self) -> bytes:
        """Encode the block with its CRC."""
        body = _STATE.pack(
            self.live,
            self.count,
            self.head,
            self.tail,
            self.keys_end,
            self.mtime_ns,
            self.ctime_ns,
            self.seq,
            self.applied,
        )
        return body + _CRC.pack(zlib.crc32(body))


@dataclass(frozen=True, slots=True)
class Slot:
    """One slot of the order file."""

    index: int
    live: bool
    key_length: int
    key_offset: int
    stamp: StampKey
    chain: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """A run of slots read and checked together, as columns.

    Attributes:
        start: the first slot's index.
        states, epochs, nss: the slots' fields, one tuple each.
        heap: the run's key bytes, which the slots tile.
        starts, ends: where each slot's key starts and ends in ``heap``.
        all_live: no slot of the run is dead.
    """

    start: int
    states: tuple[bytes, ...]
    epochs: tuple[int, ...]
    nss: tuple[int, ...]
    heap: bytes
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    all_live: bool

    def __len__(self) -> int:
        return len(self.states)

    def keys(self) -> list[bytes]:
        """Every slot's key bytes, in order."""
        heap = self.heap
        return [heap[start:end] for start, end in zip(self.starts, self.ends, strict=True)]

    def live_keys(self) -> list[bytes]:
        """The keys of the live slots."""
        if self.all_live:
            return self.keys()
        return list(itertools.compress(self.keys(), map(LIVE.__eq__, self.states)))

    def live_text_keys(self) -> list[str] | None:
        """The live keys as ``str``, when every key of the run is ASCII text (else None).

        ASCII keys decode in one piece, and their byte offsets are character offsets: the
        common case of iteration costs one slice per key.
        """
        if not self.heap.isascii():
            return None
        text = self.heap.decode("ascii")
        keys = [text[start:end] for start, end in zip(self.starts, self.ends, strict=True)]
        if self.all_live:
            return keys
        return list(itertools.compress(keys, map(LIVE.__eq__, self.states)))

    def last_live(self) -> tuple[int, StampKey] | None:
        """(index, stamp) of the last live slot in the chunk, or None."""
        for offset in range(len(self.states) - 1, -1, -1):
            if self.states[offset] == LIVE:
                return self.start + offset, (self.epochs[offset], self.nss[offset])
        return None


_runs: dict[int, struct.Struct] = {}


def _run_struct(count: int) -> struct.Struct:
    """A struct that unpacks ``count`` consecutive slots in one call."""
    run = _runs.get(count)
    if run is None:
        run = _runs[count] = struct.Struct("<" + "c3xIQIQI" * count)
    return run


def _chain(chain: int, key: bytes) -> int:
    return zlib.crc32(key, chain)


def _parse_state(data: bytes) -> State:
    if len(data) < _STATE.size + _CRC.size:
        raise DamagedIndexError("truncated state block")
    body = data[: _STATE.size]
    (crc,) = _CRC.unpack_from(data, _STATE.size)
    if zlib.crc32(body) != crc:
        raise DamagedIndexError("state block checksum mismatch")
    return State(*_STATE.unpack(body))


def _head_bytes(head: Head) -> bytes:
    body = _HEAD.pack(
        _ORDER_MAGIC,
        _VERSION,
        head.generation,
        head.device,
        head.inode,
        head.boot,
        head.keyless,
    )
    return body + _CRC.pack(zlib.crc32(body))


def _parse_head(data: bytes) -> Head:
    if len(data) < _HEAD.size + _CRC.size:
        raise DamagedIndexError("truncated index head")
    body = data[: _HEAD.size]
    (crc,) = _CRC.unpack_from(data, _HEAD.size)
    magic, version, generation, device, inode, boot, keyless = _HEAD.unpack(body)
    if magic != _ORDER_MAGIC or zlib.crc32(body) != crc:
        raise DamagedIndexError("not an order index, or a damaged head")
    if version != _VERSION:
        raise DamagedIndexError(f"order index version {version} is not {_VERSION}")
    return Head(generation, device, inode, boot, keyless)


def _keys_head(generation: int) -> bytes:
    return _KEYS_HEAD.pack(_KEYS_MAGIC, _VERSION, generation).ljust(KEYS_START, b"\0")


def slot_offset(index: int) -> int:
    """Return where slot ``index`` starts in the order file."""
    return _SLOTS + index * SLOT.size


class IndexBuilder:
    """Accumulates a fresh index (sorted slots and their keys) in memory.

    Used by rebuilds and compaction; `finish` returns the two files' contents.
    """

    def __init__(self, head: Head) -> None:
        self._head = head
        self._slots = bytearray()
        self._keys = bytearray(_keys_head(head.generation))
        self._count = 0
        self._chain = 0
        self._last: StampKey = (0, 0)

    def add(self, key_bytes: bytes, stamp: StampKey) -> None:
        """Append a live key.

        Raises:
            ValueError: ``stamp`` is below the previous key's (keys go in stamp order).
        """
        if stamp < self._last:
            raise ValueError("keys must be added in stamp order")
        self._last = stamp
        self._chain = zlib.crc32(key_bytes, self._chain)
        self._slots += SLOT.pack(
            LIVE, len(key_bytes), len(self._keys), stamp[0], stamp[1], self._chain
        )
        self._keys += key_bytes
        self._count += 1

    def add_run(self, keys: list[bytes], stamps: list[StampKey]) -> None:
        """Append live keys in bulk (the stamps in non-decreasing order, above the last)."""
        if not keys:
            return
        if stamps[0] < self._last or any(map(operator.gt, stamps, stamps[1:])):
            raise ValueError("keys must be added in stamp order")
        self._last = stamps[-1]
        lengths = list(map(len, keys))
        offsets = list(itertools.accumulate(lengths[:-1], initial=len(self._keys)))
        chains = list(itertools.accumulate(keys, _chain, initial=self._chain))[1:]
        self._chain = chains[-1]
        epochs, nss = zip(*stamps, strict=True)
        fields = itertools.chain.from_iterable(
            zip(itertools.repeat(LIVE), lengths, offsets, epochs, nss, chains, strict=False)
        )
        self._slots += _run_struct(len(keys)).pack(*fields)
        self._keys += b"".join(keys)
        self._count += len(keys)

    def finish(self, mtime_ns: int, ctime_ns: int, applied: int = 0) -> tuple[bytes, bytes]:
        """Return (order, keys) file contents, the state recording the given folder times.

        ``applied`` is the end of the store's journal that the items reflect.
        """
        count = self._count
        state = State(
            live=count,
            count=count,
            head=0,
            tail=count - 1 if count else NONE,
            keys_end=len(self._keys),
            mtime_ns=mtime_ns,
            ctime_ns=ctime_ns,
            seq=0,
            applied=applied,
        )
        head = _head_bytes(self._head).ljust(_STATE_OFFSET, b"\0")
        prefix = (head + state.to_bytes()).ljust(_SLOTS, b"\0")
        return prefix + bytes(self._slots), bytes(self._keys)


class IndexView:
    """Read access to one generation of the index, from its files or from memory.

    A view of files keeps both descriptors open; the files it reads may be replaced by a
    compaction or rebuild meanwhile, in which case the view goes on reading the old
    generation (a consistent, older picture) until `OrderIndex` hands out a new one.
    """

    def __init__(
        self,
        order: int | bytes,
        keys: int | bytes,
        *,
        order_path: str = "<memory>",
        keys_path: str = "<memory>",
    ) -> None:
        self._order = order
        self._keys = keys
        self.order_path = order_path
        self.keys_path = keys_path
        try:
            self.head = _parse_head(self._read_order(0, _STATE_OFFSET))
            keys_head = self._read_keys(0, _KEYS_HEAD.size)
            if len(keys_head) < _KEYS_HEAD.size:
                raise DamagedIndexError("truncated key file")
            magic, version, generation = _KEYS_HEAD.unpack(keys_head)
            if magic != _KEYS_MAGIC or version != _VERSION or generation != self.head.generation:
                raise DamagedIndexError("the key file belongs to another index generation")
            self.inode = os.fstat(order).st_ino if isinstance(order, int) else -1
        except BaseException:
            self.close()  # the descriptors were handed over: they are ours to close
            raise

    @property
    def in_memory(self) -> bool:
        """Whether this view was built in memory by a reader (the files were not current)."""
        return not isinstance(self._order, int) and self.order_path == "<memory>"

    def _read_order(self, offset: int, size: int) -> bytes:
        if isinstance(self._order, int):
            return os.pread(self._order, size, offset)
        return self._order[offset : offset + size]

    def _read_keys(self, offset: int, size: int) -> bytes:
        if isinstance(self._keys, int):
            return os.pread(self._keys, size, offset)
        return self._keys[offset : offset + size]

    def close(self) -> None:
        """Close the descriptors of a file view."""
        order, keys = self._order, self._keys
        self._order = self._keys = b""
        for fd in (order, keys):
            if isinstance(fd, int):
                os.close(fd)

    def __del__(self) -> None:
        if getattr(self, "_order", b"") != b"":
            with contextlib.suppress(OSError):  # a file system gone away (ENOTCONN)
                self.close()

    def state(self) -> State:
        """Read and check the state block.

        Raises:
            DamagedIndexError: it is torn or damaged, or points outside the slots.
        """
        state = _parse_state(self._read_order(_STATE_OFFSET, _STATE.size + _CRC.size))
        if state.live > state.count or (state.live and not state.head <= state.tail < state.count):
            raise DamagedIndexError("inconsistent state block")
        return state

    def chunk(self, start: int, stop: int) -> Chunk:
        """Read and check the slots ``start`` .. ``stop - 1`` and their keys.

        One read of each file; one CRC over the run of keys (the chain of the slot before
        the run continues into the chain of its last slot), and the slots' offsets and
        lengths must tile the run. The work is done column-wise, in C where possible:
        this is the hot loop of iteration.

        Raises:
            DamagedIndexError: a slot or key is damaged or the files end early.
        """
        first = max(start - 1, 0)
        data = self._read_order(slot_offset(first), (stop - first) * SLOT.size)
        if len(data) != (stop - first) * SLOT.size:
            raise DamagedIndexError("the order file ends before its last slot")
        if first < start:
            _, length, offset, _, _, chain = SLOT.unpack_from(data)
            begin = offset + length
            data = data[SLOT.size :]
        else:
            chain, begin = 0, KEYS_START
        if not data:
            return Chunk(start, (), (), (), b"", (), (), True)
        flat = _run_struct(len(data) // SLOT.size).unpack(data)
        states, lengths, offsets, epochs, nss = (flat[field::6] for field in range(5))
        marks = data[:: SLOT.size]
        all_live = not marks.strip(LIVE)
        if not all_live and marks.translate(None, LIVE + DEAD):
            raise DamagedIndexError(f"slots {start}..{stop - 1} hold an unknown state")
        ends = tuple(itertools.accumulate(lengths))
        starts = (0, *ends[:-1])
        if offsets != tuple(itertools.accumulate(lengths[:-1], initial=begin)):
            raise DamagedIndexError(f"slots {start}..{stop - 1} do not tile the key file")
        heap = self._read_keys(begin, ends[-1])
        if len(heap) != ends[-1] or zlib.crc32(heap, chain) != flat[-1]:
            raise DamagedIndexError(f"the keys of slots {start}..{stop - 1} are damaged")
        return Chunk(start, states, epochs, nss, heap, starts, ends, all_live)

    def chunks(self, start: int, stop: int) -> Iterator[Chunk]:
        """Yield checked chunks covering ``start`` .. ``stop - 1``.

        Chunks start small (the first key comes at once) and grow, so a long walk reads
        both files in large sequential pieces.
        """
        size = _FIRST_CHUNK
        position = start
        while position < stop:
            end = min(position + size, stop)
            yield self.chunk(position, end)
            position = end
            size = min(size * 4, _MAX_CHUNK)

    def entries(
        self, start: int, stop: int, *, live_only: bool = True
    ) -> Iterator[tuple[Slot, bytes]]:
        """Yield (slot, key bytes) for slots ``start`` .. ``stop - 1``."""
        for chunk in self.chunks(start, stop):
            for number, key in enumerate(chunk.keys()):
                live = chunk.states[number] == LIVE
                if live_only and not live:
                    continue
                stamp = (chunk.epochs[number], chunk.nss[number])
                yield Slot(chunk.start + number, live, len(key), -1, stamp, -1), key

    def slot(self, index: int) -> Slot:
        """Return slot ``index`` (its key is checked by `key`)."""
        data = self._read_order(slot_offset(index), SLOT.size)
        if len(data) != SLOT.size:
            raise DamagedIndexError("the order file ends before its last slot")
        row: Row = SLOT.unpack(data)
        if row[0] != LIVE and row[0] != DEAD:
            raise DamagedIndexError(f"slot {index} holds an unknown state")
        return _slot(index, row)

    def key(self, slot: Slot) -> bytes:
        """Return the key bytes of ``slot``, checked."""
        return self.chunk(slot.index, slot.index + 1).keys()[0]

    def first_at_or_after(self, stamp: StampKey, state: State) -> int:
        """Return the first slot index whose stamp is >= ``stamp`` (binary search)."""
        low, high = 0, state.count
        while low < high:
            middle = (low + high) // 2
            if self.slot(middle).stamp < stamp:
                low = middle + 1
            else:
                high = middle
        return low

    def find(self, key_bytes: bytes, stamp: StampKey | None, state: State) -> Slot | None:
        """Return the live slot of ``key_bytes``, or None.

        With the item's stamp the slot is found by binary search (slots are sorted by
        stamp); without one (an item copied without its xattrs), or if the stamp does not
        lead to it, every live slot is read.
        """
        if stamp is not None:
            position = self.first_at_or_after(stamp, state)
            for slot, data in self.entries(position, min(position + _FIRST_CHUNK, state.count)):
                if slot.stamp != stamp:
                    break
                if data == key_bytes:
                    return slot
        for slot, data in self.entries(state.head, state.count):
            if data == key_bytes:
                return slot
        return None

    def next_live(self, after: int, state: State) -> int:
        """Return the first live slot after ``after``, or ``state.count``."""
        position, size = after + 1, _FIRST_CHUNK
        while position < state.count:
            end = min(position + size, state.count)
            for index, row in enumerate(self._rows(position, end), position):
                if row[0] == LIVE:
                    return index
            position, size = end, min(size * 4, _MAX_CHUNK)
        return state.count

    def previous_live(self, before: int) -> int:
        """Return the last live slot before ``before``, or NONE."""
        position, size = before, _FIRST_CHUNK
        while position > 0:
            start = max(position - size, 0)
            rows = self._rows(start, position)
            for offset in range(len(rows) - 1, -1, -1):
                if rows[offset][0] == LIVE:
                    return start + offset
            position, size = start, min(size * 4, _MAX_CHUNK)
        return NONE

    def _rows(self, start: int, stop: int) -> list[Row]:
        data = self._read_order(slot_offset(start), (stop - start) * SLOT.size)
        if len(data) != (stop - start) * SLOT.size:
            raise DamagedIndexError("the order file ends before its last slot")
        return list(SLOT.iter_unpack(data))


def _slot(index: int, row: Row) -> Slot:
    state, length, offset, epoch, ns, chain = row
    return Slot(index, state == LIVE, length, offset, (epoch, ns), chain)


class IndexWriter:
    """Changes to the files of one index generation; the caller holds the store lock.

    Appended slots and keys are invisible until `commit` writes the state block, which is
    what makes a change part of the index; `tombstone` marks a slot dead at once (a reader
    skips it) and is counted by the next `commit`.
    """

    def __init__(
        self, view: IndexView, order_fd: int, keys_fd: int, state: State | None = None
    ) -> None:
        self.view = view
        self._order_fd = order_fd
        self._keys_fd = keys_fd
        self.state = view.state() if state is None else state
        last = view.slot(self.state.count - 1) if self.state.count else None
        self._chain = 0 if last is None else last.chain
        self.last_stamp: StampKey = (0, 0) if last is None else last.stamp

    def append(self, key_bytes: bytes, stamp: StampKey) -> None:
        """Add a live key after the last slot (its stamp must be the highest)."""
        state = self.state
        write_at(self._keys_fd, key_bytes, state.keys_end, path=self.view.keys_path)
        self._chain = zlib.crc32(key_bytes, self._chain)
        slot = SLOT.pack(LIVE, len(key_bytes), state.keys_end, stamp[0], stamp[1], self._chain)
        write_at(self._order_fd, slot, slot_offset(state.count), path=self.view.order_path)
        self.last_stamp = stamp
        self.state = state.moved(
            state.live + 1,
            state.count + 1,
            state.head if state.live else state.count,
            state.count,
            state.keys_end + len(key_bytes),
        )

    def tombstone(self, slot: Slot) -> None:
        """Mark a live slot dead and move the head or tail past it."""
        write_at(self._order_fd, DEAD, slot_offset(slot.index), path=self.view.order_path)
        state = self.state
        live = state.live - 1
        if not live:
            head, tail = state.count, NONE
        else:
            head = (
                self.view.next_live(slot.index, state) if slot.index == state.head else state.head
            )
            tail = self.view.previous_live(slot.index) if slot.index == state.tail else state.tail
        self.state = state.moved(live, state.count, head, tail, state.keys_end)

    def commit(self, mtime_ns: int, ctime_ns: int, applied: int) -> None:
        """Write the state block with the folder's current times; the change is then in.

        ``applied`` is the end of the store's journal whose records the items now reflect.
        """
        self.state = self.state.stamped(mtime_ns, ctime_ns, applied)
        write_at(self._order_fd, self.state.to_bytes(), _STATE_OFFSET, path=self.view.order_path)

    @property
    def wants_compaction(self) -> bool:
        """Whether dead slots outnumber live ones enough to rewrite the index."""
        dead = self.state.count - self.state.live
        return dead > max(4096, self.state.live)


def index_paths(directory: str) -> tuple[str, str, str]:
    """Return (index folder, order file, keys file) of the store at ``directory``."""
    folder = os.path.join(directory, INDEX_DIR)
    return folder, os.path.join(folder, ORDER_NAME), os.path.join(folder, KEYS_NAME)


def open_view(directory: str, *, writable: bool = False) -> tuple[IndexView, int, int]:
    """Open the index files of the store at ``directory``.

    Returns:
        The view and its two descriptors (read-write when ``writable``).

    Raises:
        DamagedIndexError: the files are missing, of another generation, or damaged.
    """
    _, order_path, keys_path = index_paths(directory)
    flags = (os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC) if writable else _OPEN_FLAGS
    try:
        order_fd = os.open(order_path, flags)
    except FileNotFoundError:
        raise DamagedIndexError("no order index") from None
    try:
        keys_fd = os.open(keys_path, flags)
    except FileNotFoundError:
        os.close(order_fd)
        raise DamagedIndexError("no key file") from None
    view = IndexView(order_fd, keys_fd, order_path=order_path, keys_path=keys_path)
    return view, order_fd, keys_fd


def write_index(directory: str, order: bytes, keys: bytes) -> None:
    """Replace the index files atomically (keys first; a reader checks the generations).

    Not flushed: the index is a cache that a new boot rebuilds.
    """
    _, order_path, keys_path = index_paths(directory)
    write_bytes(keys_path, keys, durability="atomic", follow_symlinks=False)
    write_bytes(order_path, order, durability="atomic", follow_symlinks=False)
