"""atomik's spelling of persistkit's file and folder writers.

``from persistkit.core import atomik`` replaces ``import atomik``. The behaviour is atomik's
documented intent with its defects fixed: the temporary file or folder is built beside the
target (not in the system temp directory, which may be another filesystem), nothing is left
behind on any error, ``folder(overwrite=True)`` works when the destination does not exist yet,
modes follow the umask, everything is fsynced, and a replaced folder is swapped in with
``RENAME_EXCHANGE`` before the old tree is removed.

Example:
    >>> from persistkit.core import atomik
    >>> with atomik.file("./result.json") as f:  # doctest: +SKIP
    ...     print("{}", file=f)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Any

from persistkit.core._folder import FileMode, atomic_file, atomic_folder

__all__ = ["BYTES", "TEXT", "FileMode", "file", "folder"]

TEXT = FileMode.TEXT
BYTES = FileMode.BYTES


def file(
    path: str | os.PathLike[str],
    mode: FileMode | str = TEXT,
    overwrite: bool = False,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> contextlib.AbstractContextManager[IO[Any]]:
    """Write a file atomically and durably; refuse to overwrite unless asked (see `atomic_file`)."""
    return atomic_file(path, mode, overwrite=overwrite, tmp_dir=tmp_dir)


def folder(
    path: str | os.PathLike[str],
    overwrite: bool = False,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> contextlib.AbstractContextManager[Path]:
    """Build a folder and publish it in one rename (see `atomic_folder`)."""
    return atomic_folder(path, overwrite=overwrite, tmp_dir=tmp_dir)
