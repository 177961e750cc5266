"""Reading the small JSON records persistkit keeps beside a store or a queue."""

from __future__ import annotations

import json
from typing import Any

from persistkit.core import CorruptFileError


def read_json_object(path: str) -> dict[str, Any] | None:
    """Return the JSON object in ``path``, or None when there is no file (reads only).

    Raises:
        CorruptFileError: the file exists but does not hold a JSON object.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    try:
        document = json.loads(data)
    except ValueError as error:
        raise CorruptFileError(path, str(error)) from error
    if not isinstance(document, dict):
        raise CorruptFileError(path, "not a JSON object")
    return document
