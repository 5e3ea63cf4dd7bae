"""The documentation site (``docs/``, ``bash run.sh docs``).

The build test (marker ``docs``, outside the default run: ``bash run.sh test -m docs``) runs
Sphinx with warnings as errors into a temporary folder, which executes the three tutorials, and
then checks the result: every public name of the API is documented, every tutorial has its
outputs and figures, the theory page has the anchors of its sections and statements.

The other tests are quick checks of the sources that run by default: every public module has an
API page, and the theory page keeps its formulas when rendered.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = ("theorem_checks", "theory_vs_practice", "lambda_width")


@pytest.fixture(scope="module")
def inventory():
    """docs/_ext/api_inventory.py: the modules and names the API reference documents."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        yield importlib.import_module("api_inventory")
    finally:
        sys.path.remove(str(DOCS / "_ext"))


def test_every_public_module_has_an_api_page(inventory):
    pages = {path.stem for path in (DOCS / "api").glob("*.md")}
    missing = [name for name in inventory.public_modules() if name not in pages]
    assert not missing, f"modules without a page under docs/api/ (NAME.md): {missing}"
    for name in inventory.public_modules():
        text = (DOCS / "api" / f"{name}.md").read_text(encoding="utf-8")
        assert f"{{api-module}} {name}\n" in text, f"docs/api/{name}.md does not document {name}"


def test_theory_formulas_render_as_written():
    """Only the intended emphasis of docs/theory.md survives (docs/_ext/unicode_math.py)."""
    markdown_it = pytest.importorskip("markdown_it")
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        from unicode_math import escape_math_markup
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    source = (DOCS / "theory.md").read_text(encoding="utf-8")
    parser = markdown_it.MarkdownIt("commonmark").enable("table")
    text, emphasized = [], []
    for token in parser.parse(escape_math_markup(source)):
        if token.type == "inline":
            for index, child in enumerate(token.children):
                text.append(child.content if child.type in ("text", "code_inline") else "")
                if child.type == "em_open":
                    emphasized.append(token.children[index + 1].content)
        elif token.type in ("fence", "code_block"):
            text.append(token.content)
    rendered = "".join(text)
    assert rendered.count("_") == source.count("_")
    # every * survives except the bold ** and the pairs around the emphasized phrases
    assert rendered.count("*") == source.replace("**", "").count("*") - 2 * len(emphasized)
    papers = source[source.index("## Papers"):source.index("## Provenance tags")]
    unexpected = [
        phrase for phrase in emphasized
        if phrase not in ("Sketch", "Instance generator for J1–J6") and phrase not in papers
    ]
    assert not unexpected, f"emphasis that is part of a formula: {unexpected}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built with warnings as errors; the tutorials are executed."""
    try:
        importlib.import_module("sphinx")
        importlib.import_module("myst_nb")
    except ImportError:
        pytest.fail("the [docs] extra is not installed: pip install -e '.[docs]' "
                    "(bash run.sh test -m docs installs it)")
    out = tmp_path_factory.mktemp("docs") / "html"
    completed = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(DOCS), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, (
        f"sphinx-build failed ({completed.returncode}):\n{completed.stdout[-4000:]}\n"
        f"{completed.stderr[-8000:]}"
    )
    return out


def _documented_objects(site: Path) -> set[str]:
    """The Python objects of the site's objects.inv."""
    from sphinx.util.inventory import InventoryFile

    with (site / "objects.inv").open("rb") as handle:
        loaded = InventoryFile.load(handle, "", lambda base, uri: uri)
    items = loaded.items() if hasattr(loaded, "items") else loaded.data.items()
    return {name for kind, entries in items if kind.startswith("py:") for name in entries}


@pytest.mark.docs
def test_api_reference_documents_every_public_name(site, inventory):
    documented = _documented_objects(site)
    import ufm

    missing = [name for name in ufm.__all__ if name != "__version__"
               and f"{inventory.defining_module('ufm', name)}.{name}" not in documented]
    assert not missing, f"ufm.__all__ names missing from the API reference: {missing}"
    no_members = {path.stem for path in (DOCS / "api").glob("*.md")
                  if ":no-members:" in path.read_text(encoding="utf-8")}
    for module in inventory.public_modules():
        assert module in documented, f"module {module} has no API entry"
        if module in no_members:
            continue
        for name in inventory.listed_names(module):
            target = f"{inventory.defining_module(module, name)}.{name}"
            assert target in documented, f"{module}.{name} ({target}) is not documented"


@pytest.mark.docs
def test_tutorials_are_executed_with_their_figures(site):
    for name in TUTORIALS:
        page = (site / "tutorials" / f"{name}.html").read_text(encoding="utf-8")
        assert page.count('class="cell_output') >= 4, f"tutorial {name} has too few outputs"
        assert "Traceback" not in page, f"tutorial {name} shows a traceback"
    figures = {name: (site / "tutorials" / f"{name}.html").read_text(encoding="utf-8").count("<img")
               for name in TUTORIALS}
    assert figures["theory_vs_practice"] >= 2 and figures["lambda_width"] >= 2, figures
    report = (site / "tutorials" / "theorem_checks.html").read_text(encoding="utf-8")
    assert report.count("<table") >= 2, "the catalogue report is not rendered as a table"
    assert "found" in report and "KF1" in report


@pytest.mark.docs
def test_theory_page_has_section_and_statement_anchors(site):
    page = (site / "theory.html").read_text(encoding="utf-8")
    for anchor in ("43-dufm-the-dnc-value-for-k-classes", "5-statements-to-check-proofs_checks",
                   "kf1-relu-contraction-of-the-nuclear-norm-with-three-columns", "d2-threshold"):
        assert f'id="{anchor}"' in page, f"no anchor #{anchor} on the theory page"
