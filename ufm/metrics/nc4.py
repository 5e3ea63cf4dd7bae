"""NC4 of docs/theory.md §3: agreement of the nearest class centre with the classifier, NC4.ncc.
"""

from __future__ import annotations

from typing import Any

from ..arrays import as_float64_matrix
from ..statistics import ClassStatistics
from ..streaming import check_features_and_labels, feature_matrix_shape
from .common import _check_bias, _columns, _output_pass, _statistics


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
