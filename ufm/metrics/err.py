"""ERR of docs/theory.md §3: the fit error ‖F − Y‖_F and the data term of the loss convention.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..arrays import is_torch_tensor
from ..labels import validate_labels
from ..streaming import _torch, chunk_columns, device_tensor, feature_matrix_shape
from .common import _as_float64_chunk, _check_chunk_finite, _columns


@dataclass(frozen=True)
class FitError:
    """Training error of the outputs, docs/theory.md §3 ``ERR``.

    Attributes
    ----------
    frobenius : float
        ‖F − Y‖_F (ε1 of docs/theory.md §5), ``ERR``.
    data_term : float
        (1/(2N))‖F − Y‖_F², the data term of the loss convention §1.2, ``ERR.data``.
    """

    frobenius: float
    data_term: float

    def to_dict(self) -> dict[str, float]:
        """JSON-serializable dictionary of the fields."""
        return asdict(self)


def fit_error(outputs: Any, labels: Any, *, rows: bool = False) -> FitError:
    """Fit error ‖F − Y‖_F and data term (1/(2N))‖F − Y‖_F², docs/theory.md §3 ``ERR``.

    Parameters
    ----------
    outputs : numpy.ndarray or torch.Tensor, shape (K, N), or (N, K) with ``rows=True``
        Network outputs F; K is its number of rows (columns with ``rows=True``).
    labels : array_like, shape (N,)
        Classes 0..K-1 defining the one-hot targets Y (docs/theory.md §1.1).
    rows : bool
        ``outputs`` holds one sample per row (a model's output batch).
    """
    outputs = _columns(outputs, rows)
    num_classes, num_samples = feature_matrix_shape(outputs, "outputs")
    label_array = validate_labels(labels, num_classes, min_per_class=0)
    if label_array.shape[0] != num_samples:
        raise ValueError(
            f"outputs has N = {num_samples} columns but labels has {label_array.shape[0]} entries"
        )
    step = chunk_columns(num_classes)
    total = 0.0
    for start in range(0, num_samples, step):
        stop = min(start + step, num_samples)
        chunk = _as_float64_chunk(outputs, start, stop)
        _check_chunk_finite(chunk, "outputs", start)
        if is_torch_tensor(chunk):
            torch = _torch()
            chunk = chunk.clone()
            rows = device_tensor(label_array[start:stop], chunk.device)
            chunk[rows, torch.arange(stop - start, device=chunk.device)] -= 1.0
            total += float((chunk * chunk).sum())
        else:
            chunk = np.array(chunk, copy=True)
            chunk[label_array[start:stop], np.arange(stop - start)] -= 1.0
            total += float(np.sum(chunk * chunk))
    return FitError(frobenius=math.sqrt(total), data_term=total / (2.0 * num_samples))
