"""Checking the path a subcommand was given, writing nothing, with errors people can read."""

from __future__ import annotations

import os
import stat

from persistkit.core.errors import CommandError


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise CommandError("no such file or folder", path=path, kind="missing") from None
    except NotADirectoryError:
        raise CommandError(
            "no such file or folder (a part of the path is a file)", path=path, kind="missing"
        ) from None
    except PermissionError:
        raise CommandError("permission denied", path=path, kind="failed") from None


def existing_folder(path: str | os.PathLike[str], *, what: str = "a folder") -> str:
    """Return ``path`` as a string if it is a folder (symlinks followed); write nothing.

    Args:
        path: what the user gave.
        what: what the command expects there, for the message (``"a spool"``).

    Raises:
        CommandError: nothing is there (``kind="missing"``) or something other than a folder
            (``kind="wrong_kind"``).

    Example:
        >>> folder = existing_folder(args.path, what="a spool")  # doctest: +SKIP
    """
    name = os.fspath(path)
    if not stat.S_ISDIR(_stat(name).st_mode):
        raise CommandError(f"not {what}: it is a file", path=name, kind="wrong_kind")
    return name


def existing_file(path: str | os.PathLike[str], *, what: str = "a file") -> str:
    """Return ``path`` as a string if it is a regular file (symlinks followed); write nothing.

    Args:
        path: what the user gave.
        what: what the command expects there, for the message (``"a store file"``).

    Raises:
        CommandError: nothing is there (``kind="missing"``) or something other than a regular
            file (``kind="wrong_kind"``).
    """
    name = os.fspath(path)
    mode = _stat(name).st_mode
    if not stat.S_ISREG(mode):
        found = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise CommandError(f"not {what}: it is {found}", path=name, kind="wrong_kind")
    return name
