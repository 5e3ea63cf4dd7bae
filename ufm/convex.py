"""Convex reformulations with certified optima (docs/theory.md §4.1, §2(d), F1, F3).

Two problems of the package are convex after eliminating a factorization:

- the UFM (docs/theory.md §2(a)): by F1, min over WH = Z of (λ_W/2)‖W‖² + (λ_H/2)‖H‖² is
  √(λ_Wλ_H)‖Z‖_*, so Φ_UFM is minimized by the nuclear-norm-regularized regression

      min_{Z, b}  (1/(2N))‖Z + b1_Nᵀ − Y‖_F² + √(λ_Wλ_H)‖Z‖_*      (b = 0 without bias);

- the linear head with two layers (docs/theory.md §2(d), L2 = 2): by F2 with p = 2,

      min_A  (1/(2N))‖AZ − Y‖_F² + λ‖A‖_*          (Z fixed features, A = W_LW_{L−1}).

Both are instances of one problem, P(A, b) = (1/(2N))‖AX + b1ᵀ − Y‖² + τ‖A‖_* (X = I_N for the
UFM), solved here with cvxpy. The solver's status is reported but not trusted: every result carries
a duality gap computed from an explicit dual-feasible point. The Fenchel dual is

    D(R) = ⟨R, Y⟩ − (N/2)‖R‖_F²   subject to  ‖RXᵀ‖_op ≤ τ  and (with a bias)  R1_N = 0,

and weak duality gives D(R) ≤ P* ≤ P(A, b) for every feasible R and every (A, b). The dual point is
built from the scaled residual R = (Y − AX − b1ᵀ)/N, centred when there is a bias and shrunk into the
spectral-norm ball, so the gap certifies the returned point on its own.

cvxpy is imported inside the functions that need it, so the rest of ``ufm`` works where cvxpy is
not installed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .arrays import as_float64_matrix, check_positive_scalar

__all__ = [
    "ConvexCertificate",
    "SUPPORTED_SOLVERS",
    "balanced_factorization",
    "certify_linear_head",
    "certify_ufm",
    "dual_lower_bound",
    "linear_head_convex",
    "nuclear_norm_objective",
    "nuclear_norm_regression",
    "nuclear_norm_regression_closed_form",
    "soft_threshold_singular_values",
    "ufm_convex",
    "ufm_factors_from_certificate",
]

#: Conic solvers (installed with cvxpy) that accept the semidefinite cone of the nuclear norm.
SUPPORTED_SOLVERS = ("CLARABEL", "SCS")


def _jsonable(value: Any) -> Any:
    """Convert numpy arrays and scalars (recursively) into JSON-serializable Python objects."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


@dataclass(frozen=True)
class ConvexCertificate:
    """Result of a nuclear-norm regression with a self-computed optimality certificate.

    The problem is P(A, b) = (1/(2N))‖AX + b1ᵀ − Y‖_F² + τ‖A‖_* (docs/theory.md §4.1 / §2(d)).

    Attributes
    ----------
    problem : str
        ``"ufm"``, ``"ufm_bias"``, ``"linear_head"`` or ``"nuclear_norm_regression"``.
    optimal_value : float
        P at the returned point, evaluated here in float64 (an upper bound on the optimum P*).
    dual_value : float
        D(R) at the dual-feasible point ``dual`` (a lower bound on P*).
    duality_gap : float
        ``optimal_value − dual_value`` ≥ 0 (up to rounding): P* lies in [dual_value, optimal_value].
    primal : numpy.ndarray, shape (K, m)
        The minimizer A (Z itself for the UFM, shape (K, N)).
    bias : numpy.ndarray of shape (K,), or None
        The optimal unregularized bias for ``primal`` (None for problems without bias).
    dual : numpy.ndarray, shape (K, N)
        The dual-feasible point R (‖RXᵀ‖_op ≤ τ, R1 = 0 with a bias).
    regularization : float
        τ, the weight of the nuclear norm (√(λ_Wλ_H) for the UFM, λ for the head).
    solver : str
        The conic solver used by cvxpy.
    status : str
        The status reported by cvxpy (``"optimal"``, ``"optimal_inaccurate"``, ...).
    solver_value : float
        The optimal value reported by cvxpy (for comparison with ``optimal_value``).
    tolerance : float
        The accuracy requested from the solver (gap and feasibility tolerances).
    solve_time : float
        Wall-clock seconds spent in cvxpy (compilation and solve).
    """

    problem: str
    optimal_value: float
    dual_value: float
    duality_gap: float
    primal: np.ndarray
    bias: np.ndarray | None
    dual: np.ndarray
    regularization: float
    solver: str
    status: str
    solver_value: float
    tolerance: float
    solve_time: float

    @property
    def relative_gap(self) -> float:
        """``duality_gap / max(1, |optimal_value|)``."""
        return self.duality_gap / max(1.0, abs(self.optimal_value))

    def to_dict(self) -> dict[str, Any]:
        """Return the certificate as a JSON-serializable dict (arrays as nested lists)."""
        return _jsonable(asdict(self))


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------


def soft_threshold_singular_values(matrix: Any, threshold: float) -> np.ndarray:
    """Singular-value soft-thresholding SVT_τ(T) = U(S − τ)_+Vᵀ (docs/theory.md F3).

    SVT_τ(T) is the unique minimizer of ½‖Z − T‖_F² + τ‖Z‖_*.

    Parameters
    ----------
    matrix : array_like, shape (p, q)
        T.
    threshold : float
        τ ≥ 0.

    Returns
    -------
    numpy.ndarray, shape (p, q)
    """
    target = as_float64_matrix(matrix, "matrix")
    tau = check_positive_scalar(threshold, "threshold")
    left, singular, right = np.linalg.svd(target, full_matrices=False)
    return (left * np.maximum(singular - tau, 0.0)) @ right


def nuclear_norm_regression_closed_form(
    targets: Any, regularization: float, *, bias: bool = False
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Exact minimizer of (1/(2N))‖Z + b1ᵀ − Y‖² + τ‖Z‖_* (X = I; docs/theory.md §4.1, F3).

    Without bias Z* = SVT_{Nτ}(Y). With an unregularized bias the optimal b centres the residual
    and ‖ZP_N‖_* ≤ ‖Z‖_* forces Z1 = 0, so Z* = SVT_{Nτ}(YP_N), b* = (Y − Z*)1_N/N, with
    P_N = I_N − J_N/N. For one-hot balanced Y this is Z* = q*Y (resp. q*YP_N), q* = (1 − ρ)_+.

    Parameters
    ----------
    targets : array_like, shape (K, N)
        Y.
    regularization : float
        τ ≥ 0 (√(λ_Wλ_H) for the UFM).
    bias : bool
        Include the unregularized bias b.

    Returns
    -------
    (Z*, b*, value) : (numpy.ndarray (K, N), numpy.ndarray (K,) or None, float)
    """
    target = as_float64_matrix(targets, "targets")
    tau = check_positive_scalar(regularization, "regularization")
    count = target.shape[1]
    if bias:
        centred = target - target.mean(axis=1, keepdims=True)
        optimum = soft_threshold_singular_values(centred, count * tau)
        offset = (target - optimum).mean(axis=1)
    else:
        optimum = soft_threshold_singular_values(target, count * tau)
        offset = None
    value = nuclear_norm_objective(optimum, target, tau, bias=offset)
    return optimum, offset, value


# --------------------------------------------------------------------------------------------
# Objective and dual certificate
# --------------------------------------------------------------------------------------------


def _checked_problem(
    targets: Any, regularization: float, features: Any | None
) -> tuple[np.ndarray, float, np.ndarray | None]:
    target = as_float64_matrix(targets, "targets")
    tau = check_positive_scalar(regularization, "regularization", allow_zero=False)
    if features is None:
        return target, tau, None
    data = as_float64_matrix(features, "features")
    if data.shape[1] != target.shape[1]:
        raise ValueError(
            f"features must have N = {target.shape[1]} columns like targets, got shape {data.shape}"
        )
    return target, tau, data


def nuclear_norm_objective(
    primal: Any,
    targets: Any,
    regularization: float,
    *,
    features: Any | None = None,
    bias: Any | None = None,
) -> float:
    """P(A, b) = (1/(2N))‖AX + b1ᵀ − Y‖_F² + τ‖A‖_* (docs/theory.md §4.1, §2(d)).

    Parameters
    ----------
    primal : array_like, shape (K, m)
        A (for X = I, the output matrix Z of shape (K, N)).
    targets : array_like, shape (K, N)
        Y.
    regularization : float
        τ ≥ 0.
    features : array_like, shape (m, N), optional
        X; the identity when omitted.
    bias : array_like, shape (K,), optional
        b; zero when omitted.
    """
    target = as_float64_matrix(targets, "targets")
    tau = check_positive_scalar(regularization, "regularization")
    matrix = as_float64_matrix(primal, "primal")
    output = matrix if features is None else matrix @ as_float64_matrix(features, "features")
    if output.shape != target.shape:
        raise ValueError(
            f"primal (times features) must have the shape of targets {target.shape}, "
            f"got {output.shape}"
        )
    if bias is not None:
        output = output + np.asarray(bias, dtype=np.float64).reshape(-1, 1)
    fit = 0.5 * float(np.sum((output - target) ** 2)) / target.shape[1]
    return fit + tau * float(np.sum(np.linalg.svd(matrix, compute_uv=False)))


def dual_lower_bound(
    residual: Any,
    targets: Any,
    regularization: float,
    *,
    features: Any | None = None,
    bias: bool = False,
) -> tuple[float, np.ndarray]:
    """A dual-feasible point near ``residual`` and its dual value D(R) ≤ P*.

    The dual of P(A, b) = (1/(2N))‖AX + b1ᵀ − Y‖² + τ‖A‖_* is

        max_R ⟨R, Y⟩ − (N/2)‖R‖_F²   s.t.  ‖RXᵀ‖_op ≤ τ,  R1_N = 0 (bias only).

    The candidate R is centred (bias), then multiplied by the scalar s ∈ [0, τ/‖RXᵀ‖_op ∧ 1]
    maximizing D(sR), i.e. s = ⟨R, Y⟩/(N‖R‖²) clipped to that interval. At the optimum the
    scaled residual (Y − A*X − b*1ᵀ)/N is dual optimal, so the bound is tight there.

    Parameters
    ----------
    residual : array_like, shape (K, N)
        Candidate R, normally (Y − AX − b1ᵀ)/N.
    targets : array_like, shape (K, N)
        Y.
    regularization : float
        τ > 0.
    features : array_like, shape (m, N), optional
        X; the identity when omitted.
    bias : bool
        Whether the primal problem has an unregularized bias.

    Returns
    -------
    (value, point) : (float, numpy.ndarray of shape (K, N))
    """
    target, tau, data = _checked_problem(targets, regularization, features)
    candidate = as_float64_matrix(residual, "residual")
    if candidate.shape != target.shape:
        raise ValueError(f"residual must have shape {target.shape}, got {candidate.shape}")
    if bias:
        candidate = candidate - candidate.mean(axis=1, keepdims=True)
    correlation = candidate if data is None else candidate @ data.T
    spectral = float(np.linalg.norm(correlation, 2)) if correlation.size else 0.0
    count = target.shape[1]
    squared = float(np.sum(candidate**2))
    if squared == 0.0:
        return 0.0, np.zeros_like(candidate)
    largest = 1.0 if spectral <= tau else tau / spectral
    scale = float(np.clip(float(np.sum(candidate * target)) / (count * squared), 0.0, largest))
    point = scale * candidate
    value = float(np.sum(point * target)) - 0.5 * count * float(np.sum(point**2))
    return value, point


# --------------------------------------------------------------------------------------------
# cvxpy solves
# --------------------------------------------------------------------------------------------


def _solver_options(solver: str, tolerance: float, max_iterations: int | None) -> dict[str, Any]:
    """Map one accuracy ``tolerance`` onto the solver's own settings."""
    if solver == "CLARABEL":
        options: dict[str, Any] = {
            "tol_gap_abs": tolerance,
            "tol_gap_rel": tolerance,
            "tol_feas": tolerance,
        }
        if max_iterations is not None:
            options["max_iter"] = max_iterations
        return options
    # SCS: first-order, so it needs many more iterations for the same accuracy.
    return {
        "eps_abs": tolerance,
        "eps_rel": tolerance,
        "max_iters": 100_000 if max_iterations is None else max_iterations,
    }


def nuclear_norm_regression(
    targets: Any,
    regularization: float,
    *,
    features: Any | None = None,
    bias: bool = False,
    solver: str = "CLARABEL",
    tolerance: float = 1e-9,
    max_iterations: int | None = None,
    verbose: bool = False,
    problem_name: str = "nuclear_norm_regression",
) -> ConvexCertificate:
    """Solve min_{A, b} (1/(2N))‖AX + b1ᵀ − Y‖_F² + τ‖A‖_* with cvxpy and certify it.

    docs/theory.md §4.1 (UFM, X = I) and §2(d) (two-layer linear head, X = Z_{L1}). The returned value
    is recomputed here at the solver's point (with the bias re-optimized in closed form,
    b = (Y − AX)1_N/N), and the gap is measured against the dual point of
    :func:`dual_lower_bound`, independently of the solver's status.

    Parameters
    ----------
    targets : array_like, shape (K, N)
        Y.
    regularization : float
        τ > 0.
    features : array_like, shape (m, N), optional
        X; when omitted X = I_N and the variable is the output Z of shape (K, N).
    bias : bool
        Add an unregularized bias b ∈ R^K.
    solver : {"CLARABEL", "SCS"}
        Conic solver (both handle the semidefinite cone of the nuclear norm).
    tolerance : float
        Requested accuracy: Clarabel's tol_gap_abs, tol_gap_rel and tol_feas, or SCS's eps_abs
        and eps_rel.
    max_iterations : int, optional
        Solver iteration limit (solver default if omitted; 100000 for SCS).
    verbose : bool
        Print the solver log.
    problem_name : str
        Label stored in the certificate.

    Returns
    -------
    ConvexCertificate

    Raises
    ------
    ValueError
        For an unknown solver, τ ≤ 0, a non-positive tolerance or mismatched shapes.
    RuntimeError
        If the solver returns no point at all.
    """
    target, tau, data = _checked_problem(targets, regularization, features)
    solver_name = str(solver).upper()
    if solver_name not in SUPPORTED_SOLVERS:
        raise ValueError(f"solver must be one of {SUPPORTED_SOLVERS}, got {solver!r}")
    tolerance = check_positive_scalar(tolerance, "tolerance", allow_zero=False)
    if max_iterations is not None and (
        isinstance(max_iterations, bool)
        or int(max_iterations) != max_iterations
        or max_iterations < 1
    ):
        raise ValueError(f"max_iterations must be a positive integer, got {max_iterations!r}")

    import cvxpy as cp

    classes, count = target.shape
    columns = count if data is None else data.shape[0]
    variable = cp.Variable((classes, columns), name="A")
    output = variable if data is None else variable @ data
    offset = None
    if bias:
        offset = cp.Variable(classes, name="b")
        output = output + cp.reshape(offset, (classes, 1), order="F") @ np.ones((1, count))
    objective = cp.sum_squares(output - target) / (2.0 * count) + tau * cp.normNuc(variable)
    problem = cp.Problem(cp.Minimize(objective))
    start = time.perf_counter()
    try:
        problem.solve(
            solver=solver_name,
            verbose=verbose,
            **_solver_options(solver_name, tolerance, max_iterations),
        )
    except cp.error.SolverError as error:
        raise RuntimeError(f"{solver_name} failed on {problem_name}: {error}") from error
    elapsed = time.perf_counter() - start
    if variable.value is None:
        raise RuntimeError(
            f"{solver_name} returned no point for {problem_name} (status {problem.status})"
        )

    primal = np.asarray(variable.value, dtype=np.float64)
    product = primal if data is None else primal @ data
    best_bias = (target - product).mean(axis=1) if bias else None
    value = nuclear_norm_objective(primal, target, tau, features=data, bias=best_bias)
    residual = target - product
    if best_bias is not None:
        residual = residual - best_bias[:, None]
    dual_value, dual_point = dual_lower_bound(
        residual / count, target, tau, features=data, bias=bias
    )
    return ConvexCertificate(
        problem=problem_name,
        optimal_value=value,
        dual_value=dual_value,
        duality_gap=value - dual_value,
        primal=primal,
        bias=best_bias,
        dual=dual_point,
        regularization=tau,
        solver=solver_name,
        status=str(problem.status),
        solver_value=float(problem.value) if problem.value is not None else float("nan"),
        tolerance=tolerance,
        solve_time=elapsed,
    )


def ufm_convex(
    targets: Any,
    lambda_W: float,
    lambda_H: float,
    *,
    bias: bool = False,
    **options: Any,
) -> ConvexCertificate:
    """The UFM (docs/theory.md §2(a)) as nuclear-norm regression (§4.1, F1), solved and certified.

    min_{Z, b} (1/(2N))‖Z + b1_Nᵀ − Y‖_F² + √(λ_Wλ_H)‖Z‖_* equals min Φ_UFM whenever the
    width d ≥ rank Z* (d ≥ K suffices); the factors follow from :func:`ufm_factors_from_certificate`.

    Parameters
    ----------
    targets : array_like, shape (K, N)
        Y (e.g. ``ufm.labels.one_hot_targets``).
    lambda_W, lambda_H : float
        Penalties λ_W > 0, λ_H > 0.
    bias : bool
        Unregularized bias b ∈ R^K.
    **options
        Passed to :func:`nuclear_norm_regression` (solver, tolerance, max_iterations, verbose).
    """
    weight = check_positive_scalar(lambda_W, "lambda_W", allow_zero=False)
    feature = check_positive_scalar(lambda_H, "lambda_H", allow_zero=False)
    return nuclear_norm_regression(
        targets,
        float(np.sqrt(weight * feature)),
        bias=bias,
        problem_name="ufm_bias" if bias else "ufm",
        **options,
    )


def linear_head_convex(
    features: Any,
    targets: Any,
    weight_decay: float,
    **options: Any,
) -> ConvexCertificate:
    """Two-layer linear head on fixed features (docs/theory.md §2(d), L2 = 2), solved and certified.

    Φ_head = (1/(2N))‖W_LW_{L−1}Z − Y‖² + (λ/2)(‖W_L‖² + ‖W_{L−1}‖²) has, for widths ≥ K, the
    optimal value of min_A (1/(2N))‖AZ − Y‖_F² + λ‖A‖_* (F2 with p = 2); the two layers follow
    from :func:`balanced_factorization` of the returned A with equal penalties.

    Parameters
    ----------
    features : array_like, shape (m, N)
        Z_{L1}.
    targets : array_like, shape (K, N)
        Y.
    weight_decay : float
        λ > 0, the same on both layers.
    **options
        Passed to :func:`nuclear_norm_regression`.
    """
    decay = check_positive_scalar(weight_decay, "weight_decay", allow_zero=False)
    return nuclear_norm_regression(
        targets, decay, features=features, problem_name="linear_head", **options
    )


# --------------------------------------------------------------------------------------------
# Factorizations
# --------------------------------------------------------------------------------------------


def balanced_factorization(
    matrix: Any,
    left_penalty: float,
    right_penalty: float,
    inner_dimension: int | None = None,
    *,
    rank_tolerance: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced factorization X = WM attaining F1: (a/2)‖W‖² + (b/2)‖M‖² = √(ab)‖X‖_*.

    docs/theory.md F1: with X = USVᵀ (compact SVD, rank r),
    W = (b/a)^{1/4}US^{1/2} and M = (a/b)^{1/4}S^{1/2}Vᵀ, padded with zeros to the inner
    dimension. These factors satisfy aWᵀW = bMMᵀ (balancedness, §4.1).

    Parameters
    ----------
    matrix : array_like, shape (p, q)
        X (the UFM output Z, of shape (K, N), or a head product A).
    left_penalty, right_penalty : float
        a > 0 (on W; λ_W for the UFM) and b > 0 (on M; λ_H for the UFM).
    inner_dimension : int, optional
        The width d of the factorization (W ∈ R^{p×d}, M ∈ R^{d×q}); default the numerical rank.
    rank_tolerance : float, optional
        Singular values ≤ rank_tolerance·s_1 are dropped; default max(p, q)·eps (docs/theory.md RANK).

    Returns
    -------
    (W, M) : (numpy.ndarray (p, d), numpy.ndarray (d, q))

    Raises
    ------
    ValueError
        If ``inner_dimension`` is smaller than the numerical rank, or a penalty is not positive.
    """
    target = as_float64_matrix(matrix, "matrix")
    a = check_positive_scalar(left_penalty, "left_penalty", allow_zero=False)
    b = check_positive_scalar(right_penalty, "right_penalty", allow_zero=False)
    left, singular, right = np.linalg.svd(target, full_matrices=False)
    tolerance = (
        max(target.shape) * np.finfo(np.float64).eps
        if rank_tolerance is None
        else float(rank_tolerance)
    )
    if tolerance < 0:
        raise ValueError(f"rank_tolerance must be >= 0, got {rank_tolerance}")
    top = singular[0] if singular.size else 0.0
    rank = int(np.count_nonzero(singular > tolerance * top)) if top > 0 else 0
    width = rank if inner_dimension is None else inner_dimension
    if isinstance(width, bool) or int(width) != width or width < max(rank, 1):
        raise ValueError(
            f"inner_dimension must be an integer >= the numerical rank {max(rank, 1)}, "
            f"got {inner_dimension!r}"
        )
    width = int(width)
    root = np.sqrt(singular[:rank])
    factor_left = np.zeros((target.shape[0], width))
    factor_right = np.zeros((width, target.shape[1]))
    factor_left[:, :rank] = (b / a) ** 0.25 * left[:, :rank] * root
    factor_right[:rank, :] = (a / b) ** 0.25 * root[:, None] * right[:rank, :]
    return factor_left, factor_right


def ufm_factors_from_certificate(
    certificate: ConvexCertificate, lambda_W: float, lambda_H: float, width: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """UFM parameters (W, H, b) attaining the certified value (docs/theory.md §4.1, F1).

    W = (λ_H/λ_W)^{1/4}US^{1/2} ∈ R^{K×d}, H = (λ_W/λ_H)^{1/4}S^{1/2}Vᵀ ∈ R^{d×N} for Z* = USVᵀ,
    so WH = Z* and (λ_W/2)‖W‖² + (λ_H/2)‖H‖² = √(λ_Wλ_H)‖Z*‖_*: Φ_UFM(W, H, b) equals the
    certificate's ``optimal_value`` (to rounding).

    Parameters
    ----------
    certificate : ConvexCertificate
        From :func:`ufm_convex`.
    lambda_W, lambda_H : float
        The penalties used for the certificate.
    width : int, optional
        d ≥ rank Z* (default K, the row count of Z*).

    Returns
    -------
    (W, H, b) : (numpy.ndarray (K, d), numpy.ndarray (d, N), numpy.ndarray (K,) or None)
    """
    if certificate.problem not in ("ufm", "ufm_bias"):
        raise ValueError(
            f"certificate must come from ufm_convex, got problem {certificate.problem!r}"
        )
    weight = check_positive_scalar(lambda_W, "lambda_W", allow_zero=False)
    feature = check_positive_scalar(lambda_H, "lambda_H", allow_zero=False)
    if not np.isclose(np.sqrt(weight * feature), certificate.regularization, rtol=1e-12, atol=0.0):
        raise ValueError(
            "lambda_W and lambda_H must match the certificate: "
            f"sqrt(lambda_W*lambda_H) = {np.sqrt(weight * feature)} != {certificate.regularization}"
        )
    # Solver noise leaves tiny spurious singular values; drop those below the requested accuracy.
    tolerance = max(certificate.tolerance, max(certificate.primal.shape) * np.finfo(np.float64).eps)
    weights, features = balanced_factorization(
        certificate.primal,
        weight,
        feature,
        certificate.primal.shape[0] if width is None else width,
        rank_tolerance=tolerance,
    )
    return weights, features, certificate.bias


# --------------------------------------------------------------------------------------------
# Models of ufm.models
# --------------------------------------------------------------------------------------------


def certify_ufm(model: Any, **options: Any) -> tuple[ConvexCertificate, Any]:
    """Certified optimum of a :class:`ufm.models.UFM` and an optimal point in its shapes.

    Solves the nuclear-norm form of docs/theory.md §4.1 (:func:`ufm_convex`) and factors Z* in the
    balanced way at the model's width (F1), so ``model.objective(parameters).total`` equals the
    certificate's ``optimal_value`` up to the solver accuracy.

    Parameters
    ----------
    model : ufm.models.UFM
        λ_W, λ_H > 0 and width d ≥ rank Z* (d ≥ K, or K − 1 with bias, suffices).
    **options
        Passed to :func:`nuclear_norm_regression` (solver, tolerance, ...).

    Returns
    -------
    (certificate, parameters) : (ConvexCertificate, ufm.models.Parameters)
    """
    from .models import UFM, Parameters

    if not isinstance(model, UFM):
        raise TypeError(f"model must be a ufm.models.UFM, got {type(model).__name__}")
    certificate = ufm_convex(model.targets, model.lam_w, model.lam_h, bias=model.bias, **options)
    weights, features, bias = ufm_factors_from_certificate(
        certificate, model.lam_w, model.lam_h, width=model.width
    )
    return certificate, Parameters(features=features, weights=(weights,), bias=bias)


def certify_linear_head(model: Any, **options: Any) -> tuple[ConvexCertificate, Any]:
    """Certified optimum of a two-layer :class:`ufm.models.LinearHead` and an optimal point.

    docs/theory.md §2(d) with L2 = 2: min over W_2W_1 = A of (λ_1/2)‖W_1‖² + (λ_2/2)‖W_2‖² is
    √(λ_1λ_2)‖A‖_* (F1), so Φ_head has the optimal value of
    min_A (1/(2N))‖AZ − Y‖² + √(λ_1λ_2)‖A‖_* whenever the inner width d_2 ≥ rank A* (d_2 ≥ K
    suffices). The layers are the balanced factors W_2 = (λ_1/λ_2)^{1/4}US^{1/2},
    W_1 = (λ_2/λ_1)^{1/4}S^{1/2}Vᵀ of A* = USVᵀ.

    Parameters
    ----------
    model : ufm.models.LinearHead
        Two layers (L2 = 2) with λ_1, λ_2 > 0.
    **options
        Passed to :func:`nuclear_norm_regression`.

    Returns
    -------
    (certificate, parameters) : (ConvexCertificate, ufm.models.Parameters)

    Raises
    ------
    ValueError
        If the head does not have two layers, or its inner width is below rank A*.
    """
    from .models import LinearHead, Parameters

    if not isinstance(model, LinearHead):
        raise TypeError(f"model must be a ufm.models.LinearHead, got {type(model).__name__}")
    if model.num_layers != 2:
        raise ValueError(
            f"model must have two layers (L2 = 2) for the convex form, got {model.num_layers}"
        )
    first, second = (check_positive_scalar(lam, "model.lam", allow_zero=False) for lam in model.lam)
    certificate = nuclear_norm_regression(
        model.targets,
        float(np.sqrt(first * second)),
        features=model.features,
        problem_name="linear_head",
        **options,
    )
    tolerance = max(certificate.tolerance, max(certificate.primal.shape) * np.finfo(np.float64).eps)
    last, previous = balanced_factorization(
        certificate.primal, second, first, model.widths[1], rank_tolerance=tolerance
    )
    return certificate, Parameters(features=None, weights=(previous, last))
