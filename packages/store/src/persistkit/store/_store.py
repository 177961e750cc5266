"""`AtomicStore`: one value kept in one file, replaced atomically on every commit."""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from persistkit.core import (
    Codec,
    Durability,
    FileLock,
    WriteResult,
    check_durability,
    read_value,
    resolve_format,
    write_value,
)
from persistkit.core.errors import InvalidArgumentError
from persistkit.store._format_bases import WrapBinaryFormat
from persistkit.store._json_format import SLICED_JSON, write_json
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
    """One value kept in one file; every commit replaces the file atomically.

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

    A store object is meant for one thread at a time.

    Attributes:
        path: the path the store was opened with.
        value: the value in memory.
        codec: the resolved format.
        durability: ``"durable"`` or ``"atomic"``, used by every commit.
        ignore_inner_exits: whether only the outermost ``with`` commits.
    """

    __module__ = "persistkit.store"

    def __init__(  # noqa: PLR0917 - atomic_store's constructor takes these positionally
        self,
        path: str | os.PathLike[str],
        default: T = None,  # type: ignore[assignment]  # atomic_store's default default
        format: Any = None,
        is_binary: bool | None = None,
        load_kwargs: Mapping[str, Any] | None = None,
        dump_kwargs: Mapping[str, Any] | None = None,
        ignore_inner_exits: bool = False,
        *,
        durability: Durability = "durable",
    ) -> None:
        check_durability(durability)
        self.path = os.fspath(path)
        self._format = format
        self.codec = _resolve(format, is_binary, dump_kwargs, load_kwargs)
        self._json_dump_kwargs = self.codec.dump_kwargs if _is_json(format) else None
        self.durability: Durability = durability
        self.ignore_inner_exits = bool(ignore_inner_exits)
        self._default = _copy_default(default)
        self._depth = 0
        self.value: T = self._read()

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
        """
        return os.path.realpath(self.path) + ".lock"

    def _read(self) -> T:
        try:
            value: T = read_value(self.path, self.codec)
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

        Returns:
            What the write achieved.

        Raises:
            SerializationError: ``value`` cannot be encoded; the file was not touched.
            SyncError: the disk reported an fsync error; the file keeps its old content.
            OSError: e.g. the directory is missing or the disk is full; the file keeps its old
                content.
        """
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

    @contextlib.contextmanager
    def transaction(self, timeout: float | None = None) -> Iterator[AtomicStore[T]]:
        """Lock the file against other transactions, re-read it, and commit on success.

        Inside the block the store holds the file's current value and no other transaction
        (in any process) on the same file can run. When the block exits normally the value
        is committed, then the lock is released; when it raises, nothing is written. The lock
        is `FileLock` on `lock_path`, released by the kernel if the process dies.

        Only transactions exclude each other: a plain `commit` by another store does not wait,
        and may still overwrite a transaction's result.

        A ``with store:`` block inside the transaction behaves as an inner block.

        Args:
            timeout: seconds to wait for the lock; None waits as long as it takes.

        Yields:
            This store, with ``value`` freshly read from the file.

        Raises:
            TransactionError: the store is already inside a ``with`` block or transaction.
            LockTimeoutError: the lock was not obtained in time; nothing was read or written.
            CorruptFileError: the file cannot be decoded; nothing was written.

        Example:
            >>> counter = open("counter.json", default=0)  # doctest: +SKIP
            >>> with counter.transaction() as store:  # doctest: +SKIP
            ...     store.value += 1
        """
        if self._depth:
            raise TransactionError(
                f"the store for {self.path!r} is inside a with block or transaction; "
                f"re-reading the file would discard its changes in memory"
            )
        with FileLock(self.lock_path, timeout=timeout):
            self.reload()
            with self:
                yield self

    def __repr__(self) -> str:
        return f"<AtomicStore {self.path!r} {self.codec.name} {self.durability}>"


@overload
def open(
    path: str | os.PathLike[str],
    default: None = None,
    format: Any = None,
    is_binary: bool | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
    dump_kwargs: Mapping[str, Any] | None = None,
    ignore_inner_exits: bool = False,
    *,
    durability: Durability = "durable",
) -> AtomicStore[Any]: ...
@overload
def open(
    path: str | os.PathLike[str],
    default: T,
    format: Any = None,
    is_binary: bool | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
    dump_kwargs: Mapping[str, Any] | None = None,
    ignore_inner_exits: bool = False,
    *,
    durability: Durability = "durable",
) -> AtomicStore[T]: ...
def open(  # noqa: PLR0917 - atomic_store's positional order, kept for compatibility
    path: str | os.PathLike[str],
    default: Any = None,
    format: Any = None,
    is_binary: bool | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
    dump_kwargs: Mapping[str, Any] | None = None,
    ignore_inner_exits: bool = False,
    *,
    durability: Durability = "durable",
) -> AtomicStore[Any]:
    """Open the store kept in ``path``, reading its value now.

    The positional order is atomic_store 0.0.1's. Nothing is written until `commit` or the
    end of a ``with`` block.

    For type checkers the store is typed by its default: ``open(p, default=0)`` is an
    ``AtomicStore[int]`` whose ``value`` is an ``int``; without a default, ``value`` is
    ``Any``. The file decides what ``value`` really holds: the type is a promise you make.

    Args:
        path: the file; it need not exist. A symlink is followed when reading and writing.
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
            ``"atomic"`` (no fsync: old-or-new across a process crash, not power loss).

    Returns:
        The store.

    Raises:
        CorruptFileError: the file exists but cannot be decoded; it is left untouched.
        OSError: the file cannot be read (e.g. `PermissionError`, `IsADirectoryError`).
        FormatError: the format is unknown or has neither dump/load nor dumps/loads.
        InvalidArgumentError: a bad ``durability``, non-mapping kwargs, or a default that
            cannot be copied.

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
    )
