"""Shared pieces of the collapse metrics: the metric IDs, :class:`UndefinedMetricError`, argument checks,
float64 chunking of feature matrices, Gram matrices and rank tolerances.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..arrays import (
    as_float64_matrix,
    as_float64_vector,
    check_positive_scalar,
    is_torch_tensor,
    to_numpy,
)
from ..statistics import ClassStatistics, helmert_basis
from ..streaming import (
    _as_columns,
    _check_rows,
    _nonfinite_error,
    _torch,
    chunk_columns,
    class_statistics,
    device_tensor,
    feature_matrix_shape,
)


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
    return _as_columns(features, _check_rows(rows))


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
