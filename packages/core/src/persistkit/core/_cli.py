"""The ``persistkit`` command.

Core adds ``capabilities`` and ``sweep``; every installed sibling adds its own subcommands
through the ``persistkit.commands`` entry-point group, whose entries are callables taking the
argparse subparsers object.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from persistkit.core._capabilities import capabilities
from persistkit.core._sweep import sweep
from persistkit.core.errors import PersistkitError

ENTRY_POINT_GROUP = "persistkit.commands"


def _capabilities(args: argparse.Namespace) -> int:
    caps = capabilities(args.path)
    for field in ("device", "rename_noreplace", "rename_exchange", "user_xattrs"):
        print(f"{field:18} {getattr(caps, field)}")
    print(f"{'xattr_max_size':18} {caps.xattr_max_size} bytes")
    print(f"{'dir_fsync':18} {caps.dir_fsync}")
    print(f"{'read_only':18} {caps.read_only}")
    print(f"{'anonymous_files':18} {caps.anonymous_files}")
    print(f"{'syncfs':18} {caps.syncfs}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    removed = sweep(args.directory, min_age=args.min_age)
    for path in removed:
        print(f"removed {path}")
    print(f"{len(removed)} leftover(s) removed")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with core's subcommands and every installed package's."""
    parser = argparse.ArgumentParser(
        prog="persistkit", description="Inspect and maintain persistkit files."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    caps = commands.add_parser("capabilities", help="what a mount supports")
    caps.add_argument("path", help="a directory on the filesystem to probe")
    caps.set_defaults(handler=_capabilities)
    cleaner = commands.add_parser("sweep", help="remove temp files of dead writers")
    cleaner.add_argument("directory")
    cleaner.add_argument(
        "--min-age", type=float, default=60.0, help="seconds; younger leftovers are kept"
    )
    cleaner.set_defaults(handler=_sweep)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        entry.load()(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except (PersistkitError, OSError) as error:
        print(f"persistkit: {error}", file=sys.stderr)
        return 1
    return status
