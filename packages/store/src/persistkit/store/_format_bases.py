"""Base classes for user-defined formats, under the names atomic_store users know."""

from __future__ import annotations

import abc
from typing import IO, Any


class AbstractFormatFile(abc.ABC):
    r"""A format that reads and writes open files: subclass it and define `dump` and `load`.

    Binary by default; open the store with ``is_binary=False`` for a text format. Any object
    with these two methods works as a format: the base class only documents the contract and
    refuses to be instantiated while a method is missing.

    Example:
        >>> class Lines(AbstractFormatFile):
        ...     def dump(self, obj, fp, **kwargs):
        ...         fp.write("\n".join(obj))
        ...     def load(self, fp, **kwargs):
        ...         return fp.read().split("\n")
        >>> store = open("names.txt", default=[], format=Lines(), is_binary=False)  # doctest: +SKIP
    """

    @abc.abstractmethod
    def dump(self, obj: Any, fp: IO[Any], **kwargs: Any) -> None:
        """Encode ``obj`` into the open file ``fp``."""

    @abc.abstractmethod
    def load(self, fp: IO[Any], **kwargs: Any) -> Any:
        """Decode the value from the open file ``fp`` and return it."""


class AbstractFormatBstr(abc.ABC):
    """A format that converts to and from strings: subclass it and define `dumps` and `loads`.

    The strings are bytes by default; open the store with ``is_binary=False`` for ``str``.

    Example:
        >>> class Csv(AbstractFormatBstr):
        ...     def dumps(self, obj, **kwargs):
        ...         return ",".join(obj).encode()
        ...     def loads(self, binary_string, **kwargs):
        ...         return binary_string.decode().split(",")
        >>> store = open("tags.csv", default=[], format=Csv())  # doctest: +SKIP
    """

    @abc.abstractmethod
    def dumps(self, obj: Any, **kwargs: Any) -> bytes | str:
        """Encode ``obj`` and return the bytes (or ``str`` for a text format)."""

    @abc.abstractmethod
    def loads(self, binary_string: bytes | str, **kwargs: Any) -> Any:
        """Decode a value from what `dumps` returned."""


class WrapBinaryFormat(AbstractFormatFile):
    """Present a format that has only ``dumps``/``loads`` as one with ``dump``/``load``.

    Stores accept such formats directly; this wrapper exists because atomic_store exports it.

    Args:
        format_bstr: a module or object with ``dumps`` and ``loads``.
    """

    def __init__(self, format_bstr: Any) -> None:
        self.format_bstr = format_bstr

    def dump(self, obj: Any, fp: IO[Any], **kwargs: Any) -> None:
        """Encode ``obj`` with the wrapped format and write it to ``fp``."""
        fp.write(self.format_bstr.dumps(obj, **kwargs))

    def load(self, fp: IO[Any], **kwargs: Any) -> Any:
        """Read all of ``fp`` and decode it with the wrapped format."""
        return self.format_bstr.loads(fp.read(), **kwargs)
