"""Only regular files are messages: whatever else sits in a spool is left alone and reported.

Issue 9, item 9: a folder in ``new/`` was claimed (then ``read_bytes`` raised), a symlink in
``new/`` was followed (it read ``/etc/hostname``), and an entry in ``cur/`` whose lease could
not be parsed stayed forever and was counted. persistkit did not write these entries, so it
never deletes them either.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from persistkit.core.errors import InvalidNameError
from persistkit.core.testing import snapshot_tree
from persistkit.spool import Spool


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(b"not for consumers")
    return path


def plant_strays(spool: Spool, secret: Path) -> dict[str, str]:
    """Put into the spool what a user, a script or a mail client might; return path -> kind."""
    root = Path(spool.path)
    (root / "new" / "a-folder").mkdir()
    (root / "new" / "a-folder" / "inside").write_bytes(b"x")
    (root / "new" / "a-link").symlink_to(secret)
    (root / "new" / "a-dangling-link").symlink_to(root / "nowhere")
    os.mkfifo(root / "new" / "a-fifo")
    (root / "cur" / "no-lease-at-all").write_bytes(b"moved here by hand")
    (root / "cur" / "1700000000.M1P1Q1Rab.host:1,T1,Lsoon").write_bytes(b"garbled lease")
    (root / "cur" / "1700000000.M2P1Q1Rab.host:1,T1,L5").mkdir()  # a folder with a lease
    (root / "dead" / "a-link").symlink_to(secret)
    return {
        str(root / "new" / "a-folder"): "folder",
        str(root / "new" / "a-link"): "symbolic link",
        str(root / "new" / "a-dangling-link"): "symbolic link",
        str(root / "new" / "a-fifo"): "not a regular file",
        str(root / "cur" / "no-lease-at-all"): "no claim",
        str(root / "cur" / "1700000000.M1P1Q1Rab.host:1,T1,Lsoon"): "no claim",
        str(root / "cur" / "1700000000.M2P1Q1Rab.host:1,T1,L5"): "folder",
        str(root / "dead" / "a-link"): "symbolic link",
    }


def test_only_regular_files_are_claimed_and_nothing_else_is_touched(spool, secret, clock):
    planted = plant_strays(spool, secret)
    real = spool.deliver(b"a real message")
    before = {path: os.lstat(path) for path in planted}
    message = spool.claim()
    assert message is not None
    assert (message.id, message.read_bytes()) == (real, b"a real message")
    assert spool.claim() is None  # the folder, the links and the fifo are not messages
    clock.now += 3600  # every lease, real or garbled, has long run out
    spool.done(message)
    assert spool.claim() is None
    for path, info in before.items():
        assert os.lstat(path).st_ino == info.st_ino  # still there, never moved or deleted
    assert secret.read_bytes() == b"not for consumers"


def test_strays_are_not_counted_and_are_reported(spool, secret):
    planted = plant_strays(spool, secret)
    spool.deliver(b"one")
    spool.deliver(b"two")
    spool.claim()
    assert (spool.count("new"), spool.count("cur"), spool.count("dead")) == (1, 1, 0)
    assert all(path not in planted for area in spool.areas for path in spool.list(area))
    reported = spool.strays()
    assert sorted(reported) == sorted(planted)
    for path, kind in planted.items():
        assert kind in reported[path]


def test_reporting_strays_changes_nothing(spool, secret):
    plant_strays(spool, secret)
    before = snapshot_tree(spool.path)
    spool.strays()
    spool.list("cur")
    assert snapshot_tree(spool.path) == before


def test_a_stray_cannot_be_requeued(spool, secret):
    plant_strays(spool, secret)
    with pytest.raises(InvalidNameError):
        spool.requeue("a-link")
    with pytest.raises(FileNotFoundError):
        spool.requeue("a-link:1,T1")
    assert os.path.islink(Path(spool.path, "dead", "a-link"))
    assert spool.count("new") == 0


def test_a_message_swapped_for_a_symlink_after_the_claim_is_not_followed(spool, secret):
    spool.deliver(b"payload")
    message = spool.claim()
    assert message is not None
    os.unlink(message.path)
    os.symlink(secret, message.path)
    with pytest.raises(OSError):
        message.read_bytes()
    with pytest.raises(OSError):
        message.open()


def test_the_command_lists_strays_as_problems_and_changes_nothing(
    spool, secret, persistkit_command
):
    planted = plant_strays(spool, secret)
    spool.deliver(b"waiting")
    before = snapshot_tree(spool.path)
    result = persistkit_command("spool", spool.path)
    assert result.returncode == 1, result.stderr  # strays need someone's attention
    assert snapshot_tree(spool.path) == before
    counts = dict(line.split() for line in result.stdout.splitlines()[1:])
    assert (counts["new"], counts["cur"]) == ("1", "0")
    for path in planted:
        assert os.path.relpath(path, spool.path) in result.stderr
    document = json.loads(persistkit_command("spool", spool.path, "--json").stdout)
    assert document["areas"]["new"] == 1
    assert {stray["path"]: stray["what"] for stray in document["strays"]} == spool.strays()
    assert snapshot_tree(spool.path) == before
