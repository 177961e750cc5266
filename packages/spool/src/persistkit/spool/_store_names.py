"""Names a caller gives: checked so that none reaches outside its area of the store."""

from __future__ import annotations

import os

from persistkit.core.errors import InvalidNameError
from persistkit.spool.errors import InvalidAreaError

NAME_MAX = 255  # bytes in one path component on Linux, macOS and every common filesystem


def check_name(name: object) -> str:
    """Return ``name`` if it can only ever mean one file directly inside an area.

    Refused: anything but a `str`; the empty name, ``.`` and ``..``; separators and NUL;
    names starting with a dot (hidden names are where persistkit keeps its temporary files,
    and readers skip them, as the maildir spec asks); names longer than NAME_MAX bytes.

    Raises:
        InvalidNameError: the name is refused; nothing on disk was touched.
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"a file name must be a str, not {type(name).__name__}")
    if "/" in name or "\0" in name or (os.altsep is not None and os.altsep in name):
        raise InvalidNameError(f"{name!r} contains a path separator or NUL")
    if not name or name.startswith("."):
        raise InvalidNameError(f"{name!r} is empty, '.', '..' or hidden (starts with a dot)")
    try:
        size = len(os.fsencode(name))
    except UnicodeEncodeError:
        raise InvalidNameError(f"{name!r} cannot be encoded as a file name") from None
    if size > NAME_MAX:
        raise InvalidNameError(f"{name!r} is longer than {NAME_MAX} bytes")
    return name


def name_in_area(name: object, area_dir: str) -> str:
    """Return the bare file name meant by ``name`` inside the area directory ``area_dir``.

    ``name`` is either a bare name or a path such as `FileStore.list` returns; a path is
    accepted only when its directory is ``area_dir`` itself.

    Raises:
        InvalidNameError: the name is refused, or the path points into another directory.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if isinstance(name, str) and "/" in name:
        if "\0" in name:
            raise InvalidNameError(f"{name!r} contains NUL")
        directory, base = os.path.split(name)
        if not directory or not _same_directory(directory, area_dir):
            raise InvalidNameError(f"{name!r} is not a file of {area_dir!r}")
        name = base
    return check_name(name)


def _same_directory(given: str, area_dir: str) -> bool:
    # The common case, a path exactly as list() built it, needs no system call; a path
    # spelled differently (through a symlink, say) is compared by what it resolves to.
    if given == area_dir or os.path.abspath(given) == os.path.abspath(area_dir):
        return True
    return os.path.realpath(given) == os.path.realpath(area_dir)


def check_area(area: object, areas: tuple[str, ...]) -> str:
    """Return ``area`` if it is one of ``areas``.

    Raises:
        InvalidAreaError: it is not.
    """
    if not isinstance(area, str) or area not in areas:
        raise InvalidAreaError(f"area must be one of {list(areas)}, not {area!r}")
    return area
