"""What the store does to the file: when it writes, the mode, symlinks, durability, defaults."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persistkit import store
from persistkit.core import WriteResult
from persistkit.core.testing import record_calls

sys.path.insert(0, os.path.dirname(__file__))
from store_places import Place


def test_opening_never_writes(place: Place) -> None:
    state = place.open("s.json", default={"a": 1})
    assert state.value == {"a": 1}
    assert place.names() == []


def test_an_exception_in_the_with_block_does_not_commit(place: Place) -> None:
    place.write("s.json", b'{"n": 1}')
    with pytest.raises(KeyError), place.open("s.json") as state:
        state.value["n"] = 2
        raise KeyError("boom")
    assert place.stored("s.json") == b'{"n": 1}'
    assert place.names() == ["s.json"]  # no leftovers
    # The store stays usable; the next successful block commits what is in memory.
    with state:
        pass
    assert json.loads(place.stored("s.json") or b"") == {"n": 2}


def test_an_exception_in_an_inner_block_commits_nothing_at_either_level(place: Place) -> None:
    place.write("s.json", b'"before"')
    state = place.open("s.json")
    with pytest.raises(RuntimeError), state:
        state.value = "outer"
        with state:
            state.value = "inner"
            raise RuntimeError
    assert place.stored("s.json") == b'"before"'


def test_an_inner_exception_caught_inside_the_outer_block_lets_the_outer_commit(
    place: Place,
) -> None:
    place.write("s.json", b'"before"')
    state = place.open("s.json")
    with state:
        try:
            with state:
                state.value = "inner"
                raise RuntimeError
        except RuntimeError:
            assert place.stored("s.json") == b'"before"'
    assert place.stored("s.json") == b'"inner"'


def test_exiting_more_often_than_entering_is_an_error(tmp_path: Path) -> None:
    state = store.open(tmp_path / "s.json")
    with pytest.raises(RuntimeError):
        state.__exit__(None, None, None)
    assert list(tmp_path.iterdir()) == []


def test_the_default_is_copied_never_shared(place: Place) -> None:
    default: dict[str, list[int]] = {"items": []}
    first = place.open("a.json", default=default)
    second = place.open("b.json", default=default)
    first.value["items"].append(1)
    assert second.value == {"items": []}
    assert default == {"items": []}
    # A reload of a missing file starts again from the pristine default.
    assert first.reload() == {"items": []}
    assert first.value is not second.value


def test_a_default_that_cannot_be_copied_is_refused(tmp_path: Path) -> None:
    import threading

    with pytest.raises(ValueError, match="copied"):
        store.open(tmp_path / "s.json", default={"lock": threading.Lock()})


def test_value_is_a_plain_attribute_that_may_be_reassigned(place: Place) -> None:
    state = place.open("s.json", default=[])
    state.value = {"now": "a dict"}
    state.commit()
    assert json.loads(place.stored("s.json") or b"") == {"now": "a dict"}


def test_reload_reads_what_another_store_committed(place: Place) -> None:
    reader = place.open("s.json", default=0)
    writer = place.open("s.json", default=0)
    writer.value = 41
    writer.commit()
    assert reader.value == 0
    assert reader.reload() == 41
    assert reader.value == 41


def test_commit_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("1")
    os.chmod(path, 0o640)
    state = store.open(path)
    state.value = 2
    state.commit()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_text() == "2"


def test_a_new_file_gets_the_umask_mode_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store.open(tmp_path / "s.json", default=1).commit()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s.json").stat().st_mode) == 0o644


def test_a_symlinked_path_reads_and_writes_through_the_link(
    tmp_path: Path, read_json: Callable[[Path], Any]
) -> None:
    real = tmp_path / "data" / "state.json"
    real.parent.mkdir()
    real.write_text('{"v": 1}')
    link = tmp_path / "state.json"
    link.symlink_to(real)
    state = store.open(link)
    assert state.value == {"v": 1}
    state.value["v"] = 2
    result = state.commit()
    assert link.is_symlink()
    assert read_json(real) == {"v": 2}
    assert result.path == str(real)


def test_commit_returns_a_durable_result_and_syncs(tmp_path: Path) -> None:
    state = store.open(tmp_path / "s.json", default=[1])
    calls = record_calls(state.commit)
    names = [call.name for call in calls]
    assert "fsync" in names
    assert "fsync_dir" in names
    # the first commit creates the file (published by link), the second replaces it (rename)
    assert names.index("fsync") < names.index("link") < names.index("fsync_dir")
    names = [call.name for call in record_calls(state.commit)]
    assert names.index("fsync") < names.index("rename") < names.index("fsync_dir")
    assert state.commit() == WriteResult(str(tmp_path / "s.json"), True)


def test_durability_atomic_passes_through_to_core(
    tmp_path: Path, read_json: Callable[[Path], Any]
) -> None:
    state = store.open(tmp_path / "s.json", default=[1], durability="atomic")
    calls = record_calls(state.commit)
    assert [call.name for call in calls if "fsync" in call.name] == []
    assert state.commit().durable is False
    assert read_json(tmp_path / "s.json") == [1]


def test_a_bad_durability_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        store.open(tmp_path / "s.json", durability="sometimes")  # type: ignore[arg-type]


def test_a_file_written_by_atomic_store_opens_in_persistkit(tmp_path: Path) -> None:
    atomic_store = pytest.importorskip("atomic_store", reason="the peer is not installed")
    path = str(tmp_path / "s.json")
    with atomic_store.open(path, default={}) as theirs:
        theirs.value["from"] = "atomic_store"
    with store.open(path) as ours:
        assert ours.value == {"from": "atomic_store"}
        ours.value["to"] = "persistkit"
    assert json.loads(Path(path).read_text()) == {"from": "atomic_store", "to": "persistkit"}
