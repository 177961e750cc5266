"""What a subcommand prints: one JSON document under ``--json``, text for people otherwise.

A handler says everything twice, once for each reader, through one `Output`: `Output.data`
for the JSON document, `Output.line`, `Output.fields`, `Output.table` and `Output.bar` for
people. Each call does nothing in the other mode, so a handler never branches on the mode.
Problems found (`Output.problem`) go to both and make the exit status 1.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TextIO, TypeAlias

from persistkit.core._cli_render import (
    Cell,
    LiveProgress,
    is_terminal,
    live_progress,
    print_bar,
    print_table,
)
from persistkit.core.errors import CommandError, InvalidArgumentError

JSONValue: TypeAlias = (
    "bool | int | float | str | Sequence[JSONValue] | Mapping[str, JSONValue] | None"
)
"""A value the JSON document may hold: JSON's own types, any sequence as an array."""

EXIT_OK = 0
"""Exit status: the command did its job and found nothing wrong."""
EXIT_PROBLEM = 1
"""Exit status: a problem was found, or the path could not be inspected (one line says why)."""
EXIT_USAGE = 2
"""Exit status: the command line was wrong (unknown subcommand, missing argument)."""

ENVELOPE = ("command", "schema", "ok", "problems", "error")
"""The keys every JSON document starts with; a command's own keys follow them."""


class Output:
    """Everything one run of a subcommand prints; handed to its handler.

    Attributes:
        command: the subcommand's name.
        json: whether ``--json`` was given.
        schema: the version of this subcommand's JSON document.
    """

    def __init__(
        self,
        command: str,
        *,
        json: bool = False,
        schema: int = 1,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.command = command
        self.json = json
        self.schema = schema
        self._stdout = stdout
        self._stderr = stderr
        self._data: dict[str, JSONValue] = {}
        self._problems: list[str] = []

    @property
    def stdout(self) -> TextIO:
        """Where the report goes (``sys.stdout`` unless another stream was given)."""
        return sys.stdout if self._stdout is None else self._stdout

    @property
    def stderr(self) -> TextIO:
        """Where problems, errors and live progress go (``sys.stderr`` by default)."""
        return sys.stderr if self._stderr is None else self._stderr

    @property
    def problems(self) -> list[str]:
        """The problems reported so far (a copy)."""
        return list(self._problems)

    def data(self, fields: Mapping[str, JSONValue] | None = None, /, **more: JSONValue) -> None:
        """Add fields to the JSON document (nothing is printed for people).

        Later fields of the same name replace earlier ones; the document keeps the order in
        which fields were first added.

        Raises:
            InvalidArgumentError: a field is named like one of the `ENVELOPE` keys.
        """
        for name, value in {**(fields or {}), **more}.items():
            if name in ENVELOPE:
                raise InvalidArgumentError(f"{name!r} is reserved in the JSON document")
            self._data[name] = value

    def line(self, text: str = "") -> None:
        """Print one line for people (nothing under ``--json``)."""
        if not self.json:
            self.stdout.write(text + "\n")

    def fields(self, pairs: Iterable[tuple[str, Cell]]) -> None:
        """Print name/value pairs as two aligned columns for people (nothing under ``--json``)."""
        if not self.json:
            print_table([[name, value] for name, value in pairs], stream=self.stdout)

    def table(
        self,
        rows: Sequence[Sequence[Cell]],
        columns: Sequence[str] | None = None,
        *,
        title: str | None = None,
    ) -> None:
        """Print a table for people (nothing under ``--json``); see `print_table`."""
        if not self.json:
            print_table(rows, columns, title=title, stream=self.stdout)

    def bar(self, done: int, total: int) -> None:
        """Print a static progress bar of ``done`` out of ``total`` (nothing under ``--json``)."""
        if not self.json:
            print_bar(done, total, stream=self.stdout)

    @contextlib.contextmanager
    def progress(
        self, total: int, *, label: str = "", fields: Sequence[str] = ()
    ) -> Iterator[LiveProgress]:
        """Follow slow work with a live bar on standard error (see `live_progress`).

        Under ``--json``, or when standard error is not a terminal, nothing is drawn: the
        bar's updates cost nothing, and logs stay clean.
        """
        if self.json or not is_terminal(self.stderr):
            yield LiveProgress(total, label, fields, None)
            return
        with live_progress(total, label=label, fields=fields, stream=self.stderr) as display:
            yield display

    def problem(self, text: str) -> None:
        """Report something found that needs attention; the command then exits with status 1.

        People see ``persistkit: problem: TEXT`` on standard error when the command ends;
        the JSON document lists it under ``problems``.
        """
        self._problems.append(text)

    def document(self) -> dict[str, JSONValue]:
        """The JSON document as it stands: the envelope, then the command's fields."""
        return {
            "command": self.command,
            "schema": self.schema,
            "ok": not self._problems,
            "problems": list(self._problems),
            **self._data,
        }

    def error_document(self, error: CommandError) -> dict[str, JSONValue]:
        """The JSON document of a run that failed: the envelope with ``error`` filled in."""
        return {
            "command": self.command,
            "schema": self.schema,
            "ok": False,
            "problems": list(self._problems),
            "error": {"kind": error.kind, "message": error.message, "path": error.path},
        }

    def finish(self) -> int:
        """Print the JSON document or the problems; return the exit status."""
        if self.json:
            write_json(self.document(), self.stdout)
        else:
            self.stdout.flush()
            for text in self._problems:
                self.stderr.write(f"persistkit: problem: {text}\n")
        return EXIT_PROBLEM if self._problems else EXIT_OK


def write_json(document: Mapping[str, JSONValue], stream: TextIO) -> None:
    """Write one JSON document (indented, UTF-8 as is, key order kept) and a newline."""
    json.dump(document, stream, indent=2, ensure_ascii=False, allow_nan=False)
    stream.write("\n")
    stream.flush()
