"""Foundations (docs/theory.md §5 F1–F5) and the known-false statements KF1, KF2 that border them.

Statements
----------
F1 [classical, Srebro et al. 2005]
    For X = WM, (a/2)‖W‖² + (b/2)‖M‖² ≥ √(ab)‖X‖_*, equality at W = (b/a)^{1/4}US^{1/2},
    M = (a/b)^{1/4}S^{1/2}Vᵀ.
F2 [classical; Dang et al. 2023]
    For X = A_p⋯A_1, Σ_j(λ_j/2)‖A_j‖² ≥ (p/2)(Πλ_j)^{1/p}Σ_i s_i(X)^{2/p}, equality for aligned
    balanced factors A_j = c_jU_{j+1}S^{1/p}U_jᵀ with λ_jc_j² equal and Πc_j = 1.
F3 [classical]
    Z* = U(S − τ)_+Vᵀ minimizes ½‖Z − T‖² + τ‖Z‖_*: T − Z* ∈ τ∂‖Z*‖_*, and the value is not
    beaten by perturbations.
F4 [derived]
    If M ≥ 0 has orthogonal (= disjoint-support) columns m_k, then
    min{‖X‖_* : σ(X) = M} = Σ_k‖m_k‖.
F5 [numerical]
    ‖σ(X)‖_* ≤ ‖X‖_* for X ∈ R^{d×2}.
KF1 (known false)
    ‖σ(X)‖_* ≤ ‖X‖_* for three columns.
KF2 (known false)
    ‖σ(X)‖_{S_p}^p ≤ ‖X‖_{S_p}^p for p < 1, even with two columns (p = ½).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from .catalogue import INEQUALITY_TOLERANCE, Draw, Sides, Statement, Tolerance
from .tools import (
    frobenius_squared,
    nuclear_norm,
    random_orthonormal,
    relu,
    schatten_power,
    singular_values,
)

LAMBDA_RANGE = (1e-4, 1e-1)  # λ log-uniform in [1e-4, 1e-1] (docs/theory.md §5)

IDENTITY_TOLERANCE = Tolerance(
    relative=1e-12,
    reason="c·u·κ rule: both sides are sums of nonnegative terms (no cancellation, κ ≈ 1) built from "
    "an SVD of a matrix with at most 8 rows or columns, whose singular values carry absolute error "
    "≲ 10·dim·u·s_1; the relative error is then ≲ 10·dim²·u ≈ 1.4e-13, below 1e-12",
)


def _random_matrix(draw: Draw, rows: int, columns: int) -> np.ndarray:
    """A Gaussian matrix with a random overall scale 10^{U[-2, 2]}."""
    scale = draw.log_uniform(1e-2, 1e2, "matrix scale")
    return scale * draw.generator.standard_normal((rows, columns))


def _matrix_with_rank(draw: Draw, rows: int, columns: int, rank: int) -> np.ndarray:
    """A matrix of the given rank with singular values spread over three decades."""
    generator = draw.generator
    left = random_orthonormal(generator, rows, rank)
    right = random_orthonormal(generator, columns, rank)
    values = 10.0 ** generator.uniform(-3.0, 0.0, rank) * draw.log_uniform(1e-2, 1e2, "X scale")
    return (left * values) @ right.T


# ---------------------------------------------------------------------------------------------
# F1
# ---------------------------------------------------------------------------------------------


def sample_two_factors(draw: Draw) -> dict:
    """Random (a, b, W, M): Gaussian factors, or a balanced factorization perturbed by 10^{U[-8,0]}."""
    a = draw.log_uniform(*LAMBDA_RANGE, "a")
    b = draw.log_uniform(*LAMBDA_RANGE, "b")
    rows = draw.integer(1, 8, "rows of W")
    inner = draw.integer(1, 8, "inner dimension")
    columns = draw.integer(1, 8, "columns of M")
    mode = draw.choice(["gaussian", "near balanced"], "mode")
    if mode == "gaussian":
        left = _random_matrix(draw, rows, inner)
        right = _random_matrix(draw, inner, columns)
    else:
        rank = min(rows, inner, columns)
        target = _matrix_with_rank(draw, rows, columns, rank)
        u, s, vt = np.linalg.svd(target, full_matrices=False)
        u, s, vt = u[:, :rank], s[:rank], vt[:rank]
        pad = inner - rank
        left = np.hstack([(b / a) ** 0.25 * u * np.sqrt(s), np.zeros((rows, pad))])
        right = np.vstack([(a / b) ** 0.25 * np.sqrt(s)[:, None] * vt, np.zeros((pad, columns))])
        size = draw.log_uniform(1e-8, 1.0, "perturbation")
        left = left + size * np.linalg.norm(left) * draw.generator.standard_normal(left.shape) / np.sqrt(left.size)
        right = right + size * np.linalg.norm(right) * draw.generator.standard_normal(right.shape) / np.sqrt(right.size)
    return {"a": a, "b": b, "mode": mode, "W": left, "M": right}


def evaluate_f1_bound(instance: dict) -> Sides:
    """F1 (bound): (a/2)‖W‖² + (b/2)‖M‖² ≥ √(ab)‖WM‖_*."""
    a, b, w, m = instance["a"], instance["b"], instance["W"], instance["M"]
    lhs = 0.5 * a * frobenius_squared(w) + 0.5 * b * frobenius_squared(m)
    rhs = np.sqrt(a * b) * nuclear_norm(w @ m)
    return Sides(lhs=lhs, rhs=rhs, scale=lhs)


def sample_balanced_factorization(draw: Draw) -> dict:
    """A matrix X of random rank and its balanced factorization W = (b/a)^{1/4}US^{1/2}, M = (a/b)^{1/4}S^{1/2}Vᵀ."""
    a = draw.log_uniform(*LAMBDA_RANGE, "a")
    b = draw.log_uniform(*LAMBDA_RANGE, "b")
    rows = draw.integer(1, 8, "rows")
    columns = draw.integer(1, 8, "columns")
    rank = draw.integer(1, min(rows, columns), "rank")
    target = _matrix_with_rank(draw, rows, columns, rank)
    u, s, vt = np.linalg.svd(target, full_matrices=False)
    left = (b / a) ** 0.25 * u * np.sqrt(s)
    right = (a / b) ** 0.25 * np.sqrt(s)[:, None] * vt
    return {"a": a, "b": b, "rank": rank, "X": target, "W": left, "M": right}


def factorization_reproduces(instance: dict) -> bool:
    """Hypothesis: WM = X to rounding (the factors are a factorization of X)."""
    product = instance["W"] @ instance["M"]
    return bool(np.linalg.norm(product - instance["X"]) <= 1e-12 * np.linalg.norm(instance["X"]))


def evaluate_f1_equality(instance: dict) -> Sides:
    """F1 (equality): (a/2)‖W‖² + (b/2)‖M‖² = √(ab)‖X‖_* at the balanced factorization."""
    a, b = instance["a"], instance["b"]
    lhs = 0.5 * a * frobenius_squared(instance["W"]) + 0.5 * b * frobenius_squared(instance["M"])
    rhs = np.sqrt(a * b) * nuclear_norm(instance["X"])
    return Sides(lhs=lhs, rhs=rhs)


# ---------------------------------------------------------------------------------------------
# F2
# ---------------------------------------------------------------------------------------------


def _aligned_balanced_factors(
    draw: Draw, target: np.ndarray, dimensions: list[int], weights: np.ndarray, rank: int
) -> list[np.ndarray]:
    """A_j = c_jU_{j+1}S^{1/p}U_jᵀ with λ_jc_j² equal and Πc_j = 1 (docs/theory.md F2), X of rank ``rank``."""
    factors_count = len(weights)
    u, s, vt = np.linalg.svd(target, full_matrices=False)
    u, s, vt = u[:, :rank], s[:rank], vt[:rank]
    bases = [vt.T] + [
        random_orthonormal(draw.generator, dimensions[j], rank) for j in range(1, factors_count)
    ] + [u]
    coefficients = np.exp(np.mean(np.log(weights)) / 2.0) / np.sqrt(weights)  # (Πλ)^{1/2p}/√λ_j
    root = s ** (1.0 / factors_count)
    return [
        coefficients[j] * (bases[j + 1] * root) @ bases[j].T for j in range(factors_count)
    ]


def sample_factor_chain(draw: Draw) -> dict:
    """p ∈ 2..5 factors with widths 1..6: Gaussian, or aligned balanced factors perturbed by 10^{U[-8,-1]}."""
    count = draw.integer(2, 5, "p")
    dimensions = [draw.integer(1, 6, f"d{j + 1}") for j in range(count + 1)]
    weights = np.array([draw.log_uniform(*LAMBDA_RANGE, f"λ{j + 1}") for j in range(count)])
    mode = draw.choice(["gaussian", "near balanced"], "mode")
    if mode == "gaussian":
        factors = [_random_matrix(draw, dimensions[j + 1], dimensions[j]) for j in range(count)]
    else:
        rank = min(dimensions)
        target = _matrix_with_rank(draw, dimensions[-1], dimensions[0], rank)
        factors = _aligned_balanced_factors(draw, target, dimensions, weights, rank)
        size = draw.log_uniform(1e-8, 1e-1, "perturbation")
        factors = [
            f + size * np.linalg.norm(f) * draw.generator.standard_normal(f.shape) / np.sqrt(f.size)
            for f in factors
        ]
    return {"p": count, "dimensions": dimensions, "lambdas": weights, "mode": mode, "_factors": factors}


def _chain_product(factors: list[np.ndarray]) -> np.ndarray:
    product = factors[0]
    for factor in factors[1:]:
        product = factor @ product
    return product


def evaluate_f2_bound(instance: dict) -> Sides:
    """F2 (bound): Σ_j(λ_j/2)‖A_j‖² ≥ (p/2)(Πλ_j)^{1/p}Σ_i s_i(X)^{2/p}, X = A_p⋯A_1."""
    factors, weights, count = instance["_factors"], instance["lambdas"], instance["p"]
    lhs = sum(0.5 * w * frobenius_squared(f) for w, f in zip(weights, factors))
    geometric = np.exp(np.mean(np.log(weights)))
    # rank X ≤ min_j d_j exactly; the singular values beyond it are rounding (~u·s_1), and
    # s ↦ s^{2/p} would inflate them to ~u^{2/p}·s_1^{2/p} (1e-6 for p = 5), so they are dropped.
    values = singular_values(_chain_product(factors))[: min(instance["dimensions"])]
    rhs = 0.5 * count * geometric * float(np.sum(values ** (2.0 / count)))
    return Sides(lhs=lhs, rhs=rhs, scale=lhs)


def sample_aligned_chain(draw: Draw) -> dict:
    """X of random rank r ≤ min widths and its aligned balanced factors."""
    count = draw.integer(2, 5, "p")
    dimensions = [draw.integer(1, 6, f"d{j + 1}") for j in range(count + 1)]
    weights = np.array([draw.log_uniform(*LAMBDA_RANGE, f"λ{j + 1}") for j in range(count)])
    rank = draw.integer(1, min(dimensions), "rank")
    target = _matrix_with_rank(draw, dimensions[-1], dimensions[0], rank)
    factors = _aligned_balanced_factors(draw, target, dimensions, weights, rank)
    return {
        "p": count, "dimensions": dimensions, "lambdas": weights, "rank": rank,
        "X": target, "_factors": factors,
    }


def chain_reproduces(instance: dict) -> bool:
    """Hypothesis: A_p⋯A_1 = X to rounding."""
    product = _chain_product(instance["_factors"])
    return bool(np.linalg.norm(product - instance["X"]) <= 1e-12 * np.linalg.norm(instance["X"]))


def evaluate_f2_equality(instance: dict) -> Sides:
    """F2 (equality): Σ_j(λ_j/2)‖A_j‖² = (p/2)(Πλ_j)^{1/p}Σ_i s_i(X)^{2/p} for aligned balanced factors."""
    factors, weights, count = instance["_factors"], instance["lambdas"], instance["p"]
    lhs = sum(0.5 * w * frobenius_squared(f) for w, f in zip(weights, factors))
    geometric = np.exp(np.mean(np.log(weights)))
    # X has rank r exactly; its singular values beyond r are rounding and are dropped (see F2.bound).
    values = singular_values(instance["X"])[: instance["rank"]]
    rhs = 0.5 * count * geometric * float(np.sum(values ** (2.0 / count)))
    return Sides(lhs=lhs, rhs=rhs)


# ---------------------------------------------------------------------------------------------
# F3
# ---------------------------------------------------------------------------------------------


def singular_value_threshold(target: np.ndarray, threshold: float) -> np.ndarray:
    """Return Z* = U(S − τ)_+Vᵀ for T = USVᵀ (the formula F3 states)."""
    u, s, vt = np.linalg.svd(target, full_matrices=False)
    return (u * np.maximum(s - threshold, 0.0)) @ vt


def sample_threshold_problem(draw: Draw) -> dict:
    """T of size up to 8×8 and τ uniform in (0, 1.2 s_1) or τ = s_k(1 ± 10^{-k}) (near a kink)."""
    rows = draw.integer(1, 8, "rows")
    columns = draw.integer(1, 8, "columns")
    target = _random_matrix(draw, rows, columns)
    values = singular_values(target)
    if draw.boolean("near a singular value"):
        index = draw.integer(0, values.size - 1, "k")
        exponent = draw.integer(1, 12, "offset exponent")
        sign = 1.0 if draw.boolean("offset sign") else -1.0
        threshold = values[index] * (1.0 + sign * 10.0 ** (-exponent))
    else:
        threshold = draw.uniform(0.01, 1.2, "τ / s_1") * values[0]
    perturbation = draw.generator.standard_normal(target.shape)
    perturbation /= np.linalg.norm(perturbation)
    size = draw.log_uniform(1e-8, 1.0, "ε") * np.linalg.norm(target)
    return {"T": target, "tau": float(threshold), "epsilon": size, "_direction": perturbation}


def _threshold_parts(instance: dict):
    target, threshold = instance["T"], instance["tau"]
    u, s, vt = np.linalg.svd(target, full_matrices=False)
    rank = int(np.sum(s > threshold))
    solution = singular_value_threshold(target, threshold)
    subgradient = (target - solution) / threshold
    return u[:, :rank], vt[:rank].T, subgradient, solution


def threshold_keeps_a_direction(instance: dict) -> bool:
    """Hypothesis: τ < s_1(T), so Z* ≠ 0 and the subgradient has a nonzero U_rV_rᵀ part."""
    return bool(instance["tau"] < singular_values(instance["T"])[0])


def evaluate_f3_subgradient(instance: dict) -> Sides:
    """F3 (subgradient, equality part): G = (T − Z*)/τ satisfies U_rᵀG = V_rᵀ and GV_r = U_r."""
    left, right, subgradient, _ = _threshold_parts(instance)
    lhs = np.concatenate([(left.T @ subgradient).ravel(), (subgradient @ right).ravel()])
    rhs = np.concatenate([right.T.ravel(), left.ravel()])
    return Sides(lhs=lhs, rhs=rhs, scale=1.0)


def evaluate_f3_operator_norm(instance: dict) -> Sides:
    """F3 (subgradient, norm part): ‖(T − Z*)/τ‖_op ≤ 1."""
    _, _, subgradient, _ = _threshold_parts(instance)
    return Sides(lhs=float(singular_values(subgradient)[0]) if subgradient.size else 0.0, rhs=1.0, scale=1.0)


def evaluate_f3_value(instance: dict) -> Sides:
    """F3 (value): ½‖Z* − T‖² + τ‖Z*‖_* ≤ ½‖Z − T‖² + τ‖Z‖_* for Z = Z* + εΔ, ‖Δ‖_F = 1."""
    target, threshold = instance["T"], instance["tau"]
    solution = singular_value_threshold(target, threshold)

    def objective(z: np.ndarray) -> float:
        return 0.5 * frobenius_squared(z - target) + threshold * nuclear_norm(z)

    lhs = objective(solution)
    rhs = objective(solution + instance["epsilon"] * instance["_direction"])
    return Sides(lhs=lhs, rhs=rhs, scale=max(lhs, 0.5 * frobenius_squared(target)))


# ---------------------------------------------------------------------------------------------
# F4
# ---------------------------------------------------------------------------------------------


def _disjoint_support_matrix(draw: Draw, rows: int, columns: int) -> np.ndarray:
    """M ≥ 0 with nonzero columns of pairwise disjoint supports (some rows may be empty)."""
    generator = draw.generator
    owners = np.concatenate([np.arange(columns), generator.integers(-1, columns, rows - columns)])
    generator.shuffle(owners)
    values = generator.uniform(0.05, 1.0, rows) * draw.log_uniform(1e-2, 1e2, "M scale")
    matrix = np.zeros((rows, columns))
    for row, owner in enumerate(owners):
        if owner >= 0:
            matrix[row, owner] = values[row]
    return matrix


def sample_relu_preimage(draw: Draw) -> dict:
    """M with disjoint supports (K ∈ 2..6 columns, d ∈ K..K+6 rows) and a pre-image X = M + negative fill."""
    columns = draw.integer(2, 6, "K")
    rows = columns + draw.integer(0, 6, "extra rows")
    means = _disjoint_support_matrix(draw, rows, columns)
    fill = -np.abs(draw.generator.standard_normal((rows, columns)))
    fill *= draw.generator.random((rows, columns)) < draw.uniform(0.0, 1.0, "fill density")
    fill[means > 0] = 0.0
    size = draw.log_uniform(1e-6, 10.0, "fill scale") * np.max(means)
    return {"K": columns, "d": rows, "M": means, "X": means + size * fill}


def preimage_hypotheses(instance: dict) -> bool:
    """Hypotheses: M ≥ 0, MᵀM diagonal (disjoint supports), nonzero columns, σ(X) = M exactly."""
    means, preimage = instance["M"], instance["X"]
    gram = means.T @ means
    return bool(
        np.all(means >= 0)
        and np.all(gram[~np.eye(gram.shape[0], dtype=bool)] == 0.0)
        and np.all(np.diag(gram) > 0)
        and np.array_equal(relu(preimage), means)
    )


def evaluate_f4_bound(instance: dict) -> Sides:
    """F4 (bound): ‖X‖_* ≥ Σ_k‖m_k‖ for every X with σ(X) = M."""
    lhs = nuclear_norm(instance["X"])
    rhs = float(np.sum(np.linalg.norm(instance["M"], axis=0)))
    return Sides(lhs=lhs, rhs=rhs, scale=lhs)


def sample_beta_family(draw: Draw) -> dict:
    """X₂(β) = a₂((1+β)I_K − βJ_K) with rows permuted and zero rows added; M₂ = a₂I_K likewise.

    β is drawn from {0, ½/(K−1), 1/(K−1)}, uniform in [0, 1/(K−1)], or 1/(K−1)·(1 − 10^{-k}).
    """
    classes = draw.integer(2, 6, "K")
    extra = draw.integer(0, 6, "extra rows")
    top = 1.0 / (classes - 1)
    mode = draw.choice(["0", "half", "top", "uniform", "near top"], "β choice")
    beta = {
        "0": 0.0,
        "half": 0.5 * top,
        "top": top,
        "uniform": draw.uniform(0.0, top, "β / βmax") if mode == "uniform" else 0.0,
        "near top": top * (1.0 - 10.0 ** (-draw.integer(1, 12, "k"))) if mode == "near top" else 0.0,
    }[mode]
    scale = draw.log_uniform(1e-2, 1e2, "a₂")
    square = scale * ((1.0 + beta) * np.eye(classes) - beta * np.ones((classes, classes)))
    preimage = np.vstack([square, np.zeros((extra, classes))])
    order = draw.generator.permutation(classes + extra)
    preimage = preimage[order]
    means = relu(preimage)
    return {"K": classes, "beta": beta, "a2": scale, "X": preimage, "M": means}


def evaluate_f4_equality(instance: dict) -> Sides:
    """F4 (equality on the β family): ‖X₂(β)‖_* = Σ_k‖m_k‖ = K·a₂."""
    lhs = nuclear_norm(instance["X"])
    rhs = float(np.sum(np.linalg.norm(instance["M"], axis=0)))
    return Sides(lhs=lhs, rhs=rhs)


# ---------------------------------------------------------------------------------------------
# F5, KF1, KF2: ReLU contraction of Schatten quasi-norms
# ---------------------------------------------------------------------------------------------


def _relu_gap(vector: np.ndarray, rows: int, columns: int, power: float) -> float:
    """(‖σ(X)‖_{S_p}^p − ‖X‖_{S_p}^p)/‖X‖_{S_p}^p for X = vector reshaped (0 at X = 0)."""
    matrix = vector.reshape(rows, columns)
    base = schatten_power(matrix, power)
    if base <= 1e-300:
        return 0.0
    return (schatten_power(relu(matrix), power) - base) / base


def sample_two_columns(draw: Draw) -> dict:
    """X ∈ R^{d×2}, d ∈ 1..8: Gaussian, nearly rank one with anti-correlated columns, or sparse."""
    rows = draw.integer(1, 8, "d")
    generator = draw.generator
    mode = draw.choice(["gaussian", "anti-correlated", "sparse", "one negative entry"], "mode")
    if mode == "gaussian":
        matrix = generator.standard_normal((rows, 2))
    elif mode == "anti-correlated":
        column = generator.standard_normal(rows)
        noise = draw.log_uniform(1e-6, 1.0, "noise") * generator.standard_normal((rows, 2))
        matrix = np.column_stack([column, -draw.uniform(0.2, 5.0, "ratio") * column]) + noise
    elif mode == "sparse":
        matrix = generator.standard_normal((rows, 2)) * (generator.random((rows, 2)) < 0.5)
    else:
        matrix = np.abs(generator.standard_normal((rows, 2)))
        matrix[generator.integers(rows), generator.integers(2)] *= -draw.log_uniform(1e-6, 1.0, "size")
    return {"d": rows, "mode": mode, "X": matrix * draw.log_uniform(1e-3, 1e3, "scale")}


def evaluate_relu_nuclear(instance: dict) -> Sides:
    """‖σ(X)‖_* ≤ ‖X‖_*."""
    matrix = instance["X"]
    rhs = nuclear_norm(matrix)
    return Sides(lhs=nuclear_norm(relu(matrix)), rhs=rhs, scale=rhs)


def _search(draw: Draw, rows: int, columns: int, power: float, restarts: int) -> dict:
    """Nelder–Mead on the relative gap (‖σ(X)‖_{S_p}^p − ‖X‖_{S_p}^p)/‖X‖_{S_p}^p from a random start."""
    start = draw.generator.standard_normal(rows * columns)
    point = start
    for _ in range(restarts):
        found = minimize(
            lambda v: -_relu_gap(v, rows, columns, power),
            point,
            method="Nelder-Mead",
            options={"maxiter": 400 * rows * columns, "xatol": 1e-10, "fatol": 1e-14},
        )
        point = found.x / max(np.max(np.abs(found.x)), 1e-300)
    return {"d": rows, "columns": columns, "p": power, "start": start, "X": point.reshape(rows, columns)}


def sample_two_column_search(draw: Draw) -> dict:
    """An adversarial search for F5: d ∈ 2..4 rows, two columns, p = 1."""
    return _search(draw, draw.integer(2, 4, "d"), 2, 1.0, restarts=2)


def evaluate_relu_schatten(instance: dict) -> Sides:
    """‖σ(X)‖_{S_p}^p ≤ ‖X‖_{S_p}^p at the point an instance holds (p from the instance)."""
    matrix, power = instance["X"], instance["p"]
    lhs = schatten_power(relu(matrix), power)
    rhs = schatten_power(matrix, power)
    note = f"relative excess (lhs − rhs)/rhs = {(lhs - rhs) / rhs:.4g}"
    return Sides(lhs=lhs, rhs=rhs, scale=rhs, note=note)


def sample_three_column_search(draw: Draw) -> dict:
    """A counterexample search for KF1: X ∈ R^{3×3}, p = 1."""
    return _search(draw, 3, 3, 1.0, restarts=2)


def sample_half_power_search(draw: Draw) -> dict:
    """A counterexample search for KF2: X ∈ R^{2×2}, p = ½."""
    return _search(draw, 2, 2, 0.5, restarts=2)


SEARCH_TOLERANCE = Tolerance(
    relative=1e-10,
    absolute=1e-14,
    reason="inequality rule of docs/theory.md §5 (the sides are Schatten sums of a d×2 or d×3 matrix, "
    "error ≲ 1e-15 relative); a counterexample must exceed it, so rounding is never reported as one",
)

SOURCE_F1 = "Srebro, Rennie & Jaakkola 2005 (NeurIPS)"
SOURCE_F2 = "Dang et al. 2023 (ICML); deep-linear representation cost"

STATEMENTS = [
    Statement(
        identifier="F1.bound",
        title="nuclear norm as a two-factor penalty (bound)",
        source=SOURCE_F1,
        tag="[classical]",
        formula="for X = WM, (a/2)‖W‖² + (b/2)‖M‖² ≥ √(ab)‖X‖_*",
        relation=">=",
        sample=sample_two_factors,
        evaluate=evaluate_f1_bound,
        tolerance=INEQUALITY_TOLERANCE,
        default_instances=300,
        hypothesis_examples=40,
    ),
    Statement(
        identifier="F1.equality",
        title="nuclear norm at the balanced factorization (equality)",
        source=SOURCE_F1,
        tag="[classical]",
        formula="(a/2)‖W‖² + (b/2)‖M‖² = √(ab)‖X‖_* at W = (b/a)^{1/4}US^{1/2}, M = (a/b)^{1/4}S^{1/2}Vᵀ",
        relation="=",
        sample=sample_balanced_factorization,
        hypotheses=factorization_reproduces,
        evaluate=evaluate_f1_equality,
        tolerance=IDENTITY_TOLERANCE,
        default_instances=200,
        minimum_held=0.9,
        hypothesis_examples=20,
    ),
    Statement(
        identifier="F2.bound",
        title="Schatten-2/p representation cost of a p-factor product (bound)",
        source=SOURCE_F2,
        tag="[classical]",
        formula="for X = A_p⋯A_1, Σ_j(λ_j/2)‖A_j‖² ≥ (p/2)(Πλ_j)^{1/p}Σ_i s_i(X)^{2/p}",
        relation=">=",
        sample=sample_factor_chain,
        evaluate=evaluate_f2_bound,
        tolerance=INEQUALITY_TOLERANCE,
        default_instances=300,
        hypothesis_examples=40,
    ),
    Statement(
        identifier="F2.equality",
        title="Schatten representation cost at aligned balanced factors (equality)",
        source=SOURCE_F2,
        tag="[classical]",
        formula="equality for A_j = c_jU_{j+1}S^{1/p}U_jᵀ with λ_jc_j² equal and Πc_j = 1",
        relation="=",
        sample=sample_aligned_chain,
        hypotheses=chain_reproduces,
        evaluate=evaluate_f2_equality,
        tolerance=IDENTITY_TOLERANCE,
        default_instances=200,
        minimum_held=0.9,
        hypothesis_examples=20,
    ),
    Statement(
        identifier="F3.subgradient",
        title="SVT prox: T − Z* = τ(U_rV_rᵀ + W) (equality part)",
        source="classical (Cai, Candès & Shen 2010)",
        tag="[classical]",
        formula="Z* = U(S − τ)_+Vᵀ; G = (T − Z*)/τ has U_rᵀG = V_rᵀ and GV_r = U_r",
        relation="=",
        sample=sample_threshold_problem,
        hypotheses=threshold_keeps_a_direction,
        evaluate=evaluate_f3_subgradient,
        tolerance=Tolerance(
            relative=1e-12,
            reason="entries of orthonormal factors (scale 1); G is T/τ minus a matrix built from "
            "the same SVD, so the error is ≲ 10·dim·u·s_1/τ with s_1/τ ≤ 100 on this generator "
            "(τ ≥ 0.01·s_1): ≲ 2e-12 in the worst case, observed ≲ 1e-14",
        ),
        default_instances=200,
        hypothesis_examples=30,
    ),
    Statement(
        identifier="F3.opnorm",
        title="SVT prox: ‖T − Z*‖_op ≤ τ (norm part of the subgradient condition)",
        source="classical (Cai, Candès & Shen 2010)",
        tag="[classical]",
        formula="‖(T − Z*)/τ‖_op ≤ 1",
        relation="<=",
        sample=sample_threshold_problem,
        evaluate=evaluate_f3_operator_norm,
        tolerance=INEQUALITY_TOLERANCE,
        default_instances=200,
        hypothesis_examples=30,
    ),
    Statement(
        identifier="F3.value",
        title="SVT prox: no perturbation lowers ½‖Z − T‖² + τ‖Z‖_*",
        source="classical (Cai, Candès & Shen 2010)",
        tag="[classical]",
        formula="½‖Z* − T‖² + τ‖Z*‖_* ≤ ½‖Z − T‖² + τ‖Z‖_* for Z = Z* + εΔ",
        relation="<=",
        sample=sample_threshold_problem,
        evaluate=evaluate_f3_value,
        tolerance=INEQUALITY_TOLERANCE,
        default_instances=200,
        hypothesis_examples=30,
    ),
    Statement(
        identifier="F4.bound",
        title="ReLU pre-image of disjoint-support columns (bound)",
        source="docs/theory.md §4.4 and §5 F4",
        tag="[derived]",
        formula="M ≥ 0 with orthogonal columns m_k, σ(X) = M ⇒ ‖X‖_* ≥ Σ_k‖m_k‖",
        relation=">=",
        sample=sample_relu_preimage,
        hypotheses=preimage_hypotheses,
        evaluate=evaluate_f4_bound,
        tolerance=INEQUALITY_TOLERANCE,
        default_instances=300,
        minimum_held=0.9,
        hypothesis_examples=40,
    ),
    Statement(
        identifier="F4.equality",
        title="ReLU pre-image: the β family attains the bound",
        source="docs/theory.md §4.4 and §5 F4",
        tag="[derived]",
        formula="‖X₂(β)‖_* = Σ_k‖m_k‖ = K·a₂ for β ∈ [0, 1/(K−1)], σ(X₂(β)) = a₂I_K",
        relation="=",
        sample=sample_beta_family,
        hypotheses=preimage_hypotheses,
        evaluate=evaluate_f4_equality,
        tolerance=IDENTITY_TOLERANCE,
        default_instances=200,
        minimum_held=0.9,
        hypothesis_examples=20,
    ),
    Statement(
        identifier="F5.random",
        title="two-column ReLU nuclear-norm lemma, random instances",
        source="docs/theory.md §5 F5",
        tag="[numerical]",
        formula="‖σ(X)‖_* ≤ ‖X‖_* for X ∈ R^{d×2}",
        relation="<=",
        sample=sample_two_columns,
        evaluate=evaluate_relu_nuclear,
        tolerance=INEQUALITY_TOLERANCE,
        default_instances=3000,
        hypothesis_examples=60,
    ),
    Statement(
        identifier="F5.search",
        title="two-column ReLU nuclear-norm lemma, adversarial Nelder–Mead search",
        source="docs/theory.md §5 F5",
        tag="[numerical]",
        formula="max over X ∈ R^{d×2} of (‖σ(X)‖_* − ‖X‖_*)/‖X‖_* ≤ 0",
        relation="<=",
        sample=sample_two_column_search,
        evaluate=evaluate_relu_schatten,
        tolerance=SEARCH_TOLERANCE,
        default_instances=20,
    ),
    Statement(
        identifier="KF1",
        title="three-column ReLU nuclear-norm inequality (known false)",
        source="docs/theory.md §5 KF1",
        tag="[numerical]",
        formula="‖σ(X)‖_* ≤ ‖X‖_* for X ∈ R^{3×3}: Nelder–Mead finds violations ≈ 4.8%",
        relation="<=",
        sample=sample_three_column_search,
        evaluate=evaluate_relu_schatten,
        tolerance=SEARCH_TOLERANCE,
        default_instances=8,
        minimum_held=1.0,
        expected_false=True,
    ),
    Statement(
        identifier="KF2",
        title="ReLU contraction of Schatten-p for p = ½, two columns (known false)",
        source="docs/theory.md §5 KF2",
        tag="[numerical]",
        formula="‖σ(X)‖_{S_p}^p ≤ ‖X‖_{S_p}^p for p = ½, X ∈ R^{2×2}: violations up to ≈ 41%",
        relation="<=",
        sample=sample_half_power_search,
        evaluate=evaluate_relu_schatten,
        tolerance=SEARCH_TOLERANCE,
        default_instances=8,
        minimum_held=1.0,
        expected_false=True,
    ),
]

