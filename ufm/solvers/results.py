"""Result types of :func:`ufm.solvers.solve` and :func:`ufm.solvers.solve_with_restarts`.

:class:`History` (records at log-spaced iterations), :class:`Solution` (one run),
:class:`RestartsResult` (runs from several seeds), the stop reasons and kinds of predicted
optimum they report, and the conversion of their values to JSON (non-finite floats to None).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..models import Parameters
from ..optima import PREDICTION_KINDS

__all__ = ["PREDICTED_KINDS", "STOP_REASONS", "History", "Solution", "RestartsResult"]

#: Every stop reason a :class:`Solution` can report.
STOP_REASONS = (
    "gradient_tolerance",  # stationarity measure ≤ tolerance
    "max_iterations",  # iteration budget spent
    "max_evaluations",  # L-BFGS function-evaluation budget spent
    "diverged",  # non-finite objective; the last finite iterate is returned
    "no_progress",  # L-BFGS: relative decrease of Φ below ftol, or no change of the iterate
    "line_search_failed",  # L-BFGS-B abnormal termination (typically at the rounding floor)
    "patience",  # global: no lower basin in `patience` consecutive starts
    "max_starts",  # global: start budget spent
    "time_budget",  # global: wall-time budget spent
    "proven_optimum",  # global: the best value reached a proven global minimum (closed form)
)

#: Meaning of :attr:`Solution.predicted_kind`.
PREDICTED_KINDS = {
    **PREDICTION_KINDS,
    "user_reference": "reference value given by the caller",
}


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
        (λ_j/2)‖θ_j‖_F² per block, named by ``block_names`` (docs/theory.md §1.2).
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
        ``"global_optimum"`` (proven minimum at the model's widths: UFM, deep linear UFM, DUFM
        with K = 2 or L = 1), ``"dnc_reference"`` (L_DNC of a DUFM with K > 2, L ≥ 2: the best
        DNC value, not a proven optimum), ``"unreachable_reference"`` (L_DNC of a DUFM whose
        widths admit no DNC point) or ``"user_reference"`` (given by the caller);
        :data:`PREDICTED_KINDS`.
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
    basins : tuple of Basin
        Method ``"global"``: every distinct minimum its starts ended in, lowest first
        (:class:`ufm.solvers.global_search.Basin`: value, class-mean rank profile, how often,
        which kind of start found it); empty for the local methods.
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
    basins: tuple = ()

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
            "basins": [basin.to_dict() for basin in self.basins],
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
