"""The one task runner. ``nox`` runs every default session; ``nox -l`` lists them.

Sessions install with uv from the committed ``uv.lock`` (``--frozen``), so a run tests exactly
the locked dependency set. Each package's tests run in an environment that holds only that
package and what it declares, so an undeclared import fails at once.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint", "typecheck", "tests", "bson", "integration", "powercut", "build", "docs",
]  # fmt: skip

ROOT = Path(__file__).resolve().parent
PYTHONS = ["3.11", "3.12", "3.13"]
PACKAGES = ["core", "store", "iodict", "tracker", "spool"]
# Tests on the power-cut filesystem (marked ``powercut``) run once, in the ``powercut`` session,
# not once per Python version: each cut costs a remount, and CI has a time budget.
NOT_POWERCUT = ("-m", "not powercut")

# These machines install 3.12 and 3.13 through pyenv, whose shims only expose the global
# version; put every installed CPython on PATH (after everything else) so uv finds them, and
# never let uv download an interpreter (there is no network for that here).
for _bin in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[1-9]*/bin"))):
    if _bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + _bin
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


def uv_sync(session: nox.Session, *args: str) -> None:
    """Install from the lock into this session's environment."""
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        "--no-default-groups",
        f"--python={session.virtualenv.location}",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        silent=True,
    )


@nox.session(python=PYTHONS)
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests with only that package (and what it declares) installed.

    Tests against a real S3 server (marked ``s3``) run under the first Python only: they
    exercise the server and the network path far more than the interpreter, and each Python
    would start the server and repeat minutes of requests.
    """
    uv_sync(session, "--package", f"persistkit-{package}", "--group", "test")
    markers = NOT_POWERCUT if session.python == PYTHONS[0] else ("-m", "not powercut and not s3")
    session.run(
        "python", "-m", "pytest", f"packages/{package}/tests", "-q", *markers, *session.posargs
    )


@nox.session(python=PYTHONS[0])
@nox.parametrize("provider", ["pymongo", "bson"])
def bson(session: nox.Session, provider: str) -> None:
    """Run the BSON tests with pymongo's ``bson`` and with the standalone ``bson`` package.

    Both install the top-level module ``bson``, so one environment can hold only one.
    """
    uv_sync(session, "--package", "persistkit-store", "--group", "test")
    if provider == "bson":
        venv = f"--python={session.virtualenv.location}"
        session.run("uv", "pip", "uninstall", "-q", venv, "pymongo", external=True)
        session.run("uv", "pip", "install", "-q", venv, "bson==0.5.10", external=True)
    session.run(
        "python", "-m", "pytest", "packages/core/tests", "packages/store/tests", "-q", "-k", "bson"
    )


@nox.session(python=PYTHONS[0])
def integration(session: nox.Session) -> None:
    """Run the cross-package tests with every package installed together."""
    uv_sync(session, "--all-packages", "--group", "dev")
    session.run(
        "python", "-m", "pytest", "tests/integration", "-q", *NOT_POWERCUT, *session.posargs
    )


@nox.session(python=PYTHONS[0])
def powercut(session: nox.Session) -> None:
    """Run every test marked ``powercut`` (on the power-cut filesystem), every package installed.

    Needs Linux FUSE and libfuse 3 (Debian: ``apt-get install fuse3``); ``.ci/run`` installs it.
    """
    uv_sync(session, "--all-packages", "--group", "dev", "--group", "test", "--extra", "powercut")
    session.run(
        "python",
        "-m",
        "pytest",
        "-m",
        "powercut",
        *(f"packages/{package}/tests" for package in PACKAGES),
        "tests/integration",
        "-q",
        *session.posargs,
    )


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """Check style and formatting, and that uv.lock matches the pyproject files."""
    uv_sync(session, "--group", "dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("uv", "lock", "--check", external=True)


@nox.session(python=PYTHONS[0])
def typecheck(session: nox.Session) -> None:
    """Run ``mypy --strict`` over every package (with core's ``cli`` extra, which it types)."""
    uv_sync(session, "--all-packages", "--group", "dev", "--extra", "cli")
    session.run("mypy", *(f"packages/{package}/src" for package in PACKAGES))


@nox.session(python=PYTHONS[0])
def build(session: nox.Session) -> None:
    """Build every wheel and sdist as a user gets them, then test what is inside."""
    dist = ROOT / "dist"
    for old in dist.glob("*"):
        old.unlink()
    session.run(
        "uv", "build", "--all-packages", "--no-sources", "-o", str(dist), "-q", external=True
    )
    session.install("pytest", *(str(path) for path in sorted(dist.glob("*.whl"))))
    session.run(
        "python", "-m", "pytest", "tests/packaging", "-q", env={"PERSISTKIT_DIST": str(dist)}
    )


def build_site(session: nox.Session) -> Path:
    """Build the documentation site from docs/ into build/docs/html; warnings are errors.

    Always from scratch (``-E``): the API pages come from the code, which Sphinx does not
    watch, and a warning of an unchanged page must fail every build, not only the first.
    """
    html = ROOT / "build" / "docs" / "html"
    doctrees = Path(session.create_tmp()) / "doctrees"
    session.run(
        "python", "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
        "-d", str(doctrees), "docs", str(html),
    )  # fmt: skip
    session.log(f"the site is in {html}; open {html / 'index.html'}")
    return html


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """Run every Python example of the site in a temporary folder, then build the site."""
    uv_sync(session, "--all-packages", "--group", "docs", "--extra", "powercut")
    session.run("python", "-m", "pytest", "tests/docs", "-q", *session.posargs)
    build_site(session)


@nox.session(python=PYTHONS[0], default=False)
def docs_screenshots(session: nox.Session) -> None:
    """Look at the built site in headless Chromium: ``nox -s docs_screenshots -- [OUT_DIR]``.

    Saves screenshots of every page at desktop and phone widths into OUT_DIR (default:
    persistkit-docs-screenshots in the temporary folder) and fails on a broken link, an image
    that does not load, or a page wider than the window. Uses Debian's chromium, installing
    it (as root) when it is missing.
    """
    if shutil.which("chromium") is None:
        if os.geteuid() != 0:
            session.error("needs Debian's chromium package: apt-get install chromium")
        apt = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=apt)
        session.run("apt-get", "install", "-y", "-qq", "chromium", external=True, env=apt)
    uv_sync(session, "--all-packages", "--group", "docs", "--extra", "powercut")
    html = build_site(session)
    default = Path(tempfile.gettempdir()) / "persistkit-docs-screenshots"
    out = session.posargs[0] if session.posargs else str(default)
    session.run("python", "tests/docs/browse_site.py", str(html), out)


@nox.session(python=PYTHONS[0], default=False)
def powercut_peers(session: nox.Session) -> None:
    """Cut the power under the peers and persistkit alike: ``nox -s powercut_peers -- [--cuts N]``.

    Prints the table of docs/powercut.md (acknowledged writes lost, files torn or unreadable
    per 100 random cuts). Needs FUSE, as the ``powercut`` session does.
    """
    uv_sync(session, "--all-packages", "--group", "bench", "--extra", "powercut")
    session.run("python", "bench/powercut_peers.py", *session.posargs)


@nox.session(python=PYTHONS[0], default=False)
def bench(session: nox.Session) -> None:
    """Measure every package against its peers: ``nox -s bench -- [core store ...] [--quick]``.

    Writes bench/results/latest.md and latest.json, and draws bench/results/plots/*.png; a
    complete run (every package, not --quick) also redraws docs/images/benchmarks/*.png.
    """
    uv_sync(session, "--all-packages", "--group", "bench")
    env = {}
    # pyenv's shim for python2.7 refuses to run unless 2.7 is selected: ask pyenv's folder.
    installed = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python2.7")))
    python2 = installed[-1] if installed else shutil.which("python2.7")
    if python2:
        # tastypy runs only on Python 2; without it the tracker tables say so and go on.
        site = Path(session.create_tmp()) / "python2-site"
        session.run(
            python2,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--target",
            str(site),
            "tastypy==0.0.3",
            external=True,
            success_codes=[0, 1],
        )
        env = {"PERSISTKIT_PYTHON2": python2, "PERSISTKIT_PYTHON2_PATH": str(site)}
    session.run("python", "bench/run.py", *session.posargs, env=env)
    if not {"-h", "--help"} & set(session.posargs):
        # Figures of a complete run go to the site too: commit them with its tables.
        session.run("python", "bench/plots.py", "--publish", "docs/images/benchmarks")


@nox.session(python=False, default=False)
def bump(session: nox.Session) -> None:
    """Move every distribution and every sibling pin to a new version: ``nox -s bump -- 0.2.0``.

    The pyproject files are the one source of each version (``__version__`` is read from the
    installed metadata); this rewrites all of them at once and relocks.
    """
    if len(session.posargs) != 1 or not re.fullmatch(r"\d+\.\d+\.\d+\S*", session.posargs[0]):
        session.error("usage: nox -s bump -- NEW_VERSION (e.g. 0.2.0)")
    new = session.posargs[0]
    for package in PACKAGES:
        path = ROOT / "packages" / package / "pyproject.toml"
        text = path.read_text(encoding="utf-8")
        text = re.sub(r'^version = "[^"]+"$', f'version = "{new}"', text, count=1, flags=re.M)
        text = re.sub(r'"(persistkit-[a-z]+(?:\[[a-z0-9,]+\])?)==[^"]+"', rf'"\1=={new}"', text)
        path.write_text(text, encoding="utf-8")
    session.run("uv", "lock", "-q", external=True)
    session.log(f"every distribution is now {new}; add its section to CHANGELOG.md")


@nox.session(python=PYTHONS[0], default=False)
def demo(session: nox.Session) -> None:
    """Run the demo: a job of many processes, killed and restarted (``nox -s demo``).

    ``nox -s demo -- --help`` lists its options (``--workdir DIR`` keeps its files).
    """
    uv_sync(session, "--all-packages", "--extra", "cli")
    session.run("python", "examples/demo.py", *session.posargs)
