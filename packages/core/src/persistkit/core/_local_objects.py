"""The object store on a local folder: core's write protocol, plus compare-and-swap under a lock.

Layout: each object is one file, ``<root>/<object name>``, holding exactly the object's bytes
(the name encoding is in `_object_keys`; a long name's ``~/`` cuts are subfolders). Writers
also keep ``<root>/.persistkit-locks/``: 32 lock files, one per stripe of names.

A version is the MD5 of the file's bytes, hex: the value an S3 server gives as the ETag of
the same bytes, so both backends hand out the same tokens, and the same A-B-A caveat holds
(equal bytes, equal version).

How each call stays correct across processes:

- ``put_if_absent`` publishes with core's create-only rename (``renameat2(RENAME_NOREPLACE)``
  or ``linkat``): the kernel lets exactly one of racing creators have the name. No lock.
- ``put_if_match`` and ``delete_if_match`` read the file, compare its MD5 and then publish
  (or remove) while holding the name's stripe lock (``flock``, released by the kernel if the
  holder dies), so no other compare-and-swap can slip in between the compare and the write.
- ``put`` and ``delete`` take the same lock: an unconditional write between another writer's
  compare and its publish would otherwise be overwritten by a swap that should have failed.
- ``get`` and ``list`` take no lock and create nothing: a rename is atomic, so a reader sees
  a whole old or whole new file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import zlib
from collections.abc import Iterator

from persistkit.core import _object_keys
from persistkit.core._durability import Durability, check_durability
from persistkit.core._lock import FileLock
from persistkit.core._object_store import (
    MAX_PAGE_SIZE,
    ObjectStore,
    StoredObject,
    check_page_size,
)
from persistkit.core._primitives import make_dirs, remove
from persistkit.core._writer import write_bytes
from persistkit.core.errors import (
    ConflictError,
    ObjectExistsError,
    ObjectNotFoundError,
    TargetExistsError,
)

LOCK_FOLDER = ".persistkit-locks"
_STRIPES = 32


def content_version(data: bytes) -> str:
    """Return the version of ``data``: its MD5 in hex, as an S3 ETag of the same bytes."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class LocalObjectStore(ObjectStore):
    """Objects as files in a folder, with create-only writes and compare-and-swap.

    Every write goes through core's protocol (temporary file, fsync, one rename, directory
    fsync), so with ``durability="durable"`` a write that returned survives power loss, and a
    crash at any moment leaves each object wholly old or wholly new. Reading creates nothing:
    a store on read-only media can be read, and the folder is made by the first write.

    Args:
        root: the folder holding the objects.
        durability: ``"durable"`` (the default) or ``"atomic"`` (no fsync).

    Example:
        >>> store = LocalObjectStore("/tmp/objects")  # doctest: +SKIP
        >>> version = store.put_if_absent("jobs/1", b"queued")  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str], *, durability: Durability = "durable") -> None:
        check_durability(durability)
        self.root = os.path.abspath(os.fspath(root))
        self.durability: Durability = durability
        self._locks: dict[int, FileLock] = {}

    @property
    def location(self) -> str:
        """The folder holding the objects."""
        return self.root

    def __repr__(self) -> str:
        return f"LocalObjectStore({self.root!r}, durability={self.durability!r})"

    def _path(self, key: str) -> str:
        return os.path.join(self.root, _object_keys.object_name(key))

    def _lock(self, path: str) -> FileLock:
        stripe = zlib.crc32(path.encode()) % _STRIPES
        lock = self._locks.get(stripe)
        if lock is None:
            folder = os.path.join(self.root, LOCK_FOLDER)
            if not os.path.isdir(folder):
                make_dirs(folder, durability="atomic")
            # One object per lock file in the process (flock is per open file description).
            lock = self._locks[stripe] = FileLock.for_path(os.path.join(folder, f"{stripe:02d}"))
        return lock

    def _make_parent(self, path: str) -> None:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            make_dirs(parent, durability=self.durability)

    def _read(self, key: str, path: str) -> StoredObject | None:
        try:
            with open(path, "rb") as file:
                data = file.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return StoredObject(data, content_version(data))

    def get(self, key: str) -> StoredObject:
        """Read a whole object and its version (see `ObjectStore.get`)."""
        found = self._read(key, self._path(key))
        if found is None:
            raise ObjectNotFoundError(errno.ENOENT, "no such object", key)
        return found

    def exists(self, key: str) -> bool:
        """Tell whether an object has ``key`` (one ``stat``; nothing is read)."""
        return os.path.isfile(self._path(key))

    def put(self, key: str, data: bytes) -> str:
        """Replace an object atomically; durable on return with ``"durable"``."""
        path = self._path(key)
        data = bytes(data)
        self._make_parent(path)
        with self._lock(path):
            write_bytes(path, data, durability=self.durability)
        return content_version(data)

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create an object only if absent (one create-only rename); durable on return."""
        path = self._path(key)
        data = bytes(data)
        self._make_parent(path)
        try:
            write_bytes(path, data, overwrite=False, durability=self.durability)
        except TargetExistsError:
            raise ObjectExistsError(errno.EEXIST, "object exists", key) from None
        return content_version(data)

    def put_if_match(self, key: str, data: bytes, version: str) -> str:
        """Replace an object only if it still has ``version``; durable on return."""
        path = self._path(key)
        data = bytes(data)
        with self._lock(path):
            self._require(key, path, version)
            write_bytes(path, data, durability=self.durability)
        return content_version(data)

    def delete(self, key: str) -> None:
        """Remove an object if it exists; with ``"durable"`` the removal survives power loss."""
        path = self._path(key)
        if not os.path.isdir(os.path.dirname(path)):
            return
        with self._lock(path):
            remove(path, durability=self.durability, missing_ok=True)

    def delete_if_match(self, key: str, version: str) -> None:
        """Remove an object only if it still has ``version``; durable on return."""
        path = self._path(key)
        with self._lock(path):
            self._require(key, path, version)
            remove(path, durability=self.durability)

    def _require(self, key: str, path: str, version: str) -> None:
        current = self._read(key, path)
        if current is None:
            raise ConflictError(f"{key!r} was expected at version {version}, but it is gone")
        if current.version != version:
            raise ConflictError(
                f"{key!r} was expected at version {version}, but it is at {current.version}"
            )

    def list(
        self, prefix: str = "", *, start_after: str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[str]:
        """Yield the keys starting with ``prefix`` (see `ObjectStore.list`; no pages here)."""
        check_page_size(page_size)
        wanted = _object_keys.name_prefix(prefix)
        after = None if start_after is None else _object_keys.name_prefix(start_after)
        folder, _, _ = wanted.rpartition(_object_keys.CUT)
        start = os.path.join(self.root, folder + _object_keys.CUT if folder else "")
        names = sorted(
            name
            for name in self._walk(start, folder + _object_keys.CUT if folder else "")
            if name.startswith(wanted) and (after is None or name > after)
        )
        for name in names:
            key = _object_keys.key_of(name)
            if key is not None:
                yield key

    def _walk(self, folder: str, relative: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # temporary files, locks: never objects
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(entry.path, f"{relative}{entry.name}/")
            else:
                yield relative + entry.name
