"""renameat2, syncfs and macOS renamex_np, bound through cffi in ABI mode (no compiler).

Where the C library lacks the ``renameat2`` wrapper (glibc before 2.28, some musl builds),
the raw ``syscall(2)`` is used with the architecture's number. Callers see `OSError` with the
kernel's errno, or `RenameFlagsUnavailableError` when no route to the call exists at all.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from cffi import FFI

from persistkit.core import _platform

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
# renamex_np(2) flags on macOS.
_RENAME_SWAP = 0x2
_RENAME_EXCL = 0x4
_AT_FDCWD = -100

# From the kernel's syscall tables (arch/*/entry/syscalls, include/uapi/asm-generic/unistd.h).
_SYS_RENAMEAT2 = {
    "x86_64": 316,
    "amd64": 316,
    "aarch64": 276,
    "arm64": 276,
    "riscv64": 276,
    "i386": 353,
    "i686": 353,
    "armv7l": 382,
    "ppc64le": 357,
    "ppc64": 357,
    "s390x": 347,
}

_ffi = FFI()
_ffi.cdef(
    """
    int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                  unsigned int flags);
    long syscall(long number, ...);
    int syncfs(int fd);
    int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags);
    int renamex_np(const char *from, const char *to, unsigned int flags);
    int fstatfs(int fd, void *buf);
    """
)
_libc: Any = _ffi.dlopen(None)


class RenameFlagsUnavailableError(Exception):
    """No renameat2 (or renamex_np) is reachable on this system."""


def _symbol(name: str) -> Any:
    try:
        return getattr(_libc, name)
    except AttributeError:
        return None


_renameat2 = _symbol("renameat2")
_renamex_np = _symbol("renamex_np")
_syncfs = _symbol("syncfs")
_linkat = _symbol("linkat")
_AT_SYMLINK_FOLLOW = 0x400
_syscall = _symbol("syscall")
_fstatfs = _symbol("fstatfs") if _platform.IS_LINUX else None
_sys_renameat2 = _SYS_RENAMEAT2.get(platform.machine().lower()) if _platform.IS_LINUX else None


def _raise_errno(src: str, dst: str) -> None:
    code = _ffi.errno
    raise OSError(code, os.strerror(code), src, None, dst)


def renameat2(src: str, dst: str, flags: int) -> None:
    """Rename ``src`` to ``dst`` with ``RENAME_NOREPLACE`` or ``RENAME_EXCHANGE``.

    Raises:
        OSError: with the kernel's errno (EEXIST, EINVAL for an unsupported flag, ENOSYS...).
        RenameFlagsUnavailableError: no wrapper and no syscall number for this machine.
    """
    src_b, dst_b = os.fsencode(src), os.fsencode(dst)
    if _renameat2 is not None:
        result = _renameat2(_AT_FDCWD, src_b, _AT_FDCWD, dst_b, flags)
    elif _renamex_np is not None:  # pragma: no cover - macOS only
        mac_flags = (_RENAME_EXCL if flags & RENAME_NOREPLACE else 0) | (
            _RENAME_SWAP if flags & RENAME_EXCHANGE else 0
        )
        result = _renamex_np(src_b, dst_b, mac_flags)
    elif _syscall is not None and _sys_renameat2 is not None:  # pragma: no cover - old libc
        result = _syscall(
            _ffi.cast("long", _sys_renameat2),
            _ffi.cast("int", _AT_FDCWD),
            _ffi.new("char[]", src_b),
            _ffi.cast("int", _AT_FDCWD),
            _ffi.new("char[]", dst_b),
            _ffi.cast("unsigned int", flags),
        )
    else:  # pragma: no cover - exotic platforms
        raise RenameFlagsUnavailableError("renameat2 is not available on this system")
    if result != 0:
        _raise_errno(src, dst)


def syncfs_available() -> bool:
    """Whether the C library has ``syncfs``."""
    return _syncfs is not None


def syncfs(fd: int) -> bool:
    """Flush the filesystem holding ``fd``; return False where the call does not exist.

    Since Linux 5.8, syncfs reports writeback errors of the filesystem, so a failure raises.
    """
    if _syncfs is None:  # pragma: no cover - macOS and old libc
        return False
    if _syncfs(fd) != 0:
        code = _ffi.errno
        raise OSError(code, os.strerror(code))
    return True


def filesystem_magic(fd: int) -> int | None:
    """Return the ``f_type`` of the filesystem holding ``fd`` (statfs(2)); None off Linux.

    ``f_type`` is the first field of ``struct statfs``: a ``long`` on most architectures, an
    ``unsigned int`` on s390x; every magic number fits in 32 bits, so on little-endian
    machines the first four bytes hold it either way.
    """
    if _fstatfs is None:  # pragma: no cover - macOS
        return None
    buffer = _ffi.new("char[]", 512)  # struct statfs is 120 bytes on 64-bit Linux
    if _fstatfs(fd, buffer) != 0:
        code = _ffi.errno
        raise OSError(code, os.strerror(code))
    if sys.byteorder == "little" or platform.machine() == "s390x":
        return int(_ffi.cast("unsigned int *", buffer)[0])
    return int(_ffi.cast("unsigned long *", buffer)[0]) & 0xFFFFFFFF  # pragma: no cover


def link_open_file(fd: int, dst: str) -> None:
    """Give the unnamed file open as ``fd`` (from ``O_TMPFILE``) the name ``dst``.

    ``linkat`` through ``/proc/self/fd`` with ``AT_SYMLINK_FOLLOW`` works without privileges
    (``AT_EMPTY_PATH`` needs CAP_DAC_READ_SEARCH); open(2) documents the pattern. Python's
    ``os.link`` cannot do it: without a directory descriptor it calls link(2), which does not
    follow the magic link. Fails with EEXIST if ``dst`` exists, so it is create-only.
    """
    src = f"/proc/self/fd/{fd}".encode()
    if _linkat(_AT_FDCWD, src, _AT_FDCWD, os.fsencode(dst), _AT_SYMLINK_FOLLOW) != 0:
        code = _ffi.errno
        raise OSError(code, os.strerror(code), None, None, dst)


ANONYMOUS_FILES = _platform.IS_LINUX and _linkat is not None and os.path.isdir("/proc/self/fd")
"""Whether unnamed files (``O_TMPFILE``) can be created here and linked in by name."""
