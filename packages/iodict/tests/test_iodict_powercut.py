"""IODict on the power-cut filesystem (issue 10): set, delete, update, pops, checkpoints.

Cuts just before and after every flush of each durable operation, in strict mode (only what
was flushed survives) and random mode (each unflushed change kept or lost, writes torn at
page boundaries). The filesystem simulates the disk; the reboot that follows a real power cut
also gives the machine a new boot id, which this test gives the store (`_reboot`): a store
trusts its order index only within the boot it was written in.

After each cut the store is reopened with its own API and must hold: every change whose call
returned is there with its value, nothing else changed, no item is torn; and once a writer
has replayed the journal, the order index says exactly what the item files say.
"""

from __future__ import annotations

import itertools
import shutil
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persistkit.core import Journal
from persistkit.core.testing import PowerCut, PowerCutFS, cut_at_every_barrier, cut_processes
from persistkit.iodict import IODict
from persistkit.iodict import _iodict as iodict_module

_boots = itertools.count()


def _reboot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iodict_module, "BOOT", f"power-cut-test-boot-{next(_boots)}")


def _exact(path: Path, scratch: Path) -> list[tuple[Any, Any]]:
    """The items, checked against a rebuild from the item files alone (a copy)."""
    with IODict(path, read_only=True) as store:
        items = list(store.items())
        assert len(store) == len(items)
        assert next(iter(store), None) == (items[0][0] if items else None)
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(path, scratch, ignore=shutil.ignore_patterns(".persistkit-iodict.d"))
    assert items == list(IODict(scratch, read_only=True).items())
    return items


BEFORE = [("a", 1), ("b", [2]), ("c", {"x": 3})]
CASES: dict[str, tuple[Callable[[IODict[Any, Any]], object], list[tuple[Any, Any]]]] = {
    "set": (lambda d: d.__setitem__("new", "n"), [*BEFORE, ("new", "n")]),
    "overwrite": (
        lambda d: d.__setitem__("b", "changed"),
        [("a", 1), ("b", "changed"), ("c", {"x": 3})],
    ),
    "delete": (lambda d: d.__delitem__("a"), BEFORE[1:]),
    "update": (
        lambda d: d.update({"c": 30, "u": 1, "v": 2}),
        [("a", 1), ("b", [2]), ("c", 30), ("u", 1), ("v", 2)],
    ),
    "popleft": (lambda d: d.popleft(), BEFORE[1:]),
    "popitem": (lambda d: d.popitem(), BEFORE[:2]),
}


@pytest.mark.parametrize(
    ("case", "use_xattrs"),
    [*((case, None) for case in sorted(CASES)), ("set", False), ("delete", False)],
    ids=[*sorted(CASES), "set-header", "delete-header"],
)
def test_durable_changes_survive_power_cuts(
    power_cut: PowerCutFS,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    case: str,
    use_xattrs: bool | None,
) -> None:
    path = power_cut.root / "d"
    operation, after = CASES[case]

    def setup() -> None:
        with IODict(path, use_xattrs=use_xattrs) as store:
            store.update(BEFORE)

    def check(point: PowerCut) -> None:
        _reboot(monkeypatch)
        with IODict(path) as store:
            seen = list(store.items())  # the journal's version, before any replay
            assert seen in (BEFORE, after), point.describe()
            if point.completed:
                assert seen == after, point.describe()
            store["z"] = 0  # the first write replays the journal and rebuilds the index
        assert _exact(path, tmp_path / "copy") == [*seen, ("z", 0)], point.describe()

    cut_at_every_barrier(power_cut, lambda: operation(IODict(path)), setup=setup, check=check)


def test_a_checkpoint_survives_power_cuts(
    power_cut: PowerCutFS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The write that crosses the journal's threshold flushes items and recycles the log."""
    path = power_cut.root / "d"
    value = "v" * 3000
    keys: list[str] = []

    def setup() -> None:
        journal = path / ".persistkit-iodict.d" / "journal"
        with IODict(path) as store:
            while True:  # fill the journal to just below its checkpoint threshold
                store[f"k{len(keys)}"] = value
                keys.append(f"k{len(keys)}")
                with Journal(journal, readonly=True) as log:
                    if log.end - log.start + 2 * len(value) > 192 << 10:
                        break

    def check(point: PowerCut) -> None:
        _reboot(monkeypatch)
        with IODict(path) as store:
            seen = list(store)
            assert seen in (keys, [*keys, "last"]), point.describe()
            if point.completed:
                assert seen == [*keys, "last"]
            assert all(store[key] == value for key in seen)
            store["z"] = 0
        assert [key for key, _ in _exact(path, tmp_path / "copy")] == [*seen, "z"]

    cut_at_every_barrier(
        power_cut, lambda: IODict(path).__setitem__("last", value), setup=setup, check=check
    )


WORKER = textwrap.dedent(
    """
    import sys
    from persistkit.iodict import IODict
    store = IODict(sys.argv[1])
    name = sys.argv[2]
    for n in range(10_000):
        store[f"{name}-{n}"] = n
        if n % 3 == 2:
            del store[f"{name}-{n - 1}"]
            print(f"del {name}-{n - 1}", flush=True)
        print(f"set {name}-{n}", flush=True)
    """
)


@pytest.mark.parametrize("seed", [0, 1])
def test_four_processes_then_a_power_cut(
    power_cut: PowerCutFS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seed: int
) -> None:
    path = power_cut.root / "d"
    with IODict(path) as store:
        store["seed"] = 0
    power_cut.sync()
    result = cut_processes(
        power_cut,
        [[sys.executable, "-c", WORKER, str(path), f"w{i}"] for i in range(4)],
        after_lines=60,
        mode="random",
        seed=seed,
    )
    _reboot(monkeypatch)
    store = IODict(path)
    for lines in result.output:
        deleted = {line.split()[1] for line in lines if line.startswith("del ")}
        # The worker deletes w-k (k % 3 == 1) right after it sets w-(k+1): if its last
        # acknowledged line is that set of w-k, the delete may have been in flight.
        last = lines[-1].split() if lines else ["", ""]
        in_flight = last[1] if last[0] == "set" and int(last[1].split("-")[1]) % 3 == 1 else None
        for line in lines:
            kind, key = line.split()
            if kind == "set" and key not in deleted and key != in_flight:
                assert store[key] == int(key.split("-")[1]), key
            elif kind == "del":
                assert key not in store, key
    store["after"] = 1
    store.close()
    keys = [key for key, _ in _exact(path, tmp_path / "copy")]
    assert keys[0] == "seed" and keys[-1] == "after"
