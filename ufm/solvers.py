"""Numerical minimization of the unconstrained-features objectives (THEORY.md §1.2, §2).

``solve(model, method=...)`` minimizes Φ(θ) = (1/(2N))‖F(θ) − Y‖_F² + Σ_j (λ_j/2)‖θ_j‖_F² for any
model of :mod:`ufm.models` (``UFM``, ``DeepLinearUFM``, ``DeepUFM``, ``LinearHead``) and returns a
:class:`Solution`. Methods:

- ``"gd"``: plain full-batch gradient descent as the papers ran it, θ ← θ − η∇Φ(θ) with a fixed
  step η (``lr``), followed by the projection H₁ ← max(H₁, 0) when the model has ``nonneg_H1``
  (projected GD, THEORY.md §2(c)). float64 numpy.
- ``"lbfgs"``: ``scipy.optimize.minimize(method="L-BFGS-B")`` on the flattened parameter vector
  (bounds H₁ ≥ 0 for ``nonneg_H1``); on smooth objectives (no ReLU, no bound) followed, once it
  stalls at the float64 resolution of Φ, by gradient steps with Barzilai-Borwein step sizes that
  lower ‖∇Φ‖ further. float64 numpy.
- ``"numpy_lbfgs"``: L-BFGS written in numpy on the flattened vector (two-loop recursion, Armijo
  backtracking on the model's fused value-and-gradient), optionally after ``warmup_steps`` steps
  of the fixed-step GD above (to start the quasi-Newton phase in the basin GD enters). No scipy
  driver per call: about one evaluation plus a few vector operations per iteration. Without
  bounds (not for ``nonneg_H1``); the Barzilai-Borwein polish of ``"lbfgs"`` on smooth models.
- ``"kink_lbfgs"``: for the ReLU DUFM. ``warmup_steps`` steps of the fixed-step GD above, then
  ``momentum_steps`` Nesterov steps (step ``lr``, coefficient ``momentum``, restarted whenever Φ
  increases), then the numpy L-BFGS above, which at its start and whenever it stalls (Φ lowered
  by ≤ ``stall_decrease`` relative in ``stall_window`` iterations, or no Armijo step) re-grows
  dead ReLU neurons: a hidden neuron whose pre-activations are all ≤ 0 receives no gradient, so
  GD and L-BFGS never move it, yet replacing its input row and output column by the
  second-order descent pair (u, v) with ‖Gσ(Hᵀu)‖ > √(λ_kλ_{k+1}) lowers Φ (kept only if the
  true Φ decreases). At the same moments it re-grows collapsed classes (mean own-class output
  below half the median over classes: a spurious near-stationary region where the whole path
  of the class is small and its gradients are products of small factors) as an exclusive chain
  of neurons, again kept only if Φ decreases. Stops when stalled with nothing to revive.
  Optionally (``smoothing``), between the momentum and the L-BFGS phases, a smoothing
  continuation: L-BFGS on Φ_ε, the objective with every ReLU replaced by its C¹ quadratic
  smoothing of width ε, for decreasing ε (relative to the RMS of the hidden pre-activations).
  The low-rank minima of the DUFM sit on ReLU kinks, where L-BFGS on Φ itself zigzags and
  stalls above the bottom of the basin; the minimizers of Φ_ε lead down to it (every iterate is
  still reported with the true Φ). :data:`KINK_LBFGS_LOW_RANK_SETTINGS` holds the settings of
  the solver benchmark. Without bounds.
- ``"torch_gd"``, ``"torch_lbfgs"``: the same two methods through the model's torch objective and
  autograd, on ``device`` ("auto": CUDA when available, else CPU), float64 by default; for large
  widths. ``torch_lbfgs`` uses ``torch.optim.LBFGS`` with a strong-Wolfe line search.

Every run stops on the first of: stationarity measure ≤ ``tolerance`` (the gradient norm ‖∇Φ‖,
or for ``nonneg_H1`` the natural residual with min(H₁, ∇_{H₁}Φ) in place of ∇_{H₁}Φ), ``max_iterations``,
a non-finite objective (stop reason ``"diverged"``; the last finite iterate is returned), or a
method-specific failure to progress. Loss parts and the gradient norm are recorded at
log-spaced iterations for plots. When a predicted optimum exists (:func:`ufm.optima.predict`),
the gap to it is reported: a proven global optimum for the UFM, the deep linear UFM and the
DUFM with K = 2 or L = 1; for the DUFM with K > 2 and L ≥ 2 the DNC value L_DNC is only a
reference (low-rank points can be lower, THEORY.md §4.5).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
from scipy import optimize  # imported here so that its BLAS is loaded before threads are limited
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from .arrays import check_positive_scalar
from .models import DeepLinearUFM, DeepUFM, LinearHead, ObjectiveParts, Parameters, UFM

__all__ = [
    "METHODS",
    "PREDICTED_KINDS",
    "STOP_REASONS",
    "History",
    "Solution",
    "RestartsResult",
    "solve",
    "solve_with_restarts",
    "predicted_reference",
    "resolve_device",
    "stationarity_norm",
    "log_spaced_iterations",
]

#: Names accepted by :func:`solve`.
METHODS = ("gd", "lbfgs", "numpy_lbfgs", "kink_lbfgs", "torch_gd", "torch_lbfgs")

#: Settings of ``kink_lbfgs`` for the low-rank minima of the DUFM (the solver benchmark's:
#: README, Performance): 1,000 Nesterov steps (coefficient 0.95, step ``lr``) with every λ
#: multiplied by 1.15, then the ReLU smoothing continuation, 100 L-BFGS iterations per
#: relative width.
KINK_LBFGS_LOW_RANK_SETTINGS = {
    "momentum": 0.95,
    "momentum_steps": 1000,
    "momentum_penalty_scale": 1.15,
    "smoothing": (1.0, 0.3, 0.1, 0.01, 0.001, 0.0001),
    "smoothing_iterations": 100,
}

#: Every stop reason a :class:`Solution` can report.
STOP_REASONS = (
    "gradient_tolerance",  # stationarity measure ≤ tolerance
    "max_iterations",  # iteration budget spent
    "max_evaluations",  # L-BFGS function-evaluation budget spent
    "diverged",  # non-finite objective; the last finite iterate is returned
    "no_progress",  # L-BFGS: relative decrease of Φ below ftol, or no change of the iterate
    "line_search_failed",  # L-BFGS-B abnormal termination (typically at the rounding floor)
)

#: Meaning of :attr:`Solution.predicted_kind`.
PREDICTED_KINDS = {
    "global_optimum": "proven global minimum (closed form, THEORY.md §4.1-4.3)",
    "dnc_reference": "L_DNC, the least value among DNC points; not a proven optimum for K > 2, "
    "L >= 2 (low-rank points can be lower, THEORY.md §4.5)",
    "user_reference": "reference value given by the caller",
}

_MODEL_TYPES = (UFM, DeepLinearUFM, DeepUFM, LinearHead)


def _jsonable(value: Any) -> Any:
    """Numpy arrays and scalars to lists and Python numbers; non-finite floats to None."""
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class History:
    """Loss parts and stationarity at log-spaced iterations (for plots).

    All lists have one entry per record. ``fit`` is (1/(2N))‖F − Y‖²; ``penalty`` is
    Σ_j (λ_j/2)‖θ_j‖²; ``total`` = fit + penalty = Φ; ``gradient_norm`` is the stationarity
    measure of :func:`stationarity_norm`; ``time`` is seconds since the start of the run. A
    diverged run ends with a non-finite entry.
    """

    iteration: list[int] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    fit: list[float] = field(default_factory=list)
    penalty: list[float] = field(default_factory=list)
    gradient_norm: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)

    def append(
        self,
        iteration: int,
        total: float,
        fit: float,
        penalty: float,
        gradient_norm: float,
        seconds: float,
    ) -> None:
        """Add one record (iterations must increase)."""
        if self.iteration and iteration <= self.iteration[-1]:
            return
        self.iteration.append(int(iteration))
        self.total.append(float(total))
        self.fit.append(float(fit))
        self.penalty.append(float(penalty))
        self.gradient_norm.append(float(gradient_norm))
        self.time.append(float(seconds))

    def __len__(self) -> int:
        return len(self.iteration)

    def to_dict(self) -> dict[str, list]:
        """JSON-serializable dict of lists (non-finite values become None)."""
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class Solution:
    """Outcome of :func:`solve`, in the spirit of ``scipy.optimize.OptimizeResult``.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    parameters : ufm.models.Parameters
        The final point (float64 numpy); for a diverged run the last finite iterate.
    loss : float
        Φ at ``parameters`` (float64, numpy path of the model, whatever the method).
    fit : float
        (1/(2N))‖F − Y‖_F² at ``parameters``.
    penalties : tuple of float
        (λ_j/2)‖θ_j‖_F² per block, named by ``block_names`` (THEORY.md §1.2).
    block_names : tuple of str
        ``"H1"``, ``"W1"``, …, ``"b"``.
    iterations : int
        Iterations performed (GD steps, or L-BFGS iterations).
    evaluations : int
        Objective-and-gradient evaluations.
    time_seconds : float
        Wall-clock time of the run.
    stop_reason : str
        One of :data:`STOP_REASONS`.
    message : str
        Details (e.g. scipy's message).
    gradient_norm : float
        Stationarity measure at ``parameters`` (:func:`stationarity_norm`), float64.
    tolerance : float
        The requested stationarity tolerance.
    history : History
        Records at log-spaced iterations.
    predicted_loss : float or None
        Φ* from :func:`ufm.optima.predict`, if available (see ``predicted_kind``).
    predicted_kind : str or None
        ``"global_optimum"`` (proven minimum: UFM, deep linear UFM, DUFM with K = 2 or L = 1) or
        ``"dnc_reference"`` (L_DNC of a DUFM with K > 2, L ≥ 2: the best DNC value, not a proven
        optimum) or ``"user_reference"`` (given by the caller).
    gap_to_predicted : float or None
        ``loss − predicted_loss``. Negative beyond rounding is impossible for a global optimum.
    seed : int or None
        The seed of the random initialization (None if ``initial`` was given or not an int).
    device : str
        ``"cpu"`` for numpy methods, the torch device otherwise.
    dtype : str
        Arithmetic of the iterations (``"float64"`` or ``"float32"``).
    settings : dict
        The method's settings (lr, tolerance, max_iterations, ...).
    """

    method: str
    parameters: Parameters
    loss: float
    fit: float
    penalties: tuple[float, ...]
    block_names: tuple[str, ...]
    iterations: int
    evaluations: int
    time_seconds: float
    stop_reason: str
    message: str
    gradient_norm: float
    tolerance: float
    history: History
    predicted_loss: float | None = None
    predicted_kind: str | None = None
    gap_to_predicted: float | None = None
    seed: int | None = None
    device: str = "cpu"
    dtype: str = "float64"
    settings: dict = field(default_factory=dict)

    @property
    def penalty(self) -> float:
        """Σ_j (λ_j/2)‖θ_j‖_F²."""
        return float(math.fsum(self.penalties))

    @property
    def converged(self) -> bool:
        """True if the run stopped because the stationarity measure reached ``tolerance``."""
        return self.stop_reason == "gradient_tolerance"

    @property
    def diverged(self) -> bool:
        """True if the objective became non-finite."""
        return self.stop_reason == "diverged"

    @property
    def relative_gap(self) -> float | None:
        """``gap_to_predicted / predicted_loss`` (None without a prediction)."""
        if self.gap_to_predicted is None or not self.predicted_loss:
            return None
        return self.gap_to_predicted / self.predicted_loss

    def to_dict(self, include_parameters: bool = True) -> dict[str, Any]:
        """JSON-serializable dict; parameters as nested lists keyed by block name."""
        data = {
            "method": self.method,
            "loss": self.loss,
            "fit": self.fit,
            "penalty": self.penalty,
            "penalties": dict(zip(self.block_names, self.penalties)),
            "iterations": self.iterations,
            "evaluations": self.evaluations,
            "time_seconds": self.time_seconds,
            "stop_reason": self.stop_reason,
            "message": self.message,
            "converged": self.converged,
            "gradient_norm": self.gradient_norm,
            "tolerance": self.tolerance,
            "predicted_loss": self.predicted_loss,
            "predicted_kind": self.predicted_kind,
            "predicted_description": PREDICTED_KINDS.get(self.predicted_kind),
            "gap_to_predicted": self.gap_to_predicted,
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
            "settings": self.settings,
            "history": self.history.to_dict(),
        }
        if include_parameters:
            data["parameters"] = dict(zip(self.parameters.block_names(), self.parameters.blocks()))
        return _jsonable(data)


@dataclass(frozen=True)
class RestartsResult:
    """Outcome of :func:`solve_with_restarts`.

    Attributes
    ----------
    best : Solution
        The lowest final loss among runs that did not diverge (among all runs if all diverged).
    seeds : tuple of int
        The seeds, in order.
    losses : numpy.ndarray, shape (runs,)
        Final Φ of every run (last finite value for diverged runs).
    gradient_norms : numpy.ndarray, shape (runs,)
        Final stationarity measure of every run.
    stop_reasons : tuple of str
        Stop reason of every run.
    predicted_loss, predicted_kind
        As in :class:`Solution`.
    solutions : tuple of Solution, or None
        Every run (kept if ``keep_solutions``).
    """

    best: Solution
    seeds: tuple[int, ...]
    losses: np.ndarray
    gradient_norms: np.ndarray
    stop_reasons: tuple[str, ...]
    predicted_loss: float | None
    predicted_kind: str | None
    solutions: tuple[Solution, ...] | None = None

    @property
    def spread(self) -> dict[str, float]:
        """min, median, mean, max and standard deviation of the final losses (non-diverged runs)."""
        mask = np.array([reason != "diverged" for reason in self.stop_reasons])
        values = self.losses[mask] if mask.any() else self.losses
        return {
            "min": float(np.min(values)),
            "median": float(np.median(values)),
            "mean": float(np.mean(values)),
            "max": float(np.max(values)),
            "std": float(np.std(values)),
        }

    @property
    def gaps(self) -> np.ndarray | None:
        """``losses − predicted_loss`` per run (None without a prediction)."""
        return None if self.predicted_loss is None else self.losses - self.predicted_loss

    @property
    def num_converged(self) -> int:
        """Runs that stopped on the stationarity tolerance."""
        return sum(reason == "gradient_tolerance" for reason in self.stop_reasons)

    @property
    def num_diverged(self) -> int:
        """Runs whose objective became non-finite."""
        return sum(reason == "diverged" for reason in self.stop_reasons)

    def to_dict(self, include_parameters: bool = False) -> dict[str, Any]:
        """JSON-serializable dict (parameters of the best run only if ``include_parameters``)."""
        return _jsonable(
            {
                "best": self.best.to_dict(include_parameters=include_parameters),
                "seeds": list(self.seeds),
                "losses": self.losses,
                "gradient_norms": self.gradient_norms,
                "stop_reasons": list(self.stop_reasons),
                "spread": self.spread,
                "predicted_loss": self.predicted_loss,
                "predicted_kind": self.predicted_kind,
                "gaps": self.gaps,
                "num_converged": self.num_converged,
                "num_diverged": self.num_diverged,
            }
        )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


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

    Uses :func:`ufm.optima.predict` (THEORY.md §4.1–4.3). Returns ``(None, None)`` for models
    without a closed form (``LinearHead``) or with a zero penalty (the closed forms need λ > 0).
    """
    from . import optima

    if isinstance(model, LinearHead):
        return None, None
    try:
        prediction = optima.predict(model)
    except (TypeError, ValueError):
        return None, None
    kind = "global_optimum"
    if isinstance(model, DeepUFM) and model.num_classes > 2 and model.num_layers >= 2:
        kind = "dnc_reference"
    return float(prediction.optimal_loss), kind


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

    def __init__(self, total: int, enabled: bool | None, description: str) -> None:
        self.bar = None
        self.count = 0
        self.step = max(1, total // 500)
        if enabled is False or (enabled is None and total < 10_000):
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

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


# --------------------------------------------------------------------------------------------
# numpy gradient descent
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# scipy L-BFGS-B
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# numpy L-BFGS (two-loop recursion on the flattened vector)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Kink-aware L-BFGS for the ReLU DUFM
# --------------------------------------------------------------------------------------------


def _neuron_birth_direction(inputs: np.ndarray, upstream: np.ndarray) -> tuple[float, Any, Any]:
    """max over unit u of ‖G σ(Hᵀu)‖ (G = ``upstream``, H = ``inputs``) by projected ascent from
    every input column; returns (value, u, unit v = −Gσ(Hᵀu)/‖·‖). Deterministic."""
    best = (0.0, None, None)
    norms = np.linalg.norm(inputs, axis=0)
    for column in np.flatnonzero(norms > 0.0):
        u = inputs[:, column] / norms[column]
        for _ in range(30):
            pre = inputs.T @ u
            active = pre > 0.0
            if not active.any():
                break
            ascent = inputs @ ((upstream.T @ (upstream @ np.where(active, pre, 0.0))) * active)
            size = float(np.linalg.norm(ascent))
            if size == 0.0:
                break
            u = ascent / size
        out = upstream @ np.maximum(inputs.T @ u, 0.0)
        value = float(np.linalg.norm(out))
        if value > best[0]:
            best = (value, u, -out / value)
    return best


def _revive_dead_neurons(model, x, value, objective, dead_tolerance=1e-9):
    """Re-grow dead ReLU neurons of a :class:`DeepUFM` where that lowers Φ.

    A hidden neuron i of layer k is dead when its pre-activations Z_k[i, :] are all ≤ 0 (up to
    ``dead_tolerance`` times max|Z_k|): no gradient reaches its weights, so GD and L-BFGS never
    move it again. Replacing its input row by αu and its output column by βv changes the fit by
    −αβ‖Gσ(Hᵀu)‖ + O((αβ)²) (G = ∂fit/∂Z_{k+1}, H the layer's input) and the penalty by
    (λ_k α² + λ_{k+1} β²)/2 minus the old row's and column's: a descent direction when
    max_u ‖Gσ(Hᵀu)‖ > √(λ_k λ_{k+1}). The scale is chosen on the true Φ from a geometric grid;
    the change is kept only if Φ decreases. Returns (x, Φ, number of neurons revived).
    """
    if not isinstance(model, DeepUFM) or model.num_layers < 2:
        return x, value, 0
    lams = model._numpy_plan[1]
    shapes = model.parameter_shapes
    offsets = np.cumsum([0] + [math.prod(shape) for shape in shapes])
    first_weight = 1 if model._has_free_features else 0
    revived = 0
    for layer in range(1, model.num_layers):  # hidden layer k = layer: W_k row, W_{k+1} column
        tried: set[int] = set()
        while True:
            params = model._unflatten_views(x)
            pre, post, output = model._forward_numpy(params)
            z = pre[layer]
            scale = float(np.max(np.abs(z)))
            dead = [
                i
                for i in range(z.shape[0])
                if i not in tried and float(np.max(z[i])) <= dead_tolerance * scale
            ]
            if not dead:
                break
            upstream = (output - model.targets) / model.num_samples
            for k in range(model.num_layers - 1, layer, -1):
                upstream = (params.weights[k].T @ upstream) * (pre[k] > 0.0)
            strength, u, v = _neuron_birth_direction(post[layer - 1], upstream)
            lam_in, lam_out = lams[layer - 1], lams[layer]
            threshold = math.sqrt(lam_in * lam_out)
            neuron = dead[0]
            tried.add(neuron)
            if u is None or strength <= threshold * (1.0 + 1e-6):
                break  # the same test holds for every dead neuron of this layer
            # β/α = √(λ_k/λ_{k+1}) minimizes the penalty of the product αβ.
            ratio = math.sqrt(lam_in / lam_out) if lam_in > 0.0 and lam_out > 0.0 else 1.0
            row_shape = shapes[first_weight + layer - 1]
            column_shape = shapes[first_weight + layer]
            row_start = offsets[first_weight + layer - 1] + neuron * row_shape[1]
            column_block = offsets[first_weight + layer]
            column = column_block + neuron + column_shape[1] * np.arange(column_shape[0])
            typical = math.sqrt(float(np.mean(np.sum(params.weights[layer - 1] ** 2, axis=1))))
            best_value, best_x = value, None
            for step in range(24):
                alpha = max(typical, 1e-3) * 2.0 ** (1 - step)
                candidate = x.copy()
                candidate[row_start : row_start + row_shape[1]] = alpha * u
                candidate[column] = alpha * ratio * v
                new_value, _ = objective(candidate)
                if math.isfinite(new_value) and new_value < best_value:
                    best_value, best_x = new_value, candidate
                elif best_x is not None:
                    break
            if best_x is None:
                continue
            x, value = best_x, best_value
            revived += 1
    return x, value, revived


def _class_scores(model, output: np.ndarray) -> np.ndarray:
    """s_k = mean over the samples of class k of their output on their own class, ⟨F_i, y_i⟩."""
    own = np.sum(output * model.targets, axis=0)
    return np.array(
        [float(np.mean(own[model.labels == k])) for k in range(model.num_classes)]
    )


def _revive_collapsed_classes(model, x, value, objective, fraction=0.5):
    """Re-grow the path of classes whose features collapsed towards 0, where that lowers Φ.

    Criterion: the score of class k is s_k = mean over its samples i of ⟨F_i, y_i⟩ = F[k, i],
    its output on its own class (≈ 1 when the class is fitted). Class k is *collapsed* when
    s_k < ``fraction`` · median_j s_j (default one half of the median score; nothing is tried when
    the median is ≤ 0).

    Why this is a spurious stationary region: without biases the output of a class is positively
    homogeneous of degree L + 1 in the factors along its path (its H₁ columns, the weights that
    carry them, the row k of W_L), so when all these factors are small their gradients are
    products of L small factors, while weight decay pulls each of them back by λ times itself.
    A class whose features shrank early (as happens in a few hundred momentum steps on the
    4-DUFM) thus stays near 0 with a tiny gradient and an output ≈ 0 that costs ≈ n/(2N) of fit:
    no neuron is dead, so :func:`_revive_dead_neurons` does not help, and L-BFGS does not stall
    but creeps.

    Revival: for each collapsed class k (lowest score first) an exclusive chain is grown: its H₁
    columns are set to a₀u, u the unit projection of their mean on the orthogonal complement of
    the other classes' H₁ columns (a fixed complement vector if that projection vanishes, the
    least singular direction if there is no complement), so that the chosen layer-1 neuron sees 0
    from every other sample; in every hidden layer the neuron with the least
    ‖input row‖·‖output column‖·‖activations‖ (not yet used by this call) is rewired to take
    input only from the chain's previous neuron (row a_l u or a_l e_{previous}) and to feed only
    the chain's next neuron (the last one only output k, with weight a_L). The product
    c = a₀a₁⋯a_L is the class's new output; the factors are balanced for the penalty (λ_j a_j²
    equal, or equal factors when a λ is 0) and c is picked on the true Φ from a grid in (0, 1].
    The change is kept only if Φ decreases at once (never worse than before); otherwise the
    point is left as it was. Only for :class:`DeepUFM` with L ≥ 2.

    Returns (x, Φ, number of classes revived).
    """
    if not isinstance(model, DeepUFM) or model.num_layers < 2:
        return x, value, 0
    lams = model.penalty_weights[: model.num_layers + 1]  # λ_H, λ_1, …, λ_L
    depth = model.num_layers + 1
    if all(lam > 0.0 for lam in lams):
        log_root = 0.5 * sum(math.log(lam) for lam in lams)  # log Π √λ_j
    else:
        log_root = None
    params = model.unflatten(x)
    _, _, output = model._forward_numpy(params)
    scores = _class_scores(model, output)
    median = float(np.median(scores))
    if not median > 0.0:
        return x, value, 0
    order = np.argsort(scores, kind="stable")
    collapsed = [int(k) for k in order if scores[k] < fraction * median]
    used: list[set[int]] = [set() for _ in range(model.num_layers - 1)]
    revived = 0
    for k in collapsed:
        params = model.unflatten(x)
        _, post, _ = model._forward_numpy(params)
        features, weights = params.features, list(params.weights)
        mine = model.labels == k
        others = features[:, ~mine]
        basis, singular, _ = np.linalg.svd(others, full_matrices=True)
        largest = float(singular[0]) if singular.size else 0.0
        rank = int(np.sum(singular > 1e-12 * largest)) if largest > 0.0 else 0
        if rank < basis.shape[1]:
            complement = basis[:, rank:]
            u = complement @ (complement.T @ features[:, mine].mean(axis=1))
            size = float(np.linalg.norm(u))
            scale = float(np.linalg.norm(features))
            u = u / size if size > 1e-12 * scale and size > 0.0 else complement[:, 0]
        else:
            u = basis[:, -1]
        chain = []
        for layer in range(1, model.num_layers):  # hidden layer l: row of W_l, column of W_{l+1}
            importance = (
                np.linalg.norm(weights[layer - 1], axis=1)
                * np.linalg.norm(weights[layer], axis=0)
                * np.linalg.norm(post[layer], axis=1)
            )
            importance[list(used[layer - 1])] = np.inf
            neuron = int(np.argmin(importance))
            if not math.isfinite(importance[neuron]):
                chain = None
                break
            chain.append(neuron)
        if chain is None:
            continue
        best_value, best_x = value, None
        for c in np.linspace(1.0, 0.05, 20):
            if log_root is None:
                factors = [c ** (1.0 / depth)] * depth
            else:
                mu = math.exp(2.0 * (math.log(c) + log_root) / depth)
                factors = [math.sqrt(mu / lam) for lam in lams]
            new_features = features.copy()
            new_features[:, mine] = (factors[0] * u)[:, None]
            new_weights = [w.copy() for w in weights]
            new_weights[0][chain[0]] = factors[1] * u
            for layer in range(1, model.num_layers):
                new_weights[layer][:, chain[layer - 1]] = 0.0
                if layer < model.num_layers - 1:
                    new_weights[layer][chain[layer]] = 0.0
                    new_weights[layer][chain[layer], chain[layer - 1]] = factors[layer + 1]
                else:
                    new_weights[layer][k, chain[layer - 1]] = factors[layer + 1]
            candidate = Parameters._unchecked(new_features, tuple(new_weights), None).flatten()
            new_value, _ = objective(candidate)
            if math.isfinite(new_value) and new_value < best_value:
                best_value, best_x = new_value, candidate
        if best_x is None:
            continue
        x, value = best_x, best_value
        for layer, neuron in enumerate(chain):
            used[layer].add(neuron)
        revived += 1
    return x, value, revived


def _hidden_preactivation_rms(model, x: np.ndarray) -> float:
    """Scale of the pre-activations entering a ReLU at the point ``x``: the square root of the
    mean over those layers of each layer's mean square (their RMS when the hidden widths are
    equal; 0 if the model has no ReLU)."""
    relu_after = model._numpy_plan[0]
    pre, _, _ = model._forward_numpy(model._unflatten_views(x))
    squares = [float(np.mean(pre[l + 1] ** 2)) for l, relu in enumerate(relu_after) if relu]
    return math.sqrt(sum(squares) / len(squares)) if squares else 0.0


def _smoothing_continuation(
    model, state, trace, x, start_value, iteration, max_iterations, schedule, level_iterations,
    memory, tolerance,
):
    """L-BFGS on Φ_ε (ReLU replaced by its C¹ quadratic smoothing σ_ε,
    :meth:`ufm.models.DeepUFM.smoothed_value_and_gradient`) for each ε = ρ·s in turn, ρ from
    ``schedule`` and s the RMS of the hidden pre-activations at ``x``; at most
    ``level_iterations`` iterations per level, each counted and recorded with the true Φ (and the
    norm of ∇Φ_ε). A minimum of Φ on its kinks is the limit of minimizers of Φ_ε, which
    L-BFGS reaches without zigzagging across the kinks.

    ``start_value`` is Φ(x). Returns (x, iterations done, Φ at the end); the starting point is
    returned when the phase ended with a higher Φ.
    """
    scale = _hidden_preactivation_rms(model, x)
    start_x, last = x, {}
    if scale == 0.0 or not schedule:
        return x, iteration, start_value

    def smoothed(point, width):
        value, gradient, true_value = model._smoothed_value_and_gradient_numpy(
            model._unflatten_views(point), width
        )
        state.evaluations += 1
        last["true"] = true_value  # Φ of the last point evaluated (the accepted one, below)
        return value, np.concatenate([block.ravel() for block in gradient.blocks()])

    true_value = start_value
    for relative in schedule:
        width = relative * scale

        def objective(point, width=width):
            return smoothed(point, width)

        value, gradient = objective(x)
        pairs = _LbfgsMemory(x.size, memory)
        for _ in range(level_iterations):
            norm = math.sqrt(float(gradient @ gradient))
            if iteration >= max_iterations or not math.isfinite(value) or norm <= tolerance:
                break
            direction, slope = _lbfgs_direction(pairs, gradient, norm)
            accepted, candidate, new_value, new_gradient = _armijo_backtracking(
                objective, x, value, direction, slope
            )
            if not accepted or not np.any(candidate - x):
                break
            _add_curvature_pair(pairs, candidate - x, new_gradient - gradient)
            x, value, gradient, true_value = candidate, new_value, new_gradient, last["true"]
            iteration += 1
            trace.record(iteration, x, true_value, gradient)
            trace.finish(iteration, true_value)
    if not true_value <= start_value:
        return start_x, iteration, true_value
    return x, iteration, true_value


def _run_kink_lbfgs(
    model,
    initial,
    *,
    tolerance,
    max_iterations,
    lbfgs_memory,
    warmup_steps,
    lr,
    momentum,
    momentum_steps,
    stall_window,
    stall_decrease,
    state,
    progress,
    callback=None,
    smoothing=(),
    smoothing_iterations=100,
    momentum_penalty_scale=1.0,
):
    """Fixed-step GD warm-up, optional Nesterov momentum phase, optional smoothing continuation
    (:func:`_smoothing_continuation`), then L-BFGS that, at its start and when it stalls at the
    ReLU kinks, re-grows dead neurons (:func:`_revive_dead_neurons`) and collapsed classes
    (:func:`_revive_collapsed_classes`), each kept only if Φ decreases, and goes on. Returns
    (parameters, iterations, stop reason, message; the message counts the revived neurons and
    classes)."""
    # Phase 1: the papers' fixed-step gradient descent (the same iterates as method "gd").
    warmup = min(warmup_steps, max_iterations)
    objective, trace, x, value, gradient, norm, iteration, failure = _start_flat_method(
        "kink_lbfgs", model, initial, state, progress, callback, (warmup, lr, tolerance)
    )
    if failure is not None:
        return failure

    # Phase 2: Nesterov momentum (step lr), restarted whenever the phase's objective increases.
    # The iterate is the extrapolated point, where Φ and ∇Φ are evaluated. With
    # momentum_penalty_scale c ≠ 1 the phase descends Φ + ((c − 1)/2)Σ_j λ_j‖θ_j‖² (every λ
    # multiplied by c) and reports Φ.
    extra_penalty = None
    if momentum_penalty_scale != 1.0:
        extra_penalty = (momentum_penalty_scale - 1.0) * np.concatenate(
            [
                np.full(math.prod(shape), lam)
                for lam, shape in zip(model.penalty_weights, model.parameter_shapes)
            ]
        )

    def phase_objective(point, value, gradient):
        """(objective of the phase, its gradient) from Φ(point), ∇Φ(point)."""
        if extra_penalty is None:
            return value, gradient
        extra = extra_penalty * point
        return value + 0.5 * float(extra @ point), gradient + extra

    last = min(warmup + momentum_steps, max_iterations)
    phase_value, phase_gradient = phase_objective(x, value, gradient)
    base, previous_base = x - lr * phase_gradient, x
    while iteration < last and norm > tolerance and momentum > 0.0:
        candidate = base + momentum * (base - previous_base)
        new_value, new_gradient = objective(candidate)
        if not (math.isfinite(new_value) and np.all(np.isfinite(new_gradient))):
            return _diverged_result(model, x, iteration, "momentum")
        new_phase_value, phase_gradient = phase_objective(candidate, new_value, new_gradient)
        previous_base, base = base, candidate - lr * phase_gradient
        if new_phase_value > phase_value:
            previous_base = base
        x, value, gradient, phase_value = candidate, new_value, new_gradient, new_phase_value
        iteration += 1
        norm = trace.record(iteration, x, value, gradient)
        trace.finish(iteration, value)
    if norm <= tolerance:
        message = f"stationarity {norm:.3e} <= {tolerance:.3e} (before L-BFGS)"
        return model.unflatten(x), iteration, "gradient_tolerance", message

    # Phase 3: L-BFGS with dead-neuron and collapsed-class revival at its start and whenever it
    # stalls.
    def revive(x, value):
        x, value, neurons = _revive_dead_neurons(model, x, value, objective)
        x, value, classes = _revive_collapsed_classes(model, x, value, objective)
        return x, value, neurons, classes

    revived_total = classes_total = 0
    if iteration < max_iterations:
        x_new, value_new, revived_total, classes_total = revive(x, value)
        if revived_total or classes_total:
            x = x_new
            value, gradient = objective(x)
            iteration += 1
            norm = trace.record(iteration, x, value, gradient)
            trace.finish(iteration, value)
    smoothing_note = ""
    if smoothing and iteration < max_iterations:
        before = value
        x, iteration, after = _smoothing_continuation(
            model, state, trace, x, value, iteration, max_iterations, smoothing,
            smoothing_iterations, lbfgs_memory, tolerance,
        )
        value, gradient = objective(x)
        norm = math.sqrt(float(gradient @ gradient))
        smoothing_note = f"; smoothing phase: Φ {before:.8g} → {after:.8g}" + (
            " (higher: its start point kept)" if not after <= before else ""
        )
    pairs = _LbfgsMemory(x.size, lbfgs_memory)
    window = [value]  # Φ of the last stall_window + 1 L-BFGS iterates
    reason, message = "max_iterations", f"{max_iterations} iterations"
    while True:
        if norm <= tolerance:
            reason, message = "gradient_tolerance", f"stationarity {norm:.3e} <= {tolerance:.3e}"
            break
        if iteration >= max_iterations:
            break
        stalled = len(window) > stall_window and window[0] - value <= stall_decrease * max(
            1.0, abs(value)
        )
        failed = False
        if not stalled:
            direction, slope = _lbfgs_direction(pairs, gradient, norm)
            accepted, candidate, new_value, new_gradient = _armijo_backtracking(
                objective, x, value, direction, slope
            )
            if not accepted and len(pairs):
                pairs.clear()
                continue
            failed = not accepted or not np.any(candidate - x)
        if stalled or failed:
            x_new, value_new, revived, classes = revive(x, value)
            if revived == 0 and classes == 0:
                if failed:
                    reason = "line_search_failed"
                    message = (
                        "no step along −∇Φ decreases Φ and no dead neuron or collapsed class can "
                        "be revived"
                    )
                else:
                    reason = "no_progress"
                    message = (
                        f"Φ decreased by ≤ {stall_decrease:.1e} (relative) in {stall_window} "
                        "iterations and no dead neuron or collapsed class can be revived"
                    )
                break
            revived_total += revived
            classes_total += classes
            x, value = x_new, value_new
            value, gradient = objective(x)
            pairs.clear()
            window = [value]
            iteration += 1
            norm = trace.record(iteration, x, value, gradient)
            trace.finish(iteration, value)
            continue
        _add_curvature_pair(pairs, candidate - x, new_gradient - gradient)
        x, value, gradient = candidate, new_value, new_gradient
        iteration += 1
        window.append(value)
        if len(window) > stall_window + 1:
            del window[0]
        norm = trace.record(iteration, x, value, gradient)
        trace.finish(iteration, value)
    message += f"; {revived_total} dead neurons revived; {classes_total} collapsed classes revived"
    return model.unflatten(x), iteration, reason, message + smoothing_note


# --------------------------------------------------------------------------------------------
# torch methods
# --------------------------------------------------------------------------------------------


def _torch_dtype(dtype: Any):
    import torch

    if dtype in (None, "float64", torch.float64, np.float64):
        return torch.float64
    if dtype in ("float32", torch.float32, np.float32):
        return torch.float32
    raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")


def _torch_value_parts_gradient(model, leaves):
    import torch

    with torch.enable_grad():
        total, fit, penalties = model.torch_objective(leaves, return_parts=True)
        grads = torch.autograd.grad(total, list(leaves.blocks()))
    penalty = sum(penalties) if penalties else total.new_zeros(())
    return total.detach(), fit.detach(), penalty.detach(), grads


def _torch_stationarity(model, leaves, grads) -> float:
    import torch

    squared = (
        leaves.features.new_zeros(()) if leaves.features is not None else grads[0].new_zeros(())
    )
    for name, block, grad in zip(leaves.block_names(), leaves.blocks(), grads):
        if name == "H1" and _is_constrained(model):
            squared = squared + (torch.minimum(block.detach(), grad) ** 2).sum()
        else:
            squared = squared + (grad**2).sum()
    return float(squared.sqrt())


def _run_torch_gd(
    model,
    initial,
    *,
    lr,
    tolerance,
    max_iterations,
    device,
    dtype,
    check_every,
    state,
    progress,
    callback=None,
):
    import torch

    leaves = model.project(initial).to_torch(device=device, dtype=dtype, requires_grad=True)
    blocks = list(leaves.blocks())
    features_index = 0 if "H1" in leaves.block_names() else None
    constrained = _is_constrained(model)
    previous = [block.detach().clone() for block in blocks]
    iteration, last_checked = 0, 0
    reason, message = "max_iterations", ""
    while True:
        total, fit, penalty, grads = _torch_value_parts_gradient(model, leaves)
        state.evaluations += 1
        check = (
            iteration % check_every == 0
            or iteration >= max_iterations
            or iteration in state.record_at
        )
        if check:
            value = float(total)
            norm = _torch_stationarity(model, leaves, grads)
            finite = math.isfinite(value) and math.isfinite(norm)
            if iteration in state.record_at or not finite:
                state.history.append(
                    iteration, value, float(fit), float(penalty), norm, state.elapsed()
                )
            if not finite:
                reason = "diverged"
                if iteration == 0:
                    message = f"non-finite objective at the initial point (Φ = {value})"
                    break
                # Step back to the last iterate known to be finite (at most check_every steps back).
                with torch.no_grad():
                    for block, saved in zip(blocks, previous):
                        block.copy_(saved)
                iteration = last_checked
                message = f"non-finite objective detected; returning iteration {iteration}"
                break
            if callback is not None and iteration > 0:
                callback(iteration, value)
            if norm <= tolerance:
                reason, message = (
                    "gradient_tolerance",
                    f"stationarity {norm:.3e} <= {tolerance:.3e}",
                )
                break
            if iteration >= max_iterations:
                reason, message = "max_iterations", f"{max_iterations} iterations"
                break
            last_checked = iteration
            for saved, block in zip(previous, blocks):
                saved.copy_(block.detach())
            progress.update(iteration, value)
        with torch.no_grad():
            for block, grad in zip(blocks, grads):
                block.sub_(lr * grad)
            if constrained and features_index is not None:
                blocks[features_index].clamp_(min=0.0)
        iteration += 1
    return leaves.to_numpy(), iteration, reason, message


def _run_torch_lbfgs(
    model,
    initial,
    *,
    tolerance,
    max_iterations,
    lbfgs_memory,
    device,
    dtype,
    inner_iterations,
    state,
    progress,
    callback=None,
):
    import torch

    if _is_constrained(model):
        raise ValueError(
            "method 'torch_lbfgs' does not handle nonneg_H1; use 'lbfgs' (L-BFGS-B with bounds), "
            "'gd' or 'torch_gd'"
        )
    leaves = initial.to_torch(device=device, dtype=dtype, requires_grad=True)
    blocks = list(leaves.blocks())
    optimizer = torch.optim.LBFGS(
        blocks,
        lr=1.0,
        max_iter=inner_iterations,
        max_eval=inner_iterations * 5 // 4 + 10,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        history_size=lbfgs_memory,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad(set_to_none=False)
        with torch.enable_grad():
            total = model.torch_objective(leaves)
            total.backward()
        state.evaluations += 1
        return total

    saved = [block.detach().clone() for block in blocks]
    iteration, last_recorded = 0, -1
    reason, message = "max_iterations", ""
    while True:
        total, fit, penalty, grads = _torch_value_parts_gradient(model, leaves)
        value = float(total)
        norm = _torch_stationarity(model, leaves, grads)
        finite = math.isfinite(value) and math.isfinite(norm)
        # Outer steps advance by up to ``inner_iterations``: record when a log-spaced point was passed.
        if (
            not finite
            or any(last_recorded < point <= iteration for point in state.record_at)
            or iteration == 0
        ):
            state.history.append(
                iteration, value, float(fit), float(penalty), norm, state.elapsed()
            )
            last_recorded = iteration
        if not finite:
            with torch.no_grad():
                for block, old in zip(blocks, saved):
                    block.copy_(old)
            reason, message = "diverged", "non-finite objective; returning the last finite iterate"
            break
        if callback is not None and iteration > 0:
            callback(iteration, value)
        if norm <= tolerance:
            reason, message = "gradient_tolerance", f"stationarity {norm:.3e} <= {tolerance:.3e}"
            break
        if iteration >= max_iterations:
            reason, message = "max_iterations", f"{max_iterations} iterations"
            break
        changed = (
            any(not torch.equal(block.detach(), old) for block, old in zip(blocks, saved))
            or iteration == 0
        )
        if not changed:
            reason, message = "no_progress", "L-BFGS made no change to the iterate"
            break
        for old, block in zip(saved, blocks):
            old.copy_(block.detach())
        optimizer.param_groups[0]["max_iter"] = min(inner_iterations, max_iterations - iteration)
        before = optimizer.state[blocks[0]].get("n_iter", 0)
        optimizer.step(closure)
        after = optimizer.state[blocks[0]].get("n_iter", 0)
        iteration += max(after - before, 1)
        progress.update(iteration, value)
    return leaves.to_numpy(), iteration, reason, message


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def solve(
    model: Any,
    method: str = "lbfgs",
    *,
    initial: Parameters | None = None,
    seed: Any = None,
    init_scale: float = 1.0,
    lr: float = 0.5,
    tolerance: float = 1e-10,
    max_iterations: int = 10_000,
    lbfgs_memory: int = 20,
    ftol: float = 0.0,
    polish_iterations: int = 200,
    warmup_steps: int = 0,
    momentum: float = 0.0,
    momentum_steps: int = 0,
    momentum_penalty_scale: float = 1.0,
    stall_window: int = 100,
    stall_decrease: float = 1e-7,
    smoothing: Iterable[float] = (),
    smoothing_iterations: int = 100,
    device: Any = "auto",
    dtype: Any = "float64",
    check_every: int | None = None,
    inner_iterations: int = 20,
    history_points: int = 100,
    predicted: Any = "auto",
    progress: bool | None = None,
    blas_threads: int | None = 1,
    callback: Callable[[int, float], Any] | None = None,
) -> Solution:
    """Minimize Φ(θ) of ``model`` (THEORY.md §1.2, §2) and return a :class:`Solution`.

    Parameters
    ----------
    model : UFM, DeepLinearUFM, DeepUFM or LinearHead
        The objective (:mod:`ufm.models`).
    method : {"gd", "lbfgs", "numpy_lbfgs", "kink_lbfgs", "torch_gd", "torch_lbfgs"}
        ``"gd"``: θ_{k+1} = P(θ_k − η∇Φ(θ_k)) with fixed η = ``lr`` and P the projection
        H₁ ← max(H₁, 0) for ``nonneg_H1`` (identity otherwise), exactly the papers' full-batch GD
        (weights: W ← (1 − ηλ)W − η∇_W(fit)). ``"lbfgs"``: scipy L-BFGS-B on the flattened vector
        (bounds H₁ ≥ 0 for ``nonneg_H1``). ``"numpy_lbfgs"``: ``warmup_steps`` GD steps (step
        ``lr``), then L-BFGS in numpy (two-loop recursion, memory ``lbfgs_memory``, Armijo
        backtracking from the unit step; stops with ``"no_progress"`` after 10 iterations without
        a decrease of Φ, ``"line_search_failed"`` when not even a steepest-descent step
        decreases Φ). ``"kink_lbfgs"``: GD warm-up, Nesterov momentum phase, optional ReLU
        smoothing continuation, then L-BFGS that re-grows dead ReLU neurons and collapsed
        classes at its start and when it stalls, each kept only if Φ decreases (module
        docstring; the message counts them). ``"torch_gd"``/
        ``"torch_lbfgs"``: the same through torch autograd on
        ``device``.
    initial : Parameters, optional
        Starting point; by default ``model.random_parameters(seed, init_scale)`` (THEORY.md E-B1
        initialization).
    seed : int or numpy.random.Generator, optional
        Randomness of the initialization.
    init_scale : float
        Scale of the random initialization (> 0).
    lr : float
        Step η > 0 of the GD methods.
    tolerance : float
        Stop when the stationarity measure (:func:`stationarity_norm`) is ≤ ``tolerance`` (≥ 0).
    max_iterations : int
        Iteration budget (≥ 1): GD steps or L-BFGS iterations.
    lbfgs_memory : int
        Number of stored L-BFGS correction pairs (≥ 1), for ``lbfgs``, ``numpy_lbfgs`` and
        ``torch_lbfgs``.
    ftol : float
        scipy L-BFGS-B stops when the relative decrease of Φ is ≤ ftol (default 0: only when Φ
        stops changing).
    polish_iterations : int
        ``lbfgs`` on smooth objectives (UFM, deep linear UFM, linear head; not the ReLU DUFM,
        whose kinks make a small gradient a poor sign of stationarity, nor bound constraints):
        once L-BFGS stalls (Φ no longer decreases in float64), up to this many gradient steps
        with Barzilai-Borwein step sizes drive the gradient norm further down
        (``_barzilai_borwein_polish``); they count as iterations. 0 disables.
    warmup_steps : int
        ``numpy_lbfgs`` and ``kink_lbfgs``: fixed-step GD steps (step ``lr``) before L-BFGS
        (≥ 0); they count as iterations and are reported to ``callback``.
    momentum : float
        ``kink_lbfgs`` only: Nesterov coefficient in [0, 1) of its momentum phase (0: no phase).
    momentum_steps : int
        ``kink_lbfgs`` only: number of Nesterov steps (step ``lr``) after the GD warm-up (≥ 0);
        they count as iterations.
    momentum_penalty_scale : float
        ``kink_lbfgs`` only: every λ multiplied by this factor (> 0) during the momentum phase,
        whose iterates are still reported with the model's own Φ; the later phases minimize Φ.
        A heavier weight decay while the basin is chosen strengthens the low-rank bias of
        multi-layer regularization ((C)); :data:`KINK_LBFGS_LOW_RANK_SETTINGS` uses 1.15.
    stall_window, stall_decrease : int, float
        ``kink_lbfgs`` only: its L-BFGS phase counts as stalled when Φ decreased by at most
        ``stall_decrease``·max(1, |Φ|) over the last ``stall_window`` iterations; it then tries
        to revive dead ReLU neurons and collapsed classes and stops (``"no_progress"``) if none
        can be.
    smoothing : sequence of float
        ``kink_lbfgs`` only: relative widths ρ of the smoothing continuation between the momentum
        phase and its L-BFGS phase (empty: none). For each ρ in turn, L-BFGS minimizes Φ_ε, the
        objective with every ReLU replaced by its C¹ quadratic smoothing of width ε = ρ·s
        (:meth:`ufm.models.DeepUFM.smoothed_value_and_gradient`), s the RMS of the hidden
        pre-activations when the phase starts. The iterates are recorded and reported with the
        true Φ (the history's gradient norm is that of Φ_ε); the end point is kept only if its Φ
        is not above the start's. :data:`KINK_LBFGS_LOW_RANK_SETTINGS` holds the solver
        benchmark's schedule (README, Performance).
    smoothing_iterations : int
        ``kink_lbfgs`` only: at most this many L-BFGS iterations per smoothing level (≥ 0); they
        count as iterations.
    device : str or torch.device
        Torch methods only: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ...
    dtype : {"float64", "float32"}
        Torch methods only; numpy methods always use float64.
    check_every : int, optional
        ``torch_gd``: test stopping rules every this many steps (each test synchronizes with the
        device); default 1 on CPU and 50 on CUDA.
    inner_iterations : int
        ``torch_lbfgs``: L-BFGS iterations per ``optimizer.step`` call between stopping tests.
    history_points : int
        About this many log-spaced iterations are recorded in ``history`` (0: first and last).
    predicted : "auto", float or None
        Reference optimum for ``gap_to_predicted``: ``"auto"`` uses :func:`predicted_reference`,
        a number is used as given (kind ``"user_reference"``), None disables it.
    progress : bool or None
        tqdm progress bar: True always, False never, None for runs of ≥ 10 000 iterations when
        stderr is a terminal.
    blas_threads : int or None
        BLAS threads of numpy/scipy during the run (default 1: these small matrices are much
        faster single-threaded); None leaves the libraries' setting unchanged.
    callback : callable, optional
        ``callback(iteration, loss)`` with Φ of the current iterate: after every iteration
        (``gd``, ``lbfgs``; not the polish steps) or at every stopping test (torch methods).
        For progress monitoring and time-to-target measurements; its return value is ignored.

    Returns
    -------
    Solution

    Raises
    ------
    ValueError
        For an unknown ``method``, ``lr`` ≤ 0, ``tolerance`` < 0, ``max_iterations`` < 1, other
        invalid settings, or ``torch_lbfgs`` with ``nonneg_H1``.
    TypeError
        If ``model`` is not a :mod:`ufm.models` model or ``initial`` not a ``Parameters``.
    """
    _check_model(model)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    lr = check_positive_scalar(lr, "lr", allow_zero=False)
    tolerance = check_positive_scalar(tolerance, "tolerance")
    max_iterations = _check_integer_at_least(max_iterations, "max_iterations")
    lbfgs_memory = _check_integer_at_least(lbfgs_memory, "lbfgs_memory")
    inner_iterations = _check_integer_at_least(inner_iterations, "inner_iterations")
    ftol = check_positive_scalar(ftol, "ftol")
    init_scale = check_positive_scalar(init_scale, "init_scale", allow_zero=False)
    if (
        isinstance(history_points, bool)
        or not isinstance(history_points, (int, np.integer))
        or history_points < 0
    ):
        raise ValueError(f"history_points must be an integer >= 0, got {history_points!r}")
    if check_every is not None:
        check_every = _check_integer_at_least(check_every, "check_every")
    if blas_threads is not None:
        blas_threads = _check_integer_at_least(blas_threads, "blas_threads")
    polish_iterations = _check_integer_at_least(polish_iterations, "polish_iterations", minimum=0)
    warmup_steps = _check_integer_at_least(warmup_steps, "warmup_steps", minimum=0)
    momentum_penalty_scale = check_positive_scalar(
        momentum_penalty_scale, "momentum_penalty_scale", allow_zero=False
    )
    momentum = check_positive_scalar(momentum, "momentum")
    if momentum >= 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    momentum_steps = _check_integer_at_least(momentum_steps, "momentum_steps", minimum=0)
    stall_window = _check_integer_at_least(stall_window, "stall_window")
    stall_decrease = check_positive_scalar(stall_decrease, "stall_decrease")
    smoothing = _check_smoothing(smoothing)
    smoothing_iterations = _check_integer_at_least(
        smoothing_iterations, "smoothing_iterations", minimum=0
    )
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}")

    if initial is None:
        initial = model.random_parameters(seed, init_scale)
    elif not isinstance(initial, Parameters):
        raise TypeError(f"initial must be a ufm.models.Parameters, got {type(initial).__name__}")
    else:
        model.check_parameters(initial)
    initial = initial.to_numpy() if initial.is_torch else initial.copy()

    if isinstance(predicted, str):
        if predicted != "auto":
            raise ValueError(f"predicted must be 'auto', a number or None, got {predicted!r}")
        predicted_loss, predicted_kind = predicted_reference(model)
    elif predicted is None:
        predicted_loss, predicted_kind = None, None
    else:
        predicted_loss, predicted_kind = float(predicted), "user_reference"

    state = _RunState(
        start=time.perf_counter(),
        record_at=set(log_spaced_iterations(max_iterations, history_points).tolist()),
    )
    bar = _Progress(max_iterations, progress, f"{type(model).__name__} {method}")
    device_name, dtype_name = "cpu", "float64"
    settings: dict[str, Any] = {
        "tolerance": tolerance,
        "max_iterations": max_iterations,
        "init_scale": init_scale,
    }
    with _blas_threads(blas_threads):
        try:
            # Per method: its runner and the options it takes (all recorded in ``settings``).
            if method == "gd":
                runner, specific = _run_gd, {"lr": lr}
            elif method == "lbfgs":
                runner = _run_scipy_lbfgs
                specific = {
                    "lbfgs_memory": lbfgs_memory, "ftol": ftol,
                    "polish_iterations": polish_iterations,
                }
            elif method == "numpy_lbfgs":
                runner = _run_numpy_lbfgs
                specific = {
                    "lbfgs_memory": lbfgs_memory, "warmup_steps": warmup_steps, "lr": lr,
                    "polish_iterations": polish_iterations,
                }
            elif method == "kink_lbfgs":
                runner = _run_kink_lbfgs
                specific = {
                    "lbfgs_memory": lbfgs_memory,
                    "warmup_steps": warmup_steps,
                    "lr": lr,
                    "momentum": momentum,
                    "momentum_steps": momentum_steps,
                    "momentum_penalty_scale": momentum_penalty_scale,
                    "stall_window": stall_window,
                    "stall_decrease": stall_decrease,
                    "smoothing": list(smoothing),
                    "smoothing_iterations": smoothing_iterations,
                }
            else:
                torch_device = resolve_device(device)
                torch_dtype = _torch_dtype(dtype)
                device_name, dtype_name = str(torch_device), str(torch_dtype).replace("torch.", "")
                if method == "torch_gd":
                    every = check_every or (50 if torch_device.type == "cuda" else 1)
                    runner, specific = _run_torch_gd, {"lr": lr, "check_every": every}
                else:
                    runner = _run_torch_lbfgs
                    specific = {"lbfgs_memory": lbfgs_memory, "inner_iterations": inner_iterations}
                runner = functools.partial(runner, device=torch_device, dtype=torch_dtype)
            settings.update(specific)
            final, iterations, reason, message = runner(
                model,
                initial,
                tolerance=tolerance,
                max_iterations=max_iterations,
                state=state,
                progress=bar,
                callback=callback,
                **specific,
            )
        finally:
            bar.close()

    # Final report in float64 numpy, whatever the method's arithmetic.
    parts = _objective_parts(model, final)
    value, gradient = _evaluate(model, final)
    norm = stationarity_norm(model, final, gradient)
    history = state.history
    if not history.iteration or history.iteration[-1] < iterations:
        history.append(
            iterations, parts.total, parts.fit, _parts_penalty(parts), norm, state.elapsed()
        )
    gap = None
    if predicted_loss is not None and math.isfinite(parts.total):
        gap = parts.total - predicted_loss
    return Solution(
        method=method,
        parameters=final,
        loss=float(parts.total),
        fit=float(parts.fit),
        penalties=tuple(float(p) for p in parts.penalties),
        block_names=tuple(final.block_names()),
        iterations=int(iterations),
        evaluations=int(state.evaluations),
        time_seconds=state.elapsed(),
        stop_reason=reason,
        message=message,
        gradient_norm=float(norm),
        tolerance=tolerance,
        history=history,
        predicted_loss=predicted_loss,
        predicted_kind=predicted_kind,
        gap_to_predicted=gap,
        seed=(
            int(seed)
            if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
            else None
        ),
        device=device_name,
        dtype=dtype_name,
        settings=settings,
    )


def solve_with_restarts(
    model: Any,
    seeds: Iterable[int] | int,
    method: str = "lbfgs",
    *,
    keep_solutions: bool = True,
    executor: Any = None,
    progress: bool | None = None,
    **options: Any,
) -> RestartsResult:
    """Run :func:`solve` from the random initialization of every seed; best run and spread.

    Parameters
    ----------
    model : UFM, DeepLinearUFM, DeepUFM or LinearHead
        The objective.
    seeds : iterable of int, or int
        Seeds of ``model.random_parameters``; an int s means seeds 0..s−1.
    method : str
        As in :func:`solve`.
    keep_solutions : bool
        Keep every :class:`Solution` (with parameters) in the result.
    executor : concurrent.futures.Executor, optional
        Run the seeds through ``executor.map`` (e.g. a process pool); sequential by default.
    progress : bool or None
        Progress bar over seeds (None: shown for ≥ 10 seeds on a terminal). Per-run bars are off.
    **options
        Passed to :func:`solve` (``lr``, ``tolerance``, ``max_iterations``, ...); not
        ``initial`` or ``seed``.

    Returns
    -------
    RestartsResult
    """
    _check_model(model)
    if "initial" in options or "seed" in options:
        raise ValueError(
            "solve_with_restarts draws its own initial points: pass seeds, not initial/seed"
        )
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = range(_check_integer_at_least(seeds, "seeds"))
    seed_list = [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("seeds must hold at least one seed")
    options.setdefault("progress", False)
    runner = _SeedRunner(model, method, options)
    if executor is None:
        solutions = []
        bar = _Progress(
            len(seed_list),
            progress if progress is not None else (None if len(seed_list) >= 10 else False),
            "restarts",
        )
        bar.step = 1
        for index, seed in enumerate(seed_list):
            solutions.append(runner(seed))
            bar.update(index + 1, solutions[-1].loss)
        bar.close()
    else:
        solutions = list(executor.map(runner, seed_list))
    losses = np.array([s.loss for s in solutions], dtype=np.float64)
    reasons = tuple(s.stop_reason for s in solutions)
    candidates = [i for i, s in enumerate(solutions) if not s.diverged and math.isfinite(s.loss)]
    if not candidates:
        candidates = list(range(len(solutions)))
    best = min(candidates, key=lambda i: losses[i])
    return RestartsResult(
        best=solutions[best],
        seeds=tuple(seed_list),
        losses=losses,
        gradient_norms=np.array([s.gradient_norm for s in solutions], dtype=np.float64),
        stop_reasons=reasons,
        predicted_loss=solutions[0].predicted_loss,
        predicted_kind=solutions[0].predicted_kind,
        solutions=tuple(solutions) if keep_solutions else None,
    )


@dataclass(frozen=True)
class _SeedRunner:
    """Picklable callable seed → Solution (for process pools)."""

    model: Any
    method: str
    options: dict

    def __call__(self, seed: int) -> Solution:
        return solve(self.model, self.method, seed=seed, **self.options)
