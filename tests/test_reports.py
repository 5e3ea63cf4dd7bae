"""Tests of ``ufm.reports.is_deep_neural_collapse`` (IS_DNC, docs/theory.md §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ufm.models import DeepLinearUFM, DeepUFM, Parameters, UFM
from ufm.optima import dnc_construct, predict_dufm, predict_srg, srg_construct
from ufm.reports import DNCVerdict, is_deep_neural_collapse

LAM = 0.004
TOLERANCES = {"rank_rtol": 1e-2, "orth_tolerance": 0.2, "loss_tolerance": 5e-3}


def dufm(k: int, depth: int, width: int, n: int = 1) -> DeepUFM:
    return DeepUFM(num_classes=k, per_class=n, widths=(width,) * depth, lam_h=LAM, lam_w=LAM)


@pytest.mark.parametrize("k, depth, n, width, beta", [(10, 4, 1, 10, 0.0), (10, 4, 1, 14, 0.0),
                                                      (4, 3, 2, 6, 0.2), (3, 2, 1, 3, 0.0)])
def test_dnc_construction_is_dnc(k, depth, n, width, beta):
    model = dufm(k, depth, width, n)
    point = dnc_construct(k, depth, n, LAM, LAM, beta=beta, widths=model.widths)
    verdict = is_deep_neural_collapse(model, point, **TOLERANCES)
    assert isinstance(verdict, DNCVerdict)
    assert verdict.is_dnc and bool(verdict)
    assert verdict.layers == tuple(range(2, depth + 1))
    assert verdict.ranks == (k,) * (depth - 1)
    assert max(verdict.orth) < 1e-12
    assert verdict.dnc_loss == predict_dufm(k, depth, n, LAM, LAM).optimal_loss
    assert abs(verdict.relative_gap) < 1e-12
    assert verdict.rank_ok and verdict.orth_ok and verdict.loss_ok


def test_dnc_construction_of_the_deep_linear_model_is_dnc():
    model = DeepLinearUFM(num_classes=4, per_class=1, widths=(5, 5, 5), lam_h=LAM, lam_w=LAM)
    point = dnc_construct(4, 3, 1, LAM, LAM, widths=model.widths)
    assert is_deep_neural_collapse(model, point, **TOLERANCES).is_dnc


def test_srg_construction_is_not_dnc():
    # r = 5 vertices: K = 10 classes, rank 5 at layers 1..L−1 and value L_SRG < L_DNC (§4.5).
    model = dufm(10, 4, 10)
    point = srg_construct(5, 4, 1, LAM, LAM, widths=model.widths)
    verdict = is_deep_neural_collapse(model, point, **TOLERANCES)
    assert not verdict.is_dnc and not verdict
    assert verdict.ranks[:2] == (5, 5) and verdict.ranks[2] == 10
    assert not verdict.rank_ok and not verdict.orth_ok and not verdict.loss_ok
    assert math.isclose(verdict.loss, predict_srg(5, 4, 1, LAM, LAM).optimal_loss, rel_tol=1e-10)
    assert verdict.relative_gap < -0.05  # below L_DNC (docs/theory.md §4.5)
    assert verdict.orth[2] < 1e-12  # M_L = xS_t has rank K; layers 2, 3 fail NC2.orth


def test_noisy_dnc_point_beyond_tolerance_is_not_dnc():
    model = dufm(6, 4, 8)
    point = dnc_construct(6, 4, 1, LAM, LAM, widths=model.widths)
    rng = np.random.default_rng(0)
    scale = np.linalg.norm(point.features) / math.sqrt(point.features.size)

    def noisy(size: float) -> Parameters:
        return Parameters(features=point.features + size * scale * rng.standard_normal(point.features.shape),
                          weights=point.weights)

    slightly = is_deep_neural_collapse(model, noisy(1e-4), **TOLERANCES)
    assert slightly.is_dnc and max(slightly.orth) > 0  # within tolerance
    far = is_deep_neural_collapse(model, noisy(1.0), **TOLERANCES)
    assert not far.is_dnc
    assert not far.loss_ok and abs(far.relative_gap) > TOLERANCES["loss_tolerance"]
    assert not far.orth_ok and max(far.orth) > TOLERANCES["orth_tolerance"]
    # each criterion on its own: a tight orth tolerance fails a point the loose one accepts
    mild = noisy(0.02)
    loose = is_deep_neural_collapse(model, mild, **{**TOLERANCES, "loss_tolerance": 1.0})
    tight = is_deep_neural_collapse(model, mild, **{**TOLERANCES, "loss_tolerance": 1.0,
                                                    "orth_tolerance": min(loose.orth) / 2})
    assert loose.is_dnc and not tight.is_dnc and not tight.orth_ok and tight.loss_ok and tight.rank_ok


def test_scaled_dnc_point_fails_only_the_loss_criterion():
    model = dufm(4, 3, 4)
    point = dnc_construct(4, 3, 1, LAM, LAM)
    scaled = Parameters(features=1.2 * point.features, weights=point.weights)
    verdict = is_deep_neural_collapse(model, scaled, **TOLERANCES)
    assert verdict.rank_ok and verdict.orth_ok and not verdict.loss_ok and not verdict.is_dnc


def test_zero_point_is_not_dnc_and_reports_nan():
    model = dufm(4, 3, 5)
    zero = Parameters(features=np.zeros((5, 4)), weights=tuple(np.zeros(shape) for shape in
                                                                 ((5, 5), (5, 5), (4, 5))))
    verdict = is_deep_neural_collapse(model, zero, **TOLERANCES)
    assert not verdict.is_dnc and verdict.ranks == (0, 0) and all(math.isnan(v) for v in verdict.orth)
    assert verdict.to_dict()["is_dnc"] is False


def test_arguments_are_checked():
    model = dufm(4, 3, 4)
    point = dnc_construct(4, 3, 1, LAM, LAM)
    with pytest.raises(ValueError, match="orth_tolerance"):
        is_deep_neural_collapse(model, point, rank_rtol=1e-2, orth_tolerance=-1.0, loss_tolerance=1e-3)
    with pytest.raises(TypeError, match="DeepUFM"):
        is_deep_neural_collapse(UFM(num_classes=4, per_class=1, width=4, lam_w=LAM, lam_h=LAM), point)
