"""Every docs/theory.md §3 metric of one feature matrix, by ID: :func:`all_metrics`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ..labels import validate_labels
from ..statistics import ClassStatistics
from ..streaming import feature_rows
from .common import (
    METRIC_IDS,
    UndefinedMetricError,
    _check_weights,
    _largest_eigenvalue,
    _statistics,
)
from .rank import condition_number_nonzero, numerical_rank
from .nc1 import (
    nc1_class_distance_normalized_variance,
    nc1_pseudo_inverse,
    nc1_trace_ratio,
    nc1_trace_ratio_uncentered,
    nc1_within_total,
)
from .nc2 import (
    nc2_condition_number,
    nc2_condition_number_nonzero,
    nc2_orthogonal_frame_distance,
    nc2_simplex_etf_distance,
)
from .nc3 import CosineAlignment, nc3_cosine_alignment, nc3_self_duality_distance, nc3_span_residual
from .neg import _negativity, negativity


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
    kernels: str = "auto",
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
    kernels : {"auto", "compiled", "numpy"}
        Who runs the two passes over a float32/float64 matrix in host memory (see
        :class:`ufm.metrics_accumulator.MetricsAccumulator`): the compiled kernels (``"auto"``
        when numba is installed) or numpy. The same sums in another order: the values agree to
        rounding.

    Returns
    -------
    dict
        Metric ID → value (float; int for RANK; math.inf for NC2.kappa when rank M < K; None when
        not applicable).
    """
    from ..metrics_accumulator import MetricsAccumulator, check_kernels

    _check_undefined(undefined)
    check_kernels(kernels)
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
    # the accumulator checks the weights and bias at its first batch, before any work
    accumulator = MetricsAccumulator(k, weights=weights, bias=bias, rows=True, kernels=kernels)
    accumulator.update(samples, label_array)
    accumulator.next_pass()
    accumulator.update(samples, label_array)
    return accumulator._report(
        (lambda: _negativity(samples.T)) if negativity else None,
        center=center,
        rank_rtol=rank_rtol,
        undefined=undefined,
    )


def _cosine_pair(alignment: CosineAlignment) -> tuple[float, float]:
    return alignment.mean, alignment.minimum
