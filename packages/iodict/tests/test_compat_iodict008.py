"""Directories written by iodict 0.0.8: sha3-224 names, user.key and user.birthtime xattrs."""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
from pathlib import Path

import pytest

from persistkit.iodict import IODict


def write_like_iodict008(directory: Path, items: list[tuple[str, object, float]]) -> None:
    """Lay files out exactly as iodict 0.0.8 does (the seeds README's description).

    This builds a fixture in the peer's format; it is not how persistkit writes.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.setxattr(directory, "user.birthtime", struct.pack(">d", 1.0))
    for key, value, birthtime in items:
        path = directory / hashlib.sha3_224(key.encode()).hexdigest()
        with open(path, "wb") as f:
            pickle.dump(value, f)
        os.setxattr(path, "user.birthtime", struct.pack(">d", birthtime))
        os.setxattr(path, "user.key", key.encode())


def test_reads_a_hand_made_iodict008_directory(tmp_path: Path) -> None:
    directory = tmp_path / "old"
    # Birth times deliberately out of name order: iteration must follow them.
    write_like_iodict008(
        directory, [("zeta", 1, 1000.0), ("alpha", [2], 3000.0), ("mid", {"x": 3}, 2000.0)]
    )
    store = IODict(directory)
    assert list(store.items()) == [("zeta", 1), ("mid", {"x": 3}), ("alpha", [2])]
    assert not (directory / ".persistkit-iodict.json").exists()  # reading writes nothing


def test_writing_into_an_iodict008_directory_keeps_its_order(tmp_path: Path) -> None:
    directory = tmp_path / "old"
    write_like_iodict008(directory, [("a", 1, 5000.0), ("b", 2, 6000.0)])
    store = IODict(directory)
    store["new"] = 3
    store["a"] = 10  # an old item overwritten keeps its place
    assert list(store.items()) == [("a", 10), ("b", 2), ("new", 3)]
    assert list(IODict(directory).items()) == [("a", 10), ("b", 2), ("new", 3)]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_real_iodict008_directory_round_trip(tmp_path: Path) -> None:
    iodict = pytest.importorskip("iodict", reason="iodict 0.0.8 is not installed (a bench peer)")
    if getattr(iodict, "__version__", "") != "0.0.8":
        from iodict import meta

        if meta.__version__ != "0.0.8":
            pytest.skip(f"iodict {meta.__version__} installed, not 0.0.8")
    directory = tmp_path / "real"
    old = iodict.IODict(path=str(directory))
    for key in ["first", "second", "third"]:
        old[key] = {"key": key}
    store = IODict(directory)
    assert list(store.items()) == [(k, {"key": k}) for k in ["first", "second", "third"]]
    store["fourth"] = 4
    store["first"] = "changed"
    # And iodict 0.0.8 can still read what persistkit wrote (pickle values, same xattrs).
    assert old["fourth"] == 4 and old["first"] == "changed"
    # iodict 0.0.8 shows every file as a key, persistkit's metadata and lock files too.
    old_keys = sorted(k for k in old if not k.startswith(".persistkit-iodict."))
    assert old_keys == ["first", "fourth", "second", "third"]
