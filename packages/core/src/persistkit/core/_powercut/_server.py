"""The FUSE server: one mount of a `Model`, served until a power cut or a stop.

It runs in a process of its own (forked by the manager), so nothing a test does to its own
processes can wedge it, and killing it is the power cut: the kernel aborts the connection,
every process still using the mount gets ``ENOTCONN``, and the manager detaches the mount.

libfuse runs single-threaded here: one request at a time keeps the model's history in the
order the kernel delivered it, and a Python server gains nothing from more threads. A second
thread answers the manager (cut, sync, snapshot) under the same lock.

Facts of FUSE this server lives with (Linux 6.x, libfuse 3.14):
- ``syncfs(2)``/``sync(2)`` never reach a FUSE server (the kernel sends ``FUSE_SYNCFS`` to
  virtiofs only), so on this filesystem they make nothing durable, as on sshfs or gcsfuse.
- ``O_TMPFILE`` fails with ``EOPNOTSUPP``: libfuse's high-level API has no tmpfile call.
- ``renameat2`` flags arrive in the rename request; mfusepy 3.1 drops them, so `_Fuse`
  passes them on (``RENAME_NOREPLACE`` and ``RENAME_EXCHANGE`` work; ``RENAME_WHITEOUT`` is
  refused with ``EINVAL``).
- Without ``writeback_cache`` every ``write(2)`` reaches the server before it returns;
  shared writable ``mmap`` pages arrive on writeback, ``msync`` or ``fsync``.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import socket
import stat
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import mfusepy

from persistkit.core._powercut import _wire
from persistkit.core._powercut._model import Model

_UTIME_NOW = (1 << 30) - 1
_UTIME_OMIT = (1 << 30) - 2
_MNT_DETACH = 2

F = TypeVar("F", bound=Callable[..., Any])


def _serialised(method: F) -> F:
    """Run an operation under the model's lock; after a cut, fail every one with EIO."""

    @functools.wraps(method)
    def run(self: Operations, *args: Any) -> Any:
        with self.mutex:
            if self.dead:
                raise OSError(errno.EIO, "the power was cut")
            return method(self, *args)

    return run  # type: ignore[return-value]  # same signature, wrapped


class Operations(mfusepy.Operations):  # type: ignore[misc]  # mfusepy is untyped
    """The filesystem calls, each applied to the model."""

    use_ns = True

    def __init__(self, model: Model, on_ready: Callable[[], None]) -> None:
        self.model = model
        self.mutex = threading.Lock()
        self.dead = False
        self.handles: dict[int, int] = {}
        self.next_handle = 1
        self._on_ready = on_ready

    def _handle(self, ino: int) -> int:
        self.model.open(ino)
        handle = self.next_handle
        self.next_handle += 1
        self.handles[handle] = ino
        return handle

    def _ino(self, path: str | None, fh: int | None = None) -> int:
        if fh is not None and fh in self.handles:
            return self.handles[fh]
        if path is None:
            raise OSError(errno.EBADF, "no path and no open file")
        return self.model.resolve(path)

    def init_with_config(self, conn: Any, config: Any) -> None:
        """Ask libfuse for no paths where an open file is at hand; say the mount is up."""
        if config is not None:
            config.nullpath_ok = 1
        self._on_ready()

    @_serialised
    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, int]:
        """Stat by path, or by open file (which also works once the file is unlinked)."""
        return self.model.stat(self._ino(path, fh))

    @_serialised
    def access(self, path: str, amode: int) -> int:
        """Root may do anything; only existence is checked."""
        self.model.resolve(path)
        return 0

    @_serialised
    def statfs(self, path: str) -> dict[str, int]:
        """Report a roomy filesystem of 4 KiB blocks."""
        files = len(self.model.nodes)
        total = 1 << 24
        return {
            "f_bsize": 4096,
            "f_frsize": 4096,
            "f_blocks": total,
            "f_bfree": total // 2,
            "f_bavail": total // 2,
            "f_files": total,
            "f_ffree": total - files,
            "f_favail": total - files,
            "f_namemax": 255,
        }

    @_serialised
    def opendir(self, path: str) -> int:
        """Open a directory handle."""
        ino = self.model.resolve(path)
        if not self.model.nodes[ino].is_dir:
            raise OSError(errno.ENOTDIR, path)
        return self._handle(ino)

    @_serialised
    def readdir(self, path: str | None, fh: int) -> list[Any]:
        """List a directory, with inode numbers and types (``d_ino``, ``d_type``)."""
        entries: list[Any] = [".", ".."]
        for name, ino, mode in self.model.entries(self._ino(path, fh)):
            entries.append((name, {"st_ino": ino, "st_mode": mode}, 0))
        return entries

    @_serialised
    def releasedir(self, path: str | None, fh: int) -> int:
        """Close a directory handle."""
        self.model.close(self.handles.pop(fh))
        return 0

    @_serialised
    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        """Make the directory's entries durable."""
        self.model.fsync_dir(self._ino(path, fh))
        return 0

    @_serialised
    def mkdir(self, path: str, mode: int) -> int:
        """Create a directory."""
        uid, gid, _pid = mfusepy.fuse_get_context()
        self.model.create(path, stat.S_IFDIR | stat.S_IMODE(mode), uid, gid)
        return 0

    @_serialised
    def rmdir(self, path: str) -> int:
        """Remove an empty directory."""
        self.model.rmdir(path)
        return 0

    @_serialised
    def create(self, path: str, mode: int, flags: int) -> int:
        """Create and open a regular file."""
        uid, gid, _pid = mfusepy.fuse_get_context()
        ino = self.model.create(path, stat.S_IFREG | stat.S_IMODE(mode), uid, gid)
        return self._handle(ino)

    @_serialised
    def open(self, path: str, flags: int) -> int:
        """Open an existing file (``O_TRUNC`` truncates it)."""
        ino = self.model.resolve(path)
        if flags & os.O_TRUNC and flags & os.O_ACCMODE != os.O_RDONLY:
            self.model.truncate(ino, 0)
        return self._handle(ino)

    @_serialised
    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        """Read from an open file."""
        return self.model.read(self._ino(path, fh), size, offset)

    @_serialised
    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        """Write to an open file (not durable until it is fsynced)."""
        return self.model.write(self._ino(path, fh), offset, data)

    @_serialised
    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        """Set a file's size (not durable until it is fsynced)."""
        self.model.truncate(self._ino(path, fh), length)
        return 0

    @_serialised
    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        """Reserve space: only plain mode 0, which may grow the file."""
        if mode != 0:
            raise OSError(errno.EOPNOTSUPP, "only mode 0 of fallocate")
        ino = self._ino(path, fh)
        if offset + size > len(self.model.nodes[ino].data):
            self.model.truncate(ino, offset + size)
        return 0

    @_serialised
    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        """Make the file's data and attributes durable (``fdatasync`` does the same here)."""
        self.model.fsync(self._ino(path, fh))
        return 0

    @_serialised
    def flush(self, path: str | None, fh: int) -> int:
        """Closing a descriptor flushes nothing to disk."""
        return 0

    @_serialised
    def release(self, path: str | None, fh: int) -> int:
        """Close a file handle."""
        self.model.close(self.handles.pop(fh))
        return 0

    @_serialised
    def unlink(self, path: str) -> int:
        """Remove a name."""
        self.model.unlink(path)
        return 0

    @_serialised
    def symlink(self, target: str, source: str) -> int:
        """Create the symlink ``target`` holding ``source``."""
        uid, gid, _pid = mfusepy.fuse_get_context()
        self.model.create(target, stat.S_IFLNK | 0o777, uid, gid, source)
        return 0

    @_serialised
    def readlink(self, path: str) -> str:
        """Return what a symlink holds."""
        return self.model.nodes[self.model.resolve(path)].target

    @_serialised
    def link(self, target: str, source: str) -> int:
        """Create the hard link ``target`` to ``source``."""
        self.model.link(source, target)
        return 0

    @_serialised
    def rename(self, old: str, new: str, flags: int = 0) -> int:
        """Rename, with renameat2's NOREPLACE and EXCHANGE flags."""
        self.model.rename(old, new, flags)
        return 0

    @_serialised
    def chmod(self, path: str | None, mode: int, fh: int | None = None) -> int:
        """Change permission bits."""
        self.model.chmod(self._ino(path, fh), mode)
        return 0

    @_serialised
    def chown(self, path: str | None, uid: int, gid: int, fh: int | None = None) -> int:
        """Change the owner."""
        self.model.chown(self._ino(path, fh), uid, gid)
        return 0

    @_serialised
    def utimens(
        self, path: str | None, times: tuple[int | None, int | None], fh: int | None = None
    ) -> int:
        """Set access and modification times."""
        self.model.utimens(self._ino(path, fh), *times)
        return 0

    @_serialised
    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        """Set an extended attribute (durable with the file's next fsync)."""
        self.model.setxattr(self.model.resolve(path), name, value, options)
        return 0

    @_serialised
    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        """Read an extended attribute."""
        return self.model.getxattr(self.model.resolve(path), name)

    @_serialised
    def listxattr(self, path: str) -> list[str]:
        """List extended attribute names."""
        return self.model.listxattr(self.model.resolve(path))

    @_serialised
    def removexattr(self, path: str, name: str) -> int:
        """Remove an extended attribute."""
        self.model.removexattr(self.model.resolve(path), name)
        return 0


def _decode(fuse: Any, path: bytes | None) -> str | None:
    return None if path is None else path.decode(fuse.encoding, fuse.errors)


def _fh(fip: Any) -> int | None:
    return fip.contents.fh if fip else None


def _time(spec: Any, now: int) -> int | None:
    if spec.tv_nsec == _UTIME_OMIT:
        return None
    if spec.tv_nsec == _UTIME_NOW:
        return now
    return int(spec.tv_sec) * 1_000_000_000 + int(spec.tv_nsec)


class _Fuse(mfusepy.FUSE):  # type: ignore[misc]  # mfusepy is untyped
    """mfusepy's FUSE, passing on what its 3.1 wrappers drop.

    Its wrappers drop the renameat2 flags (a NOREPLACE rename would silently replace),
    the open file of ``fchmod``/``fchown``/``ftruncate``/``futimens`` (needed for unlinked
    files), and read ``UTIME_NOW``/``UTIME_OMIT`` as times.
    """

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        return int(self.operations.rename(_decode(self, old), _decode(self, new), flags))

    def chmod_fuse_3(self, path: bytes | None, mode: int, fip: Any) -> int:
        return int(self.operations.chmod(_decode(self, path), mode, _fh(fip)))

    def chown_fuse_3(self, path: bytes | None, uid: int, gid: int, fip: Any) -> int:
        # uid_t/gid_t -1 ("leave it") arrives as the unsigned maximum.
        uid = -1 if uid == 0xFFFFFFFF else uid
        gid = -1 if gid == 0xFFFFFFFF else gid
        return int(self.operations.chown(_decode(self, path), uid, gid, _fh(fip)))

    def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
        return int(self.operations.truncate(_decode(self, path), length, _fh(fip)))

    def utimens_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
        now = time.time_ns()
        if buf:
            times = (_time(buf.contents.actime, now), _time(buf.contents.modtime, now))
        else:
            times = (now, now)
        return int(self.operations.utimens(_decode(self, path), times, _fh(fip)))


def serve(model: Model, mountpoint: str, channel: socket.socket, options: dict[str, Any]) -> None:
    """Mount ``model`` at ``mountpoint`` and serve it until the manager ends this process.

    Sends ``("ready",)`` on ``channel`` once the kernel has initialised the mount, then
    answers the manager's requests: ``("cut", [(mode, seed), ...])``, ``("sync",)``,
    ``("snapshot",)``. If the manager goes away, detaches the mount and exits.
    """

    def ready() -> None:
        _wire.send(channel, ("ready",))

    operations = Operations(model, ready)
    thread = threading.Thread(
        target=_answer_manager, args=(operations, channel, mountpoint), daemon=True
    )
    thread.start()
    _Fuse(
        operations,
        mountpoint,
        foreground=True,
        nothreads=True,
        hard_remove=True,
        use_ino=True,
        **options,
    )


def _answer_manager(operations: Operations, channel: socket.socket, mountpoint: str) -> None:
    try:
        while True:
            request = _wire.receive(channel)
            assert isinstance(request, tuple)
            with operations.mutex:
                _wire.send(channel, _answer(operations, request))
    except BaseException:  # whatever broke the channel, leave no mount behind
        traceback.print_exc()
        detach(mountpoint)
        os._exit(0)


def _answer(operations: Operations, request: tuple[Any, ...]) -> tuple[Any, ...]:
    command = request[0]
    model = operations.model
    if command == "cut":
        # One frozen moment, several crash states: strict, and random ones by seed.
        states = [model.crash(mode, seed) for mode, seed in request[1]]
        operations.dead = True
        return ("ok", [state for state, _ in states], [report for _, report in states])
    if command == "sync":
        model.sync_all()
        return ("ok",)
    if command == "snapshot":
        return ("ok", model.snapshot())
    if command == "pending":
        return ("ok", model.pending_count())
    return ("error", f"unknown request {command!r}")


def detach(mountpoint: str) -> None:
    """Detach a (possibly dead) FUSE mount at once, as ``umount -l`` does."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(os.fsencode(mountpoint), _MNT_DETACH) == 0:
        return
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOENT):
        return  # nothing mounted there any more
    # Without root, the setuid helper of libfuse may unmount what this user mounted.
    subprocess.run(
        ["fusermount3", "-u", "-z", "-q", mountpoint],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
