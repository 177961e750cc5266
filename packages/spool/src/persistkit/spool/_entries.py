"""What in a spool's area is a message, and what is a stray the spool leaves alone.

A message is a regular file with a visible name; in ``cur`` its name must also carry the
claim (tries and lease) that `Spool.claim` put there, or nobody could ever tell when its
lease ends. Everything else (folders, symlinks, fifos, sockets, files in ``cur`` without a
claim) was not written by the spool: it is never claimed, followed, counted, moved or
deleted, only reported. Hidden names are writers' temporary files and are neither.
"""

from __future__ import annotations

import contextlib
import os
import stat

from persistkit.spool._message_names import parse_name

_KINDS = {stat.S_IFLNK: "a symbolic link (never followed)", stat.S_IFDIR: "a folder"}


def is_message(area: str, entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` of ``area`` is a message (the cheap check: no stat on most filesystems)."""
    if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
        return False
    return area != "cur" or parse_name(entry.name).deadline_ms is not None


def message_names(directory: str, area: str) -> list[str]:
    """Return the names of the messages in one area, sorted (empty if it is missing)."""
    with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
        return sorted(entry.name for entry in entries if is_message(area, entry))
    return []


def stray_reason(area: str, entry: os.DirEntry[str]) -> str | None:
    """Say what ``entry`` is if it is neither a message nor a writer's temporary file."""
    if entry.name.startswith("."):
        return None
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        if area == "cur" and parse_name(entry.name).deadline_ms is None:
            return "no claim (tries and lease) in its name"
        return None
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def strays(directory: str, area: str) -> dict[str, str]:
    """Map each stray in one area to what it is (empty if the area is missing)."""
    found: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
        for entry in entries:
            reason = stray_reason(area, entry)
            if reason is not None:
                found[entry.path] = reason
    return dict(sorted(found.items()))
