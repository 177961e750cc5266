"""The bare primitives: rename, exchange, remove and directory fsync, with their fallbacks."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

from persistkit.core import _capabilities, _fs, _syscalls
from persistkit.core._durability import Durability, check_durability
from persistkit.core.errors import (
    CrossDeviceError,
    SyncError,
    TargetExistsError,
    TargetIsDirectoryError,
    UnsupportedOperationError,
)

_FLAG_REFUSED = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP})

# Devices whose filesystem refused RENAME_NOREPLACE; create-only renames there go straight to
# link + unlink instead of paying for a failing syscall each time.
_noreplace_refused: set[int] = set()


def fsync_dir(path: str | os.PathLike[str]) -> bool:
    """Fsync a directory, making the names created, renamed or removed in it durable.

    Args:
        path: the directory.

    Returns:
        True when synced; False when the filesystem refuses directory fsync (some FUSE and
        network mounts): renames there are atomic but not known to survive power loss.

    Raises:
        OSError: the directory cannot be opened, or the fsync failed with an I/O error.
    """
    return _fs.fsync_directory(os.fspath(path))


def parent_of(path: str) -> str:
    """Return the directory holding ``path`` ("." for a bare name)."""
    return os.path.dirname(path) or "."


def sync_parents(*paths: str) -> bool:
    """Fsync the distinct parent directories of ``paths``; True when all were synced."""
    durable = True
    for directory in dict.fromkeys(parent_of(path) for path in paths):
        durable = _fs.fsync_directory(directory) and durable
    return durable


def translate_rename_error(error: OSError, src: str, dst: str) -> OSError:
    """Map a rename's errno to persistkit's typed error, or return it unchanged."""
    code = error.errno
    if code == errno.EXDEV:
        return CrossDeviceError(
            code, "cannot rename across filesystems; persistkit never copies", src, None, dst
        )
    if code in (errno.EEXIST, errno.ENOTEMPTY):
        return TargetExistsError(errno.EEXIST, "destination exists", dst)
    if code == errno.EISDIR:
        return TargetIsDirectoryError(code, "destination is a directory", dst)
    return error


def replace_name(src: str, dst: str) -> None:
    """Rename ``src`` over ``dst`` (no fsync), with typed errors."""
    try:
        _fs.replace(src, dst)
    except OSError as error:
        raise translate_rename_error(error, src, dst) from None


def rename_noreplace(src: str, dst: str) -> None:
    """Rename ``src`` to ``dst`` only if ``dst`` does not exist, atomically (no fsync).

    Uses ``renameat2(RENAME_NOREPLACE)``; where the filesystem refuses the flag, a hard link
    followed by an unlink, which is just as atomic for regular files.

    Raises:
        TargetExistsError: ``dst`` exists.
        CrossDeviceError: the names are on different filesystems.
        UnsupportedOperationError: neither route works here (a directory on a filesystem
            without RENAME_NOREPLACE, or a filesystem without hard links).
    """
    if _noreplace_refused and _device_of(dst) in _noreplace_refused:
        _link_then_unlink(src, dst)
        return
    try:
        _fs.rename_flags(src, dst, _syscalls.RENAME_NOREPLACE)
    except _syscalls.RenameFlagsUnavailableError:  # pragma: no cover - exotic platforms
        _link_then_unlink(src, dst)
    except OSError as error:
        if error.errno in _FLAG_REFUSED and not _supports_noreplace(dst):
            _noreplace_refused.add(_device_of(dst))
            _link_then_unlink(src, dst)
            return
        raise translate_rename_error(error, src, dst) from None


def _device_of(path: str) -> int:
    return os.stat(parent_of(path)).st_dev


def _supports_noreplace(dst: str) -> bool:
    return _capabilities.capabilities(parent_of(dst)).rename_noreplace


def _link_then_unlink(src: str, dst: str) -> None:
    try:
        _fs.link(src, dst)
    except OSError as error:
        if error.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise UnsupportedOperationError(
                error.errno,
                "this filesystem has neither RENAME_NOREPLACE nor hard links for "
                "a create-only rename",
                src,
                None,
                dst,
            ) from None
        raise translate_rename_error(error, src, dst) from None
    _fs.unlink(src)


def exchange_names(a: str, b: str) -> None:
    """Swap two existing names atomically (no fsync).

    Raises:
        UnsupportedOperationError: the kernel or filesystem has no RENAME_EXCHANGE.
        FileNotFoundError: either name does not exist.
    """
    try:
        _fs.rename_flags(a, b, _syscalls.RENAME_EXCHANGE)
    except _syscalls.RenameFlagsUnavailableError:  # pragma: no cover - exotic platforms
        raise UnsupportedOperationError(
            errno.ENOSYS, "renameat2 is not available on this system", a, None, b
        ) from None
    except OSError as error:
        if error.errno in _FLAG_REFUSED and (
            error.errno != errno.EINVAL
            or not _capabilities.capabilities(parent_of(b)).rename_exchange
        ):
            raise UnsupportedOperationError(
                error.errno, "this filesystem cannot exchange two names atomically", a, None, b
            ) from None
        raise translate_rename_error(error, a, b) from None


def rename(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    overwrite: bool = True,
    durability: Durability = "durable",
    sync_source: bool = True,
) -> bool:
    """Rename ``src`` to ``dst`` atomically.

    After it returns, ``dst`` names what ``src`` named; with ``durability="durable"`` (the
    default) both parent directories are fsynced, so the rename survives power loss.

    Args:
        src: the existing name.
        dst: the new name.
        overwrite: replace an existing ``dst`` (True) or fail if it exists (False).
        durability: ``"durable"`` or ``"atomic"`` (no fsync).
        sync_source: with ``"durable"``, also fsync the source's directory. False makes only
            the new name durable: after power loss the old name may be back as well. That
            is the maildir rule for moves out of a staging area (``tmp/`` to ``new/``),
            whose leftovers are cleaned up anyway, and it saves one flush.

    Returns:
        True when the rename is known durable; False with ``durability="atomic"`` or where
        the filesystem refuses directory fsync.

    Raises:
        TargetExistsError: ``overwrite`` is False and ``dst`` exists.
        CrossDeviceError: the names are on different filesystems (never fixed by copying).

    Example:
        >>> rename("report.tmp", "report.txt", overwrite=False)  # doctest: +SKIP
        True
    """
    fsync = check_durability(durability)
    src_s, dst_s = os.fspath(src), os.fspath(dst)
    if overwrite:
        replace_name(src_s, dst_s)
    else:
        rename_noreplace(src_s, dst_s)
    if not fsync:
        return False
    return sync_parents(dst_s, src_s) if sync_source else sync_parents(dst_s)


def link(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    durability: Durability = "durable",
) -> bool:
    """Give the file ``src`` a second name, ``dst`` (a hard link); never replaces ``dst``.

    After it returns both names exist and name the same file; with ``durability="durable"``
    the directory of ``dst`` is fsynced, so the new name survives power loss. A move made of
    `link`, then `remove` of the old name, can never lose the file in a power cut, not even
    when other processes fsync the old name's directory meanwhile: the new name is durable
    before the old one is gone. One `rename` across two directories cannot promise that on a
    filesystem without a metadata journal, where each directory reaches the disk on its own.

    Returns:
        True when the new name is known durable; False with ``durability="atomic"`` or where
        the filesystem refuses directory fsync.

    Raises:
        TargetExistsError: ``dst`` exists.
        FileNotFoundError: ``src`` does not exist.
        CrossDeviceError: the names are on different filesystems.
        UnsupportedOperationError: the filesystem has no hard links, or ``src`` is a folder.

    Example:
        >>> link("spool/new/42", "spool/cur/42")  # doctest: +SKIP
        True
    """
    fsync = check_durability(durability)
    src_s, dst_s = os.fspath(src), os.fspath(dst)
    try:
        _fs.link(src_s, dst_s)
    except OSError as error:
        if error.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            # EPERM also means the source is a folder: say which, not "no hard links".
            what = (
                "a folder has no hard links"
                if os.path.isdir(src_s)
                else "this filesystem has no hard links"
            )
            raise UnsupportedOperationError(error.errno, what, src_s, None, dst_s) from None
        raise translate_rename_error(error, src_s, dst_s) from None
    return sync_parents(dst_s) if fsync else False


def exchange(
    a: str | os.PathLike[str], b: str | os.PathLike[str], *, durability: Durability = "durable"
) -> bool:
    """Swap two names atomically: afterwards ``a`` names what ``b`` named, and the reverse.

    Works for files and directories alike (``renameat2(RENAME_EXCHANGE)``; ``renamex_np``
    with ``RENAME_SWAP`` on macOS).

    Returns:
        True when the swap is known durable (parent directories fsynced).

    Raises:
        UnsupportedOperationError: the kernel or filesystem cannot swap atomically.
        FileNotFoundError: either name does not exist.
        CrossDeviceError: the names are on different filesystems.
    """
    fsync = check_durability(durability)
    a_s, b_s = os.fspath(a), os.fspath(b)
    exchange_names(a_s, b_s)
    return sync_parents(a_s, b_s) if fsync else False


def make_dirs(path: str | os.PathLike[str], *, durability: Durability = "durable") -> list[str]:
    """Create a folder and its missing parents; with ``"durable"`` the new names survive power loss.

    A new folder's name lives in its parent, so each parent that gained one is fsynced (the
    parent of the outermost new folder included). Folders that exist are left alone, and a
    folder another process creates at the same moment is not an error.

    Args:
        path: the folder.
        durability: ``"durable"`` or ``"atomic"`` (no fsync).

    Returns:
        The folders this call created, outermost first (empty when ``path`` existed).

    Raises:
        FileExistsError: ``path`` or one of its parents exists and is not a folder.
    """
    fsync = check_durability(durability)
    missing: list[str] = []
    current = os.path.abspath(os.fspath(path))
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    created: list[str] = []
    for folder in reversed(missing):
        try:
            _fs.mkdir(folder)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
            continue
        created.append(folder)
    if fsync:
        for folder in created:
            _fs.fsync_directory(parent_of(folder))
    return created


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Make the content of an existing file durable (``F_FULLFSYNC`` on macOS).

    For files written by other means before they are published with `rename`; persistkit's
    own writers sync for you.

    Raises:
        SyncError: the fsync failed; do not publish the file (and do not retry: after a
            failed fsync a second success proves nothing).
        FileNotFoundError: the file does not exist.
    """
    name = os.fspath(path)
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _fs.fsync(fd, name)
    except OSError as error:
        raise SyncError(error.errno, f"fsync failed ({error.strerror})", name) from error
    finally:
        os.close(fd)


def sync_files(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Make the content of many existing files durable, sharing the flush where possible.

    For a checkpoint: files written earlier without an fsync (their changes covered by a
    journal meanwhile) must reach the disk before the journal is recycled. Per filesystem,
    one ``syncfs(2)`` where it is known to reach storage (ext4, XFS, btrfs...), which costs
    about one flush for all of them; elsewhere (FUSE never passes syncfs on) an fsync per
    file. Names are not covered: fsync the directories (`fsync_dir`) for renames and unlinks.

    Args:
        paths: the files; each must exist.

    Raises:
        SyncError: a flush failed; the files are not known to be durable (do not recycle
            what covers them, and do not retry the flush).
        FileNotFoundError: a file does not exist.

    Example:
        >>> sync_files(["items/a", "items/b"])  # doctest: +SKIP
    """
    by_device: dict[int, list[str]] = {}
    for path in paths:
        name = os.fspath(path)
        by_device.setdefault(os.stat(name).st_dev, []).append(name)
    for names in by_device.values():
        first = names[0]
        fd = os.open(first, os.O_RDONLY | os.O_CLOEXEC)
        try:
            shared = _capabilities.syncfs_reaches_storage(fd) and _fs.syncfs(fd, first)
        except OSError as error:
            raise SyncError(error.errno, f"syncfs failed ({error.strerror})", first) from error
        finally:
            os.close(fd)
        if not shared:
            for name in names:
                fsync_file(name)


def write_at(
    fd: int, data: bytes | bytearray | memoryview, offset: int, *, path: str | os.PathLike[str]
) -> None:
    r"""Overwrite (or extend) an open file in place at ``offset``, through core's seam.

    For the few files that are updated in place instead of replaced: an index or a log that
    its owner can check and rebuild. It is neither atomic nor durable: a crash of the process
    can stop between two calls and a power cut can keep any part of ``data`` (`fsync_file`
    makes it durable). Everything else is written with `write_bytes`, `atomic_write` or a
    `Batch`. Because it passes core's seam, `persistkit.core.testing` can crash or fail it.

    Args:
        fd: a descriptor open for writing.
        data: the bytes to write.
        offset: where in the file they go; past the end extends the file.
        path: the file's name, for crash reports and injected errors.

    Raises:
        OSError: the write failed (``ENOSPC`` when the file had to grow and the disk is
            full); part of ``data`` may have been written.

    Example:
        >>> write_at(fd, b"\x01", 64, path="index")  # doctest: +SKIP
    """
    _fs.pwrite_all(fd, data, offset, os.fspath(path))


def remove(
    path: str | os.PathLike[str], *, durability: Durability = "durable", missing_ok: bool = False
) -> bool:
    """Remove a file; with ``durability="durable"`` the removal survives power loss.

    Returns:
        True when a file was removed; False when it was missing and ``missing_ok`` is True.

    Raises:
        FileNotFoundError: the file is missing and ``missing_ok`` is False.
    """
    fsync = check_durability(durability)
    path_s = os.fspath(path)
    try:
        _fs.unlink(path_s)
    except FileNotFoundError:
        if missing_ok:
            return False
        raise
    if fsync:
        _fs.fsync_directory(parent_of(path_s))
    return True


def replace_atomic(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Move ``src`` over ``dst`` durably (python-atomicwrites' ``replace_atomic``)."""
    rename(src, dst, overwrite=True)


def move_atomic(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Move ``src`` to ``dst`` durably; fail if ``dst`` exists (atomicwrites' ``move_atomic``)."""
    rename(src, dst, overwrite=False)
