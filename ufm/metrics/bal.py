"""BAL of docs/theory.md §3: balancedness of consecutive layers (BAL.op, BAL.fro, BAL.rel_op, BAL.rel_fro,
BAL.diag), its weighted form BAL.weighted and the per-block penalties BAL.scalar.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..arrays import check_positive_scalar, is_torch_tensor, to_numpy
from ..streaming import _torch, chunk_columns, feature_matrix_shape
from .common import UndefinedMetricError, _as_float64_chunk, _check_chunk_finite


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
