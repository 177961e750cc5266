"""`ProgressTracker`: a POD whose values are tasks with done, aborted and tries fields."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from persistkit.core import Durability, ObjectStore
from persistkit.core.errors import InvalidArgumentError
from persistkit.tracker._lines import normalize_key
from persistkit.tracker._object_state import ObjectState
from persistkit.tracker._pod import (
    DEFAULT_FILE_SIZE,
    DEFAULT_SYNC_AT,
    PersistentOrderedDict,
)
from persistkit.tracker._tasks import Progress, ProgressCounters, new_task
from persistkit.tracker.errors import DuplicateKeyError


class ProgressTracker(PersistentOrderedDict, ProgressCounters, opened_by_max_tries=True):
    """A `POD` of tasks, for long jobs that must pick up where they stopped.

    Each value is a dict holding at least ``_done`` (False), ``_aborted`` (False) and
    ``_tries`` (0); keep your own data for a task in the same dict. The gates (`should_do`,
    `should_try` ...) and iterators (`todo_keys`, `try_keys` ...) skip tasks that are done,
    aborted (unless ``allow_aborted``), or tried ``max_tries`` times already (0: no limit).

    Everything about syncing is the POD's: atomic syncs, at ``sync_at`` pending keys, at exit
    and on SIGTERM/SIGINT. For a job that must not redo finished work after a SIGKILL, sync
    after each `mark_done` (``sync_at=1``, or `sync_key`), or use `SharedTracker`.

    Args:
        path: the store's folder.
        max_tries: how many times a task may be tried; 0 means no limit.
        init: initial tasks, as for `update`.
        gzipped: gzip the shard files.
        file_size: tasks per shard file.
        sync_at: sync once this many keys are pending.
        clone: share memory with other trackers and PODs of this process on the folder.
        durability: ``"durable"`` or ``"atomic"``.
        read_only: open for reading only (see `POD`); read-only media always open so.

    Example:
        >>> tracker = Tracker("urls.tracker", max_tries=3)  # doctest: +SKIP
        >>> tracker.add_many_if_absent(["a", "b"])  # doctest: +SKIP
        >>> for url in tracker.try_keys():  # doctest: +SKIP
        ...     fetch(url)
        ...     tracker.mark_done(url)
    """

    def __init__(  # noqa: PLR0917 - tastypy's positional signature
        self,
        path: str | os.PathLike[str] | ObjectStore,
        max_tries: int = 0,
        init: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None,
        gzipped: bool = False,
        file_size: int = DEFAULT_FILE_SIZE,
        sync_at: int = DEFAULT_SYNC_AT,
        clone: bool = True,
        *,
        durability: Durability = "durable",
        read_only: bool = False,
    ) -> None:
        if not isinstance(max_tries, int) or isinstance(max_tries, bool) or max_tries < 0:
            raise InvalidArgumentError(f"max_tries must be an int >= 0, not {max_tries!r}")
        self.max_tries = max_tries
        super().__init__(
            path,
            init,
            gzipped,
            file_size,
            sync_at,
            clone,
            durability=durability,
            read_only=read_only,
        )

    _checks_values = True

    def _checked_value(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise InvalidArgumentError(
                f"a tracker's values are dicts (a task), not {type(value).__name__}"
            )
        for field, default in new_task().items():
            value.setdefault(field, default)
        return value

    def update(self, *mappings: Any, **kwargs: Any) -> None:
        """Merge dicts into tasks, adding the tasks that are missing.

        Each value must be a dict; it is merged into the task with `dict.update`, so you only
        give the fields you change.
        """
        pairs: list[tuple[Any, Any]] = []
        for mapping in mappings:
            if hasattr(mapping, "keys"):
                keys = mapping.keys()  # tastypy: anything with a keys() method is a mapping
                pairs.extend((key, mapping[key]) for key in keys)
            else:
                pairs.extend(mapping)
        pairs.extend(kwargs.items())
        for key, value in pairs:
            if not isinstance(value, Mapping):
                raise InvalidArgumentError(
                    f"tracker.update() merges dicts into tasks; got {type(value).__name__}"
                )
            if key not in self:
                self.add(key)
            self[key].update(value)
            self._maybe_sync()

    # -- adding tasks -------------------------------------------------------------------------

    def add(self, key: Any) -> None:
        """Add a task: not done, not aborted, no tries.

        Raises:
            DuplicateKeyError: the task exists (it is a `KeyError`).
        """
        key = normalize_key(key)
        if key in self._live().values:
            raise DuplicateKeyError(key)
        self[key] = new_task()

    def add_if_absent(self, key: Any) -> None:
        """Add a task unless it exists already."""
        key = normalize_key(key)
        if key not in self._live().values:
            self[key] = new_task()

    def add_many(self, keys_iterable: Iterable[Any]) -> None:
        """Add each task; raises `DuplicateKeyError` at the first that exists."""
        for key in keys_iterable:
            self.add(key)

    def add_many_if_absent(self, keys_iterable: Iterable[Any]) -> None:
        """Add each task that does not exist yet."""
        for key in keys_iterable:
            self.add_if_absent(key)

    # -- changing a task ----------------------------------------------------------------------

    def _task(self, key: Any) -> dict[str, Any]:
        """Return the task dict of ``key`` (KeyError if absent), marked for the next sync."""
        self._writable()
        task: dict[str, Any] = self[key]
        return task

    def _changed(self) -> None:
        self._maybe_sync()

    def mark_done(self, key: Any) -> None:
        """Mark the task done."""
        self._task(key)["_done"] = True
        self._changed()

    def mark_not_done(self, key: Any) -> None:
        """Mark the task not done."""
        self._task(key)["_done"] = False
        self._changed()

    def increment_tries(self, key: Any) -> None:
        """Add one to the task's tries."""
        task = self._task(key)
        task["_tries"] = task.get("_tries", 0) + 1
        self._changed()

    def decrement_tries(self, key: Any) -> None:
        """Take one from the task's tries (never below zero)."""
        task = self._task(key)
        task["_tries"] = max(0, task.get("_tries", 0) - 1)
        self._changed()

    def reset_tries(self, key: Any) -> None:
        """Set the task's tries to zero."""
        self._task(key)["_tries"] = 0
        self._changed()

    def abort(self, key: Any) -> None:
        """Mark the task aborted: iterators and gates skip it unless ``allow_aborted``."""
        self._task(key)["_aborted"] = True
        self._changed()

    def unabort(self, key: Any) -> None:
        """Mark the task not aborted."""
        self._task(key)["_aborted"] = False
        self._changed()

    # -- reading a task -----------------------------------------------------------------------

    def _peek_task(self, key: Any) -> dict[str, Any] | None:
        value = self._live().values.get(normalize_key(key))
        return value if isinstance(value, dict) else None

    def done(self, key: Any) -> bool:
        """Return whether the task is done; False for a key that is not a task."""
        task = self._peek_task(key)
        return bool(task and task.get("_done"))

    def tries(self, key: Any) -> int:
        """Return how many times the task was tried; 0 for a key that is not a task."""
        task = self._peek_task(key)
        return int(task.get("_tries", 0)) if task else 0

    def aborted(self, key: Any) -> bool:
        """Return whether the task is aborted; False for a key that is not a task."""
        task = self._peek_task(key)
        return bool(task and task.get("_aborted"))

    # -- gates --------------------------------------------------------------------------------

    def _worth_doing(self, task: Any, allow_aborted: bool) -> bool:
        if not isinstance(task, dict):
            return False
        return (
            not task.get("_done")
            and (self.max_tries < 1 or task.get("_tries", 0) < self.max_tries)
            and (allow_aborted or not task.get("_aborted"))
        )

    def should_do(self, key: Any, allow_aborted: bool = False) -> bool:
        """Return True if the task is not done, not aborted and not tried ``max_tries`` times.

        Raises:
            KeyError: there is no such task.
        """
        return self._worth_doing(self._peek(normalize_key(key)), allow_aborted)

    def should_do_add(self, key: Any, allow_aborted: bool = False) -> bool:
        """Like `should_do`, but add the task first if it is missing."""
        self.add_if_absent(key)
        return self.should_do(key, allow_aborted)

    def should_try(self, key: Any, allow_aborted: bool = False) -> bool:
        """Like `should_do`, and count a try when the answer is True.

        On an object store this syncs: the try is a record, decided against every record
        before it, so of machines racing for a task with ``max_tries=1`` exactly one gets
        True.
        """
        state = self._live()
        if isinstance(state, ObjectState):
            if not self.should_do(key, allow_aborted):
                return False
            return state.gated_try(normalize_key(key), self.max_tries, allow_aborted)
        if self.should_do(key, allow_aborted):
            self.increment_tries(key)
            return True
        return False

    def should_try_add(self, key: Any, allow_aborted: bool = False) -> bool:
        """Like `should_try`, but add the task first if it is missing."""
        self.add_if_absent(key)
        return self.should_try(key, allow_aborted)

    # -- iterators ----------------------------------------------------------------------------

    def todo_keys(self, allow_aborted: bool = False) -> Iterator[Any]:
        """Iterate over the tasks to do (see `should_do`), in the order they were added.

        Tasks added during the iteration are visited too.
        """
        values = self._live().values
        for key in self._walk_keys():
            if self._worth_doing(values.get(key), allow_aborted):
                yield key

    def todo_items(self, allow_aborted: bool = False) -> Iterator[tuple[Any, Any]]:
        """Iterate over (key, task) for the tasks to do; changes to the task dict are synced."""
        for key in self.todo_keys(allow_aborted):
            yield key, self[key]

    def todo_values(self, allow_aborted: bool = False) -> Iterator[Any]:
        """Iterate over the task dicts of the tasks to do."""
        for _key, value in self.todo_items(allow_aborted):
            yield value

    def try_keys(self, allow_aborted: bool = False) -> Iterator[Any]:
        """Iterate over the tasks to do, counting a try on each before it is yielded."""
        for key in self.todo_keys(allow_aborted):
            self.increment_tries(key)
            yield key

    def try_items(self, allow_aborted: bool = False) -> Iterator[tuple[Any, Any]]:
        """Like `try_keys`, yielding (key, task) pairs."""
        for key in self.try_keys(allow_aborted):
            yield key, self[key]

    def try_values(self, allow_aborted: bool = False) -> Iterator[Any]:
        """Like `try_keys`, yielding the task dicts."""
        for _key, value in self.try_items(allow_aborted):
            yield value

    def aborted_keys(self) -> Iterator[Any]:
        """Iterate over the aborted tasks, in the order they were added."""
        values = self._live().values
        for key in self._walk_keys():
            task = values.get(key)
            if isinstance(task, dict) and task.get("_aborted"):
                yield key

    def aborted_items(self) -> Iterator[tuple[Any, Any]]:
        """Iterate over (key, task) for the aborted tasks."""
        for key in self.aborted_keys():
            yield key, self[key]

    def aborted_values(self) -> Iterator[Any]:
        """Iterate over the task dicts of the aborted tasks."""
        for _key, value in self.aborted_items():
            yield value

    # -- counters -----------------------------------------------------------------------------

    def progress(self) -> Progress:
        """Return all counters at once (O(1) after the first call), e.g. for a progress bar.

        The `num_*`, `fraction_*` and `percent_*` methods answer from it.

        Example:
            >>> p = tracker.progress()  # doctest: +SKIP
            >>> bar = tqdm(total=p.total, initial=p.done)  # doctest: +SKIP
        """
        state = self._live()
        done, tried, aborted = state.task_counts()
        return Progress(len(state.values), done, tried, aborted)


Tracker = ProgressTracker
