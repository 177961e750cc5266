"""``persistkit spool PATH``: how many messages wait in each area, without changing anything."""

from __future__ import annotations

import argparse
import errno
import os
from typing import Any

from persistkit.spool._spool import Spool


def register(commands: Any) -> None:
    """Add the ``spool`` subcommand to the ``persistkit`` command."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "spool", help="count a spool's messages in each area, and list what is not a message"
    )
    parser.add_argument("path", help="the spool's folder")
    parser.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    if not os.path.isdir(os.path.join(args.path, "new")):
        raise FileNotFoundError(errno.ENOENT, "no spool here (no new/ folder)", args.path)
    spool = Spool(args.path, create=False, watch="poll")
    for area in Spool.areas:
        if os.path.isdir(os.path.join(args.path, area)):
            print(f"{area:5} {spool.count(area)}")
    strays = spool.strays()
    if strays:
        print(f"not messages, left alone ({len(strays)}):")
        for path, what in strays.items():
            print(f"  {os.path.relpath(path, args.path)}: {what}")
    return 0
