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
    # docs/theory.md §4.6, unequal λ: L_DNC = 0.0162056, q* = 0.993484 (printed digits)
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
    assert code == 2 and "--K" in err and ">= 2" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(
        capsys, "predict", "dufm", "--K", "2", "--L", "2", "--n", "5", "--lam-h=-3e-3",
        "--lam-w", "2e-3",
    )
    assert code == 2 and "--lam-h" in err and len(err.strip().splitlines()) == 1


def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "ufm", "predict", "ufm", "--K", "5", "--n", "2", "--lam-h", "0.02",
         "--lam-w", "0.02", "--json"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(result.stdout)["optimal_loss"] == pytest.approx(0.1314213562, abs=5e-11)


# ---------------------------------------------------------------------------------------------
# metrics, metrics-demo, solve
# ---------------------------------------------------------------------------------------------

import numpy as np  # noqa: E402

from ufm import metrics  # noqa: E402


@pytest.fixture
def saved_features(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 5)
    means = rng.standard_normal((6, 3))
    features = means[:, labels] + 0.1 * rng.standard_normal((6, 15))
    weights = means.T
    for name, array in (("F", features), ("y", labels), ("W", weights), ("Fr", features.T)):
        np.save(tmp_path / f"{name}.npy", array)
    return tmp_path, features, labels, weights


def test_metrics_json_is_keyed_by_theory_ids(capsys, saved_features):
    folder, features, labels, weights = saved_features
    code, out, _ = run_cli(capsys, "metrics", "--features", str(folder / "F.npy"), "--labels",
                           str(folder / "y.npy"), "--weights", str(folder / "W.npy"), "--json")
    assert code == 0
    data = json.loads(out)
    expected = metrics.all_metrics(features, labels, weights, undefined="none")
    assert set(data) == set(expected)
    for key in ("NC1.tr_unc", "NC2.kappa", "NC3.dual", "NC4.ncc"):
        assert data[key] == pytest.approx(expected[key], rel=1e-15)  # same call, JSON round trip
    code, out_rows, _ = run_cli(capsys, "metrics", "--features", str(folder / "Fr.npy"), "--rows",
                                "--labels", str(folder / "y.npy"), "--weights", str(folder / "W.npy"),
                                "--json")
    assert code == 0 and json.loads(out_rows)["NC1.tr_unc"] == pytest.approx(data["NC1.tr_unc"])
    code, table, _ = run_cli(capsys, "metrics", "--features", str(folder / "F.npy"), "--labels",
                             str(folder / "y.npy"))
    assert code == 0 and "NC1.tr_unc" in table


def test_metrics_bad_files_name_the_file_and_problem(capsys, saved_features, tmp_path):
    folder = saved_features[0]
    code, _, err = run_cli(capsys, "metrics", "--features", str(folder / "missing.npy"),
                           "--labels", str(folder / "y.npy"))
    assert code == 2 and "missing.npy" in err and "does not exist" in err
    (tmp_path / "junk.npy").write_text("not an array")
    code, _, err = run_cli(capsys, "metrics", "--features", str(tmp_path / "junk.npy"),
                           "--labels", str(folder / "y.npy"))
    assert code == 2 and "junk.npy" in err and "not a readable .npy" in err
    code, _, err = run_cli(capsys, "metrics", "--features", str(folder / "Fr.npy"),
                           "--labels", str(folder / "y.npy"))
    assert code == 2 and "--rows" in err
    bad = np.load(folder / "F.npy")
    bad[0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    code, _, err = run_cli(capsys, "metrics", "--features", str(tmp_path / "nan.npy"),
                           "--labels", str(folder / "y.npy"))
    assert code == 2 and "nan.npy" in err and "NaN" in err


def test_metrics_demo_writes_plot_and_data(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "metrics-demo", "--out", str(tmp_path), "--quiet")
    assert code == 0
    png, data = tmp_path / "metrics_demo.png", tmp_path / "metrics_demo.csv"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    import csv

    rows = list(csv.DictReader(open(data)))
    nc1 = {float(r["noise"]): float(r["value"]) for r in rows
           if r["metric"] == "NC1.tr_unc" and r["layer"] == "3" and r["kind"] == "post"}
    noise = sorted(nc1)
    # NC1 of the DNC point is 0 and grows like σ² under noise of relative size σ: at σ = 1e-4 it is
    # ~1e-8 (far below 1e-6), at σ = 1 it is O(1) (far above 1e-2).
    assert nc1[noise[0]] < 1e-6 and nc1[noise[-1]] > 1e-2


def test_solve_dufm_reaches_prediction(capsys):
    code, out, _ = run_cli(capsys, "solve", "dufm", "--K", "2", "--L", "3", "--n", "5",
                           "--lam-h", "2e-3", "--lam-w", "2e-3", "--json")
    assert code == 0
    data = json.loads(out)
    # docs/theory.md §4.6: (K, L, n, λ) = (2, 3, 5, 0.002) → L_DNC = 0.0119448479. K = 2 is a proven
    # global optimum: the solver may not end below it (beyond float64 rounding of Φ ≈ 1e-17) and
    # from seed 0 reaches it to 1e-6 relative (the solvers tests cover the method itself).
    assert data["predicted"]["optimal_loss"] == pytest.approx(0.0119448479, abs=5e-11)
    assert data["found"]["loss"] >= data["predicted"]["optimal_loss"] - 1e-15
    assert data["found"]["loss"] == pytest.approx(data["predicted"]["optimal_loss"], rel=1e-6)
    assert len(data["layers"]) >= 3 and data["predicted_kind"] == "global_optimum"


def test_solve_dufm_with_kink_lbfgs_uses_the_low_rank_settings(capsys):
    code, out, _ = run_cli(capsys, "solve", "dufm", "--K", "3", "--L", "3", "--n", "1",
                           "--lam-h", "4e-3", "--lam-w", "4e-3", "--method", "kink_lbfgs",
                           "--max-iterations", "2000", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["found"]["method"] == "kink_lbfgs"
    settings = data["found"]["settings"]
    assert settings["momentum_steps"] == 1000 and settings["smoothing_iterations"] == 100
    assert "smoothing phase" in data["found"]["message"]
    # K = 3, L = 3 (docs/theory.md §4.6: GD reaches L_DNC at L = 3): within 1e-6 relative, not below
    # it by more than the rounding of Φ.
    predicted = data["predicted"]["optimal_loss"]
    assert data["found"]["loss"] == pytest.approx(predicted, rel=1e-6)


def test_solve_save_writes_solution_and_plot(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "solve", "ufm", "--K", "3", "--n", "4", "--d", "5",
                           "--lam-h", "2e-2", "--lam-w", "1e-2", "--save", str(tmp_path))
    assert code == 0 and "wrote" in out
    data = json.loads((tmp_path / "solution.json").read_text())
    # docs/theory.md §4.6: UFM (3, 4, 5, 0.01, 0.02) without bias → 0.0812528137 (10 digits printed)
    assert data["predicted"]["optimal_loss"] == pytest.approx(0.0812528137, abs=5e-11)
    assert data["solution"]["loss"] == pytest.approx(data["found"]["loss"], rel=0)
    assert len(data["solution"]["history"]["total"]) >= 2
    assert (tmp_path / "loss_history.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("*.tmp*"))  # atomic writes leave no temporary file


def test_metrics_json_is_strict_when_kappa_is_infinite(capsys, tmp_path):
    # Two classes with identical means: rank M = 1 < K = 2, so NC2.kappa = +inf (docs/theory.md §3),
    # written as the string "inf" so that strict JSON parsers accept the output.
    features = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.1, 0.0, 0.1]])
    labels = np.array([0, 0, 1, 1])
    np.save(tmp_path / "F.npy", features)
    np.save(tmp_path / "y.npy", labels)
    code, out, _ = run_cli(capsys, "metrics", "--features", str(tmp_path / "F.npy"), "--labels",
                           str(tmp_path / "y.npy"), "--json")
    assert code == 0
    data = json.loads(out, parse_constant=lambda name: pytest.fail(f"non-strict JSON {name}"))
    assert data["NC2.kappa"] == "inf"


def test_metrics_command_is_fast_and_light(tmp_path):
    """`ufm metrics --rows` on 60,000 × 512 float32 features (K = 10, with W) in a fresh process:
    under 2 s end to end (measured 0.28 s on the 2-core machine, so the bound leaves 7× for a
    loaded runner), and neither torch, scipy, cvxpy nor matplotlib is imported on the way."""
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 60_000)
    features = rng.standard_normal((60_000, 512), dtype=np.float32)  # 123 MB, no float64 copy
    features *= 0.5
    features += rng.standard_normal((10, 512), dtype=np.float32)[labels]
    paths = {name: str(tmp_path / f"{name}.npy") for name in ("F", "y", "W")}
    np.save(paths["F"], features)
    np.save(paths["y"], labels)
    np.save(paths["W"], rng.standard_normal((10, 512)))
    script = (
        "import sys, json\n"
        "from ufm.cli import main\n"
        f"code = main(['metrics', '--features', {paths['F']!r}, '--labels', {paths['y']!r}, "
        f"'--weights', {paths['W']!r}, '--rows', '--json'])\n"
        "heavy = [name for name in ('torch', 'scipy', 'cvxpy', 'matplotlib') if name in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    status = json.loads(done.stderr.strip().splitlines()[-1])
    assert status == {"code": 0, "heavy": []}
    assert json.loads(done.stdout)["NC4.ncc"] is not None
    assert seconds < 2.0, f"{seconds:.2f} s"
