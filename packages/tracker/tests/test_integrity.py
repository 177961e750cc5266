"""What another program did to a store: tastypy's additions are adopted, damage is refused.

Nothing here is injected: the files are changed on disk the way tastypy 0.0.3 changes a store
(it rewrites a whole shard file in place, appends keys to the last shard and adds numbered
shards), or the way a crash, a bad copy or a full disk damages one (lines lost, a file emptied
or replaced), and the store is opened again.
"""

from __future__ import annotations

import json

import pytest

from persistkit.core.testing import snapshot_tree
from persistkit.tracker import POD, IntegrityError, Tracker


def line(key, value):
    return f"{json.dumps(key)}\t{json.dumps(value)}\n"


def six_keys(folder, **options):
    pod = POD(folder, file_size=3, clone=False, **options)
    pod.update({f"k{i}": i for i in range(6)})
    pod.close()


def reopen(folder, **options):
    return POD(folder, file_size=3, clone=False, **options)


def test_a_shard_tastypy_added_is_adopted_and_kept_by_the_next_sync(tmp_path):
    # The issue's case: tastypy grows the store by a file; the next sync used to delete it.
    folder = tmp_path / "p"
    six_keys(folder)
    (folder / "2.json").write_text(line("k6", 6) + line("k7", 7))
    pod = reopen(folder)
    assert list(pod.items()) == [(f"k{i}", i) for i in range(8)]
    pod["k0"] = "changed"
    pod["k8"] = 8
    pod.close()
    assert (folder / "2.json").read_text() == line("k6", 6) + line("k7", 7) + line("k8", 8)
    assert dict(reopen(folder)) == {"k0": "changed", **{f"k{i}": i for i in range(1, 9)}}


def test_values_tastypy_changed_and_keys_it_appended_to_the_last_shard_are_adopted(tmp_path):
    folder = tmp_path / "p"
    pod = POD(folder, file_size=3, clone=False)
    pod.update({f"k{i}": i for i in range(5)})
    pod.close()
    # tastypy rewrote 0.json with a new value, and appended k5 to the short last shard.
    (folder / "0.json").write_text(line("k0", "new") + line("k1", 1) + line("k2", 2))
    (folder / "1.json").write_text(line("k3", 3) + line("k4", 4) + line("k5", 5))
    pod = reopen(folder)
    assert list(pod.items()) == [("k0", "new")] + [(f"k{i}", i) for i in range(1, 6)]
    pod["k6"] = 6  # goes to a new shard: 1.json is full now
    pod.close()
    assert (folder / "2.json").read_text() == line("k6", 6)
    assert reopen(folder)["k5"] == 5


def test_a_gap_after_the_listed_shards_is_an_error_and_nothing_is_removed(tmp_path, capsys):
    from persistkit.core._cli import main

    folder = tmp_path / "p"
    six_keys(folder)
    (folder / "2.json").write_text(line("k6", 6))
    (folder / "4.json").write_text(line("k9", 9))
    before = snapshot_tree(folder)
    with pytest.raises(IntegrityError, match="file missing") as caught:
        reopen(folder)
    assert caught.value.path.endswith("3.json")
    assert main(["tracker", str(folder)]) == 1
    error = capsys.readouterr().err
    assert "3.json" in error and error.count("\n") == 1
    assert snapshot_tree(folder) == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text[: text.rindex('"k5"')], "holds 2 lines where persistkit wrote 3"),
        (lambda text: "", "holds 0 lines where persistkit wrote 3"),
        (lambda text: text[:-2], "not JSON"),
        (lambda text: text.replace('"k4"', '"zz"'), "keys are not the ones persistkit wrote"),
        (lambda text: text.replace('"k4"\t4\n', ""), "holds 2 lines"),
    ],
    ids=["last-line-lost", "emptied", "torn-line", "key-replaced", "middle-line-lost"],
)
def test_a_damaged_shard_is_an_integrity_error_naming_it_and_nothing_changes(
    tmp_path, damage, message
):
    folder = tmp_path / "p"
    six_keys(folder)
    shard = folder / "1.json"
    shard.write_text(damage(shard.read_text()))
    before = snapshot_tree(folder)
    with pytest.raises(IntegrityError, match=message) as caught:
        reopen(folder)
    assert caught.value.path == str(shard)
    with pytest.raises(IntegrityError):
        Tracker(folder, file_size=3, clone=False)
    assert snapshot_tree(folder) == before


def test_damage_is_found_by_a_process_that_catches_up(tmp_path):
    from persistkit.tracker import SharedPOD

    folder = tmp_path / "p"
    six_keys(folder)
    reader = SharedPOD(folder, file_size=3)
    writer = SharedPOD(folder, file_size=3)
    writer["k4"] = "changed"
    writer.close()  # a checkpoint: the reader re-reads 1.json when it next looks
    (folder / "1.json").write_text(line("k3", 3))
    with pytest.raises(IntegrityError, match="holds 1 lines"):
        reader.get("k0")


def test_nan_and_infinity_are_refused_before_anything_is_written(tmp_path):
    from persistkit.core.errors import SerializationError

    folder = tmp_path / "p"
    six_keys(folder)
    before = snapshot_tree(folder)
    pod = reopen(folder)
    for bad in (float("nan"), float("inf"), {"x": -float("inf")}, [1.0, float("nan")]):
        with pytest.raises(SerializationError):
            pod["k1"] = bad
    assert pod["k1"] == 1
    pod["k2"] = {"ratio": 0.5}
    pod.sync()
    pod["k2"]["ratio"] = float("nan")  # in place: found by the sync, which writes nothing
    after_first_sync = snapshot_tree(folder)
    assert after_first_sync != before
    with pytest.raises(SerializationError):
        pod.sync()
    assert snapshot_tree(folder) == after_first_sync
    assert reopen(folder)["k2"] == {"ratio": 0.5}


def test_nan_that_tastypy_wrote_is_read_and_kept_while_unchanged(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    # Python's json (tastypy's) writes NaN and Infinity unless told not to.
    (folder / "0.json").write_text('"a"\t{"x": NaN}\n"b"\tInfinity\n"c"\t1\n')
    pod = POD(folder, file_size=3, clone=False)
    assert pod["a"]["x"] != pod["a"]["x"]  # NaN
    pod["c"] = 2  # rewrites 0.json, with "a" and "b" as they were
    pod.close()
    assert (folder / "0.json").read_text() == '"a"\t{"x": NaN}\n"b"\tInfinity\n"c"\t2\n'
    pod = POD(folder, file_size=3, clone=False)
    del pod["c"]  # the whole shard is encoded again: the NaN lines are kept
    pod.close()
    assert (folder / "0.json").read_text() == '"a"\t{"x": NaN}\n"b"\tInfinity\n'
