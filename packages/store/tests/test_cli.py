from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from persistkit import store

Command = Callable[..., subprocess.CompletedProcess[str]]


def test_prints_the_value_as_json(tmp_path: Path, persistkit_command: Command) -> None:
    with store.open(tmp_path / "s.json", default={}) as state:
        state.value["runs"] = [1, 2]
    result = persistkit_command("store", str(tmp_path / "s.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"runs": [1, 2]}


def test_a_corrupt_store_is_reported_and_left_as_it_is(
    tmp_path: Path, persistkit_command: Command
) -> None:
    (tmp_path / "s.json").write_text("{broken")
    result = persistkit_command("store", str(tmp_path / "s.json"))
    assert result.returncode == 1
    assert "cannot decode" in result.stderr
    assert (tmp_path / "s.json").read_text() == "{broken"


def test_json_document_holds_what_strict_json_cannot(
    tmp_path: Path, persistkit_command: Command
) -> None:
    path = tmp_path / "s.pickle"
    with store.open(path, format="pickle") as state:
        state.value = {1: (2, float("nan")), "inf": float("-inf"), "set": {3}, "bytes": b"x"}
    result = persistkit_command("store", str(path), "--format", "pickle", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # strict JSON: no NaN in the text
    assert "NaN" not in result.stdout.replace('"NaN"', "")
    assert (document["command"], document["ok"], document["format"]) == ("store", True, "pickle")
    assert document["path"] == str(path)
    assert document["value"] == {
        "1": [2, "NaN"],
        "inf": "-Infinity",
        "set": [3],
        "bytes": "b'x'",
    }


def test_json_document_of_a_corrupt_store(tmp_path: Path, persistkit_command: Command) -> None:
    (tmp_path / "s.json").write_text("{broken")
    result = persistkit_command("store", str(tmp_path / "s.json"), "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["error"]["kind"] == "corrupt"
