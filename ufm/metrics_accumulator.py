"""The whole collapse report in two streaming passes: :class:`MetricsAccumulator`,
:func:`stream_metrics`.

Every docs/theory.md §3 metric that features, labels and a last layer (W, b) define — NC1–NC4,
RANK, KAPPA, ERR, and NEG on request — from batches of samples, as rows (N, d) or columns (d, N),
numpy arrays or torch tensors on any device, in float64 whatever the input dtype, with memory
O(Kd + chunk) (plus d×d when NEG is asked for).

**Pass 1** (O(N d)): counts and class sums, one GEMM per chunk with the (K × chunk) indicator of
the labels. The class means M = [μ_0, …, μ_{K−1}] follow; so do the between-class directions
U ∈ R^{d×p} (:func:`ufm.statistics.between_directions`, the same directions as NC1.pinv of
:mod:`ufm.metrics`).

**Pass 2** (O(N d (p + 2K))): per chunk, the residuals r_i = z_i − μ_{y_i} (formed before any
product, so strongly collapsed features lose no digits), then one GEMM R·[U | M | Wᵀ]. It yields

- Σ_{i∈c} ‖r_i‖² per class (the traces and the CDNV variances),
- G = Σ_i (Uᵀr_i)(Uᵀr_i)ᵀ, S_W on the span of the centred means (NC1.pinv),
- the scores s_i = W z_i + b = W r_i + (Wμ_{y_i} + b) and the squared distances to the class
  centres up to a per-sample constant, ‖z_i − μ_c‖² − ‖r_i‖² = ‖μ_{y_i} − μ_c‖² − 2 r_iᵀ(μ_c −
  μ_{y_i}), hence NC4.ncc and ERR in the same pass.

**Ties of NC4.** A sample whose two best scores, or two nearest centres, differ by less than the
rounding bound of the fast products, 16 (d + 4) u (‖r_i‖ + 2 max_c‖μ_c‖)² for distances and
16 (d + 4) u (max_c‖w_c‖ (‖r_i‖ + max_c‖μ_c‖) + max|b|) for scores (u = 2⁻⁵³), is re-checked
with the direct formulas of :func:`ufm.metrics.nc4_nearest_class_center_agreement` (scores
Wz + b, distances from the differences z − μ_c; lowest class index on ties). Outside that band the
fast order is the exact order, so the result equals the direct formula's.

**Merging.** Partial accumulators of the same pass add (counts, sums; traces, G, agreements,
residuals). A second pass needs the first pass's totals: every worker starts its second pass from
the same merged first pass (:meth:`MetricsAccumulator.next_pass` with ``reference``).

The in-memory :func:`ufm.metrics.all_metrics` runs both passes over chunks of the matrix; a chunk
holds :data:`CHUNK_BYTES` of float64, so a float32 input is never copied whole.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterable

import numpy as np

from .arrays import is_torch_tensor, to_numpy
from .labels import check_num_classes, validate_labels
from .streaming import _check_rows, _torch, feature_rows
from .statistics import ClassStatistics, WithinProjection, between_directions

__all__ = ["CHUNK_BYTES", "KERNEL_CHOICES", "MetricsAccumulator", "fused_kernels", "stream_metrics"]

#: Up to this many classes, numpy class sums are per-class reductions of the rows; above, one
#: GEMM with the (K × chunk) label indicator.
MASK_MAX_CLASSES = 32

#: Bytes of one float64 work chunk of rows (about L2-cache sized, so gathers and GEMMs stay there).
CHUNK_BYTES = 2**20

#: Chunks per block: pass 1 sums a block of rows per class at once; pass 2 runs its per-sample
#: K-wide work (NC4 decisions, scores) once per block. Both spare the per-call overhead of many
#: small array operations.
BLOCK_CHUNKS = 16

#: Chunks per block of the compiled route, and the bound on its per-block outputs (the
#: products with [U | Wᵀ] and the K-wide decision tables, at most 4K float64 a sample).
FUSED_BLOCK_CHUNKS = 64
FUSED_BLOCK_BYTES = 8 * 2**20

_EPS = float(np.finfo(np.float64).eps)


_CONTROLLER: Any = None

#: Environment variable: ``0`` turns the compiled kernels of :mod:`ufm.fused_kernels` off.
FUSED_KERNELS_VARIABLE = "UFM_FUSED_KERNELS"

_FUSED: Any = None


#: Values of the ``kernels`` option.
KERNEL_CHOICES = ("auto", "compiled", "numpy")


def fused_kernels(kernels: str = "auto") -> Any:
    """The compiled kernels (the module :mod:`ufm.fused_kernels`) for the option ``kernels``.

    ``"auto"``: the kernels when numba imports and ``UFM_FUSED_KERNELS`` is not ``0``, else
    None; ``"numpy"``: None; ``"compiled"``: the kernels, or ``ModuleNotFoundError`` without
    numba. None means the numpy route runs the passes (the same sums, in another order).
    """
    global _FUSED
    if kernels == "numpy":
        return None
    if kernels == "auto" and os.environ.get(FUSED_KERNELS_VARIABLE, "1").strip() == "0":
        return None
    if _FUSED is None:
        try:
            from . import fused_kernels as module
        except ImportError:
            module = False
        _FUSED = module
    if kernels == "compiled" and not _FUSED:
        raise ModuleNotFoundError(
            "kernels='compiled' needs the package numba (pip install numba); "
            "kernels='numpy' runs without it"
        )
    return _FUSED or None


def check_kernels(kernels: Any) -> str:
    """``kernels`` if it is one of :data:`KERNEL_CHOICES`, else ValueError naming it."""
    if not isinstance(kernels, str) or kernels not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {KERNEL_CHOICES}, got {kernels!r}")
    return kernels


def _single_blas_thread() -> Any:
    """Context manager: one BLAS thread for numpy (a cached threadpoolctl controller, ~10 µs)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def chunk_rows(dimension: int) -> int:
    """Rows of one float64 work chunk of features of dimension ``dimension``."""
    return max(32, CHUNK_BYTES // (8 * max(int(dimension), 1)))


def _nonfinite_rows_error(block: np.ndarray, name: str, start: int) -> ValueError:
    bad = int(block.size - np.count_nonzero(np.isfinite(block)))
    stop = start + block.shape[0] - 1
    if bad:
        return ValueError(
            f"{name} holds NaN or Inf entries ({bad} in samples {start}..{stop}); "
            "expected finite values"
        )
    return ValueError(
        f"{name} holds values too large for float64 sums (overflow in samples {start}..{stop})"
    )


class MetricsAccumulator:
    """Two mergeable streaming passes that give every docs/theory.md §3 metric of one layer.

    Usage with a loader that can be read twice (``model`` returns the features of the layer)::

        acc = MetricsAccumulator(K, weights=W, bias=b, rows=True)
        for x, y in loader:
            acc.update(model(x), y)          # pass 1: counts and class sums
        acc.next_pass()
        for x, y in loader:
            acc.update(model(x), y)          # pass 2: residuals, NC1.pinv, NC4, ERR
        report = acc.report()                # {metric ID: value}, as ufm.metrics.all_metrics

    Parameters
    ----------
    num_classes : int
        K ≥ 2.
    weights : array_like, shape (K, d), optional
        The last layer W (NC3, NC4.ncc, KAPPA, ERR).
    bias : array_like, shape (K,), optional
        The bias b (default 0; needs ``weights``).
    rows : bool
        Batches are (B, d), one sample per row (PyTorch's layout), instead of columns (d, B).
    negativity : bool
        Also compute NEG of the features read as pre-activations (two d×d Gram matrices,
        O(B d²) per batch); otherwise ``NEG`` is None.
    kernels : {"auto", "compiled", "numpy"}
        Who runs the passes over float32/float64 batches in host memory: the compiled kernels of
        :mod:`ufm.fused_kernels` (``"compiled"``; ``"auto"`` when numba is installed) or numpy
        (``"numpy"``; ``"auto"`` without numba). Both form the same float64 sums, in another
        order; the kernels read the data once per pass (about 2× faster on 60,000 × 512). Their
        first use in a process loads them (about 0.5 s; the first use on a machine compiles them,
        about 2 s, then they are cached on disk).

    Notes
    -----
    The first batch fixes the backend: numpy batches accumulate in numpy, torch batches on the
    tensor's device in float64 (only K-, d×K- and (p+2K)²-sized results move to the host). A
    float32/float64 torch batch on the CPU is read through its numpy view when the compiled
    kernels run (nothing is copied).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        weights: Any = None,
        bias: Any = None,
        rows: bool = False,
        negativity: bool = False,
        kernels: str = "auto",
    ) -> None:
        self.num_classes = check_num_classes(num_classes)
        self.kernels = check_kernels(kernels)
        if self.kernels == "compiled":
            fused_kernels("compiled")  # missing numba is reported here, before any batch
        if not isinstance(negativity, (bool, np.bool_)):
            raise TypeError(f"negativity must be True or False, got {negativity!r}")
        self.rows = _check_rows(rows)
        self.negativity = bool(negativity)
        if bias is not None and weights is None:
            raise ValueError("bias needs weights: give the last layer W together with its bias b")
        self._weights_input = weights
        self._bias_input = bias
        self.weights: np.ndarray | None = None
        self.bias: np.ndarray | None = None
        self.pass_number = 1
        self.dimension: int | None = None
        self._device: Any = None
        self._is_torch: bool | None = None
        self.counts = np.zeros(self.num_classes, dtype=np.int64)
        self._sums: Any = None
        self._gram: Any = None
        self._negative_gram: Any = None
        self._has_negative = False
        self._reference: dict[str, Any] | None = None

    # ------------------------------------------------------------------ state
    @property
    def num_samples(self) -> int:
        """Samples seen in the current pass."""
        return int(self.counts.sum())

    def __repr__(self) -> str:
        return (
            f"MetricsAccumulator(num_classes={self.num_classes}, dimension={self.dimension}, "
            f"pass={self.pass_number}, samples={self.num_samples}, rows={self.rows})"
        )

    def _zeros(self, *shape: int) -> Any:
        if self._is_torch:
            torch = _torch()
            return torch.zeros(shape, dtype=torch.float64, device=self._device)
        return np.zeros(shape)

    def _to_backend(self, array: np.ndarray) -> Any:
        if self._is_torch:
            torch = _torch()
            return torch.as_tensor(
                np.ascontiguousarray(array), dtype=torch.float64, device=self._device
            )
        return array

    def _initialize(self, dimension: int, batch: Any) -> None:
        self.dimension = dimension
        self._is_torch = is_torch_tensor(batch) and not self._host_view_of(batch)
        self._device = batch.device if self._is_torch else None
        if self._weights_input is not None:
            from .arrays import as_float64_matrix, as_float64_vector

            weights = as_float64_matrix(self._weights_input, "weights")
            if weights.shape != (self.num_classes, dimension):
                raise ValueError(
                    f"weights must have shape (K, d) = {(self.num_classes, dimension)} "
                    f"(one row w_c per class), got {weights.shape}"
                )
            self.weights = weights
            self.bias = (
                np.zeros(self.num_classes)
                if self._bias_input is None
                else as_float64_vector(self._bias_input, "bias", self.num_classes)
            )
        self._sums = self._zeros(self.num_classes, dimension)
        if self.negativity:
            self._gram = self._zeros(dimension, dimension)
            self._negative_gram = self._zeros(dimension, dimension)

    def _host_view_of(self, batch: Any) -> bool:
        """Whether the torch ``batch`` is read through its numpy view (CPU, float32/float64,
        compiled kernels in use)."""
        if self.negativity or batch.device.type != "cpu":
            return False
        torch = _torch()
        if batch.dtype not in (torch.float32, torch.float64):
            return False
        return fused_kernels(self.kernels) is not None

    def _batch_rows(self, features: Any, labels: Any) -> tuple[Any, np.ndarray, Any]:
        block = feature_rows(features, self.rows)
        size, dimension = int(block.shape[0]), int(block.shape[1])
        label_array = validate_labels(labels, self.num_classes, min_per_class=0)
        if label_array.shape[0] != size:
            axis = "rows" if self.rows else "columns"
            raise ValueError(
                f"features has {size} samples ({axis}) but labels has "
                f"{label_array.shape[0]} entries"
            )
        if self.dimension is None:
            self._initialize(dimension, block)
        elif dimension != self.dimension:
            raise ValueError(
                f"features has dimension d = {dimension} but earlier batches had "
                f"d = {self.dimension}"
            )
        if self._is_torch:
            torch = _torch()
            if not is_torch_tensor(block):
                block = torch.as_tensor(np.asarray(block))
            block = block.to(self._device)
            device_labels = torch.as_tensor(label_array, device=self._device)
        else:
            if is_torch_tensor(block):
                block = block.cpu()
                if block.dtype == _torch().bfloat16:  # no numpy dtype: widen (exactly)
                    block = block.to(_torch().float32)
                block = block.numpy()  # a view of a CPU tensor
            device_labels = label_array
        return block, label_array, device_labels

    # ------------------------------------------------------------------ passes
    def update(self, features: Any, labels: Any) -> "MetricsAccumulator":
        """Add one batch to the current pass.

        Parameters
        ----------
        features : numpy.ndarray or torch.Tensor, shape (B, d) if ``rows`` else (d, B)
            The batch's features, any real dtype (accumulated in float64).
        labels : array_like, shape (B,)
            Their classes 0..K-1.
        """
        block, label_array, device_labels = self._batch_rows(features, labels)
        if self._is_torch:
            self._update_blocks(block, label_array, device_labels)
        else:
            # the GEMMs are chunk-sized: BLAS threads would only wait on each other
            with _single_blas_thread():
                self._update_blocks(block, label_array, device_labels)
        return self

    def _fused_layout(self, block: Any) -> tuple[Any, str | None]:
        """(kernels, "rows" or "columns") when the compiled kernels can read ``block`` (numpy,
        float32 or float64, rows or columns contiguous), else (None, None)."""
        if self._is_torch or not isinstance(block, np.ndarray):
            return None, None
        if block.dtype not in (np.float32, np.float64):
            return None, None
        if self.pass_number == 1 and self.negativity:
            return None, None  # the Gram matrices of NEG want the float64 chunk anyway
        kernels = fused_kernels(self.kernels)
        if kernels is None:
            return None, None
        if block.flags.c_contiguous:
            return kernels, "rows"
        if block.T.flags.c_contiguous:
            return kernels, "columns"
        return None, None

    def _update_blocks(self, block: Any, label_array: np.ndarray, device_labels: Any) -> None:
        rows = chunk_rows(self.dimension)
        step = rows * BLOCK_CHUNKS
        counts = np.bincount(label_array, minlength=self.num_classes)
        kernels, layout = self._fused_layout(block)
        if kernels is not None:
            block = block.view(np.ndarray) if type(block) is not np.ndarray else block  # memmap
            # the kernels keep no chunk-sized temporaries but the per-sample products (at most
            # 4K floats a sample): larger steps spare per-call work, within FUSED_BLOCK_BYTES
            # (K = 10, d = 512: 16,384 rows)
            step = max(rows, min(rows * FUSED_BLOCK_CHUNKS,
                                 FUSED_BLOCK_BYTES // (32 * self.num_classes)))
        for start in range(0, block.shape[0], step):
            stop = min(start + step, block.shape[0])
            # NaN/Inf propagate silently into the chunk sums, where they are caught and named
            with np.errstate(invalid="ignore", over="ignore"):
                if kernels is not None:
                    fused_pass = (self._first_pass_fused if self.pass_number == 1
                                  else self._second_pass_fused)
                    fused_pass(kernels, layout, block, label_array[start:stop], start, stop)
                elif self.pass_number == 1:
                    self._first_pass_chunk(block[start:stop], device_labels[start:stop], start)
                else:
                    self._second_pass_chunk(
                        block[start:stop], device_labels[start:stop], label_array[start:stop], start
                    )
        self.counts += counts

    def _float64(self, chunk: Any) -> Any:
        if self._is_torch:
            return chunk.to(dtype=_torch().float64)
        return np.asarray(chunk, dtype=np.float64)

    def _indicator(self, labels: Any, size: int) -> Any:
        if self._is_torch:
            torch = _torch()
            indicator = torch.zeros(
                (self.num_classes, size), dtype=torch.float64, device=self._device
            )
            return indicator.scatter_(0, labels[None, :], 1.0)
        indicator = np.zeros((self.num_classes, size))
        indicator[labels, np.arange(size)] = 1.0
        return indicator

    def _check_finite(self, value: Any, chunk: Any, start: int) -> None:
        finite = (
            bool(_torch().isfinite(value).all())
            if self._is_torch
            else bool(np.all(np.isfinite(value)))
        )
        if not finite:
            raise _nonfinite_rows_error(
                np.asarray(to_numpy(self._float64(chunk))), "features", start
            )

    def _class_sums(self, chunk: Any, labels: Any) -> tuple[Any, Any]:
        """(float64 chunk or None, (K, d) class sums of the chunk)."""
        if not self._is_torch and not self.negativity and self.num_classes <= MASK_MAX_CLASSES:
            # per-class float64 reductions of the input rows: no float64 copy of the chunk
            sums = np.empty((self.num_classes, chunk.shape[1]))
            for c in range(self.num_classes):
                np.add.reduce(chunk[labels == c], axis=0, dtype=np.float64, out=sums[c])
            return None, sums
        values = self._float64(chunk)
        return values, self._indicator(labels, values.shape[0]) @ values

    def _first_pass_chunk(self, chunk: Any, labels: Any, start: int) -> None:
        values, partial = self._class_sums(chunk, labels)
        # A NaN or Inf anywhere in the chunk makes its class sums non-finite (0·Inf = NaN in the
        # other rows): the check costs O(Kd) instead of a pass over the chunk.
        self._check_finite(partial, chunk, start)
        self._sums += partial
        if self.negativity:
            self._gram += values.T @ values
            negative = values.clamp(max=0.0) if self._is_torch else np.minimum(values, 0.0)
            self._has_negative = self._has_negative or bool((negative != 0).any())
            self._negative_gram += negative.T @ negative

    def _first_pass_fused(
        self, kernels: Any, layout: str, block: np.ndarray, labels: np.ndarray, start: int,
        stop: int
    ) -> None:
        """Pass 1 of the samples start..stop−1 of a numpy block with the compiled kernels:
        class sums read in the input's dtype, one sweep. (The column kernels take the whole
        contiguous (d, N) array and the sample range, so that they read it with unit stride.)"""
        chunk = block[start:stop]
        if layout == "rows":
            partial = np.zeros((self.num_classes, self.dimension))
            kernels.class_sums_rows(chunk, labels, partial)
        else:
            transposed = np.zeros((self.dimension, self.num_classes))
            kernels.class_sums_columns(block.T, start, stop, labels, transposed)
            partial = transposed.T
        self._check_finite(partial, chunk, start)
        self._sums += partial

    def _second_pass_fused(
        self, kernels: Any, layout: str, block: np.ndarray, labels: np.ndarray, start: int,
        stop: int
    ) -> None:
        """Pass 2 of the samples start..stop−1 of a numpy block with the compiled kernels:
        residuals, squares and the products [U | Wᵀ]ᵀR in one sweep (rows) or a sweep and one
        BLAS product (columns), then the NC4 decisions and ERR sample by sample."""
        chunk = block[start:stop]
        size = chunk.shape[0]
        product = self._product_transposed
        squares = np.empty(size)
        if layout == "rows":
            columns = np.empty((product.shape[0], size))
            kernels.residual_products_rows(chunk, labels, self._means_rows, product, columns,
                                           squares)
        else:
            # pieces of 4 MiB of float64 residuals (d = 512: 1,024 samples); smaller pieces make
            # the narrow BLAS product and the per-feature loops of the kernel less efficient
            columns = np.empty((product.shape[0], size))
            step = 4 * chunk_rows(self.dimension)
            buffer = np.empty((self.dimension, min(step, size)))
            for first in range(0, size, step):
                last = min(first + step, size)
                residuals = buffer if last - first == buffer.shape[1] else np.empty(
                    (self.dimension, last - first))
                kernels.residuals_columns(block.T, start + first, labels[first:last],
                                          self._means_columns, residuals, squares[first:last])
                np.matmul(product, residuals, out=columns[:, first:last])
        self._check_finite(squares, chunk, start)
        self._squares += np.bincount(labels, weights=squares, minlength=self.num_classes)
        p = self._reference["directions"].shape[1]
        self._projected += columns[:p] @ columns[:p].T
        if self.weights is None:
            return
        unsure = np.empty(size, dtype=np.int64)
        scale = 16.0 * (self.dimension + 4) * _EPS
        # (n, K) row-major products for the per-sample decisions: (Uᵀr)ᵀUᵀμ_c by BLAS, W r
        on_means = columns[:p].T @ self._means_in_directions
        raw_scores = np.ascontiguousarray(columns[p:].T)
        agreements, residual, band = kernels.nc4_decisions(
            on_means, raw_scores, labels, self._pair_distances, self._mean_scores, squares,
            scale, self._mean_norm, self._weight_norm, self._bias_max, unsure,
        )
        if band:
            agreements += self._exact_agreements(self._float64(chunk[unsure[:band]]))
            self._rechecked += band
        self._agreements += agreements
        self._residual += residual

    def next_pass(self, reference: "MetricsAccumulator | None" = None) -> "MetricsAccumulator":
        """End pass 1 and start pass 2 from the class means of ``reference`` (default: this
        accumulator's own pass 1; give the merged pass 1 of all workers when the data are split).

        Raises
        ------
        ValueError
            If this accumulator is not in pass 1, or a class has no sample in the reference.
        """
        source = self if reference is None else reference
        if self.pass_number != 1 or source.pass_number != 1:
            raise ValueError("next_pass: both accumulators must be in pass 1")
        if source.dimension is None:
            raise ValueError("next_pass: pass 1 has seen no samples")
        if source.num_classes != self.num_classes:
            raise ValueError(
                f"next_pass: the reference has K = {source.num_classes}, this accumulator "
                f"K = {self.num_classes}"
            )
        empty = np.flatnonzero(source.counts < 1)
        if empty.size:
            raise ValueError(
                f"labels: every class needs at least 1 sample; class {int(empty[0])} has none "
                "in pass 1"
            )
        if self.dimension is None:
            self.dimension = source.dimension
            self._is_torch, self._device = source._is_torch, source._device
            self.weights, self.bias = source.weights, source.bias
        sums = np.asarray(to_numpy(source._sums), dtype=np.float64)
        means = (sums / source.counts[:, None]).T  # (d, K)
        directions, _ = between_directions(means)
        reference_state: dict[str, Any] = {
            "means": means,
            "counts": source.counts.copy(),
            "directions": directions,
            "gram": None if source._gram is None else np.asarray(to_numpy(source._gram)),
            "negative_gram": (
                None
                if source._negative_gram is None
                else np.asarray(to_numpy(source._negative_gram))
            ),
            "has_negative": source._has_negative,
        }
        self._reference = reference_state
        self.pass_number = 2
        k = self.num_classes
        self.counts = np.zeros(k, dtype=np.int64)
        self._squares = self._zeros(k)
        self._projected = self._zeros(directions.shape[1], directions.shape[1])
        self._agreements = 0
        self._residual = 0.0
        self._rechecked = 0
        # One GEMM per chunk with [U | Wᵀ]; the distances to the centres need rᵀ(μ_c − μ_y) only,
        # and every μ_c − μ_y lies in span(U), so rᵀ(μ_c − μ_y) = (Uᵀr)ᵀUᵀ(μ_c − μ_y).
        blocks = [directions]
        if self.weights is not None:
            blocks.append(self.weights.T)
        self._product = self._to_backend(np.concatenate(blocks, axis=1))
        self._product_transposed = np.ascontiguousarray(np.concatenate(blocks, axis=1).T)
        self._means_in_directions = self._to_backend(directions.T @ means)  # (p, K)
        self._means_rows = self._to_backend(np.ascontiguousarray(means.T))
        self._means_columns = np.ascontiguousarray(means)
        mean_norm = float(np.max(np.linalg.norm(means, axis=0)))
        self._mean_norm = mean_norm
        if self.weights is not None:
            # class-pair tables: ‖μ_y − μ_c‖² and the scores of the means, Wμ_y + b
            differences = means.T[:, None, :] - means.T[None, :, :]
            self._pair_distances = self._to_backend(np.sum(differences**2, axis=2))
            self._mean_scores = self._to_backend(means.T @ self.weights.T + self.bias[None, :])
            self._weight_norm = float(np.max(np.linalg.norm(self.weights, axis=1)))
            self._bias_max = float(np.max(np.abs(self.bias)))
        return self

    def _second_pass_chunk(
        self, chunk: Any, labels: Any, label_array: np.ndarray, start: int
    ) -> None:
        p = self._reference["directions"].shape[1]
        if self._is_torch:
            columns, squares = self._residual_products_torch(chunk, labels)
            self._check_finite(squares, chunk, start)
            self._squares.index_add_(0, labels, squares)
        else:
            columns, squares = self._residual_products_numpy(chunk, labels)
            self._check_finite(squares, chunk, start)
            self._squares += np.bincount(label_array, weights=squares, minlength=self.num_classes)
        self._projected += columns[:p] @ columns[:p].T
        if self.weights is not None:
            self._decide_by_columns(chunk, labels, columns, squares)

    def _residual_products_numpy(self, chunk: Any, labels: np.ndarray) -> tuple[Any, Any]:
        """[U | Wᵀ]ᵀ(z − μ_y) as columns (p + K, B) and ‖z − μ_y‖² (B,) of a numpy block.

        The d-wide work runs in cache-sized pieces; [U | Wᵀ]ᵀRᵀ is about twice as fast as
        R[U | Wᵀ] for so few columns, and the K-wide work after it wants this layout."""
        size, step = chunk.shape[0], chunk_rows(self.dimension)
        columns = np.empty((self._product.shape[1], size))
        piece = np.empty((self._product.shape[1], step))
        squares = np.empty(size)
        for first in range(0, size, step):
            last = min(first + step, size)
            buffer = self._work_buffer(last - first)
            buffer[...] = chunk[first:last]  # a float64 copy (a mixed-dtype subtract is slower)
            buffer -= self._means_rows[labels[first:last]]
            np.einsum("ij,ij->i", buffer, buffer, out=squares[first:last])
            out = piece[:, : last - first]
            np.matmul(self._product_transposed, buffer.T, out=out)
            columns[:, first:last] = out
        return columns, squares

    def _residual_products_torch(self, chunk: Any, labels: Any) -> tuple[Any, Any]:
        """The same for a tensor block, on its device: cache-sized pieces on the CPU, the block
        at once on an accelerator (no cache to fit, fewer launches)."""
        torch = _torch()
        size = chunk.shape[0]
        step = chunk_rows(self.dimension) if self._device.type == "cpu" else size
        width = self._product.shape[1]
        product = torch.empty((size, width), dtype=torch.float64, device=self._device)
        squares = torch.empty(size, dtype=torch.float64, device=self._device)
        for first in range(0, size, step):
            last = min(first + step, size)
            residuals = chunk[first:last].to(torch.float64) - self._means_rows[labels[first:last]]
            squares[first:last] = (residuals * residuals).sum(dim=1)
            torch.matmul(residuals, self._product, out=product[first:last])
        return product.T, squares

    def _decide_by_columns(self, chunk: Any, labels: Any, columns: Any, squares: Any) -> None:
        """NC4 decisions and ERR of a block from its products (p + K, B), classes along axis 0:
        every operation runs over B entries, K times (numpy arrays or tensors)."""
        p = self._reference["directions"].shape[1]
        size = columns.shape[1]
        rows_index = (
            _torch().arange(size, device=self._device) if self._is_torch else np.arange(size)
        )
        on_means = self._means_in_directions.T @ columns[:p]  # (K, B): (Uᵀr)ᵀUᵀμ_c
        own = on_means[labels, rows_index]
        # ‖z − μ_c‖² − ‖r‖² = ‖μ_y − μ_c‖² − 2 rᵀ(μ_c − μ_y)
        distances = self._pair_distances[:, labels] - 2.0 * (on_means - own)
        scores = columns[p:] + self._mean_scores.T[:, labels]
        nearest, near_gap = _best_and_gap_by_column(distances, smallest=True)
        predicted, score_gap = _best_and_gap_by_column(scores, smallest=False)
        scores[labels, rows_index] -= 1.0
        self._count_decisions(chunk, nearest, predicted, near_gap, score_gap, squares, scores)

    def _count_decisions(
        self,
        chunk: Any,
        nearest: Any,
        predicted: Any,
        near_gap: Any,
        score_gap: Any,
        squares: Any,
        scores: Any,
    ) -> None:
        """Agreements (near ties re-checked directly) and the squared residual of the scores."""
        norms = squares**0.5
        scale = 16.0 * (self.dimension + 4) * _EPS
        distance_bound = scale * (norms + 2.0 * self._mean_norm) ** 2
        score_bound = scale * (self._weight_norm * (norms + self._mean_norm) + self._bias_max)
        agree = nearest == predicted
        unsure = (near_gap <= distance_bound) | (score_gap <= score_bound)
        if self._is_torch:
            unsure_rows = _torch().nonzero(unsure).flatten()
            count = int(unsure_rows.numel())
        else:
            unsure_rows = np.flatnonzero(unsure)
            count = int(unsure_rows.size)
        agreements = int(agree.sum()) - int(agree[unsure_rows].sum()) if count else int(agree.sum())
        if count:
            agreements += self._exact_agreements(self._float64(chunk[unsure_rows]))
            self._rechecked += count
        self._agreements += agreements
        self._residual += float((scores * scores).sum())

    def _work_buffer(self, size: int) -> np.ndarray:
        buffer = getattr(self, "_buffer", None)
        if buffer is None or buffer.shape[0] < size:
            buffer = self._buffer = np.empty(
                (max(size, chunk_rows(self.dimension)), self.dimension)
            )
        return buffer[:size]

    def _exact_agreements(self, samples: Any) -> int:
        """Agreements of argmax(Wz + b) and argmin_c ‖z − μ_c‖² computed directly (rows z)."""
        means = self._means_rows
        if self._is_torch:
            torch = _torch()
            weights = torch.as_tensor(self.weights, device=self._device)
            bias = torch.as_tensor(self.bias, device=self._device)
            scores = samples @ weights.T + bias
            distances = torch.stack(
                [((samples - means[c]) ** 2).sum(dim=1) for c in range(self.num_classes)], dim=1
            )
            return int((scores.argmax(dim=1) == distances.argmin(dim=1)).sum())
        scores = samples @ self.weights.T + self.bias
        distances = np.stack(
            [np.sum((samples - means[c]) ** 2, axis=1) for c in range(self.num_classes)], axis=1
        )
        return int(np.count_nonzero(scores.argmax(axis=1) == distances.argmin(axis=1)))

    # ------------------------------------------------------------------ merging
    def merge(self, other: "MetricsAccumulator") -> "MetricsAccumulator":
        """Add the samples of ``other`` (same K, same pass; in pass 2, the same reference)."""
        if not isinstance(other, MetricsAccumulator):
            raise TypeError(f"other must be a MetricsAccumulator, got {type(other).__name__}")
        if other.num_classes != self.num_classes or other.pass_number != self.pass_number:
            raise ValueError(
                "merge: accumulators must have the same K and be in the same pass, got "
                f"K = {self.num_classes}/{other.num_classes}, "
                f"pass {self.pass_number}/{other.pass_number}"
            )
        if other.dimension is None:
            return self
        if self.dimension is None and self.pass_number == 1:
            self._initialize(other.dimension, other._sums)
        if other.dimension != self.dimension:
            raise ValueError(
                f"merge: dimensions differ, d = {self.dimension} and d = {other.dimension}"
            )
        if self.pass_number == 1:
            self._sums += self._to_backend(np.asarray(to_numpy(other._sums)))
            if self.negativity and other.negativity:
                self._gram += self._to_backend(np.asarray(to_numpy(other._gram)))
                self._negative_gram += self._to_backend(np.asarray(to_numpy(other._negative_gram)))
                self._has_negative = self._has_negative or other._has_negative
        else:
            if not np.array_equal(self._reference["means"], other._reference["means"]):
                raise ValueError(
                    "merge: second passes must start from the same first pass "
                    "(next_pass(reference=...))"
                )
            self._squares += self._to_backend(np.asarray(to_numpy(other._squares)))
            self._projected += self._to_backend(np.asarray(to_numpy(other._projected)))
            self._agreements += other._agreements
            self._residual += other._residual
            self._rechecked += other._rechecked
        self.counts += other.counts
        return self

    # ------------------------------------------------------------------ results
    def statistics(self) -> ClassStatistics:
        """The class statistics after pass 2: means, counts, per-class sums of squared residuals
        and S_W on the between-class directions (no d×d scatter)."""
        self._check_finished()
        reference = self._reference
        return ClassStatistics(
            means=reference["means"],
            counts=reference["counts"],
            within_scatter=None,
            within_sum_of_squares=np.asarray(to_numpy(self._squares), dtype=np.float64),
            within_projection=WithinProjection(
                reference["directions"], np.asarray(to_numpy(self._projected), dtype=np.float64)
            ),
        )

    def _check_finished(self) -> None:
        if self.pass_number != 2:
            raise ValueError(
                "the report needs both passes: call next_pass() and feed the batches again"
            )
        if not np.array_equal(self.counts, self._reference["counts"]):
            raise ValueError(
                "pass 2 saw other samples than pass 1 (class counts "
                f"{self.counts.tolist()} against {self._reference['counts'].tolist()}); feed the "
                "same batches twice"
            )

    @property
    def rechecked(self) -> int:
        """Samples of pass 2 whose NC4 decision was re-checked with the direct formulas."""
        return int(getattr(self, "_rechecked", 0))

    def report(
        self,
        *,
        center: bool | None = None,
        rank_rtol: float | None = None,
        undefined: str = "raise",
    ) -> dict[str, Any]:
        """Every metric, by ID, as :func:`ufm.metrics.all_metrics` returns them.

        Parameters
        ----------
        center, rank_rtol, undefined
            As in :func:`ufm.metrics.all_metrics`.
        """
        negativity = None
        if self.negativity:
            negativity = {
                "gram": self._reference["gram"],
                "negative_gram": self._reference["negative_gram"],
                "has_negative": self._reference["has_negative"],
            }
        return self._report(negativity, center=center, rank_rtol=rank_rtol, undefined=undefined)

    def _report(
        self, negativity: Any, *, center: bool | None, rank_rtol: float | None, undefined: str
    ) -> dict[str, Any]:
        """The report with NEG from ``negativity`` (the Gram matrices of pass 1, a function, or
        None); :func:`ufm.metrics.all_metrics` gives the in-memory smaller-side NEG here."""
        from .metrics import _report_from_statistics

        self._check_finished()
        output = None
        if self.weights is not None:
            output = {"agreements": self._agreements, "residual": self._residual}
        return _report_from_statistics(
            self.statistics(),
            weights=self.weights,
            bias=None if self._bias_input is None else self.bias,
            output=output,
            negativity=negativity,
            center=center,
            rank_rtol=rank_rtol,
            undefined=undefined,
        )


def _best_and_gap_by_column(values: Any, *, smallest: bool) -> tuple[Any, Any]:
    """Per column of ``values`` (K, B), numpy or torch: the index of the best entry (lowest on
    ties) and the gap to the runner-up (0 on a tie), in K vectorized sweeps over the B columns."""
    backend = _torch() if is_torch_tensor(values) else np
    sign = -1.0 if smallest else 1.0
    top = sign * values[0]
    second = backend.full_like(top, -math.inf)
    best = backend.zeros_like(top, dtype=backend.int64)
    for index in range(1, values.shape[0]):
        row = sign * values[index]
        better = row > top
        second = backend.where(better, top, backend.maximum(second, row))
        best[better] = index
        top = backend.maximum(top, row)
    return best, top - second


def stream_metrics(
    batches: Callable[[], Iterable[tuple[Any, Any]]] | Iterable[tuple[Any, Any]],
    num_classes: int,
    *,
    weights: Any = None,
    bias: Any = None,
    rows: bool = False,
    negativity: bool = False,
    kernels: str = "auto",
    center: bool | None = None,
    rank_rtol: float | None = None,
    undefined: str = "raise",
) -> dict[str, Any]:
    """Every docs/theory.md §3 metric of streamed batches, in the two passes of
    :class:`MetricsAccumulator`.

    Parameters
    ----------
    batches : callable returning an iterable of (features, labels), or a re-iterable
        The batches, read twice: a function called once per pass (e.g. ``lambda: ((model(x), y)
        for x, y in loader)``) or a sequence/DataLoader that can be iterated twice. A one-shot
        iterator (a generator object) is refused, since it cannot be read again.
    num_classes : int
        K.
    weights, bias, rows, negativity, kernels
        As in :class:`MetricsAccumulator`.
    center, rank_rtol, undefined
        As in :func:`ufm.metrics.all_metrics`.

    Returns
    -------
    dict
        Metric ID → value, as :func:`ufm.metrics.all_metrics`.
    """
    if callable(batches):
        source = batches
    else:
        if iter(batches) is batches:
            raise TypeError(
                "batches is a one-shot iterator; pass a function that returns the batches, or a "
                "sequence or DataLoader that can be read twice"
            )
        source = lambda: batches  # noqa: E731
    accumulator = MetricsAccumulator(
        num_classes, weights=weights, bias=bias, rows=rows, negativity=negativity,
        kernels=kernels,
    )
    for features, labels in source():
        accumulator.update(features, labels)
    accumulator.next_pass()
    for features, labels in source():
        accumulator.update(features, labels)
    return accumulator.report(center=center, rank_rtol=rank_rtol, undefined=undefined)
