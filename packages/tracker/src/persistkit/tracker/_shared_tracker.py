"""`SharedTracker`: a `Tracker` that many processes use at once; see `SharedPOD` for how."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from persistkit.core import Durability
from persistkit.core.errors import InvalidArgumentError
from persistkit.tracker._lines import normalize_key
from persistkit.tracker._pod import DEFAULT_FILE_SIZE, DEFAULT_SYNC_AT
from persistkit.tracker._shared import (
    SharedPersistentOrderedDict,
    copy_json,
    under_lock,
)
from persistkit.tracker._tasks import ProgressCounters
from persistkit.tracker._tracker import ProgressTracker


class SharedProgressTracker(SharedPersistentOrderedDict, ProgressCounters):
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
        options = dict(
            max_tries=max_tries,
            gzipped=gzipped,
            file_size=file_size,
            sync_at=sync_at,
            durability=durability,
            read_only=read_only,
        )
        self._open(path, options, init)

    @property
    def max_tries(self) -> int:
        """How many times a task may be tried (0: no limit); this process's setting."""
        return self._pod.max_tries

    @max_tries.setter
    def max_tries(self, value: int) -> None:
        self._pod.max_tries = self._options["max_tries"] = value

    # -- adding, changing and reading tasks: each one atomic ---------------------------------

    add = under_lock(ProgressTracker.add, one_key=True)
    add_if_absent = under_lock(ProgressTracker.add_if_absent, one_key=True)
    add_many_if_absent = under_lock(ProgressTracker.add_many_if_absent)
    mark_done = under_lock(ProgressTracker.mark_done, one_key=True)
    mark_not_done = under_lock(ProgressTracker.mark_not_done, one_key=True)
    increment_tries = under_lock(ProgressTracker.increment_tries, one_key=True)
    decrement_tries = under_lock(ProgressTracker.decrement_tries, one_key=True)
    reset_tries = under_lock(ProgressTracker.reset_tries, one_key=True)
    abort = under_lock(ProgressTracker.abort, one_key=True)
    unabort = under_lock(ProgressTracker.unabort, one_key=True)
    done = under_lock(ProgressTracker.done, one_key=True)
    tries = under_lock(ProgressTracker.tries, one_key=True)
    aborted = under_lock(ProgressTracker.aborted, one_key=True)
    should_do = under_lock(ProgressTracker.should_do, one_key=True)
    should_do_add = under_lock(ProgressTracker.should_do_add, one_key=True)
    should_try = under_lock(ProgressTracker.should_try, one_key=True)
    should_try_add = under_lock(ProgressTracker.should_try_add, one_key=True)
    progress = under_lock(ProgressTracker.progress)

    def add_many(self, keys_iterable: Iterable[Any]) -> None:
        """`Tracker.add_many`, atomically: all keys are added, or none if one exists."""
        keys = list(keys_iterable)
        with self._op() as tracker:
            existing = [key for key in keys if key in tracker]
            if existing:
                tracker.add(existing[0])
            tracker.add_many(keys)

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


SharedTracker = SharedProgressTracker
