"""Whatever names and areas a caller passes, nothing ever lands outside the store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistkit.core.errors import PersistkitError
from persistkit.spool import FileStore, Spool

LISTED = "@listed"  # stands for a full path that list() returned for the source area

TRICKY = [
    "seed",
    "seed",
    LISTED,
    LISTED,
    "..",
    ".",
    "",
    "../escaped",
    "../../escaped",
    "/tmp/escaped",
    "a/../../escaped",
    "new/../../escaped",
    "x\0y",
    "\0/x",
    "new/\0",
    ".hidden",
    "\udcff",
    "a" * 255,
    "a" * 256,
    "é" * 128,
]

names = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=20),
    st.builds(lambda a, b: f"{a}/{b}", st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda a: f"../{a}", st.text(max_size=8)),
)
areas = st.one_of(
    st.sampled_from(["tmp", "new", "cur", "dead", "..", "", "/", "new/.."]), st.text(max_size=5)
)
operations = st.lists(
    st.tuples(
        st.sampled_from(["create", "move", "copy", "remove", "list", "requeue"]),
        names,
        areas,
        areas,
    ),
    min_size=1,
    max_size=8,
)

# Errors a caller may legitimately get; anything else is a bug.
EXPECTED = (PersistkitError, FileNotFoundError, FileExistsError)


def files_outside(root: Path, store: Path) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if not path.is_relative_to(store) and path.name not in ("sentinel", "box")
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_no_operation_writes_outside_the_store(ops):
    with tempfile.TemporaryDirectory() as root_name:
        root = Path(root_name)
        store_dir = root / "box" / "store"
        (root / "box").mkdir()
        (root / "box" / "sentinel").write_text("untouched")
        (root / "sentinel").write_text("untouched")
        store = FileStore(store_dir, durability="atomic")
        store.prepare()
        spool = Spool(store_dir, durability="atomic")
        with store.create("seed") as f:
            f.write("seed")
        cwd = os.getcwd()
        os.chdir(store_dir / "new")  # so relative escapes would land in the sandbox
        try:
            for operation, given_name, source, destination in ops:
                try:
                    name = given_name
                    if given_name == LISTED:
                        listed = store.list(source)
                        name = listed[0] if listed else "seed"
                    if operation == "create":
                        store.create(name).close()
                    elif operation == "move":
                        store.move(name, source, destination)
                    elif operation == "copy":
                        store.copy(name, source, destination)
                    elif operation == "remove":
                        store.remove(name, source)
                    elif operation == "list":
                        store.list(source)
                    else:
                        spool.requeue(name)
                except EXPECTED:
                    pass
        finally:
            os.chdir(cwd)
        assert files_outside(root, store_dir) == []
        assert (root / "sentinel").read_text() == "untouched"
        assert (root / "box" / "sentinel").read_text() == "untouched"
        for path in store_dir.rglob("*"):
            assert path.parent.parent == store_dir or path.parent == store_dir


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_a_name_is_either_refused_or_a_single_component(name):
    with tempfile.TemporaryDirectory() as root_name:
        store = FileStore(Path(root_name) / "s", durability="atomic")
        store.prepare()
        try:
            store.create(name).close()
        except PersistkitError:
            assert os.listdir(Path(root_name, "s", "tmp")) == []
            return
        assert os.listdir(Path(root_name, "s", "tmp")) == [name]
