"""Predicted optima of the unconstrained-features models (docs/theory.md §4).

- UFM, L = 1 (§4.1): ρ = K√(nλ_Wλ_H), q* = (1 − ρ)_+, optimal value with and without bias,
  the explicit optimum (orthogonal frame, or simplex ETF with b* = 1_K/K), threshold ρ = 1.
- Deep linear UFM (§4.2): the Schatten-2/(L+1) representation cost reduces Φ_lin to the scalar
  problem g_K of §4.3 per singular value of the output; same optimal point as the DNC
  construction.
- L-DUFM (§4.3): C = (nλ_HΠ_lλ_l)^{1/(L+1)}, g_K(q) = ½(1 − q)² + (K(L+1)/2)·C·q^{2/(L+1)},
  L_DNC = min_{q∈[0,1]} g_K(q); q* from the stationarity condition (1 − q)q^{(L−1)/(L+1)} = KC by
  Brent's method on [(L−1)/(2L), 1]; the threshold P_crit = ((L−1)/L)^{L−1}/(KL)^{L+1} on
  P = nλ_HΠλ_l (exact rational by sympy); per-layer singular values, class-mean norms, a₂ and
  the BAL.scalar value.
- Widths [derived]: every prediction states the model it holds for (``widths``, ``rank_limit``,
  ``kind``, ``reachable``, ``holds_for``). For the UFM and the deep linear UFM a width below K
  (below K − 1 with bias) limits the output rank to r and the global minimum becomes
  (r/m)·Φ_full + (m − r)/(2K) (:func:`rank_limited_value`); the ReLU DUFM has DNC points of
  value L_DNC only for d_1 ≥ ⌈K/2⌉, d_l ≥ K (:func:`dnc_min_widths`), and below them its
  L_DNC is flagged as not reachable.
- Constructions returning full :class:`ufm.models.Parameters`: :func:`dnc_construct` (the β
  family of §4.4), :func:`ufm_construct` and :func:`srg_construct` (the low-rank
  strongly-regular-graph points of §4.5, basic t = −1, improved family t ∈ (−2, 0), edge
  subsets for K < r(r−1)/2).
- Non-collapsed configurations where GD stalls [derived here; E-B2]: one class split into
  groups on disjoint neurons merging in W_j, or with samples at output 0
  (:func:`dufm_split_class_loss`, realised by :func:`dufm_split_class_construct`), their list
  with the zero point (:func:`dufm_stall_configurations`) and the "reaches L_DNC" tolerance τ
  (:func:`dnc_reach_tolerance`).

Every λ here must be > 0. Results are dataclasses with ``to_dict()`` (JSON-serializable).
Sources: Súkeník, Mondelli & Lampert, NeurIPS 2023 (B); Súkeník, Lampert & Mondelli,
NeurIPS 2024 (C); the explicit formulas are those of docs/theory.md.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
from scipy import optimize

from .arrays import as_float64_matrix, check_positive_scalar
from .labels import check_num_classes
from .models import DeepLinearUFM, DeepUFM, Parameters, UFM

__all__ = [
    "PREDICTION_KINDS",
    "PredictedOptimum",
    "ScalarOptimum",
    "SRGPrediction",
    "EdgeSubsetResult",
    "ufm_rho",
    "ufm_q_star",
    "ufm_optimal_value",
    "ufm_threshold",
    "rank_limited_value",
    "dnc_min_widths",
    "predict_ufm",
    "ufm_construct",
    "schatten_penalty",
    "predict_deep_linear",
    "dufm_constant",
    "penalty_product",
    "dnc_scalar_objective",
    "dnc_stationarity",
    "solve_dnc_scalar",
    "dnc_threshold",
    "dnc_threshold_exact",
    "dnc_critical_lambda",
    "predict_dufm",
    "dnc_construct",
    "StallConfiguration",
    "dufm_split_class_loss",
    "dufm_split_class_construct",
    "dufm_stall_configurations",
    "dnc_reach_tolerance",
    "predict",
    "optimal_parameters",
    "triangular_incidence",
    "srg_nuclear_norm",
    "srg_kappa",
    "srg_coefficient",
    "srg_ratio",
    "srg_family_coefficient",
    "srg_best_shift",
    "predict_srg",
    "srg_construct",
    "srg_edge_subset_search",
]

_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _positive_integer(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _positive_lambda(value: Any, name: str) -> float:
    return check_positive_scalar(value, name, allow_zero=False)


def _lambda_list(value: Any, num_layers: int, name: str = "lam_w") -> tuple[float, ...]:
    """λ_1..λ_L > 0 from one number (equal on all layers) or a sequence of L numbers."""
    if isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return (_positive_lambda(value, name),) * num_layers
    if isinstance(value, str):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {value!r}")
    try:
        values = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {value!r}") from None
    if len(values) != num_layers:
        raise ValueError(
            f"{name} must have one value per weight matrix (L = {num_layers}), got {len(values)}"
        )
    return tuple(_positive_lambda(v, f"{name}[{i}]") for i, v in enumerate(values))


def _layer_widths(widths: Any, num_layers: int, minimum: Sequence[int], name: str = "widths"):
    """Validate (d_1..d_L); ``minimum[l]`` is the least admissible d_{l+1}."""
    if widths is None:
        return tuple(int(m) for m in minimum)
    try:
        values = tuple(widths)
    except TypeError:
        raise TypeError(
            f"{name} must be a sequence of L = {num_layers} widths, got {widths!r}"
        ) from None
    if len(values) != num_layers:
        raise ValueError(f"{name} must have L = {num_layers} entries, got {len(values)}")
    values = tuple(_positive_integer(w, f"{name}[{i}]") for i, w in enumerate(values))
    for i, (w, m) in enumerate(zip(values, minimum)):
        if w < m:
            raise ValueError(f"{name}[{i}] must be >= {m} for this construction, got {w}")
    return values


def _embed(block: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``block`` in the top-left corner of a zero matrix of ``shape``."""
    out = np.zeros(shape, dtype=np.float64)
    out[: block.shape[0], : block.shape[1]] = block
    return out


def _class_means_to_features(means: np.ndarray, per_class: int) -> np.ndarray:
    """H = MY = M ⊗ 1_nᵀ for the balanced layout ordered by class."""
    return np.repeat(means, per_class, axis=1)


# --------------------------------------------------------------------------------------------
# The scalar problem g_c(q) = ½(1 − q)² + (c(L+1)/2)·C·q^{2/(L+1)}
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalarOptimum:
    """Minimizer of g_c(q) = ½(1 − q)² + (c(L+1)/2)·C·q^{2/(L+1)} over q ∈ [0, 1].

    Attributes
    ----------
    q_star : float
        The minimizer (0 when the zero solution is optimal).
    value : float
        min g_c = g_c(q_star).
    stationary_q : float or None
        The largest root of g_c'(q) = 0 in ((L−1)/(2L), 1), the only candidate q > 0 (it may
        exist with g_c > ½ above the threshold); None if there is none.
    is_zero : bool
        True if q = 0 is optimal (at the threshold itself both are; then True).
    """

    q_star: float
    value: float
    stationary_q: float | None
    is_zero: bool


def _scalar_objective(q, coefficient: float, num_layers: int, constant: float):
    q = np.asarray(q, dtype=np.float64)
    exponent = 2.0 / (num_layers + 1)
    value = 0.5 * (1.0 - q) ** 2 + 0.5 * coefficient * (num_layers + 1) * constant * q**exponent
    return float(value) if value.ndim == 0 else value


def _stationarity(q, coefficient: float, num_layers: int, constant: float):
    q = np.asarray(q, dtype=np.float64)
    exponent = (num_layers - 1) / (num_layers + 1)
    value = (1.0 - q) * q**exponent - coefficient * constant
    return float(value) if value.ndim == 0 else value


def _solve_scalar(coefficient: float, num_layers: int, constant: float) -> ScalarOptimum:
    """Minimize g_c on [0, 1] (docs/theory.md §4.3, stationarity and threshold items)."""
    product = coefficient * constant
    if num_layers == 1:
        # g'(q) = −(1 − q) + cC: q* = (1 − cC)_+ in closed form (= §4.1 with ρ = cC).
        if product < 1.0:
            q = 1.0 - product
            return ScalarOptimum(q, _scalar_objective(q, coefficient, 1, constant), q, False)
        return ScalarOptimum(0.0, 0.5, None, True)
    peak = (num_layers - 1) / (2.0 * num_layers)
    height = _stationarity(peak, coefficient, num_layers, constant)
    if height < 0.0:
        return ScalarOptimum(0.0, 0.5, None, True)
    if height == 0.0:
        root = peak
    else:
        # h(q) = (1 − q)q^{(L−1)/(L+1)} − cC decreases on [peak, 1] from h(peak) > 0 to −cC < 0.
        root = optimize.brentq(
            _stationarity,
            peak,
            1.0,
            args=(coefficient, num_layers, constant),
            xtol=np.finfo(np.float64).tiny,
            rtol=4.0 * _EPS,
            maxiter=500,
        )
    value = _scalar_objective(root, coefficient, num_layers, constant)
    if value < 0.5:
        return ScalarOptimum(float(root), value, float(root), False)
    return ScalarOptimum(0.0, 0.5, float(root), True)


def dufm_constant(per_class: int, lam_h: float, lam_w: Any, num_layers: int | None = None) -> float:
    """C = (nλ_H Π_{l=1}^{L} λ_l)^{1/(L+1)} (docs/theory.md §4.3).

    Parameters
    ----------
    per_class : int
        n.
    lam_h : float
        λ_H > 0.
    lam_w : float or sequence of float
        λ_1..λ_L > 0 (one number needs ``num_layers``).
    num_layers : int, optional
        L; defaults to ``len(lam_w)``.
    """
    per_class = _positive_integer(per_class, "per_class")
    lam_h = _positive_lambda(lam_h, "lam_h")
    if num_layers is None:
        if isinstance(lam_w, numbers.Real):
            raise ValueError("num_layers is required when lam_w is a single number")
        num_layers = len(tuple(lam_w))
    num_layers = _positive_integer(num_layers, "num_layers")
    lams = _lambda_list(lam_w, num_layers)
    return penalty_product(per_class, lam_h, lams) ** (1.0 / (num_layers + 1))


def penalty_product(per_class: int, lam_h: float, lam_w: Sequence[float]) -> float:
    """P = nλ_H Π_l λ_l, the quantity the threshold bounds (docs/theory.md §4.3)."""
    return float(per_class) * float(lam_h) * math.prod(float(v) for v in lam_w)


def dnc_scalar_objective(q: Any, num_classes: int, num_layers: int, constant: float):
    """g_K(q) = ½(1 − q)² + (K(L+1)/2)·C·q^{2/(L+1)} (docs/theory.md §4.3); vectorized in q."""
    return _scalar_objective(q, float(num_classes), int(num_layers), float(constant))


def dnc_stationarity(q: Any, num_classes: int, num_layers: int, constant: float):
    """(1 − q)·q^{(L−1)/(L+1)} − K·C, zero exactly where g_K'(q) = 0 for q > 0 (§4.3)."""
    return _stationarity(q, float(num_classes), int(num_layers), float(constant))


def solve_dnc_scalar(num_classes: int, num_layers: int, constant: float) -> ScalarOptimum:
    """Minimize g_K over [0, 1]: q* and L_DNC (docs/theory.md §4.3).

    For L ≥ 2 the candidate is the largest root of (1 − q)q^{(L−1)/(L+1)} = KC, found by
    ``scipy.optimize.brentq`` on [(L−1)/(2L), 1] to a relative tolerance of 4·eps; the optimum
    is the better of it and q = 0 (value ½). For L = 1, q* = (1 − KC)_+.
    """
    num_classes = check_num_classes(num_classes)
    num_layers = _positive_integer(num_layers, "num_layers")
    constant = check_positive_scalar(constant, "constant")
    return _solve_scalar(float(num_classes), num_layers, constant)


def dnc_threshold(num_classes: int, num_layers: int) -> float:
    """P_crit = ((L−1)/L)^{L−1}/(KL)^{L+1}: the DNC optimum is nonzero iff nλ_HΠλ_l < P_crit.

    For K = 2 this is (L−1)^{L−1}/(2^{L+1}L^{2L}); for L = 1 it is 1/K² (ρ < 1 of §4.1).
    docs/theory.md §4.3 (threshold), check D2.
    """
    num_classes = check_num_classes(num_classes)
    num_layers = _positive_integer(num_layers, "num_layers")
    ratio = (num_layers - 1) / num_layers
    return ratio ** (num_layers - 1) / float(num_classes * num_layers) ** (num_layers + 1)


def dnc_threshold_exact(num_classes: int, num_layers: int):
    """P_crit as an exact ``sympy.Rational`` (e.g. K = 2, L = 3 → 1/2916)."""
    import sympy

    num_classes = check_num_classes(num_classes)
    num_layers = _positive_integer(num_layers, "num_layers")
    ratio = sympy.Rational(num_layers - 1, num_layers)
    return ratio ** (num_layers - 1) / sympy.Integer(num_classes * num_layers) ** (num_layers + 1)


def dnc_critical_lambda(num_classes: int, num_layers: int, per_class: int) -> float:
    """λ_crit = (P_crit/n)^{1/(L+1)}: the threshold when λ_H = λ_1 = … = λ_L = λ.

    E.g. K = 2, L = 3, n = 3 → (1/8748)^{1/4} = 0.1034005399 (docs/theory.md §4.6).
    """
    per_class = _positive_integer(per_class, "per_class")
    return (dnc_threshold(num_classes, num_layers) / per_class) ** (1.0 / (num_layers + 1))


# --------------------------------------------------------------------------------------------
# Predicted optimum
# --------------------------------------------------------------------------------------------


#: Meaning of :attr:`PredictedOptimum.kind` (the same words as ``Solution.predicted_kind``).
PREDICTION_KINDS = {
    "global_optimum": "proven global minimum of the model at its widths (closed form, docs/theory.md "
    "§4.1-4.3; rank-limited forms for widths below K)",
    "dnc_reference": "L_DNC, the least value among DNC points; not a proven optimum for K > 2, "
    "L >= 2 (low-rank points can be lower, docs/theory.md §4.5)",
    "unreachable_reference": "L_DNC of the ReLU DUFM at widths where no DNC point fits; the "
    "model cannot reach it by a DNC point and its minimum is unknown",
}


@dataclass(frozen=True)
class PredictedOptimum:
    """A predicted optimum (docs/theory.md §4.1–4.3) with its structure, and the model it holds for.

    Attributes
    ----------
    model : str
        ``"ufm"``, ``"ufm_bias"``, ``"deep_linear"`` or ``"dufm"``.
    num_classes, num_layers, per_class : int
        K, L, n.
    lam_h : float
        λ_H.
    lam_w : tuple of float
        λ_1..λ_L.
    constant : float
        C = (nλ_HΠλ_l)^{1/(L+1)} (for L = 1, ρ = K·C).
    penalty_product : float
        P = nλ_HΠλ_l.
    optimal_loss : float
        The predicted minimum of Φ at ``widths``: L_DNC for deep models, ρ − ρ²/2 (or (K−1)/K
        times it with bias) for the UFM; for r = ``rank_limit`` below the full rank m (m = K, or
        K − 1 with bias) the rank-limited value (r/m)·Φ_full + (m − r)/(2K)
        (:func:`rank_limited_value`). For ``kind == "unreachable_reference"`` it is L_DNC, a
        value the model at ``widths`` does not reach (``reachable`` is False).
    q_star : float
        Scale of every fitted direction: the output is q*·Y (with bias q*Y + ((1 − q*)/K)J);
        for r < m it is q*·PY (P a rank-r orthogonal projector of R^K, inside 1_K^⊥ with bias).
    threshold : float
        P_crit, the critical value of nλ_HΠλ_l: nonzero optimum iff P < P_crit.
    is_zero : bool
        True if the zero solution (q* = 0) is optimal.
    singular_values : tuple of tuple of float
        Nonzero singular values of each weight matrix W_1..W_L (β = 0 representative for W_1):
        r values s_l = q*^{1/(L+1)}(C/λ_l)^{1/2} each (r = K, K − 1 for the UFM with bias, or
        the rank limit); empty tuples when ``is_zero``.
    class_mean_norms : tuple of float
        ‖μ‖_l, l = 1..L, the root-mean-square class-mean norm (‖M_l‖_F²/K)^{1/2} of H_l (β = 0),
        fixed across the optimal set: ‖μ‖₁ = q*^{1/(L+1)}(C/(nλ_H))^{1/2}·(r/m)^{1/2},
        ‖μ‖_{l+1} = s_l‖μ‖_l. When r = m every class mean has this norm; when r < m only their
        mean square is fixed (the representative of :func:`optimal_parameters` fits r classes).
    second_layer_mean_norm : float or None
        a₂ = C q*^{2/(L+1)}/(nλ_Hλ_1)^{1/2}·(r/m)^{1/2}, the RMS class-mean norm of H₂ for
        every β (L ≥ 2).
    balancedness : tuple of float
        BAL.scalar vector (λ_H‖H₁‖², λ_1‖W_1‖², …, λ_L‖W_L‖²), all equal to r·C·q*^{2/(L+1)}.
    stationary_q : float or None
        The largest stationary point of g_K in ((L−1)/(2L), 1) (see :class:`ScalarOptimum`).
    widths : tuple of int or None
        The widths the prediction is for: (d,) for the UFM, (d_1, …, d_L) for deep models;
        None for the width-free prediction, which holds for every width ≥ K (≥ K − 1 with
        bias; for the ReLU DUFM with L ≥ 2, d_1 ≥ ⌈K/2⌉ and d_l ≥ K, :func:`dnc_min_widths`).
    rank_limit : int
        r, the number of target directions the predicted optimum fits (its output, centred
        with bias, has rank r): min(m, min(widths)) for the UFM and the deep linear UFM, m when
        ``widths`` is None; for the ReLU DUFM with L ≥ 2 it is K (the DNC structure; the ReLU
        can raise the rank, so min(widths) bounds nothing there).
    kind : str
        A key of :data:`PREDICTION_KINDS`: ``"global_optimum"``, ``"dnc_reference"`` or
        ``"unreachable_reference"``.
    reachable : bool
        True when the model at ``widths`` has a point of value ``optimal_loss`` (the
        construction of :func:`optimal_parameters`); False for the ReLU DUFM (L ≥ 2) whose
        widths admit no DNC point (d_1 < ⌈K/2⌉ or some d_l < K, l ≥ 2) unless the zero solution
        is optimal.
    holds_for : str
        One line naming the model, its widths and what the value is there.
    """

    model: str
    num_classes: int
    num_layers: int
    per_class: int
    lam_h: float
    lam_w: tuple[float, ...]
    constant: float
    penalty_product: float
    optimal_loss: float
    q_star: float
    threshold: float
    is_zero: bool
    singular_values: tuple[tuple[float, ...], ...]
    class_mean_norms: tuple[float, ...]
    second_layer_mean_norm: float | None
    balancedness: tuple[float, ...]
    stationary_q: float | None
    widths: tuple[int, ...] | None
    rank_limit: int
    kind: str
    reachable: bool
    holds_for: str

    def to_dict(self) -> dict:
        """JSON-serializable dictionary (tuples become lists, numbers are Python floats)."""
        return {
            "model": self.model,
            "num_classes": self.num_classes,
            "num_layers": self.num_layers,
            "per_class": self.per_class,
            "lam_h": self.lam_h,
            "lam_w": list(self.lam_w),
            "constant": self.constant,
            "penalty_product": self.penalty_product,
            "optimal_loss": self.optimal_loss,
            "q_star": self.q_star,
            "threshold": self.threshold,
            "is_zero": self.is_zero,
            "singular_values": [list(values) for values in self.singular_values],
            "class_mean_norms": list(self.class_mean_norms),
            "second_layer_mean_norm": self.second_layer_mean_norm,
            "balancedness": list(self.balancedness),
            "stationary_q": self.stationary_q,
            "widths": None if self.widths is None else list(self.widths),
            "rank_limit": self.rank_limit,
            "kind": self.kind,
            "reachable": self.reachable,
            "holds_for": self.holds_for,
        }


def _predict_deep(model: str, num_classes, num_layers, per_class, lam_h, lam_w) -> PredictedOptimum:
    """Shared body of :func:`predict_dufm`, :func:`predict_deep_linear`, :func:`predict_ufm`."""
    num_classes = check_num_classes(num_classes)
    num_layers = _positive_integer(num_layers, "num_layers")
    per_class = _positive_integer(per_class, "per_class")
    lam_h = _positive_lambda(lam_h, "lam_h")
    lams = _lambda_list(lam_w, num_layers)
    product = penalty_product(per_class, lam_h, lams)
    constant = product ** (1.0 / (num_layers + 1))
    scalar = _solve_scalar(float(num_classes), num_layers, constant)
    q = scalar.q_star
    if scalar.is_zero:
        singular_values: tuple = tuple(() for _ in lams)
        norms = (0.0,) * num_layers
        second = 0.0 if num_layers >= 2 else None
        balance = (0.0,) * (num_layers + 1)
    else:
        root = q ** (1.0 / (num_layers + 1))
        values = [root * math.sqrt(constant / lam) for lam in lams]
        singular_values = tuple((value,) * num_classes for value in values)
        first = root * math.sqrt(constant / (per_class * lam_h))
        norms_list = [first]
        for value in values[:-1]:
            norms_list.append(norms_list[-1] * value)
        norms = tuple(norms_list)
        squared = q ** (2.0 / (num_layers + 1))
        second = (
            constant * squared / math.sqrt(per_class * lam_h * lams[0]) if num_layers >= 2 else None
        )
        balance = (num_classes * constant * squared,) * (num_layers + 1)
    return PredictedOptimum(
        model=model,
        num_classes=num_classes,
        num_layers=num_layers,
        per_class=per_class,
        lam_h=lam_h,
        lam_w=lams,
        constant=constant,
        penalty_product=product,
        optimal_loss=scalar.value,
        q_star=q,
        threshold=dnc_threshold(num_classes, num_layers),
        is_zero=scalar.is_zero,
        singular_values=singular_values,
        class_mean_norms=norms,
        second_layer_mean_norm=second,
        balancedness=balance,
        stationary_q=scalar.stationary_q,
        widths=None,
        rank_limit=num_classes,
        kind="global_optimum",
        reachable=True,
        holds_for="",
    )


# --------------------------------------------------------------------------------------------
# Widths: rank-limited optima and the widths a DNC point needs
# --------------------------------------------------------------------------------------------


def _prediction_widths(widths: Any, num_layers: int, name: str = "widths"):
    """None, one width for every layer, or (d_1, …, d_L), each an integer ≥ 1."""
    if widths is None:
        return None
    if isinstance(widths, (int, np.integer)) and not isinstance(widths, (bool, np.bool_)):
        return (_positive_integer(widths, name),) * num_layers
    if isinstance(widths, (str, bytes)):
        raise TypeError(f"{name} must be an integer or a sequence of L = {num_layers} integers, "
                        f"got {widths!r}")
    try:
        values = tuple(widths)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer or a sequence of L = {num_layers} integers, got {widths!r}"
        ) from None
    if len(values) != num_layers:
        raise ValueError(f"{name} must have L = {num_layers} entries, got {len(values)}")
    return tuple(_positive_integer(w, f"{name}[{i}]") for i, w in enumerate(values))


def rank_limited_value(
    full_value: float, num_classes: int, rank_limit: int, bias: bool = False
) -> float:
    """min Φ when the output can fit only r of the m target directions [derived].

        Φ_r = (r/m)·Φ_full + (m − r)/(2K),   m = K (no bias) or K − 1 (bias), r = min(r, m).

    *Derivation.* Φ_full = (m/K)·v, where v is the least per-direction value: every singular
    value of Y (of YP_N with bias) equals √n, and a fitted direction of the output with
    singular value q√n costs (1/K)·g(q), g(q) = ½(1 − q)² + penalty(q), so v = min_q g(q)
    (v = ρ − ρ²/2 for ρ < 1, else ½, for the UFM; v = L_DNC for deep models). If the output Z
    has rank ≤ r, von Neumann's trace inequality ⟨Z, Y⟩ ≤ Σ_i s_i(Z)s_i(Y) gives
    ‖Z − Y‖² ≥ Σ_{i≤r}(s_i(Z) − √n)² + (m − r)n (Mirsky), with equality when Z uses r of the
    singular pairs of Y; the penalty depends on s_i(Z) only (F1, F2). So r directions cost
    (1/K)·v each and the m − r others, left at 0, cost (1/(2N))·n = 1/(2K) each.

    Parameters
    ----------
    full_value : float
        Φ_full, the optimum with every direction available (e.g. :func:`ufm_optimal_value`).
    num_classes : int
        K ≥ 2.
    rank_limit : int
        r ≥ 1, the largest rank the output can have (min(d, K) for the UFM, min_l d_l for the
        deep linear UFM); values ≥ m give Φ_full.
    bias : bool
        m = K − 1 (the bias absorbs the direction 1_K, docs/theory.md §4.1) instead of K.

    Returns
    -------
    float
        Φ_r.
    """
    num_classes = check_num_classes(num_classes)
    rank_limit = _positive_integer(rank_limit, "rank_limit")
    full_value = check_positive_scalar(full_value, "full_value")
    full_rank = num_classes - 1 if bias else num_classes
    rank = min(rank_limit, full_rank)
    if rank == full_rank:
        return full_value
    return rank / full_rank * full_value + (full_rank - rank) / (2.0 * num_classes)


def dnc_min_widths(num_classes: int, num_layers: int) -> tuple[int, ...]:
    """The least widths (d_1, …, d_L) at which a DNC point of value L_DNC exists [derived].

    L = 1: (K,). L ≥ 2: (⌈K/2⌉, K, …, K). The class means M_l, l ≥ 2, of a DNC point form an
    orthogonal frame of K nonzero columns, so d_l ≥ K. For the first layer, the value L_DNC
    forces equality in F4 (min ‖X₂‖_* over pre-images with σ(X₂) = M₂) and in F1 for
    X₂ = W₁M₁, so rank X₂ ≤ d_1. Equality in F4 holds iff X₂ = QS with Q = M₂diag(1/‖m_k‖)
    and S positive semidefinite with diag(S) = (‖m_k‖) and S_{jk} ≤ 0 off the diagonal
    (⟨Q, X₂⟩ = ‖X₂‖_* with QᵀQ = I forces X₂ = QQᵀX₂, QᵀX₂ ⪰ 0; σ(X₂) = M₂ fixes the
    signs). Such an S is a singular M-matrix: by Perron–Frobenius each irreducible block of
    size ≥ 2 has a kernel of dimension ≤ 1 and each 1×1 block none, so rank S ≥ ⌈K/2⌉.
    Pairs of classes with S-blocks a₂[[1, −1], [−1, 1]] (and one block (3a₂/2)(I₃ − J₃/3) for
    odd K) attain it (:func:`dnc_construct` with d_1 < K). Below these widths the ReLU DUFM has
    no DNC point of value L_DNC; its minimum is then unknown (low-rank points, §4.5, may lie
    below L_DNC).
    """
    num_classes = check_num_classes(num_classes)
    num_layers = _positive_integer(num_layers, "num_layers")
    if num_layers == 1:
        return (num_classes,)
    return ((num_classes + 1) // 2,) + (num_classes,) * (num_layers - 1)


_MODEL_NAMES = {
    "ufm": "UFM without bias",
    "ufm_bias": "UFM with bias",
    "deep_linear": "deep linear UFM",
    "dufm": "ReLU DUFM",
}
_SECTIONS = {"ufm": "§4.1", "ufm_bias": "§4.1", "deep_linear": "§4.2", "dufm": "§4.3"}


def _holds_for(prediction: PredictedOptimum, full_rank: int) -> str:
    """One line: the model, its widths and what the predicted value is for it."""
    k, depth, model = prediction.num_classes, prediction.num_layers, prediction.model
    relu = model == "dufm" and depth >= 2
    name = f"{_MODEL_NAMES[model]} (K = {k}, L = {depth})" if model in ("deep_linear", "dufm") \
        else f"{_MODEL_NAMES[model]} (K = {k})"
    minimum = dnc_min_widths(k, depth)
    if prediction.widths is None:
        if relu:
            where = f"widths d_1 >= {minimum[0]}, d_l >= {k} (l >= 2)"
        elif model == "ufm_bias":
            where = f"any width d >= K - 1 = {k - 1}"
        elif depth == 1:
            where = f"any width d >= K = {k}"
        else:
            where = f"any widths d_l >= K = {k}"
    elif depth == 1:
        where = f"width d = {prediction.widths[0]}"
    else:
        where = f"widths {list(prediction.widths)}"
    section = _SECTIONS[model]
    rank = prediction.rank_limit
    if prediction.kind == "unreachable_reference":
        verdict = (
            f"L_DNC is the DNC value for d_1 >= {minimum[0]}, d_l >= {k} (l >= 2); no DNC point "
            "fits these widths, so this value is not reachable and the model's minimum is "
            f"unknown (docs/theory.md {section}, §4.5)"
        )
    elif prediction.kind == "dnc_reference":
        verdict = (
            "L_DNC, the least value among DNC points; not a proven minimum for K > 2, L >= 2 "
            "(docs/theory.md §4.3, §4.5)"
        )
    elif rank < full_rank:
        verdict = (
            f"the output has rank <= {rank}, so the optimum fits {rank} of the {full_rank} "
            f"target directions; global minimum [derived, rank-limited form of docs/theory.md {section}]"
        )
    else:
        verdict = f"global minimum (docs/theory.md {section})"
    return f"{name}, {where}: {verdict}"


def _at_widths(full: PredictedOptimum, widths: tuple[int, ...] | None) -> PredictedOptimum:
    """The prediction ``full`` (every direction available) restated for ``widths``.

    UFM, deep linear UFM and the DUFM with L = 1 (no ReLU): the output has rank ≤ min(widths),
    so with r = min(m, min(widths)) < m the value becomes :func:`rank_limited_value`, every
    W_l keeps r of its singular values, and the RMS class-mean norms and the BAL.scalar entries
    scale by (r/m)^{1/2} and r/m. ReLU DUFM with L ≥ 2: L_DNC and the DNC structure are kept;
    ``reachable`` and ``kind`` say whether a DNC point fits the widths (:func:`dnc_min_widths`).
    """
    k, depth = full.num_classes, full.num_layers
    full_rank = k - 1 if full.model == "ufm_bias" else k
    relu = full.model == "dufm" and depth >= 2
    updates: dict[str, Any] = {"widths": widths}
    if relu:
        fits = widths is None or all(w >= m for w, m in zip(widths, dnc_min_widths(k, depth)))
        reachable = fits or full.is_zero
        updates["rank_limit"] = k
        updates["reachable"] = reachable
        if not reachable:
            updates["kind"] = "unreachable_reference"
        else:
            updates["kind"] = "global_optimum" if k == 2 else "dnc_reference"
    else:
        rank = full_rank if widths is None else min(full_rank, min(widths))
        updates.update(rank_limit=rank, reachable=True, kind="global_optimum")
        if rank < full_rank:
            share = rank / full_rank
            updates.update(
                optimal_loss=rank_limited_value(
                    full.optimal_loss, k, rank, bias=full.model == "ufm_bias"
                ),
                singular_values=tuple(values[:rank] for values in full.singular_values),
                class_mean_norms=tuple(value * math.sqrt(share) for value in full.class_mean_norms),
                second_layer_mean_norm=(
                    None
                    if full.second_layer_mean_norm is None
                    else full.second_layer_mean_norm * math.sqrt(share)
                ),
                balancedness=tuple(value * share for value in full.balancedness),
            )
    prediction = replace(full, **updates)
    return replace(prediction, holds_for=_holds_for(prediction, full_rank))


def predict_dufm(
    num_classes: int,
    num_layers: int,
    per_class: int,
    lam_h: float,
    lam_w: Any,
    widths: Any = None,
) -> PredictedOptimum:
    """L_DNC and the DNC structure of the L-DUFM (docs/theory.md §4.3; (B) for K = 2).

    L_DNC is the least objective among DNC points; for K = 2 it is the global minimum of
    Φ_DUFM. Beyond K = 2, L ≥ 3 lower low-rank points can exist (§4.5).

    Widths. A DNC point of value L_DNC needs d_1 ≥ ⌈K/2⌉ and d_l ≥ K for l ≥ 2
    (:func:`dnc_min_widths`, [derived]). For narrower widths the result still carries L_DNC and
    its structure, flagged ``reachable = False`` and ``kind = "unreachable_reference"`` (unless
    the zero solution is optimal): no value is proven there. L = 1 has no ReLU, so Φ_DUFM is
    the UFM without bias and d_1 < K gives the rank-limited global minimum of
    :func:`predict_ufm`.

    Parameters
    ----------
    num_classes, num_layers, per_class : int
        K ≥ 2, L ≥ 1, n ≥ 1.
    lam_h : float
        λ_H > 0.
    lam_w : float or sequence of float
        λ_1..λ_L > 0 (one number: equal λ on every layer).
    widths : int or sequence of int, optional
        (d_1, …, d_L), each ≥ 1 (one int: every layer). None: the width-free prediction, which
        holds for d_1 ≥ ⌈K/2⌉, d_l ≥ K.

    Returns
    -------
    PredictedOptimum
        ``model = "dufm"``; ``widths``, ``kind``, ``reachable`` and ``holds_for`` state the
        model the value holds for.
    """
    full = _predict_deep("dufm", num_classes, num_layers, per_class, lam_h, lam_w)
    return _at_widths(full, _prediction_widths(widths, full.num_layers))


def predict_deep_linear(
    num_classes: int,
    num_layers: int,
    per_class: int,
    lam_h: float,
    lam_w: Any,
    widths: Any = None,
) -> PredictedOptimum:
    """Global minimum of the deep linear UFM (docs/theory.md §4.2), at any widths.

    Widths ≥ K: min Φ_lin = L_DNC. By F2, min over factorizations of the output X of
    Σ_j (λ_j/2)‖A_j‖² is ((L+1)/2)(λ_HΠλ_l)^{1/(L+1)}Σ_i s_i(X)^{2/(L+1)}
    (:func:`schatten_penalty`); each of the K singular values q√n of the output gives
    (1/K)·g_K(q), so the minimum is that of the scalar problem of §4.3. The optimum is balanced
    and :func:`dnc_construct` (β = 0) attains it.

    Widths with r = min_l d_l < K [derived]: X = W_{L:1}H₁ has rank ≤ r, and F2 is attained at
    rank X ≤ r by aligned balanced factors of inner widths ≥ r, so::

        min Φ_lin = min_{rank X ≤ r} (1/(2N))‖X − Y‖²
                                     + ((L+1)/2)(λ_HΠλ_l)^{1/(L+1)}Σ_i s_i(X)^{2/(L+1)}
                  = (r/K)·L_DNC + (K − r)/(2K)

    (von Neumann/Mirsky, :func:`rank_limited_value`): r directions at q*√n with cost
    (1/K)·g_K(q*) each, K − r at 0 with cost 1/(2K) each. The optimal output is q*PY with P
    any rank-r orthogonal projector of R^K.

    Parameters
    ----------
    num_classes, num_layers, per_class : int
        K ≥ 2, L ≥ 1, n ≥ 1.
    lam_h : float
        λ_H > 0.
    lam_w : float or sequence of float
        λ_1..λ_L > 0.
    widths : int or sequence of int, optional
        (d_1, …, d_L), each ≥ 1 (one int: every layer). None: any widths ≥ K.

    Returns
    -------
    PredictedOptimum
        ``model = "deep_linear"``, ``kind = "global_optimum"``, ``rank_limit = min(K, r)``.
    """
    full = _predict_deep("deep_linear", num_classes, num_layers, per_class, lam_h, lam_w)
    return _at_widths(full, _prediction_widths(widths, full.num_layers))


def schatten_penalty(matrix: Any, lams: Sequence[float]) -> float:
    """(p/2)(Π_jλ_j)^{1/p}·Σ_i s_i(X)^{2/p}, p = len(lams): min of Σ_j(λ_j/2)‖A_j‖² over
    X = A_p⋯A_1 (docs/theory.md F2, §4.2)."""
    matrix = as_float64_matrix(matrix, "matrix")
    lams = tuple(_positive_lambda(v, f"lams[{i}]") for i, v in enumerate(lams))
    if not lams:
        raise ValueError("lams must hold at least one λ")
    p = len(lams)
    singular = np.linalg.svd(matrix, compute_uv=False)
    return 0.5 * p * math.prod(lams) ** (1.0 / p) * float(np.sum(singular ** (2.0 / p)))


# --------------------------------------------------------------------------------------------
# UFM (L = 1)
# --------------------------------------------------------------------------------------------


def ufm_rho(num_classes: int, per_class: int, lam_w: float, lam_h: float) -> float:
    """ρ = K√(nλ_Wλ_H) (docs/theory.md §4.1)."""
    num_classes = check_num_classes(num_classes)
    per_class = _positive_integer(per_class, "per_class")
    lam_w = _positive_lambda(lam_w, "lam_w")
    lam_h = _positive_lambda(lam_h, "lam_h")
    return num_classes * math.sqrt(per_class * lam_w * lam_h)


def ufm_q_star(num_classes: int, per_class: int, lam_w: float, lam_h: float) -> float:
    """q* = (1 − ρ)_+: the optimal output is q*Y (no bias) or q*Y + ((1−q*)/K)J (bias)."""
    return max(1.0 - ufm_rho(num_classes, per_class, lam_w, lam_h), 0.0)


def ufm_optimal_value(
    num_classes: int,
    per_class: int,
    lam_w: float,
    lam_h: float,
    bias: bool = False,
    width: int | None = None,
) -> float:
    """min Φ_UFM (docs/theory.md §4.1), at feature dimension ``width`` if given.

    d ≥ K (d ≥ K − 1 with bias), or ``width=None``: without bias v(ρ) = ρ − ρ²/2 for ρ < 1,
    else ½; with an unregularized bias (K−1)/K·v(ρ).

    d < K without bias [derived]: Z = WH has rank ≤ d, and F1 (Srebro et al. 2005) holds
    with equality at the balanced factorization, which needs inner dimension rank Z ≤ d, so

        Φ = min_{rank Z ≤ d} (1/(2N))‖Z − Y‖² + √(λ_Wλ_H)‖Z‖_*.

    All K singular values of Y are √n; by von Neumann/Mirsky the optimum keeps d of the K
    directions, each soft-thresholded to q*√n, q* = (1 − ρ)_+, and leaves K − d at 0:

        Φ = (d/K)·v(ρ) + (K − d)/(2K)   (= (d/K)(ρ − ρ²/2) + (K − d)/(2K) for ρ < 1, ½ else).

    d < K − 1 with bias [derived]: the optimal b centres the residual, Φ depends on ZP_N only
    and ‖ZP_N‖_* ≤ ‖Z‖_*, rank ZP_N ≤ d; YP_N = P_KY has K − 1 singular values √n and one 0,
    so r = min(d, K − 1) of the K − 1 directions are kept:

        Φ = (d/K)·v(ρ) + (K − 1 − d)/(2K).

    Parameters
    ----------
    num_classes, per_class : int
        K ≥ 2, n ≥ 1.
    lam_w, lam_h : float
        λ_W, λ_H > 0.
    bias : bool
        Unregularized bias b.
    width : int, optional
        d ≥ 1; None: any d ≥ K.

    Returns
    -------
    float
        min Φ_UFM; see :func:`rank_limited_value`.
    """
    rho = ufm_rho(num_classes, per_class, lam_w, lam_h)
    value = rho - 0.5 * rho * rho if rho < 1.0 else 0.5
    value = value * (num_classes - 1) / num_classes if bias else value
    if width is None:
        return value
    return rank_limited_value(value, num_classes, _positive_integer(width, "width"), bias=bias)


def ufm_threshold(num_classes: int) -> float:
    """Critical value of nλ_Wλ_H: the UFM optimum is nonzero iff nλ_Wλ_H < 1/K² (ρ < 1)."""
    num_classes = check_num_classes(num_classes)
    return 1.0 / num_classes**2


def predict_ufm(
    num_classes: int,
    per_class: int,
    lam_w: float,
    lam_h: float,
    bias: bool = False,
    width: int | None = None,
) -> PredictedOptimum:
    """Closed-form optimum of the UFM (docs/theory.md §4.1; U1, U2), at feature dimension ``width``.

    Without bias it is the L = 1 case of :func:`predict_dufm` (``model = "ufm"``): W has K
    singular values (q*√(nλ_H/λ_W))^{1/2}, ‖μ‖ = (q*√(λ_W/(nλ_H)))^{1/2}. With bias
    (``model = "ufm_bias"``): value (K−1)/K times that, M a simplex ETF with
    MᵀM = q*√(λ_W/(nλ_H))·P_K, W = √(nλ_H/λ_W)Mᵀ with K − 1 singular values
    (q*√(nλ_H/λ_W))^{1/2}, ‖μ‖ = (q*√(λ_W/(nλ_H))(K−1)/K)^{1/2}, b* = 1_K/K.

    Width d below K (below K − 1 with bias): the rank-limited global minimum of
    :func:`ufm_optimal_value` [derived]; W keeps d singular values (q*√(nλ_H/λ_W))^{1/2}, the
    output is q*PY (+ ((1 − q*)/K)J with bias) with P a rank-d orthogonal projector (inside
    1_K^⊥ with bias), ``rank_limit = d``.

    Parameters
    ----------
    num_classes, per_class : int
        K ≥ 2, n ≥ 1.
    lam_w, lam_h : float
        λ_W, λ_H > 0.
    bias : bool
        Unregularized bias.
    width : int, optional
        d ≥ 1, the feature dimension; None: any d ≥ K (≥ K − 1 with bias).

    Returns
    -------
    PredictedOptimum
        ``kind = "global_optimum"``; ``widths = (d,)`` or None.
    """
    result = _predict_deep("ufm", num_classes, 1, per_class, lam_h, lam_w)
    widths = _prediction_widths(width, 1, "width")
    if not bias:
        return _at_widths(result, widths)
    k = result.num_classes
    q = result.q_star
    ratio = math.sqrt(result.per_class * result.lam_h / result.lam_w[0])  # c = √(nλ_H/λ_W)
    if result.is_zero:
        singular_values: tuple = ((),)
        norms: tuple = (0.0,)
        balance: tuple = (0.0, 0.0)
    else:
        singular_values = ((math.sqrt(q * ratio),) * (k - 1),)
        norms = (math.sqrt(q / ratio * (k - 1) / k),)
        balance = ((k - 1) * result.constant * q,) * 2
    full = replace(
        result,
        model="ufm_bias",
        optimal_loss=result.optimal_loss * (k - 1) / k,
        singular_values=singular_values,
        class_mean_norms=norms,
        second_layer_mean_norm=None,
        balancedness=balance,
        rank_limit=k - 1,
    )
    return _at_widths(full, widths)


def _centred_frame(num_classes: int) -> np.ndarray:
    """E ∈ R^{(K−1)×K} with orthonormal rows spanning 1_K^⊥, so EᵀE = P_K = I − J/K."""
    basis = np.zeros((num_classes - 1, num_classes))
    for i in range(1, num_classes):  # Helmert rows: (1, …, 1, −i, 0, …)/√(i(i+1))
        basis[i - 1, :i] = 1.0
        basis[i - 1, i] = -float(i)
        basis[i - 1] /= math.sqrt(i * (i + 1))
    return basis


def ufm_construct(
    num_classes: int,
    per_class: int,
    width: int,
    lam_w: float,
    lam_h: float,
    bias: bool = False,
) -> Parameters:
    """An optimal point of the UFM at feature dimension d = ``width`` (docs/theory.md §4.1).

    Without bias (d ≥ K): H = MY with M = m[I_K; 0], m² = q*√(λ_W/(nλ_H)) (orthogonal
    frame), W = √(nλ_H/λ_W)Mᵀ, so WH = q*Y. With bias (d ≥ K − 1): M = (q*√(λ_W/(nλ_H)))^{1/2}
    [E; 0] with EᵀE = P_K (simplex ETF, μ_G = 0), W = √(nλ_H/λ_W)Mᵀ, b* = 1_K/K, so
    WH + b1ᵀ = q*Y + ((1 − q*)/K)J. When ρ ≥ 1 all blocks but the bias are 0.

    Narrower d (rank-limited optimum of :func:`ufm_optimal_value`, [derived]): without bias
    M = m[I_d 0; 0 0] (d × K), so WH = q*·diag(1_d, 0_{K−d})Y fits the first d classes and
    outputs 0 for the others; with bias M = (q*√(λ_W/(nλ_H)))^{1/2}E_d, E_d the first d rows of
    E, so WH + b1ᵀ = q*E_dᵀE_dY + ((1 − q*)/K)J.

    Returns
    -------
    Parameters
        Fits :class:`ufm.models.UFM` (num_classes, per_class, width, lam_w, lam_h, bias).
    """
    num_classes = check_num_classes(num_classes)
    width = _positive_integer(width, "width")
    if not bias:
        if width >= num_classes:
            return dnc_construct(num_classes, 1, per_class, lam_h, lam_w, widths=(width,))
        return _rank_limited_point(num_classes, 1, per_class, lam_h, lam_w, (width,))
    prediction = predict_ufm(num_classes, per_class, lam_w, lam_h, bias=True)
    q = prediction.q_star
    ratio = math.sqrt(prediction.per_class * prediction.lam_h / prediction.lam_w[0])
    rank = min(width, num_classes - 1)
    frame = _centred_frame(num_classes)[:rank]
    means = math.sqrt(q / ratio) * _embed(frame, (width, num_classes))
    features = _class_means_to_features(means, prediction.per_class)
    weight = ratio * means.T
    bias_vector = np.full(num_classes, 1.0 / num_classes)
    return Parameters(features=features, weights=(weight,), bias=bias_vector)


def _rank_limited_point(
    num_classes: int, num_layers: int, per_class: int, lam_h: float, lam_w: Any, dims: tuple
) -> Parameters:
    """Optimum of the UFM without bias or of the deep linear UFM at widths ``dims`` with
    r = min(dims) < K: the β = 0 DNC point restricted to the first r classes, H₁ = ‖μ‖₁
    [I_r 0; 0 0]Y, W_l = s_l[I_r 0; 0 0], output q*·diag(1_r, 0)Y (value of
    :func:`rank_limited_value`)."""
    prediction = predict_dufm(num_classes, num_layers, per_class, lam_h, lam_w)
    k, depth, n = prediction.num_classes, prediction.num_layers, prediction.per_class
    dims = _layer_widths(dims, depth, (1,) * depth)
    layer_dims = dims + (k,)
    rank = min(min(dims), k)
    if prediction.is_zero:
        features = np.zeros((dims[0], k * n))
        weights = tuple(np.zeros((layer_dims[l + 1], layer_dims[l])) for l in range(depth))
        return Parameters(features=features, weights=weights)
    weights = tuple(
        _embed(values[0] * np.eye(rank), (layer_dims[l + 1], layer_dims[l]))
        for l, values in enumerate(prediction.singular_values)
    )
    means = _embed(prediction.class_mean_norms[0] * np.eye(rank), (dims[0], k))
    return Parameters(features=_class_means_to_features(means, n), weights=weights)


def _paired_preimage_factor(num_classes: int) -> np.ndarray:
    """R ∈ R^{K×⌈K/2⌉} with orthogonal columns and S = RRᵀ: diag(S) = 1, S_jk ≤ 0 off the
    diagonal, rank ⌈K/2⌉ (see :func:`dnc_min_widths`). Classes (0, 1), (2, 3), … are paired by
    columns e_i − e_{i+1} (S-block [[1, −1], [−1, 1]]); for odd K the last three classes share
    the block (3/2)(I₃ − J₃/3) = R₃R₃ᵀ, R₃ = √(3/2)·E₃ᵀ (E₃ the Helmert rows of size 3)."""
    k = num_classes
    rank = (k + 1) // 2
    factor = np.zeros((k, rank))
    pairs = k // 2 if k % 2 == 0 else (k - 3) // 2
    for i in range(pairs):
        factor[2 * i, i] = 1.0
        factor[2 * i + 1, i] = -1.0
    if k % 2:
        factor[k - 3:, rank - 2:] = math.sqrt(1.5) * _centred_frame(3).T
    return factor


# --------------------------------------------------------------------------------------------
# DNC construction (β family)
# --------------------------------------------------------------------------------------------


def dnc_construct(
    num_classes: int,
    num_layers: int,
    per_class: int,
    lam_h: float,
    lam_w: Any,
    beta: float = 0.0,
    widths: Sequence[int] | None = None,
) -> Parameters:
    """An optimal DNC point of the L-DUFM (and of the deep linear UFM), docs/theory.md §4.3–4.4.

    β = 0: H₁ = ‖μ‖₁[I_K; 0]Y and W_l = s_l[I_K 0; 0 0] (W_L = s_L[I_K 0]), every block
    nonnegative. General β ∈ [0, 1/(K−1)] (L ≥ 2) replaces (W_1, M_1) by the balanced
    factorization of X₂(β) = a₂((1+β)I_K − βJ_K): with X₂^{1/2} = √(a₂(1+β))P_K +
    √(a₂(1 − β(K−1)))J_K/K, W_1 = (nλ_H/λ_1)^{1/4}X₂^{1/2} and M_1 = (λ_1/(nλ_H))^{1/4}X₂^{1/2}.
    Then σ(X₂) = a₂I_K = M₂ and the objective equals L_DNC for every β (check D1). The
    pre-activations H̃₂ are negative off the diagonal for β > 0, so this point is optimal for
    :class:`ufm.models.DeepUFM` but, for β > 0, not for the deep linear model.

    Parameters
    ----------
    num_classes, num_layers, per_class : int
        K, L, n.
    lam_h : float
        λ_H > 0.
    lam_w : float or sequence of float
        λ_1..λ_L > 0.
    beta : float
        β ∈ [0, 1/(K−1)]; must be 0 for L = 1 and when d_1 < K.
    widths : sequence of int, optional
        (d_1, …, d_L), each ≥ K (default all K). For L ≥ 2 and β = 0, d_1 may be as small as
        ⌈K/2⌉ (:func:`dnc_min_widths`): (W_1, M_1) is then the balanced factorization of the
        paired pre-image X₂ = a₂RRᵀ (R of :func:`dnc_min_widths`' proof, orthogonal columns),
        W_1 = (nλ_H/λ_1)^{1/4}√a₂·R and M_1 = (λ_1/(nλ_H))^{1/4}√a₂·Rᵀ, again of value L_DNC
        [derived]. When the zero solution is optimal any widths ≥ 1 are accepted.

    Returns
    -------
    Parameters
        H₁ of shape (d_1, Kn) and W_l of shape (d_{l+1}, d_l); all zero when the zero solution
        is optimal (P ≥ P_crit).
    """
    prediction = predict_dufm(num_classes, num_layers, per_class, lam_h, lam_w)
    k, depth, n = prediction.num_classes, prediction.num_layers, prediction.per_class
    beta = check_positive_scalar(beta, "beta")
    if depth == 1 and beta != 0.0:
        raise ValueError("beta must be 0 for L = 1 (the β family needs a ReLU after W_1)")
    if beta > 1.0 / (k - 1):
        raise ValueError(f"beta must lie in [0, 1/(K-1)] = [0, {1.0 / (k - 1)}], got {beta}")
    if prediction.is_zero:
        minimum: tuple = (1,) * depth
    elif beta == 0.0:
        minimum = dnc_min_widths(k, depth)
    else:
        minimum = (k,) * depth
    dims = (k,) * depth if widths is None else _layer_widths(widths, depth, minimum)
    layer_dims = dims + (k,)
    if prediction.is_zero:
        features = np.zeros((dims[0], k * n))
        weights = tuple(np.zeros((layer_dims[l + 1], layer_dims[l])) for l in range(depth))
        return Parameters(features=features, weights=weights)
    values = [sv[0] for sv in prediction.singular_values]
    if dims[0] < k:  # L ≥ 2, β = 0: the paired pre-image of rank ⌈K/2⌉
        a2 = prediction.second_layer_mean_norm
        ratio = prediction.per_class * prediction.lam_h / prediction.lam_w[0]  # b/a = nλ_H/λ_1
        factor = math.sqrt(a2) * _paired_preimage_factor(k)
        first = _embed(ratio**0.25 * factor, (layer_dims[1], layer_dims[0]))
        means = _embed(ratio**-0.25 * factor.T, (dims[0], k))
    else:
        first = _embed(values[0] * np.eye(k), (layer_dims[1], layer_dims[0]))
        means = _embed(prediction.class_mean_norms[0] * np.eye(k), (dims[0], k))
    weights = [first] + [
        _embed(values[l] * np.eye(k), (layer_dims[l + 1], layer_dims[l])) for l in range(1, depth)
    ]
    if beta != 0.0:
        a2 = prediction.second_layer_mean_norm
        centring = np.eye(k) - np.full((k, k), 1.0 / k)
        root = math.sqrt(a2 * (1.0 + beta)) * centring + math.sqrt(
            max(a2 * (1.0 - beta * (k - 1)), 0.0)
        ) * np.full((k, k), 1.0 / k)
        ratio = prediction.per_class * prediction.lam_h / prediction.lam_w[0]  # b/a = nλ_H/λ_1
        weights[0] = _embed(ratio**0.25 * root, (layer_dims[1], layer_dims[0]))
        means = _embed(ratio**-0.25 * root, (dims[0], k))
    features = _class_means_to_features(means, n)
    return Parameters(features=features, weights=tuple(weights))


def predict(model: Any) -> PredictedOptimum:
    """Predicted optimum of a :class:`ufm.models.UFM`, ``DeepLinearUFM`` or ``DeepUFM`` at the
    model's own widths.

    UFM and deep linear UFM: the global minimum, rank-limited when a width is below K (below
    K − 1 with bias), see :func:`predict_ufm`, :func:`predict_deep_linear`. ReLU DUFM:
    :func:`predict_dufm`; when no DNC point fits the widths (d_1 < ⌈K/2⌉ or some d_l < K,
    l ≥ 2) it returns L_DNC with ``reachable = False`` and ``kind = "unreachable_reference"``
    rather than raising, so callers that use L_DNC as a reference keep working; check
    ``kind``/``reachable`` before calling the value an optimum.

    Raises
    ------
    TypeError
        For other objectives (e.g. ``LinearHead``).
    ValueError
        For a zero penalty (the closed forms need every λ > 0).
    """
    if isinstance(model, UFM):
        return predict_ufm(
            model.num_classes, model.per_class, model.lam_w, model.lam_h, model.bias,
            width=model.width,
        )
    if isinstance(model, DeepLinearUFM):
        return predict_deep_linear(
            model.num_classes, model.num_layers, model.per_class, model.lam_h, model.lam_w,
            widths=model.widths,
        )
    if isinstance(model, DeepUFM):
        return predict_dufm(
            model.num_classes, model.num_layers, model.per_class, model.lam_h, model.lam_w,
            widths=model.widths,
        )
    raise TypeError(f"no closed-form optimum for {type(model).__name__}")


def optimal_parameters(model: Any, beta: float = 0.0) -> Parameters:
    """The constructed optimum in the shapes of ``model`` (value ``predict(model).optimal_loss``).

    UFM: :func:`ufm_construct` (rank-limited for d < K). Deep linear UFM: the β = 0 DNC point,
    or for min(widths) < K the rank-limited optimum (first r classes fitted, the others at 0).
    ReLU DUFM: the DNC point of value L_DNC (the global optimum for K = 2 only); for L = 1 and
    d < K the rank-limited optimum.

    Raises
    ------
    ValueError
        ``beta`` ≠ 0 where the β family does not apply, or a DUFM whose widths admit no DNC
        point (the message names the width, see :func:`dnc_min_widths`).
    """
    if isinstance(model, UFM):
        return ufm_construct(
            model.num_classes, model.per_class, model.width, model.lam_w, model.lam_h, model.bias
        )
    if isinstance(model, (DeepLinearUFM, DeepUFM)):
        if isinstance(model, DeepLinearUFM) and beta != 0.0:
            raise ValueError("beta must be 0 for the deep linear UFM (σ(X₂) = X₂ there)")
        narrow = min(model.widths) < model.num_classes
        if narrow and (isinstance(model, DeepLinearUFM) or model.num_layers == 1):
            if beta != 0.0:
                raise ValueError("beta must be 0 for L = 1 (the β family needs a ReLU after W_1)")
            return _rank_limited_point(
                model.num_classes, model.num_layers, model.per_class, model.lam_h, model.lam_w,
                model.widths,
            )
        return dnc_construct(
            model.num_classes,
            model.num_layers,
            model.per_class,
            model.lam_h,
            model.lam_w,
            beta=beta,
            widths=model.widths,
        )
    raise TypeError(f"no constructed optimum for {type(model).__name__}")


# --------------------------------------------------------------------------------------------
# Non-collapsed configurations where gradient descent stalls ([derived]; used by E-B2)
# --------------------------------------------------------------------------------------------


def _group_sizes(sizes: Any, per_class: int) -> tuple[int, ...]:
    """Validate group sizes m_g ≥ 1 with Σ_g m_g ≤ n."""
    if isinstance(sizes, (str, bytes)) or isinstance(sizes, numbers.Number):
        raise TypeError(f"sizes must be a sequence of group sizes, got {sizes!r}")
    try:
        values = tuple(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a sequence of group sizes, got {sizes!r}") from None
    values = tuple(_positive_integer(size, f"sizes[{i}]") for i, size in enumerate(values))
    if sum(values) > per_class:
        raise ValueError(
            f"sizes must add up to at most per_class = {per_class}, got {list(values)} "
            f"(sum {sum(values)})"
        )
    return values


def _merge_layer(merge_layer: Any, num_layers: int) -> int:
    layer = _positive_integer(merge_layer, "merge_layer")
    if layer > num_layers:
        raise ValueError(f"merge_layer must lie in 1..L = 1..{num_layers}, got {layer}")
    return layer


@dataclass(frozen=True)
class _SplitClassOptimum:
    """Minimizer of the split-class problem: class share, shared product B, group outputs q_g."""

    loss: float
    shared_product: float
    outputs: tuple[float, ...]


def _split_class_optimum(
    num_classes: int,
    num_layers: int,
    per_class: int,
    lam_h: float,
    lams: tuple[float, ...],
    sizes: tuple[int, ...],
    merge_layer: int,
) -> _SplitClassOptimum:
    """Body of :func:`dufm_split_class_loss` on validated arguments (see there).

    For fixed B each group's problem is the scalar problem g_K of §4.3 with j layers; the
    remaining one-dimensional problem in x = log B is bracketed on a grid of 97 points over
    x₀ ± 12 (x₀ = ½Σ_{l>j} log(C/λ_l), the log of the shared product of the DNC point at q = 1),
    refined by ``minimize_scalar`` (bounded) and polished by ``brentq`` on its derivative
    (envelope theorem: d/dx = b·S·B^b − a·F·B^{−a}Σ_g m_g^{1/(j+1)}q_g^a, a = 2/(j+1),
    b = 2/(L−j)), so B is accurate to rounding and the constructed point is a critical point.
    """
    k, depth, n, j = num_classes, num_layers, per_class, merge_layer
    samples = k * n
    dropped = (n - sum(sizes)) / (2.0 * samples)
    if not sizes:
        return _SplitClassOptimum(dropped, 0.0, ())
    front = 0.5 * (j + 1) * (lam_h * math.prod(lams[:j])) ** (1.0 / (j + 1))  # F
    shared = depth - j
    exponent = 2.0 / (j + 1)  # a

    def groups(log_b: float) -> tuple[float, list[float]]:
        b = math.exp(log_b)
        total, outputs = 0.0, []
        for size in sizes:
            # group term (m/N)[½(1 − q)² + (N/m)·F·(√m/B)^{2/(j+1)}q^{2/(j+1)}] = (m/N)·g_K(q; C'):
            # the scalar problem of §4.3 with j layers and K(j+1)/2·C' = (N/m)·F·(√m/B)^{2/(j+1)}
            coefficient = (samples / size) * front * (math.sqrt(size) / b) ** exponent
            scalar = _solve_scalar(float(k), j, 2.0 * coefficient / (k * (j + 1)))
            total += (size / samples) * scalar.value
            outputs.append(scalar.q_star)
        return total, outputs

    if not shared:
        total, outputs = groups(0.0)
        return _SplitClassOptimum(total + dropped, 1.0, tuple(outputs))
    shared_front = 0.5 * shared * math.prod(lams[j:]) ** (1.0 / shared)  # S
    power = 2.0 / shared  # b

    def value(log_b: float) -> float:
        return groups(log_b)[0] + shared_front * math.exp(power * log_b)

    def slope(log_b: float) -> float:
        _, outputs = groups(log_b)
        pull = sum(size ** (1.0 / (j + 1)) * q**exponent for size, q in zip(sizes, outputs))
        return (power * shared_front * math.exp(power * log_b)
                - exponent * front * math.exp(-exponent * log_b) * pull)

    constant = penalty_product(n, lam_h, lams) ** (1.0 / (depth + 1))
    centre = 0.5 * sum(math.log(constant / lam) for lam in lams[j:])
    grid = centre + np.linspace(-12.0, 12.0, 97)
    values = [value(point) for point in grid]
    best = int(np.argmin(values))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    bounded = optimize.minimize_scalar(value, bounds=(low, high), method="bounded",
                                       options={"xatol": 1e-12})
    point, loss = float(grid[best]), float(values[best])
    if bounded.fun < loss:
        point, loss = float(bounded.x), float(bounded.fun)
    if low < high and slope(low) < 0.0 < slope(high):
        root = optimize.brentq(slope, low, high, xtol=1e-15, rtol=4.0 * _EPS, maxiter=500)
        polished = value(root)
        if polished <= loss + 4.0 * _EPS * abs(loss):
            point, loss = float(root), polished
    outputs = groups(point)[1]
    if sum(sizes) / (2.0 * samples) <= loss:
        # every group at q = 0 with B → 0 (the whole class outputs 0) is at least as good
        return _SplitClassOptimum(n / (2.0 * samples), 0.0, (0.0,) * len(sizes))
    return _SplitClassOptimum(loss + dropped, math.exp(point), tuple(outputs))


def dufm_split_class_loss(
    num_classes: int,
    num_layers: int,
    per_class: int,
    lam_h: float,
    lam_w: Any,
    sizes: Sequence[int],
    merge_layer: int,
) -> float:
    """Least share of Φ_DUFM of one class whose samples split into groups [derived here].

    Configuration: the n samples of one class form groups of sizes m_g (Σ_g m_g ≤ n; samples
    in no group are *dropped*: H₁ column 0, output 0). Group g uses its own neurons in
    H₁ … H_j, j = ``merge_layer``, and the groups merge in W_j into the class's shared path
    W_{j+1} … W_L (j = L: they merge in the output). Within a group the samples collapse.
    By F2 (AM–GM over the j + 1 factors of a group and over the L − j shared factors), with
    P_g the product of group g's factors (√m_g times its H₁ entry) and B that of the shared
    path, group g outputs q_g = P_gB/√m_g and the class costs

        min_{P, B} Σ_g [m_g(1 − q_g)²/(2N) + F·P_g^{2/(j+1)}] + S·B^{2/(L−j)}
                   + (n − Σ_g m_g)/(2N),

    F = ((j+1)/2)(λ_HΠ_{l≤j}λ_l)^{1/(j+1)}, S = ((L−j)/2)(Π_{l>j}λ_l)^{1/(L−j)}, N = Kn.
    For fixed B each group's problem is (m_g/N)·g_K(q_g; C'_g), the scalar problem of §4.3 with
    j layers (:func:`solve_dnc_scalar`) and K(j+1)C'_g/2 = (N/m_g)·F·(√m_g/B)^{2/(j+1)}; the
    remaining one-dimensional problem in B is solved numerically (grid, bounded Brent, then a
    root of its derivative; B = 0, the whole class at output 0, is included). One group of all
    n samples gives L_DNC/K for every j. The minimizer is realised by
    :func:`dufm_split_class_construct`; it is a critical point of Φ_DUFM for j ≥ 2 (with
    dropped samples, for L ≥ 2), but not for a split merging in W_1
    (:func:`dufm_stall_configurations`).

    Parameters
    ----------
    num_classes, num_layers, per_class : int
        K ≥ 2, L ≥ 1, n ≥ 1.
    lam_h : float
        λ_H > 0.
    lam_w : float or sequence of float
        λ_1..λ_L > 0 (one number: equal λ on every layer).
    sizes : sequence of int
        Group sizes m_g ≥ 1 with Σ_g m_g ≤ n; empty: the whole class is dropped (n/(2N)).
    merge_layer : int
        j ∈ 1..L, the weight matrix W_j in which the groups merge.

    Returns
    -------
    float
        The class's share of Φ (its fit over its n samples plus the penalties of its neurons);
        Φ of the whole configuration, the other K − 1 classes collapsed as in DNC, is
        L_DNC·(K − 1)/K plus this.

    Notes
    -----
    Minimizing over B first (AM–GM once more) gives the equivalent G-dimensional form

        min_{q ∈ [0,1]^G} Σ_g m_g(1 − q_g)²/(2N)
            + ((L+1)/2)(λ_HΠ_lλ_l)^{1/(L+1)}(Σ_g (√m_g q_g)^{2/(j+1)})^{(j+1)/(L+1)}
            + (n − Σ_g m_g)/(2N),

    which for j = L separates over the groups. (B) Súkeník, Mondelli & Lampert, NeurIPS 2023
    (the L-DUFM and L_DNC); the configuration and its value are [derived] here (docs/theory.md §4.3
    scalar problem, §4.6 "narrow widths can stall").
    """
    prediction = predict_dufm(num_classes, num_layers, per_class, lam_h, lam_w)
    groups = _group_sizes(sizes, prediction.per_class)
    layer = _merge_layer(merge_layer, prediction.num_layers)
    return _split_class_optimum(
        prediction.num_classes, prediction.num_layers, prediction.per_class, prediction.lam_h,
        prediction.lam_w, groups, layer,
    ).loss


def dufm_split_class_construct(
    num_classes: int,
    num_layers: int,
    per_class: int,
    lam_h: float,
    lam_w: Any,
    sizes: Sequence[int],
    merge_layer: int,
    altered_class: int = 0,
    widths: Sequence[int] | None = None,
) -> Parameters:
    """Parameters of the L-DUFM realising the split-class configuration of
    :func:`dufm_split_class_loss` [derived here].

    Every class but ``altered_class`` (c) is collapsed as in :func:`dnc_construct` (β = 0,
    class i on neuron i of every layer). Class c: its first m_0 samples form group 0, the next
    m_1 group 1, …, the rest are dropped (H₁ column 0). Group g uses one neuron per layer
    1..j (group 0 neuron c, group g ≥ 1 neuron K + g − 1); H₁ holds a_g = x_H/√m_g there and
    W_1 … W_{j−1} carry x_1 … x_{j−1} along the group's neurons; W_j maps each group neuron to
    neuron c of H_{j+1} (to output row c if j = L) with x_j; W_{j+1} … W_L carry the shared
    path of class c on neuron c with y_{j+1} … y_L. Scales by AM–GM balancing at the minimizer
    (q_g, B) of :func:`dufm_split_class_loss`: λ_Hx_H² = λ_lx_l² = T_g =
    (P_g²λ_HΠ_{l≤j}λ_l)^{1/(j+1)} with P_g = q_g√m_g/B, and λ_ly_l² =
    (B²Π_{l>j}λ_l)^{1/(L−j)}. Group g outputs q_gY, and ``DeepUFM.objective`` at this point is
    L_DNC(K − 1)/K + ``dufm_split_class_loss(...)``.

    Parameters
    ----------
    num_classes, num_layers, per_class, lam_h, lam_w, sizes, merge_layer
        As in :func:`dufm_split_class_loss`.
    altered_class : int
        c ∈ 0..K−1.
    widths : sequence of int, optional
        (d_1, …, d_L) with d_l ≥ K + G − 1 for l ≤ j (G = len(sizes) groups) and d_l ≥ K for
        l > j; default the least such widths.

    Returns
    -------
    Parameters
        H₁ of shape (d_1, Kn) (samples ordered by class) and W_l of shape (d_{l+1}, d_l),
        d_{L+1} = K, for :class:`ufm.models.DeepUFM` (K, n, widths, λ_H, λ_w).
    """
    prediction = predict_dufm(num_classes, num_layers, per_class, lam_h, lam_w)
    k, depth, n = prediction.num_classes, prediction.num_layers, prediction.per_class
    lams = prediction.lam_w
    groups = _group_sizes(sizes, n)
    j = _merge_layer(merge_layer, depth)
    if isinstance(altered_class, (bool, np.bool_)) or not isinstance(altered_class, (int, np.integer)):
        raise TypeError(f"altered_class must be an integer, got {altered_class!r}")
    if not 0 <= altered_class < k:
        raise ValueError(f"altered_class must lie in 0..K-1 = 0..{k - 1}, got {altered_class}")
    c = int(altered_class)
    extra = max(len(groups) - 1, 0)
    minimum = tuple(k + extra if l < j else k for l in range(depth))
    dims = _layer_widths(widths, depth, minimum)
    layer_dims = dims + (k,)
    weights = [np.zeros((layer_dims[l + 1], layer_dims[l])) for l in range(depth)]
    features = np.zeros((dims[0], k * n))
    if not prediction.is_zero:
        values = [sv[0] for sv in prediction.singular_values]
        for i in range(k):
            if i == c:
                continue
            features[i, i * n : (i + 1) * n] = prediction.class_mean_norms[0]
            for l in range(depth):
                weights[l][i, i] = values[l]
    optimum = _split_class_optimum(k, depth, n, prediction.lam_h, lams, groups, j)
    start = c * n
    for g, (size, q) in enumerate(zip(groups, optimum.outputs)):
        neuron = c if g == 0 else k + g - 1
        if q > 0.0:
            product = q * math.sqrt(size) / optimum.shared_product  # P_g
            target = (product**2 * prediction.lam_h * math.prod(lams[:j])) ** (1.0 / (j + 1))
            features[neuron, start : start + size] = math.sqrt(target / prediction.lam_h) / math.sqrt(size)
            for l in range(j - 1):
                weights[l][neuron, neuron] = math.sqrt(target / lams[l])
            weights[j - 1][c, neuron] = math.sqrt(target / lams[j - 1])
        start += size
    if depth > j and any(q > 0.0 for q in optimum.outputs):
        target = (optimum.shared_product**2 * math.prod(lams[j:])) ** (1.0 / (depth - j))
        for l in range(j, depth):
            weights[l][c, c] = math.sqrt(target / lams[l])
    return Parameters(features=features, weights=tuple(weights))


@dataclass(frozen=True)
class StallConfiguration:
    """A non-collapsed configuration of the L-DUFM and its least objective [derived here].

    One class is altered, the other K − 1 are collapsed as in DNC.

    Attributes
    ----------
    kind : str
        ``"split"`` (the class splits into groups merging in W_j), ``"drop"`` (samples of the
        class output 0, the others collapsed), ``"drop_class"`` (the whole class outputs 0) or
        ``"zero"`` (the zero point, all classes output 0).
    label : str
        Short description (matplotlib mathtext), e.g. ``"split 4+1, merge in $W_2$"``.
    sizes : tuple of int
        Group sizes of the altered class (:func:`dufm_split_class_loss`); empty for
        ``"drop_class"`` and ``"zero"``.
    merge_layer : int or None
        j (None for ``"drop_class"`` and ``"zero"``).
    loss : float
        Φ of the configuration: L_DNC(K − 1)/K + the class share, n/(2N) = 1/(2K) for a
        dropped class, ½ for the zero point.
    ratio : float
        loss/L_DNC − 1.
    """

    kind: str
    label: str
    sizes: tuple[int, ...]
    merge_layer: int | None
    loss: float
    ratio: float

    def to_dict(self) -> dict:
        """JSON-serializable dictionary."""
        return {
            "kind": self.kind,
            "label": self.label,
            "sizes": list(self.sizes),
            "merge_layer": self.merge_layer,
            "loss": self.loss,
            "ratio": self.ratio,
        }


def _merge_layers(merge_layers: Any, num_layers: int) -> tuple[int, ...]:
    """Validate the merge layers of the listed splits; None: 2..L (the critical ones)."""
    if merge_layers is None:
        return tuple(range(2, num_layers + 1))
    if isinstance(merge_layers, (str, bytes)) or isinstance(merge_layers, numbers.Number):
        raise TypeError(f"merge_layers must be a sequence of layers, got {merge_layers!r}")
    try:
        values = tuple(merge_layers)
    except TypeError:
        raise TypeError(f"merge_layers must be a sequence of layers, got {merge_layers!r}") from None
    layers = []
    for i, layer in enumerate(values):
        layer = _positive_integer(layer, f"merge_layers[{i}]")
        if layer > num_layers:
            raise ValueError(f"merge_layers[{i}] must lie in 1..L = 1..{num_layers}, got {layer}")
        layers.append(layer)
    return tuple(layers)


def dufm_stall_configurations(
    num_classes: int,
    num_layers: int,
    per_class: int,
    lam_h: float,
    lam_w: Any,
    merge_layers: Sequence[int] | None = None,
) -> list[StallConfiguration]:
    """Non-collapsed critical points where gradient descent on the L-DUFM stalls [derived here].

    docs/theory.md §4.6: narrow widths can stall at non-collapsed critical points; GD end points
    sit at these values (E-B2). With the other K − 1 classes collapsed (share L_DNC/K each) and
    one class altered, in this order:

    - every two-group split (n − m, m), 1 ≤ m ≤ n/2, for every merge layer j in
      ``merge_layers``: L_DNC(K − 1)/K + :func:`dufm_split_class_loss` (sizes (n − m, m), j);
    - one sample dropped (n ≥ 2, L ≥ 2): its output is 0, a strict local minimum of its path
      (§4.3); value L_DNC(K − 1)/K + h(n − 1) + 1/(2N), h(m) the one-group value;
    - the whole class dropped: L_DNC(K − 1)/K + n/(2N);
    - the zero point: ½.

    Each value is attained by :func:`dufm_split_class_construct` (the zero point by all-zero
    parameters), and for j ≥ 2 and L ≥ 2 that point is a critical point of Φ_DUFM: the ReLU
    after W_1 … W_{j−1} masks every gradient entry that would mix the groups. A split merging
    in W_1 is not: nothing separates the groups' H₁ columns before W_1, so the merged
    pre-activation row x of the class can be refactored at cost √(λ_Hλ_1)‖x‖₂ <
    Σ_g√(λ_Hλ_1m_g)|x_g|, and gradient descent from it reaches DNC. Likewise for L = 1 the
    dropped sample is not critical. Hence the default ``merge_layers`` = 2..L. For K = 2 every
    value is ≥ L_DNC, the global minimum ((B); docs/theory.md §4.3).

    Parameters
    ----------
    num_classes, num_layers, per_class : int
        K ≥ 2, L ≥ 1, n ≥ 1.
    lam_h : float
        λ_H > 0.
    lam_w : float or sequence of float
        λ_1..λ_L > 0.
    merge_layers : sequence of int, optional
        The merge layers j ∈ 1..L of the listed splits; default 2..L (the critical ones).

    Returns
    -------
    list of StallConfiguration
        With ``ratio`` = loss/L_DNC − 1.
    """
    prediction = predict_dufm(num_classes, num_layers, per_class, lam_h, lam_w)
    k, depth, n = prediction.num_classes, prediction.num_layers, prediction.per_class
    layers = _merge_layers(merge_layers, depth)
    reference = prediction.optimal_loss
    others = reference - reference / k  # L_DNC(K − 1)/K
    samples = k * n

    def share(sizes: tuple[int, ...], layer: int) -> float:
        return _split_class_optimum(k, depth, n, prediction.lam_h, prediction.lam_w, sizes, layer).loss

    entries: list[tuple[str, str, tuple[int, ...], int | None, float]] = []
    for small in range(1, n // 2 + 1):
        for layer in layers:
            sizes = (n - small, small)
            entries.append(("split", f"split {n - small}+{small}, merge in $W_{layer}$", sizes,
                            layer, others + share(sizes, layer)))
    if n > 1 and depth > 1:
        entries.append(("drop", "one sample dropped (output 0)", (n - 1,), depth,
                        others + share((n - 1,), depth)))
    entries.append(("drop_class", "one class dropped", (), None, others + n / (2.0 * samples)))
    entries.append(("zero", "zero point (½)", (), None, 0.5))
    return [StallConfiguration(kind, label, sizes, layer, loss, loss / reference - 1.0)
            for kind, label, sizes, layer, loss in entries]


def dnc_reach_tolerance(
    num_classes: int,
    num_layers: int,
    per_class: int,
    lam_h: float,
    lam_w: Any,
    merge_layers: Sequence[int] | None = None,
) -> tuple[float, StallConfiguration]:
    """τ: a GD end point Φ *reaches* L_DNC when Φ − L_DNC ≤ τ [derived here; E-B2].

    τ is half the smallest gap (value − L_DNC) among the two-group splits and the single
    dropped sample of :func:`dufm_stall_configurations`: a run reaches L_DNC when its end
    loss is closer to L_DNC than to the nearest of these stall points.

    Parameters
    ----------
    num_classes, num_layers, per_class : int
        K ≥ 2, L ≥ 2 (for L = 1 no split or dropped sample is a critical point), n ≥ 2 (n = 1
        has no split or dropped sample).
    lam_h : float
        λ_H > 0.
    lam_w : float or sequence of float
        λ_1..λ_L > 0.
    merge_layers : sequence of int, optional
        As in :func:`dufm_stall_configurations` (default 2..L).

    Returns
    -------
    tolerance : float
        τ (absolute, in units of Φ).
    nearest : StallConfiguration
        The configuration that sets it.

    Raises
    ------
    ValueError
        If there is no split or dropped-sample configuration (n < 2, or L = 1 with no
        ``merge_layers``), or if the nearest one is not above L_DNC (e.g. above the threshold,
        where L_DNC = ½ and dropping a sample costs nothing).
    """
    prediction = predict_dufm(num_classes, num_layers, per_class, lam_h, lam_w)
    if prediction.per_class < 2:
        raise ValueError(
            f"per_class must be >= 2 (n = 1 has no split or dropped-sample configuration), "
            f"got {prediction.per_class}"
        )
    candidates = [
        entry
        for entry in dufm_stall_configurations(
            num_classes, num_layers, per_class, lam_h, lam_w, merge_layers
        )
        if entry.kind in ("split", "drop")
    ]
    if not candidates:
        raise ValueError(
            f"num_layers = {prediction.num_layers} with merge_layers = {merge_layers!r} gives no "
            "split or dropped-sample configuration (use num_layers >= 2)"
        )
    nearest = min(candidates, key=lambda entry: entry.loss)
    gap = nearest.loss - prediction.optimal_loss
    if not gap > 0.0:
        raise ValueError(
            f"no configuration lies above L_DNC = {prediction.optimal_loss} (nearest: "
            f"{nearest.kind} {list(nearest.sizes)}, gap {gap}); is the zero solution optimal?"
        )
    return 0.5 * gap, nearest


# --------------------------------------------------------------------------------------------
# Low-rank (SRG) points, docs/theory.md §4.5
# --------------------------------------------------------------------------------------------


def triangular_incidence(
    num_vertices: int, edges: Sequence[tuple[int, int]] | None = None
) -> np.ndarray:
    """Vertex–edge incidence matrix B ∈ {0,1}^{r×K} of the complete graph K_r (or of ``edges``).

    Columns (classes) are the edges (i, j), i < j, in lexicographic order, K = r(r−1)/2; with
    ``edges`` only those columns, in the given order. BBᵀ = (r−2)I_r + J_r for K_r and
    BᵀB = 2I_K + A(T(r)) (docs/theory.md §4.5, LR1).
    """
    r = _positive_integer(num_vertices, "num_vertices")
    if r < 3:
        raise ValueError(f"num_vertices must be >= 3, got {r}")
    if edges is None:
        edges = list(itertools.combinations(range(r), 2))
    else:
        edges = [tuple(int(v) for v in edge) for edge in edges]
        for edge in edges:
            if len(edge) != 2 or edge[0] == edge[1] or not all(0 <= v < r for v in edge):
                raise ValueError(
                    f"edges must be pairs of distinct vertices in 0..{r - 1}, got {edge}"
                )
        if len({frozenset(edge) for edge in edges}) != len(edges):
            raise ValueError("edges must not repeat")
    incidence = np.zeros((r, len(edges)), dtype=np.int64)
    for column, (i, j) in enumerate(edges):
        incidence[i, column] = 1
        incidence[j, column] = 1
    return incidence


def srg_nuclear_norm(num_vertices: int) -> float:
    """ν_r = ‖B‖_* = √(2(r−1)) + (r−1)√(r−2) for K_r (docs/theory.md §4.5)."""
    r = _positive_integer(num_vertices, "num_vertices")
    return math.sqrt(2.0 * (r - 1)) + (r - 1) * math.sqrt(r - 2)


def srg_kappa(num_vertices: int) -> float:
    """κ_r = ‖Bᵀ(I_r − J_r/4)‖_F² = (r−1)(r−2) + (1 − r/4)²(2r−2) (docs/theory.md §4.5)."""
    r = _positive_integer(num_vertices, "num_vertices")
    return (r - 1) * (r - 2) + (1.0 - r / 4.0) ** 2 * (2 * r - 2)


def srg_coefficient(num_vertices: int, num_layers: int) -> float:
    """c_r = (ν_r²·r^{L−3}·κ_r·K)^{1/(L+1)}, K = r(r−1)/2: the basic SRG point costs
    ½(1 − q)² + ((L+1)/2)·C·c_r·q^{2/(L+1)} against c = K for DNC (docs/theory.md §4.5)."""
    r = _positive_integer(num_vertices, "num_vertices")
    depth = _positive_integer(num_layers, "num_layers")
    if depth < 3:
        raise ValueError(f"the SRG construction needs num_layers >= 3, got {depth}")
    k = r * (r - 1) // 2
    logarithm = (
        2.0 * math.log(srg_nuclear_norm(r)) + (depth - 3) * math.log(r) + math.log(srg_kappa(r) * k)
    )
    return math.exp(logarithm / (depth + 1))


def srg_ratio(num_vertices: int, num_layers: int) -> float:
    """c_r/K, below 1 iff the basic SRG point beats DNC for every n, λ (table of §4.5, LR3)."""
    r = _positive_integer(num_vertices, "num_vertices")
    return srg_coefficient(r, num_layers) / (r * (r - 1) // 2)


def _check_incidence(incidence: Any) -> np.ndarray:
    matrix = as_float64_matrix(incidence, "incidence")
    if not np.all((matrix == 0.0) | (matrix == 1.0)) or not np.all(matrix.sum(axis=0) == 2.0):
        raise ValueError("incidence must be a 0/1 matrix with exactly two ones per column")
    r = matrix.shape[0]
    if np.linalg.matrix_rank(matrix) != r:
        raise ValueError(
            f"incidence must have rank r = {r} (every component of the graph non-bipartite); "
            f"got rank {np.linalg.matrix_rank(matrix)}"
        )
    return matrix


def _family_parts(incidence: np.ndarray, shift: float):
    """(ν, ‖Bᵀ(I + tJ/4)‖_F², S_t) of the improved family at t = ``shift``."""
    r, k = incidence.shape
    nuclear = float(np.sum(np.linalg.svd(incidence, compute_uv=False)))
    head = incidence.T @ (np.eye(r) + (shift / 4.0) * np.ones((r, r)))
    pattern = np.maximum(incidence.T @ incidence + shift * np.ones((k, k)), 0.0)
    return nuclear, float(np.sum(head * head)), head, pattern


def _family_log_coefficient(incidence: np.ndarray, num_layers: int, shift: float) -> float:
    nuclear, head_norm, _, pattern = _family_parts(incidence, shift)
    inverse = np.linalg.inv(pattern)
    r = incidence.shape[0]
    total = (
        2.0 * math.log(nuclear)
        + (num_layers - 3) * math.log(r)
        + math.log(head_norm)
        + math.log(float(np.sum(inverse * inverse)))
    )
    return total / (num_layers + 1)


def srg_family_coefficient(incidence: Any, num_layers: int, shift: float = -1.0) -> float:
    """c(t) = (ν²·r^{L−3}·‖Bᵀ(I_r + (t/4)J_r)‖_F²·‖S_t^{−1}‖_F²)^{1/(L+1)} (docs/theory.md §4.5).

    S_t = σ(BᵀB + tJ_K) = (2+t)I_K + (1+t)_+A, ν = ‖B‖_*; t = −1 gives c_r. Works for any
    incidence matrix of rank r with two ones per column (edge subsets).

    Parameters
    ----------
    incidence : array_like, shape (r, K)
        B (:func:`triangular_incidence`).
    num_layers : int
        L ≥ 3.
    shift : float
        t ∈ (−2, 0).
    """
    matrix = _check_incidence(incidence)
    depth = _positive_integer(num_layers, "num_layers")
    if depth < 3:
        raise ValueError(f"the SRG construction needs num_layers >= 3, got {depth}")
    shift = float(shift)
    if not -2.0 < shift < 0.0:
        raise ValueError(f"shift t must lie in (-2, 0), got {shift}")
    return math.exp(_family_log_coefficient(matrix, depth, shift))


def srg_best_shift(incidence: Any, num_layers: int = 4) -> tuple[float, float]:
    """t* = argmin_{t∈(−2,0)} c(t) and c(t*) (docs/theory.md §4.5, improved family).

    c(t)^{L+1}/r^{L−3} does not depend on L, so t* does not either. A grid of 201 points
    brackets the minimum, then ``scipy.optimize.minimize_scalar`` (bounded) refines it.

    Returns
    -------
    shift : float
        t*.
    coefficient : float
        c(t*) for ``num_layers``.
    """
    matrix = _check_incidence(incidence)
    depth = _positive_integer(num_layers, "num_layers")
    if depth < 3:
        raise ValueError(f"the SRG construction needs num_layers >= 3, got {depth}")
    grid = np.linspace(-2.0, 0.0, 202)[1:-1]
    values = [_family_log_coefficient(matrix, depth, t) for t in grid]
    best = int(np.argmin(values))
    lower = grid[best - 1] if best > 0 else grid[0] - 0.5 * (grid[1] - grid[0])
    upper = grid[best + 1] if best + 1 < grid.size else grid[-1] + 0.5 * (grid[1] - grid[0])
    result = optimize.minimize_scalar(
        lambda t: _family_log_coefficient(matrix, depth, t),
        bounds=(lower, upper),
        method="bounded",
        options={"xatol": 1e-12},
    )
    shift, value = float(result.x), float(result.fun)
    if values[best] < value:
        shift, value = float(grid[best]), float(values[best])
    return shift, math.exp(value)


@dataclass(frozen=True)
class SRGPrediction:
    """Objective of a low-rank SRG point (docs/theory.md §4.5) against L_DNC.

    Attributes
    ----------
    num_vertices : int
        r.
    num_classes, num_layers, per_class : int
        K (number of edges), L, n.
    lam_h : float
        λ_H.
    lam_w : tuple of float
        λ_1..λ_L.
    shift : float
        t (−1 for the basic point).
    coefficient : float
        c(t), replacing K in g: value = min_q ½(1 − q)² + ((L+1)/2)·C·c(t)·q^{2/(L+1)}.
    coefficient_ratio : float
        c(t)/K (< 1 ⇒ the SRG point beats DNC for every n, λ with L_DNC < ½).
    optimal_loss : float
        L_SRG, the objective of the constructed point.
    q_star : float
        Output q*·Y.
    dnc_loss : float
        L_DNC for the same (K, L, n, λ).
    loss_ratio : float
        L_SRG / L_DNC.
    edges : tuple of tuple of int
        The classes as edges (i, j) of K_r.
    """

    num_vertices: int
    num_classes: int
    num_layers: int
    per_class: int
    lam_h: float
    lam_w: tuple[float, ...]
    shift: float
    coefficient: float
    coefficient_ratio: float
    optimal_loss: float
    q_star: float
    dnc_loss: float
    loss_ratio: float
    edges: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict:
        """JSON-serializable dictionary."""
        return {
            "num_vertices": self.num_vertices,
            "num_classes": self.num_classes,
            "num_layers": self.num_layers,
            "per_class": self.per_class,
            "lam_h": self.lam_h,
            "lam_w": list(self.lam_w),
            "shift": self.shift,
            "coefficient": self.coefficient,
            "coefficient_ratio": self.coefficient_ratio,
            "optimal_loss": self.optimal_loss,
            "q_star": self.q_star,
            "dnc_loss": self.dnc_loss,
            "loss_ratio": self.loss_ratio,
            "edges": [list(edge) for edge in self.edges],
        }


def _edges_of(incidence: np.ndarray) -> tuple[tuple[int, int], ...]:
    return tuple(tuple(int(v) for v in np.flatnonzero(column)) for column in incidence.T)


def predict_srg(
    num_vertices: int,
    num_layers: int,
    per_class: int,
    lam_h: float,
    lam_w: Any,
    shift: float | None = -1.0,
    edges: Sequence[tuple[int, int]] | None = None,
) -> SRGPrediction:
    """Objective of the SRG point of §4.5 (basic t = −1, a given t, or t* with ``shift=None``).

    Parameters
    ----------
    num_vertices : int
        r ≥ 3.
    num_layers : int
        L ≥ 3.
    per_class : int
        n.
    lam_h : float
        λ_H > 0.
    lam_w : float or sequence of float
        λ_1..λ_L > 0.
    shift : float or None
        t ∈ (−2, 0); None minimizes c(t) (:func:`srg_best_shift`).
    edges : sequence of (i, j), optional
        An edge subset (K < r(r−1)/2 classes); its incidence matrix must have rank r.
    """
    incidence = _check_incidence(triangular_incidence(num_vertices, edges))
    depth = _positive_integer(num_layers, "num_layers")
    if depth < 3:
        raise ValueError(f"the SRG construction needs num_layers >= 3, got {depth}")
    k = incidence.shape[1]
    check_num_classes(k, "number of edges K")
    if shift is None:
        shift, coefficient = srg_best_shift(incidence, depth)
    else:
        coefficient = srg_family_coefficient(incidence, depth, shift)
    dnc = predict_dufm(k, depth, per_class, lam_h, lam_w)
    scalar = _solve_scalar(coefficient, depth, dnc.constant)
    return SRGPrediction(
        num_vertices=int(num_vertices),
        num_classes=k,
        num_layers=depth,
        per_class=dnc.per_class,
        lam_h=dnc.lam_h,
        lam_w=dnc.lam_w,
        shift=float(shift),
        coefficient=coefficient,
        coefficient_ratio=coefficient / k,
        optimal_loss=scalar.value,
        q_star=scalar.q_star,
        dnc_loss=dnc.optimal_loss,
        loss_ratio=scalar.value / dnc.optimal_loss,
        edges=_edges_of(incidence),
    )


def srg_construct(
    num_vertices: int,
    num_layers: int,
    per_class: int,
    lam_h: float,
    lam_w: Any,
    shift: float | None = -1.0,
    edges: Sequence[tuple[int, int]] | None = None,
    widths: Sequence[int] | None = None,
) -> Parameters:
    """The explicit low-rank SRG point of the L-DUFM (docs/theory.md §4.5; LR2 certificate).

    With B the incidence matrix (r×K) and scales fixed by AM–GM balancing
    (every λ_j‖θ_j‖² equals T = C·c(t)·q*^{2/(L+1)}):

    - (W_1, M_1): balanced factorization of b₂B, b₂ = T/(ν√(nλ_Hλ_1));
    - W_l = (b_{l+1}/b_l)I_r for 2 ≤ l ≤ L−2, b_{l+1} = b_l√(T/(rλ_l)), so M_l = b_lB;
    - W_{L−1} = (x/b_{L−1})Bᵀ(I_r + (t/4)J_r), x = b_{L−1}√(T/(λ_{L−1}‖Bᵀ(I + tJ/4)‖²)), so
      M̃_L = x(BᵀB + tJ_K) and M_L = xS_t;
    - W_L = (q*/x)S_t^{−1}, so the output is q*Y.

    Rank r at layers 1..L−1, K after the last ReLU. Φ_DUFM at this point equals
    ``predict_srg(...).optimal_loss``. For an edge subset W_{L−1} is the min-norm solution
    x(BᵀB + tJ_K)B^+/b_{L−1} of W_{L−1}M_{L−1} = M̃_L; with rank B = r (required) BB^+ = I_r,
    so it is the same Bᵀ(I_r + (t/4)J_r) formula (every column of B holds two ones, so
    J_K = ¼BᵀJ_rB).

    Parameters
    ----------
    num_vertices, num_layers, per_class, lam_h, lam_w, shift, edges
        As in :func:`predict_srg`.
    widths : sequence of int, optional
        (d_1, …, d_L) with d_1..d_{L−1} ≥ r and d_L ≥ K (default (K, …, K)).

    Returns
    -------
    Parameters
        For :class:`ufm.models.DeepUFM` (K, L, n, widths); all zero if q* = 0.
    """
    prediction = predict_srg(num_vertices, num_layers, per_class, lam_h, lam_w, shift, edges)
    incidence = triangular_incidence(num_vertices, edges).astype(np.float64)
    r, k = incidence.shape
    depth, n = prediction.num_layers, prediction.per_class
    dims = _layer_widths(widths, depth, (r,) * (depth - 1) + (k,))
    if widths is None:
        dims = (k,) * depth
    layer_dims = dims + (k,)
    if prediction.q_star == 0.0:
        return Parameters(
            features=np.zeros((dims[0], k * n)),
            weights=tuple(np.zeros((layer_dims[l + 1], layer_dims[l])) for l in range(depth)),
        )
    lams = prediction.lam_w
    nlam_h = n * prediction.lam_h
    q = prediction.q_star
    constant = penalty_product(n, prediction.lam_h, lams) ** (1.0 / (depth + 1))  # C
    target = constant * prediction.coefficient * q ** (2.0 / (depth + 1))
    nuclear, head_norm, head, pattern = _family_parts(incidence, prediction.shift)
    weights: list[np.ndarray] = []
    # Layer 1: balanced factorization b₂B = W_1M_1 (F1 equality).
    scale = target / (nuclear * math.sqrt(nlam_h * lams[0]))
    left, singular, right = np.linalg.svd(incidence, full_matrices=False)
    root = np.sqrt(scale * singular)
    first = (nlam_h / lams[0]) ** 0.25 * left * root
    means = (lams[0] / nlam_h) ** 0.25 * root[:, None] * right
    weights.append(_embed(first, (layer_dims[1], layer_dims[0])))
    # Layers 2..L−2: multiples of the identity on the r-dimensional span.
    for l in range(2, depth - 1):
        factor = math.sqrt(target / (r * lams[l - 1]))
        weights.append(_embed(factor * np.eye(r), (layer_dims[l], layer_dims[l - 1])))
        scale *= factor
    # Layer L−1: Bᵀ(I + tJ/4) maps M_{L−1} = b B to x(BᵀB + tJ).
    ratio = math.sqrt(target / (lams[depth - 2] * head_norm))
    weights.append(_embed(ratio * head, (layer_dims[depth - 1], layer_dims[depth - 2])))
    last_scale = scale * ratio  # x
    # Layer L: (q/x)S_t^{-1}.
    weights.append(_embed((q / last_scale) * np.linalg.inv(pattern), (k, layer_dims[depth - 1])))
    features = _class_means_to_features(_embed(means, (dims[0], k)), n)
    return Parameters(features=features, weights=tuple(weights))


@dataclass(frozen=True)
class EdgeSubsetResult:
    """Best edge subset found by :func:`srg_edge_subset_search`.

    Attributes
    ----------
    num_vertices, num_classes, num_layers : int
        r, K, L.
    edges : tuple of tuple of int
        The K edges of K_r.
    shift : float
        t* of the improved family for these edges.
    coefficient : float
        c(t*).
    coefficient_ratio : float
        c(t*)/K.
    subsets_tried : int
        Subsets evaluated (one per distinct spectrum of BᵀB).
    """

    num_vertices: int
    num_classes: int
    num_layers: int
    edges: tuple[tuple[int, int], ...]
    shift: float
    coefficient: float
    coefficient_ratio: float
    subsets_tried: int

    def to_dict(self) -> dict:
        """JSON-serializable dictionary."""
        return {
            "num_vertices": self.num_vertices,
            "num_classes": self.num_classes,
            "num_layers": self.num_layers,
            "edges": [list(edge) for edge in self.edges],
            "shift": self.shift,
            "coefficient": self.coefficient,
            "coefficient_ratio": self.coefficient_ratio,
            "subsets_tried": self.subsets_tried,
        }


def srg_edge_subset_search(
    num_classes: int,
    num_layers: int,
    num_vertices: int | None = None,
    max_subsets: int = 20000,
    rng: Any = None,
) -> EdgeSubsetResult:
    """Edge subset of K_r with K edges and the least c(t*) (docs/theory.md §4.5 edge subsets; KF3).

    c(t) depends on B only through the spectrum of BᵀB (ν = Σ√μ_i; ‖Bᵀ(I + tJ/4)‖² =
    2K + 2tK + rKt²/4 since every column holds two ones; S_t has eigenvalues (1+t)μ_i − t for
    t ≥ −1 and 2+t below), so subsets are grouped by that spectrum and one of each is
    minimized over t. All C(r(r−1)/2, K) subsets are enumerated when there are at most
    ``max_subsets``, else ``max_subsets`` are drawn at random.

    Parameters
    ----------
    num_classes : int
        K ≥ 3.
    num_layers : int
        L ≥ 3.
    num_vertices : int, optional
        r; default the least r ≥ 4 with r(r−1)/2 ≥ K.
    max_subsets : int
        Enumeration limit.
    rng : numpy.random.Generator or int, optional
        Randomness for sampling.
    """
    k = check_num_classes(num_classes)
    depth = _positive_integer(num_layers, "num_layers")
    if num_vertices is None:
        r = 4
        while r * (r - 1) // 2 < k:
            r += 1
    else:
        r = _positive_integer(num_vertices, "num_vertices")
    all_edges = list(itertools.combinations(range(r), 2))
    if len(all_edges) < k or k < r:
        raise ValueError(f"need r <= K <= r(r-1)/2 for r = {r}, got K = {k}")
    total = math.comb(len(all_edges), k)
    if total <= max_subsets:
        candidates = itertools.combinations(range(len(all_edges)), k)
    else:
        generator = np.random.default_rng(rng)
        candidates = (
            tuple(sorted(generator.choice(len(all_edges), size=k, replace=False)))
            for _ in range(max_subsets)
        )
    seen: dict = {}
    for chosen in candidates:
        edges = [all_edges[i] for i in chosen]
        incidence = triangular_incidence(r, edges).astype(np.float64)
        if np.linalg.matrix_rank(incidence) != r:
            continue
        spectrum = np.round(np.linalg.eigvalsh(incidence.T @ incidence), 8)
        key = tuple(spectrum.tolist())
        if key not in seen:
            seen[key] = edges
    if not seen:
        raise ValueError(f"no subset of {k} edges of K_{r} has an incidence matrix of rank {r}")
    best = None
    for edges in seen.values():
        shift, coefficient = srg_best_shift(triangular_incidence(r, edges), depth)
        if best is None or coefficient < best[2]:
            best = (edges, shift, coefficient)
    edges, shift, coefficient = best
    return EdgeSubsetResult(
        num_vertices=r,
        num_classes=k,
        num_layers=depth,
        edges=tuple(tuple(edge) for edge in edges),
        shift=shift,
        coefficient=coefficient,
        coefficient_ratio=coefficient / k,
        subsets_tried=len(seen),
    )
