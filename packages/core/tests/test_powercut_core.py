"""Every durable path of core, cut at every sync barrier and at random points, in both modes.

After each cut: what a call that had returned promised is there with its value; every file
is exactly its old or its new content; no name other than the old or new ones is visible
(persistkit's hidden temporary names aside, which `sweep` removes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from persistkit.core import (
    AtomicWriter,
    Batch,
    atomic_file,
    atomic_folder,
    atomic_write,
    exchange,
    fsync_dir,
    make_dirs,
    remove,
    rename,
    replace_atomic,
    write_bytes,
    write_text,
    write_value,
)
from persistkit.core._names import is_temp_name
from persistkit.core.testing import (
    PowerCut,
    PowerCutFS,
    cut_at_every_barrier,
    cut_at_random_points,
)

pytestmark = pytest.mark.powercut

OLD = b"old content, durable before the operation " * 150  # > 1 page: tearing shows
NEW = b"NEW CONTENT written by the operation " * 300
Tree = dict[str, bytes | None]  # relative path -> content, None for a folder


def tree(root: Path) -> Tree:
    """Every visible entry under ``root`` (temporary names left out) and its content."""
    found: Tree = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if not is_temp_name(name)]
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            if not is_temp_name(name):
                path = os.path.join(folder, name)
                found[os.path.relpath(path, root)] = Path(path).read_bytes()
    return found


@dataclass(frozen=True)
class Case:
    """A durable operation, the files before it and after it, and what may be seen between."""

    name: str
    before: Tree
    operation: Callable[[Path], object]
    after: Tree
    # "whole": the tree is all before or all after. "per_file": each name is its before or
    # its after (a batch is not a transaction; a rename across folders is flushed folder by
    # folder). "prefix": folders appear one by one.
    unit: str = "whole"


def _write_fsync_dir(work: Path) -> None:
    with open(work / "f", "wb") as f:
        f.write(NEW)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(work)


def _atomic_write(work: Path) -> None:
    with atomic_write(work / "f", "wb") as f:
        f.write(NEW[:1000])
        f.write(NEW[1000:])


def _atomic_writer(work: Path) -> None:
    with AtomicWriter(work / "f", "wb", overwrite=False).open() as f:
        f.write(NEW)


def _atomic_file(work: Path) -> None:
    with atomic_file(work / "f", "wb") as f:
        f.write(NEW)


def _folder(work: Path, *, overwrite: bool) -> None:
    with atomic_folder(work / "d", overwrite=overwrite) as folder:
        (folder / "a").write_bytes(NEW)
        (folder / "sub").mkdir()
        (folder / "sub" / "b").write_bytes(NEW[:100])


def _batch(work: Path, flush: str) -> None:
    with Batch(flush=flush) as batch:  # type: ignore[arg-type]
        batch.write_bytes(work / "a", NEW)
        batch.write_bytes(work / "b", NEW[:10])
        batch.write_bytes(work / "c", NEW)


NEW_FOLDER: Tree = {"d": None, "d/a": NEW, "d/sub": None, "d/sub/b": NEW[:100]}

CASES = [
    Case("write_bytes replace", {"f": OLD}, lambda w: write_bytes(w / "f", NEW), {"f": NEW}),
    Case("write_bytes new", {}, lambda w: write_bytes(w / "f", NEW), {"f": NEW}),
    Case(
        "write_bytes create-only",
        {},
        lambda w: write_bytes(w / "f", NEW, overwrite=False),
        {"f": NEW},
    ),
    Case(
        "write_bytes temp_dir",
        {"tmp": None, "f": OLD},
        lambda w: write_bytes(w / "f", NEW, temp_dir=w / "tmp"),
        {"tmp": None, "f": NEW},
    ),
    Case(
        "write_text replace",
        {"f": OLD},
        lambda w: write_text(w / "f", NEW.decode()),
        {"f": NEW},
    ),
    Case(
        "write_value replace",
        {"f": OLD},
        lambda w: write_value(w / "f", {"k": "v"}),
        {"f": b'{"k": "v"}'},
    ),
    Case("atomic_write replace", {"f": OLD}, _atomic_write, {"f": NEW}),
    Case("AtomicWriter create-only", {}, _atomic_writer, {"f": NEW}),
    Case("atomic_file new", {}, _atomic_file, {"f": NEW}),
    Case("atomic_folder new", {}, lambda w: _folder(w, overwrite=False), NEW_FOLDER),
    Case(
        "atomic_folder replace",
        {"d": None, "d/old": OLD},
        lambda w: _folder(w, overwrite=True),
        NEW_FOLDER,
    ),
    Case(
        "Batch flush=filesystem",
        {"a": OLD, "b": OLD},
        lambda w: _batch(w, "filesystem"),
        {"a": NEW, "b": NEW[:10], "c": NEW},
        "per_file",
    ),
    Case(
        "Batch flush=files",
        {"a": OLD, "b": OLD},
        lambda w: _batch(w, "files"),
        {"a": NEW, "b": NEW[:10], "c": NEW},
        "per_file",
    ),
    Case("rename", {"a": OLD}, lambda w: rename(w / "a", w / "b"), {"b": OLD}),
    Case(
        "rename over",
        {"a": NEW, "b": OLD},
        lambda w: rename(w / "a", w / "b"),
        {"b": NEW},
    ),
    Case(
        "rename create-only",
        {"a": OLD},
        lambda w: rename(w / "a", w / "b", overwrite=False),
        {"b": OLD},
    ),
    # Two folders are two flushes: between them both names exist (the destination is
    # flushed first, so the file is never lost). Once the call returned, only the new one.
    Case(
        "rename across folders",
        {"x": None, "y": None, "x/a": OLD},
        lambda w: rename(w / "x" / "a", w / "y" / "a"),
        {"x": None, "y": None, "y/a": OLD},
        "per_file",
    ),
    Case(
        "replace_atomic",
        {"a": NEW, "b": OLD},
        lambda w: replace_atomic(w / "a", w / "b"),
        {"b": NEW},
    ),
    Case(
        "exchange",
        {"a": OLD, "b": NEW},
        lambda w: exchange(w / "a", w / "b"),
        {"a": NEW, "b": OLD},
    ),
    Case("remove", {"a": OLD, "b": OLD}, lambda w: remove(w / "a"), {"b": OLD}),
    Case(
        "make_dirs",
        {},
        lambda w: make_dirs(w / "p" / "q" / "r"),
        {"p": None, "p/q": None, "p/q/r": None},
        "prefix",
    ),
    Case("write, fsync, fsync_dir", {"f": OLD}, _write_fsync_dir, {"f": NEW}),
]


def checker(work: Path, case: Case) -> Callable[[PowerCut], None]:
    def check(point: PowerCut) -> None:
        found = tree(work)
        if point.completed:
            assert found == case.after, "a returned durable call lost its result"
        elif case.unit == "whole":
            assert found in (case.before, case.after), "neither the old nor the new files"
        elif case.unit == "per_file":
            for name in {*found, *case.before, *case.after}:
                assert found.get(name) in (case.before.get(name), case.after.get(name)), name
        else:
            assert set(found) <= set(case.after)

    return check


def setup_for(work: Path, case: Case) -> Callable[[], None]:
    def setup() -> None:
        work.mkdir()
        for name, content in sorted(case.before.items()):
            if content is None:
                (work / name).mkdir()
            else:
                (work / name).write_bytes(content)

    return setup


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_barrier(power_cut: PowerCutFS, case: Case) -> None:
    work = power_cut.root / "work"
    summary = cut_at_every_barrier(
        power_cut,
        lambda: case.operation(work),
        setup=setup_for(work, case),
        check=checker(work, case),
        seeds=(0, 1),
    )
    assert summary.barriers >= 1
    assert any(point.completed for point in summary.cuts)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_random_points(power_cut: PowerCutFS, case: Case) -> None:
    work = power_cut.root / "work"
    summary = cut_at_random_points(
        power_cut,
        lambda: case.operation(work),
        setup=setup_for(work, case),
        check=checker(work, case),
        runs=6,
        seed=sum(map(ord, case.name)),
    )
    assert len(summary.cuts) == 6
