"""Tests of the figures that put theory beside practice: the λ–width sweep (fullnet.sweeps) and
the comparison of a trained network with its ufm optimum (fullnet.compare).

Each ``make`` runs with its settings shrunk through ``monkeypatch``; the numbers in its data files
are compared with direct calls to the library functions the figure names.
"""

from __future__ import annotations

import math

import pytest

from figures import registry



def number(text: str) -> float:
    return math.nan if text == "" else float(text)


def test_new_figures_are_registered():
    names = registry.figure_names()
    for name in ("lambda_width_sweep", "theory_vs_practice", "sukenik2024_rank_vs_wd"):
        assert name in names
        assert callable(registry.load_make(name))
        assert registry.figure_info(name).experiment.startswith("E-")


def test_lambda_width_figure_plots_the_store_aggregates(tmp_path, monkeypatch, figure_files):
    from figures import lambda_width_sweep as figure
    from fullnet.store import SweepStore
    from fullnet.sweeps import aggregate_grid, aggregate_lines

    original = figure.settings(True)
    small = dict(original, overrides=[
        "output.progress=false", "training.epochs=20", "observe.log_points=3", "output.checkpoint_every=0",
        "grid.widths=[8,16]", "grid.weight_decays=[0.001,0.01]", "grid.seeds=[0]",
        "grid.lambda_width_products=[0.016]",
    ])
    monkeypatch.setattr(figure, "settings", lambda quick: dict(small))
    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    report = data["report"]
    assert report["cells"] == 5 and len(report["completed"]) == 5 and not report["failed"]
    depth = len(data["sweep"]["nonlinear_widths"]) + data["sweep"]["linear_depth"]
    with SweepStore(figure.store_path(tmp_path), create=False) as store:
        for metric, layer in (("NC1.tr_unc", depth), ("NC2.orth", depth), ("objective", 0)):
            table = store.final_metrics(metric, layer)
            grid = aggregate_grid(table)
            written = {(float(row["weight_decay"]), int(row["width"])): row for row in rows
                       if row["series"] == "grid" and row["metric"] == metric}
            assert all(int(row["layer"]) == layer for row in written.values())
            expected = {(lam, width): (grid.mean[i][j], grid.count[i][j])
                        for i, lam in enumerate(grid.weight_decays) for j, width in enumerate(grid.widths)
                        if grid.count[i][j]}
            assert set(written) == set(expected)
            for key, (mean, count) in expected.items():
                assert number(written[key]["mean"]) == mean and int(written[key]["count"]) == count
            lines = aggregate_lines(table)
            assert [line.product for line in lines] == [0.016]
            line_rows = [row for row in rows if row["series"] == "line" and row["metric"] == metric]
            assert [int(row["width"]) for row in line_rows] == lines[0].widths == [8, 16]
            assert [float(row["weight_decay"]) for row in line_rows] == lines[0].weight_decays
            assert [number(row["mean"]) for row in line_rows] == lines[0].mean
    # the store is reused: a second make runs nothing and plots the same numbers
    again_rows, again = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    assert again["report"]["completed"] == [] and again["report"]["skipped_completed"] == 5
    assert again_rows == rows


def test_theory_vs_practice_figure_plots_the_comparison(tmp_path, monkeypatch, figure_files):
    pytest.importorskip("mlxtend")
    from figures import theory_vs_practice as figure
    from fullnet.compare import compare_run
    from fullnet.training import train

    small = dict(figure.settings(True), per_class=3, nonlinear_widths=[16, 12], linear_depth=2,
                 linear_width=10, epochs=30, log_points=2, threads=1)
    monkeypatch.setattr(figure, "settings", lambda quick: dict(small))
    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    assert data["training"]["epochs"] == 30
    # the same training elsewhere, compared by the library directly
    again = tmp_path / "again"
    train(figure.run_config(small, tmp_path), output_dir=again, progress=False)
    comparison = compare_run(again, seed=small["seed"], rank_tolerance=small["rank_tolerance"])
    assert {row.view for row in comparison.rows} == {"head", "network", "view"}
    written = [row for row in rows if row["series"] == "comparison"]
    assert [(row["view"], row["quantity"]) for row in written] == [
        (row.view, row.quantity) for row in comparison.rows]
    for row, expected in zip(written, comparison.rows):
        for key in ("predicted", "measured", "relative_error"):
            value = getattr(expected, key)
            if value is None:
                assert row[key] == ""
            else:
                assert float(row[key]) == value
    metrics = [row for row in rows if row["series"] == "layer_metric"]
    assert len(metrics) == len(comparison.layer_rows)
    for row, entry in zip(metrics, comparison.layer_rows):
        assert (int(row["layer"]), row["metric"]) == (entry["layer"], entry["metric"])
        if entry["measured"] is not None and math.isfinite(entry["measured"]):
            assert float(row["measured"]) == entry["measured"]
    assert data["comparison"]["rows"][0]["quantity"] == comparison.rows[0].quantity


def test_rank_vs_weight_decay_figure_plots_the_solver_ranks(tmp_path, monkeypatch, figure_files):
    from figures import sukenik2024_rank_vs_wd as figure
    from ufm.metrics import class_statistics, numerical_rank
    from ufm.models import DeepUFM
    from ufm.optima import predict_dufm
    from ufm.solvers import solve

    small = dict(figure.settings(True), log2_lams=[-10, -8], seeds=[0, 1], steps=300, width=12)
    monkeypatch.setattr(figure, "settings", lambda quick: dict(small))
    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    assert len(rows) == 4 and "E-C5" == data["experiment"]
    row = [row for row in rows if row["seed"] == "1" and row["log2_lam"] == "-8"][0]
    lam = 2.0 ** -8
    model = DeepUFM(num_classes=10, per_class=1, widths=(12,) * 4, lam_h=lam, lam_w=lam)
    solution = solve(model, "gd", seed=1, lr=0.5, tolerance=1e-10, max_iterations=300, history_points=0,
                     predicted=None, progress=False)
    assert float(row["loss"]) == solution.loss
    assert float(row["dnc_loss"]) == predict_dufm(10, 4, 1, lam, lam).optimal_loss
    features = model.forward(solution.parameters)
    for layer in (2, 3, 4):
        means = class_statistics(features.pre_activations[layer - 1], model.labels, 10).means
        assert int(row[f"rank_pre_{layer}"]) == numerical_rank(means, figure.RANK_RTOL)
    means = class_statistics(features.post_activations[3], model.labels, 10).means
    assert int(row["rank_post_4"]) == numerical_rank(means, figure.RANK_RTOL)
