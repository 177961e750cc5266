"""atomik's ``rename``: one renameat2 call, on persistkit's primitives."""

from __future__ import annotations

import os

from persistkit.core import _primitives
from persistkit.core.atomik._translate import atomik_errors
from persistkit.core.atomik.flags import Flag

__all__ = ["Flag", "rename"]


def rename(
    src_path: str | os.PathLike[str],
    dst_path: str | os.PathLike[str],
    flag: Flag | str = Flag.RENAME_NOREPLACE,
) -> None:
    """Rename ``src_path`` to ``dst_path`` atomically, as the flag says, and durably.

    When it returns, the rename has happened and both parent directories are fsynced, so it
    survives power loss (atomik never fsynced).

    Args:
        src_path: the existing name.
        dst_path: the new name.
        flag: `Flag.RENAME_NOREPLACE` (the default: fail if ``dst_path`` exists),
            `Flag.RENAME` (replace it) or `Flag.RENAME_EXCHANGE` (swap the two names).

    Raises:
        FileAlreadyExistsError: ``dst_path`` exists and the flag forbids replacing it.
        InvalidCrossDeviceError: the names are on different filesystems.
    """
    chosen = Flag(flag)
    with atomik_errors():
        if chosen is Flag.RENAME_EXCHANGE:
            _primitives.exchange(src_path, dst_path)
        else:
            _primitives.rename(src_path, dst_path, overwrite=chosen is Flag.RENAME)
