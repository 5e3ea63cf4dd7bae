"""Tests of ufm.convex: cvxpy nuclear-norm forms of the UFM and of the two-layer head.

Tolerances. Every solve carries its own certificate: P* ∈ [dual_value, optimal_value] by weak
duality, whatever the solver reports. The requested accuracy ``TOL`` is Clarabel's tol_gap_abs =
tol_gap_rel = tol_feas; Clarabel stops once |p − d| ≤ tol_gap_abs + tol_gap_rel·|p| with the
residuals below tol_feas, so our recomputed gap is bounded by a small multiple of TOL·(1 + |P|)
(the factor 10 covers the feasibility residuals entering the objective). Since the fit term is
(1/N)-strongly convex in the output, P(Z) − P* ≥ (1/(2N))‖Z − Z*‖_F², hence
‖Z − Z*‖_F ≤ √(2N·gap) (plus float64 rounding of the gap, 1e-15).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("cvxpy")

from ufm import convex as C  # noqa: E402
from ufm.labels import balanced_labels, one_hot_targets  # noqa: E402

TOL = 1e-9  # accuracy requested from Clarabel in these tests
ROUNDING = 1e-13  # float64 rounding of objective values of order 1 (a few hundred ulps)

# docs/theory.md §4.6, "UFM": (K, n, d, λ_W, λ_H) -> (no bias, bias), printed to 10 decimals.
UFM_REFERENCES = [
    ((3, 4, 5, 0.01, 0.02), 0.0812528137, 0.0541685425),
    ((4, 3, 6, 0.005, 0.01), 0.0477897949, 0.0358423461),
    ((5, 2, 8, 0.02, 0.02), 0.1314213562, 0.1051370850),
]
PRINTED = 5e-11  # half a unit in the 10th decimal of the printed reference values


def gap_bound(value: float, tolerance: float = TOL) -> float:
    """Upper bound on our recomputed duality gap for a solve at ``tolerance`` (module docstring)."""
    return 10.0 * tolerance * (1.0 + abs(value))


def closed_form_value(
    num_classes: int, per_class: int, lambda_W: float, lambda_H: float, bias: bool
) -> float:
    """docs/theory.md §4.1: ρ = K√(nλ_Wλ_H); value ρ − ρ²/2 (ρ < 1) else ½, times (K−1)/K with bias."""
    rho = num_classes * np.sqrt(per_class * lambda_W * lambda_H)
    value = rho - rho**2 / 2 if rho < 1 else 0.5
    return value * (num_classes - 1) / num_classes if bias else value


def ufm_objective(W, H, b, Y, lambda_W, lambda_H):
    """Φ_UFM of docs/theory.md §2(a), written out here so the test does not depend on ufm.models."""
    output = W @ H + (0 if b is None else b[:, None])
    return (
        0.5 * np.sum((output - Y) ** 2) / Y.shape[1]
        + 0.5 * lambda_W * np.sum(W**2)
        + 0.5 * lambda_H * np.sum(H**2)
    )


@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("instance,value_no_bias,value_bias", UFM_REFERENCES)
def test_ufm_reference_values_are_certified(instance, value_no_bias, value_bias, bias):
    K, n, d, lambda_W, lambda_H = instance
    reference = value_bias if bias else value_no_bias
    Y = one_hot_targets(balanced_labels(K, n))
    certificate = C.ufm_convex(Y, lambda_W, lambda_H, bias=bias, tolerance=TOL)
    assert certificate.status == "optimal"
    assert 0 <= certificate.duality_gap + ROUNDING  # weak duality, up to rounding
    assert certificate.duality_gap <= gap_bound(certificate.optimal_value)
    # The printed reference lies in the certified bracket [D, P] up to its printing precision.
    assert certificate.dual_value - PRINTED <= reference <= certificate.optimal_value + PRINTED
    # The closed form of §4.1 is exact: it must lie in the bracket up to float64 rounding.
    exact = closed_form_value(K, n, lambda_W, lambda_H, bias)
    assert abs(exact - reference) <= PRINTED
    assert certificate.dual_value - ROUNDING <= exact <= certificate.optimal_value + ROUNDING
    # The point: Z* = q*Y (no bias) or q*YP_N with b* = 1_K/K (bias), §4.1.
    rho = K * np.sqrt(n * lambda_W * lambda_H)
    q = max(1 - rho, 0.0)
    N = K * n
    centred = Y - Y.mean(axis=1, keepdims=True) if bias else Y
    distance_bound = np.sqrt(2 * N * (certificate.duality_gap + 1e-15))  # strong convexity
    output = certificate.primal - (certificate.primal.mean(axis=1, keepdims=True) if bias else 0)
    assert np.linalg.norm(output - q * centred) <= distance_bound
    if bias:
        # b = (Y − Z)1/N is 1-Lipschitz in the output's row means: |b − b*| ≤ ‖Z − Z*‖_F/√N.
        np.testing.assert_allclose(
            certificate.bias, np.full(K, 1 / K), rtol=0, atol=distance_bound / np.sqrt(N) + 1e-15
        )
    else:
        assert certificate.bias is None
    # A balanced factorization at width d attains the certified value in Φ_UFM itself (F1).
    W, H, b = C.ufm_factors_from_certificate(certificate, lambda_W, lambda_H, width=d)
    assert W.shape == (K, d) and H.shape == (d, N)
    phi = ufm_objective(W, H, b, Y, lambda_W, lambda_H)
    # Dropping solver-noise singular values below TOL·s_1 changes Φ by at most ~TOL·‖Z‖ (~1e-9).
    assert abs(phi - certificate.optimal_value) <= 10 * TOL
    # Balancedness λ_W WᵀW = λ_H HHᵀ and self-duality W = √(nλ_H/λ_W)·Mᵀ (§4.1).
    np.testing.assert_allclose(lambda_W * W.T @ W, lambda_H * H @ H.T, rtol=0, atol=1e-12)
    M = H @ Y.T / n
    np.testing.assert_allclose(
        W, np.sqrt(n * lambda_H / lambda_W) * M.T, rtol=0, atol=10 * distance_bound
    )


@pytest.mark.parametrize("bias", [False, True])
def test_scs_agrees_within_its_own_tolerance(bias):
    K, n, lambda_W, lambda_H = 3, 4, 0.01, 0.02
    Y = one_hot_targets(balanced_labels(K, n))
    scs_tolerance = 1e-7
    certificate = C.ufm_convex(
        Y, lambda_W, lambda_H, bias=bias, solver="SCS", tolerance=scs_tolerance
    )
    exact = closed_form_value(K, n, lambda_W, lambda_H, bias)
    assert certificate.solver == "SCS"
    assert certificate.duality_gap <= gap_bound(certificate.optimal_value, scs_tolerance)
    assert certificate.dual_value - ROUNDING <= exact <= certificate.optimal_value + ROUNDING


@pytest.mark.parametrize("bias", [False, True])
def test_zero_solution_above_threshold(bias):
    # ρ = K√(nλ_Wλ_H) = 3·√(2·0.5·0.5) ≈ 2.1 ≥ 1: Z* = 0 and value ½ (resp. (K−1)/(2K)), §4.1.
    K, n, lambda_W, lambda_H = 3, 2, 0.5, 0.5
    Y = one_hot_targets(balanced_labels(K, n))
    certificate = C.ufm_convex(Y, lambda_W, lambda_H, bias=bias, tolerance=TOL)
    exact = 0.5 * (K - 1) / K if bias else 0.5
    assert certificate.dual_value - ROUNDING <= exact <= certificate.optimal_value + ROUNDING
    assert np.linalg.norm(certificate.primal) <= np.sqrt(
        2 * K * n * (certificate.duality_gap + 1e-15)
    )


def test_general_targets_match_singular_value_thresholding():
    # Unbalanced, non-one-hot targets: Z* = SVT_{Nτ}(Y) (F3), with bias SVT_{Nτ}(YP_N).
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(4, 7))
    tau = 0.05
    for bias in (False, True):
        Z, b, value = C.nuclear_norm_regression_closed_form(Y, tau, bias=bias)
        certificate = C.nuclear_norm_regression(Y, tau, bias=bias, tolerance=TOL)
        assert certificate.duality_gap <= gap_bound(value)
        assert certificate.dual_value - ROUNDING <= value <= certificate.optimal_value + ROUNDING
        output = certificate.primal - (
            certificate.primal.mean(axis=1, keepdims=True) if bias else 0
        )
        assert np.linalg.norm(output - Z) <= np.sqrt(2 * 7 * (certificate.duality_gap + 1e-15))


def test_closed_form_satisfies_subgradient_condition():
    # F3: T − Z* ∈ τ∂‖Z*‖_*, i.e. T − Z* = τ(UVᵀ + E) with ‖E‖_op ≤ 1, UᵀE = 0, EV = 0.
    rng = np.random.default_rng(0)
    T = rng.normal(size=(5, 8))
    tau = 1.2
    Z = C.soft_threshold_singular_values(T, tau)
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    r = int(np.sum(s > 1e-12 * s[0]))
    U, Vt = U[:, :r], Vt[:r]
    E = (T - Z) / tau - U @ Vt
    assert np.linalg.norm(E, 2) <= 1 + 1e-12
    np.testing.assert_allclose(U.T @ E, 0, atol=1e-12)
    np.testing.assert_allclose(E @ Vt.T, 0, atol=1e-12)


@given(
    seed=st.integers(0, 2**31 - 1),
    bias=st.booleans(),
    with_features=st.booleans(),
    tau=st.floats(1e-3, 1.0),
)
def test_weak_duality_at_arbitrary_points(seed, bias, with_features, tau):
    # D(R) ≤ P* ≤ P(A, b) for any candidate R and any (A, b): the certificate never overclaims.
    rng = np.random.default_rng(seed)
    K, N, m = 3, 6, 4
    Y = rng.normal(size=(K, N))
    X = rng.normal(size=(m, N)) if with_features else None
    A = rng.normal(size=(K, m if with_features else N))
    b = rng.normal(size=K) if bias else None
    primal_value = C.nuclear_norm_objective(A, Y, tau, features=X, bias=b)
    dual_value, R = C.dual_lower_bound(rng.normal(size=(K, N)), Y, tau, features=X, bias=bias)
    assert dual_value <= primal_value + ROUNDING
    correlation = R if X is None else R @ X.T
    assert np.linalg.norm(correlation, 2) <= tau * (1 + 1e-12)
    if bias:
        np.testing.assert_allclose(R.sum(axis=1), 0, atol=1e-12)


def test_linear_head_certificate_and_factors():
    # docs/theory.md §2(d), L2 = 2: min_A (1/(2N))‖AZ − Y‖² + λ‖A‖_* equals Φ_head at the balanced
    # factorization A = W_L W_{L−1}, with W_L = US^{1/2}, W_{L−1} = S^{1/2}Vᵀ (F1, equal λ).
    rng = np.random.default_rng(7)
    K, n, m, width, lam = 3, 5, 6, 4, 0.003
    Y = one_hot_targets(balanced_labels(K, n))
    Z = Y.T @ rng.normal(size=(K, m))
    Z = (Z + 0.3 * rng.normal(size=Z.shape)).T  # class structure plus noise, shape (m, N)
    certificate = C.linear_head_convex(Z, Y, lam, tolerance=TOL)
    assert certificate.problem == "linear_head" and certificate.primal.shape == (K, m)
    assert certificate.duality_gap <= gap_bound(certificate.optimal_value)
    last, previous = C.balanced_factorization(
        certificate.primal, lam, lam, width, rank_tolerance=TOL
    )
    N = K * n
    phi_head = 0.5 * np.sum((last @ previous @ Z - Y) ** 2) / N + 0.5 * lam * (
        np.sum(last**2) + np.sum(previous**2)
    )
    assert abs(phi_head - certificate.optimal_value) <= 10 * TOL
    np.testing.assert_allclose(last.T @ last, previous @ previous.T, atol=1e-12)  # balanced (J9)


def test_linear_head_with_identity_features_is_the_ufm_form():
    K, n, lam = 3, 2, 0.01
    Y = one_hot_targets(balanced_labels(K, n))
    head = C.linear_head_convex(np.eye(K * n), Y, lam, tolerance=TOL)
    _, _, value = C.nuclear_norm_regression_closed_form(Y, lam)
    assert head.dual_value - ROUNDING <= value <= head.optimal_value + ROUNDING


def test_balanced_factorization_attains_f1_and_pads():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3, 2)) @ rng.normal(size=(2, 5))  # rank 2
    a, b = 0.3, 2.0
    W, M = C.balanced_factorization(X, a, b, 4)
    assert W.shape == (3, 4) and M.shape == (4, 5)
    np.testing.assert_allclose(W @ M, X, atol=1e-13)
    nuclear = np.sum(np.linalg.svd(X, compute_uv=False))
    assert (
        abs(0.5 * a * np.sum(W**2) + 0.5 * b * np.sum(M**2) - np.sqrt(a * b) * nuclear)
        <= 1e-12 * nuclear
    )
    np.testing.assert_allclose(a * W.T @ W, b * M @ M.T, atol=1e-12)
    with pytest.raises(ValueError, match="inner_dimension"):
        C.balanced_factorization(X, a, b, 1)


def test_certificate_serializes_to_json():
    Y = one_hot_targets(balanced_labels(2, 2))
    certificate = C.ufm_convex(Y, 0.01, 0.01, bias=True)
    data = json.loads(json.dumps(certificate.to_dict()))
    assert data["problem"] == "ufm_bias" and len(data["primal"]) == 2 and len(data["bias"]) == 2
    assert data["duality_gap"] == certificate.duality_gap


def test_bad_input_names_the_argument():
    Y = one_hot_targets(balanced_labels(2, 2))
    with pytest.raises(ValueError, match="solver"):
        C.nuclear_norm_regression(Y, 0.1, solver="OSQP")
    with pytest.raises(ValueError, match="regularization"):
        C.nuclear_norm_regression(Y, 0.0)
    with pytest.raises(ValueError, match="lambda_W"):
        C.ufm_convex(Y, -1.0, 0.1)
    with pytest.raises(ValueError, match="tolerance"):
        C.nuclear_norm_regression(Y, 0.1, tolerance=0)
    with pytest.raises(ValueError, match="max_iterations"):
        C.nuclear_norm_regression(Y, 0.1, max_iterations=0)
    with pytest.raises(ValueError, match="features"):
        C.linear_head_convex(np.ones((3, 5)), Y, 0.1)
    certificate = C.linear_head_convex(np.eye(4), Y, 0.1)
    with pytest.raises(ValueError, match="certificate"):
        C.ufm_factors_from_certificate(certificate, 0.1, 0.1)


@pytest.mark.parametrize("bias", [False, True])
def test_certify_ufm_model_gives_an_optimal_point(bias):
    from ufm.models import UFM
    from ufm.optima import predict_ufm

    model = UFM(4, 3, 6, 0.005, 0.01, bias=bias)
    certificate, parameters = C.certify_ufm(model, tolerance=TOL)
    model.check_parameters(parameters)
    value = model.objective(parameters).total
    # Φ at the factors equals the certified value up to the dropped solver-noise directions.
    assert abs(value - certificate.optimal_value) <= 10 * TOL
    optimum = predict_ufm(4, 3, 0.005, 0.01, bias=bias).optimal_loss
    assert certificate.dual_value - ROUNDING <= optimum <= certificate.optimal_value + ROUNDING


def test_certify_linear_head_model_with_unequal_penalties():
    from ufm.models import LinearHead

    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(3), 4)
    features = rng.normal(size=(5, 12))
    model = LinearHead(features, labels, (5, 4), (0.01, 0.02))
    certificate, parameters = C.certify_linear_head(model, tolerance=TOL)
    assert certificate.regularization == pytest.approx(np.sqrt(0.01 * 0.02), rel=1e-15)
    assert certificate.duality_gap <= gap_bound(certificate.optimal_value)
    assert abs(model.objective(parameters).total - certificate.optimal_value) <= 10 * TOL
    # Weighted balancedness λ_2W_2ᵀW_2 = λ_1W_1W_1ᵀ (docs/theory.md §3 BAL.weighted) at the factors.
    first, second = parameters.weights
    np.testing.assert_allclose(0.02 * second.T @ second, 0.01 * first @ first.T, atol=1e-12)
    with pytest.raises(ValueError, match="two layers"):
        C.certify_linear_head(LinearHead(features, labels, (5, 4, 3), 0.01))
    with pytest.raises(TypeError, match="UFM"):
        C.certify_ufm(model)
