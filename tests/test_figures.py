"""Tests of the figures package: the command line, and that every figure plots what the library
computes.

Each ``make`` writes a PNG and its data (CSV, JSON) into ``tmp_path``; the numbers in the data
files are compared with direct calls to the library functions the figure names. The two
closed-form figures run in their ``quick`` version; the figures that train (gradient descent on
a DUFM, an MLP on MNIST digits) run with their settings shrunk through ``monkeypatch`` so that
the whole file stays well under a minute, while every plotting path is exercised.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from figures import cli, registry

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------
# command line and registry
# ------------------------------------------------------------------------------------------


def test_list_prints_every_figure(capsys):
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in registry.figure_names():
        assert name in out
    assert registry.figure_names()[0] == "sukenik2024_ratio"


def test_module_entry_point_lists_figures():
    result = subprocess.run(
        [sys.executable, "-m", "figures", "--list"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "sukenik2023_dufm_gd" in result.stdout


def test_unknown_figure_is_a_clear_error(capsys, tmp_path):
    assert cli.main(["no_such_figure", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown figure 'no_such_figure'" in err
    assert "sukenik2024_ratio" in err  # the message lists the known names
    assert not any(tmp_path.iterdir())


def test_unknown_figure_exits_nonzero_from_the_shell(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "figures", "nope", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "unknown figure" in result.stderr


def test_no_figure_name_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "--list" in capsys.readouterr().err


def test_every_registered_module_has_make():
    for info in registry.FIGURES:
        assert callable(registry.load_make(info.name))
        assert info.experiment.startswith("E-")
    with pytest.raises(registry.UnknownFigureError, match="known figures"):
        registry.figure_info("nope")


def test_cli_makes_a_figure_and_prints_its_time(capsys, tmp_path):
    assert cli.main(["sukenik2024_ratio", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "sukenik2024_ratio:" in out and " s" in out
    assert (tmp_path / "sukenik2024_ratio.png").exists()


# ------------------------------------------------------------------------------------------
# closed-form figures (quick versions)
# ------------------------------------------------------------------------------------------


def test_ratio_figure_plots_the_library_ratios(tmp_path, figure_files):
    from figures import sukenik2024_ratio as figure
    from ufm.optima import predict_srg, srg_ratio

    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    config = figure.settings(True)
    assert len(rows) == len(config["lams"]) * len(config["depths"]) * len(config["vertices"])
    for row in rows:
        r, depth, lam = int(row["num_vertices"]), int(row["num_layers"]), float(row["lam"])
        assert float(row["coefficient_ratio_basic"]) == srg_ratio(r, depth)
        basic = predict_srg(r, depth, 1, lam, lam, shift=-1.0)
        assert float(row["loss_ratio_basic"]) == basic.loss_ratio
        assert float(row["dnc_loss"]) == basic.dnc_loss
    # the improved family, for a few rows (its shift search is the slow part)
    for row in rows[:: max(1, len(rows) // 5)]:
        r, depth, lam = int(row["num_vertices"]), int(row["num_layers"]), float(row["lam"])
        improved = predict_srg(r, depth, 1, lam, lam, shift=None)
        assert float(row["coefficient_ratio_improved"]) == improved.coefficient_ratio
        assert float(row["loss_ratio_improved"]) == improved.loss_ratio
    assert data["rows"][0]["coefficient_ratio_basic"] == float(rows[0]["coefficient_ratio_basic"])


def test_threshold_figure_plots_the_library_optimum(tmp_path, figure_files):
    from figures import sukenik2023_threshold as figure
    from ufm.models import DeepUFM
    from ufm.optima import dnc_critical_lambda, predict_dufm
    from ufm.solvers import solve

    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    predicted = [row for row in rows if row["series"] == "prediction"]
    descent = [row for row in rows if row["series"] == "gd"]
    assert predicted and descent
    for row in predicted[::7]:
        depth, lam = int(row["num_layers"]), float(row["lam"])
        optimum = predict_dufm(figure.NUM_CLASSES, depth, figure.PER_CLASS, lam, lam)
        assert float(row["optimal_loss"]) == optimum.optimal_loss
        assert float(row["q_star"]) == optimum.q_star
        assert float(row["critical_lam"]) == dnc_critical_lambda(figure.NUM_CLASSES, depth, figure.PER_CLASS)
    for row in descent:  # K = 2: L_DNC is the global minimum, GD cannot go below it
        assert float(row["loss"]) >= float(row["optimal_loss"]) - 1e-9
    config = figure.settings(True)
    row = descent[0]
    depth, lam = int(row["num_layers"]), float(row["lam"])
    model = DeepUFM(num_classes=2, per_class=figure.PER_CLASS, widths=(config["gd_width"],) * depth,
                    lam_h=lam, lam_w=lam)
    solution = solve(model, "gd", seed=int(row["seed"]), lr=config["gd_lr"],
                     max_iterations=config["gd_steps"], tolerance=1e-10, history_points=0, progress=False)
    assert float(row["loss"]) == solution.loss
    assert set(data["critical_lam"]) == {str(depth) for depth in figure.DEPTHS}


# ------------------------------------------------------------------------------------------
# figures that train, with shrunk settings
# ------------------------------------------------------------------------------------------


def test_dufm_gd_figure_plots_the_solver_and_the_prediction(tmp_path, monkeypatch, figure_files):
    from figures import sukenik2023_dufm_gd as figure
    from ufm.models import DeepUFM
    from ufm.optima import predict_dufm
    from ufm.solvers import solve

    small = {"num_classes": 2, "num_layers": 3, "per_class": 2, "lam": 0.004, "lr": 0.5, "width": 8,
             "seeds": [0, 1], "steps": 300, "checkpoints": 6}
    monkeypatch.setattr(figure, "settings", lambda quick: dict(small))
    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    optimum = predict_dufm(2, 3, 2, 0.004, 0.004)
    assert data["prediction"]["optimal_loss"] == optimum.optimal_loss
    model = DeepUFM(num_classes=2, per_class=2, widths=(8,) * 3, lam_h=0.004, lam_w=0.004)
    solution = solve(model, "gd", seed=1, lr=0.5, max_iterations=300, tolerance=0.0, history_points=0,
                     predicted=None, progress=False)
    final = [row for row in rows if row["series"] == "loss" and row["seed"] == "1" and row["iteration"] == "300"]
    assert len(final) == 1
    # GD run in segments between checkpoints ends where one uninterrupted run ends
    assert math.isclose(float(final[0]["value"]), solution.loss, rel_tol=1e-12)
    assert float(final[0]["gap"]) == float(final[0]["value"]) - optimum.optimal_loss
    values = [row for row in rows if row["series"] == "singular_value" and row["seed"] == "1"]
    for row in values:
        layer, index = int(row["layer"]), int(row["index"])
        expected = np.linalg.svd(solution.parameters.weights[layer - 1], compute_uv=False)[index - 1]
        assert math.isclose(float(row["value"]), expected, rel_tol=1e-9, abs_tol=1e-12)
        if index <= 2:
            assert float(row["predicted"]) == optimum.singular_values[layer - 1][index - 1]


def test_lowrank_gd_figure_plots_the_solver_and_the_references(tmp_path, monkeypatch, figure_files):
    from figures import sukenik2024_lowrank_gd as figure
    from ufm.metrics import numerical_rank
    from ufm.models import DeepUFM
    from ufm.optima import predict_dufm, predict_srg
    from ufm.solvers import solve

    small = {"num_classes": 10, "num_layers": 4, "per_class": 1, "lam": 0.004, "width": 12, "lr": 0.5,
             "rank_rtol": 1e-2, "srg_vertices": 5, "seeds": [0, 1], "steps": 200, "checkpoints": 5}
    monkeypatch.setattr(figure, "settings", lambda quick: dict(small))
    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    references = data["references"]
    assert references["dnc_loss"] == predict_dufm(10, 4, 1, 0.004, 0.004).optimal_loss
    assert references["srg_loss_basic"] == predict_srg(5, 4, 1, 0.004, 0.004, shift=-1.0).optimal_loss
    assert references["srg_loss_improved"] == predict_srg(5, 4, 1, 0.004, 0.004, shift=None).optimal_loss
    model = DeepUFM(num_classes=10, per_class=1, widths=(12,) * 4, lam_h=0.004, lam_w=0.004)
    solution = solve(model, "gd", seed=0, lr=0.5, max_iterations=200, tolerance=0.0, history_points=0,
                     predicted=None, progress=False)
    last = [row for row in rows if row["series"] == "trajectory" and row["seed"] == "0"][-1]
    assert int(last["iteration"]) == 200
    assert math.isclose(float(last["loss"]), solution.loss, rel_tol=1e-12)
    ranks = {int(row["layer"]): int(row["rank"]) for row in rows
             if row["series"] == "final_rank" and row["seed"] == "0" and row["matrix"] == "W"}
    assert ranks == {
        layer: numerical_rank(weight, 1e-2) for layer, weight in enumerate(solution.parameters.weights, start=1)
    }


def test_jacot_figure_plots_the_training_history(tmp_path, monkeypatch, figure_files):
    pytest.importorskip("mlxtend")
    from figures import jacot2025_fig1 as figure
    from fullnet.training import train
    from ufm.dynamics import balancedness_contraction, balancedness_envelope, step_size_schedule
    from ufm.metrics import class_statistics

    small = {"per_class": 4, "nonlinear_widths": [16, 12], "linear_depth": 3, "linear_width": 12,
             "learning_rate": 0.05, "weight_decay": 0.01, "epochs": 12, "log_points": 4, "seeds": [0, 1],
             "threads": 1, "device": "cpu"}
    monkeypatch.setattr(figure, "settings", lambda quick: dict(small))
    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    probe = figure.TrainingProbe(figure.linear_pairs(small))
    assert probe.pairs == [3, 4]
    result = train(figure.run_config(small, 0), output_dir=tmp_path / "again", progress=False, on_step=probe)
    final = result.final
    assert data["runs"][0]["final_objective"] == final.terms.objective
    for layer in final.layers:
        for metric in ("NC1.tr_unc", "NC2.kappa", "BAL.op"):
            value = layer.metrics.get(metric)
            if value is None:
                continue
            match = [row for row in rows if row["seed"] == "0" and row["epoch"] == str(final.epoch)
                     and row["layer"] == str(layer.layer) and row["metric"] == metric]
            assert len(match) == 1
            if math.isfinite(value):
                assert float(match[0]["value"]) == value
            else:  # NC2.kappa is +inf while the class means are rank deficient; files hold ""
                assert match[0]["value"] == ""
    # the J12 predictions: brackets of the same run, envelope and contraction of ufm.dynamics
    steps = step_size_schedule(0.05, 12)
    for pair in probe.pairs:
        entry = data["envelopes"]["0"][str(pair)]
        assert entry["bracket_norms"] == probe.brackets[pair]
        initial = result.history[0].layers[pair - 1].metrics["BAL.op"]
        assert entry["initial"] == initial
        envelope = balancedness_envelope(initial, steps, 0.01, probe.brackets[pair])
        contraction = initial * balancedness_contraction(steps, 0.01)
        for metric, expected in (("J12.envelope", envelope), ("J12.contraction", contraction)):
            match = [row for row in rows if row["seed"] == "0" and row["layer"] == str(pair) and row["metric"] == metric]
            assert [int(row["epoch"]) for row in match] == [snapshot.epoch for snapshot in result.history]
            assert [float(row["value"]) for row in match] == [expected[int(row["epoch"])] for row in match]
        assert entry["largest_measured_over_envelope"] <= 1.0 + 1e-5
    # the class-mean Gram matrices of the features entering the last three layers
    features, labels, _ = figure.final_features(probe.trainer)
    columns = [features.inputs] + list(features.post_activations)
    grams = data["class_mean_grams"]["layers"]
    assert sorted(grams, key=int) == ["2", "3", "4"]
    for key, gram in grams.items():
        means = class_statistics(columns[int(key)].numpy(), labels).means
        expected = means.T @ means
        assert np.allclose(gram, expected / np.max(np.abs(expected)), rtol=1e-12, atol=1e-15)


def test_jacot_linear_head_figure_plots_the_library_values(tmp_path, monkeypatch, figure_files):
    pytest.importorskip("mlxtend")
    from figures import jacot2025_fig2 as figure
    from figures.jacot2025_fig1 import TrainingProbe, final_features, run_config
    from fullnet.training import train
    from ufm.conventions import to_paper_convention
    from ufm.dynamics import linear_head_conditioning

    small = {"paper_learning_rate": 0.001, "log_points": 0, "per_class": 3, "nonlinear_widths": [16, 12],
             "linear_depths": [1, 3], "linear_width": 12, "learning_rate": 0.05, "paper_weight_decays": [0.004],
             "epochs": 30, "seeds": [0], "threads": 1, "device": "cpu"}
    monkeypatch.setattr(figure, "settings", lambda quick: dict(small))
    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    lam = to_paper_convention(0.004, 0.001, reduction="mean", batch_size=30, num_classes=10).lam
    assert data["hyperparameters"][0]["lam"] == lam == 0.02
    assert [int(row["linear_depth"]) for row in rows] == [1, 3]
    one = rows[0]
    assert one["last_input_nc2"] == one["first_linear_input_nc2"] and one["j11_prediction"] == ""
    probe = TrainingProbe()
    result = train(run_config(dict(small, linear_depth=3, weight_decay=lam), 0, figure.NAME),
                   output_dir=tmp_path / "again", progress=False, on_step=probe)
    row, final = rows[1], result.final
    assert float(row["objective"]) == final.terms.objective
    assert float(row["last_input_nc1"]) == final.layers[4].metrics["NC1.tr_unc"]  # Z_4 enters W_5
    assert float(row["first_linear_input_nc1"]) == final.layers[2].metrics["NC1.tr_unc"]  # Z_2 enters W_3
    nc2 = final.layers[4].metrics["NC2.kappa"]
    assert row["last_input_nc2"] == ("" if not math.isfinite(nc2) else repr(nc2))
    features, _, targets = final_features(probe.trainer)
    weights = [weight.detach() for weight in probe.trainer.model.weight_matrices()]
    head = linear_head_conditioning(weights[2:], features.post_activations[1], targets)
    assert float(row["kappa_last_layer"]) == head.last_layer
    assert float(row["kappa_head_product"]) == head.product
    assert float(row["j5_prediction"]) == head.chain_prediction
    assert float(row["j11_prediction"]) == head.residual_prediction
    assert float(row["head_balancedness"]) == max(final.layers[2].metrics["BAL.rel_op"],
                                                  final.layers[3].metrics["BAL.rel_op"])


def test_jacot2025_fig3_plots_the_library_values(tmp_path, monkeypatch, figure_files):
    pytest.importorskip("mlxtend")
    from figures import jacot2025_fig3 as figure
    from figures.jacot2025_fig1 import run_config
    from fullnet.training import train
    from ufm.conventions import to_paper_convention

    small = {"paper_weight_decay_times_depth": 0.016, "linear_depth": 2, "log_points": 0, "per_class": 3,
             "first_width": 16, "width": 12, "linear_width": 12, "nonlinear_depths": [2, 3],
             "paper_learning_rates": [0.001], "learning_rates": [0.05], "epochs": 30, "seeds": [0],
             "threads": 1, "device": "cpu"}
    monkeypatch.setattr(figure, "settings", lambda quick: dict(small))
    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME)
    net = data["networks"][1]
    assert net["nonlinear_widths"] == [16, 12, 12] and net["depth"] == 5
    converted = to_paper_convention(0.016 / 5, 0.001, reduction="mean", batch_size=30, num_classes=10)
    assert net["lam"] == converted.lam and net["converted_step_sizes"] == [converted.step_size]
    assert "ufm.conventions" in data["conversion"]
    run = dict(small, nonlinear_widths=[16, 12, 12], learning_rate=0.05, weight_decay=converted.lam)
    result = train(run_config(run, 0, figure.NAME), output_dir=tmp_path / "again", progress=False)
    for stage, snapshot in (("initial", result.history[0]), ("final", result.final)):
        chosen = [row for row in rows if row["nonlinear_depth"] == "3" and row["stage"] == stage]
        assert [int(row["layer"]) for row in chosen] == [1, 2, 3]
        for row in chosen:
            layer = int(row["layer"])
            assert float(row["balancedness"]) == snapshot.layers[layer - 1].metrics["BAL.rel_op"]
            assert float(row["negativity"]) == snapshot.layers[layer].pre_metrics["NEG"]
            assert float(row["objective"]) == snapshot.terms.objective


@pytest.mark.slow
def test_jacot2025_fig3_quick_shows_the_depth_trend():
    """(A)'s claim on the quick settings (≈ 60 s): deeper non-linear parts are more balanced and
    less non-linear, for the mean and the minimum over the ReLU layers."""
    pytest.importorskip("mlxtend")
    from scipy.stats import spearmanr

    from figures import jacot2025_fig3 as figure

    data = figure.compute(quick=True)
    rows, depths = data["rows"], data["settings"]["nonlinear_depths"]
    rate = data["settings"]["learning_rates"][0]
    assert len(depths) >= 4
    for key in ("balancedness", "negativity"):
        final = np.array([figure.summary(rows, rate, depth, "final", key) for depth in depths])
        initial = np.array([figure.summary(rows, rate, depth, "initial", key) for depth in depths])
        minima, means = final[:, 0], final[:, 2]
        # the end state is a trained one, not the initialization (where the mean balancedness
        # already falls with depth, the first pair's ≈ 1.4 being diluted by more layers)
        assert np.all(means < 0.5 * initial[:, 2]), (key, means, initial[:, 2])
        # the mean falls with depth: at most one swap of neighbouring depths (seed noise at two
        # seeds ≈ 0.01–0.02), and a clear drop from the shallowest to the deepest
        assert spearmanr(depths, means).statistic <= -0.8, (key, means)
        assert means[-1] < 0.8 * means[0], (key, means)
        # the minimum falls from the shallowest depth onto a floor set by the training length
        # (≈ 0.04 balancedness, ≈ 0.02 negativity) on which neighbouring depths may swap, so no
        # rank test among the deeper ones: each lies well below the shallowest
        assert np.all(minima[1:] < 0.6 * minima[0]), (key, minima)
