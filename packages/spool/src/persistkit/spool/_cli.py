"""``persistkit spool DIR``: how many messages each area holds, and what is not a message.

Opens the spool with ``create=False``: nothing is created or written (the tests compare the
whole tree before and after, on a read-only mount too). Entries that are not messages
(folders, symlinks, files in ``cur/`` without a claim) are problems: the spool leaves them
alone, so someone should look at them.
"""

from __future__ import annotations

import argparse
import os

from persistkit.core import cli
from persistkit.spool._spool import Spool


def register(commands: cli.Commands) -> None:
    """Add the ``spool`` subcommand to the ``persistkit`` command."""
    parser = commands.add(
        "spool",
        help="count a spool's messages in each area, and list what is not a message",
        handler=_show,
    )
    parser.add_argument("path", help="the spool's folder")


def _show(args: argparse.Namespace, out: cli.Output) -> None:
    folder = os.path.abspath(cli.existing_folder(args.path, what="a spool"))
    if not os.path.isdir(os.path.join(folder, "new")):
        raise cli.CommandError("no spool here (no new/ folder)", path=folder, kind="wrong_kind")
    spool = Spool(folder, create=False, watch="poll")
    areas = {
        area: spool.count(area) for area in Spool.areas if os.path.isdir(os.path.join(folder, area))
    }
    strays = spool.strays()
    out.data(
        path=folder,
        areas=areas,
        strays=[{"path": path, "what": what} for path, what in strays.items()],
    )
    out.table(list(areas.items()), ["area", "messages"])
    for path, what in strays.items():
        out.problem(f"{os.path.relpath(path, folder)}: not a message, left alone ({what})")
