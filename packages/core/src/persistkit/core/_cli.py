"""The ``persistkit`` command: its parser, its subcommands, and how a run ends.

Core adds ``capabilities`` and ``sweep``; every installed sibling adds its own subcommands
through the ``persistkit.commands`` entry-point group (see `persistkit.core.cli`). Whatever
goes wrong, the command ends with one line on standard error and a meaningful exit status
(0 ok, 1 a problem found, 2 a wrong command line), never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from persistkit.core import _cli_builtin
from persistkit.core._cli_commands import ENTRY_POINT_GROUP, SUBCOMMAND, Commands, Subcommand
from persistkit.core._cli_output import EXIT_PROBLEM, Output, write_json
from persistkit.core.errors import (
    CommandError,
    CorruptFileError,
    PersistkitError,
    UnloadableValueError,
)

TRACEBACK_VARIABLE = "PERSISTKIT_TRACEBACK"
_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a program stopped by Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with core's subcommands and every installed package's."""
    parser = argparse.ArgumentParser(
        prog="persistkit",
        description="Inspect and maintain the files persistkit writes.",
        epilog="exit status: 0 ok, 1 a problem found (or the path cannot be inspected),\n"
        "2 a wrong command line.\n"
        "'persistkit COMMAND --help' tells more about a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of text"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = Commands(subparsers)
    _cli_builtin.register(commands)
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            entry.load()(commands)
        except Exception as error:  # one broken package must not break the rest
            print(
                f"persistkit: the {entry.name!r} subcommands are missing: "
                f"{type(error).__name__}: {error}",
                file=sys.stderr,
            )
    return parser


def _offer_completion(parser: argparse.ArgumentParser) -> None:
    # argcomplete (the ``cli`` extra) answers a shell's completion request and exits; it
    # only acts when the shell set _ARGCOMPLETE, so an ordinary run pays nothing for it.
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete  # noqa: PLC0415 - an optional extra, loaded only when completing
    except ImportError:
        return
    argcomplete.autocomplete(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    _offer_completion(parser)
    args = parser.parse_args(argv)
    subcommand: Subcommand | None = getattr(args, SUBCOMMAND, None)
    if subcommand is None:
        if args.json:
            parser.error(f"'persistkit {args.command}' does not print JSON yet")
        return _run(lambda: int(args.handler(args)), None)
    out = Output(subcommand.name, json=bool(args.json), schema=subcommand.schema)

    def run() -> int:
        subcommand.handler(args, out)
        return out.finish()

    return _run(run, out)


def _run(call: Callable[[], int], out: Output | None) -> int:
    """Run a subcommand; end whatever goes wrong with one line and an exit status."""
    try:
        return call()
    except KeyboardInterrupt:
        print("persistkit: interrupted", file=sys.stderr)
        return _INTERRUPTED
    except BrokenPipeError:
        return _reader_left()
    except Exception as error:  # every failure ends in one line, not a traceback
        failure = _as_command_error(error)
        if out is not None and out.json:
            write_json(out.error_document(failure), out.stdout)
        _report(failure, error)
        return EXIT_PROBLEM


def _reader_left() -> int:
    # The reader of a pipe went away (``persistkit ... | head``): not an error of ours.
    # Point stdout at /dev/null so that the interpreter's final flush fails no more.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


def _as_command_error(error: BaseException) -> CommandError:
    """Say what went wrong as a `CommandError`: a kind, a message, the path concerned."""
    if isinstance(error, CommandError):
        return error
    if isinstance(error, CorruptFileError | UnloadableValueError):
        return CommandError(str(error), path=error.path, kind="corrupt")
    if isinstance(error, OSError):
        message = error.strerror or str(error)
        path = None if error.filename is None else os.fsdecode(error.filename)
        if isinstance(error, FileNotFoundError) or error.errno == errno.ENOENT:
            kind = "missing"
        elif isinstance(error, NotADirectoryError | IsADirectoryError):
            kind = "wrong_kind"
        else:
            kind = "failed"
        return CommandError(message, path=path, kind=kind)
    if isinstance(error, PersistkitError):
        return CommandError(str(error))
    return CommandError(
        f"internal error, please report it: {type(error).__name__}: {error} "
        f"(set {TRACEBACK_VARIABLE}=1 to see where)",
        kind="internal",
    )


def _report(failure: CommandError, error: BaseException) -> None:
    if os.environ.get(TRACEBACK_VARIABLE):
        traceback.print_exception(error, file=sys.stderr)
    # Name the path once: the messages of persistkit's own errors often name it already.
    named = failure.path is not None and failure.path in failure.message
    text = " ".join((failure.message if named else str(failure)).split())  # one line
    print(f"persistkit: {text}", file=sys.stderr)
