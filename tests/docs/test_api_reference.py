"""The API extension's checks: what counts as a missing docstring, and what it shows instead.

The docs build (``nox -s docs``) fails through these functions when a public name has no
docstring; these tests keep the checks themselves honest.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest

EXTENSION = Path(__file__).resolve().parents[2] / "docs" / "_ext" / "persistkit_api.py"


@pytest.fixture(scope="module")
def api() -> ModuleType:
    spec = importlib.util.spec_from_file_location("persistkit_api", EXTENSION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_and_inherited_docstrings_do_not_count(api: ModuleType) -> None:
    @dataclasses.dataclass
    class Record:
        path: str

    class Counts(NamedTuple):
        done: int

    class Base:
        """Documented."""

    class Child(Base):
        pass

    class Own(Base):
        """Its own."""

    assert api.own_docstring(Record) is None  # dataclass made up "Record(path: str)"
    assert api.own_docstring(Counts) is None
    assert api.own_docstring(Child) is None
    assert api.own_docstring(Own) == "Its own."


def test_public_methods_and_properties_need_docstrings(api: ModuleType) -> None:
    class Store:
        """A store."""

        def commit(self) -> None:
            """Commit."""

        def reload(self) -> None:
            pass

        @property
        def path(self) -> str:
            return ""

        def _private(self) -> None:
            pass

    assert sorted(api.undocumented_members(Store)) == ["path", "reload"]


def test_a_constant_is_documented_by_the_string_after_it(
    api: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent('''
            """A package."""
            from fakepkg._values import LIMIT, UNDOCUMENTED
            __all__ = ["LIMIT", "UNDOCUMENTED"]
        ''')
    )
    (package / "_values.py").write_text('LIMIT = 10 * 2\n"""How many."""\nUNDOCUMENTED = "x"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import fakepkg

        assert api.assignment(fakepkg, "LIMIT", fakepkg.LIMIT) == ("10 * 2", "How many.")
        assert api.assignment(fakepkg, "UNDOCUMENTED", fakepkg.UNDOCUMENTED) == ('"x"', None)
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "fakepkg"]:
            del sys.modules[name]


def test_init_signature_replaces_a_pass_everything_new(api: ModuleType) -> None:
    class Registry:
        """Instances shared per path."""

        def __new__(cls, *args: Any, **kwargs: Any) -> Registry:
            return super().__new__(cls)

        def __init__(self, path: str, size: int = 10) -> None:
            self.path = path

    class Plain:
        """No __new__."""

        def __init__(self, path: str) -> None:
            self.path = path

    assert api.init_signature(Registry) == "(path: str, size: int = 10)"
    assert api.init_signature(Plain) == ""


def test_every_installed_package_is_found_core_first(api: ModuleType) -> None:
    found = api.distributions()
    assert found[0] == "core"
    assert {"core", "store", "iodict", "tracker", "spool"} <= set(found)
