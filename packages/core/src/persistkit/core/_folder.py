"""Whole folders published in one rename, and atomik's create-only file writer."""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from persistkit.core import _fs, _names, _primitives
from persistkit.core._durability import Durability, check_durability
from persistkit.core._temp import resolve_target
from persistkit.core._writer import AtomicWriter
from persistkit.core.errors import TargetExistsError

PathArg = str | os.PathLike[str]


class FileMode(enum.StrEnum):
    """How `atomic_file` opens its file."""

    TEXT = "w"
    BYTES = "wb"


def atomic_file(
    path: PathArg,
    mode: FileMode | str = FileMode.TEXT,
    *,
    overwrite: bool = False,
    tmp_dir: PathArg | None = None,
    durability: Durability = "durable",
    follow_symlinks: bool = True,
    **open_kwargs: Any,
) -> contextlib.AbstractContextManager[IO[Any]]:
    """Write a file all at once; by default refuse to replace an existing one (atomik's ``file``).

    Guarantees when the ``with`` block exits normally: the file holds exactly what was written
    and, with ``durability="durable"``, survives power loss. When the block raises, nothing
    is published and no temporary file remains.

    Args:
        path: the file to write.
        mode: `FileMode.TEXT` or `FileMode.BYTES` (or ``"w"`` / ``"wb"``).
        overwrite: replace an existing file instead of raising `TargetExistsError`.
        tmp_dir: where to build the file; by default beside it. Another filesystem fails
            with `CrossDeviceError` (persistkit never copies).
        durability: ``"durable"`` or ``"atomic"``.
        follow_symlinks: write through a symlink at ``path``.
        **open_kwargs: ``encoding``, ``newline``, ``errors``.

    Example:
        >>> with atomic_file("result.json") as f:  # doctest: +SKIP
        ...     print('{"ok": true}', file=f)
    """
    mode_value = mode.value if isinstance(mode, FileMode) else mode
    return AtomicWriter(
        path,
        mode_value,
        overwrite,
        durability=durability,
        follow_symlinks=follow_symlinks,
        dir=None if tmp_dir is None else os.fspath(tmp_dir),
        **open_kwargs,
    ).open()


@contextlib.contextmanager
def atomic_folder(
    path: PathArg,
    *,
    overwrite: bool = False,
    tmp_dir: PathArg | None = None,
    durability: Durability = "durable",
    follow_symlinks: bool = True,
) -> Iterator[Path]:
    """Build a folder in a hidden temporary folder, then publish it in one rename.

    Yields the temporary folder; write whatever you like into it. When the block exits
    normally every file and folder in it is fsynced (with ``durability="durable"``), then the
    folder takes the place of ``path``: by ``renameat2(RENAME_NOREPLACE)`` when ``path`` does
    not exist, by ``renameat2(RENAME_EXCHANGE)`` when it does and ``overwrite`` is True, after
    which the old tree is removed. A crash at any moment leaves ``path`` either the old folder
    or the new one, never a mix; a leftover temporary folder is removed by `sweep`.

    Args:
        path: the folder to create or replace.
        overwrite: replace an existing folder (or file) at ``path``.
        tmp_dir: where to build; by default beside ``path``. Must be on the same filesystem.
        durability: ``"durable"`` or ``"atomic"``.
        follow_symlinks: replace the folder a symlink at ``path`` points to.

    Raises:
        TargetExistsError: ``path`` exists and ``overwrite`` is False.
        UnsupportedOperationError: ``overwrite`` needs RENAME_EXCHANGE and this filesystem
            lacks it (replacing a folder any other way is not atomic).
        CrossDeviceError: ``tmp_dir`` is on another filesystem.

    Example:
        >>> with atomic_folder("release") as folder:  # doctest: +SKIP
        ...     (folder / "a.json").write_text("{}")
    """
    fsync = check_durability(durability)
    target = resolve_target(path, follow_symlinks)
    if not overwrite and os.path.lexists(target):
        raise TargetExistsError(errno.EEXIST, "destination exists", target)
    base = _primitives.parent_of(target) if tmp_dir is None else os.fspath(tmp_dir)
    building = os.path.join(os.path.abspath(base), _names.temp_name_for(os.path.basename(target)))
    _fs.mkdir(building)
    # Held open until the end: the flock tells `sweep` that this folder's writer is alive.
    marker = os.open(building, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    published = False
    try:
        fcntl.flock(marker, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield Path(building)
        if fsync:
            _sync_tree(building)
        replaced = _publish(building, target, overwrite)
        published = True
        if fsync:
            _primitives.sync_parents(target, building)
        if replaced:
            remove_tree(building)
    finally:
        os.close(marker)
        if not published:
            remove_tree(building)


def _publish(building: str, target: str, overwrite: bool) -> bool:
    """Move the built folder into place; return True when an old tree now sits at ``building``."""
    try:
        _primitives.rename_noreplace(building, target)
    except TargetExistsError:
        if not overwrite:
            raise
        _primitives.exchange_names(building, target)
        return True
    return False


def _sync_tree(root: str) -> None:
    for directory, _subdirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _fs.fsync(fd, path)
            finally:
                os.close(fd)
        _fs.fsync_directory(directory)


def remove_tree(path: str) -> None:
    """Remove a file or a folder tree; names that are already gone are not an error."""
    if not os.path.isdir(path) or os.path.islink(path):
        with contextlib.suppress(FileNotFoundError):
            _fs.unlink(path)
        return
    for directory, subdirs, files in os.walk(path, topdown=False):
        for name in files + [d for d in subdirs if os.path.islink(os.path.join(directory, d))]:
            with contextlib.suppress(FileNotFoundError):
                _fs.unlink(os.path.join(directory, name))
        with contextlib.suppress(FileNotFoundError):
            _fs.rmdir(directory)
