"""Sphinx configuration of the persistkit documentation site (built by ``nox -s docs``).

Why Sphinx with furo and MyST (and not MkDocs) is written down in ``about-these-docs.md``.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "persistkit"
author = "the persistkit authors"
copyright = "the persistkit authors, MIT licence"
release = version = metadata.version("persistkit-core")

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "persistkit_api",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# benchmarks.md is included by benchmark-report.md; _ext holds the API extension.
exclude_patterns = ["_build", "_ext", "benchmarks.md"]

# Markdown: GitHub-style heading anchors, so the guides' [text](#a-heading) links work here
# and on GitHub alike.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "attrs_block"]
# benchmarks.md (its owners' file, included as it is) goes from "#" straight to "###"; that
# renders well, and its owners should not have to renumber headings for the site.
suppress_warnings = ["myst.header"]

# The API reference: Google-style docstrings, typed signatures, members in source order.
default_role = "py:obj"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" as a field list: autodoc documents the attributes themselves where it can.
napoleon_use_ivar = True
# The pytest plugin's module docstring lists its fixtures like arguments.
napoleon_custom_sections = [("Fixtures", "params_style")]
python_use_unqualified_type_names = True
# Long signatures break into one parameter per line (readable on a phone).
maximum_signature_line_length = 60

html_theme = "furo"
html_title = f"persistkit {release}"
html_show_sourcelink = False
html_copy_source = False


# promise.md keeps a marked place for the power-cut table, which lives in powercut.md (written
# by the power-cut filesystem's runs). Once that file exists, the place links to it and the
# page joins the site, under promise.md; until then the place says what will appear there.
POWERCUT_PAGE = HERE / "powercut.md"
POWERCUT_START = "<!-- powercut-table:"
POWERCUT_END = "<!-- /powercut-table -->"
POWERCUT_LINK = """\
The table measured on the power-cut filesystem, per operation and per `durability`, is on its
own page: [what a power cut does to each write](powercut.md).

```{toctree}
:hidden:

powercut
```
"""


def link_powercut_table(app: object, docname: str, source: list[str]) -> None:
    """Replace the reserved place in promise.md by a link, once powercut.md exists."""
    if docname == "promise" and POWERCUT_PAGE.exists():
        start = source[0].index(POWERCUT_START)
        end = source[0].index(POWERCUT_END) + len(POWERCUT_END)
        source[0] = source[0][:start] + POWERCUT_LINK + source[0][end:]


def setup(app: Any) -> None:
    """Hooks of this site only (the API reference is the persistkit_api extension)."""
    app.connect("source-read", link_powercut_table)
