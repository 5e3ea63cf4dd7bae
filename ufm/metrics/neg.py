"""NEG of docs/theory.md §3: the negativity ‖H − σ(H)‖_op / ‖H‖_op of a pre-activation matrix.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..arrays import is_torch_tensor
from ..statistics import ClassStatistics
from ..streaming import feature_matrix_shape
from .common import (
    UndefinedMetricError,
    _any_nonzero,
    _columns,
    _float64_chunks,
    _gram_smaller_side,
    _largest_eigenvalue,
)


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
