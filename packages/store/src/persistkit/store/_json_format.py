"""JSON encoded by the C encoder before any file is touched, then written in slices.

``json.dump`` streams, but through the pure-Python encoder, about 3x slower than
``json.dumps``; ``json.dumps(...).encode()`` is fast but holds the document twice (as ``str``
and as ``bytes``). Encoding to one ``str`` with the C encoder and writing it to core's
temporary file in UTF-8 slices keeps one encoded copy and the C encoder's speed (measured in
bench/bench_store.py). Encoding first also means that a value JSON cannot encode fails
before even a temporary file exists.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Mapping
from typing import IO, Any

from persistkit.core import AtomicWriter, Codec, Durability, WriteResult, write_bytes

_SLICE = 1 << 18
"""Characters encoded and written per call: large enough that the per-call cost vanishes,
small enough that one encoded slice is negligible next to the document."""


def _slices(text: str) -> Iterator[str]:
    for start in range(0, len(text), _SLICE):
        yield text[start : start + _SLICE]


class SlicedJson:
    """A format object for core's `resolve_format`: JSON with atomic_store's dump/load API."""

    def __init__(self) -> None:
        self.__name__ = "json"

    def dump(self, obj: Any, fp: IO[Any], **kwargs: Any) -> None:
        """Encode ``obj`` as JSON into ``fp`` (text, or binary written as UTF-8)."""
        binary = not isinstance(fp, io.TextIOBase)
        for piece in _slices(json.dumps(obj, **kwargs)):
            fp.write(piece.encode("utf-8") if binary else piece)

    def load(self, fp: IO[Any], **kwargs: Any) -> Any:
        """Decode one JSON document from ``fp``."""
        return json.load(fp, **kwargs)


SLICED_JSON = SlicedJson()


def encode_json(value: Any, codec: Codec, dump_kwargs: Mapping[str, Any]) -> bytes:
    """Return ``value`` as UTF-8 JSON with the C encoder (for a store in an object store).

    Raises:
        SerializationError: ``value`` cannot be encoded.
    """
    try:
        return json.dumps(value, **dump_kwargs).encode("utf-8")
    except MemoryError:
        raise
    except (TypeError, ValueError, RecursionError) as error:  # UnicodeEncodeError included
        raise codec.encoding_error(error) from error


def write_json(
    path: str | os.PathLike[str],
    value: Any,
    codec: Codec,
    dump_kwargs: Mapping[str, Any],
    *,
    durability: Durability,
) -> WriteResult:
    """Replace ``path`` with ``value`` as UTF-8 JSON, atomically (and durably if asked).

    ``dump_kwargs`` are ``codec``'s (passed in so a commit does not copy them); errors are
    the codec's.

    Raises:
        SerializationError: ``value`` cannot be encoded; the file was not touched.
    """
    try:
        text = json.dumps(value, **dump_kwargs)
        # One slice: a bytes copy of it costs nothing and one write is fastest.
        small = text.encode("utf-8") if len(text) <= _SLICE else None
    except MemoryError:
        raise
    except (TypeError, ValueError, RecursionError) as error:
        raise codec.encoding_error(error) from error
    if small is not None:
        return write_bytes(path, small, durability=durability)
    writer = AtomicWriter(path, "wb", durability=durability)
    try:
        with writer.open() as file:
            for piece in _slices(text):
                file.write(piece.encode("utf-8"))
    except UnicodeEncodeError as error:  # a lone surrogate with ensure_ascii=False
        raise codec.encoding_error(error) from error
    if writer.result is None:  # pragma: no cover - a finished writer always has a result
        raise RuntimeError("the writer finished without a result")
    return writer.result
