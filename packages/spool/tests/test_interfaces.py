"""IFileStore, gocept.filestore's interface, with zope.interface installed and without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from persistkit.spool import FileStore

zope_interface = pytest.importorskip("zope.interface", reason="the test group installs it")


def test_a_filestore_provides_and_verifies_the_interface(tmp_path: Path) -> None:
    from zope.interface.verify import verifyClass, verifyObject

    from persistkit.spool.interfaces import IFileStore

    store = FileStore(tmp_path / "store")
    assert IFileStore.providedBy(store)
    assert IFileStore.implementedBy(FileStore)
    assert verifyClass(IFileStore, FileStore)
    assert verifyObject(IFileStore, store)
    assert set(IFileStore.names()) == {"prepare", "create", "move", "copy", "remove", "list"}


def test_a_registry_finds_the_store_by_its_interface(tmp_path: Path) -> None:
    from zope.interface.registry import Components

    from persistkit.spool.interfaces import IFileStore

    registry = Components()
    store = FileStore(tmp_path / "store")
    registry.registerUtility(store, IFileStore)
    assert registry.getUtility(IFileStore) is store


def test_without_zope_interface_the_package_works_and_the_module_says_what_is_missing() -> None:
    program = (
        "import sys\n"
        "sys.modules['zope'] = None  # as if zope.interface were not installed\n"
        "import persistkit.spool\n"
        "assert 'zope.interface' not in sys.modules or sys.modules['zope.interface'] is None\n"
        "try:\n"
        "    import persistkit.spool.interfaces\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install zope.interface" in result.stdout
