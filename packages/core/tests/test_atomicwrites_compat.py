"""Differential test: the same calls on python-atomicwrites and on persistkit, same results.

The intended differences: ``atomic_write`` defaults to ``overwrite=True`` here (False there);
new files get ``0o666 & ~umask`` here (0600 there); and ``overwrite=False`` on an existing
file fails on entering the block here, before any work is done, where atomicwrites runs the
block and fails at commit (so an exception raised inside the block wins there).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

atomicwrites = pytest.importorskip("atomicwrites", reason="python-atomicwrites is the reference")

from persistkit import core  # noqa: E402


def outcome(
    module: Any, path: Path, content: Any, mode: str, overwrite: bool, fail: bool, **kw: Any
) -> tuple[Any, ...]:
    try:
        with module.atomic_write(str(path), mode=mode, overwrite=overwrite, **kw) as f:
            f.write(content)
            if fail:
                raise KeyError("in block")
    except Exception as error:
        raised: Any = next(
            b for b in (FileExistsError, KeyError, OSError, Exception) if isinstance(error, b)
        )
    else:
        raised = None
    data = path.read_bytes() if path.exists() else None
    leftovers = sorted(p.name for p in path.parent.iterdir() if p.name != path.name)
    return raised, data, leftovers


calls = st.tuples(
    st.sampled_from(["w", "wb"]),
    st.text(max_size=50),
    st.booleans(),  # overwrite
    st.booleans(),  # fail inside the block
    st.booleans(),  # file exists beforehand
    st.sampled_from([None, "\n", "\r\n", ""]),
)


@settings(max_examples=80, deadline=None)
@given(call=calls)
def test_same_observable_results(
    tmp_path_factory: pytest.TempPathFactory, call: tuple[Any, ...]
) -> None:
    mode, text, overwrite, fail, exists, newline = call
    content: Any = text.encode() if mode == "wb" else text
    kwargs = {} if mode == "wb" else {"newline": newline, "encoding": "utf-8"}
    results = []
    for module in (atomicwrites, core):
        folder = tmp_path_factory.mktemp(module.__name__.replace(".", "_"))
        path = folder / "target"
        if exists:
            path.write_bytes(b"before")
        results.append(outcome(module, path, content, mode, overwrite, fail, **kwargs))
    theirs, ours = results
    if exists and not overwrite:
        assert ours[0] is FileExistsError
        assert theirs[0] is (KeyError if fail else FileExistsError)
        assert ours[1:] == theirs[1:]
    else:
        assert ours == theirs


def test_documented_differences(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    previous = os.umask(0o022)
    try:
        with atomicwrites.atomic_write(str(tmp_path / "a" / "f")) as f:
            f.write("x")
        with core.atomic_write(tmp_path / "b" / "f") as f:
            f.write("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "f").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "b" / "f").st_mode) == 0o644
    with pytest.raises(FileExistsError), atomicwrites.atomic_write(str(tmp_path / "a" / "f")) as f:
        f.write("y")
    with core.atomic_write(tmp_path / "b" / "f") as f:
        f.write("y")
    assert (tmp_path / "b" / "f").read_text() == "y"


def test_subclass_written_for_atomicwrites_runs_on_persistkit(tmp_path: Path) -> None:
    """A writer subclass in atomicwrites' style: overrides get_fileobject and commit."""
    events: list[str] = []

    def make(base: type) -> type:
        class Custom(base):  # type: ignore[misc,valid-type]
            def get_fileobject(self, **kwargs: Any) -> Any:
                events.append("get")
                return super().get_fileobject(dir=str(tmp_path / "staging"), **kwargs)

            def commit(self, f: Any) -> None:
                events.append("commit")
                super().commit(f)

        return Custom

    (tmp_path / "staging").mkdir()
    for base, name in ((atomicwrites.AtomicWriter, "theirs"), (core.AtomicWriter, "ours")):
        writer = make(base)(str(tmp_path / name), overwrite=True)
        with writer.open() as f:
            f.write("content")
        assert (tmp_path / name).read_text() == "content"
    assert events == ["get", "commit", "get", "commit"]
    assert list((tmp_path / "staging").iterdir()) == []
