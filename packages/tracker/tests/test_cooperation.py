"""Two caches of one store (as two processes have) stay equal to the disk through any changes."""

from __future__ import annotations

import errno
import os
import random
import subprocess

import pytest

from persistkit.tracker import POD, IntegrityError, SharedPOD


def test_random_changes_through_two_shared_caches(tmp_path):
    path = tmp_path / "p"
    first = SharedPOD(path, file_size=2)
    second = SharedPOD(path, file_size=2)
    model: dict = {}
    rng = random.Random(20240611)
    for step in range(400):
        pod = first if rng.random() < 0.7 else second  # second often lags many generations
        action = rng.random()
        key = rng.choice(["a", "b", "c", 1, 2, 3, ("t", 1), "d", "e", "f"])
        if action < 0.5:
            pod[key] = {"step": step}
            model[key] = {"step": step}
        elif action < 0.7 and key in model:
            del pod[key]
            del model[key]
        elif action < 0.8 and key in model:
            pod.set[key]["more"] = step
            model[key]["more"] = step
        elif action < 0.82:
            pod.clear()
            model.clear()
        else:
            assert pod.get(key) == model.get(key)
        if step % 25 == 0:
            for cache in (first, second):
                assert list(cache.items()) == list(model.items())
    assert list(second.items()) == list(model.items())
    assert list(POD(path, file_size=2, clone=False).items()) == list(model.items())


def test_corrupt_manifest_is_an_integrity_error(tmp_path):
    pod = POD(tmp_path / "p")
    pod["a"] = 1
    pod.close()
    (tmp_path / "p" / "persistkit-tracker.json").write_text("{oops")
    with pytest.raises(IntegrityError, match="manifest"):
        POD(tmp_path / "p", clone=False)
    assert (tmp_path / "p" / "0.json").read_text() == '"a"\t1\n'


def test_full_disk_keeps_the_old_state_and_the_pending_changes(mounted_tmpfs):
    # A real ENOSPC from a 1 MiB tmpfs, not an injected one.
    mount = mounted_tmpfs("1m")
    try:
        pod = POD(mount / "p", file_size=1, durability="atomic")
        pod["first"] = "x" * 300_000
        pod.sync()
        pod["second"] = "y" * 800_000
        with pytest.raises(OSError) as caught:
            pod.sync()
        assert caught.value.errno == errno.ENOSPC
        assert POD(mount / "p", file_size=1, clone=False) == {"first": "x" * 300_000}
        assert [name for name in os.listdir(mount / "p") if name.startswith(".")] == []
        assert pod.dirty() == {"second"}
        pod["second"] = "y" * 400_000
        pod.sync()
        assert POD(mount / "p", file_size=1, clone=False) == {
            "first": "x" * 300_000,
            "second": "y" * 400_000,
        }
        pod.close()
    finally:
        unmounted = subprocess.run(["umount", str(mount)], capture_output=True, check=False)
    # close() let go of every descriptor in the store (the lock file's included).
    assert unmounted.returncode == 0, unmounted.stderr
