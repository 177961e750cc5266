"""What a mount supports, probed once per device and remembered."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import threading
from dataclasses import dataclass

from persistkit.core import _fs, _names, _syscalls

_XATTR_LIMIT = 65536  # XATTR_SIZE_MAX in include/uapi/linux/limits.h
_PROBE_ATTR = "user.persistkit.probe"

# statfs(2) f_type values (include/uapi/linux/magic.h) of the filesystems whose syncfs(2)
# writes back every file's data and then flushes the device's cache (their ->sync_fs does).
# tmpfs and ramfs hold nothing across a power cut at all, so syncfs loses nothing fsync keeps.
# Everything else (FUSE, which never forwards syncfs; overlayfs, NFS, vfat...) is not trusted:
# a batch there flushes file by file.
_SYNCFS_FLUSHES = frozenset(
    {
        0xEF53,  # ext2, ext3, ext4
        0x58465342,  # xfs
        0x9123683E,  # btrfs
        0xF2F52010,  # f2fs
        0x2FC12FC1,  # zfs
        0xCA451A4E,  # bcachefs
        0x01021994,  # tmpfs
        0x858458F6,  # ramfs
    }
)

_cache: dict[int, Capabilities] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What one mounted filesystem supports.

    Attributes:
        device: the ``st_dev`` these answers hold for.
        rename_noreplace: create-only rename (``RENAME_NOREPLACE``) works; where it does not,
            persistkit publishes create-only with ``link`` + ``unlink``, which is as atomic.
        rename_exchange: atomic swap of two names (``RENAME_EXCHANGE``) works; without it,
            replacing a whole folder atomically is impossible and is refused.
        user_xattrs: ``user.*`` extended attributes can be set on regular files.
        xattr_max_size: the largest single ``user.*`` value a fresh file accepts (0 if none).
        dir_fsync: fsync on a directory works; where it does not, renames are atomic but not
            known to be durable.
        read_only: the mount is read-only. Nothing is probed on it (a probe would write), so
            every other answer is False: nothing can be written there anyway.
        anonymous_files: unnamed files (``O_TMPFILE``) can be created; where they cannot
            (FUSE, NFS), new files are staged under a hidden temporary name instead.
        syncfs: ``syncfs(2)`` is known to flush every file of this filesystem to its device
            (ext4, XFS, Btrfs, F2FS, ZFS, bcachefs; tmpfs and ramfs, which keep nothing
            anyway). Elsewhere, FUSE above all (the kernel never passes syncfs on to a FUSE
            server), a `Batch` flushes file by file. Checked on every use, not cached (see
            `syncfs_reaches_storage`).
    """

    device: int
    rename_noreplace: bool
    rename_exchange: bool
    user_xattrs: bool
    xattr_max_size: int
    dir_fsync: bool
    read_only: bool = False
    anonymous_files: bool = False
    syncfs: bool = False


def capabilities(path: str | os.PathLike[str], *, refresh: bool = False) -> Capabilities:
    """Report what the filesystem holding ``path`` supports.

    The first call for a device creates a small hidden probe folder in ``path`` (or in its
    parent when ``path`` is a file), tries each operation, and removes the folder; the answer
    is cached by device number for the life of the process. A read-only mount is recognised
    (``statvfs``) and not probed at all. A device number can be reused
    when a filesystem is unmounted and another mounted (anonymous devices such as tmpfs get
    the lowest free number), so after remounting, ask again with ``refresh=True``.

    Args:
        path: an existing directory (or file) on the filesystem to probe.
        refresh: probe again even if this device's answer is cached.

    Returns:
        The `Capabilities` of that filesystem.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OSError: the mount is writable but ``path``'s folder is not (permissions).

    Example:
        >>> caps = capabilities(".")
        >>> caps.rename_exchange in (True, False)
        True
    """
    directory = os.fspath(path)
    info = os.stat(directory)  # a missing path raises here, before any other answer
    if not stat.S_ISDIR(info.st_mode):
        directory = os.path.dirname(os.path.abspath(directory))
    device = info.st_dev
    cached = None if refresh else _cache.get(device)
    if cached is not None:
        return cached
    with _cache_lock:
        cached = None if refresh else _cache.get(device)
        if cached is None:
            cached = _probe(directory, device)
            _cache[device] = cached
    return cached


def forget(device: int) -> None:
    """Drop the cached answer for ``device``, whose number a new mount may have reused."""
    _cache.pop(device, None)


def known_capabilities(device: int) -> Capabilities | None:
    """Return the cached answer for ``device`` without probing."""
    return _cache.get(device)


def _probe(directory: str, device: int) -> Capabilities:
    if os.statvfs(directory).f_flag & os.ST_RDONLY:
        return Capabilities(
            device=device,
            rename_noreplace=False,
            rename_exchange=False,
            user_xattrs=False,
            xattr_max_size=0,
            dir_fsync=False,
            read_only=True,
        )
    probe = os.path.join(directory, _names.temp_name_for("persistkit-probe"))
    os.mkdir(probe, 0o700)
    try:
        first, second, third = (os.path.join(probe, name) for name in ("a", "b", "c"))
        for name in (first, second):
            with open(name, "wb"):
                pass
        noreplace = _try_rename(first, third, _syscalls.RENAME_NOREPLACE)
        if not noreplace:
            os.rename(first, third)
        exchange = _try_rename(second, third, _syscalls.RENAME_EXCHANGE)
        max_size = _xattr_max_size(third)
        dir_fsync = _dir_fsync_works(probe)
        anonymous = _anonymous_files_work(probe)
        syncfs = _syncfs_flushes(probe)
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return Capabilities(
        device=device,
        rename_noreplace=noreplace,
        rename_exchange=exchange,
        user_xattrs=max_size > 0,
        xattr_max_size=max_size,
        dir_fsync=dir_fsync,
        anonymous_files=anonymous,
        syncfs=syncfs,
    )


def syncfs_reaches_storage(fd: int) -> bool:
    """Tell whether ``syncfs(2)`` on ``fd``'s filesystem makes every file's data durable.

    Asked of the filesystem type (``fstatfs``) on every call, because a device number
    outlives its mount: a FUSE mount can get the number a tmpfs had a moment ago, and a
    wrong "yes" here would make a batch report unflushed files as durable.
    """
    return _syscalls.syncfs_available() and _syscalls.filesystem_magic(fd) in _SYNCFS_FLUSHES


def _syncfs_flushes(directory: str) -> bool:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return syncfs_reaches_storage(fd)
    finally:
        os.close(fd)


def _anonymous_files_work(directory: str) -> bool:
    if not _syscalls.ANONYMOUS_FILES:
        return False
    try:
        fd = os.open(directory, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    os.close(fd)
    return True


def _try_rename(src: str, dst: str, flags: int) -> bool:
    try:
        _syscalls.renameat2(src, dst, flags)
    except _syscalls.RenameFlagsUnavailableError:
        return False
    except OSError as error:
        if error.errno in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    return True


def _xattr_fits(path: str, size: int) -> bool:
    try:
        _fs.setxattr_path(path, _PROBE_ATTR, b"x" * size)
    except OSError:
        return False
    return True


def _xattr_max_size(path: str) -> int:
    if not _xattr_fits(path, 1):
        return 0
    if _xattr_fits(path, _XATTR_LIMIT):
        return _XATTR_LIMIT
    low, high = 1, _XATTR_LIMIT  # low fits, high does not
    while high - low > 1:
        middle = (low + high) // 2
        if _xattr_fits(path, middle):
            low = middle
        else:
            high = middle
    return low


def _dir_fsync_works(path: str) -> bool:
    with contextlib.suppress(OSError):
        return _fs.fsync_directory(path)
    return False
