"""Sphinx configuration for the jaxreg documentation site.

Build (strict, as CI does): ``pip install ".[docs]"`` then
``sphinx-build -W -b html docs docs/_build/html`` and open ``docs/_build/html/index.html``.

Docstrings stay reST (Google style, read by napoleon); pages are MyST Markdown; the notebooks in
``notebooks/`` are rendered by MyST-NB from their committed outputs, never executed here.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
# Document this checkout's source even when another jaxreg is installed.
sys.path.insert(0, str(ROOT / "src"))

import jaxreg  # noqa: E402
from jaxreg import cli  # noqa: E402

project = "jaxreg"
author = "jaxreg developers"
copyright = "jaxreg developers"
version = release = jaxreg.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# API reference: one page per module listed in api.md, its members from the module's __all__.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # a NamedTuple's "Attributes:" as fields, not duplicate attributes
napoleon_use_rtype = False

# Notebooks: rendered from their committed outputs.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = f"jaxreg {release}"
html_theme_options = {"show_toc_level": 2}
html_static_path = ["_static"]
html_css_files = ["custom.css"]


def _copy_notebooks() -> None:
    """The notebooks live in notebooks/ (run by the tests); Sphinx needs them under docs/."""
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    for stale in target.glob("*.ipynb"):
        stale.unlink()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy2(notebook, target / notebook.name)


def _help(*argv: str) -> str:
    """What ``jaxreg ARGV`` prints (argparse exits after printing the help)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        cli.build_parser().parse_args(list(argv))
    return f"$ jaxreg {' '.join(argv)}\n{out.getvalue()}"


def _write_cli_help() -> None:
    """``jaxreg --help`` and ``jaxreg sweep --help``, 100 columns wide, for the CLI page."""
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        text = _help("--help") + "\n" + _help("sweep", "--help")
    finally:
        os.environ.pop("COLUMNS") if columns is None else os.environ.update(COLUMNS=columns)
    generated = DOCS / "_generated"
    generated.mkdir(exist_ok=True)
    (generated / "cli_help.txt").write_text(text, encoding="utf-8")


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """A NamedTuple's fields are documented in its docstring, not as 'Alias for field number'."""
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    _copy_notebooks()
    _write_cli_help()
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
