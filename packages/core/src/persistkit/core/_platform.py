"""Platform checks done once at import time."""

from __future__ import annotations

import sys

from persistkit.core.errors import UnsupportedPlatformError

IS_LINUX = sys.platform.startswith("linux")
IS_MACOS = sys.platform == "darwin"

if sys.platform == "win32":  # pragma: no cover - refused before anything else runs
    raise UnsupportedPlatformError(
        "persistkit needs POSIX rename and fsync semantics; Windows is not supported yet"
    )
