"""persistkit-core: files that are either wholly old or wholly new, whatever happens.

The write protocol every persistkit package uses: a temporary file beside the target,
``fsync``, one rename, and an ``fsync`` of the directory. ``durability="durable"`` (the
default) means a call's result survives power loss once it returns; ``"atomic"`` skips the
fsyncs and only survives a process crash.

Example:
    >>> from persistkit.core import atomic_write
    >>> with atomic_write("settings.json") as f:  # doctest: +SKIP
    ...     f.write("{}")
"""

from importlib import metadata as _metadata

from persistkit.core import _platform  # noqa: F401 - refuses unsupported platforms on import
from persistkit.core._batch import Batch
from persistkit.core._capabilities import Capabilities, capabilities
from persistkit.core._create import create_exclusive
from persistkit.core._durability import Durability, check_durability
from persistkit.core._folder import FileMode, atomic_file, atomic_folder
from persistkit.core._formats import Codec, resolve_format
from persistkit.core._journal import Journal, JournalRecord, JournalStats
from persistkit.core._local_objects import LocalObjectStore
from persistkit.core._lock import FileLock
from persistkit.core._object_locations import open_object_store
from persistkit.core._object_store import ObjectStore, StoredObject
from persistkit.core._primitives import (
    exchange,
    fsync_dir,
    fsync_file,
    link,
    make_dirs,
    move_atomic,
    remove,
    rename,
    replace_atomic,
    sync_files,
    write_at,
)
from persistkit.core._s3_capabilities import S3Capabilities
from persistkit.core._s3_objects import S3ObjectStore
from persistkit.core._sweep import sweep
from persistkit.core._temp import WriteResult
from persistkit.core._values import read_value, write_value
from persistkit.core._watch import DirectoryWatch, WatchEvent, WatchKind
from persistkit.core._writer import AtomicWriter, atomic_write, write_bytes, write_text
from persistkit.core.errors import (
    ConditionNotHonouredError,
    ConflictError,
    CorruptFileError,
    CorruptJournalError,
    CrossDeviceError,
    FormatError,
    InvalidArgumentError,
    InvalidNameError,
    LockTimeoutError,
    NotDurableError,
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStoreError,
    OutcomeUnknownError,
    PersistkitError,
    PersistkitOSError,
    SerializationError,
    StoreUnavailableError,
    SyncError,
    TargetExistsError,
    TargetIsDirectoryError,
    UnloadableValueError,
    UnsupportedOperationError,
    UnsupportedPlatformError,
)

__version__ = _metadata.version("persistkit-core")

__all__ = [
    "AtomicWriter",
    "Batch",
    "Capabilities",
    "Codec",
    "ConditionNotHonouredError",
    "ConflictError",
    "CorruptFileError",
    "CorruptJournalError",
    "CrossDeviceError",
    "DirectoryWatch",
    "Durability",
    "FileLock",
    "FileMode",
    "FormatError",
    "InvalidArgumentError",
    "InvalidNameError",
    "Journal",
    "JournalRecord",
    "JournalStats",
    "LocalObjectStore",
    "LockTimeoutError",
    "NotDurableError",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "ObjectStore",
    "ObjectStoreError",
    "OutcomeUnknownError",
    "PersistkitError",
    "PersistkitOSError",
    "S3Capabilities",
    "S3ObjectStore",
    "SerializationError",
    "StoreUnavailableError",
    "StoredObject",
    "SyncError",
    "TargetExistsError",
    "TargetIsDirectoryError",
    "UnloadableValueError",
    "UnsupportedOperationError",
    "UnsupportedPlatformError",
    "WatchEvent",
    "WatchKind",
    "WriteResult",
    "__version__",
    "atomic_file",
    "atomic_folder",
    "atomic_write",
    "capabilities",
    "check_durability",
    "create_exclusive",
    "exchange",
    "fsync_dir",
    "fsync_file",
    "link",
    "make_dirs",
    "move_atomic",
    "open_object_store",
    "read_value",
    "remove",
    "rename",
    "replace_atomic",
    "resolve_format",
    "sweep",
    "sync_files",
    "write_at",
    "write_bytes",
    "write_text",
    "write_value",
]
