"""`SharedPOD` and `SharedTracker`: one store used by many processes, without a server.

tastypy started a server process that owned the data and answered every call over a pipe,
which only worked with the ``fork`` start method and only among one parent's children.
Here every process keeps its own copy in memory and the folder itself is the meeting point:

- each operation takes the store's file lock (flock: released by the kernel if the holder
  dies), reads the manifest, and re-reads only the shard files other processes changed since
  it last looked (the manifest's generation and its short history of changed shards);
- an operation that changed something commits before the lock is released, so the next
  process to take the lock sees it. These commits are atomic but not fsynced; every
  ``sync_at`` changed keys, on `sync`, `close` and at exit the process makes its commits
  durable (tastypy's ``sync_at`` meant the same: how much a power cut may lose);
- `locked` holds the lock across several operations, which then commit together when the
  block ends.

Any process that opens the path cooperates: children made by fork, spawn or forkserver
(the object pickles as "open this path again"), and unrelated programs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    ValuesView,
)
from typing import Any, Concatenate, ParamSpec, TypeVar

from persistkit.core import Durability
from persistkit.core.errors import InvalidArgumentError, LockTimeoutError
from persistkit.tracker import _exit_hooks
from persistkit.tracker._exit_hooks import GUARD
from persistkit.tracker._lines import Key, normalize_key
from persistkit.tracker._pod import (
    DEFAULT_FILE_SIZE,
    DEFAULT_SYNC_AT,
    PersistentOrderedDict,
    is_object_location,
)
from persistkit.tracker._set_proxy import IN_PLACE, DeepProxy
from persistkit.tracker._state import StoreState
from persistkit.tracker.errors import ClosedStoreError, InvalidKeyError

# tastypy's names for the number of keys a shared object reads per lock while iterating.
ITERITEMS_CHUNK_SIZE = 1000
"""How many items a shared object reads per lock while iterating items (tastypy's name)."""
ITERKEYS_CHUNK_SIZE = 1000
"""How many keys a shared object reads per lock while iterating keys (tastypy's name)."""
CHUNK_SIZE = ITERITEMS_CHUNK_SIZE

_Inner = TypeVar("_Inner", bound=PersistentOrderedDict)
_Args = ParamSpec("_Args")
_Result = TypeVar("_Result")


def under_lock(
    method: Callable[Concatenate[_Inner, _Args], _Result],
    *,
    one_key: bool = False,
) -> Callable[Concatenate[SharedPersistentOrderedDict, _Args], _Result]:
    """Make ``method`` of the in-memory store a shared method: one atomic step.

    The shared method takes the store's lock, catches up with other processes, runs
    ``method`` on this process's in-memory store and commits what changed before letting go.
    Its signature is ``method``'s, for callers and for type checkers alike.

    Args:
        method: the in-memory store's method.
        one_key: ``method`` reads or changes only the key given as its first argument, and
            reads no counter, so other processes' changes to other keys may be applied
            after it, outside the lock.
    """

    @functools.wraps(method)
    def shared(self: SharedPersistentOrderedDict, /, *args: _Args.args, **kw: _Args.kwargs) -> Any:
        # _op() spelled out: this runs for every shared call, and the two context managers
        # it nests cost as much as the rest of a small call.
        GUARD.depth += 1
        try:
            self._lock_for(_only_key(args) if one_key else None)
            try:
                inner: Any = self._pod
                return method(inner, *args, **kw)
            finally:
                self.unlock()
        finally:
            GUARD.depth -= 1
            _exit_hooks.operation_ended()

    shared.__doc__ = f"`{method.__qualname__}`, as one atomic step across processes."
    return shared


def _only_key(args: tuple[Any, ...]) -> Key | None:
    try:
        return normalize_key(args[0]) if args else None
    except InvalidKeyError:
        return None  # the method raises it


def copy_json(value: Any) -> Any:
    """Return a deep copy of JSON data (dicts, lists and immutable leaves)."""
    kind = type(value)
    if kind is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if kind is list:
        return [copy_json(item) for item in value]
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [copy_json(item) for item in value]
    return value


def reopen(cls: type[SharedPersistentOrderedDict], path: str, options: dict[str, Any]) -> Any:
    """Open a shared store again in this process (how shared stores unpickle)."""
    return cls(path, **options)


class _ItemsView(ItemsView[Any, Any]):
    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        mapping: SharedPersistentOrderedDict = self._mapping  # type: ignore[attr-defined]  # set by the base
        return mapping.iteritems()


class _ValuesView(ValuesView[Any]):
    def __iter__(self) -> Iterator[Any]:
        mapping: SharedPersistentOrderedDict = self._mapping  # type: ignore[attr-defined]  # set by the base
        return mapping.itervalues()


class _StoreLockHandle:
    """A shared store's lock with the `threading.RLock` spelling: acquire, release, ``with``."""

    __slots__ = ("_store",)

    def __init__(self, store: SharedPersistentOrderedDict) -> None:
        self._store = store

    def acquire(self) -> bool:
        """Take the lock (`SharedPOD.lock`); returns True, as `threading.RLock` does."""
        self._store.lock()
        return True

    def release(self) -> None:
        """Commit and let go (`SharedPOD.unlock`)."""
        self._store.unlock()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class SharedPersistentOrderedDict(MutableMapping[Any, Any]):
    """A `POD` that many processes can use at once; every change is seen by all of them.

    Read values from the object (``shared["k"]`` returns a copy); change them through
    ``shared.set`` (``shared.set["k"]["n"] += 1``, ``shared.set["k"].append(x)``) or by
    assigning top-level keys. Each method call is atomic with respect to other processes;
    wrap read-modify-write sequences in `locked` so no other process runs in between.

    Open it once and pass it to children (any start method), or open the same path in
    unrelated programs: both work, with no server process. Locking one store never blocks
    another.

    Args:
        path: the store's folder (created if missing).
        init: initial content, applied with `update`.
        gzipped: gzip the shard files.
        file_size: keys per shard file.
        sync_at: make this process's changes durable (fsync) once this many keys changed.
        durability: ``"durable"`` or ``"atomic"`` (never fsync).
        read_only: open for reading only (see `POD`); read-only media always open so.

    Example:
        >>> pod = SharedPOD("counts.pod", init={"hits": 0})  # doctest: +SKIP
        >>> with pod.locked():  # doctest: +SKIP
        ...     pod.set["hits"] += 1
    """

    _inner_class: type[PersistentOrderedDict] = PersistentOrderedDict

    def __init__(
        self,
        path: str | os.PathLike[str],
        init: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None,
        gzipped: bool = False,
        file_size: int = DEFAULT_FILE_SIZE,
        sync_at: int = DEFAULT_SYNC_AT,
        *,
        durability: Durability = "durable",
        read_only: bool = False,
    ) -> None:
        options = dict(
            gzipped=gzipped,
            file_size=file_size,
            sync_at=sync_at,
            durability=durability,
            read_only=read_only,
        )
        self._open(path, options, init)

    def _open(
        self,
        path: str | os.PathLike[str],
        options: dict[str, Any],
        init: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None,
    ) -> None:
        """Open this process's in-memory store with ``options``, then apply ``init``."""
        if not isinstance(path, str | os.PathLike) or is_object_location(path):
            raise InvalidArgumentError(
                f"{type(self).__name__} shares a folder between processes; on an object store "
                "open a Tracker or POD: each of its syncs is shared with every other machine"
            )
        self._options = options
        self._pod = self._inner_class(path, clone=False, **options)
        self._pod.hold()
        state = self._state
        _exit_hooks.unregister(state)
        state.share()
        self._lock = state.files.lock
        self._local = threading.local()
        self._memory = threading.RLock()
        self._memory_pid = os.getpid()
        self._hold = False
        self._undurable_keys = 0
        self._closed = False
        self.set = DeepProxy(self._call_deep)
        _exit_hooks.register(self)
        if init:
            self.update(init)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (reopen, (type(self), self.path, dict(self._options)))

    @property
    def path(self) -> str:
        """The store's folder."""
        return self._pod.path

    @property
    def _state(self) -> StoreState:
        state = self._pod._state
        if not isinstance(state, StoreState):  # pragma: no cover - refused by _open
            raise TypeError("a shared store lives in a folder")
        return state

    # -- locking ------------------------------------------------------------------------------

    def _depth(self) -> int:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.pid = os.getpid()
            local.depth = 0
        depth: int = local.depth
        return depth

    def lock(self) -> None:
        """Take the store's lock: other processes wait until `unlock`.

        On taking it, this process catches up with what others committed. Reentrant in a
        thread. Prefer `locked`, which always unlocks.
        """
        self._lock_for(None)

    def _lock_for(self, key: Key | None) -> None:
        """`lock`, for an operation that touches ``key`` only (see `StoreState.refresh`)."""
        if self._closed:
            raise ClosedStoreError(f"the SharedPOD on {self.path!r} was closed")
        depth = self._depth()
        memory = self._memory_lock()
        memory.acquire()
        try:
            try:
                self._lock.acquire(timeout=0)
            except LockTimeoutError:
                # Another process holds it: apply what is shared so far while waiting.
                GUARD.depth += 1
                try:
                    self._state.catch_up_early()
                finally:
                    GUARD.depth -= 1
                self._lock.acquire()
        except BaseException:
            memory.release()
            raise
        if depth == 0:
            GUARD.depth += 1
            try:
                self._state.refresh(key)
            except BaseException:
                self._lock.release()
                memory.release()
                raise
            finally:
                GUARD.depth -= 1
        self._local.depth = depth + 1

    def _memory_lock(self) -> threading.RLock:
        # This process's copy of the store is caught up before the store's file lock is
        # taken, so the threads of one process need a lock of their own around it.
        if self._memory_pid != os.getpid():
            self._memory = threading.RLock()
            self._memory_pid = os.getpid()
        return self._memory

    def unlock(self) -> None:
        """Share what changed while locked (one journal record), and let other processes in.

        Once ``sync_at`` changed keys are not durable yet, they are flushed, after the lock is
        let go so that processes committing meanwhile share the flush.
        """
        self._release(flush=False)

    def _release(self, *, flush: bool) -> None:
        depth = self._depth()
        if depth <= 0:
            raise RuntimeError(f"the SharedPOD on {self.path!r} is not locked by this thread")
        self._local.depth = depth - 1
        try:
            if depth == 1:
                GUARD.depth += 1
                try:
                    flush = self._commit() or flush
                finally:
                    GUARD.depth -= 1
            else:
                flush = False
        finally:
            self._lock.release()
            try:
                if depth == 1:
                    self._state.apply_deferred()
            finally:
                self._memory.release()
        try:
            if flush and self._options["durability"] == "durable":
                self._state.flush()
                self._undurable_keys = 0
        finally:
            _exit_hooks.operation_ended()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block: no other process reads or writes meanwhile.

        Changes made in the block are committed together when it ends (also when it raises,
        as tastypy applied each change at once).

        Example:
            >>> with shared.locked():  # doctest: +SKIP
            ...     shared.set["some-key"] += 1
        """
        self.lock()
        try:
            yield
        finally:
            self.unlock()

    @contextlib.contextmanager
    def _op(self) -> Iterator[Any]:
        with _exit_hooks.signals_deferred():
            self.lock()
            try:
                yield self._pod
            finally:
                self.unlock()

    def _commit(self) -> bool:
        """Share what changed as one record; return whether ``sync_at`` keys await a flush.

        The store lock is held, and memory has caught up with every other process.
        """
        state = self._state
        try:
            appended = state.commit()
        except BaseException:
            # Memory may now differ from what was shared; the next lock reads it all again.
            state.forget_changes()
            state.stale = True
            raise
        if appended is None:  # a checkpoint: everything is durable
            self._undurable_keys = 0
            return False
        self._undurable_keys += appended
        return not self._hold and self._undurable_keys >= self._options["sync_at"]

    # -- syncing ------------------------------------------------------------------------------

    def sync(self) -> None:
        """Make every change this process shared durable: one flush, shared with others.

        When it returns, every change this process made through the store survives power
        loss (with ``durability="durable"``).
        """
        if self._closed:
            raise ClosedStoreError(f"the SharedPOD on {self.path!r} was closed")
        if self._depth() == 0 and not self._state.change_count():
            # Every change is shared already (outside `locked` nothing is left pending):
            # flushing needs no lock, so it can be shared with the processes that hold it.
            if self._options["durability"] == "durable":
                self._state.flush()
                self._undurable_keys = 0
            return
        self.lock()
        self._release(flush=True)

    def sync_key(self, key: Any) -> None:
        """Same as `sync` (every change is already committed; this makes it durable)."""
        normalize_key(key)
        self.sync()

    mark_dirty = under_lock(PersistentOrderedDict.mark_dirty)

    def dirty(self) -> set[Any]:
        """Return the keys changed but not committed (only non-empty inside `locked`)."""
        return self._pod.dirty()

    def hold(self) -> None:
        """Stop making changes durable at ``sync_at`` (they are still shared at once)."""
        self._hold = True

    def unhold(self) -> None:
        """Resume making changes durable, now if ``sync_at`` keys are waiting."""
        self._hold = False
        if self._undurable_keys >= self._options["sync_at"]:
            self.sync()

    revert = under_lock(PersistentOrderedDict.revert)

    def close(self) -> None:
        """Write every change into the shard files, durably, and stop using the store.

        tastypy's close: when it returns, the store's files are plain tastypy files holding
        every change any process shared before it (a store open for reading only is left as
        it is).
        """
        if self._closed:
            return
        self.checkpoint()
        self._closed = True
        _exit_hooks.unregister(self)
        self._state.close(checkpoint=False)

    def checkpoint(self) -> None:
        """Write every change shared so far into the shard files, durably, under the lock."""
        with _exit_hooks.signals_deferred():
            self.lock()
            try:
                self._state.checkpoint()
                self._undurable_keys = 0
            finally:
                self.unlock()

    @property
    def tracker_open(self) -> bool:
        """True until `close` (tastypy's name)."""
        return not self._closed

    @property
    def LOCK(self) -> _StoreLockHandle:
        """This store's lock as a lock object (tastypy's ``LOCK``): ``with shared.LOCK:``.

        tastypy had one lock for every shared store of a class; here each store has its own.
        """
        return _StoreLockHandle(self)

    def exit_sync(self) -> str | None:
        """Flush, then write every change into the shard files; the exit hooks call this.

        Returns:
            None, or one line saying what could not be written (see `StoreState.exit_report`).
        """
        if self._closed:
            return None
        state = self._state
        # Changes are pending only inside `locked()`; every other call commits them.
        unsynced = state.unsynced_count() if state.change_count() else 0
        synced = False
        try:
            self.sync()
            synced = True
            self.checkpoint()
        except Exception as error:  # at exit nobody can catch it: say it in one line
            return state.exit_report(error, unsynced, synced=synced)
        return state.exit_report(None, unsynced)

    # -- the mapping --------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        return copy_json(self._read(normalize_key(key)))

    _read = under_lock(PersistentOrderedDict._peek, one_key=True)
    __setitem__ = under_lock(PersistentOrderedDict.__setitem__, one_key=True)
    __delitem__ = under_lock(PersistentOrderedDict.__delitem__)
    __contains__ = under_lock(PersistentOrderedDict.__contains__, one_key=True)
    __len__ = under_lock(PersistentOrderedDict.__len__)

    def __iter__(self) -> Iterator[Any]:
        return self.iterkeys()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.iteritems()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable mappings are unhashable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def get(self, key: Any, default: Any = None) -> Any:
        """Return a copy of the value of ``key``, or ``default``."""
        with self._op() as pod:
            normalized = normalize_key(key)
            if normalized in pod:
                return copy_json(pod._peek(normalized))
            return default

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value (or ``default``), atomically."""
        with self._op() as pod:
            return pod.pop(key, *default)

    popitem = under_lock(PersistentOrderedDict.popitem)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Return a copy of the value of ``key``, first setting it to ``default`` if absent."""
        with self._op() as pod:
            normalized = normalize_key(key)
            if normalized not in pod:
                pod[normalized] = default
            return copy_json(pod._peek(normalized))

    clear = under_lock(PersistentOrderedDict.clear)

    def update(self, *mappings: Any, **kwargs: Any) -> None:
        """Apply `POD.update` (or `Tracker.update`) atomically: one commit for all keys."""
        with self._op() as pod:
            pod.update(*mappings, **kwargs)

    def items(self) -> ItemsView[Any, Any]:
        """A view of (key, copy of value) pairs, read in chunks."""
        return _ItemsView(self)

    def values(self) -> ValuesView[Any]:
        """A view of copies of the values, read in chunks."""
        return _ValuesView(self)

    def _chunks(self, select: Callable[[Any, Key, Any], Any | None]) -> Iterator[Any]:
        """Walk the keys in order, a chunk per lock, yielding ``select(pod, key, value)``.

        Other processes may change the store between chunks: keys they add at the end are
        visited, and a key they delete may make the walk skip one (as tastypy's did).
        """
        index = position = 0
        while True:
            out: list[Any] = []
            with self._op() as pod:
                shards = pod._state.shards
                values = pod._state.values
                while len(out) < CHUNK_SIZE and index < len(shards):
                    keys = shards[index].keys
                    if position < len(keys):
                        take = keys[position : position + CHUNK_SIZE]
                        position += len(take)
                        for key in take:
                            item = select(pod, key, values[key])
                            if item is not None:
                                out.append(item)
                    else:
                        index += 1
                        position = 0
                finished = index >= len(shards)
            yield from out
            if finished:
                return

    def iterkeys(self) -> Iterator[Any]:
        """Iterate over the keys in order, a chunk of 1000 per lock."""
        return self._chunks(lambda _pod, key, _value: key)

    def itervalues(self) -> Iterator[Any]:
        """Iterate over copies of the values in key order."""
        for _key, value in self.iteritems():
            yield value

    def iteritems(self) -> Iterator[tuple[Any, Any]]:
        """Iterate over (key, copy of value) pairs in key order."""
        return self._chunks(lambda _pod, key, value: (key, copy_json(value)))

    # -- deep mutation ------------------------------------------------------------------------

    def _call_deep(self, path: tuple[Any, ...], method: str, *args: Any, **kwargs: Any) -> Any:
        with self._op() as pod:
            result = pod._call_deep(path, method, *args, **kwargs)
            return result if result is IN_PLACE else copy_json(result)


SharedPOD = SharedPersistentOrderedDict
