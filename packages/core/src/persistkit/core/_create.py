"""`create_exclusive`: a new file opened for writing in place, never someone else's file.

Not an atomic write: the file is visible under its name from the moment it exists, and is
written where it stands. It is what a staging area needs (maildir's ``tmp/``, where nothing
is read until the file is moved out): two writers that pick one name cannot truncate or
interleave into each other's file, because only one ``open(O_CREAT | O_EXCL)`` succeeds.
Publish the finished file with `persistkit.core.rename` (after `fsync_file` when it must be
durable).
"""

from __future__ import annotations

import errno
import os
from typing import IO, Any, BinaryIO, Literal, TextIO, overload

from persistkit.core import _fs
from persistkit.core._temp import check_permissions
from persistkit.core.errors import InvalidArgumentError, TargetExistsError

PathArg = str | os.PathLike[str]
TextCreateMode = Literal["w", "wt", "a", "at", "x", "xt", "w+", "a+", "x+"]
BinaryCreateMode = Literal["wb", "ab", "xb", "w+b", "wb+", "a+b", "ab+", "x+b", "xb+"]


@overload
def create_exclusive(
    path: PathArg,
    mode: TextCreateMode = "w",
    *,
    permissions: int | None = None,
    **open_kwargs: Any,
) -> TextIO: ...
@overload
def create_exclusive(
    path: PathArg,
    mode: BinaryCreateMode,
    *,
    permissions: int | None = None,
    **open_kwargs: Any,
) -> BinaryIO: ...
@overload
def create_exclusive(
    path: PathArg,
    mode: str,
    *,
    permissions: int | None = None,
    **open_kwargs: Any,
) -> IO[Any]: ...
def create_exclusive(
    path: PathArg,
    mode: str = "w",
    *,
    permissions: int | None = None,
    **open_kwargs: Any,
) -> IO[Any]:
    """Create a new file and return it open for writing; fail if the name exists.

    Guarantees when it returns: ``path`` names a new, empty file that did not exist before
    this call (an existing file, directory or symlink, even a dangling one, is never
    truncated, followed or reused), with ``permissions`` if given. Nothing more: the file is
    neither atomic (readers see it as it is written) nor durable. The creation goes through
    core's filesystem seam, so `persistkit.core.testing`'s crash tests see it.

    Args:
        path: the file to create.
        mode: a writing mode: ``"w"``/``"a"``/``"x"`` for text, with ``"b"`` for bytes,
            with ``"+"`` to read back as well.
        permissions: the file's permission bits, exactly (no umask); by default
            ``0o666 & ~umask``.
        **open_kwargs: passed to `open` (``encoding``, ``errors``, ``newline``,
            ``buffering``).

    Returns:
        The open file, a plain file object whose ``name`` is ``path``.

    Raises:
        TargetExistsError: the name exists; nothing was touched.
        InvalidArgumentError: ``mode`` does not write, or ``permissions`` are not mode bits.

    Example:
        >>> with create_exclusive("spool/tmp/0001.xml") as f:  # doctest: +SKIP
        ...     f.write("<invoice/>")
    """
    if not set("wax").intersection(mode) or "r" in mode:
        raise InvalidArgumentError(f"create_exclusive needs a writing mode, not {mode!r}")
    bits = check_permissions(permissions)
    name = os.fspath(path)
    created: list[str] = []

    def opener(file: str, flags: int) -> int:
        # Python asks for O_CREAT|O_TRUNC (or O_EXCL for "x"); the seam adds O_CREAT|O_EXCL.
        own = flags & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC)
        fd = _fs.create_exclusive(file, flags=own)
        created.append(file)
        try:
            if bits is not None:
                _fs.fchmod(fd, bits, file)
        except BaseException:
            os.close(fd)
            raise
        return fd

    try:
        return open(name, mode, opener=opener, **open_kwargs)
    except FileExistsError:
        if created:  # pragma: no cover - the seam itself never raises EEXIST after creating
            raise
        raise TargetExistsError(errno.EEXIST, "the file exists and is never reused", name) from None
    except BaseException:
        # open() failed after the file was made (a bad encoding, a failed chmod): this call
        # made it, so this call removes it.
        if created:
            _fs.unlink(name)
        raise
