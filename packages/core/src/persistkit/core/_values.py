"""Reading and writing one encoded value as one file."""

from __future__ import annotations

import os
from typing import Any

from persistkit.core._durability import Durability
from persistkit.core._formats import resolve_format
from persistkit.core._temp import WriteResult
from persistkit.core._writer import AtomicWriter, write_bytes


def read_value(path: str | os.PathLike[str], format: Any = None) -> Any:
    """Decode the value stored in ``path``.

    Args:
        path: the file.
        format: anything `resolve_format` accepts.

    Returns:
        The decoded value.

    Raises:
        FileNotFoundError: the file does not exist.
        CorruptFileError: the file exists but cannot be decoded (empty, truncated, not this
            format); the error names the file, which is left untouched.
        UnloadableValueError: the file is intact but names a class this program cannot
            import (pickle).
    """
    codec = resolve_format(format)
    name = os.fspath(path)
    with open(name, "rb") as file:
        data = file.read()
    return codec.decode(data, name)


def write_value(
    path: str | os.PathLike[str],
    value: Any,
    format: Any = None,
    *,
    stream: bool = False,
    overwrite: bool = True,
    durability: Durability = "durable",
    follow_symlinks: bool = True,
) -> WriteResult:
    """Encode ``value`` and replace ``path`` with it atomically.

    When it returns, the file holds exactly the encoded value; with ``durability="durable"``
    it survives power loss. If the value cannot be encoded, `SerializationError` is raised and
    the file is untouched.

    Args:
        path: the file.
        value: what to store.
        format: anything `resolve_format` accepts.
        stream: encode straight into the temporary file instead of into memory first. It
            holds no second copy of the encoded value, which matters for large values; for
            JSON it is slower, because only the one-shot encoder is written in C.
        overwrite: replace an existing file, or raise `TargetExistsError`.
        durability: ``"durable"`` or ``"atomic"``.
        follow_symlinks: write through a symlink.

    Returns:
        What the write achieved.
    """
    codec = resolve_format(format)
    if not stream:
        return write_bytes(
            path,
            codec.dumps(value),
            overwrite=overwrite,
            durability=durability,
            follow_symlinks=follow_symlinks,
        )
    writer = AtomicWriter(
        path,
        "wb" if codec.is_binary else "w",
        overwrite,
        durability=durability,
        follow_symlinks=follow_symlinks,
        encoding=None if codec.is_binary else "utf-8",
    )
    with writer.open() as file:
        codec.dump(value, file)
    if writer.result is None:  # pragma: no cover - commit always sets it
        raise RuntimeError("the writer finished without a result")
    return writer.result
