"""Which order index to trust, and keeping it exact.

The index files are trusted when they were built in this boot for this very folder (device
and inode) and their state block records the folder's current mtime and ctime. Every
change of the folder's entries (a create, rename or unlink by persistkit, by iodict 0.0.8,
by ``rm``...) moves those times, and persistkit records the new times only after its own
change is in the index, under the store lock. So a writer killed mid-change, a foreign
writer, a copy, a restore or a reboot all leave the times (or identity, or boot) different,
and the index is rebuilt from the items (`persistkit.iodict._rebuild`).

Since Linux 6.13, ext4, XFS, btrfs and tmpfs give a folder a fine-grained timestamp when
its times were read since the last change, so a change right after persistkit recorded the
times still moves them. Older kernels use a clock tick (1-4 ms): a foreign change within
the same tick as a persistkit write can then go unnoticed until the next rebuild.

Readers never write: when the times do not match they wait on a shared lock (a writer may
be in the middle of a change; no lock is taken where no lock file exists), look again, and
if the index is still not current they rebuild it in memory and keep that copy for as long
as the folder's times stay the same. Writers (holding the store lock) rebuild on disk.
"""

from __future__ import annotations

import itertools
import os
import secrets
import warnings
from collections.abc import Callable, Mapping

from persistkit.core import FileLock, make_dirs, sweep
from persistkit.iodict._index_files import (
    LIVE,
    DamagedIndexError,
    Head,
    IndexBuilder,
    IndexView,
    IndexWriter,
    State,
    index_paths,
    open_view,
    write_index,
)
from persistkit.iodict._journal_records import Entry
from persistkit.iodict._layouts import Layout
from persistkit.iodict._rebuild import FolderStamp, Rebuilt, rebuild
from persistkit.iodict.errors import KeylessItemsWarning


def _warn_keyless(directory: str, keyless: list[str]) -> None:
    if keyless:
        shown = ", ".join(os.path.basename(path) for path in keyless[:3])
        more = f" and {len(keyless) - 3} more" if len(keyless) > 3 else ""
        warnings.warn(
            KeylessItemsWarning(
                f"{len(keyless)} item file(s) in {directory!r} carry no key and are not in "
                f"the order index, so they are left out of iteration (kept on disk): "
                f"{shown}{more}; see IODict.keyless_files()"
            ),
            stacklevel=4,
        )


class OrderIndex:
    """The order index of one store folder, as seen by one `IODict` object.

    Args:
        directory: the store folder.
        layout: returns the store's item layout (read lazily: writers learn the mount's
            xattr limit on their first write).
        boot: the current boot's tag (`persistkit.iodict._index_files.boot_tag`).
        lock_path: the store's lock file, for the readers' shared lock.
    """

    def __init__(
        self,
        directory: str,
        layout: Callable[[], Layout],
        boot: bytes,
        lock_path: str,
        overlay: Callable[[], Mapping[bytes, Entry] | None] = lambda: None,
    ) -> None:
        self._directory = directory
        self._layout = layout
        self._boot = boot
        self._folder, self._order_path, _ = index_paths(directory)
        self._view: IndexView | None = None
        self._view_fds: tuple[int, int] | None = None
        self._writable = False
        self._memory: tuple[IndexView, Rebuilt] | None = None
        self._damaged = -1
        self._overlay_source = overlay
        self.rebuilt = False
        self._reader_lock = FileLock.for_path(lock_path, shared=True, create=False)

    # -- views -------------------------------------------------------------------------

    def _file_view(self, *, writable: bool = False) -> IndexView | None:
        """The current index files' view, reopened when they were replaced."""
        try:
            inode = os.stat(self._order_path).st_ino
        except FileNotFoundError:
            self._drop_view()
            return None
        if (
            self._view is not None
            and self._view.inode == inode
            and (self._writable or not writable)
        ):
            return self._view
        self._drop_view()
        try:
            view, order_fd, keys_fd = open_view(self._directory, writable=writable)
        except DamagedIndexError:
            return None
        self._view, self._view_fds, self._writable = view, (order_fd, keys_fd), writable
        return view

    def _drop_view(self) -> None:
        if self._view is not None:
            self._view.close()
        self._view, self._view_fds, self._writable = None, None, False

    def _trusted(self, view: IndexView, folder: FolderStamp) -> State | None:
        """The view's state if it describes the folder as it is now, else None."""
        head = view.head
        if head.boot != self._boot or (head.device, head.inode) != (folder.device, folder.inode):
            return None
        if head.generation == self._damaged:
            return None
        try:
            state = view.state()
        except DamagedIndexError:
            return None
        if (state.mtime_ns, state.ctime_ns) != (folder.mtime_ns, folder.ctime_ns):
            return None
        return state

    def _look(self) -> tuple[IndexView, State] | None:
        folder = FolderStamp.of(self._directory)
        view = self._file_view()
        if view is not None:
            state = self._trusted(view, folder)
            if state is not None:
                self._memory = None
                return view, state
        if self._memory is not None and self._memory[1].folder == folder:
            memory_view = self._memory[0]
            return memory_view, memory_view.state()
        return None

    def files_current(self) -> bool:
        """Whether the index files on disk describe the folder now (a cheap check)."""
        view = self._file_view()
        return view is not None and self._trusted(view, FolderStamp.of(self._directory)) is not None

    def current(self) -> tuple[IndexView, State]:
        """Return a view and state that describe the folder now; never writes.

        Raises:
            OSError: the folder cannot be read.
        """
        found = self._look()
        if found is not None:
            return found
        # A writer may be between its change and its index update: wait for it.
        with self._reader_lock:
            found = self._look()
            if found is not None:
                return found
            rebuilt = self._rebuild(self._file_view(), overlay=self._overlay_source())
            memory_view = IndexView(rebuilt.order, rebuilt.keys)
            self._memory = (memory_view, rebuilt)
            return memory_view, memory_view.state()

    def refresh(self, *, damaged: IndexView) -> tuple[IndexView, State]:
        """Return a current view that is not ``damaged`` (whose slots or keys were bad).

        The damaged generation is distrusted from now on: readers rebuild in memory, the
        next writer rebuilds on disk.
        """
        self._damaged = damaged.head.generation
        self._drop_view()
        self._memory = None
        return self.current()

    def _rebuild(
        self,
        old: IndexView | None,
        *,
        applied: int = 0,
        overlay: Mapping[bytes, Entry] | None = None,
    ) -> Rebuilt:
        layout = self._layout()
        try:
            rebuilt = rebuild(
                self._directory, layout, old, boot=self._boot, applied=applied, overlay=overlay
            )
        except DamagedIndexError:
            rebuilt = rebuild(
                self._directory, layout, None, boot=self._boot, applied=applied, overlay=overlay
            )
        _warn_keyless(self._directory, rebuilt.keyless)
        return rebuilt

    # -- writing (the caller holds the store lock) -------------------------------------

    def writer(
        self,
        *,
        journal_start: int | None = None,
        journal_end: int = 0,
        recover: Callable[[int | None], None] = lambda after: None,
    ) -> IndexWriter:
        """Return a writer on index files that describe the folder now, rebuilding if needed.

        The caller holds the store's exclusive lock and later calls `commit`.

        Args:
            journal_start: where the store's journal starts (None: no journal).
            journal_end: where it ends.
            recover: replays the journal into the items, from a position (or all of it for
                None); called before a rebuild. In the boot the index was written in, only
                records after the index's ``applied`` position can be missing from the items
                (a writer died between journaling and indexing); after a reboot, or with no
                readable index, any record can be (the items were published unflushed).

        Sets `rebuilt` when the index had to be rebuilt.
        """
        folder = FolderStamp.of(self._directory)
        view = self._file_view(writable=True)
        state = None if view is None else self._trusted(view, folder)
        applied = state.applied if state is not None else self._applied(view)
        pending = journal_start is not None and (
            applied is None or journal_end > max(applied, journal_start)
        )
        if state is None or pending:
            if not os.path.isdir(self._folder):
                make_dirs(self._folder, durability="atomic")
            if journal_start is not None:
                recover(None if applied is None else max(applied, journal_start))
            folder = FolderStamp.of(self._directory)
            # A reader's rebuild can be written as it is only where no journal is involved
            # (it records no journal position, and may hold journal entries as overlay).
            if (
                self._memory is not None
                and self._memory[1].folder == folder
                and journal_start is None
            ):
                rebuilt = self._memory[1]
            else:
                rebuilt = self._rebuild(view, applied=journal_end)
            write_index(self._directory, rebuilt.order, rebuilt.keys)
            sweep(self._folder)
            self._memory = None
            self.rebuilt = True
            view = self._file_view(writable=True)
            if view is None:
                raise DamagedIndexError("the index just written cannot be opened")
        assert view is not None  # trusted, or just written and opened
        assert self._view_fds is not None  # set together with the view
        # A state read to trust the files is the writer's; after a rebuild, read it anew.
        return IndexWriter(view, *self._view_fds, state=None if pending else state)

    def replay_point(self) -> int | None:
        """Where the journal's records may stop being in the items: None for anywhere.

        In the boot the index was written in, only records after its ``applied`` position
        can be missing (a writer died between journaling and indexing); after a reboot, or
        without a readable index, any record can be (items are published unflushed).
        """
        return self._applied(self._file_view())

    def _applied(self, view: IndexView | None) -> int | None:
        """The journal position an untrusted index recorded, if it is from this boot."""
        if view is None or view.head.boot != self._boot:
            return None
        try:
            return view.state().applied
        except DamagedIndexError:
            return None

    def commit(self, writer: IndexWriter, *, applied: int = 0) -> None:
        """Record the writer's changes with the folder's current times; compact if due.

        ``applied`` is the end of the store's journal the items now reflect.
        """
        folder = FolderStamp.of(self._directory)
        writer.commit(folder.mtime_ns, folder.ctime_ns, applied)
        if writer.wants_compaction:
            self._compact(writer, folder)

    def _compact(self, writer: IndexWriter, folder: FolderStamp) -> None:
        view, state = writer.view, writer.state
        head = view.head
        builder = IndexBuilder(
            Head(secrets.randbits(63), head.device, head.inode, head.boot, head.keyless)
        )
        for chunk in view.chunks(state.head, state.count):
            live = [mark == LIVE for mark in chunk.states]
            stamps = zip(chunk.epochs, chunk.nss, strict=True)
            builder.add_run(
                list(itertools.compress(chunk.keys(), live)),
                list(itertools.compress(stamps, live)),
            )
        order, keys = builder.finish(folder.mtime_ns, folder.ctime_ns, state.applied)
        write_index(self._directory, order, keys)
        self._drop_view()

    def rebuild_now(self, writer: IndexWriter, *, applied: int = 0) -> None:
        """Rebuild the index on disk from the items (after `IODict.clear`)."""
        rebuilt = self._rebuild(writer.view, applied=applied)
        write_index(self._directory, rebuilt.order, rebuilt.keys)
        self._drop_view()
        self._memory = None

    def keyless_files(self) -> list[str]:
        """Scan the folder and return the item files whose key cannot be recovered."""
        view = self._file_view()
        try:
            return rebuild(self._directory, self._layout(), view, boot=self._boot).keyless
        except DamagedIndexError:
            return rebuild(self._directory, self._layout(), None, boot=self._boot).keyless

    def close(self) -> None:
        """Close the index files."""
        self._drop_view()
        self._memory = None
