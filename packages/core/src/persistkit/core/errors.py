"""The persistkit error hierarchy.

Every error persistkit raises on purpose derives from `PersistkitError` and also from the
builtin exception a user would already catch, so ``except FileExistsError`` and
``except PersistkitError`` both work. OS-level errors keep ``errno``, ``strerror`` and
``filename``. Errors from the environment that persistkit does not interpret (a missing parent
directory, a read-only directory, a full disk) propagate as the builtin `OSError` subclass the
kernel's errno maps to, untouched.

Every exception here pickles, so it crosses process boundaries intact.
"""

from __future__ import annotations

__all__ = [
    "CommandError",
    "ConditionNotHonouredError",
    "ConflictError",
    "CorruptFileError",
    "CorruptJournalError",
    "CrossDeviceError",
    "FormatError",
    "InvalidArgumentError",
    "InvalidNameError",
    "LockTimeoutError",
    "NotDurableError",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "ObjectStoreError",
    "OutcomeUnknownError",
    "PersistkitError",
    "PersistkitOSError",
    "SerializationError",
    "StoreUnavailableError",
    "SyncError",
    "TargetExistsError",
    "TargetIsDirectoryError",
    "UnloadableValueError",
    "UnsupportedOperationError",
    "UnsupportedPlatformError",
]


class PersistkitError(Exception):
    """Root of every error persistkit raises on purpose."""


class PersistkitOSError(PersistkitError, OSError):
    """An OS-level failure persistkit recognised; ``errno`` and ``filename`` are kept."""


class TargetExistsError(PersistkitOSError, FileExistsError):
    """The destination exists and the call was asked not to overwrite it."""


class TargetIsDirectoryError(PersistkitOSError, IsADirectoryError):
    """A file write was aimed at an existing directory."""


class CrossDeviceError(PersistkitOSError):
    """Source and destination are on different filesystems (EXDEV).

    A rename cannot cross filesystems and persistkit never falls back to copying, because a
    copy is neither atomic nor cheap. Put the temporary directory on the target's filesystem.
    """


class SyncError(PersistkitOSError):
    """An fsync failed, so durability cannot be promised.

    When this is raised before publishing, the old file is intact and the temporary file is
    gone. The fsync is never retried: after a failed fsync the kernel may have dropped the
    dirty pages, and a second, successful fsync would prove nothing.
    """


class NotDurableError(PersistkitOSError):
    """A write was atomic but is not known durable, and the caller required durability.

    Raised by `WriteResult.require_durable`: after ``durability="atomic"``, or where the
    filesystem refused to fsync a directory (some FUSE and network mounts).
    """


class UnsupportedOperationError(PersistkitOSError):
    """The kernel or filesystem cannot perform the requested operation atomically."""


class UnsupportedPlatformError(PersistkitError, NotImplementedError):
    """persistkit does not run on this platform (Windows is out of scope)."""


class LockTimeoutError(PersistkitError, TimeoutError):
    """A lock could not be acquired within its timeout."""


class InvalidArgumentError(PersistkitError, ValueError):
    """An argument has a value the call cannot accept; nothing on disk was touched."""


class FormatError(InvalidArgumentError):
    """A format was asked for that does not exist or does not have the needed methods."""


class SerializationError(PersistkitError, TypeError, ValueError):
    """A value could not be encoded; the destination file was not touched.

    It is both a `TypeError` (what `json` raises for unsupported types) and a `ValueError`
    (what it raises for circular references), so existing handlers keep working.
    """


class CorruptFileError(PersistkitError, ValueError):
    """A file exists but its content cannot be decoded.

    persistkit never replaces such a file with a default: the data may still be recoverable.

    Attributes:
        path: the file that could not be decoded.
        reason: what the decoder said.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot decode {self.path!r}: {self.reason}"


class InvalidNameError(InvalidArgumentError):
    """A name or key would reach outside its directory, or cannot be a file name."""


class UnloadableValueError(PersistkitError, ValueError):
    """A file is intact, but the value it holds cannot be rebuilt in this program.

    The usual cause is a pickled object whose class was renamed, moved or removed: the
    bytes decode, the class they name does not import. The file is left as it is; it loads
    again once the class is importable (or with a pickle ``find_class`` that maps it).

    Attributes:
        path: the file whose value could not be rebuilt.
        reason: what the decoder said.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot rebuild the value in {self.path!r} (the file is intact): {self.reason}"


class CorruptJournalError(CorruptFileError):
    """A journal holds a damaged record that was already durable, or no valid header.

    Raised instead of dropping the damaged record and everything after it: a record that a
    later record proves was flushed cannot be a torn tail, so the records after it may be
    committed ones. persistkit never truncates or rewrites such a journal.

    Attributes:
        path: the journal file.
        offset: the byte offset of the damaged record (0 for the header).
        reason: what is wrong there.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(path, reason)
        self.offset = offset

    def __reduce__(self) -> tuple[type[CorruptJournalError], tuple[str, int, str]]:
        return (type(self), (self.path, self.offset, self.reason))

    def __str__(self) -> str:
        return f"journal {self.path!r} is damaged at offset {self.offset}: {self.reason}"


class ConflictError(PersistkitError):
    """A conditional write found the object not as its condition required; nothing was written.

    Raised by an object store's ``put_if_match`` and ``delete_if_match`` when the object changed
    (or is gone) since its version was read. No builtin exception means "you lost a
    compare-and-swap", so catch this one: re-read the object and try again.
    """


class ObjectExistsError(ConflictError, TargetExistsError):
    """A create-only write (``put_if_absent``) found the object already there.

    Also a `FileExistsError`, as a create-only write of a local file raises; ``filename`` is
    the object's key.
    """


class ObjectNotFoundError(PersistkitOSError, FileNotFoundError, KeyError):
    """The object does not exist; ``filename`` is its key.

    Both a `FileNotFoundError` (what reading a missing file raises) and a `KeyError` (what a
    mapping raises), so either handler works.
    """

    def __str__(self) -> str:
        return OSError.__str__(self)


class ObjectStoreError(PersistkitOSError):
    """An object store refused a request for a reason persistkit does not interpret further.

    ``strerror`` holds the server's error code and message, ``filename`` the bucket and key;
    ``errno`` is ``EACCES`` for a refusal of access, ``ENOENT`` for a missing bucket and ``EIO``
    otherwise.
    """


class StoreUnavailableError(PersistkitOSError, ConnectionError):
    """The object store could not be reached, or kept failing, within the retries allowed.

    Nothing is known to have been written by the failed call, except where a subclass says
    otherwise.
    """


class OutcomeUnknownError(StoreUnavailableError):
    """A conditional write was sent, and whether it took effect could not be settled.

    The server failed while answering (a 5xx, a 409, a dropped connection) and re-reading the
    object could not tell whether this writer's request was applied (the server stayed down, or
    another writer changed the object in the meantime). Do not blindly retry a
    compare-and-swap after this: read the object and decide from what it holds.
    """


class ConditionNotHonouredError(UnsupportedOperationError):
    """The object store ignores a condition that a call relies on, so the call is refused.

    Found by a capability probe on first use (Ceph RGW, for one, deletes an object whatever
    ``If-Match`` says). Carrying on would silently lose updates, so persistkit refuses instead.
    """


class CommandError(PersistkitError, ValueError):
    """A ``persistkit`` subcommand cannot do its job with the path it was given.

    The command prints it as one line (``persistkit: PATH: MESSAGE``) and exits with status 1;
    under ``--json`` the document's ``error`` object carries the same fields.

    Attributes:
        message: what is wrong, without the path.
        path: the file or folder concerned, or None.
        kind: ``"missing"`` (nothing there), ``"wrong_kind"`` (something else than the
            command inspects), ``"corrupt"`` (a file that cannot be decoded) or ``"failed"``.
    """

    def __init__(self, message: str, *, path: str | None = None, kind: str = "failed") -> None:
        super().__init__(message, path, kind)
        self.message = message
        self.path = path
        self.kind = kind

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_command_error, (type(self), self.message, self.path, self.kind))

    def __str__(self) -> str:
        return self.message if self.path is None else f"{self.path}: {self.message}"


def _rebuild_command_error(
    cls: type[CommandError], message: str, path: str | None, kind: str
) -> CommandError:
    return cls(message, path=path, kind=kind)
