"""Atomic, durable single-file writes: `AtomicWriter`, `atomic_write` and the one-shot writers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, BinaryIO, Literal, TextIO, overload

from persistkit.core import _fs
from persistkit.core._durability import Durability, check_durability
from persistkit.core._temp import StagedFile, WriteResult, check_permissions, stage
from persistkit.core.errors import InvalidArgumentError

TextMode = Literal["w", "wt", "tw", "w+", "w+t", "wt+"]
BinaryMode = Literal["wb", "bw", "w+b", "wb+"]
PathArg = str | os.PathLike[str]


class AtomicWriter:
    """Write a file so that readers see either the old content or the new, never a mix.

    The steps are methods, as in python-atomicwrites, so a subclass can change one of them:
    `get_fileobject` makes the temporary file, `sync` makes it durable, `commit` publishes it
    and `rollback` throws it away.

    Guarantees once the ``with`` block of `open` exits normally: the target holds exactly the
    new content; with ``durability="durable"`` it survives power loss. When the block raises,
    the target is untouched and the temporary file is removed.

    Args:
        path: the file to write. A symlink is followed (the link stays, the file it points to
            is replaced) unless ``follow_symlinks`` is False.
        mode: a write mode, ``"w"`` (text) or ``"wb"`` (binary), optionally with ``+``.
        overwrite: replace an existing file (True) or raise `TargetExistsError` if it exists.
            python-atomicwrites defaults to False here; persistkit defaults to True.
        durability: ``"durable"`` (fsync file and directory) or ``"atomic"`` (no fsync).
        follow_symlinks: see ``path``.
        xattrs: extended attributes set on the file before it is published.
        permissions: the file's permission bits, exactly (no umask), set before the fsync;
            by default a replaced file's mode is kept and a new file gets
            ``0o666 & ~umask``.
        **open_kwargs: passed to `open` (``encoding``, ``newline``, ``errors``, ``buffering``).

    Attributes:
        result: the `WriteResult` of the last commit, or None before one.

    Example:
        >>> with AtomicWriter("notes.txt").open() as f:  # doctest: +SKIP
        ...     f.write("hello")
    """

    def __init__(
        self,
        path: PathArg,
        mode: str = "w",
        overwrite: bool = True,
        *,
        durability: Durability = "durable",
        follow_symlinks: bool = True,
        xattrs: Mapping[str, bytes] | None = None,
        permissions: int | None = None,
        **open_kwargs: Any,
    ) -> None:
        if "a" in mode:
            raise InvalidArgumentError(
                "appending cannot be atomic; read the old content and write it all again"
            )
        if "x" in mode:
            raise InvalidArgumentError("use overwrite=False instead of mode 'x'")
        if "w" not in mode or "r" in mode:
            raise InvalidArgumentError(f"an atomic writer can only write, not mode {mode!r}")
        self._fsync = check_durability(durability)
        self._permissions = check_permissions(permissions)
        self._path = path
        self._mode = mode
        self._overwrite = overwrite
        self._follow_symlinks = follow_symlinks
        self._xattrs = xattrs
        self._open_kwargs = open_kwargs
        self._staged: StagedFile | None = None
        self.result: WriteResult | None = None

    def open(self) -> contextlib.AbstractContextManager[IO[Any]]:
        """Open the temporary file; publish it when the ``with`` block exits normally."""
        return self._open(self.get_fileobject)

    @contextlib.contextmanager
    def _open(self, get_fileobject: Callable[..., IO[Any]]) -> Iterator[IO[Any]]:
        f: IO[Any] | None = None
        success = False
        try:
            with get_fileobject(**self._open_kwargs) as f:
                yield f
                self.sync(f)
            self.commit(f)
            success = True
        finally:
            if not success and f is not None:
                with contextlib.suppress(Exception):
                    self.rollback(f)
            if self._staged is not None:
                self._staged.close()

    def get_fileobject(
        self,
        suffix: str = "",
        prefix: str = "",
        dir: str | None = None,
        **kwargs: Any,
    ) -> IO[Any]:
        """Create the temporary file and return it opened in the writer's mode.

        Args:
            suffix: accepted for python-atomicwrites compatibility and ignored: temporary
                names follow one pattern so `sweep` can recognise them.
            prefix: likewise accepted and ignored.
            dir: where to create the temp; by default the target's own directory, the only
                place from which the final rename cannot fail with EXDEV.
            **kwargs: passed to `open`.
        """
        del suffix, prefix
        staged = stage(
            self._path,
            overwrite=self._overwrite,
            follow_symlinks=self._follow_symlinks,
            directory=dir,
            xattrs=self._xattrs,
            permissions=self._permissions,
        )
        self._staged = staged
        try:
            # The file object gets its own descriptor; the staged one keeps the flock that
            # tells `sweep` this writer is alive until the rename is done.
            return open(staged.label, self._mode, opener=lambda _p, _f: os.dup(staged.fd), **kwargs)
        except BaseException:
            staged.discard()
            raise

    def sync(self, f: IO[Any]) -> None:
        """Flush Python's buffers and, when durable, fsync the file (an error aborts)."""
        staged = self._require_staged()
        # The caller's writes went through Python's file object, past the seam; report them
        # here so crash tests can stop between the content and its fsync.
        _fs.checkpoint("write", staged.label)
        f.flush()
        if self._fsync:
            staged.sync(f.fileno())

    def commit(self, f: IO[Any]) -> None:
        """Publish the temporary file onto the target with one rename."""
        del f
        self.result = self._require_staged().publish(sync_directory=self._fsync)

    def rollback(self, f: IO[Any]) -> None:
        """Remove the temporary file; the target keeps its old content."""
        del f
        self._require_staged().discard()

    def _require_staged(self) -> StagedFile:
        if self._staged is None:
            raise RuntimeError("get_fileobject() has not been called")
        return self._staged


@overload
def atomic_write(
    path: PathArg,
    mode: TextMode = "w",
    *,
    overwrite: bool = True,
    durability: Durability = "durable",
    follow_symlinks: bool = True,
    xattrs: Mapping[str, bytes] | None = None,
    permissions: int | None = None,
    writer_cls: type[AtomicWriter] = AtomicWriter,
    **open_kwargs: Any,
) -> contextlib.AbstractContextManager[TextIO]: ...
@overload
def atomic_write(
    path: PathArg,
    mode: BinaryMode,
    *,
    overwrite: bool = True,
    durability: Durability = "durable",
    follow_symlinks: bool = True,
    xattrs: Mapping[str, bytes] | None = None,
    permissions: int | None = None,
    writer_cls: type[AtomicWriter] = AtomicWriter,
    **open_kwargs: Any,
) -> contextlib.AbstractContextManager[BinaryIO]: ...
@overload
def atomic_write(
    path: PathArg,
    mode: str,
    *,
    overwrite: bool = True,
    durability: Durability = "durable",
    follow_symlinks: bool = True,
    xattrs: Mapping[str, bytes] | None = None,
    permissions: int | None = None,
    writer_cls: type[AtomicWriter] = AtomicWriter,
    **open_kwargs: Any,
) -> contextlib.AbstractContextManager[IO[Any]]: ...
def atomic_write(
    path: PathArg,
    mode: str = "w",
    *,
    overwrite: bool = True,
    durability: Durability = "durable",
    follow_symlinks: bool = True,
    xattrs: Mapping[str, bytes] | None = None,
    permissions: int | None = None,
    writer_cls: type[AtomicWriter] = AtomicWriter,
    **open_kwargs: Any,
) -> contextlib.AbstractContextManager[IO[Any]]:
    """Open ``path`` for an all-or-nothing write.

    A drop-in for python-atomicwrites' ``atomic_write``, except that ``overwrite`` defaults to
    True. When the ``with`` block exits normally the file holds exactly what was written, and
    with ``durability="durable"`` (the default) it survives power loss. When the block raises,
    the file keeps its old content and no temporary file remains.

    Args:
        path: the file to write; a symlink is followed unless ``follow_symlinks`` is False.
        mode: ``"w"`` for text (yields a `TextIO`), ``"wb"`` for bytes (yields a `BinaryIO`).
        overwrite: replace an existing file, or raise `TargetExistsError`.
        durability: ``"durable"`` or ``"atomic"`` (no fsync: safe against a process crash only).
        follow_symlinks: write through a symlink (True) or replace the link itself.
        xattrs: extended attributes set on the file before it is published.
        permissions: exact permission bits for the file (see `AtomicWriter`).
        writer_cls: an `AtomicWriter` subclass with changed steps.
        **open_kwargs: ``encoding``, ``newline``, ``errors``, ``buffering``.

    Returns:
        A context manager yielding the open temporary file.

    Raises:
        TargetExistsError: ``overwrite`` is False and the file exists.
        TargetIsDirectoryError: ``path`` is a directory.
        SyncError: the fsync failed; nothing was published.
        CrossDeviceError: a ``dir`` given to a custom writer is on another filesystem.

    Example:
        >>> with atomic_write("config.json") as f:  # doctest: +SKIP
        ...     f.write('{"debug": false}')
    """
    return writer_cls(
        path,
        mode,
        overwrite,
        durability=durability,
        follow_symlinks=follow_symlinks,
        xattrs=xattrs,
        permissions=permissions,
        **open_kwargs,
    ).open()


def write_bytes(
    path: PathArg,
    data: bytes | bytearray | memoryview,
    *,
    overwrite: bool = True,
    durability: Durability = "durable",
    follow_symlinks: bool = True,
    xattrs: Mapping[str, bytes] | None = None,
    temp_dir: str | os.PathLike[str] | None = None,
    permissions: int | None = None,
) -> WriteResult:
    r"""Replace the content of ``path`` with ``data`` in one atomic step.

    After it returns the file holds exactly ``data``; with ``durability="durable"`` the new
    content survives power loss (see `WriteResult.durable`). On any error the file keeps its
    old content and no temporary file remains.

    Args:
        path: the file to write; a symlink is followed unless ``follow_symlinks`` is False.
        data: the complete new content.
        overwrite: replace an existing file, or raise `TargetExistsError`.
        durability: ``"durable"`` or ``"atomic"``.
        follow_symlinks: write through a symlink (True) or replace the link itself.
        xattrs: extended attributes that appear together with the content.
        temp_dir: stage the file in this folder (on the same filesystem) instead of beside
            the target, as maildir stages in ``tmp/``; both folders are fsynced when durable.
        permissions: the file's permission bits, exactly (no umask), set before the fsync;
            by default a replaced file's mode is kept and a new file gets
            ``0o666 & ~umask``.

    Returns:
        What the write achieved.

    Raises:
        TargetExistsError: ``overwrite`` is False and the file exists.
        TargetIsDirectoryError: ``path`` is a directory.
        SyncError: the fsync failed; nothing was published.
        CrossDeviceError: ``temp_dir`` is on another filesystem.

    Example:
        >>> write_bytes("blob.bin", b"\x00\x01").durable  # doctest: +SKIP
        True
    """
    fsync = check_durability(durability)
    staged = stage(
        path,
        overwrite=overwrite,
        follow_symlinks=follow_symlinks,
        xattrs=xattrs,
        directory=None if temp_dir is None else os.fspath(temp_dir),
        anonymous=temp_dir is None,
        check_first=False,
        permissions=check_permissions(permissions),
    )
    try:
        _fs.write_all(staged.fd, data, staged.label)
        if fsync:
            staged.sync()
        return staged.publish(sync_directory=fsync)
    except BaseException:
        staged.discard()
        raise


def write_text(
    path: PathArg,
    text: str,
    *,
    encoding: str = "utf-8",
    errors: str = "strict",
    overwrite: bool = True,
    durability: Durability = "durable",
    follow_symlinks: bool = True,
    xattrs: Mapping[str, bytes] | None = None,
    permissions: int | None = None,
) -> WriteResult:
    r"""Replace the content of ``path`` with ``text``; the guarantees of `write_bytes`.

    The text is encoded before anything is written, so an encoding error leaves no trace.

    Example:
        >>> write_text("greeting.txt", "hello\n").path  # doctest: +SKIP
        '/home/me/greeting.txt'
    """
    return write_bytes(
        path,
        text.encode(encoding, errors),
        overwrite=overwrite,
        durability=durability,
        follow_symlinks=follow_symlinks,
        xattrs=xattrs,
        permissions=permissions,
    )
