"""Sphinx configuration of the ufm-sandbox documentation (``bash run.sh docs``).

Pages are Markdown (MyST); the tutorials are MyST text notebooks executed on every build
(myst-nb); the API reference is generated from the docstrings (autodoc + numpydoc) by the
directives of ``_ext/ufm_api.py``. The build must pass with ``-W`` (warnings are errors).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# The packages of this checkout (not an installed copy elsewhere), and the local extension.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))
# The tutorials run on two shared cores: one BLAS/OpenMP thread per process.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# The kernels that execute the notebooks import the packages of this checkout too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)

project = "ufm-sandbox"
author = "ufm-sandbox contributors"
copyright = "ufm-sandbox contributors, BSD-3-Clause"
release = version = "0.1.0"

extensions = [
    "myst_nb",  # registers myst_parser itself: Markdown pages and MyST text notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "ufm_api",  # the API directives (docs/_ext/ufm_api.py)
    "unicode_math",  # Unicode formulas in Markdown rendered as written (docs/_ext/unicode_math.py)
]

source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "jupyter_execute", ".jupyter_cache", "gallery", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# --- MyST -------------------------------------------------------------------------------------
# docs/theory.md writes its mathematics in Unicode, so no dollar-math extension is needed;
# headings down to #### (the statement IDs of §5) get anchors, so pages can link to them.
myst_enable_extensions: list[str] = []
myst_heading_anchors = 4
# In these pages an ``_`` or ``*`` inside a formula (‖Z‖_*, ‖·‖_F, q*) is a character, not
# emphasis markup (docs/_ext/unicode_math.py).
unicode_math_documents = [
    "theory",
    "tutorials/theorem_checks",
    "tutorials/theory_vs_practice",
    "tutorials/lambda_width",
]

# --- myst-nb: the tutorials execute on every build ----------------------------------------------
nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True  # a failing tutorial fails the build
nb_execution_show_tb = True
nb_merge_streams = True
nb_render_markdown_format = "myst"  # Markdown outputs (the catalogue's report) may hold tables

# --- autodoc / numpydoc -----------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # short signatures; the numpydoc sections give the types
autodoc_preserve_defaults = True
autosummary_generate = False  # the tables link to the module pages; nothing is generated
numpydoc_show_class_members = False  # autodoc lists the members; numpydoc would list them again
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False
nitpicky = False

# The formulas use ' as a prime (μ_{c'}, Φ'): no typographic quotes.
smartquotes = False

# --- HTML -------------------------------------------------------------------------------------
html_theme = "furo"
html_title = "ufm-sandbox"
html_static_path: list[str] = []


# --- module docstrings ------------------------------------------------------------------------
# numpydoc turns the sections of function and class docstrings into rubrics but leaves module
# docstrings alone, and several modules use the same numpydoc-style headings ("Experiment",
# "Settings", "Statements", ...). Left as they are, each would become a section of its page,
# clash with the same heading on other pages and break the page's table of contents; they are
# rendered as rubrics, like numpydoc's sections.
_UNDERLINE_CHARACTERS = set("-=~^")


def _module_sections_as_rubrics(app, what, name, obj, options, lines):
    if what != "module":
        return
    result: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        underline = following.strip()
        if (
            line.strip()
            and not line.startswith(" ")
            and len(underline) >= 3
            and set(underline) <= _UNDERLINE_CHARACTERS
            and len(set(underline)) == 1
            and following == underline
            and (index == 0 or not lines[index - 1].strip())
        ):
            result += [f".. rubric:: {line.strip()}", ""]
            index += 2
            continue
        result.append(line)
        index += 1
    lines[:] = result


# The tutorials' kernels inherit this process's environment, where MPLBACKEND may be Agg (set by
# the caller, or by ``figures`` when the API reference imports it): they would show no figures.
# Each tutorial's kernel gets the inline backend of notebooks.
def _inline_matplotlib_for_tutorials(app, docname, source):
    if docname.startswith("tutorials/"):
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"


# The tutorials run the code of the packages, which Sphinx does not track as their dependency:
# they are read, and so executed, on every build, also an incremental one.
def _tutorials_always_outdated(app, env, added, changed, removed):
    return [
        name for name in env.found_docs
        if name.startswith("tutorials/") and name != "tutorials/index"
    ]


def setup(app):
    app.connect("autodoc-process-docstring", _module_sections_as_rubrics)
    app.connect("source-read", _inline_matplotlib_for_tutorials)
    app.connect("env-get-outdated", _tutorials_always_outdated)
