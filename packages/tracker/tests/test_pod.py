from __future__ import annotations

import errno
import gzip
import json
import os

import pytest

from persistkit.core.errors import SerializationError
from persistkit.tracker import (
    POD,
    IntegrityError,
    InvalidKeyError,
    PersistentOrderedDict,
    PersistentOrderedDictIntegrityError,
    StoreMismatchError,
)
from persistkit.tracker.errors import ClosedStoreError


def reopen(path, **kwargs):
    return POD(path, clone=False, **kwargs)


def test_values_survive_reopen_in_insertion_order(tmp_path):
    path = tmp_path / "my.pod"
    pod = POD(path, file_size=3)
    keys = ["z", 5, "a", (1, "x", (2,)), "5", -3, "é\tx\\y"]
    for number, key in enumerate(keys):
        pod[key] = {"n": number, "list": [number] * 2}
    pod.sync()
    again = reopen(path, file_size=3)
    assert list(again) == keys
    assert again == {key: {"n": n, "list": [n, n]} for n, key in enumerate(keys)}
    assert again[5] != again["5"]


def test_file_layout_is_tastypys(tmp_path):
    pod = POD(tmp_path / "p", file_size=2)
    pod.update([("a", 1), (2, [3]), ("c\\d", {"e": None})])
    pod.close()  # the shards hold everything once the store is closed
    assert (tmp_path / "p" / "0.json").read_text() == '"a"\t1\n2\t[3]\n'
    assert (tmp_path / "p" / "1.json").read_text() == '"c\\\\\\\\d"\t{"e": null}\n'


def test_tastypy_store_with_escapes_opens(tmp_path):
    folder = tmp_path / "old.pod"
    folder.mkdir()
    # Written by tastypy 0.0.3 under Python 2.7 (keys 'a<TAB>b', 'back\\slash', 3, u'\xe9').
    (folder / "0.json").write_text('"a\\\\tb"\t1\n"back\\\\\\\\slash"\t{"x": "caf\\u00e9"}\n')
    (folder / "1.json").write_text('3\t[1, 2]\n"\\\\u00e9"\tnull\n')
    pod = reopen(folder, file_size=2)
    assert list(pod.items()) == [
        ("a\tb", 1),
        ("back\\slash", {"x": "café"}),
        (3, [1, 2]),
        ("é", None),
    ]


def test_tastypy_rules_checked_without_manifest(tmp_path):
    folder = tmp_path / "old.pod"
    folder.mkdir()
    (folder / "0.json").write_text('"a"\t1\n')
    (folder / "1.json").write_text('"b"\t2\n')
    with pytest.raises(PersistentOrderedDictIntegrityError, match="instead of file_size"):
        reopen(folder, file_size=2)
    (folder / "1.json").rename(folder / "2.json")
    with pytest.raises(IntegrityError, match="file missing"):
        reopen(folder, file_size=1)


def test_damaged_file_raises_and_is_left_alone(tmp_path):
    pod = POD(tmp_path / "p", file_size=2)
    pod.update({"a": 1, "b": 2, "c": 3})
    pod.close()
    shard = tmp_path / "p" / "1.json"
    shard.write_text('"c"\t{not json\n')
    with pytest.raises(IntegrityError, match="line 1: the value is not JSON") as caught:
        reopen(tmp_path / "p", file_size=2)
    assert isinstance(caught.value, ValueError)
    assert caught.value.path.endswith("1.json")
    assert shard.read_text() == '"c"\t{not json\n'
    shard.write_text("no tab here\n")
    with pytest.raises(IntegrityError, match="no tab"):
        reopen(tmp_path / "p", file_size=2)
    shard.unlink()
    with pytest.raises(IntegrityError, match="file missing"):
        reopen(tmp_path / "p", file_size=2)


def test_duplicate_key_on_disk_is_an_integrity_error(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "0.json").write_text('"a"\t1\n"a"\t2\n')
    with pytest.raises(IntegrityError, match="twice"):
        reopen(folder)


def test_bad_keys_and_values_fail_before_anything_changes(tmp_path):
    pod = POD(tmp_path / "p")
    pod["ok"] = 1
    pod.sync()
    journal = tmp_path / "p" / "persistkit-tracker.journal"
    before = journal.read_bytes()
    for key in (1.5, True, None, b"bytes", ["list"], ("t", 2.0)):
        with pytest.raises(InvalidKeyError) as caught:
            pod[key] = 1
        assert isinstance(caught.value, TypeError)
        assert isinstance(caught.value, ValueError)
    with pytest.raises(SerializationError):
        pod["bad"] = {"s": {1, 2}}
    with pytest.raises(SerializationError):
        pod["bad"] = {(1, 2): 3}
    assert "bad" not in pod
    assert pod.dirty() == set()
    pod.sync()
    assert journal.read_bytes() == before


def test_value_made_unserialisable_in_place_fails_sync_without_writing(tmp_path):
    pod = POD(tmp_path / "p")
    pod["k"] = []
    pod.sync()
    pod["k"].append(object())
    with pytest.raises(SerializationError):
        pod.sync()
    assert reopen(tmp_path / "p")["k"] == []
    pod["k"].pop()
    pod["k"].append(7)
    pod.sync()
    assert reopen(tmp_path / "p")["k"] == [7]


def test_in_place_changes_through_the_pod_are_synced(tmp_path):
    pod = POD(tmp_path / "p")
    pod["key"] = []
    pod["nested"] = {"a": {"b": []}}
    pod.sync()
    pod["key"].append(42)
    pod["nested"]["a"]["b"].append("x")
    for _key, value in pod.iteritems():
        if isinstance(value, dict):
            value["seen"] = True
    pod.sync()
    again = reopen(tmp_path / "p")
    assert again["key"] == [42]
    assert again["nested"] == {"a": {"b": ["x"]}, "seen": True}


def test_reads_do_not_rewrite_files(tmp_path):
    from persistkit.core.testing import snapshot_tree

    pod = POD(tmp_path / "p", file_size=2)
    pod.update({"a": [1], "b": {"x": 1}, "c": "s"})
    pod.close()
    before = snapshot_tree(tmp_path / "p")
    pod = POD(tmp_path / "p", file_size=2)
    assert pod["a"] == [1] and pod["b"] == {"x": 1} and pod["c"] == "s"
    assert pod.dirty() == {"a", "b"}
    pod.sync()  # nothing changed: no journal record, no shard
    pod.close()
    after = snapshot_tree(tmp_path / "p")
    lock_and_journal = {"persistkit-tracker.lock", "persistkit-tracker.journal-shm"}
    # The lock file and the journal's coordination file are opened by every writer.
    assert {k: v for k, v in after.items() if k not in lock_and_journal | {"."}} == {
        k: v for k, v in before.items() if k not in lock_and_journal | {"."}
    }


def test_sync_rewrites_only_changed_shards(tmp_path):
    pod = POD(tmp_path / "p", file_size=10)
    pod.update((i, i) for i in range(100))
    pod.close()
    pod = POD(tmp_path / "p", file_size=10)
    inodes = {i: os.stat(tmp_path / "p" / f"{i}.json").st_ino for i in range(10)}
    pod[35] = "changed"
    pod[77] = "changed"
    pod.sync()  # one journal record
    assert {
        i for i in range(10) if os.stat(tmp_path / "p" / f"{i}.json").st_ino != inodes[i]
    } == set()
    pod.close()  # the checkpoint
    changed = {i for i in range(10) if os.stat(tmp_path / "p" / f"{i}.json").st_ino != inodes[i]}
    assert changed == {3, 7}
    manifest = json.loads((tmp_path / "p" / "persistkit-tracker.json").read_text())
    assert manifest["commit"] == [3, 7]


def test_delete_pop_clear_and_reopen(tmp_path):
    pod = POD(tmp_path / "p", file_size=2)
    pod.update((c, ord(c)) for c in "abcdefg")
    pod.sync()
    del pod["b"]
    assert pod.pop("c") == ord("c")
    assert pod.pop("missing", None) is None
    with pytest.raises(KeyError):
        pod.pop("missing")
    assert pod.popitem() == ("g", ord("g"))
    pod["b"] = "again"
    pod.sync()
    again = reopen(tmp_path / "p", file_size=2)
    assert list(again.items()) == [
        ("a", 97),
        ("d", 100),
        ("e", 101),
        ("f", 102),
        ("b", "again"),
    ]
    pod.clear()
    assert len(pod) == 0
    pod.close()
    assert sorted(os.listdir(tmp_path / "p")) == [
        "persistkit-tracker.journal",
        "persistkit-tracker.journal-shm",
        "persistkit-tracker.json",
        "persistkit-tracker.lock",
    ]
    assert len(reopen(tmp_path / "p")) == 0
    with pytest.raises(KeyError):
        POD(tmp_path / "q").popitem()


def test_dict_api(tmp_path):
    pod = POD(tmp_path / "p", init={"a": 1})
    assert pod.get("a") == 1 and pod.get("zz", 5) == 5
    assert pod.setdefault("b", [1]) == [1]
    assert pod.setdefault("b", [2]) == [1]
    pod.update({"c": 3}, [("d", 4)], e=5)
    assert list(pod.keys()) == ["a", "b", "c", "d", "e"]
    assert list(pod.values()) == [1, [1], 3, 4, 5]
    assert list(pod.iterkeys()) == list(pod)
    assert list(pod.itervalues()) == list(pod.values())
    assert pod == {"a": 1, "b": [1], "c": 3, "d": 4, "e": 5}
    assert pod != {"a": 1}
    assert "a" in pod and "zz" not in pod
    assert repr(pod).startswith("PersistentOrderedDict(") and "'a': 1" in repr(pod)
    with pytest.raises(TypeError):
        hash(pod)


def test_int_keys_in_values_become_strings_as_in_json(tmp_path):
    my_pod = POD(tmp_path / "p")
    my_pod[1] = {1: 1}
    my_pod.sync()
    my_pod.revert()
    assert my_pod[1] == {"1": 1}


def test_revert_drops_unsynced_changes(tmp_path):
    pod = POD(tmp_path / "p")
    pod["a"] = 1
    pod.sync()
    pod["a"] = 2
    pod["b"] = 3
    pod.revert()
    assert dict(pod.items()) == {"a": 1}


def test_sync_at_and_hold(tmp_path):
    pod = POD(tmp_path / "p", sync_at=3)
    pod["a"] = 1
    pod["b"] = 2
    assert not (tmp_path / "p" / "0.json").exists()
    pod["c"] = 3
    assert len(reopen(tmp_path / "p")) == 3
    pod.hold()
    for i in range(10):
        pod[i] = i
    assert len(reopen(tmp_path / "p")) == 3
    pod.unhold()
    assert len(reopen(tmp_path / "p")) == 13
    pod.mark_dirty("a")
    assert pod.dirty() == {"a"}
    pod.sync_key("a")
    assert pod.dirty() == set()
    with pytest.raises(KeyError):
        pod.mark_dirty("nope")


def test_clones_share_memory_and_clone_false_does_not(tmp_path):
    first = POD(tmp_path / "p")
    second = POD(str(tmp_path / "p"))
    first["a"] = 1
    assert second["a"] == 1
    isolated = POD(tmp_path / "p", clone=False)
    assert "a" not in isolated
    with pytest.raises(StoreMismatchError):
        POD(tmp_path / "p", file_size=7)


def test_gzipped_store_and_mismatch(tmp_path):
    pod = POD(tmp_path / "g", gzipped=True, file_size=2)
    pod.update({"a": 1, "b": 2, "c": 3})
    pod.close()
    assert gzip.decompress((tmp_path / "g" / "1.json.gz").read_bytes()) == b'"c"\t3\n'
    assert reopen(tmp_path / "g", gzipped=True, file_size=2) == {"a": 1, "b": 2, "c": 3}
    with pytest.raises(StoreMismatchError, match="gzipped=True"):
        reopen(tmp_path / "g")
    folder = tmp_path / "tastypy-gz"
    folder.mkdir()
    with gzip.open(folder / "0.json.gz", "wb") as f:
        f.write(b'"x"\t1\n')
    with pytest.raises(StoreMismatchError):
        reopen(folder)
    assert reopen(folder, gzipped=True) == {"x": 1}


def test_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError) as caught:
        POD(tmp_path / "file")
    assert caught.value.errno == errno.ENOTDIR


def test_bad_arguments(tmp_path):
    for kwargs in ({"file_size": 0}, {"sync_at": -1}, {"durability": "fast"}):
        with pytest.raises(ValueError):
            POD(tmp_path / "p", **kwargs)
    assert not (tmp_path / "p").exists()


def test_close_syncs_and_forbids_use(tmp_path):
    with POD(tmp_path / "p") as pod:
        pod["a"] = 1
    assert reopen(tmp_path / "p") == {"a": 1}
    with pytest.raises(ClosedStoreError):
        pod["b"] = 2
    assert isinstance(POD(tmp_path / "p"), PersistentOrderedDict)


def test_iteration_sees_keys_added_meanwhile(tmp_path):
    pod = POD(tmp_path / "p", file_size=2)
    pod.update({"seed": 0})
    seen = []
    for key in pod:
        seen.append(key)
        if len(seen) < 6:
            pod[f"k{len(seen)}"] = len(seen)
    assert seen == ["seed", "k1", "k2", "k3", "k4", "k5"]


def test_deep_set_on_a_pod(tmp_path):
    pod = POD(tmp_path / "p")
    pod.set["foo"] = {"bar": 0, "baz": []}
    pod.set["foo"]["bar"] += 1
    pod.set["foo"]["baz"].append("fizz")
    pod.set["foo"]["baz"] += ["buzz"]
    pod.set["foo"]["baz"][:] = ["only"]
    del pod.set["foo"]["bar"]
    pod.sync()
    assert reopen(tmp_path / "p")["foo"] == {"baz": ["only"]}
    with pytest.raises(KeyError):
        pod.set["missing"].append(1)
