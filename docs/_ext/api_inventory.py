"""The public modules and names of the four packages, as the API reference documents them.

Used by the directives of ``ufm_api.py`` and by ``tests/test_docs.py``; no Sphinx import here.
Every public name is documented once, on the page of the module that defines it
(:func:`defining_module`).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from functools import lru_cache
from pathlib import Path

PACKAGES = ("ufm", "fullnet", "proofs_checks", "figures")


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
