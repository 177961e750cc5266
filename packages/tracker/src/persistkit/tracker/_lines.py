r"""tastypy's line format: ``json(key) <TAB> json(value) <NEWLINE>``, and the keys it allows.

In the key column every backslash is doubled (tastypy did this so that a tab in a key could be
written as ``\\t``; ``json.dumps`` never emits a raw tab, so that rule never fires for files
tastypy or persistkit wrote, but it is honoured when reading). Values are plain JSON text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, repeat
from json import encoder
from typing import Any, TypeAlias

from persistkit.core.errors import SerializationError
from persistkit.tracker.errors import IntegrityError, InvalidKeyError

Key: TypeAlias = "str | int | tuple[Key, ...]"

_decode = json.JSONDecoder().decode
_encode_str = encoder.encode_basestring_ascii


def _unsupported(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _make_encoder(*, allow_nan: bool) -> Callable[[Any], str]:
    # json.dumps builds a new C encoder on every call; building it once makes encoding a
    # small value about three times faster. The arguments are json.dumps' defaults
    # (ensure_ascii, ", " and ": "), with allow_nan chosen. No circular-reference markers: a
    # cycle ends in RecursionError, which encode_value reports like json's ValueError.
    make = getattr(encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - Pythons without the _json accelerator
        return json.JSONEncoder(allow_nan=allow_nan).encode
    iterencode = make(None, _unsupported, _encode_str, None, ": ", ", ", False, False, allow_nan)

    def encode(value: Any) -> str:
        return "".join(iterencode(value, 0))

    encode.chunks = iterencode  # type: ignore[attr-defined]  # used by encode_lines
    return encode


# New values are encoded strictly: NaN and Infinity are not JSON, and other readers of the
# files (jq, JavaScript, most JSON libraries) refuse them. A value tastypy wrote with them is
# read, and written back as it was while it does not change (see encode_line_keeping).
_encode = _make_encoder(allow_nan=False)
_encode_lenient = _make_encoder(allow_nan=True)
_chunks: Callable[[Any, int], Iterable[str]] | None = getattr(_encode, "chunks", None)
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


_SCALARS = frozenset({str, int, bool, type(None)})


def check_value(value: Any) -> None:
    """Raise `SerializationError` if ``value`` cannot be stored as JSON.

    NaN and infinite floats are refused: JSON has no spelling for them.
    """
    kind = type(value)
    if kind in _SCALARS or (kind is float and math.isfinite(value)):
        return
    if kind is dict and len(value) <= 16:
        # A small flat dict of scalars (a task, a record) is always valid: checking that is
        # several times cheaper than encoding it, and bulk loads are made of such values.
        for key, item in value.items():
            if type(key) is not str or type(item) not in _SCALARS:
                break
        else:
            return
    try:
        if _chunks is not None:
            _chunks(value, 0)
        else:  # pragma: no cover - Pythons without the _json accelerator
            _encode(value)
    except (TypeError, ValueError, RecursionError) as error:
        raise SerializationError(f"value cannot be stored as JSON: {error}") from error


def encode_key(key: Key) -> str:
    """Return the key column for ``key`` (JSON, backslashes doubled)."""
    text = _encode_str(key) if type(key) is str else _encode(key)
    return text.replace("\\", "\\\\") if "\\" in text else text


def encode_keys(keys: list[Key]) -> str:
    """Return one canonical JSON text for a list of keys (what a shard's record sums)."""
    return _encode(keys)


def encode_line(key: Key, value: Any) -> str:
    """Return one line of a shard file, without its newline."""
    return f"{encode_key(key)}\t{encode_value(value)}"


def encode_line_keeping(key: Key, value: Any, old_line: str | None) -> str:
    """Return ``key``'s line; a value that only JSON's NaN or Infinity can spell may stay.

    Such a value is refused (`SerializationError`) unless its line equals ``old_line``: a
    value read from a file tastypy wrote is written back unchanged.
    """
    try:
        return encode_line(key, value)
    except SerializationError:
        try:
            line = f"{encode_key(key)}\t{_encode_lenient(value)}"
        except (TypeError, ValueError, RecursionError):
            line = None
        if line is not None and line == old_line:
            return line
        raise


def encode_lines(keys: list[Key], values: dict[Key, Any]) -> str:
    """Return the text of a shard file holding ``keys`` (newline-terminated lines).

    Raises:
        SerializationError: a value cannot be stored as JSON (NaN and Infinity included).
    """
    # Whole-shard encoding is what a bulk load waits for, so the loop runs in C: map() over
    # the C encoder, then one join of key, tab, value, newline for every line.
    try:
        try:
            columns = list(map(_encode_str, keys))  # type: ignore[arg-type]  # TypeError below
        except TypeError:  # a key that is not a str
            columns = [_encode_str(key) if type(key) is str else _encode(key) for key in keys]
        if any("\\" in column for column in columns):
            columns = [column.replace("\\", "\\\\") for column in columns]
        items = map(values.__getitem__, keys)
        if _chunks is not None:
            texts = map("".join, map(_chunks, items, repeat(0)))
        else:  # pragma: no cover - Pythons without the _json accelerator
            texts = map(_encode, items)
        return "".join(
            chain.from_iterable(zip(columns, repeat("\t"), texts, repeat("\n"), strict=False))
        )
    except (TypeError, ValueError, RecursionError) as error:
        raise SerializationError(f"value cannot be stored as JSON: {error}") from error


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


_PLAIN_KEY_TYPES = {str, int}


def parse_shard(text: str, path: str) -> tuple[list[Key], list[Any]]:
    """Decode a shard file's text into its keys and values, in file order.

    Raises:
        IntegrityError: a line has no tab, a column is not JSON, or a key has a bad type.
    """
    body = text[:-1] if text.endswith("\n") else text
    if not body:
        return [], []
    columns = _columns_at_once(body) if "\\" not in body else None
    if columns is None:
        columns = list(chain.from_iterable(_parse_lines(body, path)))
    keys = columns[0::2]
    if not set(map(type, keys)) <= _PLAIN_KEY_TYPES:
        keys = [_as_key(key, path) for key in keys]
    return keys, columns[1::2]


def _columns_at_once(body: str) -> list[Any] | None:
    """Every line's key and value, in order, decoded by one C call; None if that cannot tell.

    The whole file becomes one JSON array with tabs and newlines as commas. JSON text never
    holds a raw tab, so with one tab per line every tab is a column separator; a column that
    holds no JSON value is not JSON, so each line gives at least two values, and exactly two
    values per line means every line is one key and one value.
    """
    lines = body.count("\n") + 1
    if body.count("\t") != lines:
        return None
    try:
        columns: list[Any] = _decode("[" + body.replace("\t", ",").replace("\n", ",") + "]")
    except ValueError:
        return None
    return columns if len(columns) == 2 * lines else None


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


def decode_key(column: str, path: str = "<key>") -> Key:
    """Return the key a key column holds (tuples for JSON arrays), or raise `IntegrityError`."""
    # Nearly every key is a plain int or a string with nothing escaped; those are read
    # without the JSON parser, since catching up with other processes does this per record.
    if column.isdigit() and column.isascii() and (len(column) == 1 or column[0] != "0"):
        return int(column)
    if (
        len(column) > 1
        and column[0] == column[-1] == '"'
        and column.isascii()
        and column.isprintable()
        and "\\" not in column
        and '"' not in column[1:-1]
    ):
        return column[1:-1]
    if "\\" in column:
        column = _unescape_key(column)
    try:
        raw = _decode(column)
    except ValueError as error:
        raise IntegrityError(path, f"the key is not JSON ({error})") from None
    return _as_key(raw, path)


class JSONSerializer:
    """tastypy's serializer for its line format, for code that called it directly.

    Each line is ``json(key) TAB json(value) NEWLINE``; see this module's description.
    """

    @classmethod
    def read_items(cls, lines: Iterable[str]) -> Iterator[tuple[Key, Any]]:
        """Yield (key, value) from shard lines, skipping blank lines.

        Raises:
            ValueError: a line is not a key-value pair of JSON texts.
        """
        for line in lines:
            if not line.strip("\n"):
                continue
            key_column, tab, value_column = line.rstrip("\n").partition("\t")
            if not tab:
                raise IntegrityError("<lines>", "a line has no tab between key and value")
            yield cls.deserialize_key(key_column), cls.deserialize_value(value_column)

    @classmethod
    def dump_items(cls, items: Iterable[tuple[Any, Any]]) -> Iterator[str]:
        """Yield one line (newline included) per (key, value) pair."""
        for key, value in items:
            yield encode_line(normalize_key(key), value) + "\n"

    @classmethod
    def serialize_key(cls, key: Any) -> str:
        """Return the key column for ``key``."""
        return encode_key(normalize_key(key))

    @classmethod
    def deserialize_key(cls, serialized_key: str) -> Key:
        """Return the key a key column holds (JSON arrays become tuples)."""
        return decode_key(serialized_key)

    @classmethod
    def serialize_value(cls, value: Any) -> str:
        """Return the JSON text of ``value``."""
        return encode_value(value)

    @classmethod
    def deserialize_value(cls, serialized_value: str) -> Any:
        """Return the value a JSON text holds."""
        return json.loads(serialized_value)
