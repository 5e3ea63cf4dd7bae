"""Collapse metrics as pure functions, one per named variant of docs/theory.md §3.

Conventions
-----------
- Features are columns: Z ∈ R^{d×N}; labels are integers 0..K-1 of shape (N,). Every metric is
  computed in float64 whatever the input dtype. Inputs may be numpy arrays or torch tensors (CPU
  or CUDA): for a tensor the O(N d²) class statistics and the per-sample passes run with torch ops
  on the tensor's device in float64; only d×d, d×K and K-sized results move to numpy.
- The NC1 and NC2 metrics (and NC3.cos, NC3.dual, NC3.span) depend on the features only through
  their :class:`~ufm.statistics.ClassStatistics`. Each of them accepts either ``(features,
  labels)`` or a precomputed ``ClassStatistics`` as first argument (then ``labels`` is omitted), so
  that statistics accumulated in batches (:mod:`ufm.streaming`) are measured without the features.
- Given ``(features, labels)``, no metric forms the d×d within-class scatter unless it is the
  cheaper route: the traces, NC2 and NC3 need one O(N d) pass (means, counts, per-class sums of
  squares), NC1.pinv a second O(N d K) pass for S_W on the K − 1 between-class directions
  (``class_statistics(..., within="projection")``; ``within="auto"`` takes the d×d scatter only
  when 2·min(d, K − 1) ≥ d). NEG and the (H₁, W₁) BAL.weighted, which need Gram matrices of the
  features, form them only when they are needed.
- Σ_W = S_W/N, Σ_B = (1/K)M̄M̄ᵀ, Σ_B^unc = (1/K)MMᵀ, Σ_T = Σ_W + Σ_B, μ_G = (1/K)M1_K (docs/theory.md
  §1.1); with unbalanced classes these are read as stated in :mod:`ufm.statistics`.
- A zero denominator raises :class:`UndefinedMetricError` (a ``ValueError``) naming the metric,
  e.g. all class means zero (the zero solution of a DUFM). Bad input (NaN/Inf, shape mismatches,
  empty classes) raises ``ValueError`` or ``TypeError`` naming the argument.
- Dictionary and JSON outputs use the metric IDs of docs/theory.md §3 as keys (:data:`METRIC_IDS`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .arrays import (
    as_float64_matrix,
    as_float64_vector,
    check_positive_scalar,
    is_torch_tensor,
    to_numpy,
)
from .labels import validate_labels
from .statistics import ClassStatistics, WithinProjection, between_directions, helmert_basis
from .streaming import (
    ClassStatisticsAccumulator,
    WithinProjectionAccumulator,
    _nonfinite_error,
    _torch,
    accumulate,
    accumulate_two_pass,
    check_features_and_labels,
    chunk_columns,
    class_statistics,
    device_tensor,
    feature_matrix_shape,
)

__all__ = [
    "METRIC_IDS",
    "Balancedness",
    "ClassStatistics",
    "ClassStatisticsAccumulator",
    "CosineAlignment",
    "FitError",
    "LayerReport",
    "LayerRow",
    "ScalarBalancedness",
    "UndefinedMetricError",
    "WithinProjection",
    "WithinProjectionAccumulator",
    "accumulate",
    "accumulate_two_pass",
    "all_metrics",
    "balancedness",
    "class_statistics",
    "condition_number_nonzero",
    "default_rank_tolerance",
    "fit_error",
    "layer_report",
    "nc1_class_distance_normalized_variance",
    "nc1_pseudo_inverse",
    "nc1_trace_ratio",
    "nc1_trace_ratio_uncentered",
    "nc1_within_total",
    "nc2_condition_number",
    "nc2_condition_number_nonzero",
    "nc2_orthogonal_frame_distance",
    "nc2_simplex_etf_distance",
    "nc3_cosine_alignment",
    "nc3_self_duality_distance",
    "nc3_span_residual",
    "nc4_nearest_class_center_agreement",
    "negativity",
    "numerical_rank",
    "scalar_balancedness",
    "weighted_balancedness",
]

#: Metric IDs of docs/theory.md §3 in table order ("NC3.cos_min" is the minimum over classes of NC3.cos,
#: "ERR.data" the data term (1/(2N))‖F − Y‖_F² beside ERR = ‖F − Y‖_F).
METRIC_IDS: tuple[str, ...] = (
    "NC1.tr_unc",
    "NC1.tr",
    "NC1.pinv",
    "NC1.wt",
    "NC1.cdnv",
    "NC2.kappa",
    "NC2.kappa_nz",
    "NC2.orth",
    "NC2.etf",
    "NC3.cos",
    "NC3.cos_min",
    "NC3.dual",
    "NC3.span",
    "NC4.ncc",
    "BAL.op",
    "BAL.fro",
    "BAL.rel_op",
    "BAL.rel_fro",
    "BAL.weighted",
    "BAL.diag",
    "BAL.scalar",
    "NEG",
    "RANK",
    "KAPPA",
    "ERR",
    "ERR.data",
)

_EPS = float(np.finfo(np.float64).eps)


class UndefinedMetricError(ValueError):
    """A metric's denominator is zero (e.g. all class means are zero), so it has no value."""


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _statistics(
    features: Any, labels: Any, num_classes: int | None, within: str = "traces"
) -> ClassStatistics:
    """``features`` itself if it is a ClassStatistics, else the statistics of (features, labels)
    with ``within`` as in :func:`class_statistics` ("traces": one pass, no S_W)."""
    if isinstance(features, ClassStatistics):
        if labels is not None:
            raise TypeError("labels must be omitted when features is a ClassStatistics")
        if num_classes is not None and int(num_classes) != features.num_classes:
            raise ValueError(
                f"num_classes = {num_classes} but the ClassStatistics has K = "
                f"{features.num_classes}"
            )
        return features
    if labels is None:
        raise TypeError("labels are required when features is a feature matrix (d, N)")
    return class_statistics(features, labels, num_classes, within=within)


def _columns(features: Any, rows: bool) -> Any:
    """``features`` as columns (d, N): itself, or with ``rows=True`` the transpose of an (N, d)
    matrix (a view, nothing copied). ClassStatistics pass through."""
    if isinstance(features, ClassStatistics):
        return features
    if not isinstance(rows, (bool, np.bool_)):
        raise TypeError(f"rows must be True or False, got {rows!r}")
    if not rows:
        return features
    from .metrics_accumulator import feature_rows

    return feature_rows(features, True).T


def _check_rtol(rtol: Any, name: str = "rtol") -> float | None:
    if rtol is None:
        return None
    value = check_positive_scalar(rtol, name)
    if value >= 1:
        raise ValueError(f"{name} must be < 1 (a tolerance relative to s_1), got {value}")
    return value


def default_rank_tolerance(shape: Sequence[int]) -> float:
    """max(shape)·eps: the relative tolerance of RANK's exact (numerical) rank, eps = 2.2e-16."""
    return max(int(size) for size in shape) * _EPS


def _singular_values(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.svd(matrix, compute_uv=False)


def _rank_from_singular_values(
    values: np.ndarray, shape: Sequence[int], rtol: float | None
) -> int:
    if values.size == 0 or values[0] == 0:
        return 0
    tolerance = default_rank_tolerance(shape) if rtol is None else rtol
    return int(np.count_nonzero(values > tolerance * values[0]))


_helmert_basis = helmert_basis


def _check_weights(weights: Any, stats: ClassStatistics, name: str = "weights") -> np.ndarray:
    matrix = as_float64_matrix(weights, name)
    expected = (stats.num_classes, stats.dimension)
    if matrix.shape != expected:
        raise ValueError(
            f"{name} must have shape (K, d) = {expected} (one row w_c per class), "
            f"got {matrix.shape}"
        )
    return matrix


def _check_bias(bias: Any, num_classes: int) -> np.ndarray:
    if bias is None:
        return np.zeros(num_classes)
    return as_float64_vector(bias, "bias", num_classes)


def _as_float64_chunk(features: Any, start: int, stop: int) -> Any:
    if is_torch_tensor(features):
        return features[:, start:stop].detach().to(dtype=_torch().float64)
    return np.asarray(features[:, start:stop], dtype=np.float64)


def _float64_chunks(matrix: Any, name: str):
    """(start, float64 chunk) over the columns of a (d, N) matrix, each checked finite."""
    rows, length = feature_matrix_shape(matrix, name)
    if not is_torch_tensor(matrix):
        matrix = np.asarray(matrix)
    step = chunk_columns(rows)
    for start in range(0, length, step):
        chunk = _as_float64_chunk(matrix, start, min(start + step, length))
        _check_chunk_finite(chunk, name, start)
        yield start, chunk


def _any_nonzero(chunk: Any) -> bool:
    if is_torch_tensor(chunk):
        return bool((chunk != 0).any())
    return bool(np.any(chunk != 0))


def _check_chunk_finite(chunk: Any, name: str, start: int = 0) -> None:
    if is_torch_tensor(chunk):
        finite = bool(_torch().isfinite(chunk).all())
    else:
        finite = bool(np.all(np.isfinite(chunk)))
    if not finite:
        raise _nonfinite_error(chunk, name, start)


def _gram_smaller_side(matrix: Any, name: str, *, negative_part: bool = False) -> np.ndarray:
    """Gram matrix AAᵀ (if rows ≤ columns) or AᵀA of A = matrix or min(matrix, 0), in float64.

    Chunked along the longer side; torch tensors stay on their device.
    """
    rows, columns = feature_matrix_shape(matrix, name)
    transpose = rows > columns
    source = matrix.T if transpose else matrix
    size, length = (columns, rows) if transpose else (rows, columns)
    step = chunk_columns(size)
    if is_torch_tensor(source):
        torch = _torch()
        gram = torch.zeros((size, size), dtype=torch.float64, device=source.device)
    else:
        source = np.asarray(source)
        gram = np.zeros((size, size))
    for start in range(0, length, step):
        chunk = _as_float64_chunk(source, start, min(start + step, length))
        _check_chunk_finite(chunk, name, start)
        if negative_part:
            chunk = chunk.clamp(max=0.0) if is_torch_tensor(chunk) else np.minimum(chunk, 0.0)
        gram += chunk @ chunk.T
    return np.asarray(to_numpy(gram), dtype=np.float64)


def _largest_eigenvalue(symmetric: np.ndarray) -> float:
    return float(max(np.linalg.eigvalsh(0.5 * (symmetric + symmetric.T))[-1], 0.0))


def _output_pass(
    features: Any,
    means: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    label_array: np.ndarray | None,
) -> tuple[int, float | None]:
    """One pass over the samples: NCC/classifier agreements and ‖WZ + b1ᵀ − Y‖_F².

    Ties: the lowest class index wins in both argmin and argmax (first occurrence).
    """
    dimension, num_samples = feature_matrix_shape(features)
    num_classes = means.shape[1]
    step = chunk_columns(max(dimension, num_classes))
    agreements = 0
    residual = 0.0
    if is_torch_tensor(features):
        torch = _torch()
        device = features.device
        means_t, weights_t, bias_t = (
            torch.tensor(np.array(array, dtype=np.float64), device=device)
            for array in (means, weights, bias[:, None])
        )
        labels_t = (
            None if label_array is None else device_tensor(label_array, device)
        )
        residual_t = torch.zeros((), dtype=torch.float64, device=device)
        agreements_t = torch.zeros((), dtype=torch.int64, device=device)
        for start in range(0, num_samples, step):
            stop = min(start + step, num_samples)
            chunk = _as_float64_chunk(features, start, stop)
            _check_chunk_finite(chunk, "features", start)
            scores = weights_t @ chunk + bias_t
            distances = torch.stack(
                [((chunk - means_t[:, c : c + 1]) ** 2).sum(dim=0) for c in range(num_classes)]
            )
            agreements_t += (scores.argmax(dim=0) == distances.argmin(dim=0)).sum()
            if labels_t is not None:
                columns = torch.arange(stop - start, device=device)
                scores[labels_t[start:stop], columns] -= 1.0
                residual_t += (scores * scores).sum()
        agreements = int(agreements_t)
        residual = float(residual_t)
    else:
        features = np.asarray(features)
        for start in range(0, num_samples, step):
            stop = min(start + step, num_samples)
            chunk = _as_float64_chunk(features, start, stop)
            _check_chunk_finite(chunk, "features", start)
            scores = weights @ chunk + bias[:, None]
            distances = np.stack(
                [np.sum((chunk - means[:, c : c + 1]) ** 2, axis=0) for c in range(num_classes)]
            )
            agreements += int(np.count_nonzero(scores.argmax(axis=0) == distances.argmin(axis=0)))
            if label_array is not None:
                scores[label_array[start:stop], np.arange(stop - start)] -= 1.0
                residual += float(np.sum(scores * scores))
    return agreements, (None if label_array is None else residual)


# ---------------------------------------------------------------------------------------------
# RANK and KAPPA
# ---------------------------------------------------------------------------------------------
def numerical_rank(matrix: Any, rtol: float | None = None) -> int:
    """Numerical rank, docs/theory.md §3 ``RANK``: #{i : s_i > rtol·s_1}.

    Parameters
    ----------
    matrix : array_like or torch.Tensor, shape (p, q)
        Any real matrix (converted to float64 numpy; meant for weights and class means).
    rtol : float, optional
        Tolerance relative to the largest singular value s_1, in [0, 1). Default max(p, q)·eps,
        the exact rank up to float64 rounding; plots of (C) Fig. 3 use 1e-3 to 1e-2.

    Returns
    -------
    int
        The rank; 0 for the zero matrix.
    """
    array = as_float64_matrix(matrix, "matrix")
    return _rank_from_singular_values(_singular_values(array), array.shape, _check_rtol(rtol))


def condition_number_nonzero(matrix: Any, rtol: float | None = None) -> float:
    """Condition number over the nonzero singular values, docs/theory.md §3 ``KAPPA``: s_1/s_r.

    r = RANK(matrix, rtol) (see :func:`numerical_rank`), so the value is finite for any nonzero
    matrix; it is 1 exactly when the nonzero singular values are equal. Used for the conditioning
    κ(W_L) of the last layers in (A) (Jacot et al. 2025; docs/theory.md §5 J4–J6, J11).

    Parameters
    ----------
    matrix : array_like or torch.Tensor, shape (p, q)
        Any real matrix (converted to float64 numpy).
    rtol : float, optional
        Rank tolerance, as in :func:`numerical_rank`.

    Raises
    ------
    UndefinedMetricError
        If the matrix is zero (no nonzero singular value).
    """
    array = as_float64_matrix(matrix, "matrix")
    values = _singular_values(array)
    rank = _rank_from_singular_values(values, array.shape, _check_rtol(rtol))
    if rank == 0:
        raise UndefinedMetricError("KAPPA: the matrix is zero, it has no nonzero singular value")
    return float(values[0] / values[rank - 1])


# ---------------------------------------------------------------------------------------------
# NC1
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# NC2
# ---------------------------------------------------------------------------------------------
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
        Divide by the largest |entry| or by the Frobenius norm (for pictures; ratios of entries
        are unchanged).

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


# ---------------------------------------------------------------------------------------------
# NC3 and NC4
# ---------------------------------------------------------------------------------------------
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


def nc4_nearest_class_center_agreement(
    features: Any,
    labels: Any = None,
    *,
    rows: bool = False,
    weights: Any,
    bias: Any = None,
    class_means: Any = None,
    num_classes: int | None = None,
) -> float:
    """Agreement of the nearest class centre with the classifier, docs/theory.md §3 ``NC4.ncc``.

    NC4.ncc = (1/N) Σ_i 1[argmin_c ‖z_i − μ_c‖ = argmax_c (Wz_i + b)_c], bias included; ties go to
    the lowest class index in both. Papyan et al. 2020 report the mismatch 1 − NC4.ncc.
    Collapse value 1. Distances are formed from the differences z − μ_c (not by expanding the
    square), so exact ties in the data stay ties.

    Parameters
    ----------
    features : numpy.ndarray or torch.Tensor, shape (d, N)
        Features as columns (the samples to classify).
    labels : array_like, shape (N,), optional
        Their classes; needed to compute the class centres unless ``class_means`` is given.
    weights : array_like, shape (K, d)
        The last layer W.
    bias : array_like, shape (K,), optional
        The bias b (default 0).
    class_means : array_like, shape (d, K), optional
        Class centres from another set (e.g. the training set); by default the means of
        ``features`` per ``labels`` (train set).
    num_classes : int, optional
        K; by default max(labels) + 1, or the columns of ``class_means``.
    """
    features = _columns(features, rows)
    if isinstance(features, ClassStatistics):
        raise TypeError("NC4.ncc needs the feature matrix (d, N), not its ClassStatistics")
    dimension, num_samples = feature_matrix_shape(features)
    if class_means is None:
        stats = _statistics(features, labels, num_classes)
        means = stats.means
    else:
        means = as_float64_matrix(class_means, "class_means")
        if means.shape[0] != dimension or means.shape[1] < 2:
            raise ValueError(
                f"class_means must have shape (d, K) with d = {dimension} and K >= 2, "
                f"got {means.shape}"
            )
        if num_classes is not None and means.shape[1] != num_classes:
            raise ValueError(
                f"class_means has {means.shape[1]} columns but num_classes = {num_classes}"
            )
        if labels is not None:
            check_features_and_labels(features, labels, means.shape[1], min_per_class=0)
    k = means.shape[1]
    matrix = as_float64_matrix(weights, "weights")
    if matrix.shape != (k, dimension):
        raise ValueError(
            f"weights must have shape (K, d) = {(k, dimension)} (one row per class), "
            f"got {matrix.shape}"
        )
    agreements, _ = _output_pass(features, means, matrix, _check_bias(bias, k), None)
    return agreements / num_samples


# ---------------------------------------------------------------------------------------------
# ERR, NEG, BAL
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitError:
    """Training error of the outputs, docs/theory.md §3 ``ERR``.

    Attributes
    ----------
    frobenius : float
        ‖F − Y‖_F (ε1 of docs/theory.md §5), ``ERR``.
    data_term : float
        (1/(2N))‖F − Y‖_F², the data term of the loss convention §1.2, ``ERR.data``.
    """

    frobenius: float
    data_term: float

    def to_dict(self) -> dict[str, float]:
        """JSON-serializable dictionary of the fields."""
        return asdict(self)


def fit_error(outputs: Any, labels: Any, *, rows: bool = False) -> FitError:
    """Fit error ‖F − Y‖_F and data term (1/(2N))‖F − Y‖_F², docs/theory.md §3 ``ERR``.

    Parameters
    ----------
    outputs : numpy.ndarray or torch.Tensor, shape (K, N), or (N, K) with ``rows=True``
        Network outputs F; K is its number of rows (columns with ``rows=True``).
    labels : array_like, shape (N,)
        Classes 0..K-1 defining the one-hot targets Y (docs/theory.md §1.1).
    rows : bool
        ``outputs`` holds one sample per row (a model's output batch).
    """
    outputs = _columns(outputs, rows)
    num_classes, num_samples = feature_matrix_shape(outputs, "outputs")
    label_array = validate_labels(labels, num_classes, min_per_class=0)
    if label_array.shape[0] != num_samples:
        raise ValueError(
            f"outputs has N = {num_samples} columns but labels has {label_array.shape[0]} entries"
        )
    step = chunk_columns(num_classes)
    total = 0.0
    for start in range(0, num_samples, step):
        stop = min(start + step, num_samples)
        chunk = _as_float64_chunk(outputs, start, stop)
        _check_chunk_finite(chunk, "outputs", start)
        if is_torch_tensor(chunk):
            torch = _torch()
            chunk = chunk.clone()
            rows = device_tensor(label_array[start:stop], chunk.device)
            chunk[rows, torch.arange(stop - start, device=chunk.device)] -= 1.0
            total += float((chunk * chunk).sum())
        else:
            chunk = np.array(chunk, copy=True)
            chunk[label_array[start:stop], np.arange(stop - start)] -= 1.0
            total += float(np.sum(chunk * chunk))
    return FitError(frobenius=math.sqrt(total), data_term=total / (2.0 * num_samples))


def _second_moment_if_known(stats: ClassStatistics) -> np.ndarray | None:
    """ZZᵀ from the statistics when they hold the d×d scatter, else None (computed when needed)."""
    return None if stats.within_scatter is None else stats.second_moment


def _negativity(pre_activations: Any, gram: np.ndarray | None = None) -> float:
    rows, columns = feature_matrix_shape(pre_activations, "pre_activations")
    if is_torch_tensor(pre_activations):
        has_negative = bool((pre_activations < 0).any())
    else:
        has_negative = bool(np.any(np.asarray(pre_activations) < 0))
    if not has_negative and gram is None:
        # NEG = 0 unless H = 0; no Gram matrix is needed to tell (NaN/Inf still raise)
        nonzero = False
        for _, chunk in _float64_chunks(pre_activations, "pre_activations"):
            nonzero = nonzero or _any_nonzero(chunk)
        if not nonzero:
            raise UndefinedMetricError("NEG: pre_activations is zero, so ‖H‖_op = 0")
        return 0.0
    if gram is None or rows > columns:
        gram = _gram_smaller_side(pre_activations, "pre_activations")
    denominator = _largest_eigenvalue(gram)
    if denominator == 0:
        raise UndefinedMetricError("NEG: pre_activations is zero, so ‖H‖_op = 0")
    if not has_negative:
        return 0.0
    numerator = _largest_eigenvalue(
        _gram_smaller_side(pre_activations, "pre_activations", negative_part=True)
    )
    return math.sqrt(numerator / denominator)


def negativity(pre_activations: Any, *, rows: bool = False) -> float:
    """Negativity of a pre-activation matrix, docs/theory.md §3 ``NEG``: ‖H − σ(H)‖_op / ‖H‖_op.

    σ = ReLU, so H − σ(H) = min(H, 0). The value is 0 iff the layer acts linearly on the data;
    (A)'s "negativity" (Jacot et al. 2025). Operator norms are the square roots of the largest
    eigenvalues of the Gram matrices on the smaller side, accumulated in float64 chunks (torch
    tensors on their device).

    Parameters
    ----------
    pre_activations : numpy.ndarray or torch.Tensor, shape (d, N), or (N, d) with ``rows=True``
        H̃_l = W_{l−1}H_{l−1}.
    rows : bool
        One sample per row.

    Raises
    ------
    UndefinedMetricError
        If H = 0.
    """
    pre_activations = _columns(pre_activations, rows)
    return _negativity(pre_activations)


@dataclass(frozen=True)
class Balancedness:
    """Norms of the balancedness matrix D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ (docs/theory.md §1.1, §3 BAL).

    Attributes
    ----------
    op, fro : float
        ‖D_l‖_op (``BAL.op``) and ‖D_l‖_F (``BAL.fro``).
    rel_op, rel_fro : float
        ‖D_l‖_op/‖W_lW_lᵀ‖_op (``BAL.rel_op``) and ‖D_l‖_F/‖W_lW_lᵀ‖_F (``BAL.rel_fro``).
    diag : float
        ‖diag(D_l)‖_∞ (``BAL.diag``), per-neuron balance across a ReLU.
    """

    op: float
    fro: float
    rel_op: float
    rel_fro: float
    diag: float

    def to_dict(self) -> dict[str, float]:
        """The five values keyed by their docs/theory.md IDs."""
        return {
            "BAL.op": self.op,
            "BAL.fro": self.fro,
            "BAL.rel_op": self.rel_op,
            "BAL.rel_fro": self.rel_fro,
            "BAL.diag": self.diag,
        }


def _check_pair(weight: Any, next_weight: Any, names: tuple[str, str]) -> None:
    rows = feature_matrix_shape(weight, names[0])[0]
    columns = feature_matrix_shape(next_weight, names[1])[1]
    if columns != rows:
        raise ValueError(
            f"{names[1]} has {columns} columns but {names[0]} has {rows} rows; "
            f"W_{{l+1}} (d_{{l+2}}×d_{{l+1}}) must act on the output of W_l (d_{{l+1}}×d_l)"
        )


def _symmetric_norms(matrix: np.ndarray) -> tuple[float, float]:
    """(operator norm, Frobenius norm) of a symmetric matrix."""
    eigenvalues = np.linalg.eigvalsh(0.5 * (matrix + matrix.T))
    return float(np.max(np.abs(eigenvalues))), float(np.linalg.norm(matrix))


def _balancedness_from_grams(outer: np.ndarray, inner: np.ndarray) -> Balancedness:
    """``outer`` = W_lW_lᵀ, ``inner`` = W_{l+1}ᵀW_{l+1}."""
    difference = inner - outer
    op, fro = _symmetric_norms(difference)
    outer_op, outer_fro = _symmetric_norms(outer)
    if outer_fro == 0:
        raise UndefinedMetricError("BAL.rel_op/BAL.rel_fro: weight is zero, so ‖W_lW_lᵀ‖ = 0")
    return Balancedness(
        op=op,
        fro=fro,
        rel_op=op / outer_op,
        rel_fro=fro / outer_fro,
        diag=float(np.max(np.abs(np.diag(difference)))),
    )


def balancedness(weight: Any, next_weight: Any) -> Balancedness:
    """Balancedness of two consecutive layers, docs/theory.md §3 ``BAL.op``, ``BAL.fro``, ``BAL.rel_op``,
    ``BAL.rel_fro``, ``BAL.diag``.

    D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ ∈ R^{d_{l+1}×d_{l+1}}; all five are 0 at critical points of
    linear pairs (J9) and ``BAL.diag`` across a ReLU (J10); (A)'s theory uses a norm of D_l
    (Jacot et al. 2025).

    Parameters
    ----------
    weight : array_like or torch.Tensor, shape (d_{l+1}, d_l)
        W_l (a feature matrix H₁ of shape (d₁, N) also works: its Gram is accumulated in chunks).
    next_weight : array_like or torch.Tensor, shape (d_{l+2}, d_{l+1})
        W_{l+1}.

    Raises
    ------
    UndefinedMetricError
        If W_l = 0 (the relative norms are undefined).
    """
    _check_pair(weight, next_weight, ("weight", "next_weight"))
    outer = _gram_rows(weight, "weight")
    inner = _gram_rows(next_weight, "next_weight", columns=True)
    return _balancedness_from_grams(outer, inner)


def _gram_rows(matrix: Any, name: str, *, columns: bool = False) -> np.ndarray:
    """AAᵀ (or AᵀA with ``columns=True``) in float64, chunked, torch on its device."""
    source = matrix.T if columns else matrix
    rows, length = feature_matrix_shape(source, name)
    if not is_torch_tensor(source):
        source = np.asarray(source)
    step = chunk_columns(rows)
    gram = np.zeros((rows, rows))
    for start in range(0, length, step):
        chunk = _as_float64_chunk(source, start, min(start + step, length))
        _check_chunk_finite(chunk, name, start)
        gram += np.asarray(to_numpy(chunk @ chunk.T), dtype=np.float64)
    return gram


def weighted_balancedness(
    weight: Any,
    next_weight: Any,
    weight_decay: float,
    next_weight_decay: float,
    *,
    norm: str = "fro",
) -> float:
    """Weighted balancedness, docs/theory.md §3 ``BAL.weighted``: ‖λ_{l+1}W_{l+1}ᵀW_{l+1} − λ_lW_lW_lᵀ‖.

    0 at critical points with per-layer weight decays λ (D4, U3). For the first layer of a UFM
    pass ``weight`` = H₁ (d₁×N) with ``weight_decay`` = λ_H: λ_1W₁ᵀW₁ − λ_HH₁H₁ᵀ.

    Parameters
    ----------
    weight, next_weight
        W_l (d_{l+1}×d_l) and W_{l+1} (d_{l+2}×d_{l+1}).
    weight_decay, next_weight_decay : float
        λ_l, λ_{l+1} ≥ 0.
    norm : {"fro", "op"}
        Frobenius (default) or operator norm.
    """
    if norm not in ("fro", "op"):
        raise ValueError(f"norm must be 'fro' or 'op', got {norm!r}")
    decay = check_positive_scalar(weight_decay, "weight_decay")
    next_decay = check_positive_scalar(next_weight_decay, "next_weight_decay")
    _check_pair(weight, next_weight, ("weight", "next_weight"))
    matrix = next_decay * _gram_rows(next_weight, "next_weight", columns=True) - decay * _gram_rows(
        weight, "weight"
    )
    op, fro = _symmetric_norms(matrix)
    return fro if norm == "fro" else op


@dataclass(frozen=True)
class ScalarBalancedness:
    """Scalar balancedness of a DUFM, docs/theory.md §3 ``BAL.scalar``.

    Attributes
    ----------
    values : tuple of float
        λ_j‖θ_j‖_F² for each block in the order given (λ_H‖H₁‖², λ_1‖W_1‖², …, λ_L‖W_L‖²).
    spread : float
        (max − min)/mean of ``values``; 0 when all are equal (D4).
    """

    values: tuple[float, ...]
    spread: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary of the fields."""
        return asdict(self)


def _squared_norm(matrix: Any, name: str) -> float:
    if is_torch_tensor(matrix):
        torch = _torch()
        value = float((matrix.detach().to(dtype=torch.float64) ** 2).sum())
    else:
        value = float(np.sum(np.asarray(matrix, dtype=np.float64) ** 2))
    if not math.isfinite(value):
        raise ValueError(f"{name} holds NaN or Inf entries (or overflows float64 when squared)")
    return value


def scalar_balancedness(
    blocks: Sequence[Any], weight_decays: Sequence[float]
) -> ScalarBalancedness:
    """Per-block penalties λ_j‖θ_j‖_F² and their spread, docs/theory.md §3 ``BAL.scalar``.

    At critical points of the DUFM all entries are equal (D4), e.g. K·C·q*^{2/(L+1)} at the DNC
    optimum (§4.3).

    Parameters
    ----------
    blocks : sequence of arrays or tensors
        θ_j, e.g. (H₁, W_1, …, W_L).
    weight_decays : sequence of float
        λ_j ≥ 0, one per block.

    Raises
    ------
    UndefinedMetricError
        If every value is zero.
    """
    if len(blocks) == 0 or len(blocks) != len(weight_decays):
        raise ValueError(
            f"blocks and weight_decays must be non-empty and of equal length, got {len(blocks)} "
            f"and {len(weight_decays)}"
        )
    values = tuple(
        check_positive_scalar(decay, f"weight_decays[{j}]") * _squared_norm(block, f"blocks[{j}]")
        for j, (block, decay) in enumerate(zip(blocks, weight_decays))
    )
    mean = sum(values) / len(values)
    if mean == 0:
        raise UndefinedMetricError("BAL.scalar: every λ_j‖θ_j‖² is zero, so the mean is zero")
    return ScalarBalancedness(values=values, spread=(max(values) - min(values)) / mean)


# ---------------------------------------------------------------------------------------------
# all metrics of one feature matrix
# ---------------------------------------------------------------------------------------------
def _evaluate(
    results: dict[str, Any],
    keys: Sequence[str],
    compute: Callable[[], Any],
    undefined: str,
    notes: list[str] | None,
    prefix: str = "",
) -> None:
    """Run ``compute()`` and store its value(s) under ``keys``; None on UndefinedMetricError."""
    try:
        value = compute()
    except UndefinedMetricError as error:
        if undefined == "raise":
            raise
        for key in keys:
            results[key] = None
        if notes is not None:
            notes.append(f"{prefix}{error}")
        return
    if len(keys) == 1:
        results[keys[0]] = value
    else:
        for key, item in zip(keys, value):
            results[key] = item


def _check_undefined(undefined: str) -> None:
    if undefined not in ("raise", "none"):
        raise ValueError(f"undefined must be 'raise' or 'none', got {undefined!r}")


def _class_metrics(
    stats: ClassStatistics,
    results: dict[str, Any],
    undefined: str,
    notes: list | None,
    prefix: str = "",
) -> None:
    """NC1 and NC2 metrics of one set of class statistics into ``results``."""
    for key, function in (
        ("NC1.tr_unc", nc1_trace_ratio_uncentered),
        ("NC1.tr", nc1_trace_ratio),
        ("NC1.pinv", nc1_pseudo_inverse),
        ("NC1.wt", nc1_within_total),
    ):
        _evaluate(results, [key], lambda f=function: f(stats), undefined, notes, prefix)
    _evaluate(
        results,
        ["NC1.cdnv"],
        lambda: nc1_class_distance_normalized_variance(stats),
        undefined,
        notes,
        prefix,
    )
    for key, function in (
        ("NC2.kappa", nc2_condition_number),
        ("NC2.kappa_nz", nc2_condition_number_nonzero),
        ("NC2.orth", nc2_orthogonal_frame_distance),
        ("NC2.etf", nc2_simplex_etf_distance),
    ):
        _evaluate(results, [key], lambda f=function: f(stats), undefined, notes, prefix)


def _report_from_statistics(
    stats: ClassStatistics,
    *,
    weights: Any,
    bias: Any,
    output: dict[str, Any] | None,
    negativity: Callable[[], float] | dict[str, Any] | None,
    center: bool | None,
    rank_rtol: float | None,
    undefined: str,
) -> dict[str, float | int | None]:
    """The metric dictionary of :func:`all_metrics` from class statistics, the output pass
    (``output``: agreements and ‖WZ + b1ᵀ − Y‖_F²) and NEG (a function, or the two d×d Gram
    matrices of a streamed pass); shared with :class:`ufm.metrics_accumulator.MetricsAccumulator`."""
    _check_undefined(undefined)
    if center is None:
        center = bias is not None
    results: dict[str, Any] = {}
    _class_metrics(stats, results, undefined, None)
    if center:
        _evaluate(
            results,
            ["NC2.kappa_nz"],
            lambda: nc2_condition_number_nonzero(stats, center=True),
            undefined,
            None,
        )
    for key in ("NC3.cos", "NC3.cos_min", "NC3.dual", "NC3.span", "NC4.ncc"):
        results[key] = None
    results["NEG"] = None
    results["RANK"] = numerical_rank(stats.means, rank_rtol)
    results["KAPPA"] = results["ERR"] = results["ERR.data"] = None
    if weights is not None:
        matrix = _check_weights(weights, stats)
        _evaluate(
            results,
            ["NC3.cos", "NC3.cos_min"],
            lambda: _cosine_pair(nc3_cosine_alignment(stats, weights=matrix, center=center)),
            undefined,
            None,
        )
        _evaluate(
            results,
            ["NC3.dual"],
            lambda: nc3_self_duality_distance(stats, weights=matrix, center=center),
            undefined,
            None,
        )
        _evaluate(results, ["NC3.span"], lambda: nc3_span_residual(stats, weights=matrix), undefined, None)
        if output is not None:
            results["NC4.ncc"] = output["agreements"] / stats.num_samples
            results["ERR"] = math.sqrt(output["residual"])
            results["ERR.data"] = output["residual"] / (2.0 * stats.num_samples)
        _evaluate(results, ["KAPPA"], lambda: condition_number_nonzero(matrix, rank_rtol), undefined, None)
    if callable(negativity):
        _evaluate(results, ["NEG"], negativity, undefined, None)
    elif negativity is not None:
        _evaluate(results, ["NEG"], lambda: _negativity_from_grams(**negativity), undefined, None)
    return {key: results[key] for key in METRIC_IDS if key in results}


def _negativity_from_grams(gram: np.ndarray, negative_gram: np.ndarray, has_negative: bool) -> float:
    """NEG = sqrt(λ_max(H₋H₋ᵀ)/λ_max(HHᵀ)) from the two d×d Gram matrices of a streamed pass."""
    denominator = _largest_eigenvalue(gram)
    if denominator == 0:
        raise UndefinedMetricError("NEG: pre_activations is zero, so ‖H‖_op = 0")
    if not has_negative:
        return 0.0
    return math.sqrt(_largest_eigenvalue(negative_gram) / denominator)


def all_metrics(
    features: Any,
    labels: Any = None,
    weights: Any = None,
    bias: Any = None,
    *,
    num_classes: int | None = None,
    center: bool | None = None,
    rank_rtol: float | None = None,
    undefined: str = "raise",
    rows: bool = False,
    negativity: bool = False,
) -> dict[str, float | int | None]:
    """Every docs/theory.md §3 metric of one feature matrix (and optional last layer W, b), by ID.

    Keys and their meaning here:

    - ``NC1.tr_unc``, ``NC1.tr``, ``NC1.pinv`` (normalized by K), ``NC1.wt``, ``NC1.cdnv``;
    - ``NC2.kappa``, ``NC2.kappa_nz`` (of M, or of M̄ when centring), ``NC2.orth``, ``NC2.etf``;
    - with ``weights``: ``NC3.cos``, ``NC3.cos_min``, ``NC3.dual``, ``NC3.span``, ``NC4.ncc``
      (classifier argmax(Wz + b)), ``KAPPA`` = KAPPA(W), ``ERR`` = ‖WZ + b1ᵀ − Y‖_F and ``ERR.data``
      = (1/(2N))‖WZ + b1ᵀ − Y‖_F²; None without ``weights``;
    - with ``negativity=True``: ``NEG`` of the features read as pre-activations (0 for
      nonnegative features); None otherwise;
    - ``RANK`` = RANK(M).

    The BAL metrics need two consecutive weight matrices (or λ's) and are left to
    :func:`balancedness` and :func:`layer_report`.

    Computation: the two passes of :class:`ufm.metrics_accumulator.MetricsAccumulator` over
    chunks of the matrix (class sums; then residuals z − μ_y times [U | M | Wᵀ] in one GEMM per
    chunk, with NC4 near-ties re-checked directly), O(N d (K + p)) work and O(K d + chunk) memory;
    NEG adds the Gram matrices of the smaller side.

    Streamed data: give the :class:`~ufm.statistics.ClassStatistics` of the batches (from
    :mod:`ufm.streaming`; then ``labels`` is omitted and NC4.ncc, ERR and NEG, which need the
    samples, are None), or a finished :class:`ufm.metrics_accumulator.MetricsAccumulator` (its
    report, NC4.ncc and ERR included).

    Parameters
    ----------
    features : numpy.ndarray or torch.Tensor, shape (d, N), or (N, d) with ``rows=True``; or ClassStatistics or MetricsAccumulator
        Features as columns (default) or as rows; any real dtype (read in float64 chunks, never
        copied whole); a tensor is measured on its device. Or streamed statistics (see above).
    labels : array_like, shape (N,)
        Classes 0..K-1 (omitted with streamed statistics).
    weights : array_like, shape (K, d), optional
        Last layer W.
    bias : array_like, shape (K,), optional
        Bias b (default 0).
    num_classes : int, optional
        K; by default max(labels) + 1.
    center : bool, optional
        Centre the class means in NC2.kappa_nz, NC3.cos and NC3.dual. Default: centre iff a bias is
        given (models with a bias collapse to a simplex ETF, docs/theory.md §4.1).
    rank_rtol : float, optional
        Tolerance of ``RANK`` and ``KAPPA`` (default max(shape)·eps).
    undefined : {"raise", "none"}
        A metric with a zero denominator raises :class:`UndefinedMetricError` (default) or is None.
    rows : bool
        ``features`` holds one sample per row, shape (N, d) (PyTorch's layout).
    negativity : bool
        Also compute ``NEG`` (two Gram matrices, O(N d min(N, d)) work).

    Returns
    -------
    dict
        Metric ID → value (float; int for RANK; math.inf for NC2.kappa when rank M < K; None when
        not applicable).
    """
    from .metrics_accumulator import MetricsAccumulator, feature_rows

    _check_undefined(undefined)
    if not isinstance(negativity, (bool, np.bool_)):
        raise TypeError(f"negativity must be True or False, got {negativity!r}")
    if isinstance(features, (ClassStatistics, MetricsAccumulator)):
        if labels is not None:
            raise TypeError("labels must be omitted when features holds streamed statistics")
        if isinstance(features, MetricsAccumulator):
            if weights is not None or bias is not None or negativity:
                raise TypeError(
                    "a MetricsAccumulator carries its own weights, bias and negativity setting; "
                    "give them when constructing it"
                )
            return features.report(center=center, rank_rtol=rank_rtol, undefined=undefined)
        if negativity:
            raise ValueError(
                "negativity needs the samples: ClassStatistics do not hold NEG (use a "
                "MetricsAccumulator(..., negativity=True))"
            )
        stats = _statistics(features, None, num_classes)
        return _report_from_statistics(
            stats,
            weights=None if weights is None else _check_weights(weights, stats),
            bias=bias,
            output=None,
            negativity=None,
            center=center,
            rank_rtol=rank_rtol,
            undefined=undefined,
        )
    if labels is None:
        raise TypeError("labels are required when features is a feature matrix")
    samples = feature_rows(features, rows)
    label_array = validate_labels(labels, num_classes, min_per_class=1)
    if label_array.shape[0] != samples.shape[0]:
        layout = "rows" if rows else "columns"
        raise ValueError(
            f"features has N = {samples.shape[0]} samples ({layout}) but labels has "
            f"{label_array.shape[0]} entries"
            + ("" if rows else "; features are columns, shape (d, N) (rows=True for (N, d))")
        )
    k = int(num_classes) if num_classes is not None else int(label_array.max()) + 1
    if weights is not None:
        matrix = as_float64_matrix(weights, "weights")
        if matrix.shape != (k, samples.shape[1]):
            raise ValueError(
                f"weights must have shape (K, d) = {(k, int(samples.shape[1]))} (one row w_c per "
                f"class), got {matrix.shape}"
            )
    accumulator = MetricsAccumulator(k, weights=weights, bias=bias, rows=True)
    labels_for_pass = label_array
    if is_torch_tensor(samples):
        labels_for_pass = device_tensor(label_array, samples.device)
    accumulator.update(samples, labels_for_pass)
    accumulator.next_pass()
    accumulator.update(samples, labels_for_pass)
    stats = accumulator.statistics()
    output = None
    if weights is not None:
        output = {"agreements": accumulator._agreements, "residual": accumulator._residual}
    return _report_from_statistics(
        stats,
        weights=accumulator.weights,
        bias=bias,
        output=output,
        negativity=(lambda: _negativity(samples.T)) if negativity else None,
        center=center,
        rank_rtol=rank_rtol,
        undefined=undefined,
    )


def _cosine_pair(alignment: CosineAlignment) -> tuple[float, float]:
    return alignment.mean, alignment.minimum


# ---------------------------------------------------------------------------------------------
# per-layer report
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerRow:
    """Metrics of one layer's features (post- or pre-activation).

    Attributes
    ----------
    layer : int
        l = 1..L (docs/theory.md numbering: features[0] is H₁).
    kind : str
        "post" (H_l, the input of W_l) or "pre" (H̃_l = W_{l−1}H_{l−1}).
    width : int
        d_l.
    metrics : dict
        Metric ID → value, None where the metric does not apply or is undefined.
    """

    layer: int
    kind: str
    width: int
    metrics: dict[str, float | int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """{"layer", "kind", "width", then the metrics by ID}."""
        return {"layer": self.layer, "kind": self.kind, "width": self.width, **self.metrics}


def _format_value(value: Any, precision: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{precision}g}"


@dataclass(frozen=True)
class LayerReport:
    """Per-layer DNC metrics (docs/theory.md §3, "Per-layer DNC metrics") as one table.

    Attributes
    ----------
    rows : tuple of LayerRow
        One row per layer and kind, in layer order (a layer's "pre" row before its "post" row).
    totals : dict
        Network-level values: ``ERR``, ``ERR.data`` (of W_LH_L + b), ``BAL.scalar`` (spread of
        λ_j‖θ_j‖², with H₁ first when ``feature_decay`` is given) and ``BAL.weighted`` of the
        first pair (λ_1W₁ᵀW₁ − λ_HH₁H₁ᵀ); absent where not computed.
    notes : tuple of str
        Why a metric is None where its denominator was zero.
    """

    rows: tuple[LayerRow, ...]
    totals: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dictionary per row (see :meth:`LayerRow.to_dict`)."""
        return [row.to_dict() for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        """{"rows": [...], "totals": {...}, "notes": [...]}."""
        return {"rows": self.to_dicts(), "totals": dict(self.totals), "notes": list(self.notes)}

    def to_json(self, indent: int | None = None) -> str:
        """JSON text of :meth:`to_dict` (an infinite NC2.kappa is written as ``Infinity``)."""
        return json.dumps(self.to_dict(), indent=indent)

    def columns(self) -> list[str]:
        """Metric IDs with a value in at least one row, in :data:`METRIC_IDS` order."""
        return [
            key
            for key in METRIC_IDS
            if any(row.metrics.get(key) is not None for row in self.rows)
        ]

    def format_table(self, columns: Sequence[str] | None = None, precision: int = 4) -> str:
        """Aligned text table: one line per row, "–" where a metric is missing.

        Parameters
        ----------
        columns : sequence of str, optional
            Metric IDs to show (default :meth:`columns`).
        precision : int
            Significant digits.
        """
        keys = list(self.columns() if columns is None else columns)
        header = ["layer", "kind", "d", *keys]
        body = [
            [str(row.layer), row.kind, str(row.width)]
            + [_format_value(row.metrics.get(key), precision) for key in keys]
            for row in self.rows
        ]
        widths = [max(len(line[j]) for line in [header, *body]) for j in range(len(header))]
        lines = [
            "  ".join(cell.rjust(width) for cell, width in zip(line, widths))
            for line in [header, *body]
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        for key, value in self.totals.items():
            if isinstance(value, (list, tuple)):
                shown = "(" + ", ".join(_format_value(v, precision) for v in value) + ")"
            else:
                shown = _format_value(value, precision)
            lines.append(f"{key} = {shown}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def layer_report(
    features: Sequence[Any],
    labels: Any,
    weights: Sequence[Any] | None = None,
    *,
    pre_activations: Sequence[Any | None] | None = None,
    bias: Any = None,
    weight_decays: Sequence[float] | None = None,
    feature_decay: float | None = None,
    rank_rtol: float | None = None,
    num_classes: int | None = None,
    undefined: str = "none",
    rows: bool = False,
) -> LayerReport:
    """Every per-layer metric of a network or a solver's solution, as one table.

    Layers are numbered l = 1..L as in docs/theory.md: ``features[l−1]`` = H_l (post-activation, the
    input of W_l; H₁ for a UFM) and ``weights[l−1]`` = W_l ∈ R^{d_{l+1}×d_l}, which maps H_l to the
    pre-activation H̃_{l+1}; the last weight W_L is the classifier (K rows). Per docs/theory.md §3
    ("Per-layer DNC metrics"):

    - every row (H_l, and H̃_l when given): all NC1 variants (DNC1), NC2.kappa, NC2.kappa_nz,
      NC2.orth, NC2.etf (DNC2; never assert a geometry for M₁, M̃₂), RANK of its class means;
    - "pre" rows: NEG(H̃_l);
    - "post" rows with weights: KAPPA(W_l); for l < L NC3.span(W_l, M_l) and BAL.op, BAL.fro,
      BAL.rel_op, BAL.rel_fro, BAL.diag of D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ, plus BAL.weighted
      (λ_{l+1}, λ_l) and BAL.scalar entry λ_l‖W_l‖² with ``weight_decays``; for l = L NC3.dual,
      NC3.cos, NC3.cos_min and NC4.ncc of (W_L, b) (class means centred iff a bias is given);
    - ``totals``: ERR and ERR.data of W_LH_L + b1ᵀ, BAL.scalar spread (with λ_H‖H₁‖² first when
      ``feature_decay`` is given) and BAL.weighted of (H₁, W₁).

    Parameters
    ----------
    features : sequence of arrays or tensors, shapes (d_l, N)
        H_1, …, H_L.
    labels : array_like, shape (N,)
        Classes 0..K-1, shared by every layer.
    weights : sequence of arrays, shapes (d_{l+1}, d_l), optional
        W_1, …, W_L (same length as ``features``; d_{L+1} = K).
    pre_activations : sequence of arrays or None, optional
        H̃_1, …, H̃_L with None where absent (H̃_1 does not exist in a DUFM).
    bias : array_like, shape (K,), optional
        Bias of the classifier.
    weight_decays : sequence of float, optional
        λ_1, …, λ_L (enables BAL.weighted and BAL.scalar).
    feature_decay : float, optional
        λ_H (adds λ_H‖H₁‖² to BAL.scalar and the (H₁, W₁) BAL.weighted).
    rank_rtol : float, optional
        Tolerance of RANK and KAPPA (default max(shape)·eps; (C) plots use 1e-3 to 1e-2).
    num_classes : int, optional
        K; by default max(labels) + 1.
    undefined : {"none", "raise"}
        A metric whose denominator is zero is None with a note (default) or raises.
    rows : bool
        Every feature and pre-activation matrix holds one sample per row, shape (N, d_l).
    """
    _check_undefined(undefined)
    if isinstance(features, (str, bytes)) or not isinstance(features, Sequence) or not features:
        raise TypeError("features must be a non-empty list of feature matrices, one per layer")
    if rows:
        features = [_columns(matrix, True) for matrix in features]
        if pre_activations is not None and not isinstance(pre_activations, (str, bytes)):
            pre_activations = [None if matrix is None else _columns(matrix, True)
                               for matrix in pre_activations]
    depth = len(features)
    label_array = validate_labels(labels, num_classes)
    k = int(num_classes) if num_classes is not None else int(label_array.max()) + 1
    widths = [
        check_features_and_labels(matrix, label_array, k, features_name=f"features[{j}]")[1]
        for j, matrix in enumerate(features)
    ]
    if pre_activations is not None:
        if len(pre_activations) != depth:
            raise ValueError(
                f"pre_activations must have one entry per layer ({depth}), "
                f"got {len(pre_activations)}"
            )
        for j, matrix in enumerate(pre_activations):
            if matrix is None:
                continue
            shape = check_features_and_labels(
                matrix, label_array, k, features_name=f"pre_activations[{j}]"
            )[1:3]
            if shape[0] != widths[j]:
                raise ValueError(
                    f"pre_activations[{j}] has d = {shape[0]} rows but features[{j}] has "
                    f"{widths[j]}"
                )
    weight_list: list[np.ndarray] = []
    if weights is not None:
        if len(weights) != depth:
            raise ValueError(
                f"weights must have one matrix per layer ({depth}, the last one the classifier), "
                f"got {len(weights)}"
            )
        for j, weight in enumerate(weights):
            matrix = as_float64_matrix(weight, f"weights[{j}]")
            expected_rows = widths[j + 1] if j + 1 < depth else k
            if matrix.shape != (expected_rows, widths[j]):
                what = "the next layer's width" if j + 1 < depth else "K (the classifier)"
                raise ValueError(
                    f"weights[{j}] must have shape ({expected_rows}, {widths[j]}) "
                    f"(rows = {what}, columns = d of features[{j}]), got {matrix.shape}"
                )
            weight_list.append(matrix)
    if weight_decays is not None:
        if weights is None or len(weight_decays) != depth:
            raise ValueError("weight_decays needs weights and one λ per weight matrix")
        decays = [
            check_positive_scalar(value, f"weight_decays[{j}]")
            for j, value in enumerate(weight_decays)
        ]
    else:
        decays = None
    bias_vector = _check_bias(bias, k) if weights is not None else None
    center = bias is not None

    rows: list[LayerRow] = []
    notes: list[str] = []
    totals: dict[str, Any] = {}
    first_stats: ClassStatistics | None = None
    for j in range(depth):
        layer = j + 1
        if pre_activations is not None and pre_activations[j] is not None:
            pre = pre_activations[j]
            stats = class_statistics(pre, label_array, k, within="auto")
            metrics: dict[str, Any] = {}
            prefix = f"layer {layer} pre: "
            _class_metrics(stats, metrics, undefined, notes, prefix)
            metrics["RANK"] = numerical_rank(stats.means, rank_rtol)
            _evaluate(
                metrics,
                ["NEG"],
                lambda: _negativity(pre, _second_moment_if_known(stats)),
                undefined,
                notes,
                prefix,
            )
            rows.append(LayerRow(layer, "pre", widths[j], metrics))
        stats = class_statistics(features[j], label_array, k, within="auto")
        if j == 0:
            first_stats = stats
        metrics = {}
        prefix = f"layer {layer}: "
        _class_metrics(stats, metrics, undefined, notes, prefix)
        metrics["RANK"] = numerical_rank(stats.means, rank_rtol)
        if weight_list:
            weight = weight_list[j]
            _evaluate(
                metrics,
                ["KAPPA"],
                lambda: condition_number_nonzero(weight, rank_rtol),
                undefined,
                notes,
                prefix,
            )
            if decays is not None:
                metrics["BAL.scalar"] = decays[j] * float(np.sum(weight**2))
            if j + 1 < depth:
                following = weight_list[j + 1]
                _evaluate(
                    metrics,
                    ["NC3.span"],
                    lambda: nc3_span_residual(stats, weights=weight),
                    undefined,
                    notes,
                    prefix,
                )
                outer, inner = weight @ weight.T, following.T @ following
                _evaluate(
                    metrics,
                    ["BAL.op", "BAL.fro", "BAL.rel_op", "BAL.rel_fro", "BAL.diag"],
                    lambda: tuple(_balancedness_from_grams(outer, inner).to_dict().values()),
                    undefined,
                    notes,
                    prefix,
                )
                if decays is not None:
                    metrics["BAL.weighted"] = _symmetric_norms(
                        decays[j + 1] * inner - decays[j] * outer
                    )[1]
            else:
                _evaluate(
                    metrics,
                    ["NC3.dual"],
                    lambda: nc3_self_duality_distance(stats, weights=weight, center=center),
                    undefined,
                    notes,
                    prefix,
                )
                _evaluate(
                    metrics,
                    ["NC3.cos", "NC3.cos_min"],
                    lambda: _cosine_pair(
                        nc3_cosine_alignment(stats, weights=weight, center=center)
                    ),
                    undefined,
                    notes,
                    prefix,
                )
                agreements, residual = _output_pass(
                    features[j], stats.means, weight, bias_vector, label_array
                )
                metrics["NC4.ncc"] = agreements / stats.num_samples
                totals["ERR"] = math.sqrt(residual)
                totals["ERR.data"] = residual / (2.0 * stats.num_samples)
        rows.append(LayerRow(layer, "post", widths[j], metrics))

    if decays is not None:
        values = [decay * float(np.sum(w**2)) for decay, w in zip(decays, weight_list)]
        if feature_decay is not None and first_stats is not None:
            feature_lambda = check_positive_scalar(feature_decay, "feature_decay")
            squared_features = float(
                first_stats.within_sum_of_squares.sum()
                + np.sum(first_stats.counts * np.sum(first_stats.means**2, axis=0))
            )
            values.insert(0, feature_lambda * squared_features)
            first = weight_list[0]
            second_moment = _second_moment_if_known(first_stats)
            if second_moment is None:
                second_moment = _gram_rows(features[0], "features[0]")
            totals["BAL.weighted"] = _symmetric_norms(
                decays[0] * first.T @ first - feature_lambda * second_moment
            )[1]
        mean = sum(values) / len(values)
        if mean == 0:
            if undefined == "raise":
                raise UndefinedMetricError("BAL.scalar: every λ_j‖θ_j‖² is zero")
            notes.append("BAL.scalar: every λ_j‖θ_j‖² is zero")
        else:
            totals["BAL.scalar"] = (max(values) - min(values)) / mean
            totals["BAL.scalar.values"] = tuple(values)
    elif feature_decay is not None:
        raise ValueError("feature_decay needs weight_decays")
    return LayerReport(rows=tuple(rows), totals=totals, notes=tuple(notes))
