"""Group commit: many writes staged, then published together after one flush of the disk."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import IO, Any, Literal

from persistkit.core import _capabilities, _fs, _primitives
from persistkit.core._durability import Durability, check_durability
from persistkit.core._temp import StagedFile, WriteResult, stage
from persistkit.core.errors import InvalidArgumentError, SyncError

PathArg = str | os.PathLike[str]


class Batch:
    """Stage many atomic writes and publish them together, sharing the cost of durability.

    Each write inside a batch is staged as a temporary file beside its target. When the batch
    commits (on leaving its ``with`` block, or by `commit`), persistkit flushes each
    filesystem once (``syncfs(2)``) where syncfs is known to reach the disk, and each file
    (``fsync``) everywhere else, renames every file into place and fsyncs each directory once.
    On this project's test disk that is about 4x cheaper per file than separate durable
    writes, which pay two flushes each.

    syncfs is trusted only on filesystems whose type says it flushes every file (ext4, XFS,
    Btrfs, F2FS, ZFS, bcachefs; tmpfs and ramfs): FUSE mounts (sshfs, gcsfuse, JuiceFS...)
    never receive it at all, and network and overlay filesystems are not known to honour
    it, so there a batch fsyncs each file (`Capabilities.syncfs` tells which applies).

    Guarantees: every file is individually atomic (old or new content, never a mix). Files
    become visible when the batch commits, not before; once `commit` returns they are all
    durable. The batch as a whole is not a transaction: a crash during the renames can publish
    some files and not others. If the ``with`` block raises, nothing staged is published.

    Writing the same path twice in one batch keeps only the last content.

    Args:
        durability: ``"durable"`` or ``"atomic"`` (no flush at all).
        max_pending: commit automatically once this many files are staged, which bounds the
            open descriptors (each staged file holds one).
        flush: ``"filesystem"`` (one ``syncfs`` per filesystem where syncfs reaches the
            disk, one fsync per file elsewhere; the default) or ``"files"`` (one fsync per
            staged file). syncfs also writes back every other process's unsynced data on
            that filesystem, so on a filesystem busy with other writers ``"files"`` has the
            steadier cost; both are equally durable.

    Example:
        >>> with Batch() as batch:  # doctest: +SKIP
        ...     for name, data in blobs.items():
        ...         batch.write_bytes(f"out/{name}", data)
    """

    def __init__(
        self,
        *,
        durability: Durability = "durable",
        max_pending: int = 256,
        flush: Literal["filesystem", "files"] = "filesystem",
    ) -> None:
        if max_pending < 1:
            raise InvalidArgumentError("max_pending must be at least 1")
        if flush not in ("filesystem", "files"):
            raise InvalidArgumentError(f"flush must be 'filesystem' or 'files', not {flush!r}")
        self._flush_files = flush == "files"
        self._fsync = check_durability(durability)
        self._max_pending = max_pending
        self._pending: dict[str, StagedFile] = {}
        self.results: list[WriteResult] = []

    def write_bytes(
        self,
        path: PathArg,
        data: bytes | bytearray | memoryview,
        *,
        overwrite: bool = True,
        follow_symlinks: bool = True,
        xattrs: Mapping[str, bytes] | None = None,
    ) -> None:
        """Stage ``data`` as the new content of ``path``; it is published on commit."""
        staged = self._stage(path, overwrite, follow_symlinks, xattrs)
        try:
            _fs.write_all(staged.fd, data, staged.label)
        except BaseException:
            staged.discard()
            raise
        self._add(staged)

    def write_text(
        self,
        path: PathArg,
        text: str,
        *,
        encoding: str = "utf-8",
        overwrite: bool = True,
        follow_symlinks: bool = True,
        xattrs: Mapping[str, bytes] | None = None,
    ) -> None:
        """Stage ``text`` as the new content of ``path``; it is published on commit."""
        self.write_bytes(
            path,
            text.encode(encoding),
            overwrite=overwrite,
            follow_symlinks=follow_symlinks,
            xattrs=xattrs,
        )

    @contextlib.contextmanager
    def atomic_write(
        self,
        path: PathArg,
        mode: str = "w",
        *,
        overwrite: bool = True,
        follow_symlinks: bool = True,
        xattrs: Mapping[str, bytes] | None = None,
        **open_kwargs: Any,
    ) -> Iterator[IO[Any]]:
        """Open a staged file for writing; it is published on commit, not on leaving the block."""
        staged = self._stage(path, overwrite, follow_symlinks, xattrs)
        try:
            # The staged descriptor stays open (and owned by the batch) until publishing.
            with open(staged.fd, mode, closefd=False, **open_kwargs) as f:
                yield f
        except BaseException:
            staged.discard()
            raise
        self._add(staged)

    def _stage(
        self,
        path: PathArg,
        overwrite: bool,
        follow_symlinks: bool,
        xattrs: Mapping[str, bytes] | None,
    ) -> StagedFile:
        return stage(
            path,
            overwrite=overwrite,
            follow_symlinks=follow_symlinks,
            xattrs=xattrs,
            anonymous=True,
            check_first=False,
        )

    def _add(self, staged: StagedFile) -> None:
        superseded = self._pending.pop(staged.target, None)
        if superseded is not None:
            superseded.discard()
        self._pending[staged.target] = staged
        if len(self._pending) >= self._max_pending:
            self.commit()

    def commit(self) -> list[WriteResult]:
        """Flush, publish and make durable everything staged so far.

        Returns:
            The results of this commit, in staging order (also appended to `results`).

        Raises:
            SyncError: a flush failed; nothing of this commit was published.
        """
        pending = list(self._pending.values())
        self._pending.clear()
        if not pending:
            return []
        published: list[StagedFile] = []
        try:
            if self._fsync:
                _flush(pending, per_file=self._flush_files)
            for staged in pending:
                staged.publish(sync_directory=False)
                published.append(staged)
        except BaseException:
            for staged in pending[len(published) :]:
                staged.discard()
            raise
        durable = self._fsync and _primitives.sync_parents(
            *(staged.target for staged in pending),
            *(staged.path for staged in pending if staged.path is not None),
        )
        results = [WriteResult(staged.target, durable) for staged in pending]
        self.results.extend(results)
        return results

    def discard(self) -> None:
        """Throw away everything staged and not yet committed."""
        pending = list(self._pending.values())
        self._pending.clear()
        for staged in pending:
            staged.discard()

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _flush(pending: list[StagedFile], *, per_file: bool) -> None:
    """Make every staged file's content durable: one syncfs per filesystem, or per file.

    syncfs serves only where it is known to reach the disk: FUSE never passes it on, and
    trusting it there published empty files as durable (found by the power-cut filesystem).
    """
    if per_file:
        for staged in pending:
            staged.sync()
        return
    by_device: dict[int, list[StagedFile]] = {}
    for staged in pending:
        by_device.setdefault(os.fstat(staged.fd).st_dev, []).append(staged)
    for group in by_device.values():
        first = group[0]
        if not _capabilities.syncfs_reaches_storage(first.fd):
            for staged in group:
                staged.sync()
            continue
        try:
            flushed = _fs.syncfs(first.fd, first.label)
        except OSError as error:
            raise SyncError(
                error.errno,
                f"syncfs failed ({error.strerror}); no file of this batch was published",
                first.target,
            ) from error
        if not flushed:  # pragma: no cover - platforms without syncfs(2)
            for staged in group:
                staged.sync()
