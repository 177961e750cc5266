"""The envelope a store's value wears in an object store: a header line, then the value.

An object store compares versions that are content hashes (S3's ETag is the body's MD5), so
two writes of equal bytes have equal versions. Left bare, a value that returns to an earlier
state (a counter going 1, 2, 1) would let a stale compare-and-swap through, and core's
settling of a lost reply would resend a write that had already landed. So every write of a
store to an object store is preceded by one line that changes on every write::

    persistkit-store/1 <generation> <writer>,<writer>,...
    <the value, encoded as a file>

- ``generation``: one more than the generation the writer last read (a count of writes).
- ``writer``: a fresh random id (12 hex digits) per write, newest first, with the ids of up
  to `HISTORY` - 1 writes before it. A writer whose reply was lost reads the object again and
  finds its id there (it landed) or, when the list reaches back to the version it replaced
  or to the object's first write, knows that it did not land.

The rest of the object is exactly what the local store would write to its file, so any
program can read the value by dropping the first line. An object without the header (put
there by another tool) is read as a bare value of generation 0.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from persistkit.core.errors import CorruptFileError

MAGIC = b"persistkit-store/"
FORMAT_VERSION = 1
HISTORY = 16
"""How many writer ids an object keeps: enough to settle a lost reply while up to 15 other
writers committed on top of it."""

_MAX_HEADER = 512


def new_writer() -> str:
    """Return a fresh writer id."""
    return secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class Lineage:
    """Who wrote an object's value, newest first, and how many writes it has seen.

    Attributes:
        generation: the number of writes (0 for an object without a header, or none).
        writers: the ids of the last writes, newest first (at most `HISTORY`).
    """

    generation: int = 0
    writers: tuple[str, ...] = ()

    @property
    def head(self) -> str | None:
        """The id of the write that made this value (None for a bare or missing object)."""
        return self.writers[0] if self.writers else None

    def complete(self) -> bool:
        """Whether ``writers`` lists every write this object has had since its first."""
        return len(self.writers) < HISTORY

    def after(self, writer: str) -> Lineage:
        """The lineage of a write by ``writer`` on top of this one."""
        return Lineage(self.generation + 1, (writer, *self.writers[: HISTORY - 1]))


def wrap(lineage: Lineage, value: bytes) -> bytes:
    """Return the object's bytes: the header for ``lineage``, then the encoded value."""
    header = f"{FORMAT_VERSION} {lineage.generation} {','.join(lineage.writers)}\n"
    return MAGIC + header.encode("ascii") + value


def unwrap(data: bytes, where: str) -> tuple[Lineage, bytes]:
    """Split an object into its lineage and the encoded value.

    Raises:
        CorruptFileError: the object starts like a header but the header is damaged, or was
            written by a newer persistkit-store; the object is left as it is.
    """
    if not data.startswith(MAGIC):
        return Lineage(), data
    end = data.find(b"\n", 0, _MAX_HEADER)
    if end < 0:
        raise CorruptFileError(where, "its persistkit-store header has no end")
    fields = data[len(MAGIC) : end].split(b" ")
    try:
        version, generation = int(fields[0]), int(fields[1])
        writers = tuple(fields[2].decode("ascii").split(",")) if fields[2] else ()
    except (IndexError, ValueError, UnicodeDecodeError):
        raise CorruptFileError(where, "its persistkit-store header is damaged") from None
    if version != FORMAT_VERSION:
        raise CorruptFileError(
            where, f"its header has format {version}; this persistkit-store reads {FORMAT_VERSION}"
        )
    if len(fields) != 3 or generation < 0 or len(writers) > HISTORY or not all(writers):
        raise CorruptFileError(where, "its persistkit-store header is damaged")
    return Lineage(generation, writers), data[end + 1 :]
