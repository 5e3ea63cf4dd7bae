"""figures.explorer: the explorer's library functions, its command line, and the notebook
``figures/explorer.ipynb`` executed headless (nbclient) against a tiny sweep store."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from figures import cli, explorer
from figures.common import to_jsonable
from ufm.optima import dnc_critical_lambda, dnc_threshold, predict_deep_linear, predict_dufm
from ufm.solvers import KINK_LBFGS_LOW_RANK_SETTINGS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "figures" / "explorer.ipynb"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 10_000


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    """A tiny Gaussian λ–width sweep (2 λ × 2 widths, one seed, 30 epochs), run in this process."""
    import torch

    from fullnet import sweeps

    directory = tmp_path_factory.mktemp("sweep")
    base = {
        "data": {"name": "gaussian", "gaussian_classes": 3, "gaussian_dimension": 6, "per_class": 8},
        "model": {"nonlinear_widths": [16, 8], "linear_depth": 1},
        "training": {"epochs": 30, "learning_rate": 0.1, "device": "cpu"},
        "observe": {"log_points": 4},
        "output": {"directory": str(directory), "progress": False},
    }
    specification = sweeps.SweepSpecification.from_dict(
        {"name": "tiny", "base": base, "grid": {"weight_decays": [1e-3, 1e-2], "widths": [8, 16]}}
    )
    threads = torch.get_num_threads()
    try:
        sweeps.run_sweep(specification, directory / "sweep.sqlite", workers=0, progress=False)
    finally:
        torch.set_num_threads(threads)
    return directory / "sweep.sqlite"


# ------------------------------------------------------------------------------------------
# predicted against found
# ------------------------------------------------------------------------------------------


def test_prediction_numbers_are_those_of_ufm_optima():
    result = explorer.explore_dufm(K=2, L=3, n=5, lam=0.004, width=10, seed=0)
    expected = predict_dufm(2, 3, 5, 0.004, 0.004, widths=10)  # the explored model's widths
    assert result.prediction == expected
    assert result.predicted_loss == expected.optimal_loss
    assert result.predicted_q == expected.q_star
    assert result.critical_lambda == dnc_critical_lambda(2, 3, 5)
    assert result.predicted_kind == "global_optimum"
    comparison = result.comparison()
    assert comparison["predicted_loss"] == expected.optimal_loss
    assert comparison["gap"] == result.found_loss - expected.optimal_loss
    json.dumps(to_jsonable(result.to_dict()))  # serializable
    # this setting is solved to the optimum: loss, output scale, spectra of W_2, W_3
    assert result.gap == pytest.approx(0.0, abs=1e-9)
    assert result.found_q == pytest.approx(expected.q_star, rel=1e-6)
    errors = result.singular_value_errors
    assert errors[0] is None and max(errors[1:]) < 1e-4
    assert len(result.singular_values) == 3 and result.singular_values[1].shape == (10,)
    assert result.seconds < 5.0
    deep_linear = explorer.explore_dufm(3, 2, 4, 0.01, 6, model="deep_linear")
    assert deep_linear.prediction == predict_deep_linear(3, 2, 4, 0.01, 0.01, widths=6)


@pytest.mark.parametrize(
    ("L", "lam", "width", "seed", "method"),
    [(1, 0.02, 4, 0, "numpy_lbfgs"), (2, 0.01, 6, 1, "lbfgs"), (3, 0.004, 10, 2, "numpy_lbfgs"),
     (3, 0.05, 8, 3, "gd"), (4, 0.2, 6, 0, "numpy_lbfgs")],
)
def test_found_loss_is_never_below_the_proven_optimum_for_two_classes(L, lam, width, seed, method):
    result = explorer.explore_dufm(K=2, L=L, n=3, lam=lam, width=width, seed=seed, method=method,
                                   max_iterations=3000)
    assert result.predicted_kind == "global_optimum"
    assert result.found_loss >= result.predicted_loss - 1e-10 * max(1.0, result.predicted_loss)
    assert result.prediction.is_zero == (lam >= dnc_critical_lambda(2, L, 3))


def test_kink_lbfgs_finds_the_low_rank_point_of_the_four_layer_model():
    # docs/theory.md §4.5-4.6: the 4-DUFM with K = 10, width 30, n = 1, λ = 0.004 has points below
    # L_DNC = 0.099180 (a reference there, not an optimum); kink_lbfgs runs with the low-rank
    # settings of ufm.solvers and ends about 16% below it from seed 0. The assertion asks for
    # 5% below: far beyond rounding, and met by every seed seen (the worst kink_lbfgs end point
    # over seeds 0-59 of benchmarks/solvers.py was 0.0938 = 0.946 L_DNC).
    result = explorer.explore_dufm(K=10, L=4, n=1, lam=0.004, width=30, seed=0,
                                   method="kink_lbfgs")
    assert result.predicted_kind == "dnc_reference"
    assert result.found_loss < 0.95 * result.predicted_loss
    settings = result.solution.settings
    assert settings["momentum_penalty_scale"] == KINK_LBFGS_LOW_RANK_SETTINGS[
        "momentum_penalty_scale"]
    assert settings["smoothing"] == list(KINK_LBFGS_LOW_RANK_SETTINGS["smoothing"])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="K must be >= 2"):
        explorer.explore_dufm(K=1)
    with pytest.raises(ValueError, match="lam"):
        explorer.explore_dufm(lam=0.0)
    with pytest.raises(ValueError, match="model"):
        explorer.explore_dufm(model="cnn")
    with pytest.raises(ValueError, match="method"):
        explorer.explore_dufm(method="newton")


def test_threshold_curve_follows_the_prediction_and_marks_lambda_crit():
    lams = np.logspace(-3, 0, 40)
    curve = explorer.threshold_curve(2, 3, 3, lams)
    assert curve.critical_lambda == dnc_critical_lambda(2, 3, 3) == pytest.approx(0.1034005399)
    assert curve.threshold == dnc_threshold(2, 3)
    for lam, loss, q, zero in zip(curve.lams, curve.optimal_loss, curve.q_star, curve.is_zero):
        prediction = predict_dufm(2, 3, 3, lam, lam)
        assert (loss, q, zero) == (prediction.optimal_loss, prediction.q_star, prediction.is_zero)
        assert zero == (lam > curve.critical_lambda)
    default = explorer.threshold_curve(2, 2, 5)
    assert default.lams[0] < default.critical_lambda < default.lams[-1]


def test_plots_are_written(tmp_path):
    import matplotlib.pyplot as plt

    result = explorer.explore_dufm(K=3, L=2, n=3, lam=0.01, width=6, seed=0)
    figure = explorer.plot_exploration(result)
    assert len([axis for axis in figure.axes if axis.get_visible()]) >= 4
    assert_png(explorer.save_png(figure, tmp_path / "exploration.png"))
    figure, axes = plt.subplots(1, 3)
    assert explorer.plot_exploration(result, axes) is figure
    assert_png(explorer.save_png(figure, tmp_path / "three.png"))
    curve = explorer.threshold_curve(3, 2, 3)
    assert_png(explorer.save_png(explorer.plot_threshold_curve(curve, mark=0.01), tmp_path / "curve.png"))
    assert not list(tmp_path.glob("*.tmp.png"))
    assert explorer.png_bytes(explorer.plot_threshold_curve(curve))[:8] == PNG_MAGIC


# ------------------------------------------------------------------------------------------
# a sweep's store
# ------------------------------------------------------------------------------------------


def test_store_cells_and_lookup(store_path):
    cells = explorer.store_cells(store_path)
    assert [(cell.weight_decay, cell.width) for cell in cells] == [
        (1e-3, 8), (1e-2, 8), (1e-3, 16), (1e-2, 16)]
    assert all(cell.status == "completed" and cell.sweep == "tiny" for cell in cells)
    assert all(cell.nonlinear_depth == 2 and cell.linear_depth == 1 and cell.seed == 0 for cell in cells)
    assert "λ=0.01 p1=16" in cells[-1].label
    assert explorer.find_cell(store_path, lam=0.01, width=16) == cells[-1]
    assert explorer.find_cell(store_path, {"weight_decay": 1e-3, "width": 8}) == cells[0]
    assert explorer.find_cell(store_path, cells[1].run_id) == cells[1]
    with pytest.raises(KeyError, match="2 runs match"):
        explorer.find_cell(store_path, width=8)
    with pytest.raises(KeyError, match="no run"):
        explorer.find_cell(store_path, width=99)
    with pytest.raises(FileNotFoundError):
        explorer.store_cells(store_path.parent / "missing.sqlite")


def test_cell_history_and_heatmap_use_the_store(store_path, tmp_path):
    from fullnet.store import SweepStore
    from fullnet.sweeps import aggregate_grid

    cell = explorer.find_cell(store_path, lam=1e-3, width=16)
    data = explorer.cell_history(store_path, cell, ["objective", "NC1.tr_unc"])
    with SweepStore(store_path) as store:
        history = store.history(cell.run_id)
        table = store.final_metrics("NC1.tr_unc", 3)
    assert data["epochs"] == history.epochs
    assert data["series"]["objective"] == {0: history.values[(0, "objective")]}
    assert sorted(data["series"]["NC1.tr_unc"]) == [1, 2, 3]
    with pytest.raises(KeyError, match="no metric 'nope'"):
        explorer.cell_history(store_path, cell, ["nope"])
    figure = explorer.plot_cell_history(store_path, cell.run_id)
    assert_png(explorer.save_png(figure, tmp_path / "history.png"))
    grid = explorer.sweep_grid(store_path, "NC1.tr_unc")  # deepest layer storing it: 3
    assert grid == aggregate_grid(table)
    assert grid.layer == 3 and grid.widths == [8, 16] and grid.weight_decays == [1e-3, 1e-2]
    figure = explorer.plot_sweep_heatmap(store_path, "NC1.tr_unc", 3)
    assert_png(explorer.save_png(figure, tmp_path / "heatmap.png"))
    with pytest.raises(KeyError, match="not stored"):
        explorer.sweep_grid(store_path, "nope")


def test_resolve_store(store_path, monkeypatch, tmp_path):
    assert explorer.resolve_store(store_path) == store_path
    monkeypatch.setenv(explorer.ENVIRONMENT_STORE, str(store_path))
    assert explorer.resolve_store() == store_path
    monkeypatch.setenv(explorer.ENVIRONMENT_STORE, str(tmp_path / "missing.sqlite"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        explorer.resolve_store()


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------


def test_cli_explore_dufm(tmp_path, capsys):
    status = cli.main(["explore", "dufm", "--K", "2", "--L", "3", "--n", "5", "--lam", "0.004",
                       "--width", "10", "--out", str(tmp_path)])
    assert status == 0
    out = capsys.readouterr().out
    assert "L_DNC" in out and str(tmp_path / "explore_dufm.png") in out
    assert_png(tmp_path / "explore_dufm.png")
    data = json.loads((tmp_path / "explore_dufm.json").read_text(encoding="utf-8"))
    assert data["comparison"]["predicted_loss"] == predict_dufm(2, 3, 5, 0.004, 0.004).optimal_loss
    assert data["prediction"]["threshold"] == dnc_threshold(2, 3)


def test_cli_explore_store(store_path, tmp_path, capsys):
    status = cli.main(["explore", "store", str(store_path), "--metric", "NC1.tr_unc", "--layer", "3",
                       "--out", str(tmp_path)])
    assert status == 0
    assert_png(tmp_path / "explore_store_heatmap.png")
    first = explorer.store_cells(store_path)[0]
    assert_png(tmp_path / f"explore_store_run{first.run_id}.png")
    grid = json.loads((tmp_path / "explore_store_heatmap.json").read_text(encoding="utf-8"))
    assert grid["metric"] == "NC1.tr_unc" and grid["layer"] == 3
    last = explorer.find_cell(store_path, lam=0.01, width=16)
    assert cli.main(["explore", "store", str(store_path), "--cell", "0.01,16", "--history-metrics",
                     "objective", "--out", str(tmp_path)]) == 0
    assert_png(tmp_path / f"explore_store_run{last.run_id}.png")
    capsys.readouterr()
    assert cli.main(["explore", "store", str(store_path), "--list"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4
    assert cli.main(["explore", "store", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path)]) == 2
    assert cli.main(["explore", "store", str(store_path), "--metric", "nope", "--out", str(tmp_path)]) == 2
    assert "not stored" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["explore"])
    assert exit_info.value.code == 2


def test_cli_explore_notebook_copies_the_packaged_notebook(tmp_path, capsys, monkeypatch):
    assert explorer.notebook_path() == NOTEBOOK.resolve()
    assert cli.main(["explore", "notebook", "--print-path"]) == 0
    assert capsys.readouterr().out.strip() == str(NOTEBOOK.resolve())
    assert cli.main(["explore", "notebook", "--out", str(tmp_path / "nb")]) == 0
    copy = tmp_path / "nb" / "explorer.ipynb"
    assert copy.read_bytes() == NOTEBOOK.read_bytes()
    assert f"jupyter lab {copy}" in capsys.readouterr().out
    copy.write_text("{}")  # an edited copy is not overwritten without --force
    assert cli.main(["explore", "notebook", "--out", str(tmp_path / "nb")]) == 2
    assert "exists" in capsys.readouterr().err and copy.read_text() == "{}"
    assert cli.main(["explore", "notebook", "--out", str(tmp_path / "nb"), "--force"]) == 0
    assert copy.read_bytes() == NOTEBOOK.read_bytes()
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jupyterlab" else real_find_spec(name, *a))
    assert cli.main(["explore", "notebook", "--out", str(tmp_path / "nb2"), "--open"]) == 2
    assert "ufm-sandbox[explorer]" in capsys.readouterr().err
    assert not (tmp_path / "nb2").exists()


def test_figure_names_still_parse(capsys):
    assert cli.main(["--list"]) == 0
    assert "sukenik2024_ratio" in capsys.readouterr().out
    assert cli.main(["no_such_figure"]) == 2


# ------------------------------------------------------------------------------------------
# the notebook, headless
# ------------------------------------------------------------------------------------------


def _error_outputs(node) -> list:
    """Every output of type "error" anywhere in a notebook (cells and widget state)."""
    found = []
    if isinstance(node, dict):
        if node.get("output_type") == "error":
            found.append(node)
        for value in node.values():
            found.extend(_error_outputs(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_error_outputs(value))
    return found


def _poll_shell_in_slices(client, slice_seconds: float = 0.5) -> None:
    """Make ``client.kc.shell_channel.get_msg(timeout)`` poll in short slices until ``timeout``.

    With widget output (comm messages on IOPub) one long poll of the shell socket sometimes
    misses the execute reply and wakes only at its timeout (jupyter/nbclient#312); a new poll
    every ``slice_seconds`` sees the reply at once.
    """
    import time
    from queue import Empty

    channel = client.kc.shell_channel
    original = channel.get_msg

    async def get_msg(timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = slice_seconds if deadline is None else max(0.0, min(slice_seconds, deadline - time.monotonic()))
            try:
                return await original(timeout=step)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


def test_notebook_runs_headless(store_path, tmp_path, monkeypatch):
    import ipywidgets  # noqa: F401  (the notebook's controls)
    import nbclient
    import nbformat
    from ipykernel import kernelspec

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    # A kernel of this interpreter, found before any other kernelspec of the same name.
    prefix = tmp_path / "kernel"
    kernel_name = "ufm-explorer-test"
    kernelspec.install(kernel_name=kernel_name, prefix=str(prefix))
    spec = json.loads((prefix / "share" / "jupyter" / "kernels" / kernel_name / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv(explorer.ENVIRONMENT_STORE, str(store_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    client = nbclient.NotebookClient(
        notebook, kernel_name=kernel_name, timeout=120,
        resources={"metadata": {"path": str(ROOT / "figures")}},
    )
    client.on_notebook_start = lambda notebook: _poll_shell_in_slices(client)
    client.execute()
    assert not _error_outputs(notebook)
    text = json.dumps(notebook)
    assert str(store_path) in text  # the first cell found the store of the environment
    assert "L_DNC" in text  # the check cell printed the summary of the DUFM control
    assert "application/vnd.jupyter.widget-view+json" in text
