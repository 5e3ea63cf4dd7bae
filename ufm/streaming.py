"""Mergeable float64 accumulation of class statistics (docs/theory.md §3, "Numerics"): one pass with the
d×d within-class scatter, or two passes without it.

For features that do not fit in memory, :class:`ClassStatisticsAccumulator` takes batches
(``update``), combines partial accumulators (``merge``) and returns a
:class:`~ufm.statistics.ClassStatistics` (``finalize``). :func:`class_statistics` runs the same
accumulation over an in-memory feature matrix, in column chunks of bounded size.

**Shift trick.** The first time class c appears, its mean r_c within that chunk becomes the class's
fixed reference vector. Every later sample of class c is accumulated as x = z − r_c:

    T_c = Σ x  (d,),   Q_c = Σ ‖x‖²,   P = Σ_all x xᵀ  (d×d, pooled over classes),   n_c.

Finalization uses the one-pass formulas μ_c = r_c + T_c/n_c, S_W = P − Σ_c T_c T_cᵀ/n_c and
Σ_{i∈c}‖z_i − μ_c‖² = Q_c − ‖T_c‖²/n_c. Their rounding error is about u·Σ_c n_c‖μ_c − r_c‖² (u the
float64 unit roundoff), i.e. relative u·O(1) to the exact scatter because r_c lies within the
class's spread; without the shift it would be u·Σ_c n_c‖μ_c‖², which ruins strongly collapsed
features.

**Merging** (Chan, Golub & LeVeque 1979, parallel variance). Each partial accumulator is first
converted to centred form (S_A, S_B, class means); then
S = S_A + S_B + Σ_c (n_{A,c} n_{B,c}/n_c)(μ_{A,c} − μ_{B,c})(μ_{A,c} − μ_{B,c})ᵀ exactly, with the
mean difference formed as (r_A − r_B) + (T_A/n_A − T_B/n_B); the result is stored again relative to
the shifts of the accumulator merged into. Partial accumulators may therefore use different shifts.

**Without the d×d scatter.** NC1.pinv needs S_W only on the span of the centred class means
(:mod:`ufm.statistics`), which is unknown until every sample is seen. When the samples can be read
twice (features in memory, a DataLoader), two O(N d K) passes replace the O(N d²) scatter:

1. ``ClassStatisticsAccumulator(K, scatter=False)``: class sums and sums of squares with the shift
   trick above (means, counts and every trace; O(N d) work, O(K d) memory);
2. :class:`WithinProjectionAccumulator` of its result: with U ∈ R^{d×p} (p = min(d, K − 1)) the
   left singular vectors of the centred means, G = Σ_i (Uᵀ(z_i − μ_{y_i}))(Uᵀ(z_i − μ_{y_i}))ᵀ.
   The residuals are formed against the means of pass 1 before projecting, so G carries rounding
   u·O(1) relative plus (u‖μ‖/σ)² from the rounding of the means (σ the within-class spread), as
   accurate as the shifted scatter even at strong collapse.

:func:`class_statistics` does both passes with ``within="projection"``, :func:`accumulate_two_pass`
over a re-iterable of batches. The one-pass accumulator with the scatter remains the path for data
that can be read once.

**Devices.** The first batch fixes where the state lives: numpy batches accumulate in numpy; torch
batches (CPU or CUDA) accumulate with torch ops on the tensor's device in float64, so the O(N d²)
work never copies features to the host. Only the small d×d and d×K state moves to numpy, at
``finalize`` or ``merge``. Later batches of the other kind are converted to the first batch's kind.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable

import numpy as np

from .arrays import is_torch_tensor, to_numpy
from .labels import check_num_classes, validate_labels
from .statistics import ClassStatistics, WithinProjection, between_directions

__all__ = [
    "CHUNK_ELEMENTS",
    "ClassStatisticsAccumulator",
    "WithinProjectionAccumulator",
    "accumulate",
    "accumulate_two_pass",
    "class_statistics",
    "projection_is_cheaper",
]

#: Elements (d × columns) of one float64 work chunk: 2**20 doubles = 8 MiB per temporary.
CHUNK_ELEMENTS = 2**20

#: Up to this many classes in a chunk, per-class sums are GEMMs with a (columns × classes)
#: indicator matrix and the shift is gathered per column (the columns stay in place); above it,
#: the columns are grouped by class first.
INDICATOR_MAX_CLASSES = 64

#: ``within`` options of :func:`class_statistics`.
WITHIN_OPTIONS = ("scatter", "projection", "traces", "auto")


def _torch() -> Any:
    """The torch module; only called once a tensor has been seen, so it is already imported."""
    return sys.modules["torch"]


def device_tensor(array: np.ndarray, device: Any, dtype: Any = None) -> Any:
    """``array`` as a torch tensor on ``device`` (a read-only array is copied first)."""
    array = np.asarray(array)
    if not array.flags.writeable:
        array = array.copy()
    return _torch().as_tensor(array, dtype=dtype, device=device)


def feature_matrix_shape(
    features: Any, name: str = "features", layout: str = "(d, N)"
) -> tuple[int, int]:
    """Check that ``features`` is a non-empty 2-D real numpy array or torch tensor; return (d, N).

    A torch tensor stays where it is (no copy to the host); finiteness is checked during the
    accumulation passes.

    Raises
    ------
    TypeError
        If the entries are not real numbers.
    ValueError
        If the array is not 2-D or is empty.
    """
    if is_torch_tensor(features):
        if features.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {features.dtype}")
        shape = tuple(features.shape)
    else:
        array = np.asarray(features)
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.floating)
            or np.issubdtype(array.dtype, np.integer)
            or np.issubdtype(array.dtype, np.bool_)
        ):
            raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
        shape = array.shape
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D matrix of shape {layout}, got shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    return int(shape[0]), int(shape[1])


def check_features_and_labels(
    features: Any,
    labels: Any,
    num_classes: int | None = None,
    *,
    min_per_class: int = 1,
    features_name: str = "features",
    labels_name: str = "labels",
) -> tuple[np.ndarray, int, int, int]:
    """Validate a (features, labels) pair; return (labels as int64 numpy, d, N, K).

    Raises
    ------
    ValueError
        If the shapes disagree (features has N columns, labels N entries), labels lie outside
        0..K-1, or a class has fewer than ``min_per_class`` samples.
    """
    dimension, num_samples = feature_matrix_shape(features, features_name)
    label_array = validate_labels(
        labels, num_classes, min_per_class=min_per_class, name=labels_name
    )
    if label_array.shape[0] != num_samples:
        raise ValueError(
            f"{features_name} has N = {num_samples} samples but {labels_name} has "
            f"{label_array.shape[0]} entries; features are columns, shape (d, N), unless "
            "rows=True says (N, d)"
        )
    k = int(num_classes) if num_classes is not None else int(label_array.max()) + 1
    return label_array, dimension, num_samples, k


def _check_rows(rows: Any) -> bool:
    if not isinstance(rows, (bool, np.bool_)):
        raise TypeError(f"rows must be True or False, got {rows!r}")
    return bool(rows)


def feature_rows(features: Any, rows: bool, name: str = "features") -> Any:
    """The samples of ``features`` as rows (N, d): ``features`` itself if ``rows``, else its
    transpose (a view; nothing is copied).

    Raises
    ------
    TypeError
        If ``rows`` is not a bool or the entries are not real numbers.
    ValueError
        If ``features`` is not a non-empty 2-D matrix.
    """
    if _check_rows(rows):
        layout = "(N, d) with one sample per row"
    else:
        layout = "(d, N) with one sample per column"
    feature_matrix_shape(features, name, layout)
    array = features.detach() if is_torch_tensor(features) else np.asarray(features)
    return array if rows else array.T


def _as_columns(features: Any, rows: bool) -> Any:
    """(d, N) columns of ``features``: itself, or with ``rows`` the transposed view of (N, d)."""
    return feature_rows(features, True).T if rows else features


def chunk_columns(dimension: int) -> int:
    """Number of columns of one work chunk for features of dimension ``dimension``."""
    return max(64, CHUNK_ELEMENTS // max(dimension, 1))


def _nonfinite_error(chunk: Any, name: str, start: int = 0) -> ValueError:
    """The error for a chunk (columns ``start``… of ``name``) with non-finite squared norms."""
    values = np.asarray(to_numpy(chunk), dtype=np.float64)
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    stop = start + values.shape[1] - 1
    if bad:
        return ValueError(
            f"{name} holds NaN or Inf entries ({bad} in columns {start}..{stop}); "
            "expected finite values"
        )
    return ValueError(
        f"{name} holds values too large to square in float64 (overflow in columns {start}..{stop})"
    )


def _indicator_torch(labels: Any, num_classes: int) -> Any:
    """The (B, K) float64 indicator matrix of labels (B,), on the labels' device."""
    torch = _torch()
    indicator = torch.zeros(
        (labels.shape[0], num_classes), dtype=torch.float64, device=labels.device
    )
    return indicator.scatter_(1, labels[:, None], 1.0)


def _subtract_class_vectors(chunk: Any, vectors: Any, labels: Any, indicator: Any) -> Any:
    """z_j − v_{y_j} for every column j (torch): one GEMM with the indicator, Z − V·Iᵀ, when it is
    given (exact: each entry of V·Iᵀ is a single product by 1), else a gather."""
    if indicator is None:
        return chunk - vectors[:, labels]
    return _torch().addmm(chunk, vectors, indicator.T, alpha=-1.0)


def _segments(sorted_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices of the runs of equal values in ``sorted_labels`` and the run values."""
    starts = np.flatnonzero(np.concatenate(([True], sorted_labels[1:] != sorted_labels[:-1])))
    return starts, sorted_labels[starts]


class ClassStatisticsAccumulator:
    """Mergeable float64 accumulator of class sums, shifted pooled scatter and counts.

    Parameters
    ----------
    num_classes : int
        K ≥ 2. Labels of every batch must lie in 0..K-1.
    scatter : bool
        Accumulate the d×d pooled scatter (default). With ``scatter=False`` only class sums and
        sums of squares are kept (O(K d) memory, O(N d) work): ``finalize`` then returns statistics
        with ``within_scatter=None``, enough for every metric but NC1.pinv, and the input of a
        :class:`WithinProjectionAccumulator` second pass.
    rows : bool
        Batches hold one sample per row, shape (B, d) (PyTorch's layout), instead of columns.

    Notes
    -----
    ``update(features_batch, labels_batch)`` adds a batch (features (d, B) as numpy array or torch
    tensor, labels (B,)); ``merge(other)`` adds another accumulator's samples; ``finalize()``
    returns the :class:`~ufm.statistics.ClassStatistics` of all samples seen, equal to
    :func:`class_statistics` of the concatenated data up to float64 rounding (relative 1e-12 in
    the tests) for any split into batches and any merge order. Memory is O(d² + Kd) plus one
    batch chunk; the module docstring gives the formulas (shift trick, Chan et al. merge).
    ``update`` is atomic: a batch that raises leaves the accumulator unchanged.
    """

    def __init__(self, num_classes: int, *, scatter: bool = True, rows: bool = False) -> None:
        self.num_classes = check_num_classes(num_classes)
        if not isinstance(scatter, (bool, np.bool_)):
            raise TypeError(f"scatter must be True or False, got {scatter!r}")
        self.with_scatter = bool(scatter)
        self.rows = _check_rows(rows)
        self._reset()

    def _reset(self) -> None:
        """Forget every sample (the state before the first batch)."""
        self._dimension: int | None = None
        self._device: Any = None  # None: numpy; otherwise a torch.device
        self._counts = np.zeros(self.num_classes, dtype=np.int64)
        self._shift: Any = None  # (d, K) reference vectors r_c
        self._sums: Any = None  # (d, K) T_c = Σ (z − r_c)
        self._scatter: Any = None  # (d, d) P = Σ (z − r_y)(z − r_y)ᵀ
        self._squares: Any = None  # (K,) Q_c = Σ ‖z − r_c‖²

    # -- properties ----------------------------------------------------------------------------
    @property
    def dimension(self) -> int | None:
        """d, or None before the first batch."""
        return self._dimension

    @property
    def counts(self) -> np.ndarray:
        """Samples seen per class so far, shape (K,)."""
        return self._counts.copy()

    @property
    def num_samples(self) -> int:
        """Samples seen so far."""
        return int(self._counts.sum())

    @property
    def device(self) -> Any:
        """The torch device holding the state, or None when the state is in numpy."""
        return self._device

    def __repr__(self) -> str:
        where = "numpy" if self._device is None else f"torch {self._device}"
        return (
            f"ClassStatisticsAccumulator(K={self.num_classes}, d={self._dimension}, "
            f"N={self.num_samples}, scatter={self.with_scatter}, state={where})"
        )

    # -- state helpers -------------------------------------------------------------------------
    def _zeros(self, *shape: int) -> Any:
        if self._device is None:
            return np.zeros(shape, dtype=np.float64)
        torch = _torch()
        return torch.zeros(shape, dtype=torch.float64, device=self._device)

    def _initialize(self, dimension: int, device: Any) -> None:
        self._dimension = dimension
        self._device = device
        self._shift = self._zeros(dimension, self.num_classes)
        self._sums = self._zeros(dimension, self.num_classes)
        self._scatter = self._zeros(dimension, dimension) if self.with_scatter else None
        self._squares = self._zeros(self.num_classes)

    def _state_numpy(self) -> tuple[Any, ...]:
        """(shift, sums, scatter, squares) as float64 numpy copies (scatter None without it)."""
        return tuple(
            None if array is None else np.array(to_numpy(array), dtype=np.float64, copy=True)
            for array in (self._shift, self._sums, self._scatter, self._squares)
        )

    def _set_state_numpy(self, shift, sums, scatter, squares) -> None:
        if self._device is None:
            self._shift, self._sums, self._scatter, self._squares = shift, sums, scatter, squares
            return
        torch = _torch()
        self._shift, self._sums, self._scatter, self._squares = (
            None if array is None else device_tensor(array, self._device, torch.float64)
            for array in (shift, sums, scatter, squares)
        )

    def copy(self) -> "ClassStatisticsAccumulator":
        """An independent copy of this accumulator."""
        other = ClassStatisticsAccumulator(self.num_classes, scatter=self.with_scatter, rows=self.rows)
        other._dimension, other._device = self._dimension, self._device
        other._counts = self._counts.copy()
        if self._shift is not None:
            other._set_state_numpy(*self._state_numpy())
        return other

    # -- update --------------------------------------------------------------------------------
    def update(self, features: Any, labels: Any) -> "ClassStatisticsAccumulator":
        """Add a batch of samples.

        Parameters
        ----------
        features : numpy.ndarray or torch.Tensor, shape (d, B)
            Features as columns, any real dtype (accumulated in float64).
        labels : array_like or torch.Tensor, shape (B,)
            Class indices in 0..K-1 (a batch need not contain every class).

        Returns
        -------
        ClassStatisticsAccumulator
            ``self``, so that updates chain.

        Raises
        ------
        ValueError
            If features hold NaN or Inf, the shapes disagree, the dimension d differs from earlier
            batches, or labels lie outside 0..K-1.
        """
        features = _as_columns(features, self.rows)
        label_array, dimension, _, _ = check_features_and_labels(
            features, labels, self.num_classes, min_per_class=0
        )
        self._update_checked(features, labels, label_array, dimension)
        return self

    def _update_checked(
        self, features: Any, labels: Any, label_array: np.ndarray, dimension: int
    ) -> None:
        if self._dimension is not None and dimension != self._dimension:
            raise ValueError(
                f"features has dimension d = {dimension} but earlier batches had "
                f"d = {self._dimension}"
            )
        first_batch = self._dimension is None
        if first_batch:
            self._initialize(dimension, features.device if is_torch_tensor(features) else None)
        try:
            if self._device is None:
                self._update_numpy(to_numpy(features), label_array)
            else:
                self._update_torch(features, labels, label_array)
        except Exception:
            if first_batch:
                self._reset()
            raise

    def _update_numpy(self, features: np.ndarray, labels: np.ndarray) -> None:
        dimension, num_samples = features.shape
        num_classes = self.num_classes
        step = chunk_columns(dimension)
        counts = self._counts.copy()
        shift = self._shift.copy()
        sums = np.zeros_like(self._sums)
        squares = np.zeros_like(self._squares)
        scatter = None if self._scatter is None else np.zeros_like(self._scatter)
        buffer = np.empty((dimension, min(step, num_samples)))  # reused: no page faults per chunk
        for start in range(0, num_samples, step):
            chunk_labels = labels[start : start + step]
            view = features[:, start : start + step]
            shifted = buffer[:, : view.shape[1]]
            with np.errstate(all="ignore"):  # NaN/Inf/overflow are detected just below
                chunk_counts = np.bincount(chunk_labels, minlength=num_classes)
                classes = np.flatnonzero(chunk_counts)
                if classes.size <= INDICATOR_MAX_CLASSES:
                    # columns in any order: gather each column's shift, per-class sums as GEMMs
                    # with the (columns × classes present) indicator matrix
                    chunk_counts = chunk_counts[classes]
                    position = np.zeros(num_classes, dtype=np.int64)
                    position[classes] = np.arange(classes.size)
                    local = position[chunk_labels]
                    indicator = np.zeros((chunk_labels.size, classes.size))
                    indicator[np.arange(chunk_labels.size), local] = 1.0
                    new = np.flatnonzero(counts[classes] == 0)
                    if new.size:  # a class's first chunk: its mean there becomes its shift
                        np.copyto(shifted, view)
                        raw = shifted @ indicator[:, new]
                        shift[:, classes[new]] = raw / chunk_counts[new]
                    np.take(shift, chunk_labels, axis=1, out=shifted, mode="clip")
                    np.subtract(view, shifted, out=shifted)  # z − r_y
                    chunk_sums = shifted @ indicator
                    column_squares = np.einsum("ij,ij->j", shifted, shifted)
                    chunk_squares = np.bincount(
                        local, weights=column_squares, minlength=classes.size
                    )
                else:
                    if np.any(chunk_labels[1:] < chunk_labels[:-1]):
                        order = np.argsort(chunk_labels, kind="stable")
                        chunk_labels = chunk_labels[order]
                        view = view[:, order]  # group the classes: each class is one run
                    starts, classes = _segments(chunk_labels)
                    stops = np.append(starts[1:], chunk_labels.size)
                    chunk_counts = stops - starts
                    new = counts[classes] == 0
                    np.copyto(shifted, view)
                    if np.any(new):
                        raw = np.add.reduceat(shifted, starts, axis=1)
                        shift[:, classes[new]] = raw[:, new] / chunk_counts[new]
                    shifted -= shift[:, chunk_labels]
                    chunk_sums = np.add.reduceat(shifted, starts, axis=1)
                    column_squares = np.einsum("ij,ij->j", shifted, shifted)
                    chunk_squares = np.add.reduceat(column_squares, starts)
            if not np.all(np.isfinite(column_squares)):
                raise _nonfinite_error(features[:, start : start + step], "features", start)
            sums[:, classes] += chunk_sums
            squares[classes] += chunk_squares
            if scatter is not None:
                scatter += shifted @ shifted.T
            counts[classes] += chunk_counts
        self._counts = counts
        self._shift = shift
        self._sums = self._sums + sums
        self._squares = self._squares + squares
        if scatter is not None:
            self._scatter = self._scatter + scatter

    def _update_torch(self, features: Any, labels: Any, label_array: np.ndarray) -> None:
        torch = _torch()
        device = self._device
        if is_torch_tensor(features):
            features = features.detach().to(device=device)
        else:
            features = torch.from_numpy(np.ascontiguousarray(features)).to(device=device)
        if is_torch_tensor(labels) and labels.device == device:
            device_labels = labels.detach().to(dtype=torch.int64)
        else:
            device_labels = device_tensor(label_array, device, torch.int64)
        dimension, num_samples = features.shape
        step = chunk_columns(dimension)
        counts = self._counts.copy()
        shift = self._shift.clone()
        sums = torch.zeros_like(self._sums)
        squares = torch.zeros_like(self._squares)
        scatter = None if self._scatter is None else torch.zeros_like(self._scatter)
        use_indicator = self.num_classes <= INDICATOR_MAX_CLASSES
        for start in range(0, num_samples, step):
            stop = min(start + step, num_samples)
            chunk_labels = label_array[start:stop]
            chunk_device_labels = device_labels[start:stop]
            chunk = features[:, start:stop].to(dtype=torch.float64)
            chunk_counts = np.bincount(chunk_labels, minlength=self.num_classes)
            indicator = (
                _indicator_torch(chunk_device_labels, self.num_classes) if use_indicator else None
            )
            new = np.flatnonzero((counts == 0) & (chunk_counts > 0))
            if new.size:
                if use_indicator:
                    raw_sums = chunk @ indicator
                else:
                    raw_sums = torch.zeros_like(shift).index_add_(1, chunk_device_labels, chunk)
                new_index = device_tensor(new, device)
                divisor = device_tensor(chunk_counts[new], device, torch.float64)
                shift[:, new_index] = raw_sums[:, new_index] / divisor
            shifted = _subtract_class_vectors(chunk, shift, chunk_device_labels, indicator)
            column_squares = (shifted * shifted).sum(dim=0)
            if not bool(torch.isfinite(column_squares).all()):
                raise _nonfinite_error(features[:, start:stop], "features", start)
            sums.index_add_(1, chunk_device_labels, shifted)
            squares.index_add_(0, chunk_device_labels, column_squares)
            if scatter is not None:
                scatter.addmm_(shifted, shifted.T)
            counts += chunk_counts
        self._counts = counts
        self._shift = shift
        self._sums = self._sums + sums
        self._squares = self._squares + squares
        if scatter is not None:
            self._scatter = self._scatter + scatter

    # -- merge ---------------------------------------------------------------------------------
    def merge(self, other: "ClassStatisticsAccumulator") -> "ClassStatisticsAccumulator":
        """Add the samples of another accumulator (``other`` is left unchanged).

        The two accumulators may have different shifts; the combination is the exact parallel
        (Chan et al.) formula of the module docstring.

        Returns
        -------
        ClassStatisticsAccumulator
            ``self``.

        Raises
        ------
        TypeError
            If ``other`` is not a ClassStatisticsAccumulator.
        ValueError
            If the numbers of classes or the dimensions differ.
        """
        if not isinstance(other, ClassStatisticsAccumulator):
            raise TypeError(
                f"other must be a ClassStatisticsAccumulator, got {type(other).__name__}"
            )
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"other has K = {other.num_classes} classes but this accumulator has "
                f"K = {self.num_classes}"
            )
        if other.with_scatter != self.with_scatter:
            raise ValueError(
                "other accumulates the d×d scatter but this accumulator does not, or the reverse "
                f"(scatter={other.with_scatter} and scatter={self.with_scatter})"
            )
        if other._dimension is None:
            return self
        if self._dimension is None:
            self._initialize(other._dimension, other._device)
        elif other._dimension != self._dimension:
            raise ValueError(
                f"other has dimension d = {other._dimension} but this accumulator has "
                f"d = {self._dimension}"
            )
        shift_a, sums_a, scatter_a, squares_a = self._state_numpy()
        shift_b, sums_b, scatter_b, squares_b = other._state_numpy()
        count_a, count_b = self._counts, other._counts
        count = count_a + count_b
        seen_a, seen_b = count_a > 0, count_b > 0
        both = seen_a & seen_b
        safe_a, safe_b = np.maximum(count_a, 1), np.maximum(count_b, 1)
        offset_a = sums_a / safe_a  # μ_A − r_A
        offset_b = sums_b / safe_b  # μ_B − r_B
        with_scatter = scatter_a is not None
        centered_scatter = (
            scatter_a
            - (sums_a / safe_a) @ sums_a.T
            + scatter_b
            - (sums_b / safe_b) @ sums_b.T
            if with_scatter
            else None
        )
        centered_squares = (
            squares_a
            - np.sum(sums_a * offset_a, axis=0)
            + squares_b
            - np.sum(sums_b * offset_b, axis=0)
        )
        shift = np.where(seen_a, shift_a, shift_b)
        # μ_B − r (r the merged shift): (r_B − r) + (μ_B − r_B); zero gap where r = r_B.
        gap_b = np.where(both, shift_b - shift_a, 0.0) + offset_b
        gap_a = offset_a  # μ_A − r (r = r_A wherever A has samples)
        if np.any(both):
            weight = np.where(both, count_a * count_b / np.maximum(count, 1), 0.0)
            difference = gap_a - gap_b  # μ_A − μ_B
            if with_scatter:
                centered_scatter = centered_scatter + (difference * weight) @ difference.T
            centered_squares = centered_squares + weight * np.sum(difference**2, axis=0)
        safe = np.maximum(count, 1)
        offset = (count_a * np.where(seen_a, gap_a, 0.0) + count_b * gap_b) / safe  # μ − r
        sums = offset * count
        scatter = None
        if with_scatter:
            scatter = centered_scatter + (offset * count) @ offset.T
            scatter = 0.5 * (scatter + scatter.T)
        squares = centered_squares + count * np.sum(offset**2, axis=0)
        self._counts = count
        self._set_state_numpy(shift, sums, scatter, squares)
        return self

    # -- finalize ------------------------------------------------------------------------------
    def finalize(self) -> ClassStatistics:
        """The class statistics of every sample seen.

        Returns
        -------
        ClassStatistics
            With ``within_scatter=None`` for an accumulator made with ``scatter=False``.

        Raises
        ------
        ValueError
            If no samples were seen, or a class received none (its mean is undefined).
        """
        if self._dimension is None:
            raise ValueError("no samples accumulated: call update() with at least one batch")
        empty = np.flatnonzero(self._counts == 0)
        if empty.size:
            raise ValueError(
                f"labels: every class needs at least 1 sample; class {int(empty[0])} received none "
                f"(K = {self.num_classes})"
            )
        shift, sums, scatter, squares = self._state_numpy()
        counts = self._counts
        offset = sums / counts  # μ_c − r_c
        means = shift + offset
        within_scatter = None
        if scatter is not None:
            within_scatter = scatter - offset @ sums.T
            within_scatter = 0.5 * (within_scatter + within_scatter.T)
        within_squares = np.maximum(squares - np.sum(sums * offset, axis=0), 0.0)
        return ClassStatistics(
            means=means,
            counts=counts.copy(),
            within_scatter=within_scatter,
            within_sum_of_squares=within_squares,
        )


class WithinProjectionAccumulator:
    """Second pass of the two-pass path: the within-class scatter on the between-class directions.

    Parameters
    ----------
    statistics : ClassStatistics
        Class means and counts of the samples this pass will see again, e.g. the ``finalize()``
        of a ``ClassStatisticsAccumulator(K, scatter=False)`` fed the same batches.
    rows : bool
        Batches hold one sample per row, shape (B, d).

    Notes
    -----
    With U ∈ R^{d×p} (p = min(d, K − 1)) the left singular vectors of the centred class means
    (:func:`ufm.statistics.between_directions`), ``update`` adds
    G += Σ (Uᵀ(z − μ_y))(Uᵀ(z − μ_y))ᵀ in float64: O(B d p) work per batch of B samples, O(d K)
    memory. ``finalize`` returns ``statistics`` with ``within_projection`` = (U, G), which is all
    NC1.pinv needs. The pass must see the same samples as the first one (in any order and
    batching): the class counts are checked; features that differ between the passes (random
    augmentation) give statistics that match neither pass. Numpy batches accumulate in numpy, torch
    batches on the first batch's device (only G, p×p, moves to the host), as in
    :class:`ClassStatisticsAccumulator`. ``update`` is atomic.
    """

    def __init__(self, statistics: ClassStatistics, *, rows: bool = False) -> None:
        if not isinstance(statistics, ClassStatistics):
            raise TypeError(
                f"statistics must be a ClassStatistics, got {type(statistics).__name__}"
            )
        self.rows = _check_rows(rows)
        self.statistics = statistics
        self.num_classes = statistics.num_classes
        self.basis = between_directions(statistics.means)[0]
        self.basis.setflags(write=False)
        self._counts = np.zeros(self.num_classes, dtype=np.int64)
        self._device: Any = None
        self._gram: Any = None  # (p, p) G, numpy or a tensor on the device
        self._device_state: tuple[Any, Any] | None = None  # (means, basisᵀ) as device tensors

    @property
    def dimension(self) -> int:
        """d."""
        return self.statistics.dimension

    @property
    def counts(self) -> np.ndarray:
        """Samples seen per class so far in this pass, shape (K,)."""
        return self._counts.copy()

    @property
    def num_samples(self) -> int:
        """Samples seen so far in this pass."""
        return int(self._counts.sum())

    @property
    def device(self) -> Any:
        """The torch device holding the state, or None when the state is in numpy."""
        return self._device

    def __repr__(self) -> str:
        where = "numpy" if self._device is None else f"torch {self._device}"
        return (
            f"WithinProjectionAccumulator(K={self.num_classes}, d={self.dimension}, "
            f"p={self.basis.shape[1]}, N={self.num_samples}, state={where})"
        )

    def update(self, features: Any, labels: Any) -> "WithinProjectionAccumulator":
        """Add a batch: features (d, B) as numpy array or torch tensor, labels (B,) in 0..K-1.

        Returns ``self``. Raises ``ValueError`` if features hold NaN or Inf, the shapes disagree,
        d differs from the first pass's, or labels lie outside 0..K-1.
        """
        features = _as_columns(features, self.rows)
        label_array, dimension, _, _ = check_features_and_labels(
            features, labels, self.num_classes, min_per_class=0
        )
        self._update_checked(features, labels, label_array, dimension)
        return self

    def _update_checked(
        self, features: Any, labels: Any, label_array: np.ndarray, dimension: int
    ) -> None:
        if dimension != self.dimension:
            raise ValueError(
                f"features has dimension d = {dimension} but the first pass had "
                f"d = {self.dimension}"
            )
        first_batch = self._gram is None
        if first_batch:
            device = features.device if is_torch_tensor(features) else None
            size = self.basis.shape[1]
            if device is None:
                self._gram = np.zeros((size, size))
            else:
                torch = _torch()
                self._device_state = (
                    device_tensor(self.statistics.means, device, torch.float64),
                    device_tensor(np.ascontiguousarray(self.basis.T), device, torch.float64),
                )
                self._gram = torch.zeros((size, size), dtype=torch.float64, device=device)
            self._device = device
        try:
            if self._device is None:
                batch_gram = self._project_numpy(to_numpy(features), label_array)
            else:
                batch_gram = self._project_torch(features, labels, label_array)
        except Exception:
            if first_batch:
                self._device, self._gram, self._device_state = None, None, None
            raise
        self._gram = self._gram + batch_gram
        self._counts = self._counts + np.bincount(label_array, minlength=self.num_classes)

    def _project_numpy(self, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        dimension, num_samples = features.shape
        means = self.statistics.means
        basis_t = np.ascontiguousarray(self.basis.T)
        step = chunk_columns(dimension)
        gram = np.zeros((basis_t.shape[0],) * 2)
        buffer = np.empty((dimension, min(step, num_samples)))
        for start in range(0, num_samples, step):
            view = features[:, start : start + step]
            residual = buffer[:, : view.shape[1]]
            with np.errstate(all="ignore"):  # NaN/Inf are detected just below
                np.take(means, labels[start : start + step], axis=1, out=residual, mode="clip")
                np.subtract(view, residual, out=residual)  # z − μ_y
                projected = basis_t @ residual
            if not np.all(np.isfinite(projected)):
                raise _nonfinite_error(view, "features", start)
            gram += projected @ projected.T
        return gram

    def _project_torch(self, features: Any, labels: Any, label_array: np.ndarray) -> Any:
        torch = _torch()
        device = self._device
        means, basis_t = self._device_state
        if is_torch_tensor(features):
            features = features.detach().to(device=device)
        else:
            features = torch.from_numpy(np.ascontiguousarray(features)).to(device=device)
        if is_torch_tensor(labels) and labels.device == device:
            device_labels = labels.detach().to(dtype=torch.int64)
        else:
            device_labels = device_tensor(label_array, device, torch.int64)
        dimension, num_samples = features.shape
        step = chunk_columns(dimension)
        gram = torch.zeros_like(self._gram)
        use_indicator = self.num_classes <= INDICATOR_MAX_CLASSES
        for start in range(0, num_samples, step):
            stop = min(start + step, num_samples)
            chunk = features[:, start:stop].to(dtype=torch.float64)
            chunk_labels = device_labels[start:stop]
            indicator = (
                _indicator_torch(chunk_labels, self.num_classes) if use_indicator else None
            )
            projected = basis_t @ _subtract_class_vectors(chunk, means, chunk_labels, indicator)
            if not bool(torch.isfinite(projected).all()):
                raise _nonfinite_error(features[:, start:stop], "features", start)
            gram.addmm_(projected, projected.T)
        return gram

    def merge(self, other: "WithinProjectionAccumulator") -> "WithinProjectionAccumulator":
        """Add the samples of another second-pass accumulator built on the same first pass.

        Raises
        ------
        TypeError
            If ``other`` is not a WithinProjectionAccumulator.
        ValueError
            If the two were built on different class means (different projection bases).
        """
        if not isinstance(other, WithinProjectionAccumulator):
            raise TypeError(
                f"other must be a WithinProjectionAccumulator, got {type(other).__name__}"
            )
        if other.statistics is not self.statistics and not (
            np.array_equal(other.statistics.means, self.statistics.means)
            and np.array_equal(other.basis, self.basis)
        ):
            raise ValueError(
                "other was built on different class means; both passes must start from the "
                "same first-pass statistics"
            )
        if other._gram is None:
            return self
        gram = np.asarray(to_numpy(other._gram), dtype=np.float64)
        if self._gram is None:
            self._gram = gram.copy()
        elif self._device is None:
            self._gram = self._gram + gram
        else:
            self._gram = self._gram + device_tensor(gram, self._device, _torch().float64)
        self._counts = self._counts + other._counts
        return self

    def finalize(self) -> ClassStatistics:
        """The first pass's statistics with ``within_projection`` = (U, G).

        Raises
        ------
        ValueError
            If this pass did not see the first pass's class counts.
        """
        expected = self.statistics.counts
        if not np.array_equal(self._counts, expected):
            wrong = int(np.flatnonzero(self._counts != expected)[0])
            raise ValueError(
                f"the projection pass saw {int(self._counts[wrong])} samples of class {wrong} "
                f"but the first pass saw {int(expected[wrong])}; both passes must see the same "
                "samples"
            )
        gram = np.asarray(to_numpy(self._gram), dtype=np.float64)
        stats = self.statistics
        return ClassStatistics(
            means=stats.means,
            counts=stats.counts,
            within_scatter=stats.within_scatter,
            within_sum_of_squares=stats.within_sum_of_squares,
            within_projection=WithinProjection(self.basis, gram),
        )


def projection_is_cheaper(dimension: int, num_classes: int) -> bool:
    """True when the two-pass projection (O(N d p), p = min(d, K − 1)) costs less than the one-pass
    d×d scatter (O(N d²/2)): 2p < d."""
    return 2 * min(dimension, num_classes - 1) < dimension


def class_statistics(
    features: Any,
    labels: Any,
    num_classes: int | None = None,
    *,
    within: str = "scatter",
    rows: bool = False,
) -> ClassStatistics:
    """Class statistics of an in-memory feature matrix, in float64 chunks.

    Parameters
    ----------
    features : numpy.ndarray or torch.Tensor, shape (d, N)
        Features as columns, any real dtype. A torch tensor is processed with torch ops on its own
        device, in float64 chunks; only the d×d, d×K and smaller results move to the host.
    labels : array_like or torch.Tensor, shape (N,)
        Class indices in 0..K-1.
    num_classes : int, optional
        K; by default max(labels) + 1.
    within : {"scatter", "projection", "traces", "auto"}
        What of the within-class scatter S_W to compute besides means, counts and per-class sums of
        squares (module docstring):

        - ``"scatter"`` (default): the d×d S_W, one pass, O(N d²);
        - ``"projection"``: S_W on the span of the centred means only (``within_scatter=None``,
          ``within_projection`` set), two passes, O(N d K), O(d K) memory;
        - ``"traces"``: neither (one O(N d) pass; every metric but NC1.pinv);
        - ``"auto"``: ``"projection"`` when it is the cheaper one (2·min(d, K − 1) < d), else
          ``"scatter"``.
    rows : bool
        ``features`` holds one sample per row, shape (N, d); read as the transposed view.

    Returns
    -------
    ClassStatistics
        Means M (d, K), counts (K,), per-class sums of squared deviations (K,), and S_W or its
        projection as chosen, computed with the shift trick of docs/theory.md §3.

    Raises
    ------
    ValueError
        If features hold NaN or Inf, the shapes disagree, a class has no samples, or ``within`` is
        not one of the options.
    """
    if within not in WITHIN_OPTIONS:
        raise ValueError(f"within must be one of {WITHIN_OPTIONS}, got {within!r}")
    features = _as_columns(features, _check_rows(rows))
    label_array, dimension, _, k = check_features_and_labels(features, labels, num_classes)
    if within == "auto":
        within = "projection" if projection_is_cheaper(dimension, k) else "scatter"
    accumulator = ClassStatisticsAccumulator(k, scatter=within == "scatter")
    accumulator._update_checked(features, labels, label_array, dimension)
    stats = accumulator.finalize()
    if within == "projection":
        second = WithinProjectionAccumulator(stats)
        second._update_checked(features, labels, label_array, dimension)
        stats = second.finalize()
    return stats


def accumulate(
    batches: Iterable[tuple[Any, Any]], num_classes: int, *, rows: bool = False
) -> ClassStatistics:
    """Class statistics of an iterable of ``(features_batch, labels_batch)`` pairs.

    Equivalent to feeding every pair to :meth:`ClassStatisticsAccumulator.update` and calling
    :meth:`~ClassStatisticsAccumulator.finalize`; ``rows=True`` for (B, d) batches.
    """
    accumulator = ClassStatisticsAccumulator(num_classes, rows=rows)
    for features_batch, labels_batch in batches:
        accumulator.update(features_batch, labels_batch)
    return accumulator.finalize()


def accumulate_two_pass(
    batches: Iterable[tuple[Any, Any]] | Callable[[], Iterable[tuple[Any, Any]]],
    num_classes: int,
    *,
    rows: bool = False,
) -> ClassStatistics:
    """Class statistics of ``(features_batch, labels_batch)`` pairs read twice, without S_W.

    The first pass accumulates means, counts and sums of squares
    (``ClassStatisticsAccumulator(K, scatter=False)``), the second the within-class scatter on the
    between-class directions (:class:`WithinProjectionAccumulator`): O(N d K) work and O(d K)
    memory instead of the one-pass O(N d²) and O(d²), for every NC1–NC3 metric.

    Parameters
    ----------
    batches : re-iterable of pairs, or a callable returning a fresh iterable of pairs
        Read twice, e.g. a list or a torch ``DataLoader`` (each ``iter()`` starts over), or
        ``lambda: loader_of(model)``. Both passes must yield the same samples (order and batching
        may differ). A one-shot iterator (a generator) is rejected.
    num_classes : int
        K.
    rows : bool
        Batches hold one sample per row, shape (B, d).

    Raises
    ------
    TypeError
        If ``batches`` is a one-shot iterator.
    ValueError
        As :meth:`ClassStatisticsAccumulator.update`, or if the passes saw different class counts.
    """
    if not callable(batches) and iter(batches) is batches:
        raise TypeError(
            "batches must be re-iterable (a list, a DataLoader) or a callable returning a fresh "
            "iterable: a one-shot iterator is exhausted after the first pass"
        )

    def passes() -> Iterable[tuple[Any, Any]]:
        return batches() if callable(batches) else batches

    first = ClassStatisticsAccumulator(num_classes, scatter=False, rows=rows)
    for features_batch, labels_batch in passes():
        first.update(features_batch, labels_batch)
    second = WithinProjectionAccumulator(first.finalize(), rows=rows)
    for features_batch, labels_batch in passes():
        second.update(features_batch, labels_batch)
    return second.finalize()
