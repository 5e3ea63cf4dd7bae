"""Method ``"numpy_lbfgs"``: L-BFGS written in numpy on the flattened parameter vector.

Also the pieces that ``"kink_lbfgs"`` builds on: the flat objective and its trace (history
records, progress, callback), the compact L-BFGS memory and its search direction, Armijo
backtracking, the curvature test of new pairs, and the start of the flat methods (first record
and fixed-step GD warm-up).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg import lapack

from .common import (
    _RunState,
    _evaluate_unchecked,
    _is_constrained,
    _is_smooth,
    _objective_parts,
    _parts_penalty,
)
from .gradient_descent import _fixed_step_descent
from .scipy_lbfgs import _barzilai_borwein_polish


class _FlatObjective:
    """Φ and ∇Φ of a checked model on flat float64 vectors (``Parameters.flatten`` layout),
    through the model's fused unchecked evaluation; non-finite values are reported as such."""

    def __init__(self, model: Any, state: _RunState) -> None:
        self.model = model
        self.state = state

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = _evaluate_unchecked(self.model, self.model._unflatten_views(x))
        self.state.evaluations += 1
        return value, np.concatenate([block.ravel() for block in gradient.blocks()])


class _LbfgsMemory:
    """The last ``memory`` L-BFGS pairs (s_i, y_i) and the product −H∇Φ in compact form.

    H = γI + [S γY] M [S γY]ᵀ with M from R = triu(SᵀY), D = diag(SᵀY), γ = ⟨s, y⟩/⟨y, y⟩ of
    the newest pair (Byrd, Nocedal & Schnabel 1994, eq. 3.2): the same matrix as the two-loop
    recursion (Nocedal & Wright, Alg. 7.4). With a = Sᵀg, b = Yᵀg,

        H g = γg + S (A a − γR⁻ᵀb) − γ Y R⁻¹a,   A = R⁻ᵀ(D + γYᵀY)R⁻¹,

    where :meth:`add` forms R⁻¹ and A once per pair (k×k work), so that :meth:`direction` costs
    four matrix-vector products with the k stored rows of S and Y and a few k×k products,
    instead of 4k vector operations. The pairs are kept oldest first in a window that slides
    along a buffer of 2m rows (moved back to its start once every m pairs), so S and Y are
    contiguous views; SᵀY and YᵀY are extended by three matrix-vector products per new pair.
    """

    def __init__(self, size: int, memory: int) -> None:
        self.memory = memory
        self.s_rows = np.zeros((2 * memory, size))
        self.y_rows = np.zeros((2 * memory, size))
        self.start = 0  # rows start .. start + count − 1 of the buffers hold the pairs in use
        self.count = 0
        self.sy = np.zeros((memory, memory))  # sy[i, j] = ⟨s_i, y_j⟩, oldest first
        self.yy = np.zeros((memory, memory))  # yy[i, j] = ⟨y_i, y_j⟩, oldest first
        self.gamma = 1.0
        self.inverse = np.zeros((0, 0))  # R⁻¹
        self.middle = np.zeros((0, 0))  # A

    def __len__(self) -> int:
        return self.count

    def clear(self) -> None:
        self.start = self.count = 0

    def add(self, s: np.ndarray, y: np.ndarray) -> None:
        """Store a pair (the oldest is dropped when full); the caller checks ⟨s, y⟩ > 0."""
        memory, count = self.memory, self.count
        if count == memory:  # drop the oldest pair
            count -= 1
            self.start += 1
            self.sy[:count, :count] = self.sy[1:, 1:].copy()
            self.yy[:count, :count] = self.yy[1:, 1:].copy()
        end = self.start + count
        if end == 2 * memory:  # move the window back to the start of the buffers
            self.s_rows[:count] = self.s_rows[self.start : end]
            self.y_rows[:count] = self.y_rows[self.start : end]
            self.start, end = 0, count
        self.s_rows[end] = s
        self.y_rows[end] = y
        count += 1
        self.count = count
        s_block = self.s_rows[self.start : end + 1]
        y_block = self.y_rows[self.start : end + 1]
        self.sy[count - 1, :count] = y_block @ s  # ⟨s, y_j⟩
        self.sy[:count, count - 1] = s_block @ y  # ⟨s_i, y⟩
        self.yy[count - 1, :count] = self.yy[:count, count - 1] = y_block @ y
        sy = self.sy[:count, :count]
        gamma = sy[-1, -1] / self.yy[count - 1, count - 1]
        inverse, info = lapack.dtrtri(sy, lower=0)  # R⁻¹ from the upper triangle
        if info != 0:  # cannot happen with ⟨s_i, y_i⟩ > 0; kept as a guard
            raise np.linalg.LinAlgError(f"L-BFGS: triangular inverse failed (info {info})")
        inverse = np.triu(inverse)
        weighted = gamma * self.yy[:count, :count]
        weighted[np.diag_indices(count)] += np.diag(sy)
        self.middle = inverse.T @ (weighted @ inverse)
        self.inverse, self.gamma = inverse, gamma

    def direction(self, gradient: np.ndarray) -> np.ndarray:
        """−H·gradient (at least one pair stored)."""
        s_block = self.s_rows[self.start : self.start + self.count]
        y_block = self.y_rows[self.start : self.start + self.count]
        a, b = s_block @ gradient, y_block @ gradient
        gamma = self.gamma
        s_coefficients = self.middle @ a - gamma * (self.inverse.T @ b)
        y_coefficients = -gamma * (self.inverse @ a)
        return -(gamma * gradient + s_coefficients @ s_block + y_coefficients @ y_block)


class _FlatTrace:
    """History records (at the run's log-spaced iterations), progress and callback of the numpy
    methods that iterate on the flattened parameter vector."""

    def __init__(self, model, state, progress, callback) -> None:
        self.model, self.state, self.progress, self.callback = model, state, progress, callback

    def record(self, iteration: int, point: np.ndarray, value: float, gradient: np.ndarray) -> float:
        """‖∇Φ‖, with a history record at a scheduled (or non-finite) iteration."""
        norm = math.sqrt(float(gradient @ gradient))
        if iteration in self.state.record_at or not math.isfinite(norm):
            parts = _objective_parts(self.model, self.model._unflatten_views(point))
            self.state.history.append(
                iteration, value, parts.fit, _parts_penalty(parts), norm, self.state.elapsed()
            )
        return norm

    def finish(self, iteration: int, value: float) -> None:
        """Report a finished iteration to the progress bar and the callback."""
        self.progress.update(iteration, value)
        if self.callback is not None:
            self.callback(iteration, value)


def _lbfgs_direction(pairs: "_LbfgsMemory", gradient: np.ndarray, norm: float):
    """L-BFGS search direction and its slope ⟨∇Φ, d⟩; steepest descent (step length ≤ 1, as
    scipy) when there are no pairs or the quasi-Newton direction is not a descent direction (the
    pairs are then forgotten)."""
    if len(pairs):
        direction = pairs.direction(gradient)
        slope = float(gradient @ direction)
        if slope < 0.0:
            return direction, slope
        pairs.clear()
    direction = -gradient * min(1.0, 1.0 / norm)
    return direction, float(gradient @ direction)


def _armijo_backtracking(objective, x: np.ndarray, value: float, direction: np.ndarray, slope: float):
    """Armijo backtracking (c₁ = 1e-4), the step halved at each rejection, at most 60 halvings.

    Returns (accepted, candidate, Φ(candidate), ∇Φ(candidate)) for the last step tried.
    """
    step = 1.0
    for _ in range(60):
        candidate = x + step * direction
        new_value, new_gradient = objective(candidate)
        if math.isfinite(new_value) and new_value <= value + 1e-4 * step * slope:
            if np.all(np.isfinite(new_gradient)):
                return True, candidate, new_value, new_gradient
        step *= 0.5
    return False, candidate, new_value, new_gradient


def _add_curvature_pair(pairs: "_LbfgsMemory", s: np.ndarray, y: np.ndarray) -> None:
    """Keep (s, y) only when its curvature sᵀy is safely positive (relative 1e-10)."""
    curvature = float(s @ y)
    if curvature > 1e-10 * math.sqrt(float(s @ s) * float(y @ y)):
        pairs.add(s, y)


def _start_flat_method(name, model, initial, state, progress, callback, warmup):
    """Start of the numpy methods that iterate on the flattened vector: objective, trace, the
    first record and ``warmup = (steps, lr, tolerance)`` steps of the papers' fixed-step GD (the
    same iterates as method "gd"). Returns (objective, trace, x, Φ(x), ∇Φ(x), stationarity,
    iteration, failure): ``failure`` is the "diverged" result when Φ is not finite at the start or
    in the warm-up, else None. ``name`` is the method's, for the error message."""
    if _is_constrained(model):
        raise ValueError(
            f"method {name!r} does not handle nonneg_H1; use 'lbfgs' (L-BFGS-B with bounds) "
            "or 'gd'"
        )
    objective = _FlatObjective(model, state)
    trace = _FlatTrace(model, state, progress, callback)
    x = initial.flatten()
    value, gradient = objective(x)
    norm = trace.record(0, x, value, gradient)
    if not (math.isfinite(value) and math.isfinite(norm)):
        message = f"non-finite objective at the initial point (Φ = {value})"
        return objective, trace, x, value, gradient, norm, 0, (
            model.unflatten(x), 0, "diverged", message
        )
    steps, lr, tolerance = warmup
    x, value, gradient, norm, iteration, finite = _fixed_step_descent(
        objective, trace, x, value, gradient, norm, lr, steps, tolerance
    )
    failure = None if finite else _diverged_result(model, x, iteration, "GD warm-up")
    return objective, trace, x, value, gradient, norm, iteration, failure


def _diverged_result(model, x, iteration, phase):
    """The (parameters, iteration, "diverged", message) result when step ``iteration + 1`` of
    ``phase`` gave a non-finite Φ; ``x`` is the last finite iterate."""
    return (
        model.unflatten(x),
        iteration,
        "diverged",
        f"non-finite objective in {phase} step {iteration + 1}; returning iteration {iteration}",
    )


def _run_numpy_lbfgs(
    model,
    initial,
    *,
    tolerance,
    max_iterations,
    lbfgs_memory,
    warmup_steps,
    lr,
    polish_iterations,
    state,
    progress,
    callback=None,
):
    """L-BFGS in numpy: optional fixed-step GD warm-up, then two-loop L-BFGS with Armijo
    backtracking. Returns (parameters, iterations, stop reason, message)."""
    # Phase 1: the papers' fixed-step gradient descent (the same iterates as method "gd").
    warmup = min(warmup_steps, max_iterations)
    objective, trace, x, value, gradient, norm, iteration, failure = _start_flat_method(
        "numpy_lbfgs", model, initial, state, progress, callback, (warmup, lr, tolerance)
    )
    if failure is not None:
        return failure
    if norm <= tolerance:
        message = f"stationarity {norm:.3e} <= {tolerance:.3e} (GD warm-up)"
        return model.unflatten(x), iteration, "gradient_tolerance", message

    # Phase 2: L-BFGS.
    pairs = _LbfgsMemory(x.size, lbfgs_memory)
    stalled = 0
    reason, message = "max_iterations", f"{max_iterations} iterations"
    while True:
        if norm <= tolerance:
            reason, message = "gradient_tolerance", f"stationarity {norm:.3e} <= {tolerance:.3e}"
            break
        if iteration >= max_iterations:
            break
        direction, slope = _lbfgs_direction(pairs, gradient, norm)
        accepted, candidate, new_value, new_gradient = _armijo_backtracking(
            objective, x, value, direction, slope
        )
        if not accepted:
            if len(pairs):  # retry from steepest descent before giving up
                pairs.clear()
                continue
            reason = "line_search_failed"
            message = "no step along −∇Φ decreases Φ (rounding floor of Φ reached)"
            break
        s = candidate - x
        if not np.any(s):
            reason, message = "no_progress", "L-BFGS step does not change the iterate"
            break
        _add_curvature_pair(pairs, s, new_gradient - gradient)
        stalled = stalled + 1 if new_value >= value else 0
        x, value, gradient = candidate, new_value, new_gradient
        iteration += 1
        norm = trace.record(iteration, x, value, gradient)
        trace.finish(iteration, value)
        if stalled >= 10:
            reason, message = "no_progress", "Φ did not decrease in 10 consecutive iterations"
            break
    budget = min(polish_iterations, max_iterations - iteration)
    if reason in ("no_progress", "line_search_failed") and budget > 0 and _is_smooth(model):
        start_norm = norm
        x, polish_steps, norm = _barzilai_borwein_polish(
            objective, x, value, gradient, tolerance, budget
        )
        iteration += polish_steps
        message += f"; Barzilai-Borwein polish: stationarity {start_norm:.2e} -> {norm:.2e}"
        if norm <= tolerance:
            reason = "gradient_tolerance"
    return model.unflatten(x), iteration, reason, message
