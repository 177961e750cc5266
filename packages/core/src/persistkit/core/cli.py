"""Writing subcommands of the ``persistkit`` command, and progress and tables for programs.

A package adds subcommands through the ``persistkit.commands`` entry-point group: the entry
names a function that receives a `Commands` and declares each subcommand with
`Commands.add`. The handler gets the parsed arguments and an `Output`, and says everything
twice, once for each reader: `Output.data` for the ``--json`` document, `Output.line`,
`Output.fields`, `Output.table` and `Output.bar` for people (each call does nothing in the
other mode). A problem found is reported with `Output.problem` (exit status 1); a path that
cannot be inspected is a raised `CommandError` (or any `OSError` or persistkit error), which
the command turns into one line on standard error and exit status 1, never a traceback.

Tables and bars are drawn by rich, on a terminal, when the ``persistkit-core[cli]`` extra is
installed, and as plain text otherwise. `print_table` and `live_progress` serve programs too
(the demo draws its progress bar and its final table with them).

Example (a package's ``_cli.py``, registered in its ``pyproject.toml`` under
``[project.entry-points."persistkit.commands"]`` as ``spool = "persistkit.spool._cli:register"``):

    >>> import argparse
    >>> from persistkit.core import cli
    >>> def register(commands: cli.Commands) -> None:
    ...     parser = commands.add("spool", help="count a spool's messages", handler=show)
    ...     parser.add_argument("path", help="the spool's folder")
    >>> def show(args: argparse.Namespace, out: cli.Output) -> None:
    ...     folder = cli.existing_folder(args.path, what="a spool")
    ...     counts = {"new": 2, "cur": 1}  # what the package reads, writing nothing
    ...     out.data(path=folder, areas=counts)
    ...     out.table(sorted(counts.items()), ["area", "messages"])
    ...     if counts["cur"]:
    ...         out.problem(f"{counts['cur']} message(s) leased")
"""

from persistkit.core._cli_commands import ENTRY_POINT_GROUP, Commands, Handler
from persistkit.core._cli_output import (
    ENVELOPE,
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    JSONValue,
    Output,
)
from persistkit.core._cli_paths import existing_file, existing_folder
from persistkit.core._cli_render import Cell, LiveProgress, bar_text, live_progress, print_table
from persistkit.core.errors import CommandError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENVELOPE",
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_USAGE",
    "Cell",
    "CommandError",
    "Commands",
    "Handler",
    "JSONValue",
    "LiveProgress",
    "Output",
    "bar_text",
    "existing_file",
    "existing_folder",
    "live_progress",
    "print_table",
]
