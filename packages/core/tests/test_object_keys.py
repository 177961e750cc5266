"""The object-key encoding: injective, prefix-preserving both ways, safe on every server."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistkit.core import InvalidNameError
from persistkit.core._object_keys import (
    CUT,
    MAX_NAME_BYTES,
    SEGMENT_BYTES,
    key_of,
    name_prefix,
    object_name,
)

# Any str, lone surrogates included, short enough to encode (at most 12 bytes a character);
# and long keys of a few characters, which cross the 240-byte cuts.
keys = st.text(st.characters(codec=None), min_size=1, max_size=80) | st.text(
    st.sampled_from("a.é/_"), min_size=1, max_size=160
)


@given(keys)
@settings(max_examples=400)
def test_every_key_round_trips(key: str) -> None:
    assert key_of(object_name(key)) == key


@given(keys, keys)
@settings(max_examples=400)
def test_different_keys_never_share_a_name(first: str, second: str) -> None:
    if first != second:
        assert object_name(first) != object_name(second)


@given(keys, st.text(st.characters(codec=None), max_size=20) | st.text("a.é/_", max_size=140))
@settings(max_examples=400)
def test_a_key_starts_with_a_prefix_exactly_when_its_name_does(key: str, prefix: str) -> None:
    assert key.startswith(prefix) == object_name(key).startswith(name_prefix(prefix))


@given(keys, st.data())
@settings(max_examples=400)
def test_every_prefix_of_a_key_lists_it(key: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(key)))
    assert object_name(key).startswith(name_prefix(key[:cut]))


@given(keys)
@settings(max_examples=300)
def test_names_hold_nothing_a_server_reads_as_a_path(key: str) -> None:
    name = object_name(key)
    segments = name.split("/")
    assert all(segment not in ("", ".", "..") for segment in segments)
    assert all(len(segment) <= SEGMENT_BYTES + 1 for segment in segments)
    assert all(segment.endswith("~") for segment in segments[:-1])
    assert name.isascii() and "\\" not in name and not name.startswith(".")


def test_letters_digits_dash_and_underscore_stay_readable() -> None:
    assert object_name("Report-2024_final") == "Report-2024_final"
    assert object_name("a/b.json") == "a%2Fb%2Ejson"
    assert object_name("..") == "%2E%2E"


def test_long_keys_are_cut_into_segments_a_filesystem_accepts() -> None:
    name = object_name("x" * 500)
    assert name.count(CUT) == 2
    assert key_of(name) == "x" * 500


def test_a_key_too_long_to_encode_is_refused() -> None:
    object_name("x" * 1000)
    with pytest.raises(InvalidNameError):
        object_name("x" * MAX_NAME_BYTES)
    with pytest.raises(InvalidNameError):
        object_name("x" * 100, room=50)


@pytest.mark.parametrize(
    "name", ["", ".hidden", "a/b", "a%2f", "a%2", "%E9", "x~y", "abc~/", ".persistkit-probe-1"]
)
def test_names_that_no_key_encodes_to_are_not_keys(name: str) -> None:
    assert key_of(name) is None
