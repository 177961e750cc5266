"""``persistkit tracker DIR``: counts, listings, JSON, one-line errors, and nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.core.testing import S3Endpoint, snapshot_tree
from persistkit.tracker import POD, Tracker

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def tracker_path(tmp_path: Path) -> Path:
    path = tmp_path / "t"
    tracker = Tracker(path, clone=False)
    tracker.add_many(["a", "b", "c", 7, ("t", 1)])
    tracker.mark_done("a")
    tracker.increment_tries("b")
    tracker.increment_tries("b")
    tracker.abort("c")
    tracker.close()
    return path


def fields(stdout: str) -> dict[str, str]:
    """The name/value lines of the plain-text report (the bar's line has no name)."""
    pairs = (line.split(None, 1) for line in stdout.splitlines() if line[:1].isalpha())
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def test_shows_counts_and_a_bar_and_changes_nothing(tracker_path: Path, run: Run) -> None:
    before = snapshot_tree(tracker_path)
    result = run("tracker", str(tracker_path))
    assert result.returncode == 0, result.stderr
    assert "20.0 %" in result.stdout.splitlines()[0]
    assert fields(result.stdout) == {
        "tasks": "5",
        "done": "1",
        "tried": "1",
        "aborted": "1",
        "remaining": "4",
    }
    assert result.stderr == ""
    assert snapshot_tree(tracker_path) == before


def test_json_document(tracker_path: Path, run: Run) -> None:
    result = run("tracker", str(tracker_path), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document == {
        "command": "tracker",
        "schema": 1,
        "ok": True,
        "problems": [],
        "path": str(tracker_path),
        "gzipped": False,
        "shards": 1,
        "total": 5,
        "done": 1,
        "tried": 1,
        "aborted": 1,
        "remaining": 4,
        "fraction_done": 0.2,
        "not_tasks": 0,
    }


def test_todo_and_aborted_listings(tracker_path: Path, run: Run) -> None:
    before = snapshot_tree(tracker_path)
    result = run("tracker", str(tracker_path), "--todo", "--aborted")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    todo = lines.index("to do (3):")
    assert lines[todo + 1 : todo + 4] == ['  "b"', "  7", '  ["t", 1]']
    aborted = lines.index("aborted (1):")
    assert lines[aborted + 1 :] == ['  "c"']
    document = json.loads(run("tracker", str(tracker_path), "--todo", "--aborted", "--json").stdout)
    assert document["todo_keys"] == ["b", 7, ["t", 1]]
    assert document["aborted_keys"] == ["c"]
    limited = run("--json", "tracker", str(tracker_path), "--todo", "--max-tries", "2")
    assert json.loads(limited.stdout)["todo_keys"] == [7, ["t", 1]]
    assert snapshot_tree(tracker_path) == before


def test_syncs_still_in_the_journal_are_counted(tmp_path: Path, run: Run) -> None:
    # A writer killed before it checkpointed leaves its syncs in the journal only: the command
    # reads them (as committed) without writing them into the shards.
    path = tmp_path / "t"
    script = (
        "import os, sys\n"
        "from persistkit.tracker import Tracker\n"
        "t = Tracker(sys.argv[1])\n"
        "t.add_many(['x', 'y'])\n"
        "t.mark_done('x')\n"
        "t.sync()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    assert (path / "persistkit-tracker.journal").exists()
    before = snapshot_tree(path)
    document = json.loads(run("tracker", str(path), "--json").stdout)
    assert (document["total"], document["done"]) == (2, 1)
    assert snapshot_tree(path) == before


def test_a_gzipped_tracker(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "t"
    with Tracker(path, gzipped=True) as tracker:
        tracker.add_many(["a", "b"])
        tracker.mark_done("b")
    document = json.loads(run("tracker", str(path), "--json").stdout)
    assert document["gzipped"] is True
    assert (document["total"], document["done"]) == (2, 1)


def test_values_that_are_not_tasks_are_a_problem(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "pod"
    with POD(path) as pod:
        pod.update({"a": 1, "b": {"_done": True}, "c": [2]})
    before = snapshot_tree(path)
    result = run("tracker", str(path))
    assert result.returncode == 1
    assert result.stderr == (
        "persistkit: problem: 2 value(s) are not tasks (not a dict): "
        "is this a POD rather than a tracker?\n"
    )
    document = json.loads(run("tracker", str(path), "--json").stdout)
    assert document["ok"] is False and document["not_tasks"] == 2
    assert (document["total"], document["done"]) == (3, 1)
    assert snapshot_tree(path) == before


@pytest.mark.parametrize(
    ("what", "kind", "said"),
    [
        ("missing", "missing", "no such file or folder"),
        ("empty", "wrong_kind", "no tracker here"),
        ("file", "wrong_kind", "not a tracker: it is a file"),
        ("spool", "wrong_kind", "no tracker here"),
    ],
)
def test_no_tracker_is_a_one_line_error_and_nothing_is_created(
    tmp_path: Path, run: Run, what: str, kind: str, said: str
) -> None:
    target = tmp_path / "target"
    if what == "empty":
        target.mkdir()
    elif what == "file":
        target.write_text("not a tracker")
    elif what == "spool":
        for area in ("tmp", "new", "cur"):
            (target / area).mkdir(parents=True)
    before = snapshot_tree(tmp_path)
    result = run("tracker", str(target))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("persistkit: ")
    assert said in result.stderr
    failed = run("tracker", str(target), "--json")
    assert failed.returncode == 1
    document = json.loads(failed.stdout)
    assert document["ok"] is False and document["error"]["kind"] == kind
    assert snapshot_tree(tmp_path) == before


@pytest.mark.parametrize("damage", ["truncated", "undecodable", "shard missing", "manifest"])
def test_a_damaged_store_is_a_one_line_corrupt_error_naming_the_file(
    tracker_path: Path, run: Run, damage: str
) -> None:
    shard = tracker_path / "0.json"
    if damage == "truncated":
        shard.write_text(shard.read_text().split("\n", 1)[0] + "\n")
        damaged = shard
    elif damage == "undecodable":
        shard.write_bytes(b"\xff\xfe not utf-8\n")
        damaged = shard
    elif damage == "shard missing":
        shard.unlink()
        damaged = shard
    else:
        damaged = tracker_path / "persistkit-tracker.json"
        damaged.write_text("{not json")
    before = snapshot_tree(tracker_path)
    result = run("tracker", str(tracker_path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and str(damaged) in result.stderr
    failed = run("tracker", str(tracker_path), "--json")
    document = json.loads(failed.stdout)
    assert document["error"]["kind"] == "corrupt"
    assert document["error"]["path"] == str(damaged)
    assert snapshot_tree(tracker_path) == before


def test_a_store_without_its_lock_file_is_read_without_creating_one(
    tracker_path: Path, run: Run
) -> None:
    # As a backup or a copy may be: the lock file is never created by reading.
    (tracker_path / "persistkit-tracker.lock").unlink()
    before = snapshot_tree(tracker_path)
    result = run("tracker", str(tracker_path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] == 5
    assert snapshot_tree(tracker_path) == before


def test_usage_errors_exit_2(run: Run) -> None:
    assert run("tracker").returncode == 2
    assert run("tracker", "x", "--bogus").returncode == 2
    assert run("tracker", "x", "--max-tries", "-1").returncode == 2


@pytest.fixture
def run(persistkit_command: Run) -> Run:
    return persistkit_command


def test_a_tracker_on_s3_is_shown_without_writing(
    s3_server: S3Endpoint, run: Run, s3_environment: S3Endpoint
) -> None:
    bucket = s3_server.create_bucket()
    tracker = Tracker(s3_server.store(bucket, "jobs/crawl"))
    tracker.add_many(["a", "b", "c"])
    tracker.mark_done("a")
    tracker.sync()  # one record after nothing: no checkpoint yet
    store = s3_server.store(bucket, "jobs/crawl")
    before = {key: store.get(key).version for key in store.list()}
    assert before, "the check below must see the tracker's objects"
    result = run("tracker", f"s3://{bucket}/jobs/crawl", "--todo")
    assert result.returncode == 0, result.stderr
    assert fields(result.stdout)["done"] == "1" and fields(result.stdout)["tasks"] == "3"
    assert '  "b"\n  "c"\n' in result.stdout
    assert {key: store.get(key).version for key in store.list()} == before

    missing = run("tracker", f"s3://{bucket}/nothing-here")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "no tracker here" in missing.stderr
