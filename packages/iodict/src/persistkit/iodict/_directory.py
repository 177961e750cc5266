"""The store directory: creating it safely and holding its locks."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Protocol

from persistkit.core import FileLock, InvalidArgumentError, ObjectStore, make_dirs
from persistkit.iodict.errors import StorePathError


class LockLike(Protocol):
    """What IODict needs of a user's lock: the context manager protocol."""

    def __enter__(self) -> Any: ...
    def __exit__(self, *args: Any) -> Any: ...


def refuse_object_location(path: object, what: str) -> None:
    """Refuse a URL or an `ObjectStore` where only a folder will do.

    Without this, ``"s3://bucket/x"`` would be taken as a relative path and a folder named
    ``s3:`` created in the working directory.

    Raises:
        InvalidArgumentError: ``path`` is a URL (``scheme://...``) or an `ObjectStore`.
    """
    if isinstance(path, ObjectStore) or (isinstance(path, str) and "://" in path):
        raise InvalidArgumentError(
            f"{what} keeps its items in a folder; give it a path, not {path!r}"
        )


def open_directory(path: str | os.PathLike[str]) -> str:
    """Return the absolute store directory, creating it (durably) when missing.

    Raises:
        StorePathError: ``path`` exists and is not a directory; it is left as it is
            (iodict 0.0.8 deleted it).
    """
    directory = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise StorePathError(20, "the store path exists and is not a directory", directory)
    try:
        make_dirs(directory)
    except FileExistsError:
        raise StorePathError(
            20, "the store path exists and is not a directory", directory
        ) from None
    return directory


def existing_directory(path: str | os.PathLike[str]) -> str:
    """Return the absolute store directory, which must exist; nothing is created.

    Raises:
        FileNotFoundError: there is nothing at ``path``.
        StorePathError: ``path`` exists and is not a directory.
    """
    directory = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.lexists(directory):
        raise FileNotFoundError(2, "no store at this path", directory)
    if not os.path.isdir(directory):
        raise StorePathError(20, "the store path exists and is not a directory", directory)
    return directory


def on_read_only_mount(directory: str) -> bool:
    """Whether ``directory`` is on a mount that refuses every write (``statvfs``)."""
    return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)


def resolve_user_lock(lock: Any) -> LockLike | None:
    """Turn iodict's ``lock`` argument (a lock, a lock factory, or None) into a lock.

    Raises:
        InvalidArgumentError: ``lock`` is neither a context manager nor a factory of one.
    """
    if lock is None:
        return None
    if not isinstance(lock, type) and hasattr(lock, "__enter__") and hasattr(lock, "__exit__"):
        return lock  # type: ignore[no-any-return] # checked structurally just above
    if callable(lock):
        made = lock()
        if hasattr(made, "__enter__") and hasattr(made, "__exit__"):
            return made  # type: ignore[no-any-return] # checked structurally just above
    raise InvalidArgumentError(
        "lock must be a lock object (with acquire/release as a context manager) or a "
        f"callable that makes one, not {lock!r}"
    )


class StoreLock:
    """The user's lock (if any) and the store's cross-process file lock, taken together.

    The file lock is always taken: it is what keeps independent processes (not only the
    children of one parent) from interleaving their updates. A user's lock is taken first,
    outside it, so applications that already serialise on their own lock keep doing so.
    Each store object has its own `FileLock` (not `FileLock.for_path`, whose objects keep
    their descriptor for the life of the process): a store that is dropped closes its lock
    file, so a writable descriptor does not pin the mount (a read-only remount needs none).
    """

    __slots__ = ("_file_lock", "_user_lock")

    def __init__(self, lock_path: str, user_lock: LockLike | None) -> None:
        self._file_lock = FileLock(lock_path)
        self._user_lock = user_lock

    def close(self) -> None:
        """Close the lock file if the lock is not held (it reopens on the next write)."""
        if not self._file_lock.is_locked:
            self._file_lock.close()

    def __enter__(self) -> StoreLock:
        if self._user_lock is not None:
            self._user_lock.__enter__()
            try:
                self._file_lock.acquire()
            except BaseException:
                self._user_lock.__exit__(None, None, None)
                raise
        else:
            self._file_lock.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._file_lock.release()
        finally:
            if self._user_lock is not None:
                self._user_lock.__exit__(exc_type, exc, tb)
