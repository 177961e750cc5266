"""atomik's spelling of persistkit's file and folder writers.

``from persistkit.core import atomik`` replaces ``import atomik``; ``atomik.errors``,
``atomik.flags`` and ``atomik.rename`` are there too, under ``persistkit.core.atomik``. The
behaviour is atomik's documented intent with its defects fixed: the temporary file or folder
is built beside the target by default (atomik used the system temp directory, which may be
another filesystem), nothing is left behind on any error, ``folder(overwrite=True)`` works
when the destination does not exist yet, modes follow the umask, everything is fsynced, and a
replaced folder is swapped in with ``RENAME_EXCHANGE`` before the old tree is removed.

Example:
    >>> from persistkit.core import atomik
    >>> with atomik.file("./result.json") as f:  # doctest: +SKIP
    ...     print("{}", file=f)
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from persistkit.core._folder import FileMode, atomic_file, atomic_folder
from persistkit.core.atomik import errors, flags, rename
from persistkit.core.atomik._translate import atomik_errors
from persistkit.core.errors import InvalidArgumentError

__all__ = ["BYTES", "TEXT", "FileMode", "Mode", "errors", "file", "flags", "folder", "rename"]


class Mode(enum.StrEnum):
    """How `file` opens its file (atomik's enum; its values are atomik's too)."""

    TEXT = "TEXT"
    """Text, written as UTF-8 by default."""
    BYTES = "BYTES"
    """Bytes."""


TEXT = Mode.TEXT
"""atomik's mode for a text file (the default): the block writes ``str``."""
BYTES = Mode.BYTES
"""atomik's mode for a binary file: the block writes ``bytes``."""

_OPEN_MODES = {Mode.TEXT: FileMode.TEXT, Mode.BYTES: FileMode.BYTES}


@contextlib.contextmanager
def file(
    path: str | os.PathLike[str],
    mode: Mode | FileMode | str = Mode.TEXT,
    overwrite: bool = False,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> Iterator[IO[Any]]:
    """Write a file atomically and durably; refuse to overwrite unless asked (see `atomic_file`).

    Args:
        path: the file to write.
        mode: `Mode.TEXT` or `Mode.BYTES`, their names ``"TEXT"``/``"BYTES"``, or
            persistkit's `FileMode` (``"w"``/``"wb"``).
        overwrite: replace an existing file.
        tmp_dir: where to build the temporary file (the target's folder by default; it must
            be on the target's filesystem).

    Raises:
        FileAlreadyExistsError: the file exists and ``overwrite`` is False; nothing changed.
        InvalidCrossDeviceError: ``tmp_dir`` is on another filesystem.
    """
    open_mode = _open_mode(mode)
    with atomik_errors(), atomic_file(path, open_mode, overwrite=overwrite, tmp_dir=tmp_dir) as f:
        yield f


def _open_mode(mode: Mode | FileMode | str) -> FileMode:
    with contextlib.suppress(ValueError):
        return _OPEN_MODES[Mode(mode)]
    with contextlib.suppress(ValueError):
        return FileMode(mode)
    raise InvalidArgumentError(f"mode must be one of {[m.value for m in Mode]}, not {mode!r}")


@contextlib.contextmanager
def folder(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> Iterator[Path]:
    """Build a folder and publish it in one rename (see `atomic_folder`).

    Raises:
        FileAlreadyExistsError: the folder exists and ``overwrite`` is False; nothing changed.
        InvalidCrossDeviceError: ``tmp_dir`` is on another filesystem.
    """
    with atomik_errors(), atomic_folder(path, overwrite=overwrite, tmp_dir=tmp_dir) as building:
        yield building
