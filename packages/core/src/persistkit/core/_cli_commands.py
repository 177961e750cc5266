"""Declaring subcommands of the ``persistkit`` command.

Each installed package adds its subcommands through the ``persistkit.commands`` entry-point
group: the entry is a function that receives a `Commands` and calls `Commands.add` once per
subcommand.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from persistkit.core._cli_output import Output
from persistkit.core.errors import InvalidArgumentError

ENTRY_POINT_GROUP = "persistkit.commands"
"""The entry-point group through which packages add subcommands."""

Handler = Callable[[argparse.Namespace, Output], None]
"""What runs a subcommand: it gets the parsed arguments and the `Output` to report through.

It returns nothing: the exit status is 1 if it reported a problem or raised, else 0.
"""


@dataclass(frozen=True, slots=True)
class Subcommand:
    """A subcommand declared with `Commands.add`: what the parsed arguments carry to run it.

    Attributes:
        name: the subcommand's name.
        handler: the function that runs it.
        schema: the version of its JSON document.
        json: whether it takes ``--json``.
    """

    name: str
    handler: Handler
    schema: int
    json: bool


SUBCOMMAND = "_persistkit_subcommand"
"""The attribute of the parsed arguments that holds the chosen `Subcommand`."""


class Commands:
    """The ``persistkit`` command's list of subcommands, as a package's entry point gets it.

    Example:
        >>> def register(commands: Commands) -> None:  # doctest: +SKIP
        ...     parser = commands.add("spool", help="show a spool", handler=show_spool)
        ...     parser.add_argument("path", help="the spool's folder")
    """

    def __init__(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._subparsers = subparsers
        self._names: set[str] = set()

    def add(
        self,
        name: str,
        *,
        help: str,
        handler: Handler,
        description: str | None = None,
        schema: int = 1,
        json: bool = True,
    ) -> argparse.ArgumentParser:
        """Declare a subcommand and return its parser, to which the caller adds arguments.

        The parser gets ``--json`` (unless ``json=False``, for a subcommand that prints no
        data); the handler runs with an `Output` in the matching mode.

        Args:
            name: the subcommand, as typed after ``persistkit``.
            help: one line for ``persistkit --help``.
            handler: the function that runs it.
            description: the text of ``persistkit NAME --help`` (default: ``help``).
            schema: the version of its JSON document: raise it when a field is removed or
                changes meaning (adding a field keeps the version).
            json: whether it prints data and so takes ``--json``.

        Raises:
            InvalidArgumentError: another package already declared ``name``.
        """
        parser = self._parser(name, help=help, description=description or help)
        if json:
            parser.add_argument(
                "--json",
                action="store_true",
                default=argparse.SUPPRESS,
                help="print one JSON document instead of text (its fields: see the docs)",
            )
        parser.set_defaults(**{SUBCOMMAND: Subcommand(name, handler, schema, json)})
        return parser

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Declare a subcommand the old way (``set_defaults(handler=f)``, ``f(args) -> int``).

        Kept so that packages written before `add` still load; their subcommands have no
        ``--json`` and print what they print. Prefer `add`.
        """
        return self._parser(name, **kwargs)

    def _parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        if name in self._names:
            raise InvalidArgumentError(f"the subcommand {name!r} is declared twice")
        self._names.add(name)
        return self._subparsers.add_parser(name, **kwargs)
