"""Small linear-algebra helpers shared by the statement modules (all float64, no global state)."""

from __future__ import annotations

import numpy as np


def relu(matrix: np.ndarray) -> np.ndarray:
    """Return σ(X) = max(X, 0) entrywise."""
    return np.maximum(matrix, 0.0)


def singular_values(matrix: np.ndarray) -> np.ndarray:
    """Return the singular values of ``matrix`` in decreasing order (empty for an empty matrix)."""
    if matrix.size == 0:
        return np.zeros(0)
    return np.linalg.svd(matrix, compute_uv=False)


def nuclear_norm(matrix: np.ndarray) -> float:
    """Return ‖X‖_* = Σ_i s_i(X)."""
    return float(np.sum(singular_values(matrix)))


def schatten_power(matrix: np.ndarray, power: float) -> float:
    """Return ‖X‖_{S_p}^p = Σ_i s_i(X)^p."""
    return float(np.sum(singular_values(matrix) ** power))


def operator_norm(matrix: np.ndarray) -> float:
    """Return ‖X‖_op = s_1(X) (0 for an empty matrix)."""
    values = singular_values(matrix)
    return float(values[0]) if values.size else 0.0


def frobenius_squared(matrix: np.ndarray) -> float:
    """Return ‖X‖_F²."""
    return float(np.sum(np.square(matrix)))


def random_orthonormal(generator: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    """Return a ``rows × columns`` matrix with orthonormal columns (Haar-distributed), rows ≥ columns."""
    if columns > rows:
        raise ValueError(f"need rows >= columns, got {rows} < {columns}")
    if columns == 0:
        return np.zeros((rows, 0))
    gaussian = generator.standard_normal((rows, columns))
    q, r = np.linalg.qr(gaussian)
    return q * np.sign(np.diag(r))


def one_hot_targets(num_classes: int, per_class: int) -> np.ndarray:
    """Return Y = I_K ⊗ 1_nᵀ (docs/theory.md §1.1), shape (K, K·n)."""
    return np.kron(np.eye(num_classes), np.ones((1, per_class)))
