"""benchmarks/metrics.py on sizes small enough for a test: its tables, the re-implementation label
when no peer checkout is given, the accuracy columns, and the --peer path check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "metrics_benchmark", ROOT / "benchmarks" / "metrics.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["metrics_benchmark"] = module
    spec.loader.exec_module(module)
    return module


def test_tables_label_the_baseline_and_show_errors(bench, capsys):
    assert (
        bench.main(
            [
                "--samples",
                "800",
                "--dimension",
                "24",
                "--classes",
                "4",
                "--repeat",
                "1",
                "--batch",
                "100",
                "--spread",
                "2",
            ]
        )
        == 0
    )
    output = capsys.readouterr().out
    assert "re-implementation of the peer's workflow" in output  # no --peer: never called the peer
    rows = [line for line in output.splitlines() if line.startswith("| ufm all_metrics, rows (")]
    assert len(rows) == 2  # timing table and spread-spectrum error table
    numpy_rows = [line for line in output.splitlines() if "numpy route (kernels='numpy')" in line]
    assert len(numpy_rows) == 2  # the numpy route is measured beside the compiled kernels
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        errors = [float(cell) for cell in cells[-4:]]
        # float64 routes: a few units of u = 2.2e-16 per summand chain; NC4 decisions exact
        assert max(errors[:3]) < 1e-12 and errors[3] == 0


def test_reference_and_errors(bench):
    features, labels, weights = bench.make_data(300, 8, 3, spread=1.0)
    expected = bench.reference(features, labels, weights, 3)
    assert set(expected) == set(bench.COMPARED)
    found = bench.errors(dict(expected, **{"NC1.pinv": 2 * expected["NC1.pinv"]}), expected)
    assert found["NC1.pinv"] == pytest.approx(1.0) and found["NC4.ncc"] == 0
    values = bench.ufm_nc1_to_nc3(features, labels, weights, 3)
    assert values["NC1.pinv"] == pytest.approx(expected["NC1.pinv"], rel=1e-12)
    assert "NC4.ncc" not in values and np.isfinite(values["NC3.dual"])


def test_peer_path_is_checked(bench, tmp_path):
    with pytest.raises(SystemExit, match="neural_collapse/__init__.py"):
        bench.load_peer(str(tmp_path))
