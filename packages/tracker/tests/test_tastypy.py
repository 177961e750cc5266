"""tastypy 0.0.3 itself, under Python 2.7, reading and growing stores persistkit wrote.

The guide promises that a closed persistkit store is a tastypy store: tastypy reads it, and
what tastypy then adds (values changed, keys appended, new shard files) persistkit adopts.
This runs the real tastypy in a Python 2.7 process; a machine without Python 2.7 (or without
a way to install tastypy 0.0.3 for it) cannot run these tests.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import textwrap

import pytest

from persistkit.core.testing import facility_unavailable
from persistkit.tracker import POD, Tracker

TASTYPY_SCRIPT = textwrap.dedent(
    r"""
    import json, sys
    import tastypy

    path, file_size, changes = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])

    def key_of(raw):
        return tuple(key_of(part) for part in raw) if isinstance(raw, list) else raw

    pod = tastypy.POD(path, file_size=file_size)
    for raw, value in changes:
        pod[key_of(raw)] = value
    pod.sync()
    sys.stdout.write(json.dumps([[key, value] for key, value in pod.iteritems()]))
    """
)


@pytest.fixture(scope="module")
def tastypy(tmp_path_factory):
    """Return a function running tastypy 0.0.3 on a store: (path, file_size, changes) -> items."""
    python2 = os.environ.get("PERSISTKIT_PYTHON2") or next(
        iter(sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python2.7")))),
        shutil.which("python2.7"),
    )
    if not python2:
        facility_unavailable("Python 2.7, which tastypy 0.0.3 needs, is not installed")
    site = os.environ.get("PERSISTKIT_PYTHON2_PATH")
    if not site:
        site = str(tmp_path_factory.mktemp("python2-site"))
        pip = [python2, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        installed = subprocess.run(
            [*pip, "--target", site, "tastypy==0.0.3"],
            capture_output=True,
            text=True,
            check=False,
        )
        if installed.returncode != 0:
            facility_unavailable(f"cannot install tastypy 0.0.3 for Python 2.7: {installed.stderr}")

    def run(path, file_size, changes=()):
        result = subprocess.run(
            [python2, "-c", TASTYPY_SCRIPT, str(path), str(file_size), json.dumps(changes)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": site},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return [(as_key(key), value) for key, value in json.loads(result.stdout)]

    return run


def as_key(raw):
    return tuple(as_key(part) for part in raw) if isinstance(raw, list) else raw


# tastypy cannot write a shard holding a tuple key (its serializer crashes), so the tuple key
# sits in 1.json, which these tests never have tastypy rewrite.
ITEMS = [
    ("plain", 1),
    (7, "seven"),
    ("back\\slash", None),
    (("tuple", 2), {"nested": [1, 2]}),
    ("été", "unicode"),
    ("last", [True, False]),
    ("seventh", 7.5),
]


def test_tastypy_reads_a_closed_store_and_persistkit_adopts_what_it_adds(tmp_path, tastypy):
    folder = tmp_path / "p"
    pod = POD(folder, file_size=3, clone=False)
    pod.update(ITEMS)
    pod.close()
    assert tastypy(folder, 3) == ITEMS
    # tastypy changes a value in 0.json, fills the last shard (2.json) and starts 3.json.
    added = [("plain", "changed by tastypy"), ("t1", 1), ("t2", 2), ("t3", 3)]
    expected = [("plain", "changed by tastypy"), *ITEMS[1:], *added[1:]]
    assert tastypy(folder, 3, added) == expected
    pod = POD(folder, file_size=3, clone=False)
    assert list(pod.items()) == expected
    pod["t3"] = "changed by persistkit"
    pod["p1"] = "added by persistkit"
    pod.close()
    final = [*expected[:-1], ("t3", "changed by persistkit"), ("p1", "added by persistkit")]
    assert list(POD(folder, file_size=3, clone=False).items()) == final
    assert tastypy(folder, 3) == final


def test_tastypy_reads_a_closed_tracker(tmp_path, tastypy):
    folder = tmp_path / "t"
    tracker = Tracker(folder, file_size=2, clone=False)
    tracker.add_many(["a", "b", "c"])
    tracker.mark_done("b")
    tracker.close()
    tasks = tastypy(folder, 2)
    assert [key for key, _ in tasks] == ["a", "b", "c"]
    assert [task["_done"] for _, task in tasks] == [False, True, False]
