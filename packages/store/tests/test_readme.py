"""Every example of atomic_store's README, run with only the import changed.

The code inside each test is the README's, verbatim but for the import line; the asserts
stand where the README has a comment (or a claim) about what the file contains.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from persistkit import store as atomic_store


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The README's examples use relative file names.
    monkeypatch.chdir(tmp_path)


def contents(name: str) -> Any:
    return json.loads(Path(name).read_text())


def test_context_manager_remembers_all_start_times(capsys: pytest.CaptureFixture[str]) -> None:
    def program() -> None:
        import time

        with atomic_store.open("runs.json", default=[]) as store:
            print("Previous executions:")
            print(store.value)
            new_entry = time.strftime("%Y-%m-%d %H:%M:%S%z")
            store.value.append(new_entry)

    program()
    first = capsys.readouterr().out
    assert first == "Previous executions:\n[]\n"
    assert len(contents("runs.json")) == 1

    program()
    second = capsys.readouterr().out
    assert second.startswith("Previous executions:\n['")
    runs = contents("runs.json")
    assert len(runs) == 2
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4}", run) for run in runs)
    assert repr(runs[:1]) in second


def test_manual_control_writes_only_on_commit() -> None:
    my_store = atomic_store.open("gathered.json", default=dict())

    my_store.value["state"] = "running"
    my_store.value["thought"] = "I would not eat green eggs and ham."
    assert not Path("gathered.json").exists()  # "no intermediate values get written"
    my_store.commit()
    assert contents("gathered.json") == {
        "state": "running",
        "thought": "I would not eat green eggs and ham.",
    }
    # ... some calculations ...
    my_store.value["state"] = "done"
    my_store.value["thought"] = "I do so like Green eggs and ham!"
    assert contents("gathered.json")["state"] == "running"
    my_store.commit()
    assert contents("gathered.json") == {
        "state": "done",
        "thought": "I do so like Green eggs and ham!",
    }


def test_commit_is_also_available_in_the_context_manager() -> None:
    with atomic_store.open("steps.json", default=[]) as store:
        store.value.append("step 1")
        store.commit()
        assert contents("steps.json") == ["step 1"]
        store.value.append("step 2")
        assert contents("steps.json") == ["step 1"]
    assert contents("steps.json") == ["step 1", "step 2"]


def test_format_tweaks_compact_json_and_load_kwargs() -> None:
    with atomic_store.open("small.json", default={}, dump_kwargs=dict(separators=(",", ":"))) as s:
        s.value["a"] = [1, 2.5]
    assert Path("small.json").read_text() == '{"a":[1,2.5]}'

    from decimal import Decimal

    reread = atomic_store.open("small.json", load_kwargs=dict(parse_float=Decimal))
    assert reread.value == {"a": [1, Decimal("2.5")]}


def _bson_module() -> Any:
    return pytest.importorskip("bson", reason="the 'bson' format needs pymongo or bson installed")


class PickleFile(atomic_store.AbstractFormatFile):
    def dump(self, obj: Any, fp: Any, **kwargs: Any) -> None:
        pickle.dump(obj, fp, **kwargs)

    def load(self, fp: Any, **kwargs: Any) -> Any:
        return pickle.load(fp, **kwargs)


class PickleBstr(atomic_store.AbstractFormatBstr):
    def dumps(self, obj: Any, **kwargs: Any) -> bytes:
        return pickle.dumps(obj, **kwargs)

    def loads(self, binary_string: Any, **kwargs: Any) -> Any:
        return pickle.loads(binary_string, **kwargs)


@pytest.mark.parametrize(
    "name",
    [
        "None",
        "'json'",
        "'pickle'",
        "'bson'",
        "json",
        "pickle",
        "bson",
        "AbstractFormatFile",
        "AbstractFormatBstr",
    ],
)
def test_non_json_formats(name: str) -> None:
    formats: dict[str, Any] = {
        "None": None,
        "'json'": "json",
        "'pickle'": "pickle",
        "json": json,
        "pickle": pickle,
        "AbstractFormatFile": PickleFile(),
        "AbstractFormatBstr": PickleBstr(),
    }
    if "bson" in name:
        module = _bson_module()
        formats.update({"'bson'": "bson", "bson": module})
    MY_FORMAT = formats[name]

    store = atomic_store.open("runs.json", default=[], format=MY_FORMAT)
    assert store.value == []
    # BSON stores documents (mappings), so every format gets one here.
    store.value = {"runs": ["2024-05-01 12:00:00+0000"]}
    store.commit()
    again = atomic_store.open("runs.json", default=[], format=MY_FORMAT)
    assert again.value == {"runs": ["2024-05-01 12:00:00+0000"]}
    if name in ("None", "'json'", "json"):
        assert contents("runs.json") == again.value


def test_is_binary_overrides_the_guess_for_a_text_format() -> None:
    class Csv:
        def dumps(self, obj: list[str], **kwargs: Any) -> str:
            return ",".join(obj)

        def loads(self, text: str, **kwargs: Any) -> list[str]:
            return text.split(",")

    with atomic_store.open("tags.csv", default=[], format=Csv(), is_binary=False) as store:
        store.value += ["a", "b"]
    assert Path("tags.csv").read_text() == "a,b"
    assert atomic_store.open("tags.csv", format=Csv(), is_binary=False).value == ["a", "b"]


def test_reentrancy_default_every_exit_writes() -> None:
    # The README says "Assume `state.json` contains..." but its code uses mystate.json.
    Path("mystate.json").write_text('"before"')
    mngr = atomic_store.open("mystate.json", default=[])
    with mngr as store:
        store.value = "outer"
        # File contains `"before"`: We haven't exited any context manager yet.
        assert contents("mystate.json") == "before"
        with mngr as store:  # noqa: PLW2901 - the README rebinds `store` on purpose
            store.value = "inner"
            # File contains `"before"`: We haven't exited any context manager yet.
            assert contents("mystate.json") == "before"
        # File now contains `"inner"`, because the inner `with`-statement wrote it.
        assert contents("mystate.json") == "inner"
    # File now contains `"inner"`, because the outer `with`-statement wrote it again.
    assert contents("mystate.json") == "inner"


def test_reentrancy_ignore_inner_exits_writes_only_at_the_outermost() -> None:
    Path("mystate.json").write_text('"before"')
    mngr = atomic_store.open("mystate.json", default=[], ignore_inner_exits=True)
    with mngr as store:
        store.value = "outer"
        # File contains `"before"`: We haven't exited any context manager yet.
        assert contents("mystate.json") == "before"
        with mngr as store:  # noqa: PLW2901 - the README rebinds `store` on purpose
            store.value = "inner"
            # File contains `"before"`: We haven't exited any context manager yet.
            assert contents("mystate.json") == "before"
        # File *still* contains `"before"`, as the manager detected that it is still active.
        assert contents("mystate.json") == "before"
    # The README's comment here says `"outer"`, but both `with` lines bind the same store,
    # whose value the inner block set to "inner"; the outermost exit writes the current
    # value. atomic_store 0.0.1 itself writes "inner" here too.
    assert contents("mystate.json") == "inner"


def test_atomic_is_not_magic_lost_update_without_corruption() -> None:
    # "If two [...] open a store, modify something, and then write concurrently, one of the
    # results may be lost. However, [...] the data is merely lost, but not corrupted."
    first = atomic_store.open("shared.json", default=0)
    second = atomic_store.open("shared.json", default=0)
    first.value += 1
    second.value += 1
    first.commit()
    second.commit()
    assert contents("shared.json") == 1  # one increment lost, the file whole
