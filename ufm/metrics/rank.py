"""RANK and KAPPA of docs/theory.md §3: numerical rank and condition number over the nonzero singular values.
"""

from __future__ import annotations

from typing import Any

from ..arrays import as_float64_matrix
from .common import UndefinedMetricError, _check_rtol, _rank_from_singular_values, _singular_values


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
