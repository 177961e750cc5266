"""Values survive a commit and a reopen in every format; format arguments are checked early."""

from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistkit import store
from persistkit.store import (
    AbstractFormatBstr,
    AbstractFormatFile,
    FormatError,
    SerializationError,
    WrapBinaryFormat,
)

sys.path.insert(0, os.path.dirname(__file__))
from store_places import Place

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    # hypothesis runs many examples per test; one directory for all of them.
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@pytest.mark.parametrize("dump_kwargs", [None, {"ensure_ascii": False}, {"indent": 2}])
@settings(max_examples=40, deadline=None)
@given(value=json_values)
def test_json_values_round_trip(folder: Path, dump_kwargs: Any, value: Any) -> None:
    path = folder / "value.json"
    state = store.open(path, dump_kwargs=dump_kwargs, durability="atomic")
    state.value = value
    state.commit()
    assert store.open(path).value == value
    # Any other JSON reader sees the same document.
    assert json.loads(path.read_bytes()) == value


def test_a_document_larger_than_one_slice_is_written_whole(tmp_path: Path) -> None:
    # The JSON text is written in slices of 2**18 characters; 1 MiB crosses several.
    value = {"rows": [{"id": i, "text": "é" * (i % 7)} for i in range(60_000)]}
    for kwargs in ({}, {"ensure_ascii": False}):
        state = store.open(tmp_path / "big.json", dump_kwargs=kwargs)
        state.value = value
        state.commit()
        assert len((tmp_path / "big.json").read_bytes()) > 1 << 20
        assert json.loads((tmp_path / "big.json").read_text(encoding="utf-8")) == value


def test_json_is_written_as_utf8_text(place: Place) -> None:
    state = place.open("s.json", default="", dump_kwargs={"ensure_ascii": False})
    state.value = "grüße ✓"
    state.commit()
    assert place.stored("s.json") == '"grüße ✓"'.encode()
    assert place.open("s.json").value == "grüße ✓"


def test_json_with_is_binary_true_still_writes_and_reads_json(tmp_path: Path) -> None:
    with store.open(tmp_path / "b.json", default={}, is_binary=True) as state:
        state.value["k"] = [1, "two"]
    assert json.loads((tmp_path / "b.json").read_bytes()) == {"k": [1, "two"]}
    assert store.open(tmp_path / "b.json", is_binary=True).value == {"k": [1, "two"]}


@pytest.mark.parametrize("format", ["pickle", pickle, WrapBinaryFormat(pickle)])
def test_pickle_keeps_python_types(place: Place, format: Any) -> None:
    value = {"set": {1, 2}, "tuple": (1, "a"), "decimal": Decimal("1.10"), b"bytes": None}
    with place.open("p.bin", format=format) as state:
        state.value = value
    assert pickle.loads(place.stored("p.bin") or b"") == value
    assert place.open("p.bin", format=format).value == value


def test_pickle_dump_kwargs_are_used(tmp_path: Path) -> None:
    with store.open(tmp_path / "p.bin", default=[1], format="pickle", dump_kwargs={"protocol": 2}):
        pass
    assert (tmp_path / "p.bin").read_bytes()[:2] == b"\x80\x02"


def test_bson_with_whichever_module_is_installed(tmp_path: Path) -> None:
    bson = pytest.importorskip("bson", reason="neither pymongo nor the standalone bson installed")
    value = {"name": "job", "done": [1, 2, 3], "nested": {"ok": True}}
    with store.open(tmp_path / "s.bson", format="bson") as state:
        state.value = value
    raw = (tmp_path / "s.bson").read_bytes()
    decoded = bson.decode(raw) if hasattr(bson, "decode") else bson.loads(raw)
    assert decoded == value
    assert store.open(tmp_path / "s.bson", format=bson).value == value


def test_bson_refuses_a_non_document_before_touching_the_file(tmp_path: Path) -> None:
    pytest.importorskip("bson", reason="neither pymongo nor the standalone bson installed")
    path = tmp_path / "s.bson"
    with store.open(path, default={"a": 1}, format="bson"):
        pass
    before = path.read_bytes()
    state = store.open(path, format="bson")
    state.value = [1, 2]
    with pytest.raises(SerializationError):
        state.commit()
    assert path.read_bytes() == before


class Lines(AbstractFormatFile):
    def dump(self, obj: Any, fp: Any, **kwargs: Any) -> None:
        fp.write(kwargs.get("sep", "\n").join(obj))

    def load(self, fp: Any, **kwargs: Any) -> Any:
        return fp.read().split(kwargs.get("sep", "\n"))


class Csv(AbstractFormatBstr):
    def dumps(self, obj: Any, **kwargs: Any) -> bytes:
        return ",".join(obj).encode()

    def loads(self, binary_string: Any, **kwargs: Any) -> Any:
        return binary_string.decode().split(",")


def test_abstract_format_file_as_text_with_kwargs(tmp_path: Path) -> None:
    kwargs = {"sep": ";"}
    path = tmp_path / "names.txt"
    with store.open(path, [], Lines(), False, kwargs, kwargs) as state:
        state.value = ["ann", "bob"]
    assert path.read_text() == "ann;bob"
    assert store.open(path, [], Lines(), False, kwargs, kwargs).value == ["ann", "bob"]


def test_abstract_format_bstr_is_binary_by_default(tmp_path: Path) -> None:
    path = tmp_path / "tags.csv"
    state = store.open(path, default=["x", "y"], format=Csv())
    assert state.is_binary
    state.commit()
    assert path.read_bytes() == b"x,y"
    assert store.open(path, format=Csv()).value == ["x", "y"]


def test_an_incomplete_format_class_cannot_be_instantiated() -> None:
    class OnlyDump(AbstractFormatFile):
        def dump(self, obj: Any, fp: Any, **kwargs: Any) -> None:
            raise AssertionError

    with pytest.raises(TypeError, match="load"):
        OnlyDump()  # type: ignore[abstract]


@pytest.mark.parametrize("format", ["yaml", object(), 42])
def test_an_unknown_format_fails_before_anything_is_read_or_written(
    tmp_path: Path, format: Any
) -> None:
    path = tmp_path / "s.json"
    path.write_text("not even json")
    with pytest.raises(FormatError):
        store.open(path, default=1, format=format)
    assert path.read_text() == "not even json"


def test_non_mapping_kwargs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dump_kwargs"):
        store.open(tmp_path / "s.json", dump_kwargs=[("indent", 2)])  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_refused_before_anything_is_written(
    tmp_path: Path, number: float
) -> None:
    """Issue 9, item 11: json.dumps writes them as NaN/Infinity, which is not JSON."""
    path = tmp_path / "s.json"
    state = store.open(path, default={"kept": True})
    state.commit()
    state.value = {"ratio": number}
    with pytest.raises(SerializationError, match="allow_nan"):
        state.commit()
    assert path.read_text() == '{"kept": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_nan_is_written_when_dump_kwargs_allow_it_and_always_read(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"ratio": NaN}')  # as atomic_store wrote it
    state = store.open(path, dump_kwargs={"allow_nan": True})
    assert state.value["ratio"] != state.value["ratio"]  # NaN, read back
    state.value["more"] = float("inf")
    state.commit()
    assert path.read_text() == '{"ratio": NaN, "more": Infinity}'
    with pytest.raises(SerializationError):
        store.open(path).commit()  # without the opt-in, the value read cannot go back


def test_json_gives_back_lists_and_string_keys(tmp_path: Path) -> None:
    """Documented in the guide: JSON has no tuples and no int keys."""
    path = tmp_path / "s.json"
    with store.open(path, default={}) as state:
        state.value[1] = (2, 3)
    assert store.open(path).value == {"1": [2, 3]}
