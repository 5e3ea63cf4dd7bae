"""Machinery shared by the methods of :mod:`ufm.solvers`.

Model and option checks, evaluation of Φ and ∇Φ with floating-point warnings silenced, the
stationarity measure (:func:`stationarity_norm`), the predicted reference optimum
(:func:`predicted_reference`), the schedule of history records (:func:`log_spaced_iterations`),
the torch device (:func:`resolve_device`), the limit on BLAS threads, the progress bar and the
bookkeeping of a run.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
from threadpoolctl import threadpool_limits

from ..arrays import check_positive_scalar
from ..models import DeepLinearUFM, DeepUFM, LinearHead, ObjectiveParts, Parameters, UFM
from .results import History

__all__ = ["log_spaced_iterations", "predicted_reference", "resolve_device", "stationarity_norm"]

_MODEL_TYPES = (UFM, DeepLinearUFM, DeepUFM, LinearHead)


def log_spaced_iterations(max_iterations: int, points: int) -> np.ndarray:
    """Iterations 0 and about ``points`` log-spaced integers in [1, max_iterations], sorted, unique."""
    if points < 1 or max_iterations < 1:
        return np.array([0], dtype=np.int64)
    grid = np.unique(
        np.round(np.logspace(0.0, math.log10(max_iterations), points)).astype(np.int64)
    )
    return np.concatenate([[0], grid[grid <= max_iterations]])


def resolve_device(device: Any = "auto") -> Any:
    """``"auto"`` → ``torch.device("cuda")`` when CUDA is available, else ``torch.device("cpu")``."""
    import torch

    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _is_constrained(model: Any) -> bool:
    return bool(getattr(model, "nonneg_H1", False))


def _is_smooth(model: Any) -> bool:
    """True if Φ is smooth and unconstrained: no ReLU inside (DUFM with L = 1) and no bound."""
    if isinstance(model, DeepUFM):
        return model.num_layers == 1 and not model.nonneg_H1
    return True


def stationarity_norm(model: Any, params: Parameters, gradient: Parameters) -> float:
    """The stationarity measure used for stopping: ‖∇Φ(θ)‖ over all blocks.

    For ``nonneg_H1`` (constraint H₁ ≥ 0) the H₁ block is replaced by the natural residual
    min(H₁, ∇_{H₁}Φ) entrywise, which vanishes exactly at the KKT points of the bound constraint.
    """
    if not _is_constrained(model):
        return gradient.norm()
    squared = 0.0
    for name, block, grad in zip(gradient.block_names(), params.blocks(), gradient.blocks()):
        if name == "H1":
            residual = np.minimum(np.asarray(block), np.asarray(grad))
            squared += float(np.vdot(residual, residual))
        else:
            grad = np.asarray(grad)
            squared += float(np.vdot(grad, grad))
    return math.sqrt(squared)


def _stationarity_numpy(constrained: bool, params: Parameters, gradient: Parameters) -> float:
    """:func:`stationarity_norm` for float64 numpy Parameters of a checked model (the same
    value, bit for bit), without the generic block bookkeeping."""
    squared = 0.0
    if constrained:
        residual = np.minimum(params.features, gradient.features)
        squared += float(np.vdot(residual, residual))
        blocks = gradient.weights
    else:
        if gradient.features is not None:
            squared += float(np.vdot(gradient.features, gradient.features))
        blocks = gradient.weights
    for grad in blocks:
        squared += float(np.vdot(grad, grad))
    if gradient.bias is not None:
        squared += float(np.vdot(gradient.bias, gradient.bias))
    return math.sqrt(squared)


def _gradient_step(params: Parameters, alpha: float, gradient: Parameters) -> Parameters:
    """``params.axpy(alpha, gradient)`` for float64 numpy Parameters of one structure (the same
    blocks, bit for bit), without the structure checks of the public method."""
    features = None if params.features is None else params.features + alpha * gradient.features
    weights = tuple(w + alpha * g for w, g in zip(params.weights, gradient.weights))
    bias = None if params.bias is None else params.bias + alpha * gradient.bias
    return Parameters._unchecked(features, weights, bias)


def predicted_reference(model: Any) -> tuple[float | None, str | None]:
    """The predicted optimal loss of ``model`` and its kind (see :attr:`Solution.predicted_kind`).

    Uses :func:`ufm.optima.predict` (docs/theory.md §4.1–4.3). Returns ``(None, None)`` for models
    without a closed form (``LinearHead``) or with a zero penalty (the closed forms need λ > 0).
    """
    from .. import optima

    if isinstance(model, LinearHead):
        return None, None
    try:
        prediction = optima.predict(model)
    except (TypeError, ValueError):
        return None, None
    return float(prediction.optimal_loss), prediction.kind


def _check_smoothing(smoothing: Any) -> tuple[float, ...]:
    """The smoothing schedule of ``kink_lbfgs`` as a tuple of finite numbers > 0."""
    if isinstance(smoothing, (str, bytes)) or not isinstance(smoothing, Iterable):
        raise TypeError(f"smoothing must be a sequence of numbers > 0, got {smoothing!r}")
    return tuple(
        check_positive_scalar(value, f"smoothing[{index}]", allow_zero=False)
        for index, value in enumerate(smoothing)
    )


def _check_model(model: Any) -> None:
    if not isinstance(model, _MODEL_TYPES):
        raise TypeError(
            "model must be a ufm.models UFM, DeepLinearUFM, DeepUFM or LinearHead, "
            f"got {type(model).__name__}"
        )


def _check_integer_at_least(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int, checked to be an integer (not a bool) and ≥ ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _parts_penalty(parts: ObjectiveParts) -> float:
    return float(math.fsum(parts.penalties))


def _evaluate(model: Any, params: Parameters) -> tuple[float, Parameters]:
    """Φ and ∇Φ with floating-point warnings silenced (divergence is detected from the values)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return model.value_and_gradient(params)


def _evaluate_unchecked(model: Any, params: Parameters) -> tuple[float, Parameters]:
    """:func:`_evaluate` for float64 numpy Parameters already checked against ``model``."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return model._value_and_gradient_numpy(params)


def _objective_parts(model: Any, params: Parameters) -> ObjectiveParts:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        return model.objective(params)


def _blas_threads(count: int | None) -> Any:
    """Context manager limiting the BLAS threads of numpy/scipy to ``count`` (threadpoolctl).

    The objectives here are small matrices evaluated thousands of times; OpenBLAS worker
    threads then cost far more than they save (scipy's L-BFGS-B was measured 10–25× slower with
    two threads on a busy two-core machine). ``count=None`` leaves the libraries untouched. The
    previous limits are restored on exit.
    """
    if count is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=count, user_api="blas")


class _Progress:
    """A tqdm bar updated in blocks (cheap per iteration); a no-op when disabled."""

    def __init__(
        self, total: int, enabled: bool | None, description: str, auto_minimum: int = 10_000
    ) -> None:
        self.bar = None
        self.count = 0
        self.step = max(1, total // 500)
        if enabled is False or (enabled is None and total < auto_minimum):
            return
        from tqdm.auto import tqdm

        # enabled=None (auto): shown for long runs, and tqdm hides it when stderr is no terminal.
        self.bar = tqdm(
            total=total, desc=description, disable=None if enabled is None else False, leave=False
        )

    def update(self, iteration: int, loss: float | None = None) -> None:
        if self.bar is None or iteration - self.count < self.step:
            return
        self.bar.update(iteration - self.count)
        self.count = iteration
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.6g}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class _RunState:
    """Mutable bookkeeping shared by the method implementations."""

    start: float
    record_at: set
    history: History = field(default_factory=History)
    evaluations: int = 0
    basins: tuple = ()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
