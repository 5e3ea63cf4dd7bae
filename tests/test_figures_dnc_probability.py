"""Test of the E-C6 figure (probability of reaching DNC against width) with shrunk settings: its
data files hold what ``ufm.solvers.solve`` and ``ufm.reports.is_deep_neural_collapse`` give."""

from __future__ import annotations

import math

import pytest

from figures import registry



def test_figure_is_registered():
    info = registry.figure_info("sukenik2024_dnc_probability")
    assert info.experiment == "E-C6"
    assert callable(registry.load_make(info.name))


def test_binomial_band():
    from figures.sukenik2024_dnc_probability import binomial_band

    assert binomial_band(0, 5) == (0.0, 0.0) and binomial_band(5, 5) == (1.0, 0.0)
    fraction, error = binomial_band(3, 6)
    assert fraction == 0.5 and math.isclose(error, math.sqrt(0.25 / 6))
    with pytest.raises(ValueError):
        binomial_band(0, 0)


def test_dnc_probability_figure_plots_the_library_verdicts(tmp_path, monkeypatch, figure_files):
    from figures import sukenik2024_dnc_probability as figure
    from ufm.models import DeepUFM
    from ufm.optima import predict_dufm
    from ufm.reports import is_deep_neural_collapse
    from ufm.solvers import solve

    small = dict(figure.settings(True), widths=[5, 8], seeds=[0, 1], steps=400)
    monkeypatch.setattr(figure, "settings", lambda quick: dict(small))
    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME,
                              ordered=True)
    assert data["experiment"] == "E-C6" and len(rows) == 4
    k, depth, lam = small["num_classes"], small["num_layers"], small["lam"]
    reference = predict_dufm(k, depth, 1, lam, lam).optimal_loss
    assert data["dnc_loss"] == reference
    for width in small["widths"]:
        model = DeepUFM(num_classes=k, per_class=1, widths=(width,) * depth, lam_h=lam, lam_w=lam)
        verdicts = []
        for seed in small["seeds"]:
            solution = solve(model, "gd", seed=seed, lr=0.5, tolerance=1e-10, max_iterations=400,
                             history_points=0, predicted=None, progress=False)
            verdict = is_deep_neural_collapse(model, solution.parameters, rank_rtol=figure.RANK_RTOL,
                                              orth_tolerance=figure.ORTH_TOLERANCE,
                                              loss_tolerance=figure.LOSS_TOLERANCE)
            verdicts.append(verdict)
            row = next(row for row in rows if row["width"] == str(width) and row["seed"] == str(seed))
            assert float(row["loss"]) == solution.loss and float(row["dnc_loss"]) == reference
            assert float(row["relative_gap"]) == verdict.relative_gap
            for layer, rank, orth in zip(verdict.layers, verdict.ranks, verdict.orth):
                assert int(row[f"rank_{layer}"]) == rank and float(row[f"orth_{layer}"]) == orth
            for key in ("rank_ok", "orth_ok", "loss_ok", "is_dnc"):
                assert row[key] == str(getattr(verdict, key))
        entry = next(entry for entry in data["summary"] if entry["width"] == width)
        count = sum(verdict.is_dnc for verdict in verdicts)
        assert entry["dnc_runs"] == count and entry["runs"] == 2
        assert (entry["fraction"], entry["standard_error"]) == figure.binomial_band(count, 2)
