"""Class layouts, targets and validation of label arrays (docs/theory.md §1.1).

Labels are integer arrays of shape (N,) with values 0..K-1. Balanced layouts are ordered by
class: sample (c, i) is column c·n + i (0-based), so the one-hot target is Y = I_K ⊗ 1_nᵀ.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .arrays import to_numpy


def validate_labels(
    labels: Any,
    num_classes: int | None = None,
    *,
    min_per_class: int = 1,
    name: str = "labels",
) -> np.ndarray:
    """Check a label array and return it as a 1-D int64 numpy array.

    Parameters
    ----------
    labels : array_like or torch.Tensor, shape (N,)
        Integer class indices in 0..K-1.
    num_classes : int, optional
        K. If omitted, K = max(labels) + 1.
    min_per_class : int
        Every class 0..K-1 must have at least this many samples (0 allows empty classes; metrics
        that need a class mean use 1, those that need a within-class spread use 2).
    name : str
        The argument's name, used in error messages.

    Raises
    ------
    TypeError
        If the labels are not integers (floats, booleans, strings).
    ValueError
        If the array is not 1-D, is empty, has values outside 0..K-1, K < 2, or a class has fewer
        than ``min_per_class`` samples.
    """
    array = to_numpy(labels)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"{name} must be an integer array of class indices 0..K-1, got dtype {array.dtype}"
        )
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (N,), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    array = array.astype(np.int64, copy=False)
    low, high = int(array.min()), int(array.max())
    if num_classes is None:
        num_classes = high + 1
    num_classes = check_num_classes(num_classes)
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{name} must lie in 0..{num_classes - 1} (K = {num_classes}), "
            f"got values in {low}..{high}"
        )
    if min_per_class > 0:
        # Counts of the classes present only (O(N log N), nothing of size K): a stray label such as
        # 10⁹ makes K huge, and an array of K counts would take gigabytes before this error.
        present, counts = np.unique(array, return_counts=True)
        if present.size < num_classes or int(counts.min()) < min_per_class:
            shortfalls = _first_shortfalls(present, counts, num_classes, min_per_class)
            total = (num_classes - present.size) + int(np.count_nonzero(counts < min_per_class))
            detail = ", ".join(f"class {c}: {n}" for c, n in shortfalls)
            raise ValueError(
                f"{name}: every class needs at least {min_per_class} sample(s); {detail}"
                + (" ..." if total > len(shortfalls) else "")
            )
    return array


def _first_shortfalls(present: np.ndarray, counts: np.ndarray, num_classes: int,
                      min_per_class: int, limit: int = 5) -> list[tuple[int, int]]:
    """The first ``limit`` classes (in order) with fewer than ``min_per_class`` samples, as
    (class, count) pairs, from the sorted classes ``present`` and their ``counts``."""
    found: list[tuple[int, int]] = []
    expected = 0
    for value, count in zip(present.tolist(), counts.tolist()):
        while expected < value and len(found) < limit:  # classes with no sample
            found.append((expected, 0))
            expected += 1
        if len(found) >= limit:
            return found
        if count < min_per_class:
            found.append((value, count))
        expected = value + 1
    while expected < num_classes and len(found) < limit:
        found.append((expected, 0))
        expected += 1
    return found


def check_num_classes(num_classes: Any, name: str = "num_classes") -> int:
    """Return K as an int, raising ``ValueError`` if K < 2 or not an integer."""
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"{name} must be at least 2 (K >= 2 classes), got {num_classes}")
    return int(num_classes)


def class_counts(labels: Any, num_classes: int | None = None) -> np.ndarray:
    """Number of samples n_c of each class, shape (K,), int64."""
    array = validate_labels(labels, num_classes, min_per_class=0)
    k = int(num_classes) if num_classes is not None else int(array.max()) + 1
    return np.bincount(array, minlength=k).astype(np.int64)


def balanced_labels(num_classes: int, per_class: int) -> np.ndarray:
    """Labels of the balanced layout ordered by class: [0]*n + [1]*n + … + [K-1]*n, shape (K·n,)."""
    num_classes = check_num_classes(num_classes)
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
    return np.repeat(np.arange(num_classes, dtype=np.int64), int(per_class))


def labels_from_counts(counts: Sequence[int]) -> np.ndarray:
    """Labels ordered by class for (possibly unbalanced) class counts n_0, …, n_{K-1}."""
    counts_array = np.asarray(counts)
    if counts_array.ndim != 1 or not np.issubdtype(counts_array.dtype, np.integer):
        raise TypeError(f"counts must be a 1-D sequence of integers, got {counts!r}")
    check_num_classes(counts_array.size, "len(counts)")
    if np.any(counts_array < 1):
        raise ValueError(f"counts must all be >= 1, got {counts_array.tolist()}")
    return np.repeat(np.arange(counts_array.size, dtype=np.int64), counts_array)


def one_hot_targets(labels: Any, num_classes: int | None = None) -> np.ndarray:
    """One-hot targets Y ∈ {0,1}^{K×N}, Y[c, i] = 1 iff labels[i] = c (docs/theory.md §1.1).

    For the balanced layout ordered by class, Y = I_K ⊗ 1_nᵀ.
    """
    array = validate_labels(labels, num_classes, min_per_class=0)
    k = int(num_classes) if num_classes is not None else int(array.max()) + 1
    targets = np.zeros((k, array.size), dtype=np.float64)
    targets[array, np.arange(array.size)] = 1.0
    return targets


def plus_minus_one_targets(labels: Any, num_classes: int | None = None) -> np.ndarray:
    """±1 targets 2Y − 1_K1_Nᵀ ∈ {−1, +1}^{K×N}: +1 for the sample's class, −1 elsewhere."""
    return 2.0 * one_hot_targets(labels, num_classes) - 1.0
