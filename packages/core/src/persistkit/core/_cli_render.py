"""Tables, bars and live progress for people: rich on a terminal, else plain text.

rich comes with the optional ``persistkit-core[cli]`` extra; a library user never pulls it. It
is used only when the stream is a terminal: piped or redirected output is plain text whether
rich is installed or not, so scripts and ``grep`` see the same lines everywhere.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

Cell = str | int | float | bool | None
"""What a table cell may hold; ``None`` is shown as ``-``, booleans as ``yes``/``no``."""

BAR_WIDTH = 40
_REDRAW_SECONDS = 0.1  # a terminal redrawn more often only flickers


def rich_console(stream: TextIO) -> Any | None:
    """Return a rich ``Console`` writing to ``stream``, or None for plain text.

    None when rich is not installed or ``stream`` is not a terminal.
    """
    if not is_terminal(stream):
        return None
    try:
        from rich.console import Console  # noqa: PLC0415 - an optional extra, loaded when used
    except ImportError:
        return None
    return Console(file=stream, highlight=False, soft_wrap=False)


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or unusual stream is not)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def cell_text(value: Cell) -> str:
    """Show one cell as text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _numeric(column: Sequence[Cell]) -> bool:
    values = [value for value in column if value is not None]
    return bool(values) and all(
        isinstance(value, int | float) and not isinstance(value, bool) for value in values
    )


def print_table(
    rows: Sequence[Sequence[Cell]],
    columns: Sequence[str] | None = None,
    *,
    title: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Print ``rows`` as aligned columns, numbers right-aligned.

    On a terminal with rich installed the table is drawn by rich; elsewhere each row is one
    line, cells separated by two spaces, after a header line when ``columns`` is given and a
    title line when ``title`` is.

    Args:
        rows: the cells, row by row; every row has the same number of cells.
        columns: the column headings, or None for a table without a header.
        title: a line above the table.
        stream: where to print (default: ``sys.stdout``).
    """
    out = sys.stdout if stream is None else stream
    width = max((len(row) for row in rows), default=len(columns or ()))
    numeric = [_numeric([row[i] for row in rows if i < len(row)]) for i in range(width)]
    console = rich_console(out)
    if console is not None:
        from rich import box  # noqa: PLC0415 - an optional extra, loaded when used
        from rich.table import Table  # noqa: PLC0415

        table = Table(title=title, box=box.SIMPLE_HEAD, show_header=columns is not None)
        for i in range(width):
            heading = columns[i] if columns is not None and i < len(columns) else ""
            table.add_column(heading, justify="right" if numeric[i] else "left")
        for row in rows:
            table.add_row(*(cell_text(value) for value in row))
        console.print(table)
        return
    lines = [[cell_text(value) for value in row] for row in rows]
    if columns is not None:
        lines.insert(0, list(columns))
    sizes = [
        max((len(line[i]) for line in lines if i < len(line)), default=0) for i in range(width)
    ]
    if title:
        out.write(title + "\n")
    for line in lines:
        cells = [
            text.rjust(sizes[i]) if numeric[i] else text.ljust(sizes[i])
            for i, text in enumerate(line)
        ]
        out.write("  ".join(cells).rstrip() + "\n")
    out.flush()


def bar_text(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """Draw ``done`` of ``total`` as ``[#####.....] 50.0 %`` (an empty total counts as done)."""
    fraction = done / total if total > 0 else 1.0
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(width * fraction)
    return f"[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:.1f} %"


def print_bar(done: int, total: int, *, stream: TextIO | None = None) -> None:
    """Print one static progress bar of ``done`` out of ``total``, with its percentage."""
    out = sys.stdout if stream is None else stream
    console = rich_console(out)
    if console is None:
        out.write(bar_text(done, total) + "\n")
        out.flush()
        return
    from rich.progress_bar import ProgressBar  # noqa: PLC0415 - an optional extra
    from rich.table import Table  # noqa: PLC0415

    percent = 100 * (done / total if total > 0 else 1.0)
    line = Table.grid(padding=(0, 1))
    bar = ProgressBar(total=max(total, 1), completed=done, width=BAR_WIDTH)
    line.add_row(bar, f"{percent:.1f} %")
    console.print(line)


class LiveProgress:
    """A progress display that follows a running job; made by `live_progress`."""

    def __init__(
        self, total: int, label: str, fields: Sequence[str], stream: TextIO | None
    ) -> None:
        self.total = total
        self.done = 0
        self.values: dict[str, str] = dict.fromkeys(fields, "")
        self._label = label
        self._stream = stream
        self._terminal = stream is not None and is_terminal(stream)
        self._drawn_at = 0.0
        self._width = 0
        self._tenth = -1
        self._rich: Any = None
        self._task: Any = None

    def update(self, done: int, *, total: int | None = None, **fields: object) -> None:
        """Show ``done`` tasks finished (of ``total``, if it changed) and the named fields.

        Args:
            done: how many are finished.
            total: the new total, if it changed.
            **fields: new text for the fields named when the display was made (others are
                ignored), shown as given: format numbers before passing them.
        """
        self.done = done
        if total is not None:
            self.total = total
        for name, value in fields.items():
            if name in self.values:
                self.values[name] = str(value)
        if self._stream is None:
            return
        if self._rich is not None:
            self._rich.update(self._task, completed=done, total=max(self.total, 1), **self.values)
        elif self._terminal:
            now = time.monotonic()
            if now - self._drawn_at >= _REDRAW_SECONDS or done >= self.total:
                self._draw("\r")
                self._drawn_at = now
        else:
            tenth = 10 * done // self.total if self.total > 0 else 10
            if tenth != self._tenth:
                self._tenth = tenth
                self._draw("")

    def log(self, text: str) -> None:
        """Print a line of text above the bar, which is drawn again below it."""
        if self._stream is None:
            return
        if self._rich is not None:
            self._rich.console.print(text, markup=False, highlight=False)
            return
        if self._terminal and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self._stream.write(text + "\n")
        if self._terminal:
            self._draw("\r")
        self._stream.flush()

    def _line(self) -> str:
        parts = [self._label] if self._label else []
        parts.append(f"{bar_text(self.done, self.total, 30)}  {self.done}/{self.total}")
        parts.extend(value for value in self.values.values() if value)
        return "  ".join(parts)

    def _draw(self, start: str) -> None:
        if self._stream is None:
            return
        line = self._line()
        padding = " " * max(self._width - len(line), 0)
        self._width = len(line)
        self._stream.write(start + line + padding + ("" if start else "\n"))
        self._stream.flush()

    def _start(self) -> None:
        if self._stream is None:
            return
        console = rich_console(self._stream)
        if console is None:
            return
        from rich.progress import (  # noqa: PLC0415 - an optional extra
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            *(TextColumn(f"{{task.fields[{name}]}}") for name in self.values),
            TimeElapsedColumn(),
        ]
        self._rich = Progress(*columns, console=console)
        self._rich.start()
        self._task = self._rich.add_task(
            self._label, total=max(self.total, 1), completed=self.done, **self.values
        )

    def _stop(self) -> None:
        if self._stream is None:
            return
        if self._rich is not None:
            self._rich.stop()
        elif self._terminal and self._width:
            self._draw("\r")  # the last state, which the redraw limit may have skipped
            self._stream.write("\n")
            self._stream.flush()
        elif not self._terminal and self._tenth < 10 and self.done:
            self._draw("")


@contextlib.contextmanager
def live_progress(
    total: int,
    *,
    label: str = "",
    fields: Sequence[str] = (),
    stream: TextIO | None = None,
) -> Iterator[LiveProgress]:
    """Show a progress bar that follows a job while the block runs.

    On a terminal: a rich progress bar (with the ``cli`` extra) or one line redrawn in place;
    elsewhere (a log file, a pipe) one line each time another tenth of the work is done, and
    the last state when the block ends.

    Args:
        total: how many tasks in all.
        label: text before the bar.
        fields: names of extra texts shown after the bar (a rate, a count of retries), set
            through `LiveProgress.update`.
        stream: where to draw (default: ``sys.stderr``, so the program's output stays clean).

    Example:
        >>> with live_progress(100, label="crawl", fields=["rate"]) as bar:  # doctest: +SKIP
        ...     for done in range(1, 101):
        ...         bar.update(done, rate=f"{done / 10:.1f} pages/s")
    """
    display = LiveProgress(total, label, fields, sys.stderr if stream is None else stream)
    display._start()
    try:
        yield display
    finally:
        display._stop()
