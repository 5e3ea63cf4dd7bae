"""NC1 of docs/theory.md §3, within-class variability: NC1.tr_unc, NC1.tr, NC1.pinv, NC1.wt, NC1.cdnv.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..statistics import between_directions
from .common import UndefinedMetricError, _check_rtol, _columns, _statistics, default_rank_tolerance


def nc1_trace_ratio_uncentered(
    features: Any, labels: Any = None, *, rows: bool = False, num_classes: int | None = None
) -> float:
    """Within-class variability against uncentred class means, docs/theory.md §3 ``NC1.tr_unc``.

    NC1.tr_unc = tr Σ_W / tr Σ_B^unc with Σ_W = S_W/N and Σ_B^unc = (1/K)MMᵀ; for balanced classes
    this is ‖Z − Z̄‖_F² / ‖Z̄‖_F². Collapse value 0. The reading of (A)'s "tr(Σ_W)/tr(Σ_B)"
    (Jacot et al. 2025) consistent with bias-free geometry.

    Parameters
    ----------
    features : numpy.ndarray, torch.Tensor (d, N) or (N, d), or ClassStatistics
        Features as columns (default) or rows (``rows=True``), or their class statistics (then
        ``labels`` is omitted).
    labels : array_like, shape (N,), optional
        Class indices 0..K-1 (required with a feature matrix).
    rows : bool
        ``features`` holds one sample per row, shape (N, d) (PyTorch's layout); read as the
        transposed view, nothing copied. Every metric function of this module takes it.
    num_classes : int, optional
        K; by default max(labels) + 1.

    Raises
    ------
    UndefinedMetricError
        If every class mean is zero (M = 0).
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    denominator = stats.trace_between_uncentered
    if denominator == 0:
        raise UndefinedMetricError(
            "NC1.tr_unc: all class means are zero (M = 0), so tr Σ_B^unc = 0"
        )
    return stats.trace_within / denominator


def nc1_trace_ratio(
    features: Any, labels: Any = None, *, rows: bool = False, num_classes: int | None = None
) -> float:
    """Trace quotient with centred between-class covariance, docs/theory.md §3 ``NC1.tr``.

    NC1.tr = tr Σ_W / tr Σ_B, Σ_B = (1/K)M̄M̄ᵀ; for balanced classes
    ‖Z − Z̄‖_F² / ‖Z̄ − μ_G1ᵀ‖_F². Collapse value 0 (Tirer et al.'s quotient). Arguments as in
    :func:`nc1_trace_ratio_uncentered`.

    Raises
    ------
    UndefinedMetricError
        If all class means are equal (M̄ = 0).
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    denominator = stats.trace_between
    if denominator == 0:
        raise UndefinedMetricError("NC1.tr: all class means are equal (M̄ = 0), so tr Σ_B = 0")
    return stats.trace_within / denominator


def nc1_pseudo_inverse(
    features: Any,
    labels: Any = None,
    *,
    rows: bool = False,
    normalize_by_K: bool = True,
    rtol: float | None = None,
    num_classes: int | None = None,
) -> float:
    """Papyan's NC1 with the pseudo-inverse of Σ_B, docs/theory.md §3 ``NC1.pinv``.

    NC1.pinv = (1/K)·tr(Σ_W Σ_B^†) (Zhu et al. 2021, Zhou et al. 2022); with
    ``normalize_by_K=False`` the factor 1/K is omitted, as in Papyan, Han & Donoho 2020.
    Collapse value 0.

    Σ_B^† is formed from the K centred means, never from a d×d eigen-decomposition: with
    Q ∈ R^{K×(K−1)} an orthonormal basis of 1_K^⊥, M̄ = (MQ)Qᵀ and MQ = USVᵀ (rank ≤ K − 1 by
    construction), so Σ_B = (1/K)US²Uᵀ, Σ_B^† = K·U_rS_r^{−2}U_rᵀ and
    (1/K)·tr(Σ_W Σ_B^†) = Σ_{i≤r} u_iᵀΣ_Wu_i / s_i² over the r directions above the cutoff.
    Only UᵀS_WU is needed: from (features, labels) it is computed by a second O(N d K) pass over
    the residuals z − μ_y projected on U (``class_statistics(..., within="projection")``), not from
    the d×d scatter; a ClassStatistics gives it through ``within_scatter`` or
    ``within_projection``.

    Parameters
    ----------
    features, labels, num_classes
        As in :func:`nc1_trace_ratio_uncentered`.
    normalize_by_K : bool
        Divide by K (default True).
    rtol : float, optional
        Keep the directions with s_i > rtol·s_1(M̄). Default: s_i > max(d, K)·eps·s_1(M), the
        rounding level of the computed class means (it is relative to the uncentred means, whose
        rounding errors M̄ inherits); this keeps every between-class direction that float64
        resolves, even when Σ_B's eigenvalues s_i²/K spread over many decades.

    Raises
    ------
    UndefinedMetricError
        If all class means are equal (Σ_B = 0).
    ValueError
        If a ClassStatistics holds neither ``within_scatter`` nor ``within_projection``.
    """
    features = _columns(features, rows)
    tolerance = _check_rtol(rtol)
    stats = _statistics(features, labels, num_classes, within="auto")
    left, values = between_directions(stats.means)
    if values.size == 0 or values[0] == 0:
        raise UndefinedMetricError("NC1.pinv: all class means are equal, so Σ_B = 0")
    if tolerance is None:
        cutoff = default_rank_tolerance(stats.means.shape) * float(
            np.linalg.norm(stats.means, 2)
        )
    else:
        cutoff = tolerance * float(values[0])
    rank = int(np.count_nonzero(values > cutoff))
    if rank == 0:
        raise UndefinedMetricError(
            "NC1.pinv: the centred class means are zero up to rounding of the means, so Σ_B = 0"
        )
    directions = left[:, :rank]
    if stats.within_scatter is not None:
        projected = np.einsum("ij,ik,kj->j", directions, stats.within_covariance, directions)
    else:
        projected = np.diag(stats.within_scatter_projected(directions)) / stats.num_samples
    value = float(np.sum(np.maximum(projected, 0.0) / values[:rank] ** 2))
    return value if normalize_by_K else value * stats.num_classes


def nc1_within_total(
    features: Any, labels: Any = None, *, rows: bool = False, num_classes: int | None = None
) -> float:
    """Within-class share of the total variance, docs/theory.md §3 ``NC1.wt``: tr Σ_W / tr Σ_T.

    Σ_T = Σ_W + Σ_B, so the value lies in [0, 1] and equals NC1.tr/(1 + NC1.tr). Collapse value 0
    (as used by the Mondelli group, e.g. Wu & Mondelli 2025). Arguments as in
    :func:`nc1_trace_ratio_uncentered`.

    Raises
    ------
    UndefinedMetricError
        If tr Σ_T = 0 (all features equal).
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    within, between = stats.trace_within, stats.trace_between
    if within + between == 0:
        raise UndefinedMetricError("NC1.wt: all features are equal, so tr Σ_T = 0")
    return within / (within + between)


def nc1_class_distance_normalized_variance(
    features: Any, labels: Any = None, *, rows: bool = False, num_classes: int | None = None
) -> float:
    """Class-distance normalized variance (CDNV), docs/theory.md §3 ``NC1.cdnv`` (Galanti et al. 2022).

    NC1.cdnv = (2/(K(K−1))) Σ_{c<c'} (V_c + V_{c'}) / (2‖μ_c − μ_{c'}‖²) with
    V_c = (1/n_c) Σ_{i: y_i = c} ‖z_i − μ_c‖². Collapse value 0. Arguments as in
    :func:`nc1_trace_ratio_uncentered`.

    A class with one sample has V_c = 0 (the formula's 1/n_c normalization), so the metric is
    defined there, as it is in the usual NC code.

    Raises
    ------
    ValueError
        If a class has no sample (its mean is undefined).
    UndefinedMetricError
        If two class means coincide.
    """
    features = _columns(features, rows)
    stats = _statistics(features, labels, num_classes)
    short = np.flatnonzero(stats.counts < 1)
    if short.size:
        raise ValueError(
            f"labels: NC1.cdnv needs at least 1 sample in every class; class {int(short[0])} "
            f"has none"
        )
    variances = stats.class_variances
    means = stats.means
    k = stats.num_classes
    total = 0.0
    for c in range(k - 1):
        distances = np.sum((means[:, c + 1 :] - means[:, c : c + 1]) ** 2, axis=0)
        if np.any(distances == 0):
            other = c + 1 + int(np.flatnonzero(distances == 0)[0])
            raise UndefinedMetricError(
                f"NC1.cdnv: the means of classes {c} and {other} coincide (zero distance)"
            )
        total += float(np.sum((variances[c] + variances[c + 1 :]) / (2.0 * distances)))
    return 2.0 * total / (k * (k - 1))
