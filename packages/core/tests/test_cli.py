"""The ``persistkit`` command, run as a user runs it: a fresh interpreter, real files.

Exit statuses (0 ok, 1 a problem found, 2 usage), the JSON documents, one-line errors, and
that inspecting writes nothing (the whole tree compared before and after, mtimes included).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.core import cli
from persistkit.core._cli import _as_command_error
from persistkit.core.errors import CommandError, CorruptFileError, InvalidArgumentError
from persistkit.core.testing import snapshot_tree

Command = Callable[..., subprocess.CompletedProcess[str]]

LEFTOVER = ".state.0123456789ab.pktmp"  # what a writer killed before its rename leaves
CAPABILITY_FIELDS = [
    "path",
    "device",
    "rename_noreplace",
    "rename_exchange",
    "user_xattrs",
    "xattr_max_size",
    "dir_fsync",
    "read_only",
    "anonymous_files",
    "syncfs",
]


def _old(path: Path) -> Path:
    os.utime(path, (1, 1))  # a leftover from long ago: sweep's grace time is over
    return path


def _document(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    return document


# -- exit statuses --------------------------------------------------------------------------


def test_usage_errors_exit_with_2_and_print_nothing_on_stdout(
    tmp_path: Path, persistkit_command: Command
) -> None:
    for args in ([], ["no-such-command"], ["sweep"], ["sweep", str(tmp_path), "--no-such"]):
        result = persistkit_command(*args)
        assert result.returncode == 2, args
        assert result.stdout == ""
        assert "usage: persistkit" in result.stderr


def test_help_lists_every_installed_subcommand(persistkit_command: Command) -> None:
    result = persistkit_command("--help")
    assert result.returncode == 0
    assert "capabilities" in result.stdout and "sweep" in result.stdout
    assert "1 a problem found" in result.stdout


def test_capabilities_of_an_ordinary_folder(tmp_path: Path, persistkit_command: Command) -> None:
    result = persistkit_command("capabilities", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert list(lines) == CAPABILITY_FIELDS[1:]
    assert lines["dir_fsync"] == "yes"
    assert lines["xattr_max_size"].endswith(" bytes")


def test_capabilities_json(tmp_path: Path, persistkit_command: Command) -> None:
    result = persistkit_command("capabilities", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    document = _document(result)
    assert list(document) == [*cli.ENVELOPE[:-1], *CAPABILITY_FIELDS]
    assert document["command"] == "capabilities"
    assert (document["schema"], document["ok"], document["problems"]) == (1, True, [])
    assert document["path"] == str(tmp_path)
    assert isinstance(document["device"], int)
    assert isinstance(document["xattr_max_size"], int)
    flags = [name for name in CAPABILITY_FIELDS[2:] if name != "xattr_max_size"]
    assert all(isinstance(document[name], bool) for name in flags)


def test_json_may_also_come_before_the_subcommand(
    tmp_path: Path, persistkit_command: Command
) -> None:
    result = persistkit_command("--json", "sweep", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert _document(result)["command"] == "sweep"


# -- sweep ------------------------------------------------------------------------------------


def test_sweep_removes_only_leftovers(tmp_path: Path, persistkit_command: Command) -> None:
    (tmp_path / LEFTOVER).write_text("leftover")
    _old(tmp_path / LEFTOVER)
    (tmp_path / "state").write_text("data")
    result = persistkit_command("sweep", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"removed {tmp_path / LEFTOVER}",
        "1 leftover(s) removed",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["state"]


def test_sweep_dry_run_lists_reports_a_problem_and_writes_nothing(
    tmp_path: Path, persistkit_command: Command
) -> None:
    (tmp_path / LEFTOVER).write_text("leftover")
    _old(tmp_path / LEFTOVER)
    (tmp_path / "state").write_text("data")
    before = snapshot_tree(tmp_path)
    result = persistkit_command("sweep", str(tmp_path), "--dry-run")
    assert snapshot_tree(tmp_path) == before
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"would remove {tmp_path / LEFTOVER}",
        "1 leftover(s) found; nothing removed (dry run)",
    ]
    assert result.stderr.startswith("persistkit: problem: 1 temporary file(s) of dead writers")

    result = persistkit_command("sweep", str(tmp_path), "--dry-run", "--json")
    assert snapshot_tree(tmp_path) == before
    assert result.returncode == 1
    document = _document(result)
    assert document["ok"] is False
    assert document["leftovers"] == [str(tmp_path / LEFTOVER)]
    assert document["dry_run"] is True
    assert len(document["problems"]) == 1  # type: ignore[arg-type]
    assert result.stderr == ""  # under --json the problems are in the document


def test_sweep_leaves_a_young_leftover_and_says_so_in_json(
    tmp_path: Path, persistkit_command: Command
) -> None:
    (tmp_path / LEFTOVER).write_text("maybe a live writer's")
    result = persistkit_command("sweep", str(tmp_path), "--json")
    assert result.returncode == 0
    assert _document(result) == {
        "command": "sweep",
        "schema": 1,
        "ok": True,
        "problems": [],
        "directory": str(tmp_path),
        "dry_run": False,
        "min_age": 60.0,
        "leftovers": [],
    }
    assert (tmp_path / LEFTOVER).exists()


def test_a_reader_that_stops_early_is_not_an_error(tmp_path: Path) -> None:
    for n in range(3000):  # more lines than a pipe holds
        leftover = tmp_path / f".state{n}.0123456789ab.pktmp"
        leftover.write_text("")
        _old(leftover)
    process = subprocess.Popen(
        [sys.executable, "-m", "persistkit.core", "sweep", str(tmp_path), "--dry-run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().startswith(b"would remove ")
    process.stdout.close()  # as `persistkit ... | head -1` does
    errors = process.stderr.read()
    assert process.wait() == 0
    assert errors == b""


# -- one-line errors, and nothing written --------------------------------------------------


@pytest.mark.parametrize(
    ("command", "where", "kind"),
    [
        ("sweep", "missing", "missing"),
        ("sweep", "missing/deeper", "missing"),
        ("sweep", "a-file/deeper", "missing"),
        ("sweep", "a-file", "wrong_kind"),
        ("capabilities", "missing", "missing"),
        ("capabilities", "a-file/deeper", "missing"),
    ],
)
def test_a_path_that_cannot_be_used_is_one_line_and_exit_1(
    tmp_path: Path, persistkit_command: Command, command: str, where: str, kind: str
) -> None:
    (tmp_path / "a-file").write_text("x")
    before = snapshot_tree(tmp_path)
    path = str(tmp_path / where)
    result = persistkit_command(command, path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"persistkit: {path}: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr

    result = persistkit_command(command, path, "--json")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    document = _document(result)
    assert document["ok"] is False
    assert document["error"] == {
        "kind": kind,
        "message": result.stderr.removeprefix(f"persistkit: {path}: ").rstrip("\n"),
        "path": path,
    }
    assert snapshot_tree(tmp_path) == before


def test_failures_are_named_by_kind() -> None:
    corrupt = _as_command_error(CorruptFileError("/data/state.json", "Expecting value"))
    assert corrupt.kind == "corrupt" and "/data/state.json" in str(corrupt)
    denied = _as_command_error(PermissionError(13, "Permission denied", "/data"))
    assert (denied.kind, denied.path) == ("failed", "/data")
    assert str(denied) == "/data: Permission denied"
    wrong = _as_command_error(IsADirectoryError(21, "Is a directory", "/data"))
    assert wrong.kind == "wrong_kind"
    bug = _as_command_error(ZeroDivisionError("division by zero"))
    assert bug.kind == "internal"
    assert "internal error" in str(bug) and "PERSISTKIT_TRACEBACK" in str(bug)


def test_command_error_pickles_with_its_fields() -> None:
    error = CommandError("not a spool (no new/ folder)", path="/srv/x", kind="wrong_kind")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.path, copy.kind) == (error.message, error.path, error.kind)
    assert str(copy) == "/srv/x: not a spool (no new/ folder)"
    assert isinstance(copy, ValueError)


# -- what handlers get ----------------------------------------------------------------------


def test_output_says_each_thing_to_its_reader() -> None:
    people, machines = io.StringIO(), io.StringIO()
    for stream, json_mode in ((people, False), (machines, True)):
        out = cli.Output("demo", json=json_mode, schema=3, stdout=stream, stderr=io.StringIO())
        out.data(tasks=4, names=["a", "b"])
        out.fields([("tasks", 4), ("done", None), ("complete", False)])
        out.table([["a", 10], ["bb", 2]], ["name", "size"])
        out.bar(1, 4)
        out.problem("one task aborted")
        assert out.finish() == cli.EXIT_PROBLEM
    assert people.getvalue().splitlines() == [
        "tasks     4",
        "done      -",
        "complete  no",
        "name  size",
        "a       10",
        "bb       2",
        "[##########..............................] 25.0 %",
    ]
    assert json.loads(machines.getvalue()) == {
        "command": "demo",
        "schema": 3,
        "ok": False,
        "problems": ["one task aborted"],
        "tasks": 4,
        "names": ["a", "b"],
    }


def test_envelope_names_cannot_be_overwritten_by_data() -> None:
    out = cli.Output("demo", json=True)
    with pytest.raises(InvalidArgumentError):
        out.data(ok=True)


def test_live_progress_in_a_log_is_one_line_per_tenth() -> None:
    log = io.StringIO()
    with cli.live_progress(20, label="tasks", fields=["rate"], stream=log) as bar:
        for done in range(1, 21):
            bar.update(done, rate=f"{done} tasks/s")
            if done == 10:
                bar.log("half-way")
    lines = log.getvalue().splitlines()
    # the first update, then one at 10 %, 20 %, ... 100 %, and the logged line
    assert [line.split()[-3] for line in lines if line != "half-way"] == [
        "1/20",
        *(f"{2 * n}/20" for n in range(1, 11)),
    ]
    assert lines[6] == "half-way"
    assert "half-way" in lines
    assert lines[-1] == f"tasks  {cli.bar_text(20, 20, 30)}  20/20  20 tasks/s"


# -- rich on a terminal, plain text without it ------------------------------------------------


def _on_a_terminal(code: str) -> str:
    """Run ``code`` with a terminal as its stdout; return what it printed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=terminal,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the program ended and closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait() == 0, process.stderr.read() if process.stderr else ""
    return output.decode()


MAIN = "from persistkit.core._cli import main; raise SystemExit(main({args!r}))"


def test_on_a_terminal_tables_are_drawn_by_rich(tmp_path: Path) -> None:
    shown = _on_a_terminal(MAIN.format(args=["capabilities", str(tmp_path)])).replace("\r", "")
    assert "\n  rename_exchange    yes" in shown  # rich's padding, not the plain one


def test_without_rich_a_terminal_gets_plain_text(tmp_path: Path) -> None:
    blocked = "import sys; sys.modules['rich'] = None; " + MAIN.format(
        args=["capabilities", str(tmp_path)]
    )
    shown = _on_a_terminal(blocked).replace("\r", "")
    assert "rename_exchange   yes\n" in shown


# -- shell completion -------------------------------------------------------------------------


def test_shell_completion_offers_subcommands_and_options(tmp_path: Path) -> None:
    answers = tmp_path / "answers"
    for line, expected in (("persistkit sw", "sweep"), ("persistkit sweep --dr", "--dry-run")):
        env = {
            **os.environ,
            "_ARGCOMPLETE": "1",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_STDOUT_FILENAME": str(answers),
        }
        subprocess.run([sys.executable, "-m", "persistkit.core"], env=env, check=True)
        assert answers.read_text().split() == [expected]
