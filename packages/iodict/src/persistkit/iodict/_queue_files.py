"""A queue's files: the last checkpoint of its state, read, set up and written.

Between checkpoints the journal holds every change; the files change only when the queue is
set up (the state file and the format record created, a persistkit 0.1 queue converted) and
at a checkpoint, which writes the state a journal replay reached, with the journal position
it covers, and then lets the journal recycle. See `persistkit.iodict._queue_names` for the layout.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

from persistkit.core import (
    Batch,
    Codec,
    CorruptFileError,
    Durability,
    fsync_dir,
    make_dirs,
    remove,
    resolve_format,
    sweep,
    write_bytes,
)
from persistkit.iodict._formats import resolve_recorded_format
from persistkit.iodict._json_records import read_json_object
from persistkit.iodict._layouts import NotAnItemError, open_item
from persistkit.iodict._leases import lease_path, list_leases
from persistkit.iodict._legacy_queue import read_legacy_map, write_legacy_map
from persistkit.iodict._queue_meta import (
    read_queue_format,
    sniff_format,
    write_queue_format,
)
from persistkit.iodict._queue_names import (
    ITEMS_NAME,
    KINDS,
    LEASES_NAME,
    LEGACY_MAP_NAME,
    OLD_DONE_KIND,
    STATE_NAME,
    Markers,
    item_name,
    parse_item_name,
)
from persistkit.iodict._queue_segments import Segments, encode_segment
from persistkit.iodict._queue_state import QueueState
from persistkit.iodict.errors import LayoutError


class Found(NamedTuple):
    """Where an item's bytes were found, and the bytes.

    Attributes:
        source: the file holding them (its own item file, or a segment); None when the
            only copy is in the journal.
        data: the encoded value.
        own_file: ``source`` is the item's own file, removed when the item leaves.
        damage: why ``data`` cannot be trusted (a failed checksum), or None.
    """

    source: str | None
    data: bytes
    own_file: bool = False
    damage: str | None = None

    @property
    def file(self) -> str | None:
        """The item's own file, or None when it has none."""
        return self.source if self.own_file else None


class QueueFiles:
    """The files of one queue directory.

    Args:
        directory: the queue directory (absolute).
        durability: how set-up and checkpoints write.
    """

    def __init__(self, directory: str, durability: Durability) -> None:
        self.directory = directory
        self.items = os.path.join(directory, ITEMS_NAME)
        self.leases = os.path.join(directory, LEASES_NAME)
        self.markers = Markers(directory)
        self.segments = Segments(self.items)
        self._durability = durability

    def item_path(self, item: int) -> str:
        """Return where a checkpoint keeps item number ``item``."""
        return os.path.join(self.items, item_name(item))

    def item_numbers(self) -> list[int]:
        """List the numbers of the item files (a directory listing)."""
        try:
            names = os.listdir(self.items)
        except FileNotFoundError:
            return []
        return [n for n in map(parse_item_name, names) if n is not None]

    def own_file(self, state: QueueState, item: int) -> str | None:
        """Return the file of ``item`` alone, or None when it has none.

        An item has a file of its own when persistkit 0.1 or iodict 0.0.8 wrote it;
        checkpoints since put items in segments.
        """
        path = self.item_path(item)
        if os.path.lexists(path):
            return path
        name = state.legacy.get(item)
        if name is not None and os.path.lexists(os.path.join(self.directory, name)):
            return os.path.join(self.directory, name)
        return None

    def payload(self, state: QueueState, item: int) -> Found | None:
        """Return where ``item`` is and its encoded value.

        Returns:
            None when the item is nowhere: a hole left by a crash of persistkit 0.1.

        Raises:
            CorruptFileError: the index of the segment that should hold it is damaged.
        """
        pending = state.pending.get(item)
        if pending is not None:
            return Found(None, pending)
        in_segment = self.segments.read(item)
        if in_segment is not None:
            return Found(in_segment.path, in_segment.data, damage=in_segment.damage)
        candidates = [self.item_path(item)]
        if item in state.legacy:
            candidates.append(os.path.join(self.directory, state.legacy[item]))
        for path in candidates:
            try:
                fd = open_item(path)
            except NotAnItemError:
                continue
            with os.fdopen(fd, "rb") as f:
                return Found(path, f.read(), own_file=True)
        return None

    # -- reading the checkpoint --------------------------------------------------------

    def _read_state_file(self) -> tuple[int, int, int, int] | None:
        """Return head, tail, taken and the journal position of the state file, if any."""
        path = os.path.join(self.directory, STATE_NAME)
        document = read_json_object(path)
        if document is None:
            return None
        try:
            values = tuple(int(document[key]) for key in ("head", "tail", "taken", "journal"))
        except (ValueError, KeyError, TypeError) as error:
            raise CorruptFileError(path, f"{type(error).__name__}: {error}") from error
        head, tail, taken, position = values
        return head, tail, taken, position

    def counters(self) -> tuple[int, int, int] | None:
        """Return head, tail and taken of the last checkpoint; None when there is none.

        A queue without a state file is read as persistkit 0.1 left it: from its marker
        files (a ``done`` marker counts as ``taken = head - done``), or, without markers
        (iodict 0.0.8's, or made by hand), from the item files.
        """
        recorded = self._read_state_file()
        if recorded is not None:
            return recorded[:3]
        head, tail, taken = (self.markers.get(kind) for kind in KINDS)
        if head is None or tail is None or taken is None:
            numbers = self.item_numbers()
            if head is None and tail is None and taken is None and not numbers:
                return None
            head = min(numbers, default=0) if head is None else head
            tail = max(numbers, default=head - 1) + 1 if tail is None else tail
            if taken is None:
                done = self.markers.get(OLD_DONE_KIND)
                taken = max(head - (head if done is None else done), 0)
        return head, tail, taken

    def load(self) -> tuple[QueueState, int | None]:
        """Read the last checkpoint (reads only).

        Returns:
            The state, and the journal position it covers: replay the records after it
            (None for a queue that has no state file yet: replay them all).
        """
        recorded = self._read_state_file()
        head, tail, taken = recorded[:3] if recorded is not None else self.counters() or (0, 0, 0)
        self.segments.scan()
        state = QueueState(
            head=head,
            tail=tail,
            taken=taken,
            leases=list_leases(self.leases),
            legacy=read_legacy_map(self.directory),
        )
        return state, None if recorded is None else recorded[3]

    def _write_state_file(self, state: QueueState, position: int) -> None:
        document = {
            "store": "persistkit-queue",
            "head": state.head,
            "tail": state.tail,
            "taken": state.taken,
            "journal": position,
        }
        # Always durable, whatever the queue's durability: the journal's recycle, which
        # follows, is, and a state file lost to a power cut would leave nothing to open.
        write_bytes(
            os.path.join(self.directory, STATE_NAME),
            (json.dumps(document) + "\n").encode(),
            follow_symlinks=False,
        )

    # -- setting up --------------------------------------------------------------------

    def set_up(self, format: Any, codec: Codec, position: int) -> Codec:
        """Create what a writer needs, convert a 0.1 queue; return the queue's codec.

        Creates the item and lease folders and the state file (a queue written by
        persistkit 0.1 gets its markers' counters, and its markers are removed once the
        state file is durable, or by a later set-up if a crash came in between), records
        the format, and removes temporary files of dead writers. The caller holds the
        journal's lock.

        Args:
            format: what the caller passed as ``format=`` (None: as recorded).
            codec: the codec chosen when the queue was opened.
            position: the journal's start, which a new state file covers.

        Raises:
            LayoutError: the recorded format contradicts ``format``, or a 0.1 queue's format
                cannot be recognised.
        """
        make_dirs(self.items, durability=self._durability)
        make_dirs(self.leases, durability=self._durability)
        if self._read_state_file() is None:
            state, _ = self.load()
            self._write_state_file(state, position)
        # Once the state file exists the markers say nothing more; looked for on every set-up,
        # since a crash right after the state file was written leaves them.
        found = self.markers.scan()
        for kind, values in found.items():
            for value in values:
                remove(self.markers.path(kind, value), durability="atomic", missing_ok=True)
        if any(found.values()) and self._durability == "durable":
            fsync_dir(self.directory)
        stored = read_queue_format(self.directory)
        if stored is None:
            if format is None:
                codec = resolve_format(self._guess_format())
            write_queue_format(self.directory, codec.name)
        else:
            codec = resolve_recorded_format(format, stored, self.directory)
        sweep(self.directory)
        return codec

    def _guess_format(self) -> str:
        state, _ = self.load()
        for item in range(state.head, state.tail):
            found = self.payload(state, item)
            if found is None:
                continue
            guess = sniff_format(found.data)
            if guess is None:
                raise LayoutError(
                    f"{self.directory!r} was written by persistkit 0.1, which did not record "
                    "its format, and its items are not pickle, JSON or BSON: pass format="
                )
            return guess
        return "pickle"

    # -- checkpoint --------------------------------------------------------------------

    def checkpoint(self, state: QueueState, position: int) -> None:
        """Write ``state``, as of journal ``position``, to the files (lock held).

        In an order that a crash anywhere leaves replayable from the state file's position:
        the pending items (one segment) and the leases are written durably first (one
        `Batch`), then the adopted-items record, then the state file (durably: from here on
        it covers ``position``); only then are the files of items that left removed, and
        the segments all of whose items left. The caller recycles the journal afterwards.
        """
        on_disk = list_leases(self.leases)
        # One segment and the leases that changed: a few files, each fsynced, rather than a
        # syncfs that would also write back every other program's data on the disk.
        with Batch(durability=self._durability, flush="files") as batch:
            if state.pending:
                items = sorted(state.pending.items())
                batch.write_bytes(
                    self.segments.write_path(items[0][0], items[-1][0]),
                    encode_segment(items),
                    follow_symlinks=False,
                )
            for item, lease in state.leases.items():
                if on_disk.get(item) != lease:
                    batch.write_bytes(
                        lease_path(self.leases, item), lease.encode(), follow_symlinks=False
                    )
        for item in on_disk.keys() - state.leases.keys():
            remove(lease_path(self.leases, item), durability="atomic")
        if self._durability == "durable":
            fsync_dir(self.leases)
        legacy = {item: name for item, name in state.legacy.items() if item not in state.gone}
        self._write_legacy(legacy)
        self._write_state_file(state, position)
        # Items of segments have no file of their own: one listing spares an unlink each.
        with_files = set(self.item_numbers()) if state.gone else set()
        for item in state.gone:
            if item in with_files:
                remove(self.item_path(item), durability="atomic", missing_ok=True)
            name = state.legacy.get(item)
            if name is not None:
                remove(os.path.join(self.directory, name), durability="atomic", missing_ok=True)
        for path in self.segments.finished(set(state.leases), state.head):
            remove(path, durability="atomic", missing_ok=True)
        self.segments.scan()
        state.legacy = legacy
        state.pending.clear()
        state.gone.clear()

    def _write_legacy(self, legacy: dict[int, str]) -> None:
        if legacy == read_legacy_map(self.directory):
            return
        if legacy:
            write_legacy_map(self.directory, legacy)
        else:
            remove(os.path.join(self.directory, LEGACY_MAP_NAME), durability="atomic")

    def tidy(self, state: QueueState) -> None:
        """Remove item files no state refers to; call when the queue is found empty.

        An empty queue's item folder holds only such files (left by a process killed with
        persistkit 0.1, or in the middle of a checkpoint), so listing it then is cheap.
        """
        for item in self.item_numbers():
            kept = item in state.leases or item in state.pending
            if not kept and not state.head <= item < state.tail:
                remove(self.item_path(item), durability="atomic", missing_ok=True)
        sweep(self.items)
