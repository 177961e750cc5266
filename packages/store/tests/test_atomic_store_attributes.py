"""The attributes atomic_store's users read: format, load_kwargs, dump_kwargs, level (issue 12)."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

from persistkit import store


class Lines:
    def dump(self, obj, fp, **kwargs):
        fp.write("\n".join(obj))

    def load(self, fp, **kwargs):
        return fp.read().split("\n")


class Csv:
    def dumps(self, obj, **kwargs):
        return ",".join(obj).encode()

    def loads(self, data, **kwargs):
        return data.decode().split(",")


def test_format_is_an_object_with_dump_and_load_as_in_atomic_store(tmp_path: Path) -> None:
    assert store.open(tmp_path / "a").format is json
    assert store.open(tmp_path / "b", format="json").format is json
    assert store.open(tmp_path / "c", format="pickle").format is pickle
    lines = Lines()
    assert store.open(tmp_path / "d", format=lines, is_binary=False).format is lines
    wrapped = store.open(tmp_path / "e", format=Csv()).format
    buffer = io.BytesIO()
    wrapped.dump(["a", "b"], buffer)  # a dumps/loads format is wrapped, as atomic_store does
    assert buffer.getvalue() == b"a,b"
    assert wrapped.load(io.BytesIO(b"x,y")) == ["x", "y"]


def test_kwargs_are_dicts_and_assigning_new_ones_takes_effect(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    state = store.open(path, default={"b": 1, "a": 2}, dump_kwargs={"sort_keys": True})
    assert state.load_kwargs == {}
    assert state.dump_kwargs["sort_keys"] is True
    state.commit()
    assert path.read_text() == '{"a": 2, "b": 1}'
    state.dump_kwargs = {"separators": (",", ":")}
    state.commit()
    assert path.read_text() == '{"b":1,"a":2}'
    assert state.dump_kwargs["allow_nan"] is False  # core's JSON default stays under yours
    pickled = store.open(tmp_path / "p", format="pickle", dump_kwargs={"protocol": 2})
    pickled.load_kwargs = {"encoding": "latin-1"}
    assert pickled.load_kwargs == {"encoding": "latin-1"}
    assert pickled.dump_kwargs == {"protocol": 2}
    pickled.commit()
    assert (tmp_path / "p").read_bytes()[:2] == b"\x80\x02"


def test_level_counts_the_open_with_blocks(tmp_path: Path) -> None:
    state = store.open(tmp_path / "s.json", default=[])
    assert state.level == 0
    with state:
        assert state.level == 1
        with state:
            assert state.level == 2
        assert state.level == 1
    assert state.level == 0
