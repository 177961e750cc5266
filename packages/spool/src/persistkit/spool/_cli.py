"""``persistkit spool DIR``: how many messages each area holds, and what is not a message.

Opens the spool with ``create=False``: nothing is created or written (the tests compare the
whole tree before and after, on a read-only mount too). Entries that are not messages
(folders, symlinks, files in ``cur/`` without a claim) are problems: the spool leaves them
alone, so someone should look at them.

``DIR`` may also be ``s3://bucket/prefix``: the spool is read with GETs and LISTs only (one
listing per area, one read per claim).
"""

from __future__ import annotations

import argparse
import os

from persistkit.core import cli
from persistkit.spool._spool import Spool, is_object_location


def register(commands: cli.Commands) -> None:
    """Add the ``spool`` subcommand to the ``persistkit`` command."""
    parser = commands.add(
        "spool",
        help="count a spool's messages in each area, and list what is not a message",
        handler=_show,
    )
    parser.add_argument("path", help="the spool's folder, or s3://bucket/prefix")


def _show(args: argparse.Namespace, out: cli.Output) -> None:
    if is_object_location(args.path):
        # An empty prefix is an empty spool: objects need no folders that could tell.
        with Spool(args.path, create=False, watch="poll") as spool:
            areas = {area: spool.count(area) for area in ("new", "cur", "dead", "done")}
            strays = spool.strays()
        where = spool.path
    else:
        where = os.path.abspath(cli.existing_folder(args.path, what="a spool"))
        if not os.path.isdir(os.path.join(where, "new")):
            raise cli.CommandError("no spool here (no new/ folder)", path=where, kind="wrong_kind")
        spool = Spool(where, create=False, watch="poll")
        areas = {
            area: spool.count(area)
            for area in Spool.areas
            if os.path.isdir(os.path.join(where, area))
        }
        strays = spool.strays()
    out.data(
        path=where,
        areas=areas,
        strays=[{"path": path, "what": what} for path, what in strays.items()],
    )
    out.table(list(areas.items()), ["area", "messages"])
    for path, what in strays.items():
        shown = path[len(where) + 1 :] if path.startswith(where + "/") else path
        out.problem(f"{shown}: not a message, left alone ({what})")
