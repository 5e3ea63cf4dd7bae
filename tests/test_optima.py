"""Tests of ufm.optima: closed forms against the reference values of docs/theory.md §4.6, exact
construction identities, thresholds and the low-rank SRG points of §4.5.

Reference values are written as docs/theory.md prints them (strings), and each tolerance is half a
unit in the last printed digit (the value was rounded to that digit).
"""

import itertools
import json
import math
from decimal import Decimal

import numpy as np
import pytest
import sympy

from ufm import optima as O
from ufm.models import DeepLinearUFM, DeepUFM, LinearHead, Parameters, UFM

EPS = np.finfo(np.float64).eps


def assert_printed(value: float, printed: str) -> None:
    """|value − printed| ≤ ½·10^(−decimals): ``printed`` is ``value`` rounded as docs/theory.md shows it.

    A tiny float64 allowance (8 ulps of the value) covers values that sit on a rounding boundary.
    """
    exponent = Decimal(printed).as_tuple().exponent
    tolerance = 0.5 * 10.0**exponent + 8 * EPS * abs(value)
    assert abs(value - float(printed)) <= tolerance, (value, printed)


# ------------------------------------------------------------------------------------------
# §4.6 reference values
# ------------------------------------------------------------------------------------------

DNC_TABLE = [  # K, L, n, λ (all blocks), q*, L_DNC
    (2, 2, 1, 0.004, "0.991978", "0.01196791"),
    (2, 3, 1, 0.004, "0.991968", "0.01596787"),
    (2, 4, 5, 0.004, "0.988888", "0.02753327"),
    (2, 5, 50, 0.005, "0.980553", "0.05739488"),
    (3, 3, 5, 0.004, "0.981891", "0.03572590"),
    (10, 4, 1, 0.004, "0.958982", "0.09917987"),
    (10, 4, 5, 0.004, "0.942826", "0.13639618"),
]


@pytest.mark.parametrize("K, L, n, lam, q_star, loss", DNC_TABLE)
def test_dnc_reference_table(K, L, n, lam, q_star, loss):
    prediction = O.predict_dufm(K, L, n, lam, lam)
    assert_printed(prediction.q_star, q_star)
    assert_printed(prediction.optimal_loss, loss)
    assert not prediction.is_zero
    linear = O.predict_deep_linear(K, L, n, lam, lam)
    assert linear.optimal_loss == prediction.optimal_loss and linear.model == "deep_linear"


@pytest.mark.parametrize(
    "K, L, n, lam, loss",
    [
        (2, 3, 5, 0.002, "0.0119448479"),
        (2, 2, 5, 0.01, "0.0507076242"),
        (2, 3, 3, 0.02, "0.1038617439"),
        # GD observations of §4.6 quote these L_DNC values:
        (10, 3, 1, 0.004, "0.079183"),
        (15, 3, 1, 0.004, "0.118142"),
        (21, 3, 1, 0.004, "0.164310"),
        (4, 4, 1, 0.004, "0.039871"),
        (10, 4, 1, 0.004, "0.099180"),
    ],
)
def test_more_dnc_reference_values(K, L, n, lam, loss):
    assert_printed(O.predict_dufm(K, L, n, lam, lam).optimal_loss, loss)


def test_threshold_reference_values():
    """K = 2, L = 3, n = 3, equal λ: λ_crit = 0.1034005399 (P_crit = 1/2916); just below it
    q* ≈ 2/3 = (L−1)/L and L_DNC ≈ ½⁻."""
    critical = O.dnc_critical_lambda(2, 3, 3)
    assert_printed(critical, "0.1034005399")
    assert O.dnc_threshold_exact(2, 3) == sympy.Rational(1, 2916)
    below = O.predict_dufm(2, 3, 3, critical * (1 - 1e-9), critical * (1 - 1e-9))
    assert not below.is_zero
    # q* − 2/3 = O(ΔP/P) = O(1e-9) near the threshold (a simple root moving smoothly).
    assert abs(below.q_star - 2 / 3) < 1e-8
    assert 0.5 - 1e-8 < below.optimal_loss < 0.5
    above = O.predict_dufm(2, 3, 3, critical * (1 + 1e-9), critical * (1 + 1e-9))
    assert above.is_zero and above.q_star == 0.0 and above.optimal_loss == 0.5


@pytest.mark.parametrize(
    "K, n, lam, q_star, value",
    [(3, 4, 0.01, "0.94", "0.0582"), (5, 2, 0.02, None, "0.131421356")],
)
def test_one_layer_dufm_is_the_ufm(K, n, lam, q_star, value):
    prediction = O.predict_dufm(K, 1, n, lam, lam)
    if q_star is not None:
        assert_printed(prediction.q_star, q_star)
    assert_printed(prediction.optimal_loss, value)
    ufm = O.predict_ufm(K, n, lam, lam)
    # Same scalar problem solved in closed form twice: equal to rounding (4 ulps).
    assert abs(ufm.optimal_loss - prediction.optimal_loss) <= 4 * EPS * prediction.optimal_loss


def test_unequal_lambda_reference_values():
    """K = 2, L = 4, n = 5, λ_H = 0.003, λ_W = (0.002, 0.004, 0.001, 0.003)."""
    prediction = O.predict_dufm(2, 4, 5, 0.003, (0.002, 0.004, 0.001, 0.003))
    assert_printed(prediction.q_star, "0.993484")
    assert_printed(prediction.optimal_loss, "0.0162056")
    for values, printed in zip(prediction.singular_values, ("1.27218", "0.89956", "1.79913", "1.03873")):
        assert len(values) == 2
        for value in values:
            assert_printed(value, printed)
    assert_printed(prediction.class_mean_norms[0], "0.46453")
    assert len(prediction.balancedness) == 5
    for entry in prediction.balancedness:
        assert_printed(entry, "0.0064737")


@pytest.mark.parametrize(
    "K, n, d, lam_w, lam_h, no_bias, with_bias",
    [
        (3, 4, 5, 0.01, 0.02, "0.0812528137", "0.0541685425"),
        (4, 3, 6, 0.005, 0.01, "0.0477897949", "0.0358423461"),
        (5, 2, 8, 0.02, 0.02, "0.1314213562", "0.1051370850"),
    ],
)
def test_ufm_reference_values_and_constructions(K, n, d, lam_w, lam_h, no_bias, with_bias):
    assert_printed(O.ufm_optimal_value(K, n, lam_w, lam_h), no_bias)
    assert_printed(O.ufm_optimal_value(K, n, lam_w, lam_h, bias=True), with_bias)
    for bias, printed in ((False, no_bias), (True, with_bias)):
        prediction = O.predict_ufm(K, n, lam_w, lam_h, bias=bias)
        assert_printed(prediction.optimal_loss, printed)
        model = UFM(K, n, d, lam_w, lam_h, bias=bias)
        point = O.ufm_construct(K, n, d, lam_w, lam_h, bias=bias)
        # Construction identity: a few dozen float64 operations, 1e-12 relative (docs/theory.md §5).
        total = model.objective(point).total
        assert abs(total - prediction.optimal_loss) <= 1e-12 * prediction.optimal_loss
        assert model.gradient(point).norm() <= 1e-12


# ------------------------------------------------------------------------------------------
# UFM structure (§4.1, U1, U2)
# ------------------------------------------------------------------------------------------


def test_ufm_optimum_structure_without_bias():
    K, n, d, lam_w, lam_h = 3, 4, 5, 0.01, 0.02
    q = O.ufm_q_star(K, n, lam_w, lam_h)
    assert O.ufm_rho(K, n, lam_w, lam_h) == pytest.approx(3 * math.sqrt(4 * 0.01 * 0.02), rel=1e-15)
    point = O.ufm_construct(K, n, d, lam_w, lam_h)
    w, h = point.weights[0], point.features
    model = UFM(K, n, d, lam_w, lam_h)
    np.testing.assert_allclose(w @ h, q * model.targets, rtol=0, atol=1e-15)
    means = h[:, ::n]
    np.testing.assert_allclose(means.T @ means, q * math.sqrt(lam_w / (n * lam_h)) * np.eye(K), atol=1e-15)
    np.testing.assert_allclose(w, math.sqrt(n * lam_h / lam_w) * means.T, atol=1e-15)
    np.testing.assert_allclose(lam_w * w.T @ w, lam_h * h @ h.T, atol=1e-15)  # λ_WWᵀW = λ_HHHᵀ
    prediction = O.predict_ufm(K, n, lam_w, lam_h)
    np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False)[:K], prediction.singular_values[0], rtol=1e-13)
    np.testing.assert_allclose(np.linalg.norm(means, axis=0), prediction.class_mean_norms[0], rtol=1e-14)
    assert prediction.threshold == O.ufm_threshold(K) == 1 / 9


def test_ufm_optimum_structure_with_bias():
    """b* = 1_K/K, μ_G = 0, M a simplex ETF, output q*Y + ((1 − q*)/K)J."""
    K, n, d, lam_w, lam_h = 4, 3, 3, 0.005, 0.01  # d = K − 1 suffices with a bias
    q = O.ufm_q_star(K, n, lam_w, lam_h)
    point = O.ufm_construct(K, n, d, lam_w, lam_h, bias=True)
    model = UFM(K, n, d, lam_w, lam_h, bias=True)
    np.testing.assert_array_equal(point.bias, np.full(K, 0.25))
    output = model.forward(point).output
    np.testing.assert_allclose(output, q * model.targets + (1 - q) / K, atol=1e-15)
    means = point.features[:, ::n]
    np.testing.assert_allclose(means.sum(axis=1), 0.0, atol=1e-15)
    gram = means.T @ means
    centring = np.eye(K) - 1 / K
    np.testing.assert_allclose(gram / np.linalg.norm(gram), centring / math.sqrt(K - 1), atol=1e-15)
    prediction = O.predict_ufm(K, n, lam_w, lam_h, bias=True)
    assert prediction.model == "ufm_bias"
    singular = np.linalg.svd(point.weights[0], compute_uv=False)
    np.testing.assert_allclose(singular, prediction.singular_values[0], rtol=1e-13)
    np.testing.assert_allclose(np.linalg.norm(means, axis=0), prediction.class_mean_norms[0], rtol=1e-14)
    parts = model.objective(point)
    np.testing.assert_allclose(2 * np.array(parts.penalties[:2]), prediction.balancedness, rtol=1e-13)


def test_ufm_threshold_and_zero_solution():
    K, n = 3, 2
    critical = math.sqrt(O.ufm_threshold(K) / n)  # λ_W = λ_H = λ with nλ² = 1/K²
    assert O.ufm_q_star(K, n, critical * 1.001, critical) == 0.0
    assert O.ufm_optimal_value(K, n, critical * 1.001, critical) == 0.5
    assert O.ufm_optimal_value(K, n, critical * 1.001, critical, bias=True) == pytest.approx(1 / 3)
    point = O.ufm_construct(K, n, K, critical * 1.001, critical, bias=True)
    model = UFM(K, n, K, critical * 1.001, critical, bias=True)
    assert not point.features.any()
    assert model.objective(point).total == pytest.approx((K - 1) / (2 * K), rel=1e-15)
    assert O.ufm_q_star(K, n, critical * 0.999, critical) > 0


# ------------------------------------------------------------------------------------------
# Scalar problem, stationarity, threshold (§4.3, D2)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("K, L, n, lam_h, lam_w", [
    (2, 2, 1, 0.004, 0.004),
    (3, 3, 5, 0.004, (0.002, 0.01, 0.003)),
    (10, 4, 1, 0.004, 0.004),
    (2, 6, 3, 0.02, 0.01),
])
def test_q_star_is_the_global_minimizer_and_a_root(K, L, n, lam_h, lam_w):
    prediction = O.predict_dufm(K, L, n, lam_h, lam_w)
    C = prediction.constant
    assert C == pytest.approx(O.dufm_constant(n, lam_h, lam_w, L), rel=1e-15)
    q = prediction.q_star
    assert (L - 1) / L < q < 1  # below the threshold the root lies in ((L−1)/L, 1)
    # Root to full float64 precision: the stationarity function changes sign within 16 ulps
    # (its slope is O(1), its rounding O(eps)).
    assert O.dnc_stationarity(q * (1 - 16 * EPS), K, L, C) > 0 > O.dnc_stationarity(q * (1 + 16 * EPS), K, L, C)
    grid = np.linspace(0.0, 1.0, 100001)
    assert prediction.optimal_loss <= O.dnc_scalar_objective(grid, K, L, C).min()
    assert prediction.optimal_loss == O.dnc_scalar_objective(q, K, L, C)
    solved = O.solve_dnc_scalar(K, L, C)
    assert solved.q_star == q and solved.value == prediction.optimal_loss


def _lambdas_with_product(target, L, n, rng):
    """λ_1..λ_L log-uniform in [1e-3, 1e-1] and λ_H chosen so that nλ_HΠλ_l = target."""
    lams = 10 ** rng.uniform(-3, -1, size=L)
    lam_h = target / (n * np.prod(lams))
    return float(lam_h), [float(v) for v in lams]


@pytest.mark.parametrize("K, L", [(2, 2), (2, 3), (3, 4), (5, 3), (4, 6)])
def test_threshold_behaviour(K, L):
    """D2: nonzero optimum iff P < P_crit; q* jumps from 0 to (L−1)/L there.

    P = P_crit(1 ± 10^-k), k = 2..10: the scalar gap g(q_root) − ½ is proportional to ΔP
    (~1e-10 at k = 10), far above the rounding of g (~1e-16).
    """
    rng = np.random.default_rng(K * 10 + L)
    critical = O.dnc_threshold(K, L)
    n = 3
    for k in range(2, 11):
        for sign in (-1, 1):
            lam_h, lam_w = _lambdas_with_product(critical * (1 + sign * 10.0**-k), L, n, rng)
            prediction = O.predict_dufm(K, L, n, lam_h, lam_w)
            assert prediction.is_zero == (sign > 0), (k, sign)
            assert prediction.threshold == critical
            if sign < 0:
                # q* − (L−1)/L is of order ΔP/P = 10^-k (times an O(1) factor, < 10 here).
                assert abs(prediction.q_star - (L - 1) / L) < 10 * 10.0**-k
                assert prediction.optimal_loss < 0.5
            else:
                assert prediction.q_star == 0.0 and prediction.optimal_loss == 0.5
                assert prediction.singular_values == ((),) * L
                point = O.dnc_construct(K, L, n, lam_h, lam_w)
                assert point.norm() == 0.0
    # Far above the threshold no stationary point exists at all.
    lam_h, lam_w = _lambdas_with_product(critical * 1e6, L, n, rng)
    assert O.predict_dufm(K, L, n, lam_h, lam_w).stationary_q is None


@pytest.mark.parametrize("K", [2, 3, 4, 5, 7, 10])
@pytest.mark.parametrize("L", [1, 2, 3, 4, 5, 8])
def test_exact_threshold_equals_closed_form(K, L):
    exact = O.dnc_threshold_exact(K, L)
    assert isinstance(exact, sympy.Rational)
    assert exact == sympy.Rational((L - 1) ** (L - 1), L ** (L - 1)) / sympy.Integer(K * L) ** (L + 1)
    # Float closed form: three roundings (ratio, two powers, division), each ≤ 1 ulp scaled by
    # the exponent: 4·(L+1) ulps bound the relative error.
    assert abs(O.dnc_threshold(K, L) - float(exact)) <= 4 * (L + 1) * EPS * float(exact)
    if K == 2:
        assert exact == sympy.Rational((L - 1) ** (L - 1), 2 ** (L + 1) * L ** (2 * L))
    if L == 1:
        assert exact == sympy.Rational(1, K * K)


def test_feature_penalty_enters_through_n_lambda_h():
    """U0: the optimum depends on (n, λ_H) only through nλ_H (identity)."""
    a = O.predict_dufm(3, 4, 6, 0.002, (0.003, 0.001, 0.004, 0.002))
    b = O.predict_dufm(3, 4, 1, 6 * 0.002, (0.003, 0.001, 0.004, 0.002))
    assert a.optimal_loss == pytest.approx(b.optimal_loss, rel=4 * EPS)
    assert a.q_star == pytest.approx(b.q_star, rel=4 * EPS)


# ------------------------------------------------------------------------------------------
# DNC construction (§4.3, §4.4, D1, D3)
# ------------------------------------------------------------------------------------------

CONSTRUCTION_CASES = [
    (2, 2, 1, 0.004, 0.004, None),
    (2, 4, 5, 0.003, (0.002, 0.004, 0.001, 0.003), (3, 5, 2, 4)),
    (3, 3, 2, 0.01, (0.02, 0.005, 0.01), None),
    (4, 5, 3, 0.002, 0.003, (6, 4, 5, 4, 7)),
    (5, 2, 1, 0.01, (0.004, 0.02), None),
    (3, 1, 2, 0.01, 0.02, (4,)),
]


@pytest.mark.parametrize("K, L, n, lam_h, lam_w, widths", CONSTRUCTION_CASES)
def test_dnc_construction_identities(K, L, n, lam_h, lam_w, widths):
    """D1/D3: Φ_DUFM(dnc_construct(β)) = L_DNC to 1e-12 for β ∈ {0, ½/(K−1), 1/(K−1)}, a
    critical point (gradient ≤ 1e-12; ~1e3 ulps of accumulated round-off), with the predicted
    structure."""
    prediction = O.predict_dufm(K, L, n, lam_h, lam_w)
    model = DeepUFM(K, n, widths or (K,) * L, lam_h, lam_w)
    betas = (0.0,) if L == 1 else (0.0, 0.5 / (K - 1), 1.0 / (K - 1))  # β needs a ReLU
    for beta in betas:
        point = O.dnc_construct(K, L, n, lam_h, lam_w, beta=beta, widths=widths)
        parts = model.objective(point)
        assert abs(parts.total - prediction.optimal_loss) <= 1e-12 * prediction.optimal_loss
        assert model.gradient(point).norm() <= 1e-12
        layers = model.forward(point)
        np.testing.assert_allclose(layers.output, prediction.q_star * model.targets, atol=1e-14)
        # BAL.scalar: λ_H‖H₁‖² = λ_l‖W_l‖² = K·C·q*^{2/(L+1)} for every β.
        np.testing.assert_allclose(2 * np.array(parts.penalties), prediction.balancedness, rtol=1e-13)
        for l in range(1, L):  # s_l for l ≥ 2 (K equal nonzero singular values)
            singular = np.linalg.svd(point.weights[l], compute_uv=False)[:K]
            np.testing.assert_allclose(singular, prediction.singular_values[l], rtol=1e-13)
        squared = np.sum(point.weights[0] ** 2)  # ‖W₁‖_F² = K·s_1² for every β
        assert squared == pytest.approx(K * prediction.singular_values[0][0] ** 2, rel=1e-13)
        if L >= 2:  # a₂ = class-mean norm of H₂ for every β; M₂ an orthogonal frame
            second_means = layers.post_activations[1][:, ::n]
            np.testing.assert_allclose(
                np.linalg.norm(second_means, axis=0), prediction.second_layer_mean_norm, rtol=1e-13
            )
            gram = second_means.T @ second_means
            np.testing.assert_allclose(gram, np.diag(np.diag(gram)), atol=1e-15)
        first_means = point.features[:, ::n]
        cosines = _cosines(first_means)
        off = ~np.eye(K, dtype=bool)
        np.testing.assert_allclose(cosines[off], -beta, atol=1e-13)  # M₁ᵀM₁ ∝ X₂(β)
        if beta == 0.0:
            np.testing.assert_allclose(
                np.linalg.norm(first_means, axis=0), prediction.class_mean_norms[0], rtol=1e-14
            )
            for l in range(L):
                means = layers.post_activations[l][:, ::n]
                np.testing.assert_allclose(
                    np.linalg.norm(means, axis=0), prediction.class_mean_norms[l], rtol=1e-13
                )
        if L >= 2:  # cosine of pre-activation class means of H̃₂
            expected = beta * (beta * (K - 2) - 2) / (1 + beta**2 * (K - 1))
            pre_cosines = _cosines(layers.pre_activations[1][:, ::n])
            np.testing.assert_allclose(pre_cosines[off], expected, atol=1e-13)


def _cosines(means):
    norms = np.linalg.norm(means, axis=0)
    return (means.T @ means) / np.outer(norms, norms)


def test_dnc_construction_is_the_deep_linear_optimum_and_attains_the_schatten_bound():
    """§4.2/F2: at the β = 0 point the penalty equals (p/2)(λ_HΠλ_l)^{1/p}Σ s_i(F)^{2/p}."""
    K, L, n, lam_h, lam_w = 3, 3, 4, 0.005, (0.002, 0.01, 0.004)
    model = DeepLinearUFM(K, n, (3, 4, 5), lam_h, lam_w)
    point = O.optimal_parameters(model)
    prediction = O.predict(model)
    parts = model.objective(point)
    assert abs(parts.total - prediction.optimal_loss) <= 1e-12 * prediction.optimal_loss
    output = model.forward(point).output
    bound = O.schatten_penalty(output, (lam_h,) + lam_w)
    assert abs(parts.penalty - bound) <= 1e-12 * bound
    assert model.gradient(point).norm() <= 1e-12
    with pytest.raises(ValueError, match="beta"):
        O.optimal_parameters(model, beta=0.1)


def test_dispatch_on_models():
    ufm = UFM(3, 2, 4, 0.01, 0.02, bias=True)
    assert O.predict(ufm).model == "ufm_bias"
    assert O.optimal_parameters(ufm).bias is not None
    dufm = DeepUFM(3, 2, (3, 3), 0.01, 0.02)
    assert O.predict(dufm).model == "dufm"
    point = O.optimal_parameters(dufm, beta=0.5)
    assert abs(dufm.objective(point).total - O.predict(dufm).optimal_loss) <= 1e-12
    with pytest.raises(TypeError, match="LinearHead"):
        O.predict(LinearHead(np.eye(2), [0, 1], (2,), 0.1))


def test_prediction_serializes_to_json():
    prediction = O.predict_dufm(2, 4, 5, 3e-3, (2e-3, 4e-3, 1e-3, 3e-3))
    data = json.loads(json.dumps(prediction.to_dict()))
    for key in ("optimal_loss", "q_star", "threshold", "is_zero", "singular_values",
                "class_mean_norms", "balancedness"):
        assert key in data
    assert data["optimal_loss"] == prediction.optimal_loss
    assert data["singular_values"][2] == list(prediction.singular_values[2])
    assert data["lam_w"] == [2e-3, 4e-3, 1e-3, 3e-3]
    zero = json.loads(json.dumps(O.predict_dufm(2, 3, 3, 1.0, 1.0).to_dict()))
    assert zero["is_zero"] is True and zero["singular_values"] == [[], [], []]


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: O.predict_dufm(1, 3, 1, 0.1, 0.1), ValueError, "num_classes"),
        (lambda: O.predict_dufm(2, 0, 1, 0.1, 0.1), ValueError, "num_layers"),
        (lambda: O.predict_dufm(2, 3, 0, 0.1, 0.1), ValueError, "per_class"),
        (lambda: O.predict_dufm(2, 3, 1, 0.0, 0.1), ValueError, "lam_h"),
        (lambda: O.predict_dufm(2, 3, 1, 0.1, (0.1, 0.1)), ValueError, "lam_w"),
        (lambda: O.predict_dufm(2, 3, 1, 0.1, (0.1, 0.0, 0.1)), ValueError, r"lam_w\[1\]"),
        (lambda: O.predict_ufm(2, 3, -0.1, 0.1), ValueError, "lam_w"),
        (lambda: O.dufm_constant(2, 0.1, 0.1), ValueError, "num_layers"),
        (lambda: O.dnc_construct(3, 3, 1, 0.1, 0.1, beta=0.6), ValueError, "beta"),
        (lambda: O.dnc_construct(3, 3, 1, 0.1, 0.1, beta=-0.1), ValueError, "beta"),
        (lambda: O.dnc_construct(3, 1, 1, 0.1, 0.1, beta=0.1), ValueError, "beta"),
        (lambda: O.dnc_construct(3, 2, 1, 0.1, 0.1, widths=(3, 2)), ValueError, r"widths\[1\]"),
        (lambda: O.dnc_construct(3, 2, 1, 0.1, 0.1, widths=(3,)), ValueError, "widths"),
        (lambda: O.ufm_construct(3, 1, 0, 0.1, 0.1, bias=True), ValueError, "width"),
        (lambda: O.ufm_construct(3, 1, 0, 0.1, 0.1), ValueError, "width"),
        (lambda: O.predict_ufm(3, 1, 0.1, 0.1, width=0), ValueError, "width"),
        (lambda: O.predict_deep_linear(3, 2, 1, 0.1, 0.1, widths=(3,)), ValueError, "widths"),
        (lambda: O.predict_dufm(3, 2, 1, 0.1, 0.1, widths=(3, 0)), ValueError, r"widths\[1\]"),
        (lambda: O.predict_dufm(3, 2, 1, 0.1, 0.1, widths="3"), TypeError, "widths"),
        (lambda: O.rank_limited_value(0.1, 3, 0), ValueError, "rank_limit"),
        (lambda: O.dnc_construct(4, 2, 1, 0.01, 0.01, widths=(1, 4)), ValueError, r"widths\[0\]"),
        (lambda: O.dnc_construct(4, 2, 1, 0.01, 0.01, beta=0.1, widths=(3, 4)), ValueError, r"widths\[0\]"),
        (lambda: O.srg_coefficient(5, 2), ValueError, "num_layers"),
        (lambda: O.predict_srg(5, 2, 1, 0.1, 0.1), ValueError, "num_layers"),
        (lambda: O.predict_srg(5, 4, 1, 0.1, 0.1, shift=0.5), ValueError, "shift"),
        (lambda: O.predict_srg(4, 4, 1, 0.1, 0.1, edges=[(0, 1), (1, 2), (2, 3), (3, 0)]), ValueError, "rank"),
        (lambda: O.triangular_incidence(4, [(0, 0)]), ValueError, "edges"),
        (lambda: O.triangular_incidence(4, [(0, 1), (1, 0)]), ValueError, "repeat"),
        (lambda: O.triangular_incidence(2), ValueError, "num_vertices"),
        (lambda: O.srg_construct(5, 4, 1, 0.004, 0.004, widths=(5, 5, 4, 10)), ValueError, r"widths\[2\]"),
        (lambda: O.srg_family_coefficient(np.ones((3, 2)), 4), ValueError, "two ones"),
        (lambda: O.srg_edge_subset_search(12, 4, 5), ValueError, "K"),
    ],
)
def test_optima_validation_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------------------------------
# Low-rank SRG points (§4.5, LR1–LR4, KF3)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [3, 4, 5, 6, 8])
def test_triangular_graph_algebra(r):
    """LR1 (exact integers)."""
    B = O.triangular_incidence(r)
    K = r * (r - 1) // 2
    assert B.shape == (r, K) and B.dtype == np.int64
    np.testing.assert_array_equal(B @ B.T, (r - 2) * np.eye(r, dtype=int) + 1)
    assert np.linalg.matrix_rank(B) == r
    gram = B.T @ B
    adjacency = gram - 2 * np.eye(K, dtype=int)
    np.testing.assert_array_equal(4 * np.ones((K, K), dtype=int), B.T @ np.ones((r, r), dtype=int) @ B)
    np.testing.assert_array_equal(np.maximum(gram - 1, 0), np.eye(K, dtype=int))  # σ(BᵀB − J) = I
    eigenvalues = np.sort(np.linalg.eigvalsh(adjacency.astype(float)))
    expected = np.sort([2.0 * (r - 2)] + [r - 4.0] * (r - 1) + [-2.0] * (K - r))
    np.testing.assert_allclose(eigenvalues, expected, atol=1e-12)  # eigvalsh: ~K·eps·‖A‖
    singular = np.linalg.svd(B.astype(float), compute_uv=False)
    assert abs(singular.sum() - O.srg_nuclear_norm(r)) <= 1e-13 * O.srg_nuclear_norm(r)
    head = B.T @ (np.eye(r) - np.ones((r, r)) / 4)
    assert abs(np.sum(head**2) - O.srg_kappa(r)) <= 1e-13 * O.srg_kappa(r)
    if r >= 4:
        general = O.srg_family_coefficient(B, 5, -1.0)
        assert abs(general - O.srg_coefficient(r, 5)) <= 1e-13 * general


RATIO_TABLE = {  # r: c_r/K for L = 3, 4, 5, 6, 8 (docs/theory.md §4.5)
    4: ("1.056", "0.963", "0.906", "0.867", "0.818"),
    5: ("1.044", "0.901", "0.817", "0.762", "0.694"),
    6: ("1.037", "0.857", "0.755", "0.689", "0.611"),
    8: ("1.027", "0.795", "0.670", "0.594", "0.505"),
    12: ("1.018", "0.721", "0.573", "0.487", "0.391"),
}


@pytest.mark.parametrize("r", sorted(RATIO_TABLE))
def test_srg_ratio_table(r):
    for L, printed in zip((3, 4, 5, 6, 8), RATIO_TABLE[r]):
        assert_printed(O.srg_ratio(r, L), printed)


def test_srg_ratio_extremes_and_lr3():
    """Largest ratio over 4 ≤ r ≤ 40, 4 ≤ L ≤ 20 is 0.9633 at (r, L) = (4, 4); at L = 3 all
    ratios exceed 1, the smallest 1.0052 at r = 40; (L+1)·log(c_r/K) decreases in L (LR3)."""
    largest = max((O.srg_ratio(r, L), r, L) for r in range(4, 41) for L in range(4, 21))
    assert_printed(largest[0], "0.9633")
    assert largest[1:] == (4, 4)
    smallest = min((O.srg_ratio(r, 3), r) for r in range(4, 41))
    assert_printed(smallest[0], "1.0052")
    assert smallest[1] == 40
    for r in (4, 5, 12, 40):
        logs = [(L + 1) * math.log(O.srg_ratio(r, L)) for L in range(3, 12)]
        assert all(a > b for a, b in zip(logs, logs[1:]))
        # Limit r/K as L → ∞.
    assert abs(O.srg_ratio(5, 2000) - 5 / 10) < 5e-3


@pytest.mark.parametrize(
    "r, L, srg, dnc, ratio",
    [
        (5, 4, "0.087653", "0.099180", "0.884"),
        (5, 5, "0.095841", "0.119178", "0.804"),
        (4, 4, "0.056415", "0.059708", "0.945"),
        (5, 3, None, None, "1.018"),
        (6, 3, None, None, "1.010"),
        (7, 3, None, None, "1.006"),
    ],
)
def test_srg_improved_family_reference_values(r, L, srg, dnc, ratio):
    """n = 1, λ = 0.004, t minimized (LR4)."""
    prediction = O.predict_srg(r, L, 1, 0.004, 0.004, shift=None)
    if srg is not None:
        assert_printed(prediction.optimal_loss, srg)
        assert_printed(prediction.dnc_loss, dnc)
    assert_printed(prediction.loss_ratio, ratio)
    if r == 5:
        assert_printed(prediction.shift, "-0.898")  # printed "t* ≈ −0.898"
    basic = O.predict_srg(r, L, 1, 0.004, 0.004)
    assert prediction.optimal_loss <= basic.optimal_loss
    assert json.loads(json.dumps(prediction.to_dict()))["loss_ratio"] == prediction.loss_ratio


def test_srg_basic_point_reference_value_through_the_objective():
    """L = 4, K = 10, n = 1, λ = 0.004: Φ_DUFM at the explicit basic point is 0.089471."""
    point = O.srg_construct(5, 4, 1, 0.004, 0.004)
    model = DeepUFM(10, 1, (10, 10, 10, 10), 0.004, 0.004)
    assert_printed(model.objective(point).total, "0.089471")


SRG_CASES = [  # r, L, n, λ_H, λ_W, shift, edges, widths
    (4, 3, 1, 0.004, 0.004, -1.0, None, None),
    (5, 4, 1, 0.004, 0.004, -1.0, None, None),
    (5, 4, 2, 0.003, (0.002, 0.005, 0.001, 0.004), None, None, (6, 5, 7, 12)),
    (6, 5, 3, 0.002, 0.003, -0.5, None, None),
    (4, 4, 1, 0.004, 0.004, -1.5, None, None),
    (5, 4, 1, 0.004, 0.004, None, ((0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (2, 3)), None),
]


@pytest.mark.parametrize("r, L, n, lam_h, lam_w, shift, edges, widths", SRG_CASES)
def test_srg_construction_certificate(r, L, n, lam_h, lam_w, shift, edges, widths):
    """LR2: Φ_DUFM at the explicit SRG point equals the closed form to 1e-12; ranks r before
    the last ReLU (r − 1 for M̃_L when I + tJ/4 is singular, t = −4/r), K after it."""
    prediction = O.predict_srg(r, L, n, lam_h, lam_w, shift=shift, edges=edges)
    K = prediction.num_classes
    point = O.srg_construct(r, L, n, lam_h, lam_w, shift=shift, edges=edges, widths=widths)
    model = DeepUFM(K, n, widths or (K,) * L, lam_h, lam_w)
    parts = model.objective(point)
    assert abs(parts.total - prediction.optimal_loss) <= 1e-12 * prediction.optimal_loss
    # AM–GM balance: every λ_j‖θ_j‖² equal (~1e3 ulps: SVD and inverse round-off).
    penalties = np.array(parts.penalties)
    np.testing.assert_allclose(penalties, penalties[0], rtol=1e-12)
    layers = model.forward(point)
    np.testing.assert_allclose(layers.output, prediction.q_star * model.targets, atol=1e-13)
    for l in range(L - 1):
        assert np.linalg.matrix_rank(layers.post_activations[l][:, ::n]) == r
    singular_head = abs(1 + prediction.shift * r / 4) < 1e-12
    assert np.linalg.matrix_rank(layers.pre_activations[L - 1][:, ::n]) == r - singular_head
    assert np.linalg.matrix_rank(layers.post_activations[L - 1][:, ::n]) == K
    assert prediction.coefficient_ratio == prediction.coefficient / K


def test_srg_zero_solution_above_threshold():
    point = O.srg_construct(5, 4, 1, 0.5, 0.5)
    assert point.norm() == 0.0
    assert O.predict_srg(5, 4, 1, 0.5, 0.5).optimal_loss == 0.5


def test_edge_subset_search():
    """KF3 (L = 4). docs/theory.md prints K = 7: 0.996 (improved family), K = 8: 0.954, K = 9:
    0.937, K = 11: 0.958. The improved family reproduces K = 7 and 8; the K = 9 and 11 values
    are those of the basic point t = −1 on the best subsets, where the improved family reaches
    0.916 and 0.933."""
    expected_improved = {7: "0.996", 8: "0.954", 9: "0.916", 11: "0.933"}
    expected_basic = {9: "0.937", 11: "0.958"}
    for K, printed in expected_improved.items():
        result = O.srg_edge_subset_search(K, 4)
        assert result.num_classes == K and len(result.edges) == K
        assert_printed(result.coefficient_ratio, printed)
        incidence = O.triangular_incidence(result.num_vertices, result.edges)
        assert result.coefficient == pytest.approx(
            O.srg_family_coefficient(incidence, 4, result.shift), rel=1e-14
        )
        if K in expected_basic:
            assert_printed(O.srg_family_coefficient(incidence, 4, -1.0) / K, expected_basic[K])
        assert json.loads(json.dumps(result.to_dict()))["num_classes"] == K


def test_edge_subset_coefficient_depends_only_on_the_spectrum():
    """The search groups subsets by the spectrum of BᵀB; check c(t) on every 8-edge subset of
    K_5 against a representative of its spectrum class."""
    edges = list(itertools.combinations(range(5), 2))
    by_spectrum = {}
    for chosen in itertools.combinations(edges, 8):
        B = O.triangular_incidence(5, chosen).astype(float)
        if np.linalg.matrix_rank(B) < 5:
            continue
        key = tuple(np.round(np.linalg.eigvalsh(B.T @ B), 8))
        value = O.srg_family_coefficient(B, 4, -0.7)
        by_spectrum.setdefault(key, []).append(value)
    for values in by_spectrum.values():
        np.testing.assert_allclose(values, values[0], rtol=1e-13)


# ------------------------------------------------------------------------------------------
# Non-collapsed stall configurations (split class, dropped samples; E-B2)
# ------------------------------------------------------------------------------------------

STALL_CASES = [  # K, L, n, λ_H, λ_1..λ_L
    (2, 3, 5, 0.004, (0.004, 0.004, 0.004)),  # the E-B2 setting
    (2, 2, 3, 0.01, (0.01, 0.01)),
    (3, 4, 4, 0.003, (0.002, 0.005, 0.001, 0.004)),  # K > 2, per-layer λ
    (2, 3, 5, 0.02, (0.02, 0.02, 0.02)),  # closer to the threshold
]


def _split_class_direct(K, L, n, lam_h, lam_w, sizes, merge_layer):
    """The class share by the equivalent G-dimensional form (B eliminated by AM–GM), minimized by
    Nelder–Mead from a grid of starts: an independent path to :func:`dufm_split_class_loss`."""
    from scipy import optimize

    samples, j = K * n, merge_layer
    kappa = 0.5 * (L + 1) * (lam_h * math.prod(lam_w)) ** (1.0 / (L + 1))
    m = np.array(sizes, dtype=float)

    def share(q):
        q = np.clip(q, 0.0, 1.0)
        penalty = np.sum((np.sqrt(m) * q) ** (2.0 / (j + 1))) ** ((j + 1) / (L + 1))
        return float(np.sum(m * (1 - q) ** 2) / (2 * samples) + kappa * penalty + (n - m.sum()) / (2 * samples))

    best = share(np.zeros(len(m)))
    for start in itertools.product([0.0, 0.5, 0.99], repeat=len(m)):
        result = optimize.minimize(share, np.array(start), method="Nelder-Mead",
                                   options={"xatol": 1e-12, "fatol": 1e-16, "maxiter": 4000})
        best = min(best, float(result.fun))
    return best


@pytest.mark.parametrize("K, L, n, lam_h, lam_w", STALL_CASES + [(2, 3, 5, 0.1, 0.1)])
def test_split_class_one_group_is_the_dnc_share(K, L, n, lam_h, lam_w):
    """One group of all n samples is a DNC class: K·share = L_DNC for every merge layer (the last
    case is above the threshold, L_DNC = ½, where the B = 0 branch is the answer)."""
    reference = O.predict_dufm(K, L, n, lam_h, lam_w).optimal_loss
    for layer in range(1, L + 1):
        share = O.dufm_split_class_loss(K, L, n, lam_h, lam_w, [n], layer)
        assert share * K == pytest.approx(reference, rel=1e-12, abs=0.0)
    # the whole class dropped: n/(2N) = 1/(2K)
    assert O.dufm_split_class_loss(K, L, n, lam_h, lam_w, [], L) == 1.0 / (2 * K)


@pytest.mark.parametrize("K, L, n, lam_h, lam_w", STALL_CASES)
def test_split_class_value_matches_the_eliminated_form(K, L, n, lam_h, lam_w):
    """The 1-D reduction in B (scalar problem of §4.3 per group) equals the G-dimensional form.
    Nelder–Mead to xatol 1e-12 leaves the value off by O(1e-24) at a smooth minimum (a group at
    q_g = 0 sits on the clipped, flat side, so exactly); 1e-10 relative covers that and float64
    rounding of both paths (observed ≤ 1e-15)."""
    for sizes in ([n - 1, 1], [n - 2, 2], [n - 1], [n - 2, 1]):
        for layer in range(1, L + 1):
            value = O.dufm_split_class_loss(K, L, n, lam_h, lam_w, sizes, layer)
            assert value == pytest.approx(_split_class_direct(K, L, n, lam_h, lam_w, sizes, layer),
                                          rel=1e-10, abs=0.0)


def _stall_point(K, L, n, lam_h, lam_w, entry, altered_class=0, widths=None):
    """(model, parameters) realising a StallConfiguration."""
    if entry.kind == "zero":
        widths = widths or (K,) * L
        dims = tuple(widths) + (K,)
        params = Parameters(features=np.zeros((dims[0], K * n)),
                              weights=tuple(np.zeros((dims[l + 1], dims[l])) for l in range(L)))
    else:
        layer = entry.merge_layer if entry.merge_layer is not None else L
        params = O.dufm_split_class_construct(K, L, n, lam_h, lam_w, entry.sizes, layer,
                                              altered_class=altered_class, widths=widths)
    model = DeepUFM(num_classes=K, per_class=n, widths=tuple(w.shape[1] for w in params.weights),
                    lam_h=lam_h, lam_w=lam_w)
    return model, params


@pytest.mark.parametrize("K, L, n, lam_h, lam_w", STALL_CASES)
def test_stall_values_are_attained_by_explicit_constructions(K, L, n, lam_h, lam_w):
    """Every listed value (all merge layers, j = 1 included) is Φ_DUFM of the constructed point.

    Tolerances: the construction uses the minimizer (q_g, B) of the value itself, so Φ agrees up
    to float64 rounding of two sums of O(10) terms (1e-12 relative; observed ≤ 4e-16). For
    j ≥ 2, the dropped sample and class and the zero point, the point is critical: B and q_g are
    roots of their derivatives to 4·eps (brentq) and the AM–GM scales balance exactly, so
    ‖∇Φ‖ is rounding (≤ 1e-11; observed ≤ 1e-15). A split merging in W_1 is not critical
    (‖∇Φ‖ of order λ·‖θ‖, ≥ 1e-4 here).
    """
    entries = O.dufm_stall_configurations(K, L, n, lam_h, lam_w, merge_layers=range(1, L + 1))
    kinds = {entry.kind for entry in entries}
    assert kinds == {"split", "drop", "drop_class", "zero"}
    for entry in entries:
        # default (least) widths with class 0 altered, then wider layers with class K − 1 altered
        model, params = _stall_point(K, L, n, lam_h, lam_w, entry)
        wide = tuple(width + 2 for width in model.widths)
        for model, params in ((model, params), _stall_point(K, L, n, lam_h, lam_w, entry, K - 1, wide)):
            value, gradient = model.value_and_gradient(params)
            assert model.objective(params).total == pytest.approx(entry.loss, rel=1e-12, abs=0.0)
            assert value == pytest.approx(entry.loss, rel=1e-12, abs=0.0)
            if entry.kind == "split" and entry.merge_layer == 1:
                assert gradient.norm() > 1e-4
            else:
                assert gradient.norm() <= 1e-11


def test_split_merging_in_the_first_layer_flows_to_dnc():
    """Gradient descent leaves the j = 1 split and reaches L_DNC; at j ≥ 2 splits and dropped
    samples it stays. L-BFGS stops at ‖∇Φ‖ ≤ 1e-10: from a critical point (‖∇Φ‖ ≈ 1e-16) it
    takes no step, so the end value is the start value to rounding (1e-12 relative); from the
    j = 1 split it ends at the DNC optimum, where the curvature across the optimal set is of
    order λ = 4e-3, so Φ − L_DNC ≲ ‖∇Φ‖²/λ ≈ 1e-18 (asserted to 1e-9 relative)."""
    from ufm.solvers import solve

    K, L, n, lam = 2, 3, 5, 0.004
    reference = O.predict_dufm(K, L, n, lam, lam).optimal_loss
    for entry in O.dufm_stall_configurations(K, L, n, lam, lam, merge_layers=(1, 2)):
        if entry.kind not in ("split", "drop"):
            continue
        model, params = _stall_point(K, L, n, lam, lam, entry)
        end = solve(model, "lbfgs", initial=params, tolerance=1e-10, max_iterations=5000,
                    history_points=0, predicted=None, progress=False).loss
        if entry.merge_layer == 1:
            assert end == pytest.approx(reference, rel=1e-9, abs=0.0)
        else:
            assert end == pytest.approx(entry.loss, rel=1e-12, abs=0.0)


@pytest.mark.parametrize("K, L, n, lam_h, lam_w", STALL_CASES)
def test_stall_configurations_list_and_tolerance(K, L, n, lam_h, lam_w):
    prediction = O.predict_dufm(K, L, n, lam_h, lam_w)
    reference = prediction.optimal_loss
    entries = O.dufm_stall_configurations(K, L, n, lam_h, lam_w)
    splits = [entry for entry in entries if entry.kind == "split"]
    assert [(entry.sizes, entry.merge_layer) for entry in splits] == [
        ((n - m, m), j) for m in range(1, n // 2 + 1) for j in range(2, L + 1)
    ]
    assert [entry.kind for entry in entries[len(splits):]] == ["drop", "drop_class", "zero"]
    drop, drop_class, zero = entries[len(splits):]
    others = reference * (K - 1) / K
    assert drop.sizes == (n - 1,) and drop.merge_layer == L
    assert drop.loss == pytest.approx(
        others + O.dufm_split_class_loss(K, L, n, lam_h, lam_w, [n - 1], L), rel=1e-15)
    assert drop_class.loss == pytest.approx(others + 1 / (2 * K), rel=1e-15)
    assert zero.loss == 0.5 and zero.merge_layer is None and zero.sizes == ()
    for entry in entries:
        assert entry.ratio == pytest.approx(entry.loss / reference - 1, rel=1e-15, abs=1e-17)
        assert json.loads(json.dumps(entry.to_dict()))["sizes"] == list(entry.sizes)
    tolerance, nearest = O.dnc_reach_tolerance(K, L, n, lam_h, lam_w)
    candidates = [entry for entry in entries if entry.kind in ("split", "drop")]
    assert nearest == min(candidates, key=lambda entry: entry.loss)
    assert tolerance == 0.5 * (nearest.loss - reference) > 0


@pytest.mark.parametrize("L", [2, 3, 4])
@pytest.mark.parametrize("n", [2, 3, 6])
@pytest.mark.parametrize("lam_h, lam_w", [(0.004, 0.004), (0.01, 0.001), (1e-4, 0.02)])
def test_stall_values_lie_above_dnc_for_two_classes(L, n, lam_h, lam_w):
    """K = 2: L_DNC is the global minimum (docs/theory.md §4.3, from (B)), so every configuration,
    j = 1 included, costs at least L_DNC; the splits and dropped samples strictly more."""
    reference = O.predict_dufm(2, L, n, lam_h, lam_w).optimal_loss
    for entry in O.dufm_stall_configurations(2, L, n, lam_h, lam_w, merge_layers=range(1, L + 1)):
        assert entry.loss > reference * (1 + 1e-9)
        assert entry.ratio > 0


def test_stall_values_of_the_width_experiment():
    """E-B2 setting (K = 2, L = 3, n = 5, λ = 0.004): the nearest stall point is the 4+1 split
    merging in W_2, so τ/L_DNC = 0.0904; the j = 1 split (ratio 0.0786) is no stall point."""
    tolerance, nearest = O.dnc_reach_tolerance(2, 3, 5, 0.004, 0.004)
    reference = O.predict_dufm(2, 3, 5, 0.004, 0.004).optimal_loss
    assert (nearest.kind, nearest.sizes, nearest.merge_layer) == ("split", (4, 1), 2)
    assert_printed(tolerance / reference, "0.0904")
    assert nearest.label == "split 4+1, merge in $W_2$"
    with_first = O.dnc_reach_tolerance(2, 3, 5, 0.004, 0.004, merge_layers=(1, 2, 3))[1]
    assert with_first.merge_layer == 1 and with_first.ratio < nearest.ratio


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: O.dufm_split_class_loss(1, 3, 5, 0.1, 0.1, [5], 1), ValueError, "num_classes"),
        (lambda: O.dufm_split_class_loss(2, 0, 5, 0.1, 0.1, [5], 1), ValueError, "num_layers"),
        (lambda: O.dufm_split_class_loss(2, 3, 0, 0.1, 0.1, [], 1), ValueError, "per_class"),
        (lambda: O.dufm_split_class_loss(2, 3, 5, -0.1, 0.1, [5], 1), ValueError, "lam_h"),
        (lambda: O.dufm_split_class_loss(2, 3, 5, 0.1, (0.1, 0.1), [5], 1), ValueError, "lam_w"),
        (lambda: O.dufm_split_class_loss(2, 3, 5, 0.1, (0.1, -1, 0.1), [5], 1), ValueError, r"lam_w\[1\]"),
        (lambda: O.dufm_split_class_loss(2, 3, 5, 0.1, 0.1, [5, 1], 1), ValueError, "sizes"),
        (lambda: O.dufm_split_class_loss(2, 3, 5, 0.1, 0.1, [4, 0], 1), ValueError, r"sizes\[1\]"),
        (lambda: O.dufm_split_class_loss(2, 3, 5, 0.1, 0.1, [2.5], 1), TypeError, r"sizes\[0\]"),
        (lambda: O.dufm_split_class_loss(2, 3, 5, 0.1, 0.1, 5, 1), TypeError, "sizes"),
        (lambda: O.dufm_split_class_loss(2, 3, 5, 0.1, 0.1, [5], 0), ValueError, "merge_layer"),
        (lambda: O.dufm_split_class_loss(2, 3, 5, 0.1, 0.1, [5], 4), ValueError, "merge_layer"),
        (lambda: O.dufm_split_class_construct(2, 3, 5, 0.1, 0.1, [4, 1], 2, altered_class=2),
         ValueError, "altered_class"),
        (lambda: O.dufm_split_class_construct(2, 3, 5, 0.1, 0.1, [4, 1], 2, widths=(2, 3, 2)),
         ValueError, r"widths\[0\]"),
        (lambda: O.dufm_stall_configurations(2, 3, 5, 0.1, 0.1, merge_layers=(2, 4)),
         ValueError, r"merge_layers\[1\]"),
        (lambda: O.dufm_stall_configurations(2, 3, 5, 0.0, 0.1), ValueError, "lam_h"),
        (lambda: O.dnc_reach_tolerance(2, 3, 1, 0.004, 0.004), ValueError, "per_class"),
        (lambda: O.dnc_reach_tolerance(2, 1, 5, 0.004, 0.004), ValueError, "num_layers"),
        (lambda: O.dnc_reach_tolerance(2, 3, 5, 0.1, 0.1), ValueError, "zero solution"),
    ],
)
def test_stall_validation_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
