"""``persistkit tracker PATH``: a tracker's progress, without changing anything."""

from __future__ import annotations

import argparse
import errno
import os
from typing import Any

from persistkit.tracker._shards import find_store
from persistkit.tracker._tracker import Tracker

_BAR_WIDTH = 40


def register(commands: Any) -> None:
    """Add the ``tracker`` subcommand to the ``persistkit`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "tracker", help="show a progress tracker's counts and progress bar"
    )
    parser.add_argument("path", help="the tracker's folder")
    parser.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    # Inspecting opens the store for reading only: nothing is created, recovered or swept,
    # and a folder that holds no store is an error rather than a new empty tracker.
    if not os.path.isdir(args.path):
        raise FileNotFoundError(errno.ENOENT, "no tracker here", args.path)
    gzipped = find_store(args.path)
    if gzipped is None:
        raise FileNotFoundError(
            errno.ENOENT, "no tracker here (no persistkit-tracker.json, no 0.json)", args.path
        )
    tracker = Tracker(args.path, gzipped=gzipped, read_only=True)
    try:
        progress = tracker.progress()
    finally:
        tracker.close()
    filled = round(_BAR_WIDTH * progress.fraction_done)
    print(f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {100 * progress.fraction_done:.1f} %")
    print(f"tasks    {progress.total}")
    print(f"done     {progress.done}")
    print(f"tried    {progress.tried}")
    print(f"aborted  {progress.aborted}")
    print(f"to do    {progress.remaining}")
    return 0
