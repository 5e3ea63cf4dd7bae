"""Fixed-step gradient descent θ ← θ − η∇Φ(θ), the papers' method.

``_run_gd`` is method ``"gd"`` (on ``Parameters``, with the projection H₁ ← max(H₁, 0) for
``nonneg_H1``); ``_fixed_step_descent`` takes the same iterates on the flattened vector, as the
warm-up phase of ``"numpy_lbfgs"`` and ``"kink_lbfgs"``.
"""

from __future__ import annotations

import math

import numpy as np

from .common import (
    _evaluate_unchecked,
    _gradient_step,
    _is_constrained,
    _objective_parts,
    _parts_penalty,
    _stationarity_numpy,
)


def _run_gd(model, initial, *, lr, tolerance, max_iterations, state, progress, callback=None):
    # ``initial`` is a checked float64 numpy copy (solve); every iterate below keeps its
    # structure, so the inner loop uses the unchecked evaluation and step.
    constrained = _is_constrained(model)
    params = model.project(initial)
    value, gradient = _evaluate_unchecked(model, params)
    state.evaluations += 1
    iteration = 0
    reason, message = "max_iterations", ""
    alpha = -float(lr)
    record_at = state.record_at
    while True:
        norm = _stationarity_numpy(constrained, params, gradient)
        finite = math.isfinite(value) and math.isfinite(norm)
        if iteration in record_at or not finite:
            parts = _objective_parts(model, params)
            state.history.append(
                iteration, value, parts.fit, _parts_penalty(parts), norm, state.elapsed()
            )
        if not finite:
            reason, message = "diverged", f"non-finite objective at the initial point (Φ = {value})"
            break
        if callback is not None and iteration > 0:
            callback(iteration, value)
        if norm <= tolerance:
            reason, message = "gradient_tolerance", f"stationarity {norm:.3e} <= {tolerance:.3e}"
            break
        if iteration >= max_iterations:
            reason, message = "max_iterations", f"{max_iterations} iterations"
            break
        candidate = _gradient_step(params, alpha, gradient)
        if constrained:
            candidate = model.project(candidate)
        new_value, new_gradient = _evaluate_unchecked(model, candidate)
        state.evaluations += 1
        new_norm = _stationarity_numpy(constrained, candidate, new_gradient)
        if not (math.isfinite(new_value) and math.isfinite(new_norm)):
            state.history.append(
                iteration + 1, new_value, math.nan, math.nan, new_norm, state.elapsed()
            )
            reason = "diverged"
            message = f"non-finite objective at iteration {iteration + 1}; returning iteration {iteration}"
            break
        params, value, gradient = candidate, new_value, new_gradient
        iteration += 1
        progress.update(iteration, value)
    return params, iteration, reason, message


def _fixed_step_descent(objective, trace, x, value, gradient, norm, lr, steps, tolerance):
    """Gradient descent x ← x − η∇Φ(x) with the fixed step η = ``lr`` (the papers' method, the
    same iterates as method ``"gd"``) from iteration 0 until ``steps`` iterations or
    ‖∇Φ‖ ≤ ``tolerance``, every iterate recorded in ``trace``.

    Returns (x, Φ, ∇Φ, stationarity, iterations done, finite); ``finite`` is False when a step
    gave a non-finite Φ or ∇Φ, and then the returned point is the last finite one.
    """
    iteration = 0
    while iteration < steps and norm > tolerance:
        candidate = x - lr * gradient
        new_value, new_gradient = objective(candidate)
        if not (math.isfinite(new_value) and np.all(np.isfinite(new_gradient))):
            return x, value, gradient, norm, iteration, False
        x, value, gradient = candidate, new_value, new_gradient
        iteration += 1
        norm = trace.record(iteration, x, value, gradient)
        trace.finish(iteration, value)
    return x, value, gradient, norm, iteration, True
