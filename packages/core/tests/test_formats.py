from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistkit.core import (
    CorruptFileError,
    FormatError,
    SerializationError,
    read_value,
    resolve_format,
    write_value,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(value=json_values)
def test_json_round_trips_through_a_file(
    tmp_path_factory: pytest.TempPathFactory, value: Any
) -> None:
    path = tmp_path_factory.mktemp("json") / "v.json"
    write_value(path, value, durability="atomic")
    assert read_value(path) == value
    write_value(path, value, stream=True, durability="atomic")
    assert read_value(path) == value


@pytest.mark.parametrize("fmt", [None, "json", json, "pickle", pickle])
def test_named_formats_and_modules(tmp_path: Path, fmt: Any) -> None:
    value = {"a": [1, 2.5, "x"], "b": None}
    write_value(tmp_path / "v", value, fmt)
    assert read_value(tmp_path / "v", fmt) == value


def test_binary_default_except_json() -> None:
    assert resolve_format(None).is_binary is False
    assert resolve_format(json).is_binary is False
    assert resolve_format("pickle").is_binary is True
    assert resolve_format(pickle, is_binary=False).is_binary is False


def test_bson_with_the_installed_module(tmp_path: Path) -> None:
    pytest.importorskip("bson", reason="neither pymongo nor the bson package is installed")
    value = {"name": "x", "n": 3, "items": [1, 2]}
    write_value(tmp_path / "v.bson", value, "bson")
    assert read_value(tmp_path / "v.bson", "bson") == value
    with pytest.raises(SerializationError):
        write_value(tmp_path / "v.bson", [1, 2], "bson")
    assert read_value(tmp_path / "v.bson", "bson") == value


class FileFormat:
    """An object with dump/load, as atomic_store users write them."""

    @staticmethod
    def dump(value: Any, file: io.TextIOBase, **kwargs: Any) -> None:
        file.write(repr(value))

    @staticmethod
    def load(file: io.TextIOBase, **kwargs: Any) -> Any:
        import ast

        return ast.literal_eval(file.read())


class StringFormat:
    @staticmethod
    def dumps(value: Any, prefix: str = "") -> bytes:
        return (prefix + json.dumps(value)).encode()

    @staticmethod
    def loads(data: bytes, prefix: str = "") -> Any:
        return json.loads(data.decode()[len(prefix) :])


def test_custom_formats_with_kwargs(tmp_path: Path) -> None:
    write_value(tmp_path / "a", {"k": (1, 2)}, resolve_format(FileFormat, is_binary=False))
    assert read_value(tmp_path / "a", resolve_format(FileFormat, is_binary=False)) == {"k": (1, 2)}
    codec = resolve_format(
        StringFormat, dump_kwargs={"prefix": "v1:"}, load_kwargs={"prefix": "v1:"}
    )
    write_value(tmp_path / "b", [1], codec)
    assert (tmp_path / "b").read_bytes() == b"v1:[1]"
    assert read_value(tmp_path / "b", codec) == [1]


def test_json_dump_kwargs_reach_the_encoder(tmp_path: Path) -> None:
    codec = resolve_format("json", dump_kwargs={"separators": (",", ":")})
    write_value(tmp_path / "c.json", {"a": [1, 2]}, codec)
    assert (tmp_path / "c.json").read_text() == '{"a":[1,2]}'


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_refused_before_the_file_is_touched(
    tmp_path: Path, stream: bool, number: float
) -> None:
    """Issue 9, item 11: json.dumps writes them as NaN/Infinity, which is not JSON."""
    path = tmp_path / "v.json"
    path.write_text('{"kept": true}')
    with pytest.raises(SerializationError) as caught:
        write_value(path, {"ratio": [1.0, number]}, stream=stream)
    assert "allow_nan" in str(caught.value)  # it says how to get the old behaviour
    assert isinstance(caught.value, ValueError)  # what json users already catch
    assert path.read_text() == '{"kept": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["v.json"]


def test_nan_can_be_allowed_through_dump_kwargs(tmp_path: Path) -> None:
    assert resolve_format("json").dump_kwargs == {"allow_nan": False}
    codec = resolve_format("json", dump_kwargs={"allow_nan": True, "separators": (",", ":")})
    assert codec.dump_kwargs == {"allow_nan": True, "separators": (",", ":")}
    write_value(tmp_path / "v.json", {"x": float("inf")}, codec)
    assert (tmp_path / "v.json").read_text() == '{"x":Infinity}'
    assert read_value(tmp_path / "v.json") == {"x": float("inf")}  # reading always accepts them


def test_json_gives_back_lists_and_string_keys() -> None:
    """Documented: tuples come back as lists, int keys as strings (JSON has neither)."""
    codec = resolve_format("json")
    assert codec.loads(codec.dumps({1: (2, 3)})) == {"1": [2, 3]}


@pytest.mark.parametrize("bad", ["yaml", object(), 42])
def test_unknown_formats_are_a_format_error(bad: Any) -> None:
    with pytest.raises(FormatError):
        resolve_format(bad)


@pytest.mark.parametrize("stream", [False, True])
def test_unencodable_value_fails_before_the_file_is_touched(tmp_path: Path, stream: bool) -> None:
    path = tmp_path / "v.json"
    path.write_text('{"kept": true}')
    with pytest.raises(SerializationError):
        write_value(path, {"a": [1, {2j}]}, stream=stream)
    with pytest.raises(TypeError):  # what json users already catch
        write_value(path, {1j}, stream=stream)
    assert path.read_text() == '{"kept": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["v.json"]


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (b"", None),
        (b'{"truncated": ', None),
        (b"\xff\xfe", None),
        (b"", "pickle"),
        (b"\x80\x04K", "pickle"),
    ],
)
def test_corrupt_files_raise_and_name_the_file(tmp_path: Path, content: bytes, fmt: Any) -> None:
    path = tmp_path / "broken"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError) as caught:
        read_value(path, fmt)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content, "a corrupt file is never modified"


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_value(tmp_path / "nope")


def test_a_pickle_header_claiming_gigabytes_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(b"\x80\x04\x95 truncated")  # FRAME opcode with an absurd length
    with pytest.raises(CorruptFileError):
        read_value(path, "pickle")


class Renamed:
    """Stands for a user's class that a later version of their program moved away."""


def test_a_pickled_class_that_is_gone_is_unloadable_not_corrupt(tmp_path: Path) -> None:
    import pickle
    import sys

    from persistkit.core import CorruptFileError, UnloadableValueError

    path = tmp_path / "v.pickle"
    write_value(path, Renamed(), "pickle")
    # As if the class's module were renamed: the intact file names a module that is gone
    # (a name of the same length, so every length field in the pickle stays right).
    gone = "z" * len(Renamed.__module__)
    path.write_bytes(path.read_bytes().replace(Renamed.__module__.encode(), gone.encode()))
    assert gone not in sys.modules
    with pytest.raises(UnloadableValueError) as caught:
        read_value(path, "pickle")
    assert not isinstance(caught.value, CorruptFileError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.path == str(path) and gone in str(caught.value)
    assert pickle.loads(pickle.dumps(caught.value)).path == str(path)
    with pytest.raises(CorruptFileError):
        resolve_format("pickle").decode(b"\x80\x05garbage", str(path))
