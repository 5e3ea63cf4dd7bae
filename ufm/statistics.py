"""Class statistics of a feature matrix: the sufficient statistics of every NC1 and NC2 metric.

A :class:`ClassStatistics` holds, for features Z ∈ R^{d×N} (columns are samples) with labels in
0..K-1, the class means M ∈ R^{d×K}, the class counts n_c, the pooled within-class scatter
S_W = Σ_i (z_i − μ_{y_i})(z_i − μ_{y_i})ᵀ and the per-class sums of squared deviations
Σ_{i: y_i = c} ‖z_i − μ_c‖². They are computed in one float64 pass by
:func:`ufm.streaming.class_statistics` or accumulated batch by batch with
:class:`ufm.streaming.ClassStatisticsAccumulator` (docs/theory.md §3, "Numerics of the metrics").

What each metric needs. The traces (NC1.tr_unc, NC1.tr, NC1.wt, NC1.cdnv) need only the per-class
sums of squares, NC2 and NC3 only the class means. NC1.pinv = (1/K)tr(Σ_W Σ_B^†) needs S_W only on
the span of the centred means: with M̄ Q = U S Vᵀ (Q an orthonormal basis of 1_K^⊥, U ∈ R^{d×p},
p = min(d, K − 1)), Σ_B^† = K U_r S_r^{−2} U_rᵀ, so it needs the p×p matrix Uᵀ S_W U
(a :class:`WithinProjection`), which a second pass over the features computes in O(N d K) instead of
the O(N d²) of the full scatter. A :class:`ClassStatistics` therefore holds the d×d scatter, or
only its projection (``within_scatter=None``), or neither (then every metric but NC1.pinv).

Unbalanced classes. docs/theory.md §1.1 defines the covariances for balanced classes. With class counts
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


#: Largest distance ‖D − B BᵀD‖_F/‖D‖_F of directions D from the span of a projection basis B that
#: :meth:`ClassStatistics.within_scatter_projected` accepts (basis and directions come from the same
#: SVD of the class means, so they agree to rounding, ~1e-15).
SPAN_TOLERANCE = 1e-9


def _frozen_copy(array: np.ndarray) -> np.ndarray:
    copy = np.array(array, copy=True)
    copy.setflags(write=False)
    return copy


def between_directions(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors and singular values of M̄ = MP_K, computed as those of MQ.

    Q ∈ R^{K×(K−1)} has orthonormal columns orthogonal to 1_K (P_K = QQᵀ), so MQ has the nonzero
    singular values and left vectors of M̄ without the rounding-level K-th singular value that
    forming M − μ_G1ᵀ leaves.

    Parameters
    ----------
    means : numpy.ndarray, shape (d, K)
        Class means M (float64).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        U of shape (d, p) with orthonormal columns and s of shape (p,), decreasing,
        p = min(d, K − 1). The same function serves :func:`ufm.metrics.nc1_pseudo_inverse` and the
        projection pass, so both see the same directions.
    """
    means = np.asarray(means, dtype=np.float64)
    left, values, _ = np.linalg.svd(means @ helmert_basis(means.shape[1]), full_matrices=False)
    return left, values


def helmert_basis(num_classes: int) -> np.ndarray:
    """Q ∈ R^{K×(K−1)} with orthonormal columns orthogonal to 1_K (so P_K = QQᵀ)."""
    basis = np.zeros((num_classes, num_classes - 1))
    for j in range(1, num_classes):
        basis[:j, j - 1] = 1.0
        basis[j, j - 1] = -float(j)
        basis[:, j - 1] /= np.sqrt(j * (j + 1))
    return basis


@dataclass(frozen=True, eq=False)
class WithinProjection:
    """The pooled within-class scatter seen through an orthonormal basis: G = Bᵀ S_W B.

    Parameters
    ----------
    basis : numpy.ndarray, shape (d, p)
        B, orthonormal columns (for NC1.pinv: the left singular vectors of the centred class means,
        :func:`between_directions`).
    scatter : numpy.ndarray, shape (p, p)
        G = Bᵀ S_W B = Σ_i (Bᵀ(z_i − μ_{y_i}))(Bᵀ(z_i − μ_{y_i}))ᵀ (symmetric positive
        semi-definite).
    """

    basis: np.ndarray
    scatter: np.ndarray

    def __post_init__(self) -> None:
        basis = np.asarray(self.basis, dtype=np.float64)
        if basis.ndim != 2 or basis.shape[1] < 1 or basis.shape[1] > basis.shape[0]:
            raise ValueError(
                f"basis must be a (d, p) matrix with 1 <= p <= d, got shape {basis.shape}"
            )
        scatter = np.asarray(self.scatter, dtype=np.float64)
        size = basis.shape[1]
        if scatter.shape != (size, size):
            raise ValueError(
                f"scatter must have shape (p, p) = ({size}, {size}), got {scatter.shape}"
            )
        check_finite(basis, "basis")
        check_finite(scatter, "scatter")
        object.__setattr__(self, "basis", _frozen_copy(basis))
        object.__setattr__(self, "scatter", _frozen_copy(0.5 * (scatter + scatter.T)))

    @property
    def dimension(self) -> int:
        """d."""
        return int(self.basis.shape[0])

    @property
    def rank(self) -> int:
        """p, the number of basis vectors."""
        return int(self.basis.shape[1])

    def quadratic_form(self, directions: np.ndarray) -> np.ndarray:
        """Dᵀ S_W D for directions D ∈ R^{d×q} in span(B), as (BᵀD)ᵀ G (BᵀD).

        Raises
        ------
        ValueError
            If D is farther than :data:`SPAN_TOLERANCE` (relative) from span(B).
        """
        directions = np.asarray(directions, dtype=np.float64)
        if directions.ndim != 2 or directions.shape[0] != self.dimension:
            raise ValueError(
                f"directions must have shape (d, q) with d = {self.dimension}, "
                f"got {directions.shape}"
            )
        coordinates = self.basis.T @ directions
        outside = float(np.linalg.norm(directions - self.basis @ coordinates))
        norm = float(np.linalg.norm(directions))
        if outside > SPAN_TOLERANCE * norm:
            raise ValueError(
                "directions leave the span of the within-scatter projection basis "
                f"(relative distance {outside / norm:.1e}); these statistics hold S_W only on "
                "that span: compute them with within='scatter'"
            )
        return coordinates.T @ self.scatter @ coordinates

    def to_dict(self) -> dict[str, Any]:
        """The projection as plain lists (JSON-serializable)."""
        return {"basis": self.basis.tolist(), "scatter": self.scatter.tolist()}


@dataclass(frozen=True, eq=False)
class ClassStatistics:
    """Sufficient statistics of the NC1 and NC2 metrics of one feature matrix (float64).

    Parameters
    ----------
    means : numpy.ndarray, shape (d, K)
        Class means M = [μ_0, …, μ_{K−1}], μ_c = (1/n_c) Σ_{i: y_i = c} z_i.
    counts : numpy.ndarray, shape (K,)
        Number of samples n_c of each class; every class needs at least one.
    within_scatter : numpy.ndarray, shape (d, d), or None
        Pooled within-class scatter S_W = Σ_i (z_i − μ_{y_i})(z_i − μ_{y_i})ᵀ = N Σ_W
        (symmetric positive semi-definite); None when it was not computed (see
        ``within_projection``).
    within_sum_of_squares : numpy.ndarray, shape (K,)
        Per-class sums of squared deviations Σ_{i: y_i = c} ‖z_i − μ_c‖² (their sum is tr S_W);
        the class variances of the CDNV are these divided by n_c.
    within_projection : WithinProjection, optional
        S_W on the span of the centred class means (all NC1.pinv needs), computed without the
        d×d scatter by ``class_statistics(..., within="projection")`` or
        :class:`ufm.streaming.WithinProjectionAccumulator`.

    Notes
    -----
    The arrays are stored as read-only float64 (int64 for ``counts``) copies. Construct instances
    with :func:`ufm.streaming.class_statistics` or
    :class:`ufm.streaming.ClassStatisticsAccumulator`; the module docstring states how unbalanced
    classes are handled. Without ``within_scatter`` the d×d properties (``within_covariance``,
    ``total_covariance``, ``second_moment``) raise ``ValueError``; every other property and every
    metric but NC1.pinv (which needs ``within_projection`` then) work as with it.
    """

    means: np.ndarray
    counts: np.ndarray
    within_scatter: np.ndarray | None
    within_sum_of_squares: np.ndarray
    within_projection: WithinProjection | None = None

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
        scatter = None
        if self.within_scatter is not None:
            scatter = np.asarray(self.within_scatter, dtype=np.float64)
            if scatter.shape != (dimension, dimension):
                raise ValueError(
                    f"within_scatter must have shape (d, d) = ({dimension}, {dimension}), "
                    f"got {scatter.shape}"
                )
        projection = self.within_projection
        if projection is not None:
            if not isinstance(projection, WithinProjection):
                raise TypeError(
                    "within_projection must be a WithinProjection, "
                    f"got {type(projection).__name__}"
                )
            if projection.dimension != dimension:
                raise ValueError(
                    f"within_projection has d = {projection.dimension} rows but means has "
                    f"d = {dimension}"
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
            if array is not None:
                check_finite(array, name)
        if np.any(squares < 0):
            raise ValueError("within_sum_of_squares must be >= 0")
        object.__setattr__(self, "means", _frozen_copy(means))
        object.__setattr__(self, "counts", _frozen_copy(counts.astype(np.int64)))
        object.__setattr__(
            self, "within_scatter", None if scatter is None else _frozen_copy(scatter)
        )
        object.__setattr__(self, "within_sum_of_squares", _frozen_copy(squares))

    def _scatter(self, what: str) -> np.ndarray:
        """S_W, or a ValueError naming ``what`` when it was not computed."""
        if self.within_scatter is None:
            raise ValueError(
                f"{what} needs the d×d within-class scatter, which these statistics do not hold "
                "(computed with within='projection' or 'traces'); use "
                "class_statistics(..., within='scatter') or a ClassStatisticsAccumulator"
            )
        return self.within_scatter

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
        """Σ_W = S_W / N, shape (d, d) (needs ``within_scatter``)."""
        return self._scatter("within_covariance") / self.num_samples

    def within_scatter_projected(self, directions: np.ndarray) -> np.ndarray:
        """Dᵀ S_W D for directions D ∈ R^{d×q}, shape (q, q).

        From ``within_scatter`` when present, else from ``within_projection`` (D must then lie in
        the span of its basis, as the between-class directions of :func:`between_directions` do).

        Raises
        ------
        ValueError
            If the statistics hold neither, or D leaves the projection's span.
        """
        directions = np.asarray(directions, dtype=np.float64)
        if self.within_scatter is not None:
            return directions.T @ self.within_scatter @ directions
        if self.within_projection is None:
            raise ValueError(
                "these statistics hold neither the within-class scatter nor its projection "
                "(within='traces'); NC1.pinv needs one of them: compute the statistics with "
                "within='projection' or 'scatter', or run a WithinProjectionAccumulator pass"
            )
        return self.within_projection.quadratic_form(directions)

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
        """Σ_T = Σ_W + Σ_B, shape (d, d) (needs ``within_scatter``)."""
        return self._scatter("total_covariance") / self.num_samples + self.between_covariance

    @property
    def second_moment(self) -> np.ndarray:
        """Z Zᵀ = S_W + Σ_c n_c μ_c μ_cᵀ, shape (d, d) (the Gram matrix of the features' rows;
        needs ``within_scatter``)."""
        weighted = self.means * self.counts
        return self._scatter("second_moment") + weighted @ self.means.T

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
        data: dict[str, Any] = {
            "means": self.means.tolist(),
            "counts": self.counts.tolist(),
            "within_scatter": (
                None if self.within_scatter is None else self.within_scatter.tolist()
            ),
            "within_sum_of_squares": self.within_sum_of_squares.tolist(),
        }
        if self.within_projection is not None:
            data["within_projection"] = self.within_projection.to_dict()
        return data
