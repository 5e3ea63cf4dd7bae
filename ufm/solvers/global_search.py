"""Method ``"global"``: a multistart and basin-hopping search for the global minimum.

The DUFM landscape has many minima: the DNC point, low-rank points below it (docs/theory.md §4.5,
§4.6), one-class points, the zero solution. Which one a local method ends in depends on its
start. This method spends a budget of local runs on starts chosen where they pay:

1. **constructions**: the known optimum (:func:`ufm.optima.optimal_parameters`: the closed form
   of the UFM and deep linear UFM, the DNC point of the DUFM), the improved SRG family of §4.5
   and its best edge subset (L ≥ 3, K ≥ 3), and every point the caller gives in ``starts``;
2. **random starts** at several scales, and **low-rank starts** (random points whose hidden
   weight matrices W_2..W_{L−1} are truncated to rank r, r drawn from 1..K);
3. **narrow-width starts** (DUFM): a local run on the same objective with every width cut to w
   (K ≤ w < width), whose minimum is then embedded with zero rows and columns (same Φ) and
   polished at the full width: narrow layers force low-rank structure that wide random starts
   rarely find;
4. **perturbations** (basin hopping) of the best point, of the best points of the other lowest
   distinct basins, and of the constructions themselves (in order of their value, the best
   first): every block B gets B + σ·(‖B‖_F/√size)·G, G standard normal,
   σ ∈ {0.1, 0.3, 0.6, 1.0}. (On the 4-DUFM with K = 10 the SRG point polishes to 0.0858, but
   its perturbations lead to the rank-5 basin at 0.08091, below every other minimum seen: a
   construction is a good region before it is a good point.)

After the constructions the starts follow :data:`START_CYCLE`: half are perturbations, half
fresh starts. The constructions' own values are the first best-so-far (``callback(0, best)``
before any local run).

Each start runs the best local method for its model: ``kink_lbfgs`` for the ReLU DUFM (with the
smoothing continuation; from random starts also with the Nesterov phase of
:data:`~ufm.solvers.kink_lbfgs.KINK_LBFGS_LOW_RANK_SETTINGS`), scipy ``lbfgs`` for the smooth
models and for the DUFM with ``nonneg_H1`` (bounds); the narrow-width phase alternates
``kink_lbfgs`` and scipy ``lbfgs``. A local run never replaces its start by a higher point: the
value kept is min(Φ(start), Φ(end)), so the result is never above any construction it was given.

End points are grouped into **basins**: two end points are in the same basin when their values
agree to ``basin_tolerance`` (relative) and their class-mean rank profiles agree. The search
stops when ``patience`` consecutive starts found no basin lower than the best by more than
``basin_tolerance``, after ``max_starts`` starts, or when ``time_budget`` seconds have passed.

Starts are drawn in rounds of ``workers`` starts from ``numpy.random.default_rng([seed,
round])`` and the best points of earlier rounds, and the results of a round are taken in
submission order, so the search is deterministic for a given seed and worker count (unless the
time budget ends it). ``workers > 1`` runs a round on local processes.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..executors import local_process_pool
from ..models import DeepUFM, LinearHead, Parameters
from .common import _evaluate_unchecked, _objective_parts, stationarity_norm
from .kink_lbfgs import KINK_LBFGS_LOW_RANK_SETTINGS

__all__ = ["Basin", "GLOBAL_DEFAULTS", "class_mean_ranks", "embed_parameters", "start_points"]

#: Default budget of the global method (see :func:`ufm.solvers.solve`).
GLOBAL_DEFAULTS = {
    "max_starts": 200,
    "patience": 40,  # for the DUFM; solve() uses 6 for the smooth models
    "time_budget": 300.0,
    "basin_tolerance": 1e-4,
    "workers": 1,
}

#: Relative perturbation sizes σ of the basin-hopping starts.
PERTURBATION_SIZES = (0.1, 0.3, 0.6, 1.0)

#: Scales of the random starts (factor on the E-B1 initialization).
RANDOM_SCALES = (1.0, 1.5)

#: Smoothing schedule of the local runs from constructions, narrow embeddings and perturbations.
POLISH_SMOOTHING = (0.1, 0.01, 0.001, 0.0001)

#: Work ("parameter-iterations": local iterations × number of parameters) that the default
#: stopping rule of the DUFM also requires since the last lower basin: about the work of 40
#: starts on the 4-DUFM with K = 10 and width 30, so that cheap problems (few classes, narrow
#: layers), where 40 starts take seconds, search longer (up to ``max_starts``).
PATIENCE_WORK = 2e8

#: A proven global minimum (closed form) counts as reached within this relative tolerance.
PROVEN_TOLERANCE = 1e-12

#: Iteration budget of the narrow-width phase of a narrow start.
NARROW_ITERATIONS = 3000

#: Relative singular-value cutoff of the rank profiles (plots of (C) use 1e-3 to 1e-2).
RANK_RTOL = 1e-3


@dataclass(frozen=True)
class Basin:
    """One distinct minimum found by the global method.

    Attributes
    ----------
    loss : float
        The lowest Φ found in this basin.
    ranks : tuple of int
        Numerical ranks (relative cutoff :data:`RANK_RTOL`) of the class-mean matrices M_1..M_L
        of the post-activation features, then of M̃_L (the last pre-activation) for the DUFM
        (:func:`class_mean_ranks`).
    count : int
        How many starts ended in it.
    found_by : str
        The kind of the first start that reached its lowest value (``"dnc"``, ``"srg"``,
        ``"random"``, ``"low_rank"``, ``"narrow"``, ``"perturb"``, ``"given"``).
    """

    loss: float
    ranks: tuple[int, ...]
    count: int
    found_by: str

    def to_dict(self) -> dict:
        """JSON-serializable dictionary."""
        return {"loss": self.loss, "ranks": list(self.ranks), "count": self.count,
                "found_by": self.found_by}


def _rank(matrix: np.ndarray, rtol: float) -> int:
    values = np.linalg.svd(matrix, compute_uv=False)
    if values.size == 0 or not values[0] > 0.0:
        return 0
    return int(np.count_nonzero(values > rtol * values[0]))


def class_mean_ranks(model: Any, params: Parameters, rtol: float = RANK_RTOL) -> tuple[int, ...]:
    """Ranks of the class means at every layer: (RANK M_1, …, RANK M_L[, RANK M̃_L]).

    M_l = H_l Yᵀ/n is the (d_l, K) matrix of class means of the post-activation features H_l
    (docs/theory.md §1.1, §3 RANK), computed from the forward pass with the class-ordered columns of
    ``model`` (``labels`` of the forward pass); for the DUFM the class means of the last
    pre-activation H̃_L are appended (the rank before the last ReLU, (C)). ``rtol`` is relative
    to the largest singular value.
    """
    features = model.forward(params)
    labels = np.asarray(features.labels)
    counts = np.bincount(labels, minlength=features.num_classes).astype(np.float64)
    counts[counts == 0] = 1.0

    def means(matrix: np.ndarray) -> np.ndarray:
        sums = np.zeros((matrix.shape[0], features.num_classes))
        np.add.at(sums.T, labels, np.asarray(matrix, dtype=np.float64).T)
        return sums / counts

    ranks = [_rank(means(h), rtol) for h in features.post_activations]
    if isinstance(model, DeepUFM) and model.num_layers >= 2:
        ranks.append(_rank(means(features.pre_activations[-1]), rtol))
    return tuple(ranks)


def embed_parameters(params: Parameters, model: Any) -> Parameters:
    """Embed a point of a narrower model into ``model`` with zero rows and columns.

    H₁ (w_1, N) → (d_1, N) and W_l (w_{l+1}, w_l) → (d_{l+1}, d_l), zeros elsewhere. The new
    neurons carry nothing (σ(0) = 0), so the output and every penalty, hence Φ, are unchanged.
    """
    shapes = model.parameter_shapes
    blocks = list(params.blocks())
    embedded = []
    for block, shape in zip(blocks, shapes):
        block = np.asarray(block, dtype=np.float64)
        if block.ndim == 2:
            out = np.zeros(shape)
            out[: block.shape[0], : block.shape[1]] = block
        else:
            out = block.copy()
        embedded.append(out)
    return model.unflatten(np.concatenate([b.ravel() for b in embedded]))


def _perturb(params: Parameters, rng: np.random.Generator, sigma: float) -> Parameters:
    def move(block):
        if block is None:
            return None
        scale = np.linalg.norm(block) / math.sqrt(block.size)
        return block + sigma * scale * rng.standard_normal(block.shape)

    return Parameters(features=move(params.features),
                      weights=tuple(move(w) for w in params.weights), bias=params.bias)


def _low_rank_start(model: Any, rng: np.random.Generator, rank: int, scale: float) -> Parameters:
    params = model.random_parameters(rng, scale)
    weights = list(params.weights)
    for index in range(1, len(weights) - 1):  # W_2..W_{L−1}
        u, s, vt = np.linalg.svd(weights[index], full_matrices=False)
        kept = s.copy()
        kept[rank:] = 0.0
        # Keep the Frobenius norm of a full-rank draw: scale the kept values up.
        factor = math.sqrt(np.sum(s**2) / max(np.sum(kept**2), 1e-300))
        weights[index] = (u * (kept * factor)) @ vt
    return model.project(Parameters(features=params.features, weights=tuple(weights),
                                    bias=params.bias))


def _srg_construction(model: Any) -> Parameters | None:
    """The improved SRG family (docs/theory.md §4.5) for this DUFM, or None where it does not fit."""
    from .. import optima

    K, L = model.num_classes, model.num_layers
    if not isinstance(model, DeepUFM) or L < 3 or K < 3:
        return None
    r = 4
    while r * (r - 1) // 2 < K:
        r += 1
    try:
        if r * (r - 1) // 2 == K:
            edges = None
        else:
            edges = optima.srg_edge_subset_search(K, L, r, max_subsets=2000, rng=0).edges
        return optima.srg_construct(r, L, model.per_class, model.lam_h, model.lam_w,
                                    shift=None, edges=edges, widths=model.widths)
    except (ValueError, TypeError, ArithmeticError):
        return None


def start_points(model: Any, given: Sequence[Parameters] = ()) -> list[tuple[str, Parameters]]:
    """The construction starts of ``model``: its known optimum, the SRG family, ``given``.

    Returns ``(kind, parameters)`` pairs in the order they are tried: ``"given"`` (the caller's
    points, checked against the model's shapes), ``"dnc"`` (:func:`ufm.optima.optimal_parameters`:
    closed-form optimum of the UFM and the deep linear UFM, DNC point of the DUFM, docs/theory.md
    §4.1–4.3; skipped where the widths are below K), ``"srg"`` (the improved SRG family or its
    best edge subset, docs/theory.md §4.5; DUFM with L ≥ 3, K ≥ 3, where the widths fit).
    """
    from .. import optima

    points: list[tuple[str, Parameters]] = []
    for params in given:
        if not isinstance(params, Parameters):
            raise TypeError(f"starts must hold ufm.models.Parameters, got {type(params).__name__}")
        model.check_parameters(params)
        points.append(("given", params.to_numpy() if params.is_torch else params.copy()))
    if not isinstance(model, LinearHead):
        try:
            points.append(("dnc", optima.optimal_parameters(model)))
        except (ValueError, TypeError):
            pass
    srg = _srg_construction(model)
    if srg is not None:
        points.append(("srg", model.project(srg)))
    return points


@dataclass(frozen=True)
class _Task:
    """One local run: picklable for process pools."""

    model: Any
    start: Parameters
    kind: str
    narrow_widths: tuple[int, ...] | None
    max_iterations: int
    tolerance: float
    variant: int


def _local_options(model: Any, kind: str, variant: int) -> tuple[str, dict]:
    """Local method and options for a start of ``kind`` (module docstring)."""
    if not isinstance(model, DeepUFM) or model.nonneg_H1:
        return "lbfgs", {}
    if kind in ("random", "low_rank") and variant % 2 == 0:
        return "kink_lbfgs", dict(KINK_LBFGS_LOW_RANK_SETTINGS)
    if kind in ("random", "low_rank", "narrow"):
        return "kink_lbfgs", {}
    return "kink_lbfgs", {"smoothing": POLISH_SMOOTHING, "smoothing_iterations": 100}


def _run_task(task: _Task) -> tuple[float, Parameters, int, int]:
    """Run one local search; returns (Φ, point, iterations, evaluations), Φ ≤ Φ(start)."""
    from .dispatch import solve

    model, start = task.model, task.start
    iterations = evaluations = 0
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # Random starts at large scale can overflow on their way to divergence; such runs
        # stop as "diverged" and their last finite point is compared like any other.
        warnings.simplefilter("ignore", RuntimeWarning)
        if task.narrow_widths is not None:
            narrow = dataclasses.replace(model, widths=task.narrow_widths)
            method, options = _local_options(narrow, task.kind, task.variant)
            if task.variant % 3 == 2:
                method, options = "lbfgs", {}
            first = solve(narrow, method, initial=start,
                          max_iterations=min(task.max_iterations, NARROW_ITERATIONS),
                          tolerance=task.tolerance, predicted=None, progress=False, **options)
            iterations, evaluations = first.iterations, first.evaluations
            start = embed_parameters(first.parameters, model)
        method, options = _local_options(model, task.kind, task.variant)
        start_value = _objective_parts(model, start).total
        end = solve(model, method, initial=start, max_iterations=task.max_iterations,
                    tolerance=task.tolerance, predicted=None, progress=False, **options)
    iterations += end.iterations
    evaluations += end.evaluations
    if math.isfinite(end.loss) and (end.loss <= start_value or not math.isfinite(start_value)):
        return float(end.loss), end.parameters, iterations, evaluations
    return float(start_value), start, iterations, evaluations


class _BasinBook:
    """Distinct end points: value within ``tolerance`` (relative) and the same rank profile."""

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.entries: list[dict] = []

    def add(self, loss: float, ranks: tuple[int, ...], kind: str) -> None:
        if not math.isfinite(loss):
            return
        for entry in self.entries:
            if entry["ranks"] == ranks and abs(entry["loss"] - loss) <= self.tolerance * max(
                abs(entry["loss"]), abs(loss), 1e-300
            ):
                entry["count"] += 1
                if loss < entry["loss"]:
                    entry["loss"], entry["found_by"] = loss, kind
                return
        self.entries.append({"loss": loss, "ranks": ranks, "count": 1, "found_by": kind})

    def basins(self) -> tuple[Basin, ...]:
        ordered = sorted(self.entries, key=lambda entry: entry["loss"])
        return tuple(Basin(float(e["loss"]), tuple(e["ranks"]), int(e["count"]), e["found_by"])
                     for e in ordered)


def _narrow_widths(model: Any, rng: np.random.Generator) -> tuple[int, ...] | None:
    """Widths cut to a random w with K ≤ w < the narrowest width (None if none is narrower)."""
    K = model.num_classes
    narrowest = min(model.widths)
    if narrowest <= K:
        return None
    upper = min(narrowest - 1, 2 * K)
    width = int(rng.integers(K, upper + 1))
    return tuple(min(d, width) for d in model.widths)


#: The cycle of start kinds after the constructions: basin hopping (perturbations of the best
#: point, of the other distinct basins found and of the constructions themselves) takes half of
#: the starts, fresh starts (random, low-rank, narrow-width) the other half.
START_CYCLE = ("perturb_construction", "perturb_best", "random", "perturb_top",
               "narrow", "perturb_construction", "perturb_best", "low_rank")

#: Number of distinct basins whose best points are kept for basin hopping.
HOPPING_BASINS = 6


def _draw_start(model, rng, slot, best_points, construction_points):
    """The start of one slot: (kind, parameters, narrow widths or None).

    ``best_points`` holds the best point of each of the lowest distinct basins so far (lowest
    first), ``construction_points`` the construction starts (before their local runs), lowest
    value first: the k-th perturbation of a construction perturbs construction k mod their
    number, so the best construction is perturbed first.
    """
    cycle = len(START_CYCLE)
    choice = START_CYCLE[slot % cycle]
    if choice == "perturb_construction" and construction_points:
        earlier = sum(1 for index in range(slot) if START_CYCLE[index % cycle] == choice)
        base = construction_points[earlier % len(construction_points)]
        sigma = PERTURBATION_SIZES[int(rng.integers(len(PERTURBATION_SIZES)))]
        return "perturb", model.project(_perturb(base, rng, sigma)), None
    pool = {"perturb_best": best_points[:1], "perturb_top": best_points}.get(choice) or (
        best_points[:1])
    if choice.startswith("perturb") and pool:
        sigma = PERTURBATION_SIZES[int(rng.integers(len(PERTURBATION_SIZES)))]
        base = pool[int(rng.integers(len(pool)))]
        return "perturb", model.project(_perturb(base, rng, sigma)), None
    if isinstance(model, DeepUFM) and choice == "narrow":
        widths = _narrow_widths(model, rng)
        if widths is not None:
            narrow = dataclasses.replace(model, widths=widths)
            return "narrow", narrow.random_parameters(rng, 1.0), widths
    if isinstance(model, DeepUFM) and choice in ("narrow", "low_rank") and model.num_layers >= 3:
        rank = int(rng.integers(1, model.num_classes + 1))
        return "low_rank", _low_rank_start(model, rng, rank, 1.0), None
    scale = RANDOM_SCALES[int(rng.integers(len(RANDOM_SCALES)))]
    return "random", model.random_parameters(rng, scale), None


def _keep_basin_point(tops, value, ranks, params, tolerance):
    """Keep the best point of each of the :data:`HOPPING_BASINS` lowest distinct basins."""
    for index, (other_value, other_ranks, _) in enumerate(tops):
        if other_ranks == ranks and abs(other_value - value) <= tolerance * max(
            abs(other_value), abs(value), 1e-300
        ):
            if value < other_value:
                tops[index] = (value, ranks, params)
            break
    else:
        tops.append((value, ranks, params))
    tops.sort(key=lambda item: item[0])
    del tops[HOPPING_BASINS:]


def run_global_search(
    model,
    initial,
    *,
    tolerance,
    max_iterations,
    state,
    progress,
    callback=None,
    seed=0,
    starts=(),
    max_starts=GLOBAL_DEFAULTS["max_starts"],
    patience=GLOBAL_DEFAULTS["patience"],
    time_budget=GLOBAL_DEFAULTS["time_budget"],
    basin_tolerance=GLOBAL_DEFAULTS["basin_tolerance"],
    workers=GLOBAL_DEFAULTS["workers"],
    include_initial=False,
    patience_work=0.0,
):
    """Runner of method ``"global"`` (module docstring). Returns (best point, iterations,
    stop reason, message) and leaves the basins in ``state.basins``.

    Stops with ``"proven_optimum"`` as soon as the best value reaches a proven global minimum
    (:func:`~ufm.solvers.common.predicted_reference` of kind ``"global_optimum"``, within
    :data:`PROVEN_TOLERANCE` relative), with ``"patience"`` when ``patience`` starts and
    ``patience_work`` parameter-iterations have passed since the last lower basin."""
    from .common import predicted_reference

    proven, proven_kind = predicted_reference(model)
    if proven_kind != "global_optimum" or proven is None or not math.isfinite(proven):
        proven = None
    size = int(model.num_parameters)
    book = _BasinBook(basin_tolerance)
    given = list(starts)
    if include_initial:
        given.insert(0, initial)
    queue = start_points(model, given)
    best_value, best_params, best_kind = math.inf, initial, "given"
    # The constructions are points the search holds from the start: the best of them is the
    # first best-so-far (reported before any local run; every later result is at most it).
    values = [_objective_parts(model, params).total for _, params in queue]
    for (kind, params), value in zip(queue, values):
        if value < best_value:
            best_value, best_params, best_kind = value, params, kind
    order = sorted(range(len(queue)), key=lambda index: (not math.isfinite(values[index]),
                                                          values[index]))
    construction_points = [queue[index][1] for index in order]
    if math.isfinite(best_value):
        if callback is not None:
            callback(0, best_value)
    tops: list[tuple[float, tuple, Parameters]] = []
    since_better = 0
    work_since_better = 0.0
    started = iterations = 0
    round_index = 0
    drawn = 0  # starts drawn after the constructions: the position in START_CYCLE
    reason = "max_starts"
    executor = None
    if workers > 1:
        executor = local_process_pool(workers)  # spawned; they exit when this process dies
    began = time.perf_counter()
    try:
        while started < max_starts:
            # The first round always runs: it holds the constructions.
            if started and time_budget is not None and time.perf_counter() - began >= time_budget:
                reason = "time_budget"
                break
            if started and proven is not None and best_value <= proven + PROVEN_TOLERANCE * abs(
                proven
            ):
                reason = "proven_optimum"
                break
            if since_better >= patience and work_since_better >= patience_work and not queue:
                reason = "patience"
                break
            rng = np.random.default_rng([int(seed), round_index])
            tasks = []
            for slot in range(min(workers, max_starts - started)):
                if queue:
                    kind, start = queue.pop(0)
                    narrow = None
                else:
                    kind, start, narrow = _draw_start(
                        model, rng, drawn, [p for _, _, p in tops],
                        construction_points,
                    )
                    drawn += 1
                tasks.append(_Task(model, start, kind, narrow, max_iterations, tolerance,
                                   variant=drawn // len(START_CYCLE)))
            if executor is None:
                results = [_run_task(task) for task in tasks]
            else:
                results = list(executor.map(_run_task, tasks))
            for task, (value, params, used, evaluations) in zip(tasks, results):
                started += 1
                iterations += used
                state.evaluations += evaluations
                ranks = class_mean_ranks(model, params)
                book.add(value, ranks, task.kind)
                _keep_basin_point(tops, value, ranks, params, basin_tolerance)
                improved = value < best_value - basin_tolerance * abs(best_value)
                if value < best_value:
                    best_value, best_params, best_kind = value, params, task.kind
                since_better = 0 if improved else since_better + 1
                work_since_better = 0.0 if improved else work_since_better + used * size
                parts = _objective_parts(model, best_params)
                _, gradient = _evaluate_unchecked(model, best_params)
                state.history.append(iterations, parts.total, parts.fit,
                                     float(math.fsum(parts.penalties)),
                                     stationarity_norm(model, best_params, gradient),
                                     state.elapsed())
                progress.update(started, best_value)
                if callback is not None:
                    callback(started, best_value)
            round_index += 1
        else:
            reason = "max_starts"
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    state.basins = book.basins()
    message = (f"{started} starts, {len(state.basins)} distinct basins; best found by a "
               f"{best_kind!r} start; stopped by {reason}")
    return best_params, iterations, reason, message
