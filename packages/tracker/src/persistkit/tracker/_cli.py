"""``persistkit tracker DIR``: a tracker's counts and progress, without changing anything.

``DIR`` may also be ``s3://bucket/prefix``: the tracker is read with GETs and LISTs only.

Opens the store with ``read_only=True``: nothing is created, recovered, swept or locked for
writing (a shared lock is taken only where the lock file exists), so it is safe on a live
store, a backup or read-only media. A damaged store fails as ``corrupt`` naming the file
(`IntegrityError` is a `CorruptFileError`); values that are not tasks are a problem (the
folder holds a POD, or something wrote into the tracker that is not a task).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from persistkit.core import cli
from persistkit.tracker._lines import Key
from persistkit.tracker._object_state import ObjectState
from persistkit.tracker._pod import is_object_location
from persistkit.tracker._shards import find_store
from persistkit.tracker._tracker import Tracker


def register(commands: cli.Commands) -> None:
    """Add the ``tracker`` subcommand to the ``persistkit`` command."""
    parser = commands.add(
        "tracker",
        help="show a progress tracker's counts and progress bar, without changing anything",
        handler=_show,
    )
    parser.add_argument("path", help="the tracker's folder, or s3://bucket/prefix")
    parser.add_argument(
        "--todo",
        action="store_true",
        help="list the tasks to do (not done, not aborted), in the order they were added",
    )
    parser.add_argument(
        "--aborted",
        action="store_true",
        help="list the aborted tasks, in the order they were added",
    )
    parser.add_argument(
        "--max-tries",
        type=_non_negative,
        default=0,
        metavar="N",
        help="with --todo: leave out tasks tried N times already (default 0: no limit)",
    )


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _json_key(key: Key) -> Any:
    """A key as JSON: str and int as they are, tuples as arrays (as the shard files hold them)."""
    if isinstance(key, tuple):
        return [_json_key(part) for part in key]
    return key


def _shown(key: Key) -> str:
    """A key for people: its JSON text, so that ``1`` and ``"1"`` stay apart."""
    return json.dumps(_json_key(key), ensure_ascii=False)


def _open(path: str, max_tries: int) -> tuple[Tracker, bool]:
    """Open the tracker at ``path`` (a folder or ``s3://``) for reading; say if gzipped."""
    if is_object_location(path):
        tracker = Tracker(path, max_tries=max_tries, read_only=True)
        state = tracker._state
        if isinstance(state, ObjectState) and state.seq == 0 and not state.values:
            tracker.close()
            raise cli.CommandError(
                "no tracker here (no checkpoint, no journal record)", path=path, kind="missing"
            )
        return tracker, False
    folder = cli.existing_folder(path, what="a tracker")
    gzipped = find_store(folder)
    if gzipped is None:
        raise cli.CommandError(
            "no tracker here (no persistkit-tracker.json, no 0.json, no journal)",
            path=folder,
            kind="wrong_kind",
        )
    return Tracker(folder, max_tries=max_tries, gzipped=gzipped, read_only=True), gzipped


def _show(args: argparse.Namespace, out: cli.Output) -> None:
    tracker, gzipped = _open(args.path, args.max_tries)
    try:
        progress = tracker.progress()
        values = tracker._state.values
        not_tasks = sum(1 for value in values.values() if not isinstance(value, dict))
        shards = len(tracker._state.shards)
        todo = list(tracker.todo_keys()) if args.todo else None
        aborted = list(tracker.aborted_keys()) if args.aborted else None
    finally:
        tracker.close()
    out.data(
        path=tracker.path,
        gzipped=gzipped,
        shards=shards,
        total=progress.total,
        done=progress.done,
        tried=progress.tried,
        aborted=progress.aborted,
        remaining=progress.remaining,
        fraction_done=progress.fraction_done,
        not_tasks=not_tasks,
    )
    out.bar(progress.done, progress.total)
    out.fields(
        [
            ("tasks", progress.total),
            ("done", progress.done),
            ("tried", progress.tried),
            ("aborted", progress.aborted),
            ("remaining", progress.remaining),
        ]
    )
    if todo is not None:
        out.data(todo_keys=[_json_key(key) for key in todo])
        out.line(f"to do ({len(todo)}):")
        for key in todo:
            out.line(f"  {_shown(key)}")
    if aborted is not None:
        out.data(aborted_keys=[_json_key(key) for key in aborted])
        out.line(f"aborted ({len(aborted)}):")
        for key in aborted:
            out.line(f"  {_shown(key)}")
    if not_tasks:
        out.problem(
            f"{not_tasks} value(s) are not tasks (not a dict): is this a POD rather than a tracker?"
        )
