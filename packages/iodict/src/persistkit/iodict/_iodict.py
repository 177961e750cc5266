"""IODict: a dict on a directory, one file per item, iterated in insertion order."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import ItemsView, Iterable, Iterator, Mapping, MutableMapping, ValuesView
from types import TracebackType
from typing import Any

from persistkit.core import (
    Batch,
    Codec,
    CorruptFileError,
    capabilities,
    check_durability,
    fsync_dir,
    remove,
    resolve_format,
    write_bytes,
)
from persistkit.iodict._directory import StoreLock, open_directory, resolve_user_lock
from persistkit.iodict._keys import (
    NAME_PATTERN,
    Key,
    canonical_bytes,
    file_name,
    key_from_bytes,
)
from persistkit.iodict._layouts import HeaderLayout, Layout, NotAnItemError, Stamp, XattrLayout
from persistkit.iodict._meta import BOOT, LOCK_NAME, OrderClock, StoreMeta, read_meta, write_meta
from persistkit.iodict.errors import KeyTooLongError, LayoutError, UnsupportedKeyError

_MISSING: Any = object()
_KNOWN_FORMATS = ("pickle", "json", "bson")
# Room left in the mount's xattr space for user.birthtime, the order stamp and their names.
_XATTR_RESERVE = 256


def _encoder(key: Key) -> str:
    """Return the file name an item of ``key`` has (iodict 0.0.8's ``_encoder``)."""
    return file_name(canonical_bytes(key))


class IODict(MutableMapping[Key, Any]):
    """A dict kept in a directory: one file per item, iterated in insertion order.

    The whole ``dict`` API (through `collections.abc.MutableMapping`), ``==`` with any
    mapping, and a ``repr`` that looks like the dict it holds. Iteration follows insertion
    order, across processes and restarts: overwriting a key keeps its place, deleting and
    re-inserting it moves it to the end.

    Every change is written through persistkit-core: each item is a temporary file that is
    fsynced and renamed into place, with its key and order stamp set on it *before* the
    rename. When a writing method returns, the change is atomic (a crash leaves the old or
    the new item, never a mix) and, with ``durability="durable"`` (the default), survives
    power loss. ``durability="atomic"`` skips the fsyncs: safe against a crash of the
    process, not of the machine.

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

    Args:
        path: the store directory; created (durably) if missing. A regular file there is
            an error (`StorePathError`) and is left alone.
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

    Raises:
        StorePathError: ``path`` exists and is not a directory.
        LayoutError: ``format`` or ``use_xattrs`` contradicts an existing store, or the
            store needs xattrs that this mount lacks.

    Example:
        >>> from persistkit.iodict import IODict
        >>> data = IODict("/tmp/iodict")  # doctest: +SKIP
        >>> data["key"] = "value"  # doctest: +SKIP
        >>> data  # doctest: +SKIP
        {'key': 'value'}
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        lock: Any = None,
        *,
        format: Any = None,
        durability: str = "durable",
        use_xattrs: bool | None = None,
    ) -> None:
        check_durability(durability)
        self._durability: Any = durability
        directory = open_directory(path)
        self._db_path = directory
        self._encoder = _encoder
        self._lock = StoreLock(os.path.join(directory, LOCK_NAME), resolve_user_lock(lock))
        meta = read_meta(directory)
        if meta is None and not self._has_items():
            with self._lock:
                meta = read_meta(directory)
                if meta is None and not self._has_items():
                    meta = self._create(format, use_xattrs)
        layout_name = meta.layout if meta is not None else "xattr"
        format_name = meta.format if meta is not None else "pickle"
        self._codec = self._resolve_codec(format, format_name)
        if use_xattrs is not None and use_xattrs != (layout_name == "xattr"):
            raise LayoutError(
                f"{directory!r} keeps keys in the {layout_name!r} layout; "
                f"use_xattrs={use_xattrs} cannot change an existing store"
            )
        self._layout: Layout
        self._max_key_bytes: int | None = None
        if layout_name == "xattr":
            caps = capabilities(directory)
            if not caps.user_xattrs:
                raise LayoutError(
                    f"{directory!r} keeps keys in extended attributes, which this mount "
                    "does not support"
                )
            self._layout = XattrLayout()
            self._max_key_bytes = max(caps.xattr_max_size - _XATTR_RESERVE, 1)
        else:
            self._layout = HeaderLayout()
        self._clock = OrderClock(directory, meta, layout_name, self._codec.name)

    def _create(self, format: Any, use_xattrs: bool | None) -> StoreMeta:
        directory = self._db_path
        codec = resolve_format("pickle" if format is None else format)
        if use_xattrs is None:
            use_xattrs = capabilities(directory).user_xattrs
        elif use_xattrs and not capabilities(directory).user_xattrs:
            raise LayoutError(f"use_xattrs=True but {directory!r} has no user xattrs")
        meta = StoreMeta("xattr" if use_xattrs else "header", codec.name, 1, BOOT)
        write_meta(directory, meta)
        return meta

    def _resolve_codec(self, format: Any, stored: str) -> Codec:
        if format is None:
            if stored not in _KNOWN_FORMATS:
                raise LayoutError(
                    f"{self._db_path!r} stores values as {stored!r}; pass that format"
                )
            return resolve_format(stored)
        codec = resolve_format(format)
        if codec.name != stored:
            raise LayoutError(f"{self._db_path!r} stores values as {stored!r}, not {codec.name!r}")
        return codec

    @property
    def path(self) -> str:
        """The absolute path of the store directory."""
        return self._db_path

    # -- names -------------------------------------------------------------------------

    def _item_path(self, key_bytes: bytes) -> str:
        return os.path.join(self._db_path, file_name(key_bytes))

    def _write_key(self, key: object) -> bytes:
        key_bytes = canonical_bytes(key)
        if self._max_key_bytes is not None and len(key_bytes) > self._max_key_bytes:
            raise KeyTooLongError(
                f"a key of {len(key_bytes)} bytes does not fit in this mount's extended "
                f"attributes (at most {self._max_key_bytes}); the header layout "
                "(use_xattrs=False) has no such limit"
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

    def _item_names(self) -> list[os.DirEntry[str]]:
        with os.scandir(self._db_path) as entries:
            return [
                entry
                for entry in entries
                if NAME_PATTERN.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
            ]

    def _has_items(self) -> bool:
        with os.scandir(self._db_path) as entries:
            return any(NAME_PATTERN.fullmatch(entry.name) for entry in entries)

    def _entries(self) -> list[tuple[Stamp, bytes, str]]:
        found = []
        for entry in self._item_names():
            try:
                key_bytes, stamp = self._layout.read_entry(entry.path)
            except NotAnItemError:
                continue
            found.append((stamp, key_bytes, entry.path))
        found.sort(key=lambda item: item[0].sort_key())
        return found

    def _highest_epoch(self) -> int:
        return max((stamp.epoch for stamp, _, _ in self._entries()), default=0)

    # -- reading -----------------------------------------------------------------------

    def _load(self, key: object, key_bytes: bytes | None) -> Any:
        if key_bytes is None:
            raise KeyError(key)
        path = self._item_path(key_bytes)
        try:
            payload = self._layout.read_payload(path, key_bytes)
        except NotAnItemError:
            raise KeyError(key) from None
        try:
            return self._codec.loads(payload)
        except (OSError, MemoryError):
            raise
        except Exception as error:
            raise CorruptFileError(path, f"{type(error).__name__}: {error}") from error

    def __getitem__(self, key: Key) -> Any:
        return self._load(key, self._read_key(key))

    def __contains__(self, key: object) -> bool:
        key_bytes = self._read_key(key)
        if key_bytes is None:
            return False
        try:
            info = os.lstat(self._item_path(key_bytes))
        except FileNotFoundError:
            return False
        return stat.S_ISREG(info.st_mode)

    def __iter__(self) -> Iterator[Key]:
        for _, key_bytes, path in self._entries():
            try:
                yield key_from_bytes(key_bytes)
            except ValueError as error:
                raise CorruptFileError(path, f"undecodable key: {error}") from error

    def __len__(self) -> int:
        return len(self._item_names())

    def items(self) -> ItemsView[Key, Any]:
        """Return a view of (key, value) pairs in insertion order.

        Items deleted by another process while the view is iterated are skipped.
        """
        return _ItemsView(self)

    def values(self) -> ValuesView[Any]:
        """Return a view of the values in insertion order (deleted ones skipped)."""
        return _ValuesView(self)

    def copy(self) -> dict[Key, Any]:
        """Return a plain ``dict`` snapshot of the store (iodict returned the store itself)."""
        return dict(self.items())

    def __repr__(self) -> str:
        return repr(self.copy())

    # -- writing -----------------------------------------------------------------------

    def _new_stamp(self) -> Stamp:
        epoch = self._clock.epoch(self._highest_epoch)
        return Stamp(epoch, self._clock.next_ns(), time.time())

    def _stamp_for(self, path: str) -> Stamp:
        return self._layout.read_stamp(path) or self._new_stamp()

    def _publish(self, key_bytes: bytes, payload: bytes) -> None:
        """Write one item; the caller holds the lock."""
        path = self._item_path(key_bytes)
        content, attrs = self._layout.encode(key_bytes, self._stamp_for(path), payload)
        write_bytes(path, content, durability=self._durability, follow_symlinks=False, xattrs=attrs)

    def __setitem__(self, key: Key, value: Any) -> None:
        """Store ``value`` under ``key``: atomic, and durable with the default durability.

        Raises:
            UnsupportedKeyError: ``key`` has a type that cannot be stored.
            KeyTooLongError: ``key`` does not fit in the mount's xattrs.
            SerializationError: ``value`` cannot be encoded; nothing was written.
        """
        key_bytes = self._write_key(key)
        payload = self._codec.dumps(value)
        with self._lock:
            self._publish(key_bytes, payload)

    def _remove(self, key: object, key_bytes: bytes | None) -> None:
        """Delete one item; the caller holds the lock."""
        if key_bytes is None or key not in self:
            raise KeyError(key)
        try:
            remove(self._item_path(key_bytes), durability=self._durability)
        except FileNotFoundError:
            raise KeyError(key) from None

    def __delitem__(self, key: Key) -> None:
        """Delete ``key``'s item; durable with the default durability.

        Raises:
            KeyError: there is no such key.
        """
        key_bytes = self._read_key(key)
        with self._lock:
            self._remove(key, key_bytes)

    def pop(self, key: Key, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value, or ``default`` if it is missing.

        Unlike iodict 0.0.8, a falsy ``default`` (``0``, ``""``, ``None``) is returned
        rather than re-raising. The read and the removal happen under one lock, so two
        processes popping the same key cannot both get it.

        Raises:
            KeyError: ``key`` is missing and no default was given.
        """
        key_bytes = self._read_key(key)
        with self._lock:
            try:
                value = self._load(key, key_bytes)
            except KeyError:
                if default is _MISSING:
                    raise
                return default
            self._remove(key, key_bytes)
            return value

    def popitem(self) -> tuple[Key, Any]:
        """Remove and return the most recently inserted ``(key, value)`` pair (LIFO, as dict).

        iodict 0.0.8 removed the *oldest* item and returned only its value.

        Raises:
            KeyError: the store is empty.
        """
        with self._lock:
            entries = self._entries()
            if not entries:
                raise KeyError("popitem(): dictionary is empty")
            _, key_bytes, path = entries[-1]
            try:
                key = key_from_bytes(key_bytes)
            except ValueError as error:
                raise CorruptFileError(path, f"undecodable key: {error}") from error
            value = self._load(key, key_bytes)
            self._remove(key, key_bytes)
            return key, value

    def setdefault(self, key: Key, default: Any = None) -> Any:
        """Return ``key``'s value; if it is missing, store ``default`` first and return it.

        Unlike iodict 0.0.8, an existing value is never overwritten.
        """
        key_bytes = self._write_key(key)
        with self._lock:
            try:
                return self._load(key, key_bytes)
            except KeyError:
                pass
            self._publish(key_bytes, self._codec.dumps(default))
            return default

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Store many items in one group commit (one disk flush, one directory fsync).

        Every key and value is checked and encoded before anything is written, so a bad
        one raises with the store untouched. Each item is atomic; the update as a whole is
        not a transaction (a crash midway leaves some items new and the rest old). When it
        returns, all are durable (with the default durability).
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
        with self._lock, Batch(durability=self._durability) as batch:
            staged: dict[str, Stamp] = {}
            for key_bytes, payload in encoded:
                path = self._item_path(key_bytes)
                stamp = staged.get(path) or self._stamp_for(path)
                staged[path] = stamp
                content, attrs = self._layout.encode(key_bytes, stamp, payload)
                batch.write_bytes(path, content, follow_symlinks=False, xattrs=attrs)

    def fromkeys(self, iterable: Iterable[Key], value: Any = None) -> IODict:
        """Set every key in ``iterable`` to ``value`` (one group commit); return this store.

        ``dict.fromkeys`` is a classmethod that builds a new dict; a store needs a
        directory, so, as in iodict, this fills the store it is called on.
        """
        self.update((key, value) for key in iterable)
        return self

    def clear(self) -> None:
        """Remove every item (stray files in the directory are left alone).

        With the default durability the removals are durable when it returns (one
        directory fsync for all of them).
        """
        with self._lock:
            for entry in self._item_names():
                remove(entry.path, durability="atomic", missing_ok=True)
            if self._durability == "durable":
                fsync_dir(self._db_path)

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> IODict:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leave the block; the data stays (iodict 0.0.8 deleted everything here)."""


class _ItemsView(ItemsView[Key, Any]):
    _mapping: IODict

    def __iter__(self) -> Iterator[tuple[Key, Any]]:
        for key in self._mapping:
            try:
                yield key, self._mapping[key]
            except KeyError:
                continue


class _ValuesView(ValuesView[Any]):
    _mapping: IODict

    def __iter__(self) -> Iterator[Any]:
        for key in self._mapping:
            try:
                yield self._mapping[key]
            except KeyError:
                continue
