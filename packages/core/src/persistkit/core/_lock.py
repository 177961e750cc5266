"""A cross-process lock on a file (flock), reentrant within a thread, with a timeout."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from types import TracebackType

from persistkit.core.errors import LockTimeoutError

_MAX_BACKOFF = 0.05

_registry: dict[tuple[str, float | None, bool, bool], FileLock] = {}
_registry_guard = threading.Lock()


class FileLock:
    """An exclusive (or shared) lock held on a lock file, across processes and threads.

    Built on ``flock(2)``: the kernel releases the lock when the holding process dies, so a
    crashed holder never leaves a stale lock behind. The lock file itself is created if
    missing and never deleted (deleting lock files opens a race where two processes lock two
    different files of the same name).

    The same `FileLock` object is reentrant in the thread that holds it; other threads using
    the object wait for it. A child process made by ``fork`` does not inherit a held lock: it
    starts unlocked and locks on its own.

    The lock file stays open between acquisitions (one descriptor per object, so locking
    costs one ``flock`` call); `close` releases it, as does garbage collection.

    flock(2) locks belong to open file descriptions, so two `FileLock` objects on one file in
    one process exclude each other even in one thread; code that may take the same lock from
    several places should share one object through `for_path`.

    A reader that must not write (a store on read-only media, an inspection command) uses
    ``create=False``: the lock file is opened read-only where it exists (flock works on a
    read-only descriptor and on a read-only mount), and where it does not exist no writer has
    ever locked it, so the lock is held without a file and nothing is created.

    Args:
        path: the lock file.
        timeout: seconds to wait by default in `acquire`; None waits forever.
        shared: take a shared (reader) lock instead of an exclusive one.
        create: create the lock file if it is missing (the default, for writers).

    Example:
        >>> with FileLock("jobs.lock", timeout=5):  # doctest: +SKIP
        ...     update_the_files()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        shared: bool = False,
        create: bool = True,
    ) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        self._create = create
        self._reset()

    @classmethod
    def for_path(
        cls,
        path: str | os.PathLike[str],
        *,
        timeout: float | None = None,
        shared: bool = False,
        create: bool = True,
    ) -> FileLock:
        """Return this process's one lock object for ``path`` and these options.

        Every caller in the process that asks for the same lock file (by real path) and the
        same options gets the same object, so the lock stays reentrant per thread instead of
        two objects blocking each other. The objects live as long as the process.

        Example:
            >>> FileLock.for_path("jobs.lock") is FileLock.for_path("./jobs.lock")
            True
        """
        key = (os.path.realpath(path), timeout, shared, create)
        with _registry_guard:
            lock = _registry.get(key)
            if lock is None:
                lock = _registry[key] = cls(path, timeout=timeout, shared=shared, create=create)
            return lock

    def _reset(self) -> None:
        self._guard = threading.RLock()
        self._depth = 0
        self._fd = -1
        self._pid = os.getpid()

    def _forget_parent(self) -> None:
        # A forked child shares the parent's open file description: unlocking it here would
        # release the parent's lock. Closing our copy is safe; then start afresh.
        if self._fd >= 0:
            os.close(self._fd)
        self._reset()

    @property
    def is_locked(self) -> bool:
        """Whether this object holds the lock in this process."""
        return self._pid == os.getpid() and self._depth > 0

    def acquire(self, timeout: float | None = -1.0) -> FileLock:
        """Take the lock, waiting at most ``timeout`` seconds.

        Args:
            timeout: seconds to wait; None waits forever, 0 tries once, and a negative value
                (the default) uses the timeout given to the constructor.

        Returns:
            This lock, so ``with lock.acquire(timeout=1):`` works.

        Raises:
            LockTimeoutError: the lock was not obtained in time.
        """
        if self._pid != os.getpid():
            self._forget_parent()
        wait = self.timeout if timeout is not None and timeout < 0 else timeout
        deadline = None if wait is None else time.monotonic() + wait
        if not self._guard.acquire(timeout=-1 if wait is None else wait):
            raise LockTimeoutError(f"timed out after {wait} s waiting for {self.path!r}")
        try:
            if self._depth == 0:
                self._lock_file(deadline, wait)
            self._depth += 1
        except BaseException:
            self._guard.release()
            raise
        return self

    def _lock_file(self, deadline: float | None, wait: float | None) -> None:
        if self._fd < 0:
            if self._create:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            else:
                try:
                    self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    return  # no writer ever locked it: nothing to wait for, nothing to create
        if deadline is None:
            fcntl.flock(self._fd, self._operation)
        else:
            self._poll(self._fd, deadline, wait)

    def _poll(self, fd: int, deadline: float, wait: float | None) -> None:
        # flock(2) has no timeout; polling with capped exponential backoff keeps the lock
        # usable from any thread, which a SIGALRM-based timeout would not.
        backoff = 0.001
        while True:
            try:
                fcntl.flock(fd, self._operation | fcntl.LOCK_NB)
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LockTimeoutError(
                        f"timed out after {wait} s waiting for {self.path!r}"
                    ) from None
                time.sleep(min(backoff, remaining))
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                return

    def release(self) -> None:
        """Release one level of the lock; the file lock goes when the outermost level does.

        Raises:
            RuntimeError: this thread does not hold the lock.
        """
        if not self.is_locked:
            raise RuntimeError(f"{self.path!r} is not locked by this process")
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd >= 0:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._guard.release()

    def close(self) -> None:
        """Close the lock file; the next `acquire` opens it again.

        Raises:
            RuntimeError: the lock is held.
        """
        if self.is_locked:
            raise RuntimeError(f"{self.path!r} is locked; release it before closing")
        if self._pid != os.getpid():
            self._forget_parent()
        elif self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd >= 0 and getattr(self, "_pid", None) == os.getpid():
            # Also drops a lock still held by an abandoned object. The descriptor is gone
            # regardless of what close says (a FUSE mount already unmounted gives ENOTCONN),
            # and a finalizer has nobody to tell.
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "locked" if self.is_locked else "unlocked"
        return f"<FileLock {self.path!r} {state}>"
