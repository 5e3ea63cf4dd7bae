"""NC3 of docs/theory.md §3, alignment of the classifier with the class means: NC3.cos, NC3.dual, NC3.span.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..arrays import as_float64_matrix
from .common import (
    UndefinedMetricError,
    _check_rtol,
    _check_weights,
    _columns,
    _rank_from_singular_values,
    _statistics,
)
from .nc2 import _class_means


@dataclass(frozen=True)
class CosineAlignment:
    """Cosines between class means and classifier rows (docs/theory.md §3 ``NC3.cos``).

    Attributes
    ----------
    mean : float
        (1/K) Σ_c cos∠(μ_c, w_c) (``NC3.cos``).
    minimum : float
        min_c cos∠(μ_c, w_c) (``NC3.cos_min``).
    per_class : tuple of float
        The K cosines.
    """

    mean: float
    minimum: float
    per_class: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary of the fields."""
        return asdict(self)


def nc3_cosine_alignment(
    features: Any,
    labels: Any = None,
    *,
    rows: bool = False,
    weights: Any,
    center: bool = False,
    num_classes: int | None = None,
) -> CosineAlignment:
    """Alignment of class means and classifier rows, docs/theory.md §3 ``NC3.cos`` (mean and min).

    cos∠(μ_c, w_c) = ⟨μ_c, w_c⟩ / (‖μ_c‖‖w_c‖) with w_c the c-th row of W ∈ R^{K×d}; with
    ``center=True`` μ_c − μ_G replaces μ_c. Collapse value 1. The "average cosine" of (A)
    (Jacot et al. 2025).

    Parameters
    ----------
    features, labels, num_classes
        As in :func:`nc1_trace_ratio_uncentered`.
    weights : array_like, shape (K, d)
        The last layer W.
    center : bool
        Centre the class means by μ_G = (1/K)M1_K.

    Raises
    ------
    UndefinedMetricError
        If a (centred) class mean or a row of W is zero.
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    matrix = _check_weights(weights, stats)
    means = _class_means(stats, center)
    mean_norms = np.linalg.norm(means, axis=0)
    row_norms = np.linalg.norm(matrix, axis=1)
    for norms, what in ((mean_norms, "class mean"), (row_norms, "row of weights")):
        zero = np.flatnonzero(norms == 0)
        if zero.size:
            raise UndefinedMetricError(
                f"NC3.cos: the {'centred ' if center and what == 'class mean' else ''}{what} of "
                f"class {int(zero[0])} is zero, so its cosine is undefined"
            )
    cosines = np.einsum("ij,ji->i", matrix, means) / (mean_norms * row_norms)
    cosines = np.clip(cosines, -1.0, 1.0)
    return CosineAlignment(
        mean=float(cosines.mean()),
        minimum=float(cosines.min()),
        per_class=tuple(float(value) for value in cosines),
    )


def nc3_self_duality_distance(
    features: Any,
    labels: Any = None,
    *,
    rows: bool = False,
    weights: Any,
    center: bool = False,
    squared: bool = False,
    num_classes: int | None = None,
) -> float:
    """Self-duality distance, docs/theory.md §3 ``NC3.dual``: ‖W/‖W‖_F − Mᵀ/‖M‖_F‖_F.

    With ``center=True`` M̄ replaces M; with ``squared=True`` the square is returned, as in
    Papyan, Han & Donoho 2020. Collapse value 0; the value lies in [0, 2].

    Parameters
    ----------
    features, labels, num_classes
        As in :func:`nc1_trace_ratio_uncentered`.
    weights : array_like, shape (K, d)
        The last layer W.

    Raises
    ------
    UndefinedMetricError
        If W = 0 or the (centred) class means are all zero.
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    matrix = _check_weights(weights, stats)
    means = _class_means(stats, center)
    weight_norm = float(np.linalg.norm(matrix))
    means_norm = float(np.linalg.norm(means))
    if weight_norm == 0:
        raise UndefinedMetricError("NC3.dual: weights is zero")
    if means_norm == 0:
        raise UndefinedMetricError(
            "NC3.dual: all "
            + ("centred class means are zero" if center else "class means are zero")
        )
    value = float(np.sum((matrix / weight_norm - means.T / means_norm) ** 2))
    return value if squared else math.sqrt(value)


def nc3_span_residual(
    features: Any,
    labels: Any = None,
    *,
    rows: bool = False,
    weights: Any,
    rtol: float | None = None,
    num_classes: int | None = None,
) -> float:
    """Share of W outside the span of the class means, docs/theory.md §3 ``NC3.span``.

    NC3.span = 1 − ‖W P_M‖_F²/‖W‖_F² = ‖W(I − P_M)‖_F²/‖W‖_F² ∈ [0, 1], P_M the orthogonal
    projector on span(M) of numerical rank r (:func:`numerical_rank` with ``rtol``). Computed as
    the residual, so it is accurate near its collapse value 0. For an intermediate layer W_l of a
    DUFM (Súkeník et al. 2023): rows of W_l in the span of the class means of its input.

    Parameters
    ----------
    features, labels, num_classes
        As in :func:`nc1_trace_ratio_uncentered` (features of W's input layer).
    weights : array_like, shape (p, d)
        Any matrix acting on the features (W_l ∈ R^{d_{l+1}×d_l}).

    Raises
    ------
    UndefinedMetricError
        If W = 0.
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    matrix = as_float64_matrix(weights, "weights")
    if matrix.shape[1] != stats.dimension:
        raise ValueError(
            f"weights must have d = {stats.dimension} columns (the feature dimension), "
            f"got shape {matrix.shape}"
        )
    total = float(np.sum(matrix**2))
    if total == 0:
        raise UndefinedMetricError("NC3.span: weights is zero")
    left, values, _ = np.linalg.svd(stats.means, full_matrices=False)
    rank = _rank_from_singular_values(values, stats.means.shape, _check_rtol(rtol))
    basis = left[:, :rank]
    residual = matrix - (matrix @ basis) @ basis.T
    return float(np.sum(residual**2) / total)
