"""The API reference, generated at build time from each package's ``__all__``.

``.. persistkit-api:: persistkit.store`` documents every public name of the package and of
its public submodules (``errors``, ``testing``, ...: every module whose name does not start
with ``_``), so a name a package adds to ``__all__`` appears without anyone editing the docs.
A module without ``__all__`` (the pytest plugin) contributes the public names it defines.

An object exported in several places (core's errors, re-exported by the siblings) is
documented once, where it first appears (core first, a package before its submodules); the
other places say where. Every documented name must have a docstring, and so must every public
method and property of a documented class: a missing one is a warning, which the docs build
(``sphinx-build -W``) turns into an error. So does a distribution without an API page.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import inspect
import pkgutil
import types
from pathlib import Path
from types import ModuleType
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.environment import BuildEnvironment
from sphinx.ext.napoleon.docstring import GoogleDocstring
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.inspect import stringify_signature
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

NAMESPACE = "persistkit"
FIRST = "core"  # every sibling re-exports core's names: core's pages own them
KIND_TITLES = {
    "fixture": "pytest fixtures",
    "function": "Functions",
    "class": "Classes",
    "exception": "Exceptions",
    "data": "Constants and types",
}


def distributions() -> list[str]:
    """The packages installed in the ``persistkit`` namespace, core first."""
    namespace = importlib.import_module(NAMESPACE)
    names = sorted(info.name for info in pkgutil.iter_modules(namespace.__path__))
    return sorted(names, key=lambda name: name != FIRST)


def public_modules(package: str) -> list[ModuleType]:
    """The package, then its public submodules (at any depth) in name order."""
    root = importlib.import_module(package)
    found = [root]
    for info in sorted(pkgutil.walk_packages(root.__path__, f"{package}."), key=lambda i: i.name):
        inner = info.name.removeprefix(f"{package}.").split(".")
        if not any(part.startswith("_") for part in inner):
            found.append(importlib.import_module(info.name))
    return found


def all_modules(package: str) -> list[ModuleType]:
    """Every module of the package, private ones included (where constants are defined)."""
    root = importlib.import_module(package)
    found = [root]
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        if not info.name.endswith(".__main__"):
            # A private module of an optional extra that is not installed defines nothing
            # public; the public names that need it are reported by `exported`.
            with contextlib.suppress(ImportError, OSError):
                found.append(importlib.import_module(info.name))
    return found


def public_names(module: ModuleType) -> list[str]:
    """``__all__`` without dunders, or the public names the module itself defines."""
    names = getattr(module, "__all__", None)
    if names is None:
        # The pytest plugin has no __all__: its fixtures and types are its API; its
        # pytest_* hook implementations are called by pytest, not by users.
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith(("_", "pytest_"))
            and getattr(value, "__module__", None) == module.__name__
        ]
    return [name for name in names if not (name.startswith("__") and name.endswith("__"))]


class Unloadable:
    """Stands for an exported name whose import failed (a lazily loaded optional module)."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def exported(module: ModuleType, name: str) -> Any:
    """``module.name``, or an `Unloadable` saying why it cannot be imported here.

    persistkit.core.testing loads its power-cut names on first use; they need core's
    ``powercut`` extra and libfuse 3 (Debian's fuse3), which the docs session installs.
    """
    try:
        return getattr(module, name)
    except (ImportError, OSError) as error:
        return Unloadable(error)


def is_fixture(obj: Any) -> bool:
    """Whether ``obj`` is a function decorated with ``pytest.fixture``."""
    return type(obj).__name__ == "FixtureFunctionDefinition" or hasattr(
        obj, "_pytestfixturefunction"
    )


def kind_of(obj: Any) -> str:
    """Which directive documents ``obj``."""
    if isinstance(obj, type):
        return "exception" if issubclass(obj, BaseException) else "class"
    if is_fixture(obj):
        return "fixture"
    if inspect.isroutine(obj):
        return "function"
    return "data"


@functools.cache
def canonical_names() -> dict[int, str]:
    """For each class, function and fixture: the one full name it is documented under."""
    found: dict[int, str] = {}
    for distribution in distributions():
        for module in public_modules(f"{NAMESPACE}.{distribution}"):
            # Of two names for one object (tastypy's POD and PersistentOrderedDict), the one
            # the object calls itself is documented; the other is listed as an alias.
            names = sorted(
                public_names(module),
                key=lambda n: getattr(exported(module, n), "__name__", None) != n,
            )
            for name in names:
                obj = exported(module, name)
                if kind_of(obj) != "data" and not inspect.ismodule(obj):
                    found.setdefault(id(obj), f"{module.__name__}.{name}")
    return found


def own_docstring(obj: Any) -> str | None:
    """The docstring ``obj`` itself carries (not one inherited or generated for it)."""
    if is_fixture(obj):
        obj = getattr(obj, "_get_wrapped_function", lambda: obj)()
    if isinstance(obj, type):
        doc = obj.__dict__.get("__doc__")
        # dataclasses and NamedTuples make up "Name(field, ...)" for a class without one
        if isinstance(doc, str) and doc.startswith(f"{obj.__name__}("):
            return None
    else:
        doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def undocumented_members(cls: type) -> list[str]:
    """Public methods and properties defined in ``cls`` itself that have no docstring."""
    missing = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        target = member
        if isinstance(member, staticmethod | classmethod):
            target = member.__func__
        elif isinstance(member, property):
            target = member.fget
        elif isinstance(member, functools.cached_property):
            target = member.func
        elif not inspect.isfunction(member):
            continue
        if not (getattr(target, "__doc__", None) or "").strip():
            missing.append(name)
    return missing


def init_signature(cls: type) -> str:
    """The signature of ``__init__``, where a ``__new__(*args, **kwargs)`` would hide it.

    autodoc shows a class's ``__new__`` signature before its ``__init__``; a ``__new__`` that
    only passes everything on (the tracker's clone registry) says nothing to a reader.
    """
    new = next((k.__dict__["__new__"] for k in cls.__mro__ if "__new__" in k.__dict__), None)
    if new is None or cls.__mro__[-1].__dict__.get("__new__") is new:
        return ""
    try:
        passed_on = inspect.signature(new).parameters.values()
        init = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return ""
    kinds = {p.kind for p in passed_on} - {inspect.Parameter.POSITIONAL_OR_KEYWORD}
    if kinds != {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}:
        return ""
    parameters = list(init.parameters.values())[1:]  # without self
    shown = init.replace(parameters=parameters, return_annotation=inspect.Signature.empty)
    return stringify_signature(shown, show_return_annotation=False)


def assignment(exporter: ModuleType, name: str, value: Any) -> tuple[str, str | None] | None:
    """Find where a constant is assigned: the source text of its value, and its docstring.

    The exporting module is searched first, then the rest of its package.
    """
    package = ".".join(exporter.__name__.split(".")[:2])
    for module in [exporter, *all_modules(package)]:
        if getattr(module, name, None) is not value or module.__file__ is None:
            continue
        source = Path(module.__file__).read_text(encoding="utf-8")
        body = ast.parse(source).body
        for index, node in enumerate(body):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign) and node.value is not None
                else []
            )
            if not any(isinstance(t, ast.Name) and t.id == name for t in targets):
                continue
            assigned = node.value
            text = (assigned and ast.get_source_segment(source, assigned)) or repr(value)
            doc = None
            following = body[index + 1] if index + 1 < len(body) else None
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                doc = inspect.cleandoc(following.value.value)
            return " ".join(text.split()), doc
    return None


class PersistkitApi(SphinxDirective):
    """``.. persistkit-api:: persistkit.<package>``: the package's whole public API."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        """Document the package named by the argument; warn about missing docstrings."""
        package = self.arguments[0]
        documented = getattr(self.env, "persistkit_api_packages", set())
        self.env.persistkit_api_packages = documented | {package}  # type: ignore[attr-defined]
        root, *submodules = public_modules(package)
        # The page's title names the package; its own names come first, under "=" headings,
        # then one "=" section per public submodule with "-" headings inside.
        lines = self.module_lines(root, "=")
        for module in submodules:
            title = f"``{module.__name__}``"
            lines += [title, "=" * len(title), "", *self.module_lines(module, "-")]
        container = nodes.section()
        nested_parse_with_titles(
            self.state, StringList(lines, source=self.get_source_info()[0]), container
        )
        return list(container.children)

    def missing(self, what: str) -> None:
        """Warn that ``what`` has no docstring (an error under ``sphinx-build -W``)."""
        logger.warning("%s has no docstring", what, location=self.get_location())

    def loadable_names(self, module: ModuleType) -> list[str]:
        """The module's public names, warning about (and leaving out) any that fail to import."""
        names = []
        for name in public_names(module):
            obj = exported(module, name)
            if isinstance(obj, Unloadable):
                logger.warning(
                    "%s.%s cannot be imported to be documented: %s",
                    module.__name__,
                    name,
                    obj.error,
                    location=self.get_location(),
                )
            else:
                names.append(name)
        return names

    def module_lines(self, module: ModuleType, underline: str) -> list[str]:
        """Return the reST of one module: its docstring, then its names grouped by kind."""
        lines = [f".. automodule:: {module.__name__}", ""]
        if not (module.__doc__ or "").strip():
            self.missing(f"module {module.__name__}")
        groups: dict[str, list[str]] = {kind: [] for kind in KIND_TITLES}
        elsewhere = []
        submodules = []
        aliases = []
        for name in self.loadable_names(module):
            obj = exported(module, name)
            kind = kind_of(obj)
            full = f"{module.__name__}.{name}"
            if inspect.ismodule(obj):
                submodules.append(f":py:mod:`{name} <{obj.__name__}>`")
            elif kind != "data" and canonical_names()[id(obj)] != full:
                role = {"exception": "exc", "class": "class", "function": "func"}.get(kind, "obj")
                canonical = canonical_names()[id(obj)]
                if canonical.rpartition(".")[0] == module.__name__:
                    aliases.append(f"``{name}`` is :py:{role}:`{canonical.rpartition('.')[2]}`")
                else:
                    elsewhere.append(f":py:{role}:`{name} <{canonical}>`")
            else:
                groups[kind] += self.entry(module, name, obj, kind)
        if aliases:
            lines += [f"Other names for the same objects: {'; '.join(aliases)}.", ""]
        if submodules:
            lines += [f"Submodules, documented below: {', '.join(submodules)}.", ""]
        if elsewhere:
            lines += [
                f"Also exported here, and documented where they first appear: "
                f"{', '.join(elsewhere)}.",
                "",
            ]
        for kind, entries in groups.items():
            if entries:
                heading = KIND_TITLES[kind]
                lines += [heading, underline * len(heading), "", *entries]
        return lines

    def entry(self, module: ModuleType, name: str, obj: Any, kind: str) -> list[str]:
        """Return the reST documenting one public name, checking its docstrings."""
        full = f"{module.__name__}.{name}"
        if kind == "data":
            return self.data_entry(module, name, obj)
        if own_docstring(obj) is None:
            self.missing(full)
        if isinstance(obj, type):
            for member in undocumented_members(obj):
                self.missing(f"{full}.{member}")
        if kind == "fixture":
            return self.fixture_entry(name, obj)
        options = ["   :members:", "   :show-inheritance:"] if isinstance(obj, type) else []
        signature = init_signature(obj) if isinstance(obj, type) else ""
        return [f".. auto{kind}:: {full}{signature}", *options, ""]

    def napoleon(self, doc: str, what: str, name: str) -> list[str]:
        """Turn a Google-style docstring into reST, as autodoc does for the others."""
        return str(GoogleDocstring(doc, self.config, self.env.app, what, name)).splitlines()

    def data_entry(self, module: ModuleType, name: str, obj: Any) -> list[str]:
        """Return the reST of a constant or type alias: its value as written, its docstring."""
        found = assignment(module, name, obj)
        source, doc = found if found else (None, None)
        own = getattr(obj, "__doc__", None)
        if doc is None and own and own != type(obj).__doc__:
            doc = inspect.cleandoc(own)  # an object made by a class statement (an interface)
        if doc is None:
            self.missing(f"{module.__name__}.{name}")
            doc = ""
        lines = [f".. py:data:: {name}", *([f"   :value: {source}"] if source else []), ""]
        lines += [f"   {line}" if line else "" for line in self.napoleon(doc, "data", name)]
        return [*lines, ""]

    def fixture_entry(self, name: str, obj: Any) -> list[str]:
        """Return the reST of a pytest fixture: what a test gets, and its docstring."""
        function = obj._get_wrapped_function() if hasattr(obj, "_get_wrapped_function") else obj
        returns = inspect.signature(function).return_annotation
        lines = [f".. py:data:: {name}"]
        if returns is not inspect.Signature.empty:
            shown = returns if isinstance(returns, str) else inspect.formatannotation(returns)
            lines.append(f"   :type: {shown}")
        lines += ["", "   A pytest fixture: name it as an argument of a test.", ""]
        doc = own_docstring(obj) or ""
        lines += [f"   {line}" if line else "" for line in self.napoleon(doc, "function", name)]
        return [*lines, ""]


def skip_tuple_fields(*event: Any) -> bool | None:
    """Leave out the "Alias for field number N" entries of NamedTuples.

    The class docstring's Attributes section describes the fields. ``event`` is autodoc's
    (app, what, name, obj, skip, options).
    """
    obj = event[3]
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def is_type_alias(obj: Any) -> bool:
    """Whether ``obj`` is a typing construct (``Literal[...]``, ``Union[...]``, ``X | Y``)."""
    return isinstance(obj, types.UnionType) or type(obj).__module__ == "typing"


def link_type_aliases(app: Sphinx, config: Config) -> None:
    """Show a public type alias by its name in signatures (``durability: Durability``).

    Only names that mean one thing in every module of every package: the mapping is by the
    annotation's text, and two packages could give one name to two private aliases.
    """
    everywhere = [m for d in distributions() for m in all_modules(f"{NAMESPACE}.{d}")]
    for distribution in distributions():
        package = f"{NAMESPACE}.{distribution}"
        root = importlib.import_module(package)
        for name in public_names(root):
            obj = exported(root, name)
            if is_type_alias(obj) and all(
                getattr(module, name, obj) is obj for module in everywhere
            ):
                config.autodoc_type_aliases.setdefault(name, f"{package}.{name}")


def merge_packages(
    app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment
) -> None:
    """Combine what parallel readers documented."""
    env.persistkit_api_packages = getattr(env, "persistkit_api_packages", set()) | getattr(  # type: ignore[attr-defined]
        other, "persistkit_api_packages", set()
    )


def check_every_distribution(app: Sphinx, env: BuildEnvironment) -> None:
    """Warn about an installed distribution that has no API page."""
    documented = getattr(env, "persistkit_api_packages", set())
    for distribution in distributions():
        if f"{NAMESPACE}.{distribution}" not in documented:
            logger.warning(
                "%s.%s has no API page: add docs/api/%s.rst with a persistkit-api directive",
                NAMESPACE,
                distribution,
                distribution,
            )


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive and the completeness check."""
    app.add_directive("persistkit-api", PersistkitApi)
    app.connect("config-inited", link_type_aliases)
    app.connect("autodoc-skip-member", skip_tuple_fields)
    app.connect("env-merge-info", merge_packages)
    app.connect("env-check-consistency", check_every_distribution)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
