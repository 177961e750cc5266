"""``BaseClass``: iodict's base class, kept for code that subclasses or checks it."""

from __future__ import annotations

from types import TracebackType
from typing import Any


class BaseClass:
    """The base class iodict 0.0.8 gives its `IODict`; a context manager that keeps errors.

    Code written for iodict that subclasses ``iodict.BaseClass`` (or checks
    ``isinstance(x, iodict.BaseClass)``) keeps working with ``persistkit.iodict.BaseClass``.
    Entering returns the object; leaving never swallows an exception. iodict 0.0.8 printed
    the traceback of an exception leaving the block before re-raising it; persistkit does
    not print, the exception propagates as it is.

    Example:
        >>> class Settings(BaseClass):
        ...     pass
        >>> with Settings() as s:
        ...     isinstance(s, BaseClass)
        True
    """

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Leave the block; an exception propagates unchanged."""
