"""The ``.set`` attribute: records a chain of keys and the mutation applied at its end.

``pod.set["a"]["b"].append(1)`` becomes ``call(("a", "b"), "append", 1)``; the store applies
it to the value it holds and marks key ``"a"`` changed. ``pod.set["a"]["n"] += 1`` is two
calls, as Python makes it: ``__iadd__`` on ``("a", "n")`` (which falls back to ``__add__`` for
immutable values and returns the sum) and then ``__setitem__("n", sum)`` on ``("a",)``.

When an in-place operator really changed the value in place (a list ``+=``), the first call
returns `IN_PLACE` and the assignment Python makes next is skipped: for a shared store it
would otherwise write back a copy read before another process's change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DeepCall = Callable[..., Any]


class _InPlace:
    def __repr__(self) -> str:
        return "<changed in place>"


IN_PLACE: Any = _InPlace()


def _in_place_operator(name: str) -> Callable[[DeepProxy, Any], Any]:
    def operator(self: DeepProxy, other: Any) -> Any:
        return self._call(self._path, name, other)

    operator.__name__ = name
    return operator


class DeepProxy:
    """Capture keying, method calls and in-place operators, and forward them to a store.

    Read values from the store itself (``pod["a"]``); use ``pod.set`` only to change them.
    """

    __slots__ = ("_call", "_path")

    def __init__(self, call: DeepCall, path: tuple[Any, ...] = ()) -> None:
        self._call = call
        self._path = path

    def __getitem__(self, key: Any) -> DeepProxy:
        return DeepProxy(self._call, (*self._path, key))

    def __setitem__(self, key: Any, value: Any) -> None:
        if value is IN_PLACE:
            return
        self._call(self._path, "__setitem__", key, value)

    def __delitem__(self, key: Any) -> None:
        self._call(self._path, "__delitem__", key)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._call(self._path, name, *args, **kwargs)

        method.__name__ = name
        return method

    def __repr__(self) -> str:
        return f"<DeepProxy {list(self._path)!r}>"

    __iadd__ = _in_place_operator("__iadd__")
    __isub__ = _in_place_operator("__isub__")
    __imul__ = _in_place_operator("__imul__")
    __imatmul__ = _in_place_operator("__imatmul__")
    __itruediv__ = _in_place_operator("__itruediv__")
    __ifloordiv__ = _in_place_operator("__ifloordiv__")
    __imod__ = _in_place_operator("__imod__")
    __ipow__ = _in_place_operator("__ipow__")
    __ilshift__ = _in_place_operator("__ilshift__")
    __irshift__ = _in_place_operator("__irshift__")
    __iand__ = _in_place_operator("__iand__")
    __ixor__ = _in_place_operator("__ixor__")
    __ior__ = _in_place_operator("__ior__")
