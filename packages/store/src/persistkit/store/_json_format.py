"""JSON encoded by the C encoder and written to the temporary file in slices.

``json.dump`` streams, but through the pure-Python encoder, several times slower than
``json.dumps``; ``json.dumps(...).encode()`` is fast but holds the document twice (as ``str``
and as ``bytes``) next to the value. Encoding to one ``str`` with the C encoder and writing it in
slices keeps one encoded copy and the C encoder's speed (measured in bench/bench_store.py).
"""

from __future__ import annotations

import io
import json
from typing import IO, Any

_SLICE = 1 << 18
"""Characters written per call: large enough that the per-call cost vanishes, small enough
that the encoded slice is negligible next to the document."""


class SlicedJson:
    """A format object for core's `resolve_format`: JSON with atomic_store's dump/load API."""

    def __init__(self) -> None:
        self.__name__ = "json"

    def dump(self, obj: Any, fp: IO[Any], **kwargs: Any) -> None:
        """Encode ``obj`` as JSON into ``fp`` (text or binary, written as UTF-8)."""
        text = json.dumps(obj, **kwargs)
        binary = not isinstance(fp, io.TextIOBase)
        for start in range(0, len(text), _SLICE):
            piece = text[start : start + _SLICE]
            fp.write(piece.encode("utf-8") if binary else piece)

    def load(self, fp: IO[Any], **kwargs: Any) -> Any:
        """Decode one JSON document from ``fp``."""
        return json.load(fp, **kwargs)


SLICED_JSON = SlicedJson()
