"""Sphinx directives that generate the API reference of ufm-sandbox from the code itself.

Every public name is documented once, on the page of the module that defines it; a package that
re-exports names (``ufm``, ``ufm.solvers``, ``figures``) gets a table linking to those pages.

``{api-module} MODULE``
    The module's docstring, then one autodoc entry per public name it defines: the names of its
    ``__all__`` (or, without ``__all__``, its public classes and functions and its upper-case
    constants) that are assigned in the module itself. Names of ``__all__`` imported from another
    module are listed in a table that links to their definition. Option ``:no-members:``: the
    docstring only.
``{api-exports} PACKAGE``
    A table of the package's ``__all__``, grouped by defining module (for ``ufm``: the lazily
    exported names of ``ufm._EXPORTS``).
``{statement-table}``, optional argument MODULE
    The statements of the theorem catalogue (``proofs_checks.catalogue.all_statements``).
``{figure-table}``
    The figures of ``figures.registry.FIGURES``.

:func:`public_modules` and :func:`documented_names` are used by ``tests/test_docs.py`` too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

PACKAGES = ("ufm", "fullnet", "proofs_checks", "figures")
LONG_VALUE = 60  # data whose repr is longer than this is shown without its value


def _is_documented_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return not (last == "__main__" or last == "conftest" or last.startswith("test_"))


def public_modules() -> list[str]:
    """Every module of the four packages that the API reference documents, packages first."""
    names: list[str] = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if _is_documented_module(info.name):
                names.append(info.name)
    return names


@lru_cache(maxsize=None)
def _source_tree(module_name: str) -> ast.Module | None:
    module = importlib.import_module(module_name)
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return None
    return ast.parse(Path(path).read_text(encoding="utf-8"))


def _assigned_names(tree: ast.Module) -> set[str]:
    """Names bound at the top level of a module by assignment, def or class."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _imported_from(module_name: str, name: str) -> str | None:
    """The module a top-level ``from X import name`` of ``module_name`` takes ``name`` from."""
    tree = _source_tree(module_name)
    if tree is None:
        return None
    module = importlib.import_module(module_name)
    package = module_name if hasattr(module, "__path__") else module_name.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(
            (alias.asname or alias.name) == name for alias in node.names
        ):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                return f"{base}.{node.module}" if node.module else base
            return node.module
    return None


@lru_cache(maxsize=None)
def defining_module(module_name: str, name: str) -> str:
    """The module whose page documents ``module_name.name``: where the object is defined."""
    value = getattr(importlib.import_module(module_name), name)
    if inspect.isclass(value) or inspect.isfunction(value):
        owner = getattr(value, "__module__", None)
        if owner in sys.modules and getattr(sys.modules[owner], name, None) is value:
            return owner
    tree = _source_tree(module_name)
    if tree is not None and name in _assigned_names(tree):
        return module_name
    source = _imported_from(module_name, name)
    if source is not None and source != module_name:
        return defining_module(source, name)
    if hasattr(importlib.import_module(module_name), "__path__"):  # a lazily exported name
        exports = getattr(importlib.import_module(module_name), "_EXPORTS", {})
        if name in exports:
            return defining_module(f"{module_name}.{exports[name]}", name)
    return module_name


def listed_names(module_name: str) -> list[str]:
    """The module's public names: ``__all__``, or its own public classes, functions and constants."""
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    if exported is not None:
        return [name for name in exported if not name.startswith("__")]
    tree = _source_tree(module_name)
    assigned = _assigned_names(tree) if tree is not None else set()
    names = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(value) or inspect.isfunction(value):
            if getattr(value, "__module__", None) == module_name:
                names.append(name)
        elif name in assigned and name.isupper():
            names.append(name)
    return names


def documented_names(module_name: str) -> tuple[list[str], list[str]]:
    """(names defined and documented on the module's page, names re-exported from elsewhere)."""
    own, elsewhere = [], []
    for name in listed_names(module_name):
        (own if defining_module(module_name, name) == module_name else elsewhere).append(name)
    return own, elsewhere


def _auto_directive(module_name: str, name: str) -> list[str]:
    value = getattr(importlib.import_module(module_name), name)
    target = f"{module_name}.{name}"
    if inspect.isclass(value):
        kind = "autoexception" if issubclass(value, BaseException) else "autoclass"
        lines = [f".. {kind}:: {target}", "   :members:"]
        bases = value.__mro__[1:]
        if any(base.__name__.startswith("_") for base in bases):
            # Members of a private base (e.g. the objectives' shared methods) are documented on
            # the public class; members of public bases on their own pages.
            public = sorted({base.__name__ for base in bases if not base.__name__.startswith("_")})
            lines.append(f"   :inherited-members: {', '.join(public)}")
        return lines + [""]
    if inspect.isfunction(value) or inspect.isbuiltin(value) or callable(value) and hasattr(value, "__wrapped__"):
        return [f".. autofunction:: {target}", ""]
    lines = [f".. autodata:: {target}"]
    if len(repr(value)) > LONG_VALUE:
        lines.append("   :no-value:")
    return lines + [""]


def _table(targets: list[str], module: str | None = None) -> list[str]:
    # autosummary resolves names against the current module, which the automodule above has
    # set; full names need none. ``module`` restores it for the autodoc entries that follow.
    lines = [".. currentmodule:: None", "", ".. autosummary::", ""]
    lines += [f"   ~{target}" for target in targets]
    lines.append("")
    if module is not None:
        lines += [f".. currentmodule:: {module}", ""]
    return lines


class _GeneratedDirective(SphinxDirective):
    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        # The pages are MyST Markdown, whose nested parser reads Markdown: wrap the generated
        # reStructuredText in an eval-rst block.
        container = nodes.container()
        source = f"<generated by {self.name} {' '.join(self.arguments)}>"
        wrapped = ["```{eval-rst}", *lines, "```"]
        self.state.nested_parse(StringList(wrapped, source=source), self.content_offset, container)
        return list(container.children)


class ApiModule(_GeneratedDirective):
    required_arguments = 1
    option_spec = {"no-members": directives.flag}

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        module = importlib.import_module(module_name)
        if getattr(module, "__file__", None):
            self.env.note_dependency(module.__file__)
        lines = [f".. automodule:: {module_name}", ""]
        if "no-members" not in self.options:
            own, elsewhere = documented_names(module_name)
            if elsewhere:
                lines += [".. rubric:: Exported here, documented where they are defined", ""]
                lines += _table([f"{defining_module(module_name, n)}.{n}" for n in elsewhere],
                                module_name)
            if own and elsewhere:
                lines += [".. rubric:: Defined here", ""]
            for name in own:
                lines += _auto_directive(module_name, name)
        return self._parse(lines)


class ApiExports(_GeneratedDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        package = self.arguments[0]
        groups: dict[str, list[str]] = {}
        for name in listed_names(package):
            groups.setdefault(defining_module(package, name), []).append(name)
        lines: list[str] = []
        for owner, names in groups.items():
            lines += [f".. rubric:: :mod:`{owner}`", ""]
            lines += _table([f"{owner}.{name}" for name in names])
        return self._parse(lines)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or " "


class StatementTable(_GeneratedDirective):
    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        from proofs_checks.catalogue import all_statements

        if self.arguments:
            statements = list(importlib.import_module(self.arguments[0]).STATEMENTS)
        else:
            statements = all_statements()
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 12 10 18 60", "",
                 "   * - ID", "     - tag", "     - kind", "     - statement"]
        for statement in statements:
            lines += [f"   * - ``{statement.identifier}``", f"     - ``{statement.tag}``",
                      f"     - {statement.kind}", f"     - {_cell(statement.title)}"]
        return self._parse(lines + [""])


class FigureTable(_GeneratedDirective):
    def run(self) -> list[nodes.Node]:
        from figures.registry import FIGURES

        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 25 10 65", "",
                 "   * - figure", "     - experiment", "     - shows"]
        for info in FIGURES:
            lines += [f"   * - :mod:`{info.name} <{info.module}>`", f"     - {info.experiment}",
                      f"     - {_cell(info.summary)}"]
        return self._parse(lines + [""])


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("api-module", ApiModule)
    app.add_directive("api-exports", ApiExports)
    app.add_directive("statement-table", StatementTable)
    app.add_directive("figure-table", FigureTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
