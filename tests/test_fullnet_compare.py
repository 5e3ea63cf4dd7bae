"""fullnet.compare: the ufm models matching a trained network, their predictions, the table, the
``python -m fullnet compare`` command and its errors."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from fullnet import compare as fc
from fullnet import training as ft
from fullnet.architectures import PyramidalMLP
from fullnet.cli import main
from fullnet.config import RunConfig
from fullnet.data import gaussian_mixture, prepare_data
from fullnet.objective import Regularization
from ufm.models import LinearHead, Parameters
from ufm.optima import predict_deep_linear, predict_dufm
from ufm.solvers import solve


def _gaussian(classes=3, per_class=8, dimension=6, seed=0, **options):
    raw = gaussian_mixture(classes, per_class, dimension, margin=3.0, seed=seed)
    return prepare_data(raw, standardization="none", dtype=torch.float64, **options)


# ------------------------------------------------------------------------------------------
# linear algebra of the predictions
# ------------------------------------------------------------------------------------------


def test_balanced_chain_has_the_predicted_singular_values_and_class_mean_norms():
    """F2 equality case: A_j = c_jU_{j+1}S^{1/p}U_jᵀ with c_j = (Πλ)^{1/(2p)}/√λ_j; the structure
    predicted from A alone must be that of the explicit chain (identity, 1e-12)."""
    rng = np.random.default_rng(0)
    lambdas = [0.01, 0.04, 0.02]
    power, classes, width, samples = 3, 3, 5, 12
    left = np.linalg.qr(rng.normal(size=(classes, classes)))[0]
    bases = [np.linalg.qr(rng.normal(size=(width, classes)))[0] for _ in range(power - 1)]
    right = np.linalg.qr(rng.normal(size=(width, classes)))[0]
    singular = np.array([2.0, 1.0, 0.5])
    scales = fc.balanced_factor_scales(lambdas)
    assert np.prod(scales) == pytest.approx(1.0) and np.ptp(np.array(lambdas) * scales**2) < 1e-15
    frames = [right, *bases, left]
    chain = [scales[j] * frames[j + 1] @ np.diag(singular ** (1 / power)) @ frames[j].T
             for j in range(power)]
    product = chain[2] @ chain[1] @ chain[0]
    features = rng.normal(size=(width, samples))
    labels = np.repeat(np.arange(classes), samples // classes)
    values, layers, norms = fc.predicted_head_structure(product, features, labels, classes, lambdas)
    assert values == pytest.approx(list(singular), rel=1e-12)
    for weight, predicted in zip(chain, layers):
        assert np.linalg.svd(weight, compute_uv=False)[:classes] == pytest.approx(predicted, rel=1e-12)
    hidden = features
    for weight, predicted in zip(chain, norms):
        hidden = weight @ hidden
        measured = np.linalg.norm(fc.class_means(hidden, labels, classes), axis=0)
        assert measured == pytest.approx(predicted, rel=1e-12)
    targets = np.eye(classes)[:, labels]
    head = LinearHead(features=features, labels=labels, widths=(width, width, width), lam=lambdas)
    value = head.objective(Parameters(features=None, weights=tuple(chain))).total
    assert fc.schatten_head_loss(product, features, targets, lambdas) == pytest.approx(value, rel=1e-12)
    with pytest.raises(ValueError, match="lambdas"):
        fc.balanced_factor_scales([0.1, 0.0])


def test_ridge_closed_form_and_suboptimality_bound_of_a_one_layer_head():
    """L2 = 1: A* = YZᵀ(ZZᵀ + NλI)^{-1} agrees with L-BFGS; the strong-convexity bound
    ‖∇Φ‖²/(2λ) bounds Φ − Φ* at any point."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(7, 15))
    labels = np.repeat(np.arange(3), 5)
    head = LinearHead(features=features, labels=labels, widths=(7,), lam=0.05)
    product, value = fc.ridge_head(features, head.targets, 0.05)
    solution = solve(head, "lbfgs", tolerance=1e-12, predicted=None, seed=0)
    assert solution.loss == pytest.approx(value, rel=1e-12)
    assert np.allclose(solution.parameters.weights[0], product, atol=1e-9)
    point = Parameters(features=None, weights=(product + 0.1 * rng.normal(size=product.shape),))
    gap = head.objective(point).total - value
    assert 0 < gap <= fc.suboptimality_bound(head, point)


def test_comparison_rows_report_relative_errors_and_inequalities():
    row = fc.ComparisonRow("head", "x", 2.0, 2.5)
    assert row.relative_error == pytest.approx(0.25) and row.absolute_error == pytest.approx(0.5)
    assert row.holds is None
    assert fc.ComparisonRow("head", "x", 0.0, 1e-3).relative_error is None
    assert fc.ComparisonRow("head", "x", 1.0, 0.5, relation=">=").holds is False
    assert fc.ComparisonRow("head", "x", 1.0, 1.0 - 1e-14, relation=">=").holds is True
    assert fc.ComparisonRow("head", "x", 0.0, 2.0, relation="<=", bound=1.0).holds is False
    with pytest.raises(ValueError, match="relation"):
        fc.ComparisonRow("head", "x", 1.0, 1.0, relation="~")
    assert json.loads(json.dumps(fc.ComparisonRow("view", "y", float("nan"), 1.0).to_dict()))


# ------------------------------------------------------------------------------------------
# the views of a network
# ------------------------------------------------------------------------------------------


def test_compare_model_builds_the_head_and_prints_a_table():
    data = _gaussian()
    model = PyramidalMLP(6, 3, [12, 8], linear_depth=2, linear_width=5, seed=0).double()
    regularization = Regularization([1e-2] * 4)
    ft.Trainer(model, data, regularization, learning_rate=0.1, epochs=50, log_points=0,
               per_layer=False).run()
    comparison = fc.compare_model(model, data, regularization, epoch=50, certify=False)
    head = comparison.head
    assert head.widths == [8, 5] and head.lambdas == [1e-2, 1e-2] and head.num_samples == 24
    assert head.optimal_loss <= head.measured_loss + 1e-15
    assert head.schatten_loss == pytest.approx(head.optimal_loss, rel=1e-8)  # F2 at a balanced optimum
    # without the convex certificate the L-BFGS value is a reference, not a proven minimum
    assert comparison.row("Φ_head").relation == "reference"
    assert comparison.row("Φ_head(trained) − min Φ_head").holds  # the trained head's duality gap
    assert not comparison.violations()
    text = comparison.format_table()
    assert "Φ_head" in text and "J9" in text and "per-layer metrics" in text
    assert "no unconstrained-features view" in text
    payload = json.loads(comparison.to_json())
    assert payload["head"]["widths"] == [8, 5] and payload["epoch"] == 50
    assert {entry["metric"] for entry in payload["layer_rows"]} >= {"NC1.tr_unc", "BAL.op"}
    with pytest.raises(KeyError, match="no comparison row"):
        comparison.row("nothing")


def test_unconstrained_features_views_match_ufm_predictions():
    """A feature penalty on Z_f gives a deep linear UFM (identity after the view's layers) or a
    DUFM (ReLU after each but the last) with n, λ_H, λ's of the run (U0: through nλ_H); the
    measured Φ_view can never be below L_DNC where L_DNC is the global minimum."""
    data = _gaussian(classes=2, per_class=6)
    lambdas = [1e-3, 2e-3, 3e-3, 4e-3]
    relu_model = PyramidalMLP(6, 2, [10, 8, 8], linear_depth=1, seed=0).double()
    regularization = Regularization(lambdas, feature_penalty=5e-3, feature_layer=1)
    ft.Trainer(relu_model, data, regularization, learning_rate=0.05, epochs=30, log_points=0,
               per_layer=False).run()
    comparison = fc.compare_model(relu_model, data, regularization, certify=False)
    view = comparison.view
    assert (view.kind, view.num_layers, view.per_class, view.nonneg_H1) == ("dufm", 3, 6, True)
    assert view.is_global_optimum  # K = 2 (Súkeník et al. 2023)
    assert view.effective_feature_penalty == pytest.approx(6 * 5e-3)
    expected = predict_dufm(2, 3, 6, 5e-3, lambdas[1:])
    assert view.prediction["optimal_loss"] == pytest.approx(expected.optimal_loss, rel=1e-14)
    loss_row = comparison.row("Φ_view = L_DNC")
    assert loss_row.relation == ">=" and loss_row.holds
    assert comparison.row("(‖W_2‖_F²/K)^½").predicted == pytest.approx(expected.singular_values[0][0])

    linear_model = PyramidalMLP(6, 2, [10, 8], linear_depth=2, linear_width=8, seed=0).double()
    on_last = Regularization(lambdas, feature_penalty=5e-3, feature_layer=2)
    linear_view = fc.compare_model(linear_model, data, on_last, certify=False)
    assert linear_view.head is not None  # a penalty on Z_{L1} is constant for the head
    assert linear_view.view.kind == "deep_linear" and linear_view.view.num_layers == 2
    assert linear_view.view.prediction["optimal_loss"] == pytest.approx(
        predict_deep_linear(2, 2, 6, 5e-3, lambdas[2:]).optimal_loss, rel=1e-14)
    assert linear_view.row("Φ_view = L_DNC").holds

    mixed = Regularization(lambdas, feature_penalty=5e-3, feature_layer=1)
    mixed_view = fc.compare_model(linear_model, data, mixed, certify=False)
    assert mixed_view.view.kind == "relu_then_linear"
    assert mixed_view.row("Φ_view = L_DNC").relation == "reference"

    smooth = PyramidalMLP(6, 2, [10, 8], linear_depth=2, activation="smooth_leaky", seed=0).double()
    smooth_view = fc.compare_model(smooth, data, mixed, certify=False)
    assert smooth_view.view is None and any("smooth_leaky" in note for note in smooth_view.notes)


def test_bad_inputs_raise_clear_errors(tmp_path):
    data = _gaussian()
    model = PyramidalMLP(6, 3, [12, 8], linear_depth=2, seed=0).double()
    regularization = Regularization([1e-2] * 4)
    with pytest.raises(TypeError, match="TensorData"):
        fc.compare_model(model, {"inputs": data.inputs}, regularization)
    with pytest.raises(TypeError, match="Regularization"):
        fc.compare_model(model, data, [1e-2] * 4)
    with pytest.raises(ValueError, match="optimizer"):
        fc.compare_model(model, data, regularization, optimizer="adam")
    signs = _gaussian(targets="plus_minus_one")
    with pytest.raises(ValueError, match="data.targets must be one-hot"):
        fc.compare_model(model, signs, regularization)
    biased = PyramidalMLP(6, 3, [12, 8], linear_depth=2, bias=True, seed=0).double()
    result = fc.compare_model(biased, data, regularization, certify=False)
    assert result.head is None and any("biases" in note for note in result.notes)
    with pytest.raises(fc.RunDirectoryError, match="does not exist"):
        fc.compare_run(tmp_path / "missing")
    with pytest.raises(fc.RunDirectoryError, match="no config.json"):
        fc.compare_run(tmp_path)
    (tmp_path / "config.json").write_text(RunConfig().to_json())
    with pytest.raises(fc.RunDirectoryError, match="no checkpoint.pt"):
        fc.compare_run(tmp_path)


# ------------------------------------------------------------------------------------------
# run directories and the command line
# ------------------------------------------------------------------------------------------


def test_compare_command_on_a_trained_run_prints_and_writes_compare_json(tmp_path, capsys):
    config = RunConfig.from_dict({
        "name": "tiny",
        "data": {"name": "gaussian", "per_class": 6, "gaussian_dimension": 8},
        "model": {"nonlinear_widths": [16, 8], "linear_depth": 2, "linear_width": 4},
        "training": {"epochs": 40, "learning_rate": 0.1, "weight_decay": 1e-2, "device": "cpu",
                     "dtype": "float64"},
        "observe": {"log_points": 0, "per_layer": False},
        "output": {"directory": str(tmp_path), "progress": False},
    })
    ft.train(config)
    run = tmp_path / "tiny"
    assert main(["compare", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "Φ_head" in printed and "compare.json" in printed
    saved = json.loads((run / "compare.json").read_text())
    assert saved["epoch"] == 40 and saved["network"]["run_name"] == "tiny"
    assert saved["head"]["certificate"]["duality_gap"] < 1e-6  # L2 = 2: the convex certificate
    assert [name for name in sorted(p.name for p in run.iterdir()) if name.startswith(".")] == []
    assert main(["compare", str(run), "--json", "--no-write", "--no-certificate"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["head"]["certificate"] is None
    direct = fc.compare_run(run, certify=False)
    assert direct.head.measured_loss == pytest.approx(payload["head"]["measured_loss"], rel=1e-15)
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
