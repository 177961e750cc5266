"""The seeds' own published test suites, run against persistkit with only the import changed.

Each suite is taken from the seed's source distribution on PyPI at test time (never copied
into this repository), its imports are pointed at persistkit, and it runs in a fresh pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

from persistkit.core.testing import facility_unavailable

PYPI = "https://pypi.org/pypi"


def fetch_sdist(name: str, version: str, into: Path) -> Path:
    """Download one source distribution from PyPI and unpack it; return its folder."""
    into.mkdir(parents=True)
    try:
        with urllib.request.urlopen(f"{PYPI}/{name}/json", timeout=60) as answer:
            files = json.load(answer)["releases"][version]
        (url,) = [f["url"] for f in files if f["packagetype"] == "sdist"]
        archive = into / url.rsplit("/", 1)[-1]
        with urllib.request.urlopen(url, timeout=60) as answer:
            archive.write_bytes(answer.read())
    except OSError as error:
        facility_unavailable(f"cannot download {name} {version} from PyPI: {error}")
    with tarfile.open(archive) as sdist:
        sdist.extractall(into, filter="data")
    return next(path for path in into.iterdir() if path.is_dir())


def test_atomiks_published_tests_pass_on_persistkit(tmp_path: Path) -> None:
    source = fetch_sdist("atomik", "0.0.3rc1", tmp_path / "sdist")
    suite = tmp_path / "run" / "tests"
    suite.mkdir(parents=True)
    for original in (source / "tests").glob("*.py"):
        text = original.read_text(encoding="utf-8")
        text = text.replace(
            "from atomik.errors import", "from persistkit.core.atomik.errors import"
        )
        text = text.replace("import atomik\n", "from persistkit.core import atomik\n")
        (suite / original.name).write_text(text, encoding="utf-8")
    assert "from persistkit.core import atomik" in (suite / "test_atomik.py").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=suite.parent,  # the suite writes into ./tests/TEST_DATA, relative to its cwd
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
