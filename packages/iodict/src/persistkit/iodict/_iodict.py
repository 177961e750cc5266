"""IODict: a dict on a directory, one file per item, iterated in insertion order."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
import time
from collections.abc import ItemsView, Iterable, Iterator, Mapping, MutableMapping, ValuesView
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

from persistkit.core import (
    Batch,
    CorruptFileError,
    InvalidArgumentError,
    Journal,
    ObjectStore,
    UnloadableValueError,
    capabilities,
    check_durability,
    fsync_dir,
    make_dirs,
    remove,
    resolve_format,
    sync_files,
    write_bytes,
)
from persistkit.iodict._base import BaseClass
from persistkit.iodict._directory import (
    StoreLock,
    existing_directory,
    on_read_only_mount,
    open_directory,
    refuse_object_location,
    resolve_user_lock,
)
from persistkit.iodict._formats import resolve_recorded_format
from persistkit.iodict._index_files import (
    DamagedIndexError,
    IndexView,
    IndexWriter,
    State,
    boot_tag,
    index_paths,
)
from persistkit.iodict._journal_records import DELETE, SET, Entry, encode, final_entries
from persistkit.iodict._keys import NAME_PATTERN, Key, canonical_bytes, file_name, key_from_bytes
from persistkit.iodict._layouts import (
    HeaderLayout,
    Layout,
    NotAnItemError,
    Stamp,
    XattrLayout,
    open_item,
    read_all,
)
from persistkit.iodict._meta import BOOT, LOCK_NAME, OrderClock, StoreMeta, read_meta, write_meta
from persistkit.iodict._order import OrderIndex
from persistkit.iodict.errors import (
    KeyTooLongError,
    LayoutError,
    ReadOnlyStoreError,
    UnsupportedKeyError,
)

_MISSING: Any = object()
# Room left in the mount's xattr space for the order stamp and the attributes' names.
_XATTR_RESERVE = 256
# A headed item records the key's length in 32 bits.
_MAX_KEY_BYTES = (1 << 32) - 1
_READ_ONLY_ERRORS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
JOURNAL_NAME = "journal"
# The journal's preallocated size; past _CHECKPOINT_BYTES of records a durable write also
# checkpoints (the items the records cover are flushed together, one syncfs here, and the
# journal is recycled), so it rarely grows.
_JOURNAL_SIZE = 256 << 10
_CHECKPOINT_BYTES = 192 << 10
# Values larger than this are not journaled (that would write them twice): they are written
# durably in place of a record, after a checkpoint of whatever the journal held.
_LARGEST_JOURNALED = 64 << 10

if TYPE_CHECKING:
    # PEP 696 defaults, so an unannotated ``IODict(path)`` is IODict[Key, Any] for type
    # checkers; typing_extensions is only read by them (they ship its stubs).
    from typing_extensions import TypeVar as DefaultedTypeVar

    KT = DefaultedTypeVar("KT", bound=Key, default=Key)
    VT = DefaultedTypeVar("VT", default=Any)
else:
    KT = TypeVar("KT", bound=Key)
    VT = TypeVar("VT")


def _encoder(key: Key) -> str:
    """Return the file name an item of ``key`` has (iodict 0.0.8's ``_encoder``)."""
    return file_name(canonical_bytes(key))


def _has_items(directory: str) -> bool:
    with os.scandir(directory) as entries:
        return any(NAME_PATTERN.fullmatch(entry.name) for entry in entries)


def _decode_keys(keys: list[bytes]) -> list[Key]:
    """Decode a run of canonical keys (str keys, the common case, straight from UTF-8)."""
    try:
        return [
            key.decode("utf-8", "surrogatepass") if key[:1] != b"\xff" else key_from_bytes(key)
            for key in keys
        ]
    except (ValueError, IndexError) as error:
        raise DamagedIndexError(f"undecodable key in the index: {error}") from error


def _decode_key(key_bytes: bytes) -> Key:
    try:
        return key_from_bytes(key_bytes)
    except (ValueError, UnicodeDecodeError, IndexError) as error:
        raise DamagedIndexError(f"undecodable key in the index: {error}") from error


@dataclass(frozen=True, slots=True)
class Summary:
    """A store at a glance (for ``persistkit iodict``)."""

    items: int
    layout: str
    format: str
    first: Key | None
    last: Key | None
    index: str
    keyless: int


class IODict(BaseClass, MutableMapping[KT, VT]):
    """A dict kept in a directory: one file per item, iterated in insertion order.

    The whole ``dict`` API (through `collections.abc.MutableMapping`), ``==`` with any
    mapping, and a ``repr`` that looks like the dict it holds. Iteration follows insertion
    order, across processes and restarts: overwriting a key keeps its place, deleting and
    re-inserting it moves it to the end. Generic: ``IODict[str, int]`` for type checkers.

    Every change is written through persistkit-core: each item is a temporary file that is
    fsynced and renamed into place, with its key and order stamp set on it *before* the
    rename. When a writing method returns, the change is atomic (a crash leaves the old or
    the new item, never a mix) and, with ``durability="durable"`` (the default), survives
    power loss. ``durability="atomic"`` skips the fsyncs: safe against a crash of the
    process, not of the machine.

    Beside the items, an order index (``.persistkit-iodict.d/``) holds every key in order,
    so ``len()``, ``bool()``, the first key, `popitem` and `popleft` cost the same at any
    size and iteration streams. The items are the source of truth: the index is rebuilt
    from them whenever it does not match the folder (a crash, another program, a copy).

    Keys may be ``str`` (any string), ``bytes``, ``int`` (not ``bool``), or tuples of
    these; anything else raises `UnsupportedKeyError` (a `TypeError`) before the disk is
    touched. Each key becomes a 56-character SHA3-224 file name (iodict 0.0.8's naming),
    so no key can leave the directory or make a name too long.

    Values are pickled by default, as iodict does: **unpickling runs code, so only open
    directories you trust**. Pass ``format="json"`` (or any format persistkit-core knows)
    when the store is created to keep JSON instead; a store keeps its format for life.

    Several processes, related or not, may use one directory at once: writes take a
    cross-process file lock in the directory (plus ``lock``, if given). Reads take no lock;
    they see each item either before or after any concurrent write.

    ``IODict("s3://bucket/prefix")`` (or an `ObjectStore` in place of the path) keeps the
    dict in an object store instead, with the same API, errors and insertion order across
    machines; docs/iodict.md says what each call costs there and what readers see.

    Args:
        path: the store directory; created (durably) if missing. A regular file there is
            an error (`StorePathError`) and is left alone. Or an ``s3://`` URL or an
            `ObjectStore`.
        lock: like iodict, a lock object or a factory of one (``threading.Lock``,
            ``multiprocessing.Lock``); taken around every write in addition to the
            store's own file lock, which is what makes independent processes safe.
        format: ``"pickle"`` (the default for a new store), ``"json"``, or anything
            `persistkit.core.resolve_format` accepts; for an existing store, None means
            "whatever the store was created with".
        durability: ``"durable"`` or ``"atomic"``.
        use_xattrs: where a new store keeps keys and order: True requires user xattrs
            (iodict 0.0.8's layout), False forces the header layout (the key and order in
            a small header inside each file), None (the default) uses xattrs where the
            mount supports them. An existing store keeps the layout it was created with.
        read_only: open for reading only: nothing is ever written (no lock file, no
            metadata, no index) and every write raises `ReadOnlyStoreError`. A store on
            read-only media opens for reading without it.

    Raises:
        StorePathError: ``path`` exists and is not a directory.
        FileNotFoundError: ``read_only`` and there is nothing at ``path``.
        LayoutError: ``format`` or ``use_xattrs`` contradicts an existing store.

    Example:
        >>> from persistkit.iodict import IODict
        >>> data = IODict("/tmp/iodict")  # doctest: +SKIP
        >>> data["key"] = "value"  # doctest: +SKIP
        >>> data  # doctest: +SKIP
        {'key': 'value'}
    """

    _object_variant: ClassVar[type[IODict[Any, Any]] | None] = None

    def __init_subclass__(cls, *, object_store: bool = False, **kwargs: Any) -> None:
        """Register the variant that ``IODict("s3://...")`` makes (``object_store=True``)."""
        super().__init_subclass__(**kwargs)
        if object_store:
            IODict._object_variant = cls

    def __new__(
        cls, path: str | os.PathLike[str] | ObjectStore | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        """Make a folder's IODict, or the object-store variant for an s3:// URL or a store.

        ``path`` is None only when `copy` or `pickle` re-create an object (then ``__init__``
        is not called and the class is kept).

        Raises:
            InvalidArgumentError: a URL of another scheme, or an object store given to a
                subclass of IODict that keeps a folder.
        """
        variant = IODict._object_variant
        assert variant is not None, "persistkit.iodict registers its object-store variant"
        if path is None:
            return super().__new__(cls)
        if isinstance(path, ObjectStore) or (isinstance(path, str) and path.startswith("s3://")):
            if issubclass(cls, variant):
                return super().__new__(cls)
            if issubclass(variant, cls):  # IODict itself (or BaseClass-level callers)
                return super().__new__(variant)
        elif issubclass(cls, variant):
            raise InvalidArgumentError(f"{cls.__name__} needs an s3:// URL or an ObjectStore")
        refuse_object_location(path, cls.__name__)
        return super().__new__(cls)

    def __init__(
        self,
        path: str | os.PathLike[str] | ObjectStore,
        lock: Any = None,
        *,
        format: Any = None,
        durability: str = "durable",
        use_xattrs: bool | None = None,
        read_only: bool = False,
    ) -> None:
        check_durability(durability)
        if isinstance(path, ObjectStore):  # __new__ made the object-store variant instead
            raise InvalidArgumentError("a folder's IODict needs a path")
        self._durability: Any = durability
        directory = existing_directory(path) if read_only else open_directory(path)
        self._db_path = directory
        self._encoder = _encoder
        lock_path = os.path.join(directory, LOCK_NAME)
        self._lock = StoreLock(lock_path, resolve_user_lock(lock))
        self._read_only = read_only
        self._journaled = durability == "durable"
        self._journal: Journal | None = None
        self._journal_path = os.path.join(index_paths(directory)[0], JOURNAL_NAME)
        self._overlay: dict[bytes, Entry] | None = None
        self._layout: Layout = XattrLayout()
        self._index = OrderIndex(
            directory, lambda: self._layout, boot_tag(BOOT), lock_path, lambda: self._overlay
        )
        meta = read_meta(directory)
        if meta is None and not read_only and not _has_items(directory):
            meta = self._create_if_writable(format, use_xattrs)
        if meta is not None:
            layout_name, format_name = meta.layout, meta.format
        else:
            layout_name = "header" if use_xattrs is False else "xattr"
            format_name = "pickle" if format is None else resolve_format(format).name
        self._codec = resolve_recorded_format(format, format_name, directory)
        if use_xattrs is not None and use_xattrs != (layout_name == "xattr"):
            raise LayoutError(
                f"{directory!r} keeps keys in the {layout_name!r} layout; "
                f"use_xattrs={use_xattrs} cannot change an existing store"
            )
        self._layout = XattrLayout() if layout_name == "xattr" else HeaderLayout()
        self._layout_ready = layout_name == "header"
        self._clock = OrderClock(directory, meta, layout_name, self._codec.name)
        if os.path.exists(self._journal_path) and not self._index.files_current():
            # After a crash or a reboot the items may lack what the journal made durable;
            # reads show the journal's version until a writer replays it into the items.
            self._overlay = self._journal_overlay()

    def _create_if_writable(self, format: Any, use_xattrs: bool | None) -> StoreMeta | None:
        """Start a new store in an empty folder, unless the folder cannot be written."""
        if on_read_only_mount(self._db_path):
            return None
        try:
            with self._lock:
                meta = read_meta(self._db_path)
                if meta is None and not _has_items(self._db_path):
                    meta = self._create(format, use_xattrs)
                return meta
        except OSError as error:
            if error.errno in _READ_ONLY_ERRORS:
                return None
            raise

    def _create(self, format: Any, use_xattrs: bool | None) -> StoreMeta:
        directory = self._db_path
        codec = resolve_format("pickle" if format is None else format)
        folder = index_paths(directory)[0]
        make_dirs(folder)
        user_xattrs = capabilities(folder).user_xattrs
        if use_xattrs is None:
            use_xattrs = user_xattrs
        elif use_xattrs and not user_xattrs:
            raise LayoutError(f"use_xattrs=True but {directory!r} has no user xattrs")
        meta = StoreMeta("xattr" if use_xattrs else "header", codec.name, 1, BOOT)
        write_meta(directory, meta)
        self._layout = XattrLayout() if use_xattrs else HeaderLayout()
        self._index.writer()
        return meta

    @property
    def path(self) -> str:
        """The absolute path of the store directory."""
        return self._db_path

    # -- names -------------------------------------------------------------------------

    def _item_path(self, key_bytes: bytes) -> str:
        return os.path.join(self._db_path, file_name(key_bytes))

    @staticmethod
    def _write_key(key: object) -> bytes:
        key_bytes = canonical_bytes(key)
        if len(key_bytes) > _MAX_KEY_BYTES:
            raise KeyTooLongError(
                f"a key of {len(key_bytes)} bytes is too long for any layout "
                f"(at most {_MAX_KEY_BYTES})"
            )
        return key_bytes

    @staticmethod
    def _read_key(key: object) -> bytes | None:
        """Canonical bytes for a lookup; None for a hashable key that cannot be stored."""
        try:
            return canonical_bytes(key)
        except UnsupportedKeyError:
            hash(key)  # an unhashable key is a TypeError, as for dict
            return None

    # -- reading -----------------------------------------------------------------------

    def _current_overlay(self) -> dict[bytes, Entry] | None:
        """The journal entries reads go through, until a writer has replayed them.

        Once the index files describe the folder again, a writer has put the journal into
        the items (and may have written newer values since): the overlay is dropped.
        """
        if self._overlay is not None and self._index.files_current():
            self._overlay = None
        return self._overlay

    def _load(self, key: object, key_bytes: bytes | None) -> Any:
        if key_bytes is None:
            raise KeyError(key)
        overlay = self._current_overlay()
        if overlay is not None and key_bytes in overlay:
            entry = overlay[key_bytes]
            if entry.kind == DELETE:
                raise KeyError(key)
            return self._codec.decode(entry.payload, self._journal_path)
        path = self._item_path(key_bytes)
        try:
            payload = self._layout.read_payload(path, key_bytes)
        except NotAnItemError:
            raise KeyError(key) from None
        return self._codec.decode(payload, path)

    def __getitem__(self, key: KT) -> VT:
        """Return the value stored under ``key``.

        Raises:
            KeyError: there is no such key.
            CorruptFileError: the item's file cannot be decoded (it is left as it is).
            UnloadableValueError: the file is intact but names a class this program
                cannot import (pickle).
        """
        value: VT = self._load(key, self._read_key(key))
        return value

    def __contains__(self, key: object) -> bool:
        key_bytes = self._read_key(key)
        if key_bytes is None:
            return False
        overlay = self._current_overlay()
        if overlay is not None and key_bytes in overlay:
            return overlay[key_bytes].kind == SET
        try:
            info = os.lstat(self._item_path(key_bytes))
        except FileNotFoundError:
            return False
        return stat.S_ISREG(info.st_mode)

    def _current(self) -> tuple[IndexView, State]:
        return self._index.current()

    def __iter__(self) -> Iterator[KT]:
        """Iterate over the keys in insertion order, streaming them from the order index."""
        return itertools.chain.from_iterable(self._key_runs())

    def _key_runs(self) -> Iterator[list[Any]]:
        """Yield the keys run by run (one chunk of the index at a time)."""
        view, state = self._current()
        position, stop = state.head, state.count
        last: tuple[int, int] | None = None
        while True:
            try:
                for chunk in view.chunks(position, stop):
                    keys: list[Any] | None = chunk.live_text_keys()
                    if keys is None:
                        keys = _decode_keys(chunk.live_keys())
                    position = chunk.start + len(chunk)
                    end = chunk.last_live()
                    if end is not None:
                        last = end[1]
                    yield keys
                return
            except DamagedIndexError:
                # Go on after the last key yielded, in an index rebuilt from the items.
                view, state = self._index.refresh(damaged=view)
                stop = state.count
                if last is None:
                    position = state.head
                else:
                    position = view.first_at_or_after((last[0], last[1] + 1), state)

    def __len__(self) -> int:
        """Return the number of items, from the order index (constant time)."""
        return self._current()[1].live

    def __bool__(self) -> bool:
        return len(self) > 0

    def items(self) -> ItemsView[KT, VT]:
        """Return a view of (key, value) pairs in insertion order.

        Items deleted by another process while the view is iterated are skipped. An item
        whose file cannot be decoded raises `CorruptFileError` or `UnloadableValueError`
        naming the file: a silently shorter result would hide data.
        """
        return _ItemsView(self)

    def values(self) -> ValuesView[VT]:
        """Return a view of the values in insertion order (deleted ones skipped)."""
        return _ValuesView(self)

    def copy(self) -> dict[KT, VT]:
        """Return a plain ``dict`` snapshot of the store (iodict returned the store itself)."""
        return dict(self.items())

    def __repr__(self) -> str:
        """Show the store like the dict it holds; an unreadable value shows as such."""
        parts = []
        for key in self:
            try:
                value = self[key]
            except KeyError:
                continue
            except (CorruptFileError, UnloadableValueError) as error:
                parts.append(f"{key!r}: <unreadable: {error}>")
                continue
            parts.append(f"{key!r}: {value!r}")
        return "{" + ", ".join(parts) + "}"

    def _summary(self) -> Summary:
        """What ``persistkit iodict`` shows: counts and ends from the order index."""
        view, state = self._current()
        first = last = None
        if state.live:
            first = _decode_key(view.key(view.slot(state.head)))
            last = _decode_key(view.key(view.slot(state.tail)))
        return Summary(
            items=state.live,
            layout=self._layout.name,
            format=self._codec.name,
            first=first,
            last=last,
            index=(
                "rebuilt in memory (the folder changed since it was written; "
                "the next write rewrites it)"
                if view.in_memory
                else "current"
            ),
            keyless=view.head.keyless,
        )

    def keyless_files(self) -> list[str]:
        """Return the item files whose key cannot be recovered (sorted paths).

        Such a file lost its ``user.key`` xattr (a copy made without xattrs) and is not in
        the order index either, so it is not a key of the store; it is never removed.
        Reading its name's key still works if you know the key. Scans the folder.
        """
        return self._index.keyless_files()

    # -- writing -----------------------------------------------------------------------

    def _prepare_layout(self) -> None:
        """Learn what the mount's xattrs hold (once), probing inside the index folder."""
        if self._layout_ready:
            return
        folder = index_paths(self._db_path)[0]
        if not os.path.isdir(folder):
            make_dirs(folder)
        caps = capabilities(folder)
        if not caps.user_xattrs:
            raise LayoutError(
                f"{self._db_path!r} keeps keys in extended attributes, which this mount "
                "does not support"
            )
        self._layout = XattrLayout(max(caps.xattr_max_size - _XATTR_RESERVE, 1))
        self._layout_ready = True

    @contextlib.contextmanager
    def _writing(self) -> Iterator[IndexWriter]:
        """Hold the store lock and an index writer that matches the folder.

        The body changes the items and the writer, then calls `_finish`. If it raises,
        nothing is committed: an index change made before the items changed is simply not
        counted, and an item change the index missed leaves the folder's times unrecorded,
        so the index is rebuilt before it is next used.

        The journal is recovered first: records a writer that died left unapplied (and,
        after a reboot, every record: the items it published were not flushed) are replayed
        into the items. A writer that does not journal (``durability="atomic"``) first
        checkpoints a journal that holds records, so that every record is always newer than
        every unjournaled write and replaying the whole journal can only restore newer data.
        """
        if self._read_only:
            raise ReadOnlyStoreError(
                errno.EROFS, "the store was opened with read_only=True", self._db_path
            )
        with self._lock:
            self._prepare_layout()
            journal = self._writer_journal()
            if journal is None:
                writer = self._index.writer()
            else:
                self._index.rebuilt = False
                writer = self._index.writer(
                    journal_start=journal.start,
                    journal_end=journal.end,
                    recover=lambda after: self._replay(journal, after),
                )
                self._overlay = None
                if not self._journaled or self._index.rebuilt:
                    # After a rebuild the folder may hold changes the journal does not know
                    # (another program's): a checkpoint keeps a later replay from undoing them.
                    self._checkpoint_if_needed()
            yield writer

    def _writer_journal(self) -> Journal | None:
        """The store's journal, opened for writing (created by a durable writer)."""
        if self._journal is None:
            if not self._journaled and not os.path.exists(self._journal_path):
                return None
            folder = os.path.dirname(self._journal_path)
            if not os.path.isdir(folder):
                make_dirs(folder)
            self._journal = Journal(self._journal_path, size=_JOURNAL_SIZE)
        return self._journal

    def _journal_overlay(self) -> dict[bytes, Entry] | None:
        """For a reader whose index is not current: the journal's last entry of each key.

        Read from the journal opened read-only (nothing written); None without a journal.
        """
        if not os.path.exists(self._journal_path):
            return None
        after = self._index.replay_point()
        try:
            with Journal(self._journal_path, readonly=True) as journal:
                if after is not None:
                    after = max(after, journal.start)
                return final_entries(journal, after) or None
        except FileNotFoundError:
            return None

    def _applied(self) -> int:
        return 0 if self._journal is None else self._journal.end

    def _finish(self, writer: IndexWriter) -> None:
        """Commit the index change; checkpoint a journal that has grown large."""
        self._index.commit(writer, applied=self._applied())
        journal = self._journal
        if journal is not None and journal.end - journal.start > _CHECKPOINT_BYTES:
            self._checkpoint(journal)

    def _log(self, entries: list[Entry]) -> None:
        """Make a change durable in the journal (one shared flush), before it is applied."""
        if self._journaled:
            journal = self._writer_journal()
            assert journal is not None
            journal.commit(encode(entries))

    @property
    def _item_durability(self) -> Any:
        # A journaled change is durable once its record is: the item is published without
        # fsyncs, and a checkpoint flushes it before the record is recycled.
        return "atomic" if self._journaled else self._durability

    def _checkpoint_if_needed(self) -> None:
        """Checkpoint before a write the journal does not cover (if it holds records).

        Replaying the journal must never bring back a value older than a write it does not
        hold; with the journal empty, every record is newer than every unjournaled write.
        """
        journal = self._journal
        if journal is not None and journal.end > journal.start:
            self._checkpoint(journal)

    def _checkpoint(self, journal: Journal) -> None:
        """Make the items the journal covers durable, then recycle the journal."""
        with journal.lock():
            final = final_entries(journal)
            paths = [
                path
                for key_bytes, entry in final.items()
                if entry.kind == SET and os.path.lexists(path := self._item_path(key_bytes))
            ]
            if paths:
                sync_files(paths)
            fsync_dir(self._db_path)
            journal.recycle(upto=journal.end)

    def _replay(self, journal: Journal, after: int | None) -> None:
        """Make the items hold what the journal's records (all, or after ``after``) say."""
        for key_bytes, entry in final_entries(journal, after).items():
            path = self._item_path(key_bytes)
            if entry.kind == DELETE:
                remove(path, durability="atomic", missing_ok=True)
                continue
            content, attrs = self._layout.encode(key_bytes, entry.stamp, entry.payload)
            if not self._holds(path, content, attrs):
                write_bytes(path, content, durability="atomic", follow_symlinks=False, xattrs=attrs)

    @staticmethod
    def _holds(path: str, content: bytes, attrs: dict[str, bytes] | None) -> bool:
        """Whether the item at ``path`` has exactly this content and these xattrs."""
        try:
            fd = open_item(path)
        except NotAnItemError:
            return False
        try:
            if read_all(fd) != content:
                return False
            for name, value in (attrs or {}).items():
                try:
                    if os.getxattr(fd, name) != value:
                        return False
                except OSError:
                    return False
            return True
        finally:
            os.close(fd)

    def _new_stamp(self, writer: IndexWriter) -> Stamp:
        last = writer.last_stamp
        epoch = self._clock.epoch(lambda: last[0])
        ns = self._clock.next_ns()
        if epoch == last[0]:
            ns = max(ns, last[1] + 1)
        return Stamp(epoch, ns, time.time())

    def _existing_stamp(self, writer: IndexWriter, path: str, key_bytes: bytes) -> Stamp | None:
        """The stamp of the item at ``path`` (None if there is none, or it is not indexed)."""
        try:
            identity = self._layout.read_identity(path)
        except NotAnItemError:
            return None
        if identity.stamp is not None:
            return identity.stamp
        slot = writer.view.find(key_bytes, None, writer.state)
        return None if slot is None else Stamp.from_sort_key(slot.stamp)

    def _stage(
        self, writer: IndexWriter, key_bytes: bytes, path: str, known: Stamp | None
    ) -> Stamp:
        """Return the stamp for writing ``key_bytes`` at ``path``; a new key gets a slot."""
        stamp = known or self._existing_stamp(writer, path, key_bytes)
        if stamp is None:
            stamp = self._new_stamp(writer)
            writer.append(key_bytes, stamp.sort_key())
        return stamp

    def _put(self, writer: IndexWriter, pairs: list[tuple[bytes, bytes]]) -> None:
        """Write items (journaled first when durable); the caller holds the lock."""
        staged: dict[bytes, Stamp] = {}
        paths: dict[bytes, str] = {}
        for key_bytes, _ in pairs:
            path = paths.get(key_bytes) or paths.setdefault(key_bytes, self._item_path(key_bytes))
            staged[key_bytes] = self._stage(writer, key_bytes, path, staged.get(key_bytes))
        durability = self._item_durability
        if self._journaled and sum(len(payload) for _, payload in pairs) > _LARGEST_JOURNALED:
            self._checkpoint_if_needed()
            durability = self._durability
        else:
            self._log([Entry(SET, key, staged[key], payload) for key, payload in pairs])
        if len(pairs) == 1:
            key_bytes, payload = pairs[0]
            content, attrs = self._layout.encode(key_bytes, staged[key_bytes], payload)
            write_bytes(
                paths[key_bytes],
                content,
                durability=durability,
                follow_symlinks=False,
                xattrs=attrs,
            )
            return
        with Batch(durability=durability) as batch:
            for key_bytes, payload in pairs:
                content, attrs = self._layout.encode(key_bytes, staged[key_bytes], payload)
                batch.write_bytes(paths[key_bytes], content, follow_symlinks=False, xattrs=attrs)

    def __setitem__(self, key: KT, value: VT) -> None:
        """Store ``value`` under ``key``: atomic, and durable with the default durability.

        Durable means one flush: the change goes to the store's journal first (its flush is
        shared with every writer waiting at the same moment), then the item is published.

        Raises:
            UnsupportedKeyError: ``key`` has a type that cannot be stored.
            SerializationError: ``value`` cannot be encoded (in a JSON store: also NaN and
                infinities, which JSON does not have); nothing was written.
        """
        key_bytes = self._write_key(key)
        payload = self._codec.dumps(value)
        with self._writing() as writer:
            self._put(writer, [(key_bytes, payload)])
            self._finish(writer)

    def _remove(self, writer: IndexWriter, key: object, key_bytes: bytes | None) -> None:
        """Delete one item (journaled first when durable); the caller holds the lock."""
        if key_bytes is None or key not in self:
            raise KeyError(key)
        path = self._item_path(key_bytes)
        try:
            identity = self._layout.read_identity(path)
        except NotAnItemError:
            raise KeyError(key) from None
        self._log([Entry(DELETE, key_bytes, identity.stamp or Stamp(0, 0, 0.0))])
        try:
            remove(path, durability=self._item_durability)
        except FileNotFoundError:
            raise KeyError(key) from None
        stamp = None if identity.stamp is None else identity.stamp.sort_key()
        slot = writer.view.find(key_bytes, stamp, writer.state)
        if slot is not None:
            writer.tombstone(slot)

    def __delitem__(self, key: KT) -> None:
        """Delete ``key``'s item; durable with the default durability (one flush).

        Raises:
            KeyError: there is no such key.
        """
        key_bytes = self._read_key(key)
        with self._writing() as writer:
            self._remove(writer, key, key_bytes)
            self._finish(writer)

    @overload
    def pop(self, key: KT) -> VT: ...
    @overload
    def pop(self, key: KT, default: VT) -> VT: ...
    @overload
    def pop(self, key: KT, default: Any) -> Any: ...
    def pop(self, key: KT, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value, or ``default`` if it is missing.

        Unlike iodict 0.0.8, a falsy ``default`` (``0``, ``""``, ``None``) is returned
        rather than re-raising. The read and the removal happen under one lock, so two
        processes popping the same key cannot both get it.

        Raises:
            KeyError: ``key`` is missing and no default was given.
        """
        key_bytes = self._read_key(key)
        with self._writing() as writer:
            try:
                value = self._load(key, key_bytes)
            except KeyError:
                if default is _MISSING:
                    raise
                return default
            self._remove(writer, key, key_bytes)
            self._finish(writer)
            return value

    def _pop_end(self, last: bool) -> tuple[KT, VT]:
        with self._writing() as writer:
            state = writer.state
            if not state.live:
                raise KeyError("popitem(): dictionary is empty")
            slot = writer.view.slot(state.tail if last else state.head)
            key_bytes = writer.view.key(slot)
            key: Any = _decode_key(key_bytes)
            value = self._load(key, key_bytes)
            path = self._item_path(key_bytes)
            self._log([Entry(DELETE, key_bytes, Stamp.from_sort_key(slot.stamp))])
            remove(path, durability=self._item_durability)
            writer.tombstone(slot)
            self._finish(writer)
            return key, value

    def popitem(self, last: bool = True) -> tuple[KT, VT]:
        """Remove and return the newest ``(key, value)`` pair, or the oldest with ``last=False``.

        ``popitem()`` is LIFO, as for dict; ``popitem(last=False)`` is FIFO, as for
        `collections.OrderedDict`. Both cost the same at any size (the order index knows
        both ends). iodict 0.0.8's ``popitem()`` removed the *oldest* item and returned
        only its value: that is `popleft`.

        Raises:
            KeyError: the store is empty.
            CorruptFileError: the item at that end cannot be decoded; it stays.
        """
        return self._pop_end(last)

    def popleft(self) -> VT:
        """Remove the oldest item and return its value (what iodict 0.0.8's ``popitem`` did).

        For code written for iodict that used ``popitem()`` as a FIFO pop: replace it with
        ``popleft()``. Constant time at any size.

        Raises:
            KeyError: the store is empty.
        """
        return self._pop_end(False)[1]

    def setdefault(self, key: KT, default: Any = None) -> Any:
        """Return ``key``'s value; if it is missing, store ``default`` first and return it.

        Unlike iodict 0.0.8, an existing value is never overwritten.
        """
        key_bytes = self._write_key(key)
        with self._writing() as writer:
            try:
                return self._load(key, key_bytes)
            except KeyError:
                pass
            self._put(writer, [(key_bytes, self._codec.dumps(default))])
            self._finish(writer)
            return default

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store many items with one flush.

        Every key and value is checked and encoded before anything is written, so a bad
        one raises with the store untouched. Durable (the default): the whole update is one
        journal record, flushed once; a crash before that flush returns leaves none of the
        items, after it all of them (replayed if need be). ``durability="atomic"``: each
        item is atomic, a crash midway leaves some items new and the rest old.
        """
        pairs: Iterable[tuple[Any, Any]]
        if isinstance(other, Mapping):
            pairs = [(key, other[key]) for key in other]
        elif hasattr(other, "keys"):
            pairs = [(key, other[key]) for key in other.keys()]  # noqa: SIM118 - the dict protocol: keys() then []
        else:
            pairs = list(other)
        encoded = [
            (self._write_key(key), self._codec.dumps(value))
            for key, value in [*pairs, *kwargs.items()]
        ]
        if not encoded:
            return
        with self._writing() as writer:
            self._put(writer, encoded)
            self._finish(writer)

    def fromkeys(self, iterable: Iterable[KT], value: Any = None) -> IODict[KT, VT]:
        """Set every key in ``iterable`` to ``value`` (one group commit); return this store.

        ``dict.fromkeys`` is a classmethod that builds a new dict; a store needs a
        directory, so, as in iodict, this fills the store it is called on.
        """
        self.update((key, value) for key in iterable)
        return self

    def clear(self) -> None:
        """Remove every item of the store.

        Files that are not items are left alone, and so are item files whose key cannot be
        recovered (see `keyless_files`): the store cannot tell what they hold. With the
        default durability the removals are durable when it returns (one directory fsync).
        """
        with self._writing() as writer:
            journal = self._journal
            if journal is not None and journal.end > journal.start:
                self._checkpoint(journal)  # no record may bring a removed item back
            state = writer.state
            for _, key_bytes in writer.view.entries(state.head, state.count):
                remove(self._item_path(key_bytes), durability="atomic", missing_ok=True)
            if self._durability == "durable":
                fsync_dir(self._db_path)
            self._index.rebuild_now(writer, applied=self._applied())

    # -- context manager ---------------------------------------------------------------

    def close(self) -> None:
        """Close the files this object holds open (index, journal, lock); the data stays.

        The object stays usable: it opens them again when next needed.
        """
        self._index.close()
        self._lock.close()
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> IODict[KT, VT]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leave the block: close the index files; the data stays (iodict 0.0.8 deleted it)."""
        self.close()


class _ItemsView(ItemsView[Any, Any]):
    _mapping: IODict[Any, Any]

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for key in self._mapping:
            try:
                yield key, self._mapping[key]
            except KeyError:
                continue


class _ValuesView(ValuesView[Any]):
    _mapping: IODict[Any, Any]

    def __iter__(self) -> Iterator[Any]:
        for key in self._mapping:
            try:
                yield self._mapping[key]
            except KeyError:
                continue
