"""Class statistics of a feature matrix: the sufficient statistics of every NC1 and NC2 metric.

A :class:`ClassStatistics` holds, for features Z ∈ R^{d×N} (columns are samples) with labels in
0..K-1, the class means M ∈ R^{d×K}, the class counts n_c, the pooled within-class scatter
S_W = Σ_i (z_i − μ_{y_i})(z_i − μ_{y_i})ᵀ and the per-class sums of squared deviations
Σ_{i: y_i = c} ‖z_i − μ_c‖². They are computed in one float64 pass by
:func:`ufm.streaming.class_statistics` or accumulated batch by batch with
:class:`ufm.streaming.ClassStatisticsAccumulator` (THEORY.md §3, "Numerics of the metrics").

Unbalanced classes. THEORY.md §1.1 defines the covariances for balanced classes. With class counts
n_c that differ, this module keeps the same formulas with these readings:

- Σ_W = (1/N) S_W, an average over all N samples (each class weighted by n_c/N);
- class means μ_c = (1/n_c) Σ_{i: y_i = c} z_i, one per class;
- μ_G = (1/K) M 1_K, the unweighted mean of the class means (not the sample mean (1/N) Z 1_N);
- Σ_B = (1/K) M̄ M̄ᵀ with M̄ = M P_K, and Σ_B^unc = (1/K) M Mᵀ (every class weighted 1/K);
- Σ_T = Σ_W + Σ_B, which is the sample covariance of Z only when the classes are balanced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import check_finite


def _frozen_copy(array: np.ndarray) -> np.ndarray:
    copy = np.array(array, copy=True)
    copy.setflags(write=False)
    return copy


@dataclass(frozen=True, eq=False)
class ClassStatistics:
    """Sufficient statistics of the NC1 and NC2 metrics of one feature matrix (float64).

    Parameters
    ----------
    means : numpy.ndarray, shape (d, K)
        Class means M = [μ_0, …, μ_{K−1}], μ_c = (1/n_c) Σ_{i: y_i = c} z_i.
    counts : numpy.ndarray, shape (K,)
        Number of samples n_c of each class; every class needs at least one.
    within_scatter : numpy.ndarray, shape (d, d)
        Pooled within-class scatter S_W = Σ_i (z_i − μ_{y_i})(z_i − μ_{y_i})ᵀ = N Σ_W
        (symmetric positive semi-definite).
    within_sum_of_squares : numpy.ndarray, shape (K,)
        Per-class sums of squared deviations Σ_{i: y_i = c} ‖z_i − μ_c‖² (their sum is tr S_W);
        the class variances of the CDNV are these divided by n_c.

    Notes
    -----
    The arrays are stored as read-only float64 (int64 for ``counts``) copies. Construct instances
    with :func:`ufm.streaming.class_statistics` or
    :class:`ufm.streaming.ClassStatisticsAccumulator`; the module docstring states how unbalanced
    classes are handled.
    """

    means: np.ndarray
    counts: np.ndarray
    within_scatter: np.ndarray
    within_sum_of_squares: np.ndarray

    def __post_init__(self) -> None:
        means = np.asarray(self.means, dtype=np.float64)
        if means.ndim != 2:
            raise ValueError(f"means must be a (d, K) matrix, got shape {means.shape}")
        dimension, num_classes = means.shape
        if dimension < 1 or num_classes < 2:
            raise ValueError(f"means must have d >= 1 rows and K >= 2 columns, got {means.shape}")
        counts = np.asarray(self.counts)
        if counts.shape != (num_classes,) or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(
                f"counts must be an integer vector of K = {num_classes} entries, "
                f"got dtype {counts.dtype} and shape {counts.shape}"
            )
        empty = np.flatnonzero(counts < 1)
        if empty.size:
            raise ValueError(
                f"counts: every class needs at least 1 sample; class {int(empty[0])} has "
                f"{int(counts[empty[0]])}"
            )
        scatter = np.asarray(self.within_scatter, dtype=np.float64)
        if scatter.shape != (dimension, dimension):
            raise ValueError(
                f"within_scatter must have shape (d, d) = ({dimension}, {dimension}), "
                f"got {scatter.shape}"
            )
        squares = np.asarray(self.within_sum_of_squares, dtype=np.float64)
        if squares.shape != (num_classes,):
            raise ValueError(
                f"within_sum_of_squares must have K = {num_classes} entries, "
                f"got shape {squares.shape}"
            )
        for array, name in (
            (means, "means"),
            (scatter, "within_scatter"),
            (squares, "within_sum_of_squares"),
        ):
            check_finite(array, name)
        if np.any(squares < 0):
            raise ValueError("within_sum_of_squares must be >= 0")
        object.__setattr__(self, "means", _frozen_copy(means))
        object.__setattr__(self, "counts", _frozen_copy(counts.astype(np.int64)))
        object.__setattr__(self, "within_scatter", _frozen_copy(scatter))
        object.__setattr__(self, "within_sum_of_squares", _frozen_copy(squares))

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """N = Σ_c n_c."""
        return int(self.counts.sum())

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return int(self.means.shape[1])

    @property
    def dimension(self) -> int:
        """d, the feature dimension."""
        return int(self.means.shape[0])

    @property
    def is_balanced(self) -> bool:
        """True if every class has the same number of samples."""
        return bool(np.all(self.counts == self.counts[0]))

    # -- derived matrices -----------------------------------------------------------------------
    @property
    def global_mean(self) -> np.ndarray:
        """μ_G = (1/K) M 1_K, shape (d,) (the mean of the class means)."""
        return self.means.mean(axis=1)

    @property
    def centered_means(self) -> np.ndarray:
        """M̄ = M P_K = M − μ_G 1_Kᵀ, shape (d, K)."""
        return self.means - self.global_mean[:, None]

    @property
    def class_variances(self) -> np.ndarray:
        """V_c = (1/n_c) Σ_{i: y_i = c} ‖z_i − μ_c‖², shape (K,) (Galanti et al. 2022)."""
        return self.within_sum_of_squares / self.counts

    @property
    def within_covariance(self) -> np.ndarray:
        """Σ_W = S_W / N, shape (d, d)."""
        return self.within_scatter / self.num_samples

    @property
    def between_covariance(self) -> np.ndarray:
        """Σ_B = (1/K) M̄ M̄ᵀ, shape (d, d) (centred)."""
        centered = self.centered_means
        return centered @ centered.T / self.num_classes

    @property
    def between_covariance_uncentered(self) -> np.ndarray:
        """Σ_B^unc = (1/K) M Mᵀ, shape (d, d)."""
        return self.means @ self.means.T / self.num_classes

    @property
    def total_covariance(self) -> np.ndarray:
        """Σ_T = Σ_W + Σ_B, shape (d, d)."""
        return self.within_covariance + self.between_covariance

    @property
    def second_moment(self) -> np.ndarray:
        """Z Zᵀ = S_W + Σ_c n_c μ_c μ_cᵀ, shape (d, d) (the Gram matrix of the features' rows)."""
        weighted = self.means * self.counts
        return self.within_scatter + weighted @ self.means.T

    # -- traces (non-negative by construction) -------------------------------------------------
    @property
    def trace_within(self) -> float:
        """tr Σ_W = (1/N) Σ_c Σ_{i: y_i = c} ‖z_i − μ_c‖²."""
        return float(self.within_sum_of_squares.sum() / self.num_samples)

    @property
    def trace_between(self) -> float:
        """tr Σ_B = (1/K) ‖M̄‖_F²."""
        return float(np.sum(self.centered_means**2) / self.num_classes)

    @property
    def trace_between_uncentered(self) -> float:
        """tr Σ_B^unc = (1/K) ‖M‖_F²."""
        return float(np.sum(self.means**2) / self.num_classes)

    def to_dict(self) -> dict[str, Any]:
        """The statistics as plain lists (JSON-serializable)."""
        return {
            "means": self.means.tolist(),
            "counts": self.counts.tolist(),
            "within_scatter": self.within_scatter.tolist(),
            "within_sum_of_squares": self.within_sum_of_squares.tolist(),
        }
