"""Formats: how a value becomes bytes in a file and back.

A format is named (``"json"``, ``"pickle"``, ``"bson"``) or given as any module or object that
has ``dump``/``load`` (file-based) or ``dumps``/``loads`` (string-based), which is how
atomic_store users already pass formats. `resolve_format` turns any of these into a `Codec`.

JSON refuses NaN and Infinity by default (``allow_nan=False``): ``json.dumps`` writes them as
``NaN`` and ``Infinity``, which are not JSON and which other readers reject. Pass
``dump_kwargs={"allow_nan": True}`` to write them anyway. JSON has no tuples and no
non-string keys: a tuple comes back as a list and an int key as a string.

Pickle executes code while loading: only ever load pickled files you trust.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
from collections.abc import Mapping
from typing import IO, Any

from persistkit.core.errors import (
    CorruptFileError,
    FormatError,
    SerializationError,
    UnloadableValueError,
)

_NAMED = ("json", "pickle", "bson")
_JSON_DUMP_DEFAULTS: dict[str, Any] = {"allow_nan": False}
_SMALL_INPUT = 64 << 20


class Codec:
    """A resolved format with fixed keyword arguments and a known text/binary mode.

    Attributes:
        name: a short name for messages (``"json"``, ``"pickle"``, ``"bson"`` or the object's
            name).
        is_binary: whether files of this format are opened in binary mode.
        format: the module or object that encodes and decodes.
        dump_kwargs: the keyword arguments every dump gets (a copy).
        load_kwargs: the keyword arguments every load gets (a copy).

    Encoding errors raise `SerializationError`. `decode` turns decoding errors into
    `CorruptFileError` or `UnloadableValueError` naming the file; `load` and `loads` let them
    propagate unchanged.
    """

    __slots__ = ("_dump_kwargs", "_file_based", "_format", "_load_kwargs", "is_binary", "name")

    def __init__(
        self,
        format: Any,
        *,
        name: str,
        is_binary: bool,
        dump_kwargs: Mapping[str, Any] | None = None,
        load_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        has_file_api = callable(getattr(format, "dump", None)) and callable(
            getattr(format, "load", None)
        )
        has_string_api = callable(getattr(format, "dumps", None)) and callable(
            getattr(format, "loads", None)
        )
        if not (has_file_api or has_string_api):
            raise FormatError(
                f"format {name!r} has neither dump/load nor dumps/loads; "
                f"use None, 'json', 'pickle', 'bson' or an object with those methods"
            )
        self._format = format
        self._file_based = has_file_api
        self.name = name
        self.is_binary = is_binary
        self._dump_kwargs = dict(dump_kwargs or {})
        self._load_kwargs = dict(load_kwargs or {})

    def dump(self, value: Any, file: IO[Any]) -> None:
        """Write ``value`` to an open file of the right mode (may stream)."""
        try:
            if self._file_based:
                self._format.dump(value, file, **self._dump_kwargs)
            else:
                file.write(self._format.dumps(value, **self._dump_kwargs))
        except (OSError, MemoryError):
            raise
        except Exception as error:
            raise self.encoding_error(error) from error

    def dumps(self, value: Any) -> bytes:
        """Return the encoded bytes of ``value`` (text formats are UTF-8)."""
        try:
            if self._file_based:
                buffer: io.BytesIO | io.StringIO = io.BytesIO() if self.is_binary else io.StringIO()
                self._format.dump(value, buffer, **self._dump_kwargs)
                encoded = buffer.getvalue()
            else:
                encoded = self._format.dumps(value, **self._dump_kwargs)
        except MemoryError:
            raise
        except Exception as error:
            raise self.encoding_error(error) from error
        return encoded.encode("utf-8") if isinstance(encoded, str) else bytes(encoded)

    @property
    def format(self) -> Any:
        """The module or object that encodes and decodes (``json``, ``pickle``, yours...)."""
        return self._format

    @property
    def dump_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every dump gets (a copy)."""
        return dict(self._dump_kwargs)

    @property
    def load_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every load gets (a copy)."""
        return dict(self._load_kwargs)

    def encoding_error(self, error: Exception) -> SerializationError:
        """Return the `SerializationError` for an error this codec's encoder raised.

        For callers that run the encoder themselves (a faster path, say) and must fail
        exactly as `dump` and `dumps` do.
        """
        message = f"cannot encode value as {self.name}: {error}"
        if isinstance(error, ValueError) and "Out of range float" in str(error):
            # json's own words for NaN and Infinity, which allow_nan=False refuses.
            message += (
                " (NaN and Infinity are not JSON; pass dump_kwargs={'allow_nan': True} "
                "to write them as Python's json does by default)"
            )
        return SerializationError(message)

    def load(self, file: IO[Any]) -> Any:
        """Read a value from an open file of the right mode."""
        if self._file_based:
            return self._format.load(file, **self._load_kwargs)
        return self._format.loads(file.read(), **self._load_kwargs)

    def loads(self, data: bytes) -> Any:
        """Decode a value from bytes (text formats are read as UTF-8)."""
        if self._file_based:
            buffer: IO[Any] = io.BytesIO(data) if self.is_binary else io.StringIO(data.decode())
            return self._format.load(buffer, **self._load_kwargs)
        return self._format.loads(data if self.is_binary else data.decode(), **self._load_kwargs)

    def decode(self, data: bytes, path: str) -> Any:
        """Decode the content of the file ``path``, saying precisely why when it cannot.

        Args:
            data: the file's encoded value.
            path: the file it came from, for the error.

        Returns:
            The value.

        Raises:
            CorruptFileError: the bytes are not a value of this format (empty, truncated,
                damaged), including a decoder that asks for far more memory than ``data``
                could describe.
            UnloadableValueError: the bytes are intact but name a class or module that this
                program cannot import (pickle).
        """
        try:
            return self.loads(data)
        except MemoryError:
            # A damaged length field (a pickle FRAME header, say) can make a decoder ask for
            # gigabytes; from a small input that is corruption, not a lack of memory.
            if len(data) < _SMALL_INPUT:
                raise CorruptFileError(path, "it declares more data than it holds") from None
            raise
        except (ImportError, AttributeError) as error:
            # pickle's find_class raises these when the named module or class is missing.
            if self.name == "pickle":
                raise UnloadableValueError(path, f"{type(error).__name__}: {error}") from error
            raise CorruptFileError(path, f"{type(error).__name__}: {error}") from error
        except Exception as error:
            raise CorruptFileError(path, f"{type(error).__name__}: {error}") from error

    def __repr__(self) -> str:
        mode = "binary" if self.is_binary else "text"
        return f"<Codec {self.name} ({mode})>"


class _Bson:
    """Adapts whichever ``bson`` module is installed to dumps/loads.

    pymongo ships ``bson`` with ``encode``/``decode``; the standalone ``bson`` package has
    ``dumps``/``loads``. Both install as the top-level name ``bson``, so only one can be
    present; either works.
    """

    def __init__(self) -> None:
        try:
            module = importlib.import_module("bson")
        except ImportError as error:
            raise FormatError(
                "the 'bson' format needs pymongo (pip install 'persistkit-core[bson]') "
                "or the standalone bson package"
            ) from error
        if callable(getattr(module, "encode", None)):
            self._encode, self._decode = module.encode, module.decode
        elif callable(getattr(module, "dumps", None)):
            self._encode, self._decode = module.dumps, module.loads
        else:
            raise FormatError("the installed 'bson' module has neither encode nor dumps")

    def dumps(self, value: Any, **kwargs: Any) -> bytes:
        if not isinstance(value, Mapping):
            raise TypeError(f"BSON stores a document (a mapping), not {type(value).__name__}")
        return bytes(self._encode(value, **kwargs))

    def loads(self, data: bytes, **kwargs: Any) -> Any:
        return self._decode(data, **kwargs)


def resolve_format(
    format: Any = None,
    *,
    is_binary: bool | None = None,
    dump_kwargs: Mapping[str, Any] | None = None,
    load_kwargs: Mapping[str, Any] | None = None,
) -> Codec:
    """Turn a format as users give it into a `Codec`.

    Args:
        format: None or ``"json"`` (the default), ``"pickle"``, ``"bson"``, a `Codec`, or any
            module or object with ``dump``/``load`` or ``dumps``/``loads``.
        is_binary: open files in binary mode; by default True for every format but JSON
            (atomic_store's rule).
        dump_kwargs: keyword arguments for every dump. JSON starts from
            ``{"allow_nan": False}`` (NaN and Infinity raise `SerializationError`); pass
            ``{"allow_nan": True}`` to write them.
        load_kwargs: keyword arguments for every load.

    Returns:
        The codec.

    Raises:
        FormatError: an unknown name, or an object without the needed methods.

    Example:
        >>> resolve_format(None)
        <Codec json (text)>
        >>> resolve_format("pickle").is_binary
        True
    """
    if isinstance(format, Codec):
        if is_binary is None and dump_kwargs is None and load_kwargs is None:
            return format
        format = format._format
    if format is None or format == "json" or format is json:
        implementation: Any = json
        name = "json"
        dump_kwargs = {**_JSON_DUMP_DEFAULTS, **(dump_kwargs or {})}
    elif format == "pickle" or format is pickle:
        implementation, name = pickle, "pickle"
    elif format == "bson" or getattr(format, "__name__", None) == "bson":
        implementation, name = _Bson(), "bson"
    elif isinstance(format, str):
        raise FormatError(f"unknown format {format!r}; choose one of {list(_NAMED)} or an object")
    else:
        implementation = format
        name = getattr(format, "__name__", type(format).__name__)
    binary = (name != "json") if is_binary is None else is_binary
    return Codec(
        implementation,
        name=name,
        is_binary=binary,
        dump_kwargs=dump_kwargs,
        load_kwargs=load_kwargs,
    )
