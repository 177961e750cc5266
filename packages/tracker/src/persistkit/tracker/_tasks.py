"""What a task is: its fields, the flags the counters count, and the progress numbers.

Below both the store engine (which keeps the counters exact as values change) and the two
tracker classes (which answer the counter methods from one `Progress`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

DONE, TRIED, ABORTED = 1, 2, 4

DEFAULT_PROGRESS_TRACKER_MAPPING = (("_tries", 0), ("_done", False), ("_aborted", False))
"""The fields every tracker task has, with their defaults (tastypy's name)."""


def new_task() -> dict[str, Any]:
    """Return the value of a task that was just added."""
    return dict(DEFAULT_PROGRESS_TRACKER_MAPPING)


def task_flags(value: Any) -> int:
    """Return the done/tried/aborted bits of a tracker task value (0 for anything else)."""
    if type(value) is not dict and not isinstance(value, dict):
        return 0
    flags = DONE if value.get("_done") else 0
    tries = value.get("_tries", 0)
    if isinstance(tries, int | float) and not isinstance(tries, bool) and tries > 0:
        flags |= TRIED
    if value.get("_aborted"):
        flags |= ABORTED
    return flags


class Progress(NamedTuple):
    """A tracker's counters at one moment, ready for a progress bar.

    Attributes:
        total: the number of tasks.
        done: tasks marked done.
        tried: tasks tried at least once.
        aborted: tasks aborted.
    """

    total: int
    done: int
    tried: int
    aborted: int

    @property
    def remaining(self) -> int:
        """Tasks not done yet (aborted ones included)."""
        return self.total - self.done

    @property
    def fraction_done(self) -> float:
        """Done tasks over all tasks; 0.0 for an empty tracker."""
        return self.done / self.total if self.total else 0.0


def percent(fraction: float, decimals: int = 2) -> str:
    """Format a fraction as tastypy does: ``percent(0.347) == '34.70 %'``."""
    return f"{100 * fraction:.{decimals}f} %"


class ProgressCounters(ABC):
    """tastypy's counter methods, all answered from one `progress` snapshot."""

    @abstractmethod
    def progress(self) -> Progress:
        """Return all counters at one moment."""

    def _fraction(self, count: int, total: int) -> float:
        return count / total if total else 0.0

    def num_done(self) -> int:
        """Return the number of tasks done."""
        return self.progress().done

    def num_tried(self) -> int:
        """Return the number of tasks tried at least once."""
        return self.progress().tried

    def num_aborted(self) -> int:
        """Return the number of aborted tasks."""
        return self.progress().aborted

    def fraction_done(self) -> float:
        """Return the fraction of tasks done (0.0 for an empty tracker)."""
        progress = self.progress()
        return self._fraction(progress.done, progress.total)

    def fraction_tried(self) -> float:
        """Return the fraction of tasks tried at least once (0.0 for an empty tracker)."""
        progress = self.progress()
        return self._fraction(progress.tried, progress.total)

    def fraction_aborted(self) -> float:
        """Return the fraction of tasks aborted (0.0 for an empty tracker)."""
        progress = self.progress()
        return self._fraction(progress.aborted, progress.total)

    def percent_done(self, decimals: int = 2) -> str:
        """Return the percentage of tasks done, e.g. ``'34.70 %'``."""
        return percent(self.fraction_done(), decimals)

    def percent_not_done(self, decimals: int = 2) -> str:
        """Return the percentage of tasks not done (``'100.00 %'`` for an empty tracker)."""
        return percent(1 - self.fraction_done(), decimals)

    def percent_tried(self, decimals: int = 2) -> str:
        """Return the percentage of tasks tried at least once."""
        return percent(self.fraction_tried(), decimals)

    def percent_not_tried(self, decimals: int = 2) -> str:
        """Return the percentage of tasks never tried."""
        return percent(1 - self.fraction_tried(), decimals)

    def percent_aborted(self, decimals: int = 2) -> str:
        """Return the percentage of tasks aborted."""
        return percent(self.fraction_aborted(), decimals)

    def percent_not_aborted(self, decimals: int = 2) -> str:
        """Return the percentage of tasks not aborted."""
        return percent(1 - self.fraction_aborted(), decimals)

    def percent(self, fraction: float, decimals: int = 2) -> str:
        """Format ``fraction`` as a percentage string, as tastypy does (``'34.70 %'``)."""
        return percent(fraction, decimals)
