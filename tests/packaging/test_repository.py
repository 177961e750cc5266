"""The repository tracks only its documented layout: no data left behind by an example."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# README.md "Layout": the top-level folders and files a clone holds, and nothing else.
LAYOUT = re.compile(r"^(packages|tests|bench|docs|examples|\.ci|\.github)/|^[^/]+$")


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an sdist or a copy): nothing is tracked")
    listing = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return listing.stdout.splitlines()


def test_only_the_documented_layout_is_tracked() -> None:
    stray = [name for name in tracked_files() if not LAYOUT.match(name)]
    assert stray == [], f"tracked outside the documented layout: {stray[:10]}"


def test_no_distribution_ships_a_namespace_init() -> None:
    inits = [n for n in tracked_files() if n.endswith("src/persistkit/__init__.py")]
    assert inits == []


def test_each_distribution_carries_the_same_license_text() -> None:
    """sdists cannot hold a symlink out of their folder, so each package has a copy."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    for package in sorted((ROOT / "packages").iterdir()):
        assert (package / "LICENSE").read_text(encoding="utf-8") == text, package.name
