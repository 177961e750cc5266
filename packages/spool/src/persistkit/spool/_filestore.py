"""`FileStore`: gocept.filestore's API on persistkit's write protocol."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from typing import IO, Any

from persistkit.core import (
    Durability,
    atomic_write,
    check_durability,
    create_exclusive,
    fsync_file,
    make_dirs,
    remove,
    rename,
)
from persistkit.core.errors import TargetExistsError
from persistkit.spool._store_names import check_area, check_name, name_in_area


def make_area_dirs(path: str, areas: tuple[str, ...], *, durable: bool) -> None:
    """Create ``path`` and its area folders where missing; durably when asked."""
    for area in areas:
        make_dirs(os.path.join(path, area), durability="durable" if durable else "atomic")


def listing(area_dir: str, shown_as: str) -> list[str]:
    """List the visible regular files of one area, oldest arrival first.

    Arrival is the status-change time, which a rename sets on Linux filesystems; the name
    breaks ties. Hidden names (temporary files of writers still at work) are skipped.
    """
    found: list[tuple[int, str]] = []
    with os.scandir(area_dir) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                found.append((info.st_ctime_ns, entry.name))
    found.sort()
    return [os.path.join(shown_as, name) for _, name in found]


class FileStore:
    """A maildir-like store (``tmp``, ``new``, ``cur``) with gocept.filestore's API.

    Switch from gocept.filestore by changing the import only. What differs, on purpose:
    names cannot leave the store (``../x``, absolute paths into other folders, separators,
    empty or hidden names raise `InvalidNameError` before anything changes); `create`,
    `move` and `copy` never replace an existing file (`TargetExistsError`); `copy` is
    atomic; moves out of ``tmp`` are durable; `list` is sorted and skips hidden names.

    Args:
        path: the store's folder (created with its areas by `prepare`).
        durability: ``"durable"`` (the default: moves out of ``tmp`` fsync the file, and
            every move, copy and remove fsyncs the folders it changed) or ``"atomic"`` (no
            fsync: safe against a crash of the process, not against power loss; what
            gocept.filestore gives).

    Example:
        >>> store = FileStore("/var/spool/invoices")  # doctest: +SKIP
        >>> store.prepare()  # doctest: +SKIP
        >>> with store.create("0001.xml") as f:  # doctest: +SKIP
        ...     f.write("<invoice/>")
        >>> store.move("0001.xml", "tmp", "new")  # doctest: +SKIP
    """

    __module__ = "persistkit.spool"

    sub_dirs: tuple[str, ...] = ("tmp", "new", "cur")

    def __init__(self, path: str | os.PathLike[str], *, durability: Durability = "durable"):
        check_durability(durability)
        self.path = os.fspath(path)
        self.durability: Durability = durability

    def _area_dir(self, area: object) -> str:
        return os.path.join(self.path, check_area(area, self.sub_dirs))

    def prepare(self) -> None:
        """Create the store's folder and its areas where missing (idempotent).

        Recreates a store whose folder was removed. With ``durability="durable"`` the new
        folders are fsynced into their parents before it returns.
        """
        make_area_dirs(self.path, self.sub_dirs, durable=self.durability == "durable")

    def create(self, name: str, mode: str = "w", **open_kwargs: Any) -> IO[Any]:
        """Create a new file in ``tmp`` and return it open for writing.

        ``tmp`` is the staging area: nothing there is ever handed to a consumer, so the file
        is written in place; publish it with ``move(name, "tmp", "new")`` once it is closed.
        Unlike gocept.filestore, an existing file is never truncated.

        Args:
            name: a bare file name.
            mode: a writing mode (``"w"``, ``"wb"``, ``"a"``, ``"x"``..., with ``+``).
            **open_kwargs: passed to `open` (``encoding``, ``newline``, ``buffering``).

        Returns:
            The open file (a plain file object, not yet durable).

        Raises:
            InvalidNameError: ``name`` could reach outside ``tmp``.
            TargetExistsError: ``tmp`` already holds a file of that name.
        """
        name = check_name(name)
        return create_exclusive(os.path.join(self._area_dir("tmp"), name), mode, **open_kwargs)

    def list(self, area: str) -> list[str]:
        """Return the full paths of the files in ``area``, oldest arrival first.

        Hidden names (persistkit's temporary files) and folders are left out.

        Raises:
            InvalidAreaError: ``area`` is not one of `sub_dirs`.
        """
        area_dir = self._area_dir(area)
        return listing(area_dir, area_dir)

    def move(self, name: str, source: str, destination: str) -> None:
        """Move a file from one area to another with one atomic, create-only rename.

        Guarantees when it returns: the file is in ``destination`` and no longer in
        ``source``; nothing that was in ``destination`` was replaced. With
        ``durability="durable"``: a file leaving ``tmp`` is fsynced first (its content
        was written through `create`, unsynced), then renamed, then the destination folder
        is fsynced (and the source folder too, for moves between other areas), so the move
        survives power loss.

        Args:
            name: a bare name or a full path as `list` returns it (from ``source``).
            source: the area it is in.
            destination: the area it goes to.

        Raises:
            InvalidNameError: ``name`` is not a file of ``source``.
            TargetExistsError: ``destination`` already holds that name.
            FileNotFoundError: ``source`` holds no such file.
        """
        source_dir = self._area_dir(source)
        destination_dir = self._area_dir(destination)
        name = name_in_area(name, source_dir)
        src = os.path.join(source_dir, name)
        leaving_staging = source == "tmp"
        if self.durability == "durable" and leaving_staging:
            fsync_file(src)
        # Out of tmp, only the destination folder needs its fsync (the maildir rule): a
        # name that comes back in tmp after power loss is a leftover that clean() removes.
        rename(
            src,
            os.path.join(destination_dir, name),
            overwrite=False,
            durability=self.durability,
            sync_source=not leaving_staging,
        )

    def copy(self, name: str, source: str, destination: str) -> None:
        """Copy a file into another area, atomically.

        The copy is written to a hidden temporary file beside its destination and published
        with one create-only rename, so no reader ever sees a partial copy. Permission bits
        are copied. With ``durability="durable"`` the copy survives power loss once this
        returns.

        Args:
            name: a bare name or a full path as `list` returns it (from ``source``).
            source: the area it is in.
            destination: the area the copy goes to.

        Raises:
            InvalidNameError: ``name`` is not a file of ``source``.
            TargetExistsError: ``destination`` already holds that name.
            FileNotFoundError: ``source`` holds no such file.
        """
        source_dir = self._area_dir(source)
        destination_dir = self._area_dir(destination)
        name = name_in_area(name, source_dir)
        target = os.path.join(destination_dir, name)
        with open(os.path.join(source_dir, name), "rb") as original:
            if os.path.lexists(target):
                raise TargetExistsError(errno.EEXIST, "destination exists", target)
            with atomic_write(
                target,
                "wb",
                overwrite=False,
                durability=self.durability,
                follow_symlinks=False,
                permissions=stat.S_IMODE(os.fstat(original.fileno()).st_mode),
            ) as copy:
                shutil.copyfileobj(original, copy)

    def remove(self, name: str, area: str) -> None:
        """Remove a file from ``area``; with ``durability="durable"`` the removal is fsynced.

        Args:
            name: a bare name or a full path as `list` returns it.
            area: the area holding it.

        Raises:
            InvalidNameError: ``name`` is not a file of ``area``.
            FileNotFoundError: there is no such file.
        """
        area_dir = self._area_dir(area)
        remove(os.path.join(area_dir, name_in_area(name, area_dir)), durability=self.durability)
