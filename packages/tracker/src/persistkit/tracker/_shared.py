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
from typing import Any, TypeVar

from persistkit.core import Durability
from persistkit.core.errors import InvalidArgumentError
from persistkit.tracker import _exit_hooks
from persistkit.tracker._exit_hooks import GUARD
from persistkit.tracker._lines import Key, normalize_key
from persistkit.tracker._pod import (
    DEFAULT_FILE_SIZE,
    DEFAULT_SYNC_AT,
    PersistentOrderedDict,
    StoreState,
)
from persistkit.tracker._set_proxy import IN_PLACE, DeepProxy
from persistkit.tracker._tracker import Progress, ProgressTracker, percent
from persistkit.tracker.errors import ClosedStoreError

CHUNK_SIZE = 1000

_P = TypeVar("_P", bound=PersistentOrderedDict)


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


def _reopen(cls: type[SharedPersistentOrderedDict], path: str, options: dict[str, Any]) -> Any:
    return cls(path, **options)


class _ItemsView(ItemsView[Any, Any]):
    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        mapping: SharedPersistentOrderedDict = self._mapping  # type: ignore[attr-defined]  # set by the base
        return mapping.iteritems()


class _ValuesView(ValuesView[Any]):
    def __iter__(self) -> Iterator[Any]:
        mapping: SharedPersistentOrderedDict = self._mapping  # type: ignore[attr-defined]  # set by the base
        return mapping.itervalues()


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
        self._options: dict[str, Any] = {
            "gzipped": gzipped,
            "file_size": file_size,
            "sync_at": sync_at,
            "durability": durability,
            "read_only": read_only,
        }
        self._open(path)
        if init:
            self.update(init)

    def _open(self, path: str | os.PathLike[str]) -> None:
        self._pod = self._make_inner(path)
        self._pod.hold()
        state = self._pod._state
        _exit_hooks.unregister(state)
        self._lock = state.files.lock
        self._local = threading.local()
        self._hold = False
        self._undurable_keys = 0
        self._undurable_shards: set[int] = set()
        self._closed = False
        self.set = DeepProxy(self._call_deep)
        _exit_hooks.register(self)

    def _make_inner(self, path: str | os.PathLike[str]) -> PersistentOrderedDict:
        options = self._options
        return self._inner_class(
            path,
            gzipped=options["gzipped"],
            file_size=options["file_size"],
            sync_at=options["sync_at"],
            clone=False,
            durability=options["durability"],
            read_only=options["read_only"],
        )

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (_reopen, (type(self), self.path, dict(self._options)))

    @property
    def path(self) -> str:
        """The store's folder."""
        return self._pod.path

    @property
    def _state(self) -> StoreState:
        return self._pod._state

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
        if self._closed:
            raise ClosedStoreError(f"the SharedPOD on {self.path!r} was closed")
        depth = self._depth()
        self._lock.acquire()
        if depth == 0:
            GUARD.depth += 1
            try:
                self._state.refresh()
            except BaseException:
                self._lock.release()
                raise
            finally:
                GUARD.depth -= 1
        self._local.depth = depth + 1

    def unlock(self) -> None:
        """Commit what changed while locked, and let other processes in."""
        depth = self._depth()
        if depth <= 0:
            raise RuntimeError(f"the SharedPOD on {self.path!r} is not locked by this thread")
        self._local.depth = depth - 1
        try:
            if depth == 1:
                GUARD.depth += 1
                try:
                    self._commit(durable=False)
                finally:
                    GUARD.depth -= 1
        finally:
            self._lock.release()
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

    def _commit(self, *, durable: bool) -> None:
        """Commit pending changes; durable when asked or when ``sync_at`` keys are undurable."""
        state = self._state
        changed = len(state.pending) + len(state.rewrite_shards)
        if not changed and not (durable and self._undurable_shards):
            return
        options = self._options
        durable = options["durability"] == "durable" and (
            durable or (not self._hold and self._undurable_keys + changed >= options["sync_at"])
        )
        shards = {state.shard_of[key] for key in state.pending} | state.rewrite_shards
        if durable:
            state.force_shards |= self._undurable_shards
        try:
            state.sync("durable" if durable else "atomic")
        except BaseException:
            # Memory may now differ from disk; the next lock reads the store again.
            state.generation = -1
            state.pending.clear()
            state.rewrite_shards.clear()
            state.force_shards.clear()
            raise
        if durable:
            self._undurable_keys = 0
            self._undurable_shards.clear()
        else:
            self._undurable_keys += changed
            self._undurable_shards |= shards

    # -- syncing ------------------------------------------------------------------------------

    def sync(self) -> None:
        """Make every change this process committed durable (fsync); atomic as always."""
        self.lock()
        try:
            GUARD.depth += 1
            try:
                self._commit(durable=True)
            finally:
                GUARD.depth -= 1
        finally:
            self.unlock()

    def sync_key(self, key: Any) -> None:
        """Same as `sync` (every change is already committed; this makes it durable)."""
        normalize_key(key)
        self.sync()

    def mark_dirty(self, key: Any) -> None:
        """Re-check ``key`` against the disk at once (commits it if it differs)."""
        with self._op() as pod:
            pod.mark_dirty(key)

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

    def revert(self) -> None:
        """Read the whole store again from disk (every change is committed already)."""
        with self._op() as pod:
            pod.revert()

    def close(self) -> None:
        """Make this process's changes durable and stop using the store (tastypy's close)."""
        if self._closed:
            return
        self.sync()
        self._closed = True
        self._state.closed = True
        _exit_hooks.unregister(self)
        self._state.files.close_lock()

    def exit_sync(self) -> None:
        """Commit and make durable what this process changed (the exit hooks call this)."""
        if self._closed:
            return
        state = self._state
        if state.pending or state.rewrite_shards or self._undurable_shards:
            self.sync()

    # -- the mapping --------------------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        with self._op() as pod:
            return copy_json(pod._peek(normalize_key(key)))

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._op() as pod:
            pod[key] = value

    def __delitem__(self, key: Any) -> None:
        with self._op() as pod:
            del pod[key]

    def __contains__(self, key: object) -> bool:
        with self._op() as pod:
            return key in pod

    def __len__(self) -> int:
        with self._op() as pod:
            return len(pod)

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

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the most recently added item, atomically."""
        with self._op() as pod:
            item: tuple[Any, Any] = pod.popitem()
            return item

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Return a copy of the value of ``key``, first setting it to ``default`` if absent."""
        with self._op() as pod:
            normalized = normalize_key(key)
            if normalized not in pod:
                pod[normalized] = default
            return copy_json(pod._peek(normalized))

    def clear(self) -> None:
        """Remove every key, atomically."""
        with self._op() as pod:
            pod.clear()

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


class SharedProgressTracker(SharedPersistentOrderedDict):
    """A `Tracker` that many processes can use at once; see `SharedPOD` for how.

    Every `Tracker` method is available and atomic. `try_keys` and its siblings check and
    count each try under the lock, so two workers iterating together never take a task past
    ``max_tries`` between them.

    Args:
        path: the store's folder.
        max_tries: how many times a task may be tried; 0 means no limit.
        init: initial tasks, as for `Tracker.update`.
        gzipped: gzip the shard files.
        file_size: tasks per shard file.
        sync_at: make this process's changes durable once this many keys changed.
        durability: ``"durable"`` or ``"atomic"``.
        read_only: open for reading only (see `POD`); read-only media always open so.

    Example:
        >>> tracker = SharedTracker("jobs.tracker", max_tries=2)  # doctest: +SKIP
        >>> for key in tracker.try_keys():  # doctest: +SKIP
        ...     run(key)
        ...     tracker.mark_done(key)
    """

    _inner_class = ProgressTracker
    _pod: ProgressTracker

    def __init__(  # noqa: PLR0917 - tastypy's positional signature
        self,
        path: str | os.PathLike[str],
        max_tries: int = 0,
        init: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None,
        gzipped: bool = False,
        file_size: int = DEFAULT_FILE_SIZE,
        sync_at: int = DEFAULT_SYNC_AT,
        *,
        durability: Durability = "durable",
        read_only: bool = False,
    ) -> None:
        if not isinstance(max_tries, int) or isinstance(max_tries, bool) or max_tries < 0:
            raise InvalidArgumentError(f"max_tries must be an int >= 0, not {max_tries!r}")
        self._max_tries = max_tries
        super().__init__(
            path,
            init,
            gzipped,
            file_size,
            sync_at,
            durability=durability,
            read_only=read_only,
        )

    def _make_inner(self, path: str | os.PathLike[str]) -> PersistentOrderedDict:
        options = self._options
        return ProgressTracker(
            path,
            self._max_tries,
            gzipped=options["gzipped"],
            file_size=options["file_size"],
            sync_at=options["sync_at"],
            clone=False,
            durability=options["durability"],
            read_only=options["read_only"],
        )

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (_reopen, (type(self), self.path, {**self._options, "max_tries": self.max_tries}))

    @property
    def max_tries(self) -> int:
        """How many times a task may be tried (0: no limit); this process's setting."""
        return self._pod.max_tries

    @max_tries.setter
    def max_tries(self, value: int) -> None:
        self._pod.max_tries = value

    def _call(self, name: str, *args: Any) -> Any:
        with self._op() as tracker:
            return getattr(tracker, name)(*args)

    # -- adding and changing tasks (each atomic) ----------------------------------------------

    def add(self, key: Any) -> None:
        """`Tracker.add`, atomically."""
        self._call("add", key)

    def add_if_absent(self, key: Any) -> None:
        """`Tracker.add_if_absent`, atomically."""
        self._call("add_if_absent", key)

    def add_many(self, keys_iterable: Iterable[Any]) -> None:
        """`Tracker.add_many`, atomically (one commit; nothing added if a key exists)."""
        keys = list(keys_iterable)
        with self._op() as tracker:
            existing = [key for key in keys if key in tracker]
            if existing:
                tracker.add(existing[0])
            tracker.add_many(keys)

    def add_many_if_absent(self, keys_iterable: Iterable[Any]) -> None:
        """`Tracker.add_many_if_absent`, atomically (one commit)."""
        self._call("add_many_if_absent", list(keys_iterable))

    def mark_done(self, key: Any) -> None:
        """`Tracker.mark_done`, atomically."""
        self._call("mark_done", key)

    def mark_not_done(self, key: Any) -> None:
        """`Tracker.mark_not_done`, atomically."""
        self._call("mark_not_done", key)

    def increment_tries(self, key: Any) -> None:
        """`Tracker.increment_tries`, atomically."""
        self._call("increment_tries", key)

    def decrement_tries(self, key: Any) -> None:
        """`Tracker.decrement_tries`, atomically."""
        self._call("decrement_tries", key)

    def reset_tries(self, key: Any) -> None:
        """`Tracker.reset_tries`, atomically."""
        self._call("reset_tries", key)

    def abort(self, key: Any) -> None:
        """`Tracker.abort`, atomically."""
        self._call("abort", key)

    def unabort(self, key: Any) -> None:
        """`Tracker.unabort`, atomically."""
        self._call("unabort", key)

    # -- reading tasks ------------------------------------------------------------------------

    def done(self, key: Any) -> bool:
        """`Tracker.done`."""
        return bool(self._call("done", key))

    def tries(self, key: Any) -> int:
        """`Tracker.tries`."""
        return int(self._call("tries", key))

    def aborted(self, key: Any) -> bool:
        """`Tracker.aborted`."""
        return bool(self._call("aborted", key))

    def should_do(self, key: Any, allow_aborted: bool = False) -> bool:
        """`Tracker.should_do`."""
        return bool(self._call("should_do", key, allow_aborted))

    def should_do_add(self, key: Any, allow_aborted: bool = False) -> bool:
        """`Tracker.should_do_add`, atomically."""
        return bool(self._call("should_do_add", key, allow_aborted))

    def should_try(self, key: Any, allow_aborted: bool = False) -> bool:
        """`Tracker.should_try`, atomically: check and count the try under one lock."""
        return bool(self._call("should_try", key, allow_aborted))

    def should_try_add(self, key: Any, allow_aborted: bool = False) -> bool:
        """`Tracker.should_try_add`, atomically."""
        return bool(self._call("should_try_add", key, allow_aborted))

    # -- iterators ----------------------------------------------------------------------------

    def _todo(self, allow_aborted: bool) -> Iterator[tuple[Any, Any]]:
        return self._chunks(
            lambda tracker, key, value: (
                (key, value) if tracker._worth_doing(value, allow_aborted) else None
            )
        )

    def todo_keys(self, allow_aborted: bool = False) -> Iterator[Any]:
        """Iterate over the tasks to do, a chunk per lock."""
        for key, _value in self._todo(allow_aborted):
            yield key

    def todo_items(self, allow_aborted: bool = False) -> Iterator[tuple[Any, Any]]:
        """Iterate over (key, copy of task) for the tasks to do."""
        for key, value in self._todo(allow_aborted):
            yield key, copy_json(value)

    def todo_values(self, allow_aborted: bool = False) -> Iterator[Any]:
        """Iterate over copies of the tasks to do."""
        for _key, value in self.todo_items(allow_aborted):
            yield value

    def try_items(self, allow_aborted: bool = False) -> Iterator[tuple[Any, Any]]:
        """Iterate over the tasks to do, counting each try atomically before yielding it."""
        for key, _value in self._todo(allow_aborted):
            with self._op() as tracker:
                if key not in tracker or not tracker.should_try(key, allow_aborted):
                    continue
                value = copy_json(tracker._peek(normalize_key(key)))
            yield key, value

    def try_keys(self, allow_aborted: bool = False) -> Iterator[Any]:
        """Like `Tracker.try_keys`; the check and the try count are one atomic step."""
        for key, _value in self.try_items(allow_aborted):
            yield key

    def try_values(self, allow_aborted: bool = False) -> Iterator[Any]:
        """Like `try_items`, yielding copies of the tasks."""
        for _key, value in self.try_items(allow_aborted):
            yield value

    def _aborted(self) -> Iterator[tuple[Any, Any]]:
        return self._chunks(
            lambda _tracker, key, value: (
                (key, value) if isinstance(value, dict) and value.get("_aborted") else None
            )
        )

    def aborted_keys(self) -> Iterator[Any]:
        """Iterate over the aborted tasks."""
        for key, _value in self._aborted():
            yield key

    def aborted_items(self) -> Iterator[tuple[Any, Any]]:
        """Iterate over (key, copy of task) for the aborted tasks."""
        for key, value in self._aborted():
            yield key, copy_json(value)

    def aborted_values(self) -> Iterator[Any]:
        """Iterate over copies of the aborted tasks."""
        for _key, value in self.aborted_items():
            yield value

    # -- counters -----------------------------------------------------------------------------

    def progress(self) -> Progress:
        """`Tracker.progress`: all counters at one moment."""
        result: Progress = self._call("progress")
        return result

    def num_done(self) -> int:
        """`Tracker.num_done`."""
        return self.progress().done

    def num_tried(self) -> int:
        """`Tracker.num_tried`."""
        return self.progress().tried

    def num_aborted(self) -> int:
        """`Tracker.num_aborted`."""
        return self.progress().aborted

    def _fraction(self, pick: Callable[[Progress], int]) -> float:
        progress = self.progress()
        return pick(progress) / progress.total if progress.total else 0.0

    def fraction_done(self) -> float:
        """`Tracker.fraction_done` (0.0 for an empty tracker)."""
        return self._fraction(lambda p: p.done)

    def fraction_tried(self) -> float:
        """`Tracker.fraction_tried`."""
        return self._fraction(lambda p: p.tried)

    def fraction_aborted(self) -> float:
        """`Tracker.fraction_aborted`."""
        return self._fraction(lambda p: p.aborted)

    def percent_done(self, decimals: int = 2) -> str:
        """`Tracker.percent_done`."""
        return percent(self.fraction_done(), decimals)

    def percent_not_done(self, decimals: int = 2) -> str:
        """`Tracker.percent_not_done`."""
        return percent(1 - self.fraction_done(), decimals)

    def percent_tried(self, decimals: int = 2) -> str:
        """`Tracker.percent_tried`."""
        return percent(self.fraction_tried(), decimals)

    def percent_not_tried(self, decimals: int = 2) -> str:
        """`Tracker.percent_not_tried`."""
        return percent(1 - self.fraction_tried(), decimals)

    def percent_aborted(self, decimals: int = 2) -> str:
        """`Tracker.percent_aborted`."""
        return percent(self.fraction_aborted(), decimals)

    def percent_not_aborted(self, decimals: int = 2) -> str:
        """`Tracker.percent_not_aborted`."""
        return percent(1 - self.fraction_aborted(), decimals)

    def percent(self, fraction: float, decimals: int = 2) -> str:
        """Format ``fraction`` as tastypy does (``'34.70 %'``)."""
        return percent(fraction, decimals)


SharedPOD = SharedPersistentOrderedDict
SharedTracker = SharedProgressTracker
