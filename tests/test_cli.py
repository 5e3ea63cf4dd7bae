"""Tests of the ``python -m ufm`` command line."""

import json
import subprocess
import sys

import pytest

from ufm import cli, optima


def run_cli(capsys, *arguments):
    code = cli.main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_dufm_json_matches_library(capsys):
    code, out, _ = run_cli(
        capsys, "predict", "dufm", "--K", "2", "--L", "4", "--n", "5", "--lam-h", "3e-3",
        "--lam-w", "2e-3,4e-3,1e-3,3e-3", "--json",
    )
    assert code == 0
    data = json.loads(out)
    expected = optima.predict_dufm(2, 4, 5, 3e-3, [2e-3, 4e-3, 1e-3, 3e-3]).to_dict()
    assert data == json.loads(json.dumps(expected))
    for key in ("optimal_loss", "q_star", "threshold", "is_zero", "singular_values",
                "class_mean_norms", "balancedness"):
        assert key in data
    # THEORY.md §4.6, unequal λ: L_DNC = 0.0162056, q* = 0.993484 (printed digits)
    assert data["optimal_loss"] == pytest.approx(0.0162056, abs=5e-8)
    assert data["q_star"] == pytest.approx(0.993484, abs=5e-7)


def test_predict_ufm_and_deep_linear(capsys):
    code, out, _ = run_cli(
        capsys, "predict", "ufm", "--K", "3", "--n", "4", "--d", "5", "--lam-h", "2e-2",
        "--lam-w", "1e-2", "--bias", "--json",
    )
    assert code == 0
    assert json.loads(out)["optimal_loss"] == pytest.approx(0.0541685425, abs=5e-11)  # §4.6
    code, out, _ = run_cli(
        capsys, "predict", "deep-linear", "--K", "2", "--L", "3", "--n", "5", "--lam-h", "2e-3",
        "--lam-w", "2e-3",
    )
    assert code == 0 and "optimal_loss" in out and "singular values W_3" in out


def test_predict_errors_name_the_argument(capsys):
    code, _, err = run_cli(
        capsys, "predict", "dufm", "--K", "2", "--L", "4", "--n", "5", "--lam-h", "3e-3",
        "--lam-w", "2e-3,4e-3",
    )
    assert code == 2 and "--lam-w" in err
    code, _, err = run_cli(
        capsys, "predict", "dufm", "--K", "1", "--L", "2", "--n", "5", "--lam-h", "3e-3",
        "--lam-w", "2e-3",
    )
    assert code == 2 and "num_classes" in err
    code, _, err = run_cli(
        capsys, "predict", "dufm", "--K", "2", "--L", "2", "--n", "5", "--lam-h=-3e-3",
        "--lam-w", "2e-3",
    )
    assert code == 2 and "lam_h" in err


def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "ufm", "predict", "ufm", "--K", "5", "--n", "2", "--lam-h", "0.02",
         "--lam-w", "0.02", "--json"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(result.stdout)["optimal_loss"] == pytest.approx(0.1314213562, abs=5e-11)
