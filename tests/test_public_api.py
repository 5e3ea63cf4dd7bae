"""``import ufm``: the public names, loaded lazily from their submodules."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ufm

ROOT = Path(__file__).resolve().parents[1]


def test_every_name_resolves_to_its_submodule_object():
    for name in ufm.__all__:
        value = getattr(ufm, name)
        if name == "__version__":
            continue
        module = importlib.import_module(f"ufm.{ufm._EXPORTS[name]}")
        assert value is getattr(module, name), name


def test_named_entry_points_are_exported():
    wanted = {
        "UFM", "DeepLinearUFM", "DeepUFM", "LinearHead", "Parameters",
        "predict", "predict_ufm", "predict_deep_linear", "predict_dufm", "predict_srg",
        "solve", "solve_with_restarts", "Solution",
        "layer_report", "model_layer_report", "to_paper_convention", "run_atlas", "load_point",
    }
    assert wanted <= set(ufm.__all__)
    # every predict_* function of ufm.optima, every metric and every streaming accumulator
    optima, metrics, streaming = (importlib.import_module(f"ufm.{name}")
                                  for name in ("optima", "metrics", "streaming"))
    assert {name for name in optima.__all__ if name.startswith("predict")} <= set(ufm.__all__)
    assert set(metrics.__all__) <= set(ufm.__all__)
    assert set(streaming.__all__) - {"CHUNK_ELEMENTS", "projection_is_cheaper"} <= set(ufm.__all__)


def test_all_has_no_duplicates_and_dir_lists_it():
    assert len(ufm.__all__) == len(set(ufm.__all__))
    assert set(ufm.__all__) <= set(dir(ufm))


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nc9'"):
        ufm.nc9  # noqa: B018
    assert not hasattr(ufm, "nc9")


def test_type_checking_imports_match_the_table():
    """The ``if TYPE_CHECKING`` block (what static analysers see) names exactly the exports."""
    tree = ast.parse((ROOT / "ufm" / "__init__.py").read_text())
    seen: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.level == 1
                for alias in statement.names:
                    seen[alias.name] = statement.module
    assert seen == ufm._EXPORTS


def test_import_is_light():
    """``import ufm`` loads none of numpy, scipy, torch, cvxpy, matplotlib; a name loads only its
    own submodule's dependencies (no torch, no cvxpy)."""
    code = (
        "import sys, json, ufm; heavy = ('numpy', 'scipy', 'torch', 'cvxpy', 'matplotlib');"
        "before = [m for m in heavy if m in sys.modules];"
        "ufm.solve; ufm.predict; ufm.layer_report; ufm.ClassStatisticsAccumulator;"
        "ufm.to_paper_convention; ufm.certify_ufm; ufm.run_atlas;"
        "after = [m for m in heavy if m in sys.modules];"
        "print(json.dumps([before, after]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    before, after = json.loads(result.stdout.strip().splitlines()[-1])
    assert before == []
    assert "torch" not in after and "cvxpy" not in after


def test_py_typed_marker_is_shipped():
    assert (ROOT / "ufm" / "py.typed").is_file()
    tomllib = pytest.importorskip("tomllib")
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["ufm"]
