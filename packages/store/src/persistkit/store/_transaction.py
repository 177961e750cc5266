"""A store's transaction: one attempt in a ``with`` block, or a loop of attempts.

On a local file a transaction holds a lock, so its one attempt always commits. On an object
store it is optimistic: read, run the block, compare-and-swap; when another writer got there
first the block must run again on a fresh read, and Python cannot run a ``with`` block twice.
Hence two forms of one object:

- ``with store.transaction() as s:`` makes one attempt; on an object store a lost race raises
  `TransactionConflictError` (nothing written).
- ``for attempt in store.transaction(): with attempt as s: ...`` runs the block until an
  attempt commits, backing off with jitter between attempts, at most ``attempts`` times
  (then `TransactionConflictError`). On a local file the first attempt commits, so the same
  code serves both.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from persistkit.core.errors import InvalidArgumentError
from persistkit.store.errors import TransactionConflictError, TransactionError

_BACKOFF_FIRST = 0.01
_BACKOFF_MOST = 1.0


class Transactional(Protocol):
    """What a store gives its transactions."""

    def _begin_transaction(self, timeout: float | None) -> None: ...

    def _end_transaction(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


S = TypeVar("S", bound=Transactional)


def backoff(failed: int) -> float:
    """Seconds to wait after ``failed`` lost attempts: full jitter, doubling, at most 1 s."""
    return random.uniform(0.0, min(_BACKOFF_MOST, _BACKOFF_FIRST * 2 ** (failed - 1)))


class Attempt(Generic[S]):
    """One try of a transaction's block: use it as ``with attempt as store:``.

    A lost compare-and-swap at the end of the block is swallowed here (the loop tries again);
    any other exception leaves the block and the loop, and nothing is committed.
    """

    def __init__(self, store: S, timeout: float | None) -> None:
        self._store = store
        self._timeout = timeout
        self.entered = False
        self.conflict: TransactionConflictError | None = None

    def __enter__(self) -> S:
        if self.entered:
            raise TransactionError("an attempt runs once; the loop makes the next one")
        self.entered = True
        self._store._begin_transaction(self._timeout)
        return self._store

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            self._store._end_transaction(exc_type, exc, tb)
        except TransactionConflictError as conflict:
            self.conflict = conflict
            return True
        if isinstance(exc, TransactionConflictError):  # an inner commit of the block lost
            self.conflict = exc
            return True
        return False


class Transaction(Generic[S]):
    """A store's transaction: a context manager for one attempt, iterable for a loop of them.

    Made by `AtomicStore.transaction`; see there.
    """

    def __init__(self, store: S, timeout: float | None, attempts: int) -> None:
        if timeout is not None and not timeout >= 0:
            raise InvalidArgumentError(f"timeout must be >= 0 or None, not {timeout!r}")
        if not isinstance(attempts, int) or attempts < 1:
            raise InvalidArgumentError(f"attempts must be an int >= 1, not {attempts!r}")
        self._store = store
        self._timeout = timeout
        self._attempts = attempts

    def __enter__(self) -> S:
        self._store._begin_transaction(self._timeout)
        return self._store

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._store._end_transaction(exc_type, exc, tb)

    def __iter__(self) -> Iterator[Attempt[S]]:
        """Yield attempts until one commits.

        Raises:
            TransactionConflictError: ``attempts`` attempts (or ``timeout`` seconds) went by
                and every attempt lost its compare-and-swap.
            TransactionError: an attempt was not used as ``with attempt:``.
        """
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        for number in range(1, self._attempts + 1):
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            attempt = Attempt(self._store, remaining)
            yield attempt
            if not attempt.entered:
                raise TransactionError("use each attempt as `with attempt as store:`")
            if attempt.conflict is None:
                return
            out_of_time = deadline is not None and time.monotonic() >= deadline
            if number == self._attempts or out_of_time:
                raise TransactionConflictError(
                    f"gave up after {number} attempts: another writer changed the value "
                    "before each could commit"
                ) from attempt.conflict
            time.sleep(backoff(number))
