"""Method ``"lbfgs"``: scipy's L-BFGS-B on the flattened parameter vector.

Bounds H₁ ≥ 0 for ``nonneg_H1``. On smooth objectives a stall at the float64 resolution of Φ
is followed by the Barzilai-Borwein polish (``_barzilai_borwein_polish``, also used by
``"numpy_lbfgs"``), gradient steps that lower ‖∇Φ‖ further.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from scipy import optimize  # imported here so that its BLAS is loaded before threads are limited

from ..models import Parameters
from .common import (
    _is_constrained,
    _is_smooth,
    _objective_parts,
    _parts_penalty,
    _stationarity_numpy,
)


def _run_scipy_lbfgs(
    model,
    initial,
    *,
    tolerance,
    max_iterations,
    lbfgs_memory,
    ftol,
    polish_iterations,
    state,
    progress,
    callback=None,
):
    constrained = _is_constrained(model)
    start_params = model.project(initial)
    x0 = start_params.flatten()
    bounds = None
    if _is_constrained(model):
        lower = start_params.map(lambda block: np.full(np.shape(block), -np.inf))
        lower = Parameters(
            features=np.zeros_like(start_params.features), weights=lower.weights, bias=lower.bias
        ).flatten()
        bounds = optimize.Bounds(lower, np.full_like(lower, np.inf))

    cache: dict[str, Any] = {"x": None}

    def evaluate(x):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            value, gradient = model.value_and_gradient_vector(x)
        state.evaluations += 1
        cache.update(x=np.array(x, copy=True), value=value, gradient=gradient)
        if not math.isfinite(value) or not np.all(np.isfinite(gradient)):
            return math.inf, np.zeros_like(x)  # the line search backs off from such points
        return value, gradient

    def at(x):
        if cache["x"] is None or not np.array_equal(cache["x"], x):
            evaluate(x)
        return cache["value"], cache["gradient"]

    counter = {"iterations": 0, "stopped": False}

    def record(iteration, x, value, gradient):
        norm = _stationarity_numpy(
            constrained, model._unflatten_views(x), model._unflatten_views(gradient)
        )
        if iteration in state.record_at:
            parts = _objective_parts(model, model.unflatten(x))
            state.history.append(
                iteration, value, parts.fit, _parts_penalty(parts), norm, state.elapsed()
            )
        return norm

    def after_iteration(intermediate_result):
        counter["iterations"] += 1
        x = intermediate_result.x
        value, gradient = at(x)
        norm = record(counter["iterations"], x, value, gradient)
        progress.update(counter["iterations"], value)
        if callback is not None:
            callback(counter["iterations"], value)
        if norm <= tolerance:
            counter["stopped"] = True
            raise StopIteration

    value, gradient = at(x0)
    if math.isfinite(value) and record(0, x0, value, gradient) <= tolerance:
        return start_params, 0, "gradient_tolerance", "initial point is stationary"
    if not math.isfinite(value):
        return (
            start_params,
            0,
            "diverged",
            f"non-finite objective at the initial point (Φ = {value})",
        )
    result = optimize.minimize(
        evaluate,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        callback=after_iteration,
        options={
            "maxiter": max_iterations,
            "maxfun": max(15_000, 20 * max_iterations),
            "maxcor": lbfgs_memory,
            "ftol": ftol,
            "gtol": 0.0,  # stationarity is checked in the callback on the Euclidean norm
            "maxls": 50,
        },
    )
    iterations = counter["iterations"]
    message = str(result.message)
    if not math.isfinite(float(result.fun)):
        return model.unflatten(result.x), iterations, "diverged", message
    if counter["stopped"]:
        reason = "gradient_tolerance"
    elif iterations >= max_iterations:
        reason = "max_iterations"
    elif "FUNCTION EVALUATIONS" in message.upper():
        reason = "max_evaluations"
    elif result.status == 0:
        reason = "no_progress"
    else:
        reason = "line_search_failed"
    x = np.array(result.x, copy=True)
    budget = min(polish_iterations, max_iterations - iterations)
    if reason in ("no_progress", "line_search_failed") and budget > 0 and _is_smooth(model):
        value, gradient = at(x)
        start_norm = record(iterations, x, value, gradient)
        x, steps, norm = _barzilai_borwein_polish(
            lambda point: at(point), x, value, gradient, tolerance, budget
        )
        iterations += steps  # the final point is recorded by solve()
        message += f"; Barzilai-Borwein polish: stationarity {start_norm:.2e} -> {norm:.2e}"
        if norm <= tolerance:
            reason = "gradient_tolerance"
    return model.unflatten(x), iterations, reason, message


def _barzilai_borwein_polish(
    value_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x: np.ndarray,
    value: float,
    gradient: np.ndarray,
    tolerance: float,
    iterations: int,
) -> tuple[np.ndarray, int, float]:
    """Gradient steps with Barzilai-Borwein step sizes after L-BFGS has stalled.

    Near a minimum, Φ changes by O(‖∇Φ‖²), which falls below the float64 resolution of Φ long
    before ‖∇Φ‖ reaches rounding level; L-BFGS then stops because its line search compares values
    of Φ. The iteration x_{k+1} = x_k − α_k∇Φ(x_k), α_k = ⟨s, y⟩/⟨y, y⟩ (BB2, s = x_k − x_{k−1},
    y = ∇Φ(x_k) − ∇Φ(x_{k−1})) uses gradients only. It is not monotone, so the iterate with the
    smallest gradient norm is returned, among those whose Φ does not exceed the starting value by
    more than 8 ulps (the polish never trades objective for stationarity).

    Returns
    -------
    (x, steps, norm) : the chosen point, the number of steps taken, its gradient norm.
    """
    ceiling = value + 8.0 * np.spacing(abs(value))
    best_x, best_norm = x, float(np.linalg.norm(gradient))
    step = 1e-3  # a small probe; the BB rule then sets the scale from the observed curvature
    steps = 0
    for steps in range(1, iterations + 1):
        candidate = x - step * gradient
        new_value, new_gradient = value_and_gradient(candidate)
        if not (math.isfinite(new_value) and np.all(np.isfinite(new_gradient))):
            break
        difference, change = candidate - x, new_gradient - gradient
        curvature = float(change @ change)
        if curvature > 0.0:
            step = abs(float(difference @ change)) / curvature
        x, gradient = candidate, new_gradient
        norm = float(np.linalg.norm(gradient))
        if norm < best_norm and new_value <= ceiling:
            best_x, best_norm = x, norm
        if best_norm <= tolerance or step == 0.0:
            break
    return np.array(best_x, copy=True), steps, best_norm
