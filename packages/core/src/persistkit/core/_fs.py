"""The filesystem-call boundary.

Every call by which persistkit changes something on disk passes through one function here.
That single seam is what `persistkit.core.testing` hooks to crash a process at its k-th
filesystem call or to make a chosen call fail with a chosen errno; nothing else in persistkit
patches the OS.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable

from persistkit.core import _platform, _syscalls

Observer = Callable[[str, str], None]

_observer: Observer | None = None

# A directory fsync answered with one of these means "this filesystem does not do that"
# (some FUSE and network mounts), not "your data is lost".
_DIR_FSYNC_REFUSED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF})


def set_observer(observer: Observer | None) -> Observer | None:
    """Install the hook every filesystem call reports to; return the previous one."""
    global _observer
    previous, _observer = _observer, observer
    return previous


def checkpoint(call: str, path: str) -> None:
    """Report a filesystem call that is about to happen."""
    if _observer is not None:
        _observer(call, path)


def create_exclusive(path: str, mode: int = 0o666, *, flags: int = os.O_RDWR) -> int:
    """Create and open a new file (``flags`` say how); fail if the name exists."""
    checkpoint("create", path)
    return os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)


def create_anonymous(directory: str, mode: int = 0o666) -> int:
    """Create an unnamed file in ``directory`` (``O_TMPFILE``); it vanishes unless linked."""
    checkpoint("create", directory)
    return os.open(directory, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, mode)


def link_anonymous(fd: int, path: str) -> None:
    """Give an unnamed file its name; fail with EEXIST if the name exists."""
    checkpoint("link", path)
    _syscalls.link_open_file(fd, path)


def write_all(fd: int, data: bytes | bytearray | memoryview, path: str) -> None:
    """Write every byte of ``data`` to ``fd``, looping over short writes."""
    checkpoint("write", path)
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fchmod(fd: int, mode: int, path: str) -> None:
    """Set the permission bits of an open file."""
    checkpoint("chmod", path)
    os.fchmod(fd, mode)


def setxattr(fd: int, name: str, value: bytes, path: str) -> None:
    """Set an extended attribute on an open file."""
    checkpoint("setxattr", path)
    if hasattr(os, "setxattr"):
        os.setxattr(fd, name, value)
    else:  # pragma: no cover - macOS only
        import xattr  # noqa: PLC0415 - only macOS needs the package

        xattr.setxattr(fd, name, value)


def fsync(fd: int, path: str) -> None:
    """Flush a file's data and metadata to stable storage.

    On macOS ``fsync`` only reaches the drive's cache; ``F_FULLFSYNC`` reaches the platter
    (fsync(2) on macOS says so), so it is used where the filesystem accepts it.
    """
    checkpoint("fsync", path)
    if not _full_fsync(fd):
        os.fsync(fd)


def _full_fsync(fd: int) -> bool:
    """Flush ``fd`` past the drive's cache with ``F_FULLFSYNC`` where that exists.

    Returns:
        True when the flush was done; False on systems without the call and on filesystems
        that refuse it, where the caller falls back to its plain flush.
    """
    if not _platform.IS_MACOS:
        return False
    try:  # pragma: no cover - macOS only
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)  # type: ignore[attr-defined] # macOS-only name
    except OSError as error:  # pragma: no cover - macOS only
        if error.errno not in (errno.ENOTSUP, errno.EINVAL):
            raise
        return False
    return True  # pragma: no cover - macOS only


def fsync_directory(path: str) -> bool:
    """Fsync a directory so the names in it survive power loss.

    Returns:
        True when the directory was synced; False when the filesystem refused directory
        fsync, in which case renames in it are atomic but not known to be durable.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # Reported inside the try, so a fault injected here is handled like the real call's.
        checkpoint("fsync_dir", path)
        os.fsync(fd)
    except OSError as error:
        if error.errno in _DIR_FSYNC_REFUSED:
            return False
        raise
    finally:
        os.close(fd)
    return True


def syncfs(fd: int, path: str) -> bool:
    """Flush the whole filesystem holding ``fd``; return False where syncfs is unavailable."""
    checkpoint("syncfs", path)
    return _syscalls.syncfs(fd)


def replace(src: str, dst: str) -> None:
    """Rename ``src`` over ``dst``."""
    checkpoint("rename", dst)
    os.replace(src, dst)


def rename_flags(src: str, dst: str, flags: int) -> None:
    """Rename with renameat2 flags (``RENAME_NOREPLACE``/``RENAME_EXCHANGE``)."""
    checkpoint("renameat2", dst)
    _syscalls.renameat2(src, dst, flags)


def link(src: str, dst: str) -> None:
    """Create the hard link ``dst`` to ``src``; fail if ``dst`` exists."""
    checkpoint("link", dst)
    os.link(src, dst, follow_symlinks=False)


def unlink(path: str) -> None:
    """Remove a file name."""
    checkpoint("unlink", path)
    os.unlink(path)


def mkdir(path: str, mode: int = 0o777) -> None:
    """Create a directory (the umask applies to ``mode``)."""
    checkpoint("mkdir", path)
    os.mkdir(path, mode)


def rmdir(path: str) -> None:
    """Remove an empty directory."""
    checkpoint("rmdir", path)
    os.rmdir(path)


def setxattr_path(path: str, name: str, value: bytes) -> None:
    """Set an extended attribute on a file by name (used only to probe a mount)."""
    if hasattr(os, "setxattr"):
        os.setxattr(path, name, value, follow_symlinks=False)
    else:  # pragma: no cover - macOS only
        import xattr  # noqa: PLC0415 - only macOS needs the package

        xattr.setxattr(path, name, value, symlink=True)


def open_or_create(path: str, mode: int = 0o666) -> int:
    """Open a file for reading and writing, creating it if missing (not exclusive).

    For files several processes open at once, where whoever comes first creates it. Only the
    creation is reported as a filesystem call: opening an existing file changes nothing.
    """
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        pass
    checkpoint("create", path)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int, path: str) -> None:
    """Write every byte of ``data`` at ``offset`` without moving the file position."""
    checkpoint("write", path)
    written = os.pwrite(fd, data, offset)
    if written == (data.nbytes if isinstance(data, memoryview) else len(data)):
        return
    view = memoryview(data).cast("B")[written:]
    offset += written
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def fdatasync(fd: int, path: str) -> None:
    """Flush a file's data, and the metadata needed to read it back, to stable storage.

    Cheaper than `fsync` when only data changed in place (no size or block allocation
    change): fdatasync(2) then skips the inode. macOS has no fdatasync and its fsync stops at
    the drive's cache, so there it is ``F_FULLFSYNC``, as in `fsync`.
    """
    checkpoint("fdatasync", path)
    if _full_fsync(fd):
        return
    if _platform.IS_MACOS:  # pragma: no cover - macOS has no fdatasync
        os.fsync(fd)
    else:
        os.fdatasync(fd)
