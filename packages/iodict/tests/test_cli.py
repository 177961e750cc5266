"""``persistkit iodict DIR``: read-only, through the order index, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.core.testing import S3Endpoint, snapshot_tree
from persistkit.iodict import DurableQueue, IODict

Run = Callable[..., subprocess.CompletedProcess[str]]
INDEX = ".persistkit-iodict.d"


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    store = IODict(path)
    store.update([("first", 1), (b"raw", 2), (7, 3), (("t", 1), 4), ("last", 5)])
    return path


def test_shows_counts_layout_and_order_and_changes_nothing(
    store_path: Path, persistkit_command: Run
) -> None:
    before = snapshot_tree(store_path)
    result = persistkit_command("iodict", str(store_path))
    assert result.returncode == 0, result.stderr
    lines = [line.split(None, 1) for line in result.stdout.splitlines()]
    assert ["items", "5"] in lines
    assert ["layout", "xattr, pickle values"] in lines
    assert ["order", "first 'first', last 'last'"] in lines
    assert ["index", "current"] in lines
    keys = persistkit_command("iodict", str(store_path), "--keys")
    assert keys.stdout.splitlines()[-5:] == ["'first'", "b'raw'", "7", "('t', 1)", "'last'"]
    assert snapshot_tree(store_path) == before


def test_json_output_and_keys(store_path: Path, persistkit_command: Run) -> None:
    result = persistkit_command("iodict", str(store_path), "--json", "--keys")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["command"] == "iodict" and document["ok"] is True
    assert document["items"] == 5 and document["layout"] == "xattr"
    assert document["format"] == "pickle" and document["keyless"] == 0
    assert document["first"] == "first" and document["last"] == "last"
    assert document["keys"] == ["first", {"bytes": b"raw".hex()}, 7, ["t", 1], "last"]


def test_a_stale_index_is_rebuilt_in_memory_not_on_disk(
    store_path: Path, persistkit_command: Run
) -> None:
    shutil.rmtree(store_path / INDEX)
    before = snapshot_tree(store_path)
    result = persistkit_command("iodict", str(store_path), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["items"] == 5 and document["index"].startswith("rebuilt in memory")
    assert snapshot_tree(store_path) == before


def test_lost_keys_are_a_problem_reported_by_name(
    store_path: Path, persistkit_command: Run
) -> None:
    shutil.rmtree(store_path / INDEX)
    victim = store_path / IODict(store_path)._encoder("first")
    os.removexattr(victim, "user.key")  # as a copy without xattrs would have it
    result = persistkit_command("iodict", str(store_path))
    assert result.returncode == 1
    assert "problem: 1 item file(s) whose key is lost" in result.stderr
    checked = persistkit_command("iodict", str(store_path), "--check", "--json")
    assert checked.returncode == 1
    document = json.loads(checked.stdout)
    assert document["ok"] is False and document["keyless_files"] == [str(victim)]
    assert victim.exists()


@pytest.mark.parametrize(
    ("what", "said"),
    [
        ("missing", "no such file or folder"),
        ("empty", "no IODict here"),
        ("file", "not an IODict: it is a file"),
    ],
)
def test_no_store_is_a_one_line_error_and_nothing_is_created(
    tmp_path: Path, persistkit_command: Run, what: str, said: str
) -> None:
    target = tmp_path / "target"
    if what == "empty":
        target.mkdir()
    elif what == "file":
        target.write_text("not a store")
    before = snapshot_tree(tmp_path)
    result = persistkit_command("iodict", str(target))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("persistkit: ")
    assert said in result.stderr
    assert snapshot_tree(tmp_path) == before


def test_usage_errors_exit_2(persistkit_command: Run) -> None:
    assert persistkit_command("iodict").returncode == 2
    assert persistkit_command("iodict", "x", "--bogus").returncode == 2


def test_a_queue_shows_depth_head_tail_leases_and_dead_letters_and_changes_nothing(
    tmp_path: Path, persistkit_command: Run
) -> None:
    path = tmp_path / "queue"
    queue: DurableQueue[object] = DurableQueue(path, format="json")
    queue.put_many(["a", "b", "c", "d"])
    assert queue.get() == "a"
    held = queue.claim(lease=3600)
    assert held.item == "b"
    before = snapshot_tree(path)
    result = persistkit_command("iodict", str(path), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["kind"] == "queue" and document["format"] == "json"
    assert (document["waiting"], document["unfinished"]) == (2, 4)
    assert (document["head"], document["tail"]) == (2, 4)
    assert (document["leases_held"], document["leases_returned"]) == (1, 0)
    assert document["dead"] == 0
    shown = persistkit_command("iodict", str(path))
    lines = [line.split(None, 1) for line in shown.stdout.splitlines()]
    assert ["waiting", "2"] in lines and ["head", "2"] in lines and ["tail", "4"] in lines
    assert ["leases", "1 held, 0 returned"] in lines
    assert snapshot_tree(path) == before
    held.ack()


class Reversed:
    """A format of the user's own: the command cannot import it, and needs no decoding."""

    @staticmethod
    def dumps(value: bytes) -> bytes:
        return value[::-1]

    @staticmethod
    def loads(data: bytes) -> bytes:
        return data[::-1]


def test_a_queue_in_a_format_of_the_users_own_is_shown_without_it(
    tmp_path: Path, persistkit_command: Run
) -> None:
    path = tmp_path / "queue"
    queue: DurableQueue[bytes] = DurableQueue(path, format=Reversed)
    queue.put_many([b"a", b"b"])
    queue.close()
    before = snapshot_tree(path)
    result = persistkit_command("iodict", str(path), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["waiting"] == 2 and document["format"] == "Reversed"
    assert snapshot_tree(path) == before


def test_a_queue_with_dead_letters_is_a_problem(tmp_path: Path, persistkit_command: Run) -> None:
    path = tmp_path / "queue"
    queue: DurableQueue[object] = DurableQueue(path, format="json", max_tries=1)
    queue.put("poison")
    queue.claim().nack()
    assert len(queue.dead_letters()) == 1
    result = persistkit_command("iodict", str(path), "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["dead"] == 1 and document["ok"] is False
    keys = persistkit_command("iodict", str(path), "--keys")
    assert keys.returncode == 1 and "a DurableQueue has no keys" in keys.stderr


def test_a_dict_on_s3_is_shown_without_writing(
    s3_server: S3Endpoint, persistkit_command: Run, s3_environment: S3Endpoint
) -> None:
    bucket = s3_server.create_bucket()
    IODict(s3_server.store(bucket, "results")).update([("first", 1), (b"raw", 2), ("last", 3)])
    client = s3_server.client()

    def versions() -> dict[str, str]:
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {each["Key"]: each["ETag"] for each in listed}

    before = versions()
    assert len(before) == 2 + 2 * 3  # meta, births, an item and an order entry per key
    result = persistkit_command("iodict", f"s3://{bucket}/results", "--json", "--keys")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["items"] == 3 and document["layout"] == "objects"
    assert document["keys"] == ["first", {"bytes": b"raw".hex()}, "last"]
    assert versions() == before

    missing = persistkit_command("iodict", f"s3://{bucket}/nothing-here")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "no IODict here" in missing.stderr
    assert versions() == before
