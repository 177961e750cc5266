"""The durability levels a writing call can be asked for."""

from __future__ import annotations

from typing import Literal, get_args

from persistkit.core.errors import InvalidArgumentError

Durability = Literal["durable", "atomic"]
"""``"durable"``: survives power loss once the call returns (file and directory fsync).
``"atomic"``: no fsync; old-or-new across a process crash, not across power loss."""

_LEVELS = frozenset(get_args(Durability))


def check_durability(durability: str) -> bool:
    """Validate ``durability`` and tell whether it asks for fsyncs.

    Every writing call does this itself; a constructor that only stores the level calls it
    to fail before anything on disk is touched.

    Raises:
        InvalidArgumentError: not ``"durable"`` or ``"atomic"``.
    """
    if durability not in _LEVELS:
        raise InvalidArgumentError(
            f"durability must be one of {sorted(_LEVELS)}, not {durability!r}"
        )
    return durability == "durable"
