"""tastypy's remaining spellings, and the shape of the package's own modules."""

from __future__ import annotations

import ast
import inspect
import os
from pathlib import Path

import pytest

from persistkit import tracker as tastypy
from persistkit.tracker import POD, SharedPOD, SharedTracker, Tracker


def test_normalize_path_is_what_a_store_keeps(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert tastypy.normalize_path("~/link") == str((tmp_path / "real").resolve())
    assert POD("~/link").path == tastypy.normalize_path("~/link")


def test_json_serializer_reads_and_writes_the_shard_lines(tmp_path):
    items = [("a", 1), (("t", 2), {"x": [1]}), (7, None), ("tab\\back", "v")]
    lines = list(tastypy.JSONSerializer.dump_items(items))
    assert lines[0] == '"a"\t1\n'
    assert lines[3] == '"tab\\\\\\\\back"\t"v"\n'  # the key column doubles backslashes
    assert list(tastypy.JSONSerializer.read_items([*lines, "\n"])) == items
    assert tastypy.JSONSerializer.deserialize_key('["t", [1, "x"]]') == ("t", (1, "x"))
    pod = POD(tmp_path / "p", clone=False)
    pod.update(items)
    pod.close()
    assert (tmp_path / "p" / "0.json").read_text() == "".join(lines)


def test_convert_to_tracker_keeps_progress_and_opens_as_a_tracker(tmp_path):
    pod = POD(tmp_path / "p", clone=False)
    pod["plain"] = 3
    pod["record"] = {"url": "x"}
    pod["started"] = {"_done": True, "_tries": 2}
    pod.convert_to_tracker()
    pod.convert_to_tracker()  # twice: nothing is reset
    pod.close()
    tracker = Tracker(tmp_path / "p", clone=False)
    assert tracker["plain"] == {"val": 3, "_tries": 0, "_done": False, "_aborted": False}
    assert tracker["record"] == {"url": "x", "_tries": 0, "_done": False, "_aborted": False}
    assert tracker.done("started") and tracker.tries("started") == 2
    assert tracker.progress() == (3, 1, 1, 0)
    assert dict(tastypy.DEFAULT_PROGRESS_TRACKER_MAPPING) == {
        "_tries": 0,
        "_done": False,
        "_aborted": False,
    }


def test_shared_pod_tracker_open_lock_and_chunk_sizes(tmp_path):
    assert tastypy.ITERITEMS_CHUNK_SIZE == tastypy.ITERKEYS_CHUNK_SIZE == 1000
    shared = SharedPOD(tmp_path / "p", init={"n": 0})
    assert shared.tracker_open
    with shared.LOCK:
        shared.set["n"] += 1
    assert shared.LOCK.acquire() is True
    shared.set["n"] += 1
    shared.LOCK.release()
    assert shared["n"] == 2
    shared.close()
    assert not shared.tracker_open
    with pytest.raises(tastypy.CalledClosedTrackerError):
        shared.lock()


def test_shared_methods_have_the_signatures_of_the_methods_they_share():
    for name in ("mark_done", "should_try", "should_do_add", "tries", "add_if_absent"):
        shared, own = getattr(SharedTracker, name), getattr(Tracker, name)
        assert inspect.signature(shared) == inspect.signature(own), name
        assert shared.__doc__.startswith(f"`{own.__qualname__}`")
    assert inspect.signature(SharedPOD.__setitem__) == inspect.signature(POD.__setitem__)


def test_the_modules_import_each_other_in_layers_without_a_circle():
    package = Path(tastypy.__file__).parent
    imports: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        found = set()
        for node in ast.walk(tree):  # imports inside functions count too
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("persistkit.tracker."):
                    found.add(node.module.rsplit(".", 1)[1])
                elif node.module == "persistkit.tracker":
                    found.update(alias.name for alias in node.names)
        imports[path.stem] = found & {p.stem for p in package.glob("*.py")}
    done: set[str] = set()

    def visit(module, trail):
        assert module not in trail, f"import circle: {' -> '.join([*trail, module])}"
        if module not in done:
            for imported in imports[module]:
                visit(imported, [*trail, module])
            done.add(module)

    for module in imports:
        visit(module, [])
    assert "_tracker" not in imports["_pod"]
    assert os.path.exists(package / "_shards.py") and not os.path.exists(package / "_store.py")
