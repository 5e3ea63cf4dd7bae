"""Input checking and conversion shared by every ``ufm`` module.

Features may come as numpy arrays or torch tensors (CPU or CUDA). Nothing here imports torch
unless a tensor is actually passed, so ``ufm`` works without torch being importable.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def is_torch_tensor(value: Any) -> bool:
    """Return True if ``value`` is a ``torch.Tensor`` (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def to_numpy(value: Any) -> np.ndarray:
    """Return ``value`` as a numpy array; a torch tensor is detached and moved to the CPU."""
    if is_torch_tensor(value):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def as_float64_matrix(value: Any, name: str, *, allow_empty: bool = False) -> np.ndarray:
    """Return ``value`` as a finite, 2-D float64 numpy array.

    Parameters
    ----------
    value : array_like or torch.Tensor
        The matrix.
    name : str
        The argument's name, used in error messages.
    allow_empty : bool
        Accept a matrix with a zero dimension.

    Raises
    ------
    TypeError
        If the values are not real numbers.
    ValueError
        If the array is not 2-D, is empty, or holds NaN or Inf.
    """
    array = to_numpy(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {array.shape}")
    if not allow_empty and array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    array = np.asarray(array, dtype=np.float64)
    check_finite(array, name)
    return array


def as_float64_vector(value: Any, name: str, length: int | None = None) -> np.ndarray:
    """Return ``value`` as a finite, 1-D float64 numpy array (of ``length`` entries if given)."""
    array = to_numpy(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector, got shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} must have {length} entries, got {array.shape[0]}")
    check_finite(array, name)
    return array


def check_finite(array: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if ``array`` holds NaN or Inf."""
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} holds {bad} NaN or Inf entries; expected finite values")


def check_positive_scalar(value: Any, name: str, *, allow_zero: bool = True) -> float:
    """Return ``value`` as a float, raising ``ValueError`` if negative (or zero) or not finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not np.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    if number < 0 or (not allow_zero and number == 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {number}")
    return number
