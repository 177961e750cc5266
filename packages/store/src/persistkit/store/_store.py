"""`AtomicStore`: one value kept in one file (or object), replaced atomically on every commit."""

from __future__ import annotations

import copy
import errno
import json
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from persistkit.core import (
    Codec,
    Durability,
    FileLock,
    ObjectStore,
    WriteResult,
    check_durability,
    read_value,
    resolve_format,
    write_value,
)
from persistkit.core.errors import InvalidArgumentError, UnsupportedOperationError
from persistkit.store._format_bases import WrapBinaryFormat
from persistkit.store._json_format import SLICED_JSON, encode_json, write_json
from persistkit.store._locations import object_location
from persistkit.store._object_value import ObjectValue
from persistkit.store._transaction import Transaction
from persistkit.store.errors import TransactionError

T = TypeVar("T")

# Core's defaults for JSON (allow_nan=False), which the store's faster JSON writer keeps.
_JSON_DEFAULTS = resolve_format("json").dump_kwargs


def _is_json(format: Any) -> bool:
    return format is None or format is json or (isinstance(format, str) and format == "json")


def _resolve(
    format: Any,
    is_binary: bool | None,
    dump_kwargs: Mapping[str, Any] | None,
    load_kwargs: Mapping[str, Any] | None,
) -> Codec:
    for name, kwargs in (("dump_kwargs", dump_kwargs), ("load_kwargs", load_kwargs)):
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise InvalidArgumentError(f"{name} must be a mapping, not {type(kwargs).__name__}")
    if _is_json(format):
        return resolve_format(
            SLICED_JSON,
            is_binary=False if is_binary is None else is_binary,
            dump_kwargs={**_JSON_DEFAULTS, **(dump_kwargs or {})},
            load_kwargs=load_kwargs,
        )
    return resolve_format(
        format, is_binary=is_binary, dump_kwargs=dump_kwargs, load_kwargs=load_kwargs
    )


def _copy_default(default: T) -> T:
    try:
        return copy.deepcopy(default)
    except Exception as error:
        raise InvalidArgumentError(
            f"the default value cannot be copied ({type(error).__name__}: {error}); "
            f"each store gets its own copy so that no two stores share one object"
        ) from error


class AtomicStore(Generic[T]):
    """One value kept in one file (or one object); every commit replaces it atomically.

    Use `open` to create one. ``value`` is a plain attribute: change it in place or assign a
    new value; nothing reaches the disk until `commit` (or the end of a ``with`` block).

    The file is read once, when the store is opened (and again by `reload` and `transaction`).
    A missing file gives a deep copy of ``default``; a file that exists but cannot be decoded
    raises `CorruptFileError` and is never replaced by the default.

    Used as a context manager, the store commits when a ``with`` block exits normally and does
    not commit when it exits by an exception. Blocks may nest on the same store: each exit
    commits, or only the outermost one with ``ignore_inner_exits=True``.

    Two stores (in one or several processes) that commit the same file can lose each other's
    updates, as with atomic_store; the file is never torn. Use `transaction` where several
    writers update one file.

    In an object store (``s3://bucket/prefix/name``, or an `ObjectStore` and ``key=``) the
    value is one object, read and written whole, behind a one-line header that makes every
    write's bytes unique (see the guide); `transaction` there is a compare-and-swap loop.

    A store object is meant for one thread at a time.

    Attributes:
        path: the path the store was opened with (for an object store, its location and key,
            ``s3://bucket/prefix/key``).
        value: the value in memory.
        codec: the resolved format.
        durability: ``"durable"`` or ``"atomic"``, used by every commit.
        ignore_inner_exits: whether only the outermost ``with`` commits.
    """

    __module__ = "persistkit.store"

    def __init__(  # noqa: PLR0917 - atomic_store's constructor takes these positionally
        self,
        path: str | os.PathLike[str] | ObjectStore,
        default: T = None,  # type: ignore[assignment]  # atomic_store's default default
        format: Any = None,
        is_binary: bool | None = None,
        load_kwargs: Mapping[str, Any] | None = None,
        dump_kwargs: Mapping[str, Any] | None = None,
        ignore_inner_exits: bool = False,
        *,
        durability: Durability = "durable",
        key: str | None = None,
    ) -> None:
        check_durability(durability)
        # The arguments are checked before an object store is opened from a URL, so that
        # only reading the value can fail with connections to close.
        self.codec = _resolve(format, is_binary, dump_kwargs, load_kwargs)
        self._default = _copy_default(default)
        where = object_location(path, key)
        self._object = None if where is None else ObjectValue(*where)
        self._in_transaction = False
        self._lock: FileLock | None = None
        self.path = os.fspath(path) if self._object is None else self._object.where  # type: ignore[arg-type] # an ObjectStore never reaches fspath
        self._format = format
        self._json_dump_kwargs = self.codec.dump_kwargs if _is_json(format) else None
        self.durability: Durability = durability
        self.ignore_inner_exits = bool(ignore_inner_exits)
        self._depth = 0
        try:
            self.value: T = self._read()
        except BaseException:
            # The object store opened from a URL is this store's: a caller that keeps the
            # error (and its traceback) must not keep its connections.
            if where is not None and where[0] is not path:
                where[0].close()
            raise

    @property
    def is_binary(self) -> bool:
        """Whether the file is read and written in binary mode."""
        return self.codec.is_binary

    @property
    def format(self) -> Any:
        """The format as an object with ``dump`` and ``load``, as atomic_store has it.

        The ``json`` module for JSON stores, ``pickle`` for pickle, your object if it has
        ``dump``/``load``, and a `WrapBinaryFormat` around one that has ``dumps``/``loads``.
        """
        if _is_json(self._format):
            return json
        implementation = self.codec.format
        if callable(getattr(implementation, "dump", None)) and callable(
            getattr(implementation, "load", None)
        ):
            return implementation
        return WrapBinaryFormat(implementation)

    @property
    def dump_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every dump gets (a copy: assign a new mapping to change them).

        For JSON they start from core's defaults (``allow_nan=False``), which yours override.
        """
        return self.codec.dump_kwargs

    @dump_kwargs.setter
    def dump_kwargs(self, kwargs: Mapping[str, Any] | None) -> None:
        self._reresolve(dump_kwargs=kwargs, load_kwargs=self.codec.load_kwargs)

    @property
    def load_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every load gets (a copy: assign a new mapping to change them)."""
        return self.codec.load_kwargs

    @load_kwargs.setter
    def load_kwargs(self, kwargs: Mapping[str, Any] | None) -> None:
        self._reresolve(dump_kwargs=self.codec.dump_kwargs, load_kwargs=kwargs)

    @property
    def level(self) -> int:
        """How many ``with`` blocks on this store are open (atomic_store's attribute)."""
        return self._depth

    def _reresolve(
        self, *, dump_kwargs: Mapping[str, Any] | None, load_kwargs: Mapping[str, Any] | None
    ) -> None:
        self.codec = _resolve(self._format, self.codec.is_binary, dump_kwargs, load_kwargs)
        if self._json_dump_kwargs is not None:
            self._json_dump_kwargs = self.codec.dump_kwargs

    @property
    def lock_path(self) -> str:
        """The lock file `transaction` uses: the store file's real path plus ``.lock``.

        Symlinks are resolved first, so stores opened through different links to one file
        share one lock. The lock file is created on first use and never deleted.

        Raises:
            UnsupportedOperationError: the store is in an object store, where transactions
                take no lock.
        """
        if self._object is not None:
            raise UnsupportedOperationError(
                errno.EOPNOTSUPP,
                "a store in an object store has no lock file (its transactions compare and swap)",
                self.path,
            )
        return os.path.realpath(self.path) + ".lock"

    def _read(self) -> T:
        if self._object is not None:
            found = self._object.fetch()
            value: T = (
                _copy_default(self._default)
                if found.value is None
                else self.codec.decode(found.value, self.path)
            )
            self._object.adopt(found)
            return value
        try:
            value = read_value(self.path, self.codec)
        except FileNotFoundError:
            return _copy_default(self._default)
        return value

    def reload(self) -> T:
        """Re-read the file, replacing ``value`` (with a copy of the default if it is missing).

        Returns:
            The new ``value``.

        Raises:
            CorruptFileError: the file cannot be decoded; ``value`` is left unchanged.
            OSError: the file cannot be read (e.g. `PermissionError`), with its name.
        """
        self.value = self._read()
        return self.value

    def commit(self) -> WriteResult:
        """Write ``value`` to the file, replacing it atomically.

        Guarantees when it returns: the file holds exactly the encoded ``value``, and with
        ``durability="durable"`` (the default) this survives power loss (see
        `WriteResult.durable`). A reader, or a crash at any moment, sees the old content or the
        new, never a mix. A symlink is followed and the file's mode is kept.

        In an object store the object is replaced with one request, which is the commit
        point: readers see the old object or the new. ``durable`` is then what the server
        promises for an acknowledged write (always True on S3). Inside a transaction it is a
        compare-and-swap from the version the transaction read.

        Returns:
            What the write achieved.

        Raises:
            SerializationError: ``value`` cannot be encoded; the file was not touched.
            SyncError: the disk reported an fsync error; the file keeps its old content.
            OSError: e.g. the directory is missing or the disk is full; the file keeps its old
                content.
            StoreUnavailableError: (object stores) the server could not be reached or kept
                failing; the commit may or may not have landed (`reload` tells).
            TransactionConflictError: (object stores, inside a transaction) another writer
                replaced the value since the transaction read it; nothing was written.
        """
        if self._object is not None:
            encoded = self._encode()
            if self._in_transaction:
                self._object.swap(encoded)
            else:
                self._object.put(encoded)
            return WriteResult(self.path, self._object.durable)
        if self._json_dump_kwargs is not None:
            return write_json(
                self.path,
                self.value,
                self.codec,
                self._json_dump_kwargs,
                durability=self.durability,
            )
        # Other formats encode straight into core's temporary file (pickle streams).
        return write_value(
            self.path, self.value, self.codec, stream=True, durability=self.durability
        )

    def _encode(self) -> bytes:
        if self._json_dump_kwargs is not None:
            return encode_json(self.value, self.codec, self._json_dump_kwargs)
        try:
            return self.codec.dumps(self.value)
        except UnicodeEncodeError as error:  # a text format's str that UTF-8 cannot hold
            raise self.codec.encoding_error(error) from error

    def __enter__(self) -> AtomicStore[T]:
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._depth <= 0:
            raise RuntimeError(f"the store for {self.path!r} was exited more often than entered")
        self._depth -= 1
        if exc_type is None and (self._depth == 0 or not self.ignore_inner_exits):
            self.commit()

    def transaction(
        self, timeout: float | None = None, *, attempts: int = 100
    ) -> Transaction[AtomicStore[T]]:
        """Read the value afresh, run a block on it, and commit it unless another writer interferes.

        Two forms; the second runs unchanged on a local file and on an object store::

            with store.transaction() as state:  # one attempt
                state.value += 1

            for attempt in store.transaction():  # attempts until one commits
                with attempt as state:
                    state.value += 1

        **On a local file** the transaction locks the file against other transactions (in
        any process), re-reads it, runs the block, commits when the block exits normally,
        then unlocks. The lock is `FileLock` on `lock_path`, released by the kernel if the
        process dies. The first attempt always commits.

        **In an object store** nothing is locked: the block runs on a fresh read, and the
        commit replaces the object only if no one else replaced it since (compare-and-swap).
        When someone did, nothing is written: the ``with`` form raises
        `TransactionConflictError`, and the loop runs the block again on a fresh read, after
        a short random pause, up to ``attempts`` times. **The block must therefore be
        re-runnable**: compute the new value from ``state.value`` and do nothing else that
        cannot be repeated (sending mail, say) before the transaction has committed.

        Either way, only transactions exclude each other: a plain `commit` by another store
        does not wait, and may still overwrite a transaction's result. When the block
        raises, nothing is written. A ``with store:`` block inside the transaction behaves as
        an inner block.

        Args:
            timeout: local file: seconds to wait for the lock (None waits as long as it
                takes). Object store, in the loop form: no new attempt starts after this
                many seconds.
            attempts: object store, loop form: how many times the block may run.

        Returns:
            The transaction: a context manager yielding this store with ``value`` freshly
            read, and an iterable of attempts, each such a context manager.

        Raises:
            TransactionError: the store is already inside a ``with`` block or transaction.
            LockTimeoutError: (local) the lock was not obtained in time; nothing was read or
                written.
            TransactionConflictError: (object store) the ``with`` form's attempt lost, or
                every attempt of the loop lost; nothing of the last attempt was written.
            CorruptFileError: the stored value cannot be decoded; nothing was written.
            OutcomeUnknownError: (object store) the server failed while the value was being
                replaced and reading it back could not tell whether the write landed.

        Example:
            >>> counter = open("counter.json", default=0)  # doctest: +SKIP
            >>> for attempt in counter.transaction():  # doctest: +SKIP
            ...     with attempt as state:
            ...         state.value += 1
        """
        return Transaction(self, timeout, attempts)

    def _begin_transaction(self, timeout: float | None) -> None:
        if self._depth:
            raise TransactionError(
                f"the store for {self.path!r} is inside a with block or transaction; "
                f"re-reading the file would discard its changes in memory"
            )
        if self._object is not None:
            self.reload()
            self._in_transaction = True
        else:
            lock = FileLock(self.lock_path, timeout=timeout)
            lock.acquire()
            try:
                self.reload()
            except BaseException:
                _unlock(lock)
                raise
            self._lock = lock
        self.__enter__()

    def _end_transaction(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lock, self._lock = self._lock, None
        try:
            self.__exit__(exc_type, exc, tb)
        finally:
            self._in_transaction = False
            if lock is not None:
                _unlock(lock)

    def __repr__(self) -> str:
        return f"<AtomicStore {self.path!r} {self.codec.name} {self.durability}>"


def _unlock(lock: FileLock) -> None:
    lock.release()
    lock.close()  # the descriptor too: a transaction's lock object is used once


@overload
def open(
    path: str | os.PathLike[str] | ObjectStore,
    default: None = None,
    format: Any = None,
    is_binary: bool | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
    dump_kwargs: Mapping[str, Any] | None = None,
    ignore_inner_exits: bool = False,
    *,
    durability: Durability = "durable",
    key: str | None = None,
) -> AtomicStore[Any]: ...
@overload
def open(
    path: str | os.PathLike[str] | ObjectStore,
    default: T,
    format: Any = None,
    is_binary: bool | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
    dump_kwargs: Mapping[str, Any] | None = None,
    ignore_inner_exits: bool = False,
    *,
    durability: Durability = "durable",
    key: str | None = None,
) -> AtomicStore[T]: ...
def open(  # noqa: PLR0917 - atomic_store's positional order, kept for compatibility
    path: str | os.PathLike[str] | ObjectStore,
    default: Any = None,
    format: Any = None,
    is_binary: bool | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
    dump_kwargs: Mapping[str, Any] | None = None,
    ignore_inner_exits: bool = False,
    *,
    durability: Durability = "durable",
    key: str | None = None,
) -> AtomicStore[Any]:
    """Open the store kept in ``path``, reading its value now.

    The positional order is atomic_store 0.0.1's. Nothing is written until `commit` or the
    end of a ``with`` block.

    For type checkers the store is typed by its default: ``open(p, default=0)`` is an
    ``AtomicStore[int]`` whose ``value`` is an ``int``; without a default, ``value`` is
    ``Any``. The file decides what ``value`` really holds: the type is a promise you make.

    Args:
        path: the file; it need not exist. A symlink is followed when reading and writing.
            Or one object of an object store: ``s3://bucket/prefix/name`` (endpoint and
            credentials from the usual AWS environment; the last segment is the key), or
            an `ObjectStore` (from ``persistkit.core.open_object_store``) with ``key``.
        default: the value when the file does not exist; it is deep-copied, so the object
            passed in is never shared or changed.
        format: None or ``"json"`` (the default), ``"pickle"`` (runs code while loading: never
            open a pickled file you do not trust), ``"bson"`` (pymongo's or the standalone
            ``bson``), or any module or object with ``dump``/``load`` or ``dumps``/``loads``.
        is_binary: read and write in binary mode; by default True for every format but JSON.
        load_kwargs: keyword arguments passed to every load.
        dump_kwargs: keyword arguments passed to every dump, e.g.
            ``{"separators": (",", ":")}`` for compact JSON.
        ignore_inner_exits: when ``with`` blocks nest on this store, commit only at the end
            of the outermost one.
        durability: ``"durable"`` (every commit survives power loss once it returns) or
            ``"atomic"`` (no fsync: old-or-new across a process crash, not power loss). An
            object store keeps its own durability (an S3 server's, or the one a
            `LocalObjectStore` was made with).
        key: the object's key, with an `ObjectStore` or an ``s3://bucket/prefix`` URL.

    Returns:
        The store.

    Raises:
        CorruptFileError: the file exists but cannot be decoded; it is left untouched.
        OSError: the file cannot be read (e.g. `PermissionError`, `IsADirectoryError`).
        FormatError: the format is unknown or has neither dump/load nor dumps/loads.
        InvalidArgumentError: a bad ``durability``, non-mapping kwargs, a default that
            cannot be copied, an object store without a key, or a key for a local file.
        StoreUnavailableError: the object store cannot be reached.

    Example:
        >>> with open("runs.json", default=[]) as store:  # doctest: +SKIP
        ...     store.value.append("2024-05-01 12:00")
    """
    return AtomicStore(
        path,
        default,
        format,
        is_binary,
        load_kwargs,
        dump_kwargs,
        ignore_inner_exits,
        durability=durability,
        key=key,
    )
