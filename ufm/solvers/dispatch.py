"""The entry points :func:`solve` and :func:`solve_with_restarts`.

:func:`solve` checks the options, runs the chosen method's runner (one per module of
:mod:`ufm.solvers`) under the BLAS thread limit and reports the final point in float64 numpy as
a :class:`~ufm.solvers.results.Solution`; :func:`solve_with_restarts` runs it from the random
initialization of every seed, sequentially or through an executor.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..arrays import check_positive_scalar
from ..models import DeepLinearUFM, DeepUFM, Parameters
from .common import (
    _Progress,
    _RunState,
    _blas_threads,
    _check_integer_at_least,
    _check_model,
    _check_smoothing,
    _evaluate,
    _objective_parts,
    _parts_penalty,
    log_spaced_iterations,
    predicted_reference,
    resolve_device,
    stationarity_norm,
)
from .global_search import GLOBAL_DEFAULTS, PATIENCE_WORK, run_global_search
from .gradient_descent import _run_gd
from .kink_lbfgs import _run_kink_lbfgs
from .numpy_lbfgs import _run_numpy_lbfgs
from .results import RestartsResult, Solution
from .scipy_lbfgs import _run_scipy_lbfgs
from .torch_methods import _run_torch_gd, _run_torch_lbfgs, _torch_dtype

__all__ = ["METHODS", "default_method", "solve", "solve_with_restarts"]

#: Names accepted by :func:`solve`.
METHODS = ("auto", "global", "gd", "lbfgs", "numpy_lbfgs", "kink_lbfgs", "torch_gd", "torch_lbfgs")


def default_method(model: Any) -> str:
    """The method ``"auto"`` stands for: ``"global"`` for the deep models (``DeepUFM``,
    ``DeepLinearUFM``), whose landscapes hold spurious minima (the zero solution for L ≥ 2,
    docs/theory.md §4.3; one-class and low-rank points, §4.5–4.6); ``"lbfgs"`` for the UFM, every local
    minimum of which is global (Zhou et al. 2022, docs/theory.md §4.1), and for ``LinearHead``."""
    return "global" if isinstance(model, (DeepUFM, DeepLinearUFM)) else "lbfgs"


def solve(
    model: Any,
    method: str = "auto",
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
    starts: Sequence[Parameters] = (),
    max_starts: int = GLOBAL_DEFAULTS["max_starts"],
    patience: int | None = None,
    time_budget: float | None = GLOBAL_DEFAULTS["time_budget"],
    basin_tolerance: float = GLOBAL_DEFAULTS["basin_tolerance"],
    workers: int = GLOBAL_DEFAULTS["workers"],
) -> Solution:
    """Minimize Φ(θ) of ``model`` (docs/theory.md §1.2, §2) and return a :class:`Solution`.

    Parameters
    ----------
    model : UFM, DeepLinearUFM, DeepUFM or LinearHead
        The objective (:mod:`ufm.models`).
    method : {"auto", "global", "gd", "lbfgs", "numpy_lbfgs", "kink_lbfgs", "torch_gd", "torch_lbfgs"}
        ``"auto"`` (default): ``"global"`` for ``DeepUFM`` and ``DeepLinearUFM``, ``"lbfgs"``
        for ``UFM`` and ``LinearHead`` (:func:`default_method`). ``"global"``: multistart and
        basin-hopping search (:mod:`ufm.solvers.global_search`): local runs from the known
        constructions (closed-form or DNC optimum, SRG family), from random, low-rank and
        narrow-width starts and from perturbations of the best points, until no lower basin
        appears in ``patience`` starts; the result lists every distinct basin found
        (``Solution.basins``) and is never above a construction or a point in ``starts``.
        ``"gd"``: θ_{k+1} = P(θ_k − η∇Φ(θ_k)) with fixed η = ``lr`` and P the projection
        H₁ ← max(H₁, 0) for ``nonneg_H1`` (identity otherwise), exactly the papers' full-batch GD
        (weights: W ← (1 − ηλ)W − η∇_W(fit)). ``"lbfgs"``: scipy L-BFGS-B on the flattened vector
        (bounds H₁ ≥ 0 for ``nonneg_H1``). ``"numpy_lbfgs"``: ``warmup_steps`` GD steps (step
        ``lr``), then L-BFGS in numpy (two-loop recursion, memory ``lbfgs_memory``, Armijo
        backtracking from the unit step; stops with ``"no_progress"`` after 10 iterations without
        a decrease of Φ, ``"line_search_failed"`` when not even a steepest-descent step
        decreases Φ). ``"kink_lbfgs"``: GD warm-up, Nesterov momentum phase, optional ReLU
        smoothing continuation, then L-BFGS that re-grows dead ReLU neurons and collapsed
        classes at its start and when it stalls, each kept only if Φ decreases (package
        docstring; the message counts them). ``"torch_gd"``/
        ``"torch_lbfgs"``: the same through torch autograd on
        ``device``.
    initial : Parameters, optional
        Starting point; by default ``model.random_parameters(seed, init_scale)`` (docs/theory.md E-B1
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
        ``stall_decrease``·max(1, ``|Φ|``) over the last ``stall_window`` iterations; it then tries
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
        (``gd``, ``lbfgs``; not the polish steps) or at every stopping test (torch methods);
        for ``"global"`` ``callback(starts_done, best_loss)`` after every start.
        For progress monitoring and time-to-target measurements; its return value is ignored.
    starts : sequence of Parameters
        ``"global"`` only: further start points (e.g. a construction of one's own); the result
        is never above the lowest of them. ``initial``, when given, is one of them; ``seed``
        (default 0) seeds the search's own draws.
    max_starts : int
        ``"global"`` only: at most this many local runs (≥ 1).
    patience : int, optional
        ``"global"`` only: stop after this many consecutive starts that found no basin lower
        than the best by more than ``basin_tolerance`` (relative); default 40 for the DUFM and
        6 for the smooth models.
    time_budget : float or None
        ``"global"`` only: stop starting new rounds after this many seconds (None: no limit).
        The result is deterministic for a given seed and worker count unless this ends it.
    basin_tolerance : float
        ``"global"`` only: end points whose values agree to this relative tolerance and whose
        class-mean rank profiles agree count as one basin (in [0, 1)).
    workers : int
        ``"global"`` only: starts run per round, on that many local processes when > 1.

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
    if method == "auto":
        method = default_method(model)
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
    if method == "global":
        max_starts = _check_integer_at_least(max_starts, "max_starts")
        patience_work = 0.0
        if patience is None:
            patience = 40 if isinstance(model, DeepUFM) else 6
            if isinstance(model, DeepUFM):
                patience_work = PATIENCE_WORK
        patience = _check_integer_at_least(patience, "patience")
        if time_budget is not None:
            time_budget = check_positive_scalar(time_budget, "time_budget", allow_zero=False)
        basin_tolerance = check_positive_scalar(basin_tolerance, "basin_tolerance")
        if basin_tolerance >= 1.0:
            raise ValueError(f"basin_tolerance must be in [0, 1), got {basin_tolerance}")
        workers = _check_integer_at_least(workers, "workers")
        if isinstance(starts, Parameters) or not isinstance(starts, Iterable):
            raise TypeError("starts must be a sequence of ufm.models.Parameters")
        starts = list(starts)
        given_initial = initial is not None
        if seed is None:
            seed = 0
        elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0 for method 'global', got {seed!r}")

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
    if method == "global":
        bar = _Progress(max_starts, progress, f"{type(model).__name__} global", auto_minimum=1)
        bar.step = 1
    else:
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
            if method == "global":
                runner = run_global_search
                specific = {
                    "seed": int(seed), "starts": starts, "max_starts": max_starts,
                    "patience": patience, "time_budget": time_budget,
                    "basin_tolerance": basin_tolerance, "workers": workers,
                    "include_initial": given_initial, "patience_work": patience_work,
                }
            elif method == "gd":
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
            if method == "global":
                settings["starts"] = len(starts)
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
        basins=tuple(state.basins),
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
