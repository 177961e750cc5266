"""Core's own subcommands: ``persistkit capabilities`` and ``persistkit sweep``."""

from __future__ import annotations

import argparse
import dataclasses
import os

from persistkit.core._capabilities import capabilities
from persistkit.core._cli_commands import Commands
from persistkit.core._cli_output import Output
from persistkit.core._cli_paths import existing_folder
from persistkit.core._sweep import sweep
from persistkit.core.errors import CommandError


def register(commands: Commands) -> None:
    """Add ``capabilities`` and ``sweep``."""
    caps = commands.add(
        "capabilities",
        help="what a mount supports (probes it once: a hidden folder, created and removed)",
        handler=show_capabilities,
    )
    caps.add_argument("path", help="a file or folder on the filesystem to probe")
    cleaner = commands.add(
        "sweep",
        help="remove temporary files of dead writers (--dry-run: only list them)",
        handler=run_sweep,
    )
    cleaner.add_argument("directory", help="the folder to clean (not its subfolders)")
    cleaner.add_argument(
        "--min-age",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="leave younger temporary files alone (default: 60)",
    )
    cleaner.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be removed, remove nothing (exit status 1 if there is any)",
    )


def show_capabilities(args: argparse.Namespace, out: Output) -> None:
    """Report what the filesystem holding ``args.path`` supports."""
    if not os.path.exists(args.path):
        raise CommandError("no such file or folder", path=args.path, kind="missing")
    caps = capabilities(args.path)
    found = dataclasses.asdict(caps)
    out.data(path=os.path.abspath(args.path), **found)
    out.fields({**found, "xattr_max_size": f"{caps.xattr_max_size} bytes"}.items())
    if not caps.dir_fsync and not caps.read_only:
        out.problem(
            "this mount refuses to fsync a folder: writes here are atomic, "
            "but not known to survive a power cut"
        )


def run_sweep(args: argparse.Namespace, out: Output) -> None:
    """Remove (or, with ``--dry-run``, list) the temporary files of dead writers."""
    folder = existing_folder(args.directory)
    found = sweep(folder, min_age=args.min_age, dry_run=args.dry_run)
    out.data(
        directory=os.path.abspath(folder),
        dry_run=args.dry_run,
        min_age=args.min_age,
        leftovers=found,
    )
    verb = "would remove" if args.dry_run else "removed"
    for path in found:
        out.line(f"{verb} {path}")
    if args.dry_run:
        out.line(f"{len(found)} leftover(s) found; nothing removed (dry run)")
        if found:
            out.problem(
                f"{len(found)} temporary file(s) of dead writers; "
                "run again without --dry-run to remove them"
            )
    else:
        out.line(f"{len(found)} leftover(s) removed")
