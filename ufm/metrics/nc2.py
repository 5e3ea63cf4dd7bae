"""NC2 of docs/theory.md §3, geometry of the class means: NC2.kappa, NC2.kappa_nz, NC2.orth, NC2.etf and
the class-mean Gram matrix.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..statistics import ClassStatistics, helmert_basis
from .common import (
    UndefinedMetricError,
    _columns,
    _rank_from_singular_values,
    _singular_values,
    _statistics,
)
from .rank import condition_number_nonzero


def _class_means(stats: ClassStatistics, center: bool) -> np.ndarray:
    return stats.centered_means if center else stats.means


def _reduced_centered_means(stats: ClassStatistics) -> np.ndarray:
    """MQ ∈ R^{d×(K−1)}: the nonzero singular values and left vectors of M̄ = (MQ)Qᵀ, without the
    rounding-level K-th singular value that forming M − μ_G1ᵀ leaves."""
    return stats.means @ helmert_basis(stats.num_classes)


def nc2_condition_number(
    features: Any, labels: Any = None, *, rows: bool = False, num_classes: int | None = None
) -> float:
    """Condition number of the uncentred class means, docs/theory.md §3 ``NC2.kappa``.

    NC2.kappa = κ(M) = s_1(M)/s_K(M), and +inf if RANK(M) < K (default tolerance max(d, K)·eps;
    always when d < K). Collapse value 1 (orthogonal frame); κ(Z̄) = κ(M). NC2 as in (A)
    (Jacot et al. 2025). Arguments as in :func:`nc1_trace_ratio_uncentered`.

    Raises
    ------
    UndefinedMetricError
        If M = 0.
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    values = _singular_values(stats.means)
    if values[0] == 0:
        raise UndefinedMetricError("NC2.kappa: all class means are zero (M = 0)")
    if _rank_from_singular_values(values, stats.means.shape, None) < stats.num_classes:
        return math.inf
    return float(values[0] / values[stats.num_classes - 1])


def nc2_condition_number_nonzero(
    features: Any,
    labels: Any = None,
    *,
    rows: bool = False,
    center: bool = False,
    rtol: float | None = None,
    num_classes: int | None = None,
) -> float:
    """Condition number of the class means over nonzero singular values, ``NC2.kappa_nz``.

    NC2.kappa_nz = s_1/s_r with r = RANK (see :func:`condition_number_nonzero`), of M, or of
    M̄ = MP_K with ``center=True`` (computed as MQ, Q an orthonormal basis of 1_K^⊥, which has the
    same nonzero singular values); on M̄ it is 1 both for a simplex ETF and for an equinorm
    orthogonal frame. Collapse value 1. (A)'s abstract defines κ over the nonzero singular values
    (Jacot et al. 2025).

    Raises
    ------
    UndefinedMetricError
        If the (centred) class means are all zero.
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    try:
        means = _reduced_centered_means(stats) if center else stats.means
        return condition_number_nonzero(means, rtol)
    except UndefinedMetricError:
        which = "centred class means are zero (M̄ = 0)" if center else "class means are zero"
        raise UndefinedMetricError(f"NC2.kappa_nz: all {which}") from None


def class_mean_gram(
    features: Any,
    labels: Any = None,
    *,
    rows: bool = False,
    num_classes: int | None = None,
    center: bool = False,
    normalize: str | None = None,
) -> np.ndarray:
    """Gram matrix of the class means, MᵀM ∈ R^{K×K} (M̄ᵀM̄ with ``center``), docs/theory.md §1.1, §3.

    The matrix that NC2 compares with an orthogonal frame (∝ I_K) or a simplex ETF (∝ P_K), and
    that (A) Fig. 1 and (C) Fig. 1 show as images.

    Parameters
    ----------
    features, labels, num_classes
        As in :func:`nc1_trace_ratio_uncentered` (or a :class:`ClassStatistics`).
    center : bool
        Use the centred means M̄ = MP_K.
    normalize : {None, "max", "fro"}
        Divide by the largest absolute entry or by the Frobenius norm (for pictures; ratios of
        entries are unchanged).

    Raises
    ------
    UndefinedMetricError
        If ``normalize`` is set and the Gram matrix is 0.
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    means = stats.centered_means if center else stats.means
    gram = means.T @ means
    if normalize is None:
        return gram
    if normalize == "max":
        scale = float(np.max(np.abs(gram)))
    elif normalize == "fro":
        scale = float(np.linalg.norm(gram))
    else:
        raise ValueError(f"normalize must be None, 'max' or 'fro', got {normalize!r}")
    if scale == 0:
        raise UndefinedMetricError("class_mean_gram: all class means are zero (M = 0)")
    return gram / scale


def nc2_orthogonal_frame_distance(
    features: Any, labels: Any = None, *, rows: bool = False, num_classes: int | None = None
) -> float:
    """Distance of the class means to an equinorm orthogonal frame, docs/theory.md §3 ``NC2.orth``.

    NC2.orth = ‖MᵀM/‖MᵀM‖_F − I_K/√K‖_F ∈ [0, 2]. Collapse value 0 (bias-free MSE and ReLU layers,
    Súkeník et al. 2023). Arguments as in :func:`nc1_trace_ratio_uncentered`.

    Raises
    ------
    UndefinedMetricError
        If M = 0.
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    gram = stats.means.T @ stats.means
    norm = float(np.linalg.norm(gram))
    if norm == 0:
        raise UndefinedMetricError("NC2.orth: all class means are zero (M = 0)")
    k = stats.num_classes
    return float(np.linalg.norm(gram / norm - np.eye(k) / math.sqrt(k)))


def nc2_simplex_etf_distance(
    features: Any, labels: Any = None, *, rows: bool = False, num_classes: int | None = None
) -> float:
    """Distance of the centred class means to a simplex ETF, docs/theory.md §3 ``NC2.etf``.

    NC2.etf = ‖M̄ᵀM̄/‖M̄ᵀM̄‖_F − P_K/√(K−1)‖_F, P_K = I_K − J_K/K. Collapse value 0 (models with a
    bias, Papyan et al. 2020). Vacuous for K = 2: two distinct centred means are antipodal, so the
    value is 0 for every input. Arguments as in :func:`nc1_trace_ratio_uncentered`.

    Raises
    ------
    UndefinedMetricError
        If all class means are equal (M̄ = 0).
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    centered = stats.centered_means
    gram = centered.T @ centered
    norm = float(np.linalg.norm(gram))
    if norm == 0:
        raise UndefinedMetricError("NC2.etf: all class means are equal (M̄ = 0)")
    k = stats.num_classes
    projector = np.eye(k) - np.full((k, k), 1.0 / k)
    return float(np.linalg.norm(gram / norm - projector / math.sqrt(k - 1)))
