"""The order of system calls in a durable write is the one DESIGN.md prescribes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from persistkit.core import atomic_write, write_bytes
from persistkit.core.testing import facility_unavailable, record_calls


def test_durable_write_order_at_the_filesystem_seam(tmp_path: Path) -> None:
    target = tmp_path / "state"
    target.write_bytes(b"old")
    calls = record_calls(lambda: write_bytes(target, b"new"))
    names = [call.name for call in calls]
    assert names == ["create", "chmod", "write", "fsync", "rename", "fsync_dir"]
    temp = Path(calls[0].path)
    assert temp.parent == tmp_path, "the temp must live in the target's directory"
    assert temp.name.startswith(".") and temp.name.endswith(".pktmp")
    assert calls[-1].path == str(tmp_path)


def test_context_manager_follows_the_same_order(tmp_path: Path) -> None:
    target = tmp_path / "state"

    def operation() -> None:
        with atomic_write(target) as f:
            f.write("new")

    names = [call.name for call in record_calls(operation)]
    assert names == ["create", "write", "fsync", "rename", "fsync_dir"]


def test_create_only_write_publishes_with_renameat2(tmp_path: Path) -> None:
    names = [
        c.name for c in record_calls(lambda: write_bytes(tmp_path / "n", b"x", overwrite=False))
    ]
    assert names == ["create", "write", "fsync", "link", "fsync_dir"]


STRACED = textwrap.dedent(
    """
    import sys
    from persistkit.core import write_bytes
    write_bytes(sys.argv[1], b"payload")
    """
)


def test_kernel_sees_fsync_before_rename_and_directory_fsync_after(tmp_path: Path) -> None:
    """The real system calls, as the kernel saw them (strace), not just our own bookkeeping."""
    if shutil.which("strace") is None:
        facility_unavailable("strace is not installed")
    target = tmp_path / "state"
    target.write_bytes(b"old")
    trace = tmp_path.parent / f"{tmp_path.name}.strace"
    result = subprocess.run(
        [
            "strace",
            "-f",
            "-o",
            str(trace),
            "-e",
            "trace=openat,fsync,rename,renameat2,close",
            sys.executable,
            "-c",
            STRACED,
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 and "ptrace" in result.stderr:
        facility_unavailable(f"strace cannot trace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    lines = trace.read_text().splitlines()
    temp_open = next(
        i
        for i, line in enumerate(lines)
        if "openat(" in line and ".pktmp" in line and "O_EXCL" in line
    )
    temp_fd = re.search(r"= (\d+)$", lines[temp_open]).group(1)  # type: ignore[union-attr]
    file_fsync = next(
        i for i, line in enumerate(lines) if i > temp_open and f"fsync({temp_fd})" in line
    )
    publish = next(
        i
        for i, line in enumerate(lines)
        if re.search(r"\brename(at2)?\(", line) and str(target) in line
    )
    dir_open = next(
        i
        for i, line in enumerate(lines)
        if i > publish and "openat(" in line and "O_DIRECTORY" in line and str(tmp_path) in line
    )
    dir_fd = re.search(r"= (\d+)$", lines[dir_open]).group(1)  # type: ignore[union-attr]
    dir_fsync = next(
        i for i, line in enumerate(lines) if i > dir_open and f"fsync({dir_fd})" in line
    )
    assert temp_open < file_fsync < publish < dir_fsync
    assert target.read_bytes() == b"payload"
    os.unlink(trace)
