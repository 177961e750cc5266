"""Where the store tests keep their stores: a local folder, or a prefix in an S3 bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from persistkit import store
from persistkit.core import ObjectNotFoundError, ObjectStore


class Place:
    """Where a test keeps its stores: files in a folder, or objects in a bucket on S3.

    The tests that describe behaviour common to both run once per place (the ``place``
    fixture); the S3 one against the real SeaweedFS server that core's fixtures start.
    """

    name = "local"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def open(self, name: str, *args: Any, **kwargs: Any) -> store.AtomicStore[Any]:
        """Open the store ``name`` here (the arguments after the path are ``store.open``'s)."""
        return store.open(self.folder / name, *args, **kwargs)

    def where(self, name: str) -> str:
        """What a store's ``path`` and errors name for ``name``."""
        return str(self.folder / name)

    def stored(self, name: str) -> bytes | None:
        """The encoded value a reader finds (an object's header removed), or None."""
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        """Put ``data`` there as another program would (no persistkit header)."""
        (self.folder / name).write_bytes(data)

    def names(self) -> list[str]:
        """Everything there, hidden names and leftovers included."""
        return sorted(path.name for path in self.folder.iterdir())

    def snapshot(self, name: str) -> object:
        """What changes whenever ``name`` is written: bytes, inode and mtime of the file."""
        info = (self.folder / name).stat()
        return (self.folder / name).read_bytes(), info.st_ino, info.st_mtime_ns


class S3Place(Place):
    """Stores as objects under a prefix of a fresh bucket."""

    name = "s3"

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    def open(self, name: str, *args: Any, **kwargs: Any) -> store.AtomicStore[Any]:
        return store.open(self.objects, *args, key=name, **kwargs)

    def where(self, name: str) -> str:
        return f"{self.objects.location}/{name}"

    def stored(self, name: str) -> bytes | None:
        try:
            data = self.objects.get(name).data
        except ObjectNotFoundError:
            return None
        if data.startswith(b"persistkit-store/1 "):  # written by a store, else by `write`
            return data.split(b"\n", 1)[1]
        return data

    def write(self, name: str, data: bytes) -> None:
        self.objects.put(name, data)

    def names(self) -> list[str]:
        return sorted(self.objects.list())

    def snapshot(self, name: str) -> object:
        found = self.objects.get(name)  # every write of a store has a new version
        return found.data, found.version
