"""gocept.filestore's README (a doctest) passes on persistkit-spool with only the import changed."""

from __future__ import annotations

import doctest
import importlib.util
import tempfile
from pathlib import Path

import pytest

README = Path(__file__).with_name("gocept_filestore_readme.txt")


def run_readme(text: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> doctest.TestResults:
    # The doctest makes its own temporary folder; keep it inside pytest's.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, "gocept_filestore_readme", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    return runner.summarize(verbose=False)


def test_gocept_readme_passes_with_only_the_import_changed(monkeypatch, tmp_path):
    results = run_readme(README.read_text(), monkeypatch, tmp_path)
    assert results.attempted > 30
    assert results.failed == 0


def test_the_doctest_file_differs_from_gocept_only_in_import_and_repr():
    lines = [line for line in README.read_text().splitlines() if line.startswith(">>> from ")]
    assert lines == [">>> from persistkit.spool import FileStore"]
    assert "<persistkit.spool.FileStore object at 0x...>" in README.read_text()


@pytest.mark.skipif(
    importlib.util.find_spec("gocept") is None
    or importlib.util.find_spec("gocept.filestore") is None,
    reason="gocept.filestore (a benchmark peer) is not installed; it only confirms the "
    "doctest file is faithful to the original",
)
def test_the_same_doctest_passes_on_gocept_filestore(monkeypatch, tmp_path):
    text = README.read_text()
    text = text.replace(
        "from persistkit.spool import FileStore", "from gocept.filestore import FileStore"
    ).replace(
        "<persistkit.spool.FileStore object at", "<gocept.filestore.filestore.FileStore object at"
    )
    results = run_readme(text, monkeypatch, tmp_path)
    assert results.failed == 0
