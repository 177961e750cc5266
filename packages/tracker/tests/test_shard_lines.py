"""A shard file reads as exactly the key-value pairs its lines hold, or is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistkit.tracker._lines import encode_line, parse_shard
from persistkit.tracker.errors import IntegrityError

# Keys whose JSON holds no backslash: tastypy's key-column escaping has tests of its own.
_PLAIN_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\'))
_KEYS = st.recursive(
    st.integers(min_value=0, max_value=10**12) | _PLAIN_TEXT,
    lambda inner: st.lists(inner, max_size=3).map(tuple),
    max_leaves=4,
)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
_DAMAGE = st.sampled_from(
    ["", "\t", ",", "\n", "\n\n", "]", "[", ",1", "\t1", "1,", '"', "}", "true"]
)


def _line_by_line(text: str) -> tuple[list[Any], list[Any]] | None:
    """What the lines hold, read one column at a time; None when a line is not a pair."""

    def as_key(raw: Any) -> Any:
        if type(raw) in (str, int):
            return raw
        if type(raw) is list:
            return tuple(as_key(part) for part in raw)
        raise ValueError(raw)

    keys: list[Any] = []
    values: list[Any] = []
    for line in text.split("\n"):
        if not line:
            continue
        key_column, tab, value_column = line.partition("\t")
        if not tab or "\\" in key_column:
            return None
        try:
            keys.append(as_key(json.loads(key_column)))
            values.append(json.loads(value_column))
        except ValueError:
            return None
    return keys, values


@given(
    pairs=st.lists(st.tuples(_KEYS, _VALUES), max_size=6),
    cuts=st.lists(st.tuples(st.integers(min_value=0), _DAMAGE, st.booleans()), max_size=3),
)
@example(pairs=[(1, 2), (3, 4)], cuts=[(1, ",", True)])  # "1,2\n3\t4": two values, one tab
@example(pairs=[("a", 1)], cuts=[(3, ",2", False)])  # '"a",2\t1': three values in a line
@example(pairs=[(1, 2), (3, 4)], cuts=[(3, "", True)])  # "1\t23\t4": two tabs in a line
@example(pairs=[(1, 2), (3, 4)], cuts=[(4, "\n", False)])  # a blank line between them
def test_a_shard_reads_as_its_lines_say_or_is_refused(
    pairs: list[tuple[Any, Any]], cuts: list[tuple[int, str, bool]]
) -> None:
    text = "".join(encode_line(key, value) + "\n" for key, value in pairs)
    for position, damage, replace in cuts:
        at = position % (len(text) + 1)
        text = text[:at] + damage + text[at + (1 if replace else 0) :]
    expected = _line_by_line(text)
    if expected is None:
        with pytest.raises(IntegrityError):
            parse_shard(text, "0.json")
    else:
        assert parse_shard(text, "0.json") == expected
