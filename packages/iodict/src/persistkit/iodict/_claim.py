"""`Claim`: an item delivered by `DurableQueue.claim`, to be acknowledged or given back."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class Settler(Protocol):
    """What a claim needs of its queue (the queue implements it)."""

    def _ack(self, claim: Claim[Any]) -> None: ...
    def _nack(self, claim: Claim[Any], delay: float, count_try: bool) -> None: ...
    def _dead_letter(self, claim: Claim[Any], reason: str) -> None: ...
    def _renew(self, claim: Claim[Any], lease: float | None) -> None: ...


class Claim(Generic[T]):
    """An item leased to this process by `DurableQueue.claim`.

    Until it is settled the item stays in the queue's directory, leased: if this process
    dies, or the lease runs out, the item is delivered again (to any consumer), with its
    try count raised. Settle it exactly once: `ack` when the work is done, `nack` to give
    it back, or `dead_letter` to set it aside. Used as a context manager it acks when the
    block ends normally and nacks when it raises (a ``KeyboardInterrupt`` or
    ``SystemExit`` gives the item back without counting the try).

    A claim belongs to the process that took it; it does not pickle.

    Attributes:
        item: the value that was put.
        id: the item's number in the queue.
        tries: how many times ``claim()`` has delivered this item, this time included.
        deadline: when the lease ends, in seconds since the epoch (`time.time`).

    Example:
        >>> with jobs.claim(timeout=10) as job:  # doctest: +SKIP
        ...     results[job.item] = work(job.item)
    """

    __module__ = "persistkit.iodict"
    __slots__ = ("_owner", "_queue", "_settled", "deadline", "id", "item", "tries")

    def __init__(
        self, queue: Settler, item: T, *, id: int, tries: int, deadline: float, owner: str
    ) -> None:
        self._queue = queue
        self._owner = owner
        self._settled = False
        self.item = item
        self.id = id
        self.tries = tries
        self.deadline = deadline

    @property
    def settled(self) -> bool:
        """Whether `ack`, `nack` or `dead_letter` was called (successfully) on this claim."""
        return self._settled

    def ack(self) -> None:
        """Acknowledge the item: it is finished and will not be delivered again.

        Guarantees when it returns: the item is gone from the queue, durably with the
        queue's default durability, and it counts as a finished task for `join`.

        Raises:
            LeaseLostError: the lease had run out and another consumer claimed the item
                (or this claim was already settled); nothing was changed.
        """
        self._queue._ack(self)
        self._settled = True

    def nack(self, *, delay: float = 0.0, count_try: bool = True) -> None:
        """Give the item back to the queue, to be delivered again after ``delay`` seconds.

        A given-back item is delivered before the items that wait at the head. If it has
        already had ``max_tries`` tries it goes to the dead-letter area instead.

        Args:
            delay: seconds before it may be delivered again.
            count_try: False does not count this delivery as a try (e.g., a worker that
                shuts down before it started on the item).

        Raises:
            LeaseLostError: the lease was lost; nothing was changed.
        """
        self._queue._nack(self, delay, count_try)
        self._settled = True

    def dead_letter(self, reason: str = "moved aside by its consumer") -> None:
        """Move the item to the dead-letter area now; it will not be delivered again.

        Raises:
            LeaseLostError: the lease was lost; nothing was changed.
        """
        self._queue._dead_letter(self, reason)
        self._settled = True

    def renew(self, lease: float | None = None) -> None:
        """Extend the lease to ``lease`` seconds (default: the queue's) from now.

        Raises:
            LeaseLostError: the lease was lost; nothing was changed.
        """
        self._queue._renew(self, lease)

    def __enter__(self) -> Claim[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._settled:
            return
        if exc_type is None:
            self.ack()
        else:
            self.nack(count_try=issubclass(exc_type, Exception))

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Claim belongs to the process that took it and does not pickle")

    def __repr__(self) -> str:
        state = "settled" if self._settled else "leased"
        return f"<Claim id={self.id} tries={self.tries} {state}: {self.item!r}>"
