"""What users install: wheel contents, the namespace, versions and pins, public names.

Run by ``nox -s build`` after the wheels and sdists are built into $PERSISTKIT_DIST.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["core", "store", "iodict", "tracker", "spool"]
DIST = Path(os.environ.get("PERSISTKIT_DIST", ROOT / "dist"))


def project(name: str) -> dict:  # type: ignore[type-arg]
    with open(ROOT / "packages" / name / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]  # type: ignore[no-any-return]


def wheel(name: str) -> Path:
    found = sorted(DIST.glob(f"persistkit_{name}-*.whl"))
    if not found:
        pytest.skip(f"no wheel for {name} in {DIST}: run `nox -s build`")
    return found[-1]


@pytest.mark.parametrize("name", PACKAGES)
def test_wheel_holds_only_its_own_subpackage_and_no_namespace_init(name: str) -> None:
    with zipfile.ZipFile(wheel(name)) as archive:
        files = archive.namelist()
    code = [f for f in files if not f.startswith(f"persistkit_{name}-")]
    assert "persistkit/__init__.py" not in files
    assert all(f.startswith(f"persistkit/{name}/") for f in code), code
    assert f"persistkit/{name}/py.typed" in files
    assert f"persistkit/{name}/__init__.py" in files


@pytest.mark.parametrize("name", PACKAGES)
def test_sdist_has_no_namespace_init(name: str) -> None:
    found = sorted(DIST.glob(f"persistkit_{name}-*.tar.gz"))
    if not found:
        pytest.skip("no sdist built")
    with tarfile.open(found[-1]) as archive:
        names = archive.getnames()
    assert not [n for n in names if n.endswith("src/persistkit/__init__.py")]


def test_versions_are_in_lock_step_and_siblings_pin_core_exactly() -> None:
    version = project("core")["version"]
    for name in PACKAGES:
        assert project(name)["version"] == version
        if name != "core":
            assert f"persistkit-core=={version}" in project(name)["dependencies"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_exists_once(name: str) -> None:
    """Its order is ruff's concern (RUF022, in the lint session)."""
    module = importlib.import_module(f"persistkit.{name}")
    exported = module.__all__
    assert len(exported) == len(set(exported))
    assert all(hasattr(module, item) for item in exported)
    assert module.__version__ == project(name)["version"]


def test_one_wheel_installs_alone_with_just_core(tmp_path: Path) -> None:
    """`pip install persistkit-store` brings core and store, nothing else, and imports."""
    core, store = wheel("core"), wheel("store")  # cffi comes from the registry
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(core), str(store)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ours = sorted(
        line.split("==")[0] for line in listed.splitlines() if line.startswith("persistkit")
    )
    assert ours == ["persistkit-core", "persistkit-store"]
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import persistkit.core, persistkit.store",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("name", PACKAGES)
def test_wheel_and_sdist_ship_the_license_and_links(name: str) -> None:
    with zipfile.ZipFile(wheel(name)) as archive:
        files = archive.namelist()
        metadata = archive.read(next(f for f in files if f.endswith(".dist-info/METADATA")))
    assert any(f.endswith(".dist-info/licenses/LICENSE") for f in files), files
    assert b"Project-URL: Source" in metadata
    found = sorted(DIST.glob(f"persistkit_{name}-*.tar.gz"))
    if found:
        with tarfile.open(found[-1]) as archive:
            assert any(n.endswith("/LICENSE") for n in archive.getnames())
