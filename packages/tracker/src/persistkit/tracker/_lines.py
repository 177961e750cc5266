r"""tastypy's line format: ``json(key) <TAB> json(value) <NEWLINE>``, and the keys it allows.

In the key column every backslash is doubled (tastypy did this so that a tab in a key could be
written as ``\\t``; ``json.dumps`` never emits a raw tab, so that rule never fires for files
tastypy or persistkit wrote, but it is honoured when reading). Values are plain JSON text.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeAlias

from persistkit.core.errors import SerializationError
from persistkit.tracker.errors import IntegrityError, InvalidKeyError

Key: TypeAlias = "str | int | tuple[Key, ...]"

_encode = json.JSONEncoder().encode
_decode = json.JSONDecoder().decode
_TAB_ESCAPE = re.compile(r"(^|[^\\])\\t")


def normalize_key(key: object) -> Key:
    """Return ``key`` as the plain str, int or tuple stored, or raise `InvalidKeyError`.

    Subclasses of str, int and tuple (enums, named tuples) become their base type, so a key
    reads back equal to what was stored. ``bool`` is refused: ``True == 1`` would make the
    two keys collide in memory while they differ on disk.
    """
    kind = type(key)
    if kind is str or kind is int:
        return key  # type: ignore[return-value]  # checked just above
    if isinstance(key, tuple):
        return tuple(normalize_key(part) for part in key)
    if isinstance(key, bool):
        raise InvalidKeyError(f"a key cannot be a bool ({key!r}): True and 1 would collide")
    if isinstance(key, str):
        return str(key)
    if isinstance(key, int):
        return int(key)
    raise InvalidKeyError(
        f"keys must be str, int or (nested) tuples of them, not {type(key).__name__}: {key!r}"
    )


def encode_value(value: Any) -> str:
    """Return the JSON text of ``value``, or raise `SerializationError` naming the problem."""
    try:
        return _encode(value)
    except (TypeError, ValueError, RecursionError) as error:
        raise SerializationError(f"value cannot be stored as JSON: {error}") from error


def encode_key(key: Key) -> str:
    """Return the key column for ``key`` (JSON, backslashes doubled)."""
    text = _encode(key)
    return text.replace("\\", "\\\\") if "\\" in text else text


def encode_line(key: Key, value: Any) -> str:
    """Return one line of a shard file, without its newline."""
    return f"{encode_key(key)}\t{encode_value(value)}"


def _unescape_key(column: str) -> str:
    column = _TAB_ESCAPE.sub("\\1\t", column)
    return column.replace("\\\\", "\\")


def _as_key(raw: object, path: str) -> Key:
    kind = type(raw)
    if kind is str or kind is int:
        return raw  # type: ignore[return-value]  # checked just above
    if kind is list:
        return tuple(_as_key(part, path) for part in raw)  # type: ignore[attr-defined]  # a list
    raise IntegrityError(path, f"a key of type {kind.__name__} ({raw!r}) is not allowed")


def parse_shard(text: str, path: str) -> tuple[list[Key], list[Any]]:
    """Decode a shard file's text into its keys and values, in file order.

    Raises:
        IntegrityError: a line has no tab, a column is not JSON, or a key has a bad type.
    """
    body = text[:-1] if text.endswith("\n") else text
    if not body:
        return [], []
    pairs: list[Any] | None = None
    if "\\" not in body:
        # Fast path: the whole file becomes one JSON document, decoded by one C call. A tab
        # can only be the column separator here (JSON text never holds a raw tab inside a
        # string), so the result is right exactly when it has one pair per line.
        try:
            pairs = _decode("[[" + body.replace("\t", ",").replace("\n", "],[") + "]]")
        except ValueError:
            pairs = None
        if pairs is not None and (
            len(pairs) != body.count("\n") + 1 or any(len(pair) != 2 for pair in pairs)
        ):
            pairs = None
    if pairs is None:
        pairs = _parse_lines(body, path)
    keys: list[Key] = []
    values: list[Any] = []
    for raw_key, value in pairs:
        kind = type(raw_key)
        keys.append(raw_key if kind is str or kind is int else _as_key(raw_key, path))
        values.append(value)
    return keys, values


def _parse_lines(body: str, path: str) -> list[Any]:
    columns: list[tuple[int, str, str]] = []
    for number, line in enumerate(body.split("\n"), 1):
        if not line:
            continue
        key_column, tab, value_column = line.partition("\t")
        if not tab:
            raise IntegrityError(path, f"line {number} has no tab between key and value")
        if "\\" in key_column:
            key_column = _unescape_key(key_column)
        columns.append((number, key_column, value_column))
    try:
        pairs: list[Any] = _decode("[" + ",".join(f"[{k},{v}]" for _, k, v in columns) + "]")
        if len(pairs) == len(columns) and all(len(pair) == 2 for pair in pairs):
            return pairs
    except ValueError:
        pass
    for number, key_column, value_column in columns:
        for what, column in (("key", key_column), ("value", value_column)):
            try:
                _decode(column)
            except ValueError as error:
                raise IntegrityError(
                    path, f"line {number}: the {what} is not JSON ({error})"
                ) from None
    raise IntegrityError(path, "the lines do not form key-value pairs")  # pragma: no cover
