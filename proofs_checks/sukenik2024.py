"""Súkeník, Lampert & Mondelli 2024 (paper (C)): low-rank bias, LR1–LR5 and KF3.

docs/theory.md §4.5 and §5 LR. Classes are the edges of the complete graph K_r (K = r(r−1)/2);
B ∈ {0,1}^{r×K} is the vertex–edge incidence matrix and A = BᵀB − 2I_K the adjacency matrix of
the triangular graph T(r).

Statements
----------
LR1 [derived] (exact, integers)
    BBᵀ = (r−2)I_r + J_r, rank B = r, σ(BᵀB − J_K) = I_K, J_K = ¼BᵀJ_rB,
    T(r) = SRG(K, 2(r−2), r−2, 4) with spectrum {2(r−2)¹, (r−4)^{r−1}, (−2)^{K−r}},
    ν_r = ‖B‖_* = √(2(r−1)) + (r−1)√(r−2), κ_r = ‖Bᵀ(I_r − J_r/4)‖_F² = (r−1)(r−2) + (1 − r/4)²(2r−2).
LR3 [derived + numerical]
    (L+1)·log(c_r/K) = log(ν_r²κ_r/r³) + L·log(2/(r−1)), decreasing in L; c_r/K < 1 for all
    L ≥ 4 once 16ν_r²κ_r < r³(r−1)⁴ (true for 4 ≤ r ≤ 10⁶); at L = 3, 8ν_r²κ_r > r³(r−1)³.
    The table of §4.5 to 3 decimals.
"""

from __future__ import annotations

import math
from itertools import combinations

import mpmath
import numpy as np
import sympy
from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from .catalogue import INEQUALITY_TOLERANCE, Draw, Sides, Statement, Tolerance
from .tools import nuclear_norm, relu

SOURCE = "Súkeník, Lampert & Mondelli 2024 (NeurIPS), arXiv:2405.14468; docs/theory.md §4.5"

EXACT = Tolerance(
    relative=0.0,
    reason="exact integer (or rational) arithmetic: any difference is a violation",
)


def incidence_matrix(vertices: int) -> np.ndarray:
    """B ∈ {0,1}^{r×K}: column (i, j), i < j in lexicographic order, has ones at rows i and j."""
    edges = list(combinations(range(vertices), 2))
    matrix = np.zeros((vertices, len(edges)), dtype=np.int64)
    for column, (first, second) in enumerate(edges):
        matrix[first, column] = 1
        matrix[second, column] = 1
    return matrix


def integer_product(*factors: np.ndarray) -> np.ndarray:
    """Exact product of integer matrices through float64 BLAS.

    Every partial sum is an integer of absolute value below 2^53 for the sizes used here
    (K ≤ 780, entries ≤ 40), so float64 arithmetic is exact; the bound is asserted.
    """
    product = factors[0].astype(np.float64)
    for factor in factors[1:]:
        bound = np.max(np.abs(product)) * np.max(np.abs(factor)) * product.shape[1]
        if bound >= 2.0**53:
            raise OverflowError("integer product would leave the exact float64 range")
        product = product @ factor.astype(np.float64)
    return np.rint(product).astype(np.int64)


def sample_vertex_count(draw: Draw) -> dict:
    """r: the first ten seeded instances enumerate r = 3..12 (docs/theory.md's range), later ones r ∈ 3..40."""
    if draw.index is not None and draw.index < 10:
        vertices = 3 + draw.index
    else:
        vertices = draw.integer(3, 40, "r")
    return {"r": vertices, "K": vertices * (vertices - 1) // 2}


def evaluate_lr1_gram(instance: dict) -> Sides:
    """LR1: BBᵀ = (r−2)I_r + J_r."""
    vertices = instance["r"]
    matrix = incidence_matrix(vertices)
    expected = (vertices - 2) * np.eye(vertices, dtype=np.int64) + np.ones((vertices, vertices), np.int64)
    return Sides(lhs=integer_product(matrix, matrix.T), rhs=expected, scale=1.0)


def evaluate_lr1_rank(instance: dict) -> Sides:
    """LR1: rank B = r (exact rank over the rationals)."""
    matrix = incidence_matrix(instance["r"])
    rows = [[QQ(int(entry)) for entry in row] for row in matrix]
    rank = DomainMatrix(rows, matrix.shape, QQ).rank()
    return Sides(lhs=float(rank), rhs=float(instance["r"]), scale=1.0)


def evaluate_lr1_relu(instance: dict) -> Sides:
    """LR1: σ(BᵀB − J_K) = I_K."""
    matrix = incidence_matrix(instance["r"])
    classes = matrix.shape[1]
    return Sides(lhs=relu(integer_product(matrix.T, matrix) - np.ones((classes, classes), np.int64)),
                 rhs=np.eye(classes), scale=1.0)


def evaluate_lr1_ones(instance: dict) -> Sides:
    """LR1: J_K = ¼BᵀJ_rB (checked as 4J_K = BᵀJ_rB in integers)."""
    matrix = incidence_matrix(instance["r"])
    vertices, classes = matrix.shape
    return Sides(lhs=4 * np.ones((classes, classes), np.int64),
                 rhs=integer_product(matrix.T, np.ones((vertices, vertices), np.int64), matrix),
                 scale=1.0)


def _adjacency(vertices: int) -> np.ndarray:
    matrix = incidence_matrix(vertices)
    return integer_product(matrix.T, matrix) - 2 * np.eye(matrix.shape[1], dtype=np.int64)


def evaluate_lr1_strongly_regular(instance: dict) -> Sides:
    """LR1: A is a 0/1 symmetric matrix with zero diagonal and A² = kI + λA + μ(J − I − A),
    (k, λ, μ) = (2(r−2), r−2, 4): T(r) = SRG(K, 2(r−2), r−2, 4)."""
    vertices = instance["r"]
    adjacency = _adjacency(vertices)
    classes = adjacency.shape[0]
    identity = np.eye(classes, dtype=np.int64)
    ones = np.ones((classes, classes), dtype=np.int64)
    degree, common_adjacent, common_other = 2 * (vertices - 2), vertices - 2, 4
    structure_ok = (
        np.array_equal(adjacency, adjacency.T)
        and set(np.unique(adjacency)) <= {0, 1}
        and not np.any(np.diag(adjacency))
    )
    lhs = integer_product(adjacency, adjacency)
    rhs = degree * identity + common_adjacent * adjacency + common_other * (ones - identity - adjacency)
    return Sides(lhs=np.append(lhs.ravel(), int(structure_ok)), rhs=np.append(rhs.ravel(), 1), scale=1.0)


def evaluate_lr1_spectrum(instance: dict) -> Sides:
    """LR1: spectrum of A is {2(r−2)¹, (r−4)^{r−1}, (−2)^{K−r}} (exact).

    (A − 2(r−2)I)(A − (r−4)I)(A + 2I) = 0 in integers, so A has at most these three eigenvalues;
    their multiplicities solve the exact (rational) Vandermonde system given by K = Σm_i,
    tr A = Σm_iθ_i and tr A² = Σm_iθ_i². The sides are (m_1, m_2, m_3, max |polynomial entry|)
    against (1, r−1, K−r, 0).
    """
    vertices = instance["r"]
    adjacency = _adjacency(vertices)
    classes = adjacency.shape[0]
    identity = np.eye(classes, dtype=np.int64)
    values = (2 * (vertices - 2), vertices - 4, -2)
    polynomial = integer_product(
        adjacency - values[0] * identity, adjacency - values[1] * identity, adjacency + 2 * identity
    )
    system = sympy.Matrix([[1, 1, 1], list(values), [v * v for v in values]])
    traces = sympy.Matrix([classes, int(np.trace(adjacency)), int(np.sum(adjacency * adjacency))])
    multiplicities = system.LUsolve(traces)
    lhs = [float(m) for m in multiplicities] + [float(np.max(np.abs(polynomial)))]
    return Sides(lhs=np.array(lhs), rhs=np.array([1.0, vertices - 1.0, classes - vertices, 0.0]), scale=1.0)


def nu_formula(vertices: int) -> float:
    """ν_r = √(2(r−1)) + (r−1)√(r−2) (docs/theory.md §4.5)."""
    return math.sqrt(2 * (vertices - 1)) + (vertices - 1) * math.sqrt(vertices - 2)


def evaluate_lr1_nu(instance: dict) -> Sides:
    """LR1: ‖B‖_* = √(2(r−1)) + (r−1)√(r−2) (SVD against the formula)."""
    vertices = instance["r"]
    return Sides(lhs=nuclear_norm(incidence_matrix(vertices).astype(float)), rhs=nu_formula(vertices))


def evaluate_lr1_kappa(instance: dict) -> Sides:
    """LR1: ‖Bᵀ(I_r − J_r/4)‖_F² = (r−1)(r−2) + (1 − r/4)²(2r−2) (exact: both sides ×16 in integers)."""
    vertices = instance["r"]
    matrix = incidence_matrix(vertices)
    scaled = integer_product(
        matrix.T, 4 * np.eye(vertices, dtype=np.int64) - np.ones((vertices, vertices), np.int64)
    )
    lhs = int(np.sum(scaled * scaled))
    rhs = 16 * (vertices - 1) * (vertices - 2) + (4 - vertices) ** 2 * (2 * vertices - 2)
    return Sides(lhs=float(lhs), rhs=float(rhs), scale=1.0)


# ---------------------------------------------------------------------------------------------
# LR3
# ---------------------------------------------------------------------------------------------

LARGEST_R = 10**6


def _nu_squared_kappa(vertices, precision: int = 60):
    """(ν_r², κ_r) in mpmath at ``precision`` digits."""
    with mpmath.workdps(precision):
        r = mpmath.mpf(vertices)
        nu = mpmath.sqrt(2 * (r - 1)) + (r - 1) * mpmath.sqrt(r - 2)
        kappa = (r - 1) * (r - 2) + (1 - r / 4) ** 2 * (2 * r - 2)
        return nu * nu, kappa


def sample_ratio_case(draw: Draw) -> dict:
    """r (log-uniform integer in [4, 10⁶]; the first instances are r = 4, 5, 10⁶) and L ∈ 3..20."""
    fixed = (4, 5, LARGEST_R)
    if draw.index is not None and draw.index < len(fixed):
        vertices = fixed[draw.index]
    else:
        vertices = int(round(draw.log_uniform(4, LARGEST_R, "r")))
    return {"r": vertices, "K": vertices * (vertices - 1) // 2, "L": draw.integer(3, 20, "L")}


def evaluate_lr3_identity(instance: dict) -> Sides:
    """LR3: (L+1)·log(c_r/K) = log(ν_r²κ_r/r³) + L·log(2/(r−1)), c_r = (ν_r²r^{L−3}κ_rK)^{1/(L+1)}.

    Evaluated in 60-digit arithmetic; the sides are compared in float64 against the size of the
    largest logarithm involved.
    """
    vertices, depth, classes = instance["r"], instance["L"], instance["K"]
    with mpmath.workdps(60):
        nu_squared, kappa = _nu_squared_kappa(vertices)
        coefficient = (nu_squared * mpmath.mpf(vertices) ** (depth - 3) * kappa * classes) ** (
            mpmath.mpf(1) / (depth + 1)
        )
        lhs = (depth + 1) * mpmath.log(coefficient / classes)
        first = mpmath.log(nu_squared * kappa / mpmath.mpf(vertices) ** 3)
        second = depth * mpmath.log(mpmath.mpf(2) / (vertices - 1))
        rhs = first + second
    scale = float(abs(first) + abs(second) + abs(lhs))
    return Sides(lhs=float(lhs), rhs=float(rhs), scale=scale)


def evaluate_lr3_depth_four(instance: dict) -> Sides:
    """LR3 (L ≥ 4): 16ν_r²κ_r < r³(r−1)⁴ (60-digit arithmetic).

    Since log(2/(r−1)) < 0 for r ≥ 4, (L+1)log(c_r/K) decreases in L, so this makes c_r/K < 1 for
    every L ≥ 4.
    """
    vertices = instance["r"]
    nu_squared, kappa = _nu_squared_kappa(vertices)
    lhs = 16 * nu_squared * kappa
    rhs = mpmath.mpf(vertices) ** 3 * mpmath.mpf(vertices - 1) ** 4
    return Sides(lhs=float(lhs / rhs), rhs=1.0, scale=1.0,
                 note=f"16ν²κ/(r³(r−1)⁴) − 1 = {mpmath.nstr(lhs / rhs - 1, 6)}")


def evaluate_lr3_depth_three(instance: dict) -> Sides:
    """LR3 (L = 3): 8ν_r²κ_r > r³(r−1)³ (60-digit arithmetic; the ratio tends to 1⁺)."""
    vertices = instance["r"]
    nu_squared, kappa = _nu_squared_kappa(vertices)
    ratio = 8 * nu_squared * kappa / (mpmath.mpf(vertices) ** 3 * mpmath.mpf(vertices - 1) ** 3)
    # the ratio exceeds 1 by ≈ (2√2 − 2)/r ≥ 8e-7; subtracting 1 in 60 digits keeps it exact
    return Sides(lhs=float(ratio - 1), rhs=0.0, scale=1.0,
                 note=f"8ν²κ/(r³(r−1)³) − 1 = {mpmath.nstr(ratio - 1, 6)}")


def sample_full_range(draw: Draw) -> dict:
    """The whole range 4 ≤ r ≤ 10⁶ at once (one instance; vectorized float64)."""
    return {"r_min": 4, "r_max": LARGEST_R}


def evaluate_lr3_full_range(instance: dict) -> Sides:
    """LR3 over every r in [4, 10⁶]: 16ν²κ/(r³(r−1)⁴) < 1 and 8ν²κ/(r³(r−1)³) > 1.

    Uses κ_r = r²(r−1)/8 (equal to the LR1 formula) and ν_r² expanded, so the L = 3 quantity is
    (r−2)/r + 2√(2(r−2))/(r√(r−1)) + 2/(r(r−1)) − 1 ≥ 8e-7, far above float64 rounding (1e-15).
    The sides are (max over r of the L ≥ 4 ratio, −min over r of the L = 3 excess) ≤ (1, 0).
    """
    r = np.arange(instance["r_min"], instance["r_max"] + 1, dtype=float)
    # ν²/(r(r−1)²) written without cancellation
    nu_ratio = (r - 2) / r + 2.0 * np.sqrt(2.0 * (r - 2)) / (r * np.sqrt(r - 1)) + 2.0 / (r * (r - 1))
    depth_four = 2.0 * nu_ratio / (r - 1)  # 16ν²κ/(r³(r−1)⁴) = 2ν²/(r(r−1)³)
    depth_three_excess = (2.0 * np.sqrt(2.0 * (r - 2)) / (r * np.sqrt(r - 1)) + 2.0 / (r * (r - 1))) - 2.0 / r
    return Sides(lhs=np.array([np.max(depth_four), -np.min(depth_three_excess)]), rhs=np.array([1.0, 0.0]),
                 scale=1.0, note=f"smallest L = 3 excess {np.min(depth_three_excess):.3e} at r = "
                 f"{int(r[np.argmin(depth_three_excess)])}")


STRICT = Tolerance(
    relative=0.0,
    absolute=0.0,
    reason="strict inequality evaluated in 60-digit arithmetic (or in float64 with a margin ≥ 8e-7 "
    "far above rounding): no allowance",
)
LOGARITHM_TOLERANCE = Tolerance(
    relative=1e-14,
    reason="both sides are computed in 60-digit arithmetic and rounded once to float64; the "
    "difference is measured against the sum of the logarithms' sizes: ≤ 2u ≈ 4e-16",
)
NU_TOLERANCE = Tolerance(
    relative=1e-12,
    reason="float64 SVD of an r×K 0/1 matrix (K ≤ 780): singular values with absolute error "
    "≲ 10·K·u·s_1, summed over r values of size ≥ √(r−2): relative error ≲ 1e-12 only in the "
    "largest cases, observed ≲ 1e-14",
)


def _lr1(identifier: str, title: str, formula: str, evaluate, tolerance=EXACT) -> Statement:
    return Statement(
        identifier=identifier, title=title, source=SOURCE, tag="[derived]", formula=formula,
        relation="=", sample=sample_vertex_count, evaluate=evaluate, tolerance=tolerance,
        default_instances=16, minimum_held=1.0, hypothesis_examples=8,
    )


STATEMENTS = [
    _lr1("LR1.gram", "incidence Gram of the triangular graph", "BBᵀ = (r−2)I_r + J_r",
         evaluate_lr1_gram),
    _lr1("LR1.rank", "rank of the incidence matrix", "rank B = r", evaluate_lr1_rank),
    _lr1("LR1.relu", "ReLU of the shifted edge Gram", "σ(BᵀB − J_K) = I_K", evaluate_lr1_relu),
    _lr1("LR1.ones", "all-ones matrix through B", "J_K = ¼BᵀJ_rB", evaluate_lr1_ones),
    _lr1("LR1.srg", "T(r) is strongly regular", "T(r) = SRG(K, 2(r−2), r−2, 4)",
         evaluate_lr1_strongly_regular),
    _lr1("LR1.spectrum", "spectrum of T(r)", "spectrum {2(r−2)¹, (r−4)^{r−1}, (−2)^{K−r}}",
         evaluate_lr1_spectrum),
    _lr1("LR1.nu", "nuclear norm of B", "ν_r := ‖B‖_* = √(2(r−1)) + (r−1)√(r−2)", evaluate_lr1_nu,
         NU_TOLERANCE),
    _lr1("LR1.kappa", "Frobenius norm of Bᵀ(I − J/4)",
         "κ_r := ‖Bᵀ(I_r − J_r/4)‖_F² = (r−1)(r−2) + (1 − r/4)²(2r−2)", evaluate_lr1_kappa),
    Statement(
        identifier="LR3.identity", title="log-ratio of the SRG and DNC coefficients", source=SOURCE,
        tag="[derived]",
        formula="(L+1)·log(c_r/K) = log(ν_r²κ_r/r³) + L·log(2/(r−1)), c_r = (ν_r²·r^{L−3}·κ_r·K)^{1/(L+1)}",
        relation="=", sample=sample_ratio_case, evaluate=evaluate_lr3_identity,
        tolerance=LOGARITHM_TOLERANCE, default_instances=40, minimum_held=1.0, hypothesis_examples=15,
    ),
    Statement(
        identifier="LR3.depth4", title="SRG beats DNC for every L ≥ 4", source=SOURCE,
        tag="[derived]", formula="16ν_r²κ_r < r³(r−1)⁴ (4 ≤ r ≤ 10⁶), so c_r/K < 1 for L ≥ 4",
        relation="<=", sample=sample_ratio_case, evaluate=evaluate_lr3_depth_four, tolerance=STRICT,
        default_instances=40, minimum_held=1.0, hypothesis_examples=15,
    ),
    Statement(
        identifier="LR3.depth3", title="SRG loses to DNC at L = 3", source=SOURCE,
        tag="[derived]", formula="8ν_r²κ_r > r³(r−1)³ (4 ≤ r ≤ 10⁶), ratio → 1⁺",
        relation=">=", sample=sample_ratio_case, evaluate=evaluate_lr3_depth_three, tolerance=STRICT,
        default_instances=40, minimum_held=1.0, hypothesis_examples=15,
    ),
    Statement(
        identifier="LR3.range", title="both LR3 inequalities for every r in [4, 10⁶]", source=SOURCE,
        tag="[numerical]",
        formula="max_r 16ν_r²κ_r/(r³(r−1)⁴) < 1 and min_r 8ν_r²κ_r/(r³(r−1)³) > 1, 4 ≤ r ≤ 10⁶",
        relation="<=", sample=sample_full_range, evaluate=evaluate_lr3_full_range, tolerance=STRICT,
        default_instances=1, minimum_held=1.0,
    ),
]


# ---------------------------------------------------------------------------------------------
# Statements that evaluate the package's SRG code (ufm.optima, ufm.models)
# ---------------------------------------------------------------------------------------------

OPTIMA_SRG = ("ufm.optima:triangular_incidence,srg_nuclear_norm,srg_kappa,srg_ratio,predict_srg,"
              "srg_construct,srg_edge_subset_search,predict_dufm")
MODELS = "ufm.models:DeepUFM"
METRICS = "ufm.metrics:numerical_rank"


def evaluate_lr1_package(instance: dict) -> Sides:
    """LR1 against ``ufm.optima``: triangular_incidence(r) = B, srg_nuclear_norm(r) = ‖B‖_* (SVD),
    srg_kappa(r) = ‖Bᵀ(I_r − J_r/4)‖_F² (exact); the last two compared as ratios."""
    from ufm.optima import srg_kappa, srg_nuclear_norm, triangular_incidence

    vertices = instance["r"]
    matrix = incidence_matrix(vertices)
    packaged = np.asarray(triangular_incidence(vertices))
    scaled = integer_product(
        matrix.T, 4 * np.eye(vertices, dtype=np.int64) - np.ones((vertices, vertices), np.int64))
    exact_kappa = float(np.sum(scaled * scaled)) / 16.0
    nuclear = nuclear_norm(matrix.astype(float))
    same_shape = packaged.shape == matrix.shape
    entries = (packaged == matrix).ravel().astype(float) if same_shape else np.zeros(matrix.size)
    lhs = np.concatenate([entries, [srg_nuclear_norm(vertices) / nuclear, srg_kappa(vertices) / exact_kappa]])
    return Sides(lhs=lhs, rhs=np.ones_like(lhs), scale=1.0)


def evaluate_lr3_package(instance: dict) -> Sides:
    """LR3 with ``ufm.optima.srg_ratio``: (L+1)·log(c_r/K) = log(ν_r²κ_r/r³) + L·log(2/(r−1))."""
    from ufm.optima import srg_ratio

    vertices, depth = instance["r"], instance["L"]
    nu_squared, kappa = _nu_squared_kappa(vertices)
    first = float(mpmath.log(nu_squared * kappa / mpmath.mpf(vertices) ** 3))
    second = depth * math.log(2.0 / (vertices - 1))
    lhs = (depth + 1) * math.log(srg_ratio(vertices, depth))
    return Sides(lhs=lhs, rhs=first + second, scale=abs(first) + abs(second) + abs(lhs))


RATIO_TABLE = {  # docs/theory.md §4.5: c_r/K for (r, L)
    4: {3: "1.056", 4: "0.963", 5: "0.906", 6: "0.867", 8: "0.818"},
    5: {3: "1.044", 4: "0.901", 5: "0.817", 6: "0.762", 8: "0.694"},
    6: {3: "1.037", 4: "0.857", 5: "0.755", 6: "0.689", 8: "0.611"},
    8: {3: "1.027", 4: "0.795", 5: "0.670", 6: "0.594", 8: "0.505"},
    12: {3: "1.018", 4: "0.721", 5: "0.573", 6: "0.487", 8: "0.391"},
}


def sample_table_row(draw: Draw) -> dict:
    """One row r of the §4.5 table (enumerated; random under hypothesis)."""
    rows = sorted(RATIO_TABLE)
    index = draw.index if draw.index is not None else draw.integer(0, len(rows) - 1, "row")
    return {"r": rows[index % len(rows)]}


def evaluate_lr3_table(instance: dict) -> Sides:
    """LR3: |srg_ratio(r, L) − table| ≤ 5e-4 (the table has 3 decimals), L ∈ {3, 4, 5, 6, 8}."""
    from ufm.optima import srg_ratio

    row = RATIO_TABLE[instance["r"]]
    computed = np.array([srg_ratio(instance["r"], depth) for depth in row])
    printed = np.array([float(text) for text in row.values()])
    return Sides(lhs=np.abs(computed - printed), rhs=np.full(len(row), 5e-4), scale=1.0,
                 note="computed " + ", ".join(f"L={d}: {v:.5f}" for d, v in zip(row, computed)))


# ---------------------------------------------------------------------------------------------
# LR2: the SRG point as a certificate
# ---------------------------------------------------------------------------------------------


def sample_srg_point(draw: Draw) -> dict:
    """r ∈ 4..6, L ∈ 3..6, n ∈ 1..3, λ's log-uniform in [1e-4, 5e-3]; t = −1, t ∈ U(−1.9, −0.1) or t*;
    all edges of K_r or a random subset of K ∈ [r, r(r−1)/2) edges."""
    vertices = draw.integer(4, 6, "r")
    depth = draw.integer(3, 6, "L")
    per_class = draw.integer(1, 3, "n")
    lam_h = draw.log_uniform(1e-4, 5e-3, "λ_H")
    lams = tuple(draw.log_uniform(1e-4, 5e-3, f"λ{l + 1}") for l in range(depth))
    mode = draw.choice(["basic", "uniform", "best"], "t")
    shift = {"basic": -1.0, "uniform": draw.uniform(-1.9, -0.1, "t") if mode == "uniform" else 0.0,
             "best": None}[mode]
    edges = None
    all_edges = list(combinations(range(vertices), 2))
    if draw.boolean("edge subset"):
        count = draw.integer(vertices, len(all_edges) - 1, "K")
        chosen = sorted(draw.generator.choice(len(all_edges), size=count, replace=False))
        edges = [all_edges[i] for i in chosen]
    return {"r": vertices, "L": depth, "n": per_class, "lambda_H": lam_h, "lambdas": lams,
            "shift": shift, "edges": edges}


def _srg_prediction(instance: dict):
    from ufm.optima import predict_srg

    return predict_srg(instance["r"], instance["L"], instance["n"], instance["lambda_H"],
                       instance["lambdas"], shift=instance["shift"], edges=instance["edges"])


def srg_point_exists(instance: dict) -> bool:
    """Hypotheses: rank B = r (the edge subset is admissible), S_t invertible, and q* > 0."""
    try:
        prediction = _srg_prediction(instance)
    except (ValueError, np.linalg.LinAlgError):
        return False
    instance["_prediction"] = prediction
    return prediction.q_star > 0.0


def _srg_point(instance: dict):
    from ufm.models import DeepUFM
    from ufm.optima import srg_construct

    prediction = instance["_prediction"]
    point = srg_construct(instance["r"], instance["L"], instance["n"], instance["lambda_H"],
                          instance["lambdas"], shift=prediction.shift, edges=instance["edges"])
    model = DeepUFM(prediction.num_classes, instance["n"], tuple(w.shape[1] for w in point.weights),
                    instance["lambda_H"], instance["lambdas"])
    return model, point


def evaluate_lr2_value(instance: dict) -> Sides:
    """LR2: Φ_DUFM(srg_construct(...)) = min_q ½(1 − q)² + ((L+1)/2)·C·c(t)·q^{2/(L+1)} (predict_srg)."""
    model, point = _srg_point(instance)
    prediction = instance["_prediction"]
    return Sides(lhs=model.objective(point).total, rhs=prediction.optimal_loss,
                 note=f"L_SRG/L_DNC = {prediction.loss_ratio:.6f}")


def evaluate_lr2_ranks(instance: dict) -> Sides:
    """LR2: rank M_l = r (l = 1..L−1), rank M̃_L = r (r − 1 when t = −4/r), rank M_L = K."""
    from ufm.metrics import numerical_rank

    model, point = _srg_point(instance)
    prediction = instance["_prediction"]
    features = model.forward(point)
    classes, per_class, vertices = model.num_classes, model.per_class, instance["r"]

    def means(matrix):
        return matrix.reshape(matrix.shape[0], classes, per_class).mean(axis=2)

    ranks = [numerical_rank(means(h), rtol=1e-9) for h in features.post_activations]
    pre_last = numerical_rank(means(features.pre_activations[-1]), rtol=1e-9)
    singular_head = abs(1.0 + prediction.shift * vertices / 4.0) < 1e-12
    expected = [vertices] * (model.num_layers - 1) + [classes]
    lhs = np.array(ranks + [pre_last], dtype=float)
    rhs = np.array(expected + [vertices - 1 if singular_head else vertices], dtype=float)
    return Sides(lhs=lhs, rhs=rhs, scale=1.0)


# ---------------------------------------------------------------------------------------------
# LR4 and KF3
# ---------------------------------------------------------------------------------------------

SRG_FIXTURES = [
    # (r, L, shift, {quantity: (printed, decimals)}), n = 1, λ = 0.004 on every block (docs/theory.md §4.6)
    (5, 4, None, {"L_SRG": ("0.087653", 6), "L_DNC": ("0.099180", 6), "ratio": ("0.884", 3),
                  "t*": ("-0.898", 3)}),
    (5, 5, None, {"L_SRG": ("0.095841", 6), "L_DNC": ("0.119178", 6), "ratio": ("0.804", 3)}),
    (4, 4, None, {"L_SRG": ("0.056415", 6), "L_DNC": ("0.059708", 6), "ratio": ("0.945", 3)}),
    (5, 3, None, {"ratio": ("1.018", 3)}),
    (6, 3, None, {"ratio": ("1.010", 3)}),
    (7, 3, None, {"ratio": ("1.006", 3)}),
    (5, 4, -1.0, {"Phi": ("0.089471", 6)}),
]


def sample_srg_fixture(draw: Draw) -> dict:
    """One SRG fixture of §4.6 (enumerated; random under hypothesis)."""
    index = draw.index if draw.index is not None else draw.integer(0, len(SRG_FIXTURES) - 1, "row")
    vertices, depth, shift, expected = SRG_FIXTURES[index % len(SRG_FIXTURES)]
    return {"r": vertices, "L": depth, "n": 1, "lambda_H": 0.004, "lambdas": (0.004,) * depth,
            "shift": shift, "edges": None, "expected": expected}


def evaluate_lr4_fixture(instance: dict) -> Sides:
    """LR4: L_SRG, L_DNC, their ratio, t* and Φ_DUFM at the basic point match §4.6 to the printed digits."""
    prediction = _srg_prediction(instance)
    instance["_prediction"] = prediction
    computed, allowed, printed = [], [], []
    for key, (text, decimals) in instance["expected"].items():
        if key == "Phi":
            model, point = _srg_point(instance)
            value = model.objective(point).total
        else:
            value = {"L_SRG": prediction.optimal_loss, "L_DNC": prediction.dnc_loss,
                     "ratio": prediction.loss_ratio, "t*": prediction.shift}[key]
        computed.append(value)
        printed.append(float(text))
        allowed.append(0.5 * 10.0 ** (-decimals))
    return Sides(lhs=np.abs(np.array(computed) - np.array(printed)), rhs=np.array(allowed), scale=1.0,
                 note="computed " + ", ".join(f"{k}={v:.7g}" for k, v in zip(instance["expected"], computed)))


EDGE_FIXTURES = {7: "0.996", 8: "0.954", 9: "0.937", 11: "0.958"}  # L = 4 (docs/theory.md §5 KF3)


def sample_edge_fixture(draw: Draw) -> dict:
    """K ∈ {7, 8, 9, 11} with L = 4 (enumerated)."""
    keys = sorted(EDGE_FIXTURES)
    index = draw.index if draw.index is not None else draw.integer(0, len(keys) - 1, "row")
    return {"K": keys[index % len(keys)], "L": 4}


def evaluate_lr4_edges(instance: dict) -> Sides:
    """LR4/KF3: the best edge subset's c(t*)/K is at most the printed ratio (3 decimals).

    docs/theory.md prints the ratios a numerical search found; they are upper bounds on the best
    subset's ratio (every explicit point is only a certificate). The package's exhaustive search
    over spectra finds 0.99582, 0.95362, 0.91601, 0.93280 for K = 7, 8, 9, 11: equal to the print
    for K = 7, 8 and lower (stronger counterexamples) for K = 9, 11.
    """
    from ufm.optima import srg_edge_subset_search

    result = srg_edge_subset_search(instance["K"], instance["L"], rng=0)
    printed = float(EDGE_FIXTURES[instance["K"]])
    return Sides(lhs=result.coefficient_ratio, rhs=printed + 5e-4, scale=1.0,
                 note=f"c(t*)/K = {result.coefficient_ratio:.5f}, t* = {result.shift:.4f}, "
                 f"edges {result.edges}")


def sample_dnc_counterexample(draw: Draw) -> dict:
    """A candidate against 'DNC is optimal for all K, L': L ∈ 4..7 and either K = r(r−1)/2
    (r ∈ 4..7, improved family) or K ∈ {7, 8, 9, 11} (best edge subset); n ∈ 1..3, equal λ
    log-uniform in [1e-4, 5e-3]."""
    depth = draw.integer(4, 7, "L")
    per_class = draw.integer(1, 3, "n")
    lam = draw.log_uniform(1e-4, 5e-3, "λ")
    edges, vertices = None, draw.integer(4, 7, "r")
    if draw.boolean("edge subset"):
        from ufm.optima import srg_edge_subset_search

        classes = draw.choice([7, 8, 9, 11], "K")
        result = srg_edge_subset_search(classes, depth, rng=0)
        vertices, edges = result.num_vertices, [list(edge) for edge in result.edges]
    return {"r": vertices, "L": depth, "n": per_class, "lambda_H": lam, "lambdas": (lam,) * depth,
            "shift": None, "edges": edges}


def evaluate_kf3(instance: dict) -> Sides:
    """KF3 claim 'DNC is globally optimal': L_DNC ≤ Φ_DUFM(θ) for every θ, tested at the explicit
    SRG point θ (Φ evaluated exactly through ``ufm.models.DeepUFM``)."""
    model, point = _srg_point(instance)
    prediction = instance["_prediction"]
    value = model.objective(point).total
    return Sides(lhs=prediction.dnc_loss, rhs=value, scale=prediction.dnc_loss,
                 note=f"K = {prediction.num_classes}, Φ(SRG point) = {value:.8g} < L_DNC = "
                 f"{prediction.dnc_loss:.8g} (ratio {value / prediction.dnc_loss:.4f}), t = {prediction.shift:.4f}")


def sample_gradient_descent_run(draw: Draw) -> dict:
    """LR5: the 4-DUFM with K = 10, n = 1, width 30, λ = 0.004, full-batch GD (η = 0.5) from the
    E-B1 initialization with a drawn seed."""
    from ufm.models import DeepUFM
    from ufm.solvers import solve

    model = DeepUFM(10, 1, (30,) * 4, 0.004, 0.004)
    solution = solve(model, "gd", seed=draw.generator, lr=0.5, tolerance=1e-9, max_iterations=30000,
                     predicted=None)
    return {"K": 10, "L": 4, "n": 1, "width": 30, "lambda": 0.004, "iterations": solution.iterations,
            "_model": model, "_solution": solution}


def evaluate_lr5(instance: dict) -> Sides:
    """LR5: L_DNC ≤ Φ_DUFM(GD end point) is violated: the end point is a certificate below L_DNC."""
    from ufm.optima import predict_dufm

    model, solution = instance["_model"], instance["_solution"]
    value = model.objective(solution.parameters).total
    dnc = predict_dufm(10, 4, 1, 0.004, 0.004).optimal_loss
    return Sides(lhs=dnc, rhs=value, scale=dnc, note=f"Φ(GD) = {value:.6f}, L_DNC = {dnc:.6f}")


FIXTURE_TOLERANCE = Tolerance(
    relative=0.0, absolute=1e-14, reason="printed fixtures: the right side is half a unit in the "
    "last printed digit (after the 1-D minimization over t, which scipy resolves to ≤ 1e-9), plus "
    "the float64 rule")
RANK_TOLERANCE = Tolerance(relative=0.0, reason="integer ranks (numerical rank at rtol 1e-9 of the "
                           "class means, whose nonzero singular values are ≥ 1e-4 of the largest): exact")
CERTIFICATE_TOLERANCE = Tolerance(
    relative=1e-12, reason="c·u·κ: Φ at the explicit point is a sum of L+2 positive terms built from "
    "products of at most L matrices of size ≤ 21 and S_t^{−1} (κ(S_t) ≤ 50 here): error ≲ 1e-13")

STATEMENTS += [
    _lr1("LR1.package", "ufm.optima's incidence matrix, ν_r and κ_r",
         "triangular_incidence(r) = B; srg_nuclear_norm(r) = ‖B‖_*; srg_kappa(r) = κ_r", evaluate_lr1_package,
         Tolerance(relative=1e-12, reason="entries compared exactly; ν_r against a float64 SVD (see "
                   "LR1.nu) and κ_r against exact integers, as ratios: ≲ 1e-14")),
    Statement(
        identifier="LR3.package", title="log-ratio identity for ufm.optima's c_r/K", source=SOURCE,
        tag="[derived]", formula="(L+1)·log(srg_ratio(r, L)) = log(ν_r²κ_r/r³) + L·log(2/(r−1))",
        relation="=", sample=sample_ratio_case, evaluate=evaluate_lr3_package,
        tolerance=Tolerance(relative=1e-13, reason="float64 logarithms of O(1)–O(10²) quantities: each "
                            "rounding is ≤ u of the largest logarithm, ≲ 10 of them"),
        default_instances=40, minimum_held=1.0, hypothesis_examples=15, requires=(OPTIMA_SRG,),
    ),
    Statement(
        identifier="LR3.table", title="the c_r/K table of docs/theory.md §4.5", source="docs/theory.md §4.5",
        tag="[numerical]", formula="c_r/K for r ∈ {4, 5, 6, 8, 12}, L ∈ {3, 4, 5, 6, 8} to 3 decimals",
        relation="<=", sample=sample_table_row, evaluate=evaluate_lr3_table, tolerance=FIXTURE_TOLERANCE,
        default_instances=len(RATIO_TABLE), minimum_held=1.0, requires=(OPTIMA_SRG,),
    ),
    Statement(
        identifier="LR2.value", title="the SRG point's objective equals its closed form", source=SOURCE,
        tag="[derived]", formula="Φ_DUFM(SRG point) = min_q ½(1 − q)² + ((L+1)/2)·C·c(t)·q^{2/(L+1)}",
        relation="=", sample=sample_srg_point, evaluate=evaluate_lr2_value, hypotheses=srg_point_exists,
        tolerance=CERTIFICATE_TOLERANCE, default_instances=60, minimum_held=0.5, hypothesis_examples=10,
        requires=(OPTIMA_SRG, MODELS),
    ),
    Statement(
        identifier="LR2.ranks", title="rank profile of the SRG point", source=SOURCE, tag="[derived]",
        formula="rank M_l = r (l = 1..L−1), rank M̃_L = r (r − 1 when t = −4/r), rank M_L = K",
        relation="=", sample=sample_srg_point, evaluate=evaluate_lr2_ranks, hypotheses=srg_point_exists,
        tolerance=RANK_TOLERANCE, default_instances=60, minimum_held=0.5, hypothesis_examples=10,
        requires=(OPTIMA_SRG, MODELS, METRICS),
    ),
    Statement(
        identifier="LR4.values", title="improved SRG family: values of docs/theory.md §4.6", source="docs/theory.md §4.6",
        tag="[derived]", formula="L_SRG, L_DNC, ratio and t* (n = 1, λ = 0.004) and Φ_DUFM at the basic point",
        relation="<=", sample=sample_srg_fixture, evaluate=evaluate_lr4_fixture, tolerance=FIXTURE_TOLERANCE,
        default_instances=len(SRG_FIXTURES), minimum_held=1.0, requires=(OPTIMA_SRG, MODELS),
    ),
    Statement(
        identifier="LR4.edges", title="edge subsets: c(t*)/K for K = 7, 8, 9, 11 at L = 4",
        source="docs/theory.md §5 KF3", tag="[numerical]",
        formula="best edge subset, L = 4: c(t*)/K ≤ 0.996 (K = 7), 0.954 (K = 8), 0.937 (K = 9), 0.958 (K = 11)",
        relation="<=", sample=sample_edge_fixture, evaluate=evaluate_lr4_edges, tolerance=FIXTURE_TOLERANCE,
        default_instances=len(EDGE_FIXTURES), minimum_held=1.0, requires=(OPTIMA_SRG,),
    ),
    Statement(
        identifier="KF3", title="'DNC is globally optimal for all K, L' (known false)", source=SOURCE,
        tag="[derived]", formula="false for L ≥ 4, K = r(r−1)/2, r ≥ 4, and for K ∈ {7, 8, 9, 11} via edge "
        "subsets: an explicit SRG point has Φ_DUFM < L_DNC",
        relation="<=", sample=sample_dnc_counterexample, evaluate=evaluate_kf3, hypotheses=srg_point_exists,
        tolerance=INEQUALITY_TOLERANCE, default_instances=8, minimum_held=0.5, expected_false=True,
        requires=(OPTIMA_SRG, MODELS),
    ),
    Statement(
        identifier="LR5", title="GD on the 4-DUFM (K = 10, width 30) ends below L_DNC", source=SOURCE,
        tag="[numerical]", formula="GD (η = 0.5, λ = 0.004, n = 1) on (L, K, width) = (4, 10, 30) ends below "
        "L_DNC = 0.099180; the end point is a certificate evaluated exactly",
        relation="<=", sample=sample_gradient_descent_run, evaluate=evaluate_lr5,
        tolerance=INEQUALITY_TOLERANCE, default_instances=3, minimum_held=1.0, expected_false=True,
        slow=True, requires=(OPTIMA_SRG, MODELS, "ufm.solvers:solve"),
    ),
]
