"""Names of temporary files and folders, recognisable so `sweep` can find leftovers."""

from __future__ import annotations

import os
import re

TEMP_SUFFIX = ".pktmp"
_TOKEN_BYTES = 6
_NAME_MAX = 255
# "." + base + "." + 12 hex digits + ".pktmp"
_OVERHEAD = 1 + 1 + 2 * _TOKEN_BYTES + len(TEMP_SUFFIX)
TEMP_NAME = re.compile(r"^\..*\.[0-9a-f]{12}" + re.escape(TEMP_SUFFIX) + r"$", re.DOTALL)


def temp_name_for(target_name: str) -> str:
    """Return a fresh hidden temporary name that stays within NAME_MAX for ``target_name``."""
    encoded = os.fsencode(target_name)
    # Cutting bytes may split a UTF-8 sequence; fsdecode keeps the bytes via surrogateescape.
    base = os.fsdecode(encoded[: _NAME_MAX - _OVERHEAD])
    return f".{base}.{os.urandom(_TOKEN_BYTES).hex()}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    """Tell whether ``name`` is one of persistkit's temporary names."""
    return name.endswith(TEMP_SUFFIX) and TEMP_NAME.match(name) is not None
