"""Removing what crashed writers left behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time

from persistkit.core import _fs, _names
from persistkit.core._folder import remove_tree


def sweep(
    directory: str | os.PathLike[str], *, min_age: float = 60.0, dry_run: bool = False
) -> list[str]:
    """Remove temporary files and folders whose writer is gone.

    A live writer holds an ``flock`` on its temporary file or folder from the moment it
    creates it until it has renamed it into place; the kernel drops that lock when the
    process dies. So a temporary name whose lock can be taken belongs to a dead writer. The
    ``min_age`` grace covers the instant between a writer creating its file and locking it.

    Only names matching persistkit's temporary pattern (``.<name>.<12 hex digits>.pktmp``)
    are ever considered; nothing else in the directory is touched. The removals are made
    durable with one directory fsync.

    Args:
        directory: the directory to clean (not recursive).
        min_age: leave temporary names younger than this many seconds alone.
        dry_run: find them the same way, but remove nothing and write nothing (the check
            takes each lock for an instant, which changes nothing on disk).

    Returns:
        The paths removed (with ``dry_run``: the paths that would have been removed).

    Example:
        >>> sweep("/var/lib/myapp", min_age=0)  # doctest: +SKIP
        ['/var/lib/myapp/.state.json.3f9a0c1d2e4b.pktmp']
    """
    folder = os.fspath(directory)
    now = time.time()
    removed: list[str] = []
    with os.scandir(folder) as entries:
        candidates = [entry for entry in entries if _names.is_temp_name(entry.name)]
    for entry in candidates:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if now - info.st_mtime < min_age:
            continue
        regular = stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)
        if regular and _remove_if_abandoned(entry.path, info, dry_run=dry_run):
            removed.append(entry.path)
    if removed and not dry_run:
        _fs.fsync_directory(folder)
    return removed


def _remove_if_abandoned(path: str, info: os.stat_result, *, dry_run: bool) -> bool:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    if stat.S_ISDIR(info.st_mode):
        flags |= os.O_DIRECTORY
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        # The name may have been renamed away and reused in between; remove only what we hold.
        with contextlib.suppress(FileNotFoundError):
            if os.lstat(path).st_ino != os.fstat(fd).st_ino:
                return False
            if not dry_run:
                remove_tree(path)
            return True
        return False
    finally:
        os.close(fd)
