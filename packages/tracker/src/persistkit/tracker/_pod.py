"""`PersistentOrderedDict`: a dict on disk in tastypy's format, synced atomically."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, ClassVar

from persistkit.core import Durability, ObjectStore, check_durability, make_dirs, open_object_store
from persistkit.core.errors import InvalidArgumentError
from persistkit.tracker import _exit_hooks
from persistkit.tracker._exit_hooks import GUARD
from persistkit.tracker._lines import Key, check_value, normalize_key
from persistkit.tracker._model import MemoryModel
from persistkit.tracker._object_state import ObjectState, check_object_options
from persistkit.tracker._set_proxy import IN_PLACE, DeepProxy
from persistkit.tracker._state import StoreState
from persistkit.tracker._tasks import new_task
from persistkit.tracker.errors import ClosedStoreError, StoreMismatchError

DEFAULT_FILE_SIZE = 1000
"""How many keys one shard file (``0.json``, ``1.json`` ...) holds, as in tastypy."""
DEFAULT_SYNC_AT = 1000
"""How many pending keys make a store sync by itself, as in tastypy."""


class PersistentOrderedDict(MutableMapping[Any, Any]):
    """A dict that keeps itself on disk, in tastypy's files, iterating in insertion order.

    Values are JSON data; keys are str, int or (nested) tuples of them, and ``1`` and ``"1"``
    stay different keys. Changes are kept in memory and written when ``sync_at`` keys are
    pending, when you call `sync`, and when the program ends: normally, by an uncaught
    exception, or by SIGTERM or SIGINT. A crash or SIGKILL loses only what was not synced.

    Every sync is atomic as a whole: after any crash the store reopens with all of a sync's
    changes or none of them. With ``durability="durable"`` (the default) a finished sync also
    survives power loss. A sync costs in proportion to the shard files it changes, never to
    the size of the store.

    A value changed in place through the POD (``pod[k].append(x)``, ``pod[k]["a"] = 1``) is
    persisted: reading a list or dict value marks its key for checking at the next sync,
    where only keys whose JSON really changed are written (tastypy rewrote every key read).

    PODs opened on one folder in one process share their data (``clone=True``), so they
    cannot overwrite each other with stale values. For several processes use `SharedPOD`.

    Args:
        path: the store's folder (created if missing). An existing tastypy store opens as is.
        init: initial content, applied with `update` (a mapping or key-value pairs).
        gzipped: the shard files are gzipped (``0.json.gz`` ...).
        file_size: keys per shard file. Smaller files make syncs cheaper and folders bigger.
        sync_at: sync automatically once this many keys are pending.
        clone: share memory with the other PODs of this process on the same folder.
        durability: ``"durable"`` (fsync: a sync survives power loss) or ``"atomic"`` (no
            fsync: a sync survives a crash of the process, not of the machine).
        read_only: open for reading only: nothing is created or changed on disk (a shared
            lock is taken where the lock file exists), and changing the store raises
            `ReadOnlyStoreError`. A folder this process cannot write to (a read-only mount,
            a snapshot, someone else's backup) always opens this way.

    Raises:
        IntegrityError: the store's files are damaged (they are left untouched).
        StoreMismatchError: ``gzipped`` does not match the files, or a live clone has other
            settings.
        FileNotFoundError: ``read_only`` and there is no folder.

    Example:
        >>> pod = POD("results.pod")  # doctest: +SKIP
        >>> pod["page-1"] = {"words": 310}  # doctest: +SKIP
        >>> pod.sync()  # doctest: +SKIP
    """

    _clones: ClassVar[dict[str, StoreState]] = {}
    _clones_guard: ClassVar[threading.RLock] = threading.RLock()
    # The subclass that ``POD(path, max_tries=n)`` opens: tastypy's own crawler example opens
    # its tracker that way. The tracker class names itself (see __init_subclass__), so this
    # module never imports the tracker's.
    _opened_by_max_tries: ClassVar[type[PersistentOrderedDict] | None] = None

    def __init_subclass__(cls, *, opened_by_max_tries: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if opened_by_max_tries:
            PersistentOrderedDict._opened_by_max_tries = cls

    def __new__(cls, *args: Any, **kwargs: Any) -> PersistentOrderedDict:
        target = PersistentOrderedDict._opened_by_max_tries
        if cls is PersistentOrderedDict and "max_tries" in kwargs and target is not None:
            return super().__new__(target)
        return super().__new__(cls)

    def __init__(  # noqa: PLR0917 - tastypy's positional signature
        self,
        path: str | os.PathLike[str] | ObjectStore,
        init: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None,
        gzipped: bool = False,
        file_size: int = DEFAULT_FILE_SIZE,
        sync_at: int = DEFAULT_SYNC_AT,
        clone: bool = True,
        *,
        durability: Durability = "durable",
        read_only: bool = False,
    ) -> None:
        if not isinstance(file_size, int) or isinstance(file_size, bool) or file_size < 1:
            raise InvalidArgumentError(f"file_size must be a positive int, not {file_size!r}")
        if not isinstance(sync_at, int) or isinstance(sync_at, bool) or sync_at < 0:
            raise InvalidArgumentError(f"sync_at must be an int >= 0, not {sync_at!r}")
        check_durability(durability)
        self.sync_at = sync_at
        self._hold = False
        self._state: MemoryModel
        if isinstance(path, ObjectStore) or is_object_location(path):
            check_object_options(bool(gzipped))
            self._state = _open_object_state(path, file_size, read_only)
        else:
            folder, read_only = _prepare_folder(path, read_only)
            self._state = self._open_state(
                folder, bool(gzipped), file_size, clone and not read_only, durability, read_only
            )
        self.set = DeepProxy(self._call_deep)
        if init:
            self.update(init)

    @classmethod
    def _open_state(  # noqa: PLR0917 - private, called from one place
        cls,
        folder: str,
        gzipped: bool,
        file_size: int,
        clone: bool,
        durability: Durability,
        read_only: bool,
    ) -> StoreState:
        with cls._clones_guard:
            state = cls._clones.get(folder) if clone else None
            if state is not None and state.owner_pid == os.getpid() and not state.closed:
                if state.gzipped != gzipped or state.file_size != file_size:
                    raise StoreMismatchError(
                        f"a POD on {folder!r} is open in this process with gzipped="
                        f"{state.gzipped}, file_size={state.file_size}"
                    )
                return state
            state = StoreState(
                folder,
                gzipped=gzipped,
                file_size=file_size,
                durability=durability,
                read_only=read_only,
            )
            with _exit_hooks.signals_deferred():
                state.load()
            if clone:
                cls._clones[folder] = state
            _exit_hooks.register(state)
            return state

    # -- the mapping --------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The store's folder (absolute, symlinks resolved)."""
        return self._state.folder

    @property
    def read_only(self) -> bool:
        """Whether the store was opened for reading only (asked for, or read-only media)."""
        return self._state.read_only

    def _live(self) -> MemoryModel:
        state = self._state
        if state.closed:
            raise ClosedStoreError(f"the store {state.folder!r} was closed")
        return state

    def _writable(self) -> MemoryModel:
        state = self._live()
        state.refuse_writes()
        return state

    def __getitem__(self, key: Any) -> Any:
        state = self._live()
        key = normalize_key(key)
        value = state.values[key]
        if isinstance(value, dict | list):
            if not self._hold and len(state.pending) >= self.sync_at and key not in state.pending:
                # Sync before marking, so the change the caller is about to make is checked
                # by the next sync rather than missed by this one.
                self.sync()
            state.touch(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        # The hot path of bulk loading: kept flat on purpose (see the batched-sets benchmark).
        state = self._state
        if state.closed or state.read_only:
            self._writable()
        kind = type(key)
        if kind is not str and kind is not int:
            key = normalize_key(key)
        if self._checks_values:
            value = self._checked_value(value)
        check_value(value)
        values = state.values
        guard = GUARD
        guard.depth += 1
        try:
            if key in values:
                state.touch(key)
                values[key] = value
            else:
                shards = state.shards
                if shards and len(shards[-1].keys) < state.file_size:
                    shards[-1].keys.append(key)
                    state.shard_of[key] = len(shards) - 1
                    values[key] = value
                    state.pending[key] = 0
                    state.added[key] = None
                else:
                    state.append(key, value)
        finally:
            guard.depth -= 1
            if guard.deferred:
                _exit_hooks.operation_ended()
        if not self._hold and len(state.pending) >= self.sync_at:
            self.sync()

    _checks_values = False

    def _checked_value(self, value: Any) -> Any:
        return value

    def __delitem__(self, key: Any) -> None:
        state = self._writable()
        key = normalize_key(key)
        if key not in state.values:
            raise KeyError(key)
        with _exit_hooks.signals_deferred():
            state.delete(key)
        self._maybe_sync()

    def __contains__(self, key: object) -> bool:
        return normalize_key(key) in self._live().values

    def __len__(self) -> int:
        return len(self._live().values)

    def __iter__(self) -> Iterator[Any]:
        return self._walk_keys()

    def _walk_keys(self) -> Iterator[Key]:
        # Keys added during the iteration are visited too (tastypy's crawler example adds
        # the URLs it finds while it iterates); a key deleted meanwhile may make it skip one.
        state = self._live()
        index = position = 0
        while index < len(state.shards):
            keys = state.shards[index].keys
            if position < len(keys):
                chunk = keys[position:]
                position += len(chunk)
                yield from chunk
            else:
                index += 1
                position = 0

    def _peek(self, key: Key) -> Any:
        """Return the value of ``key`` without marking it pending."""
        return self._live().values[key]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PersistentOrderedDict):
            return self._live().values == other._live().values
        if isinstance(other, Mapping):
            return self._live().values == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable mappings are unhashable

    def __repr__(self) -> str:
        state = self._state
        if state.closed:
            return f"{type(self).__name__}({state.folder!r}, <closed>)"
        shown = []
        for count, key in enumerate(self._walk_keys()):
            if count == 10:
                shown.append(f"... ({len(state.values) - 10} more)")
                break
            shown.append(f"{key!r}: {state.values[key]!r}")
        return f"{type(self).__name__}({state.folder!r}, {{{', '.join(shown)}}})"

    def get(self, key: Any, default: Any = None) -> Any:
        """Return the value of ``key``, or ``default`` when it is absent."""
        try:
            return self[key]
        except KeyError:
            return default

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value (or ``default``; KeyError without one)."""
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        state = self._live()
        key = normalize_key(key)
        if key not in state.values:
            if default:
                return default[0]
            raise KeyError(key)
        value = state.values[key]
        del self[key]
        return value

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the most recently added item, as `dict.popitem` does."""
        state = self._live()
        for shard in reversed(state.shards):
            if shard.keys:
                key = shard.keys[-1]
                return key, self.pop(key)
        raise KeyError("popitem(): the POD is empty")

    def clear(self) -> None:
        """Remove every key; the next sync empties the store (atomically, like any sync)."""
        state = self._writable()
        with _exit_hooks.signals_deferred():
            state.clear()
        self._maybe_sync()

    def update(self, *mappings: Any, **kwargs: Any) -> None:
        """Set keys from mappings, iterables of pairs and keyword arguments (rightmost wins).

        As in tastypy, anything with a ``keys`` method is a mapping; anything else must
        yield key-value pairs.
        """
        for mapping in mappings:
            if hasattr(mapping, "keys"):
                for key in mapping.keys():  # noqa: SIM118 - tastypy: anything with keys()
                    self[key] = mapping[key]
            else:
                for key, value in mapping:
                    self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def convert_to_tracker(self) -> None:
        """Turn every value into a tracker task, so the folder opens as a `Tracker`.

        A dict value gets the task fields it lacks (``_done`` False, ``_tries`` 0,
        ``_aborted`` False); any other value ``v`` becomes ``{"val": v, ...}`` with them, as
        tastypy does. Then it syncs. Unlike tastypy's, it keeps a dict's existing task
        fields, so converting a store twice does not reset its progress.
        """
        self._writable()
        for key in list(self._walk_keys()):
            value = self[key]
            if isinstance(value, dict):
                for field, default in new_task().items():
                    value.setdefault(field, default)
            else:
                self[key] = {"val": value, **new_task()}
        self.sync()

    # -- tastypy's iteration API --------------------------------------------------------------

    def iterkeys(self) -> Iterator[Any]:
        """Iterate over the keys in the order they were first added."""
        return self._walk_keys()

    def itervalues(self) -> Iterator[Any]:
        """Iterate over the values in key order; each dict or list yielded is watched."""
        for _key, value in self.iteritems():
            yield value

    def iteritems(self) -> Iterator[tuple[Any, Any]]:
        """Iterate over (key, value) pairs in key order.

        A dict or list value yielded here may be changed in place by the loop body: its key
        is marked for checking when the loop moves on, so the change is synced.
        """
        state = self._live()
        for key in self._walk_keys():
            value = state.values.get(key, _MISSING)
            if value is _MISSING:
                continue
            yield key, value
            if isinstance(value, dict | list) and key in state.values:
                state.touch(key)
                self._maybe_sync()

    # -- synchronisation ----------------------------------------------------------------------

    def mark_dirty(self, key: Any) -> None:
        """Make ``key`` part of the next sync (a no-op write if its value did not change)."""
        state = self._live()
        key = normalize_key(key)
        if key not in state.values:
            raise KeyError(key)
        state.touch(key)

    def dirty(self) -> set[Any]:
        """Return the keys the next sync will check: set, added or read (dict/list) keys."""
        return set(self._live().pending)

    def sync(self) -> None:
        """Write all pending changes now, in one atomic step (all of them or none).

        When it returns, every change made so far is on disk (durable across power loss with
        ``durability="durable"``). A few changed keys cost one journal record and one flush;
        a thousand or more are written into the shard files directly. Raises
        `SerializationError` without writing anything if a value was changed in place into
        something JSON cannot hold.
        """
        state = self._live()
        with _exit_hooks.signals_deferred():
            state.sync()

    def sync_key(self, key: Any) -> None:
        """Write ``key`` to disk now (with any other pending change: a sync is all or nothing)."""
        self.mark_dirty(key)
        self.sync()

    def hold(self) -> None:
        """Stop syncing automatically at ``sync_at`` (exit and `sync` still sync)."""
        self._hold = True

    def unhold(self) -> None:
        """Resume syncing automatically, syncing now if ``sync_at`` keys are pending."""
        self._hold = False
        self._maybe_sync()

    def revert(self) -> None:
        """Drop every unsynced change and read the store again from disk."""
        state = self._live()
        with _exit_hooks.signals_deferred():
            state.load()

    def close(self) -> None:
        """Write everything into the shard files, then release the store.

        When it returns the store is plain tastypy files, durably (a store open for reading
        only is left as it is). This POD and its clones cannot be used afterwards.
        """
        state = self._state
        if state.closed:
            return
        with _exit_hooks.signals_deferred():
            state.close()
        _exit_hooks.unregister(state)
        with self._clones_guard:
            if self._clones.get(state.folder) is state:
                del self._clones[state.folder]

    def __enter__(self) -> PersistentOrderedDict:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _maybe_sync(self) -> None:
        if not self._hold and self._state.change_count() >= self.sync_at:
            self.sync()

    # -- deep mutation through .set -----------------------------------------------------------

    def _call_deep(self, path: tuple[Any, ...], method: str, *args: Any, **kwargs: Any) -> Any:
        if not path:
            return getattr(self, method)(*args, **kwargs)
        state = self._writable()
        key = normalize_key(path[0])
        target = state.values[key]
        for part in path[1:]:
            target = target[part]
        state.touch(key)
        result = _call_method(target, method, args, kwargs)
        self._maybe_sync()
        return result


_MISSING = object()


def _call_method(target: Any, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``target.method``; an in-place operator falls back to the plain one, as ``+=`` does."""
    function = getattr(target, method, None)
    result: Any = NotImplemented
    if function is not None:
        result = function(*args, **kwargs)
    in_place = method.startswith("__i") and method.endswith("__")
    if in_place and result is not NotImplemented and result is target:
        return IN_PLACE
    if result is NotImplemented and in_place:
        plain = getattr(target, "__" + method[3:], None)
        if plain is not None:
            result = plain(*args, **kwargs)
    if result is NotImplemented:
        if function is None and not in_place:
            raise AttributeError(f"{type(target).__name__!r} object has no attribute {method!r}")
        raise TypeError(f"unsupported operand for {method}: {type(target).__name__!r}")
    return result


def is_object_location(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an object store (``s3://bucket/prefix``) rather than a folder."""
    return isinstance(path, str) and path.startswith("s3://")


def _open_object_state(
    location: str | os.PathLike[str] | ObjectStore, file_size: int, read_only: bool
) -> ObjectState:
    owned = not isinstance(location, ObjectStore)
    store = location if isinstance(location, ObjectStore) else open_object_store(location)
    state = ObjectState(store, file_size=file_size, read_only=read_only, owns_store=owned)
    try:
        with _exit_hooks.signals_deferred():
            state.load()
    except BaseException:
        if owned:
            store.close()
        raise
    _exit_hooks.register(state)
    return state


def normalize_path(path: str | os.PathLike[str]) -> str:
    """Return ``path`` with ``~`` expanded and symlinks resolved, as a store's folder is kept."""
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


def _prepare_folder(path: str | os.PathLike[str], read_only: bool) -> tuple[str, bool]:
    """Return the store's folder and whether it opens for reading only.

    A folder this process may not write to (a read-only mount, a backup owned by someone
    else) opens for reading: nothing is created there. A missing folder is created, unless
    the store is opened for reading.
    """
    folder = normalize_path(path)
    if os.path.isdir(folder):
        return folder, read_only or not os.access(folder, os.W_OK)
    if os.path.exists(folder):
        raise NotADirectoryError(errno.ENOTDIR, "a POD's path must be a folder", folder)
    if read_only:
        raise FileNotFoundError(errno.ENOENT, "no store here", folder)
    make_dirs(folder)
    return folder, False


POD = PersistentOrderedDict
