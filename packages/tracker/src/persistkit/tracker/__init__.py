"""persistkit-tracker: tastypy's persistent ordered dict and progress tracker, for Python 3.

Switch from tastypy by changing one import::

    from persistkit import tracker as tastypy

- `PersistentOrderedDict` / `POD`: a dict kept on disk in tastypy's files, in insertion order.
- `ProgressTracker` / `Tracker`: a POD of tasks (done, aborted, tries) for resumable jobs.
- `SharedPersistentOrderedDict` / `SharedPOD` and `SharedProgressTracker` / `SharedTracker`:
  the same, shared by any processes that open the folder, with no server process.
- `POD` and `Tracker` also open on an object store (``s3://bucket/prefix`` or a
  `persistkit.core.ObjectStore`), for workers on machines that share nothing else.

Every sync is atomic (all its keys land or none) and goes through persistkit-core: a few
changed keys are one record in the store's journal and one flush; the shard files, tastypy's
format, are rewritten at checkpoints (many keys, ``close()``, exit). Pending changes are
synced at exit, on an uncaught exception, on SIGTERM and on SIGINT.

Example:
    >>> from persistkit.tracker import Tracker
    >>> tracker = Tracker("crawl.tracker", max_tries=3)  # doctest: +SKIP
    >>> tracker.add_if_absent("https://example.org/")  # doctest: +SKIP
"""

from importlib import metadata as _metadata

from persistkit.tracker._exit_hooks import sync_all
from persistkit.tracker._lines import JSONSerializer
from persistkit.tracker._pod import (
    DEFAULT_FILE_SIZE,
    DEFAULT_SYNC_AT,
    POD,
    PersistentOrderedDict,
    normalize_path,
)
from persistkit.tracker._set_proxy import DeepProxy
from persistkit.tracker._shared import (
    ITERITEMS_CHUNK_SIZE,
    ITERKEYS_CHUNK_SIZE,
    SharedPersistentOrderedDict,
    SharedPOD,
)
from persistkit.tracker._shared_tracker import SharedProgressTracker, SharedTracker
from persistkit.tracker._tasks import DEFAULT_PROGRESS_TRACKER_MAPPING, Progress
from persistkit.tracker._tracker import ProgressTracker, Tracker
from persistkit.tracker.errors import (
    CalledClosedTrackerError,
    ClosedStoreError,
    DuplicateKeyError,
    IntegrityError,
    InvalidKeyError,
    PersistentOrderedDictException,
    PersistentOrderedDictIntegrityError,
    ReadOnlyStoreError,
    StoreMismatchError,
    TrackerError,
)

__version__ = _metadata.version("persistkit-tracker")

__all__ = [
    "DEFAULT_FILE_SIZE",
    "DEFAULT_PROGRESS_TRACKER_MAPPING",
    "DEFAULT_SYNC_AT",
    "ITERITEMS_CHUNK_SIZE",
    "ITERKEYS_CHUNK_SIZE",
    "POD",
    "CalledClosedTrackerError",
    "ClosedStoreError",
    "DeepProxy",
    "DuplicateKeyError",
    "IntegrityError",
    "InvalidKeyError",
    "JSONSerializer",
    "PersistentOrderedDict",
    "PersistentOrderedDictException",
    "PersistentOrderedDictIntegrityError",
    "Progress",
    "ProgressTracker",
    "ReadOnlyStoreError",
    "SharedPOD",
    "SharedPersistentOrderedDict",
    "SharedProgressTracker",
    "SharedTracker",
    "StoreMismatchError",
    "Tracker",
    "TrackerError",
    "__version__",
    "normalize_path",
    "sync_all",
]
