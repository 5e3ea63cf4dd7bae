"""Benchmark: time to the low-rank minimum of the 4-DUFM, plain GD against quasi-Newton methods.

Model (docs/theory.md §4.6, low-rank case; E-C2): :class:`ufm.models.DeepUFM` with K = 10 classes,
L = 4 weight matrices, width 30, n = 1 sample per class and λ = 0.004 on every block. Every method
starts from the same E-B1 initialization of each seed:

- ``gd``: plain full-batch gradient descent with the papers' fixed step η = 0.5;
- ``lbfgs``: scipy L-BFGS-B on the exact gradient;
- ``numpy_lbfgs``: L-BFGS in numpy (compact form, Armijo backtracking), after ``--warmup`` steps of
  the GD above (default 0);
- ``kink_lbfgs``: ``--warmup`` steps of the GD above, ``--momentum-steps`` Nesterov steps (step
  η, coefficient ``--momentum``, restarted when the loss increases, every λ multiplied by
  ``--momentum-penalty-scale``), the ReLU smoothing
  continuation (``--smoothing`` relative widths, ``--smoothing-iterations`` L-BFGS iterations
  each; defaults ``ufm.solvers.KINK_LBFGS_LOW_RANK_SETTINGS``), then L-BFGS that re-grows dead
  ReLU neurons (all pre-activations ≤ 0: GD and L-BFGS never move them again) and collapsed
  classes whenever it stalls; ``--kink-iterations`` iterations in all.

Measure. Every iterate's loss is timed through the ``callback`` of :func:`ufm.solvers.solve`
(seconds since the start of the run). The target of a seed is the least final loss of all methods
+ 1e-6 (absolute); each method's time is the first moment its loss is at or below the target. The
methods may end in different local minima. When GD never reaches the target (another method ended
lower), GD's time is its whole run (a lower bound on its time to the target; the row says ``never:
whole run``). Any other method that never reaches the target loses on that seed: its row shows the
first moment it came within 1e-6 of its own final loss (``own final``) and its speedup counts as 0
in the summary. The speedup of a method is the ratio of these times, GD over the method. L_DNC (docs/theory.md
§4.3) is printed for reference only: low-rank points lie below it (§4.5). RANK(M_l) of the class
means of H_1..H_4 and of H̃_4 use singular values above 1e-3 times the largest.

Run: ``python benchmarks/solvers.py`` (GD 100,000 steps, L-BFGS 10,000 iterations each) or
``python benchmarks/solvers.py --quick`` (20,000 and 3,000); ``--seeds 0 1 2`` for several
initializations; ``--methods gd kink_lbfgs`` to skip some. ``kink_lbfgs`` runs
``--kink-iterations`` (default 3,000) iterations in both modes.

Global mode (``--global``): per seed, GD runs once from the seed's E-B1 initialization (η = 0.5,
100,000 steps, 20,000 with ``--quick``): final loss L_GD, wall time T_GD of the whole run. Then
``solvers.solve(model, "global", seed=s)`` runs with its default settings and no time budget
(``--max-starts``/``--patience`` override two of them, for tests); its best-so-far loss is timed
through the callback after every start (seconds since the call). Measured: (a) whether its
best-so-far is at or below L_GD + 1e-6 (absolute) by T_GD; (b) its final loss against
:data:`GD_LOWEST` (0.0809113983, the lowest minimum GD has reached on this model), the rank
profile of its best basin (``Solution.basins[0].ranks``: RANK M_1..M_4, M̃_4), the number of
basins, its total time;
(c) its time to L_GD + 1e-6 (first callback at or below it) and the speed-up T_GD / that time
(0 where it never gets there). The per-seed table and the summary (shares, medians) are printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ufm import optima  # noqa: E402
from ufm import solvers  # noqa: E402
from ufm.models import DeepUFM  # noqa: E402
from ufm.solvers.global_search import GLOBAL_DEFAULTS  # noqa: E402

NUM_CLASSES, NUM_LAYERS, WIDTH, PER_CLASS, PENALTY = 10, 4, 30, 1, 0.004
LEARNING_RATE = 0.5
WITHIN = 1e-6
RANK_TOLERANCE = 1e-3
# The lowest minimum GD has reached on this model ("0.08091" in the README): seed 5, η = 1.0,
# 50,000 steps (final 0.0811510), polished by L-BFGS-B to 0.0809113983, ranks (5, 5, 5, 10, 5)
# (``python benchmarks/gd_basins.py --seeds 5 --steps 1.0 --kink-iterations 0``).
GD_LOWEST = 0.0809113983
GOAL_SPEEDUP = 20.0
LOW_RANK = solvers.KINK_LBFGS_LOW_RANK_SETTINGS  # the kink_lbfgs defaults of this benchmark
KINK_OPTIONS = (  # (key of LOW_RANK and of solvers.solve, type, help): one --key-with-dashes each
    ("momentum", float, "Nesterov coefficient"),
    ("momentum_steps", int, "Nesterov steps"),
    ("momentum_penalty_scale", float, "factor on every λ during the Nesterov phase"),
    ("smoothing", float, "relative ReLU smoothing widths of its continuation phase (none: off)"),
    ("smoothing_iterations", int, "L-BFGS iterations per smoothing level"),
)


@dataclass
class Trace:
    """One timed run: the solution and the loss and time of every iterate."""

    solution: solvers.Solution
    iterations: np.ndarray
    seconds: np.ndarray
    losses: np.ndarray

    def first_at_or_below(self, level: float) -> int | None:
        """Index of the first iterate with loss ≤ ``level`` (None if there is none)."""
        hits = np.flatnonzero(self.losses <= level)
        return int(hits[0]) if hits.size else None


def build_model() -> DeepUFM:
    """The 4-DUFM of docs/theory.md §4.6 (K = 10, width 30, n = 1, λ = 0.004 on every block)."""
    return DeepUFM(NUM_CLASSES, PER_CLASS, (WIDTH,) * NUM_LAYERS, PENALTY, PENALTY)


def timed_run(
    model: DeepUFM,
    initial,
    method: str,
    max_iterations: int,
    warmup_steps: int = 0,
    kink_options: dict | None = None,
) -> Trace:
    """Run ``method`` from ``initial`` and time every iterate through the solver's callback."""
    iterations, seconds, losses = [0], [0.0], [model.objective(initial).total]
    clock = time.perf_counter

    def observe(iteration: int, loss: float) -> None:
        seconds.append(clock() - start)
        iterations.append(iteration)
        losses.append(loss)

    options = {"lr": LEARNING_RATE} if method in ("gd", "numpy_lbfgs", "kink_lbfgs") else {}
    if method in ("numpy_lbfgs", "kink_lbfgs"):
        options["warmup_steps"] = warmup_steps
    if method == "kink_lbfgs":
        options.update(kink_options or {})
    start = clock()
    solution = solvers.solve(
        model,
        method,
        initial=initial,
        tolerance=1e-9,
        max_iterations=max_iterations,
        predicted=None,
        history_points=0,
        callback=observe,
        **options,
    )
    return Trace(solution, np.array(iterations), np.array(seconds), np.array(losses))


def class_mean_ranks(model: DeepUFM, params) -> tuple[list[int], int]:
    """RANK of the class means of H_1..H_L and of H̃_L (relative tolerance RANK_TOLERANCE)."""
    layers = model.forward(params)
    targets = model.targets
    counts = targets.sum(axis=1)

    def rank(features: np.ndarray) -> int:
        singular = np.linalg.svd(features @ targets.T / counts, compute_uv=False)
        return int(np.sum(singular > RANK_TOLERANCE * singular[0])) if singular[0] > 0 else 0

    return [rank(h) for h in layers.post_activations], rank(layers.pre_activations[-1])


def seconds_per_iteration(trace: Trace) -> float:
    return trace.solution.time_seconds / max(trace.solution.iterations, 1)


def benchmark_seed(
    model: DeepUFM,
    seed: int,
    budgets: dict[str, int],
    warmup_steps: int = 0,
    kink_options: dict | None = None,
) -> dict:
    """Every method from the initialization of ``seed``; the rows of the table and the speedups."""
    initial = model.random_parameters(seed)
    traces = {
        method: timed_run(model, initial, method, budgets[method], warmup_steps, kink_options)
        for method in budgets
    }
    best = min(trace.solution.loss for trace in traces.values())
    target = best + WITHIN
    rows, times = [], {}
    for method, trace in traces.items():
        index = trace.first_at_or_below(target)
        reached = index is not None
        if not reached and method == "gd":
            index = len(trace.losses) - 1  # GD's whole run: a lower bound on its time to target
            times[method] = trace.solution.time_seconds
        elif not reached:
            index = trace.first_at_or_below(trace.solution.loss + WITHIN)
            times[method] = trace.seconds[index]
        else:
            times[method] = trace.seconds[index]
        ranks, last_pre = class_mean_ranks(model, trace.solution.parameters)
        rows.append(
            {
                "seed": seed,
                "method": method,
                "reached": reached,
                "iterations": int(trace.iterations[index]),
                "seconds": float(times[method]),
                "total_iterations": trace.solution.iterations,
                "total_seconds": trace.solution.time_seconds,
                "step_microseconds": 1e6 * seconds_per_iteration(trace),
                "loss": trace.solution.loss,
                "stop_reason": trace.solution.stop_reason,
                "ranks": ranks,
                "last_pre_rank": last_pre,
            }
        )
    # Secondary measure: each method's time to GD's own final loss (+ 1e-6), if it gets there.
    gd_level = traces["gd"].solution.loss + WITHIN
    gd_seconds = float(traces["gd"].seconds[traces["gd"].first_at_or_below(gd_level)])
    to_gd_level, speedups, wins = {}, {}, {}
    for method, trace in traces.items():
        if method == "gd":
            continue
        index = trace.first_at_or_below(gd_level)
        to_gd_level[method] = None
        if index is not None:
            to_gd_level[method] = (
                int(trace.iterations[index]), float(trace.seconds[index]), gd_seconds
            )
        speedups[method] = times["gd"] / times[method] if times[method] > 0 else float("inf")
        wins[method] = next(row["reached"] for row in rows if row["method"] == method)
    # The goal's measure: GD against one method, target = the lower of the two finals + 1e-6.
    gd_trace, pairwise = traces["gd"], {}
    for method, trace in traces.items():
        if method == "gd":
            continue
        level = min(gd_trace.solution.loss, trace.solution.loss) + WITHIN
        gd_index = gd_trace.first_at_or_below(level)
        gd_time = (
            float(gd_trace.seconds[gd_index])
            if gd_index is not None
            else gd_trace.solution.time_seconds
        )
        index = trace.first_at_or_below(level)
        seconds = None if index is None else float(trace.seconds[index])
        pairwise[method] = {
            "target": level,
            "gd_seconds": gd_time,
            "gd_reaches": gd_index is not None,
            "seconds": seconds,
            "iterations": None if index is None else int(trace.iterations[index]),
            "speedup": None if seconds is None else gd_time / max(seconds, 1e-12),
        }
    return {
        "seed": seed,
        "target": target,
        "rows": rows,
        "to_gd_level": to_gd_level,
        "speedups": speedups,
        "wins": wins,
        "pairwise": pairwise,
    }


def markdown(
    results: list[dict],
    reference: float,
    budgets: dict[str, int],
    warmup_steps: int = 0,
    kink_options: dict | None = None,
) -> str:
    """The Markdown table of every seed and method, and the speedups."""
    lines = [
        "| seed | method | reaches | iterations | seconds | µs/iteration | run: iterations "
        "/ seconds / stop | final loss | loss / L_DNC | RANK M_1..M_4 | RANK M̃_4 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for row in result["rows"]:
            if row["reached"]:
                reaches = "best + 1e-6"
            elif row["method"] == "gd":
                reaches = "never: whole run"
            else:
                reaches = "own final + 1e-6 (never the best)"
            lines.append(
                f"| {row['seed']} | {row['method']} | {reaches} | {row['iterations']} | "
                f"{row['seconds']:.3f} | {row['step_microseconds']:.0f} | "
                f"{row['total_iterations']} / {row['total_seconds']:.2f} / {row['stop_reason']} | "
                f"{row['loss']:.6f} | {row['loss'] / reference:.4f} | "
                f"({', '.join(map(str, row['ranks']))}) | {row['last_pre_rank']} |"
            )
    lines.append("")
    quasi_newton = [method for method in budgets if method != "gd"]
    lines.append(
        f"L_DNC = {reference:.8f} (reference only). Budgets: GD {budgets['gd']} steps (η = "
        f"{LEARNING_RATE}); "
        + ", ".join(f"{method} {budgets[method]} iterations" for method in quasi_newton)
        + f"; GD warm-up {warmup_steps} steps; stationarity tolerance 1e-9."
    )
    if kink_options:
        lines.append(
            "kink_lbfgs: "
            + ", ".join(f"{key} {value}" for key, value in kink_options.items())
            + "."
        )
    for result in results:
        missed = {row["method"] for row in result["rows"] if not row["reached"]}
        speedups = ", ".join(
            f"{method} {value:.1f}×" + (" (never reaches the target: loses)" if method in missed else "")
            for method, value in result["speedups"].items()
        )
        lines.append(
            f"Seed {result['seed']}: target {result['target']:.8f}; speedup over GD: {speedups}."
        )
        for method, reached in result["to_gd_level"].items():
            if reached is None:
                lines.append(f"  {method} never reaches GD's final loss + 1e-6.")
                continue
            iterations, seconds, gd_seconds = reached
            lines.append(
                f"  {method} reaches GD's final loss + 1e-6 after {iterations} iterations, "
                f"{seconds:.3f} s (GD: {gd_seconds:.3f} s; ratio {gd_seconds / seconds:.1f}×)."
            )
    for method in quasi_newton:
        values = [
            result["speedups"][method] if result["wins"][method] else 0.0 for result in results
        ]
        won = sum(result["wins"][method] for result in results)
        lines.append(
            f"All methods' best as target: speedup of {method} over seeds (0 where it never "
            f"reaches the target): min {min(values):.1f}×, median {np.median(values):.1f}×, max "
            f"{max(values):.1f}×; reaches the target on {won} of {len(results)} seeds."
        )
    lines += [
        "",
        "Against GD alone (the goal's measure): target = the lower of the two final losses + "
        "1e-6; GD's time is its whole run when it never gets there (a lower bound); a method "
        "that never gets there loses (speedup 0).",
        "",
        "| seed | method | target | GD seconds | method iterations | method seconds | speedup |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for method, pair in result["pairwise"].items():
            gd_seconds = f"{pair['gd_seconds']:.3f}"
            if not pair["gd_reaches"]:
                gd_seconds += " (never: whole run)"
            if pair["seconds"] is None:
                tail = "— | never | loses |"
            else:
                tail = f"{pair['iterations']} | {pair['seconds']:.3f} | {pair['speedup']:.1f}× |"
            lines.append(
                f"| {result['seed']} | {method} | {pair['target']:.8f} | {gd_seconds} | {tail}"
            )
    lines.append("")
    for method in quasi_newton:
        values = [result["pairwise"][method]["speedup"] or 0.0 for result in results]
        won = sum(result["pairwise"][method]["seconds"] is not None for result in results)
        goal = sum(value >= 20.0 for value in values)
        lines.append(
            f"Against GD alone: speedup of {method} over seeds (0 where it loses): min "
            f"{min(values):.1f}×, median {np.median(values):.1f}×, max {max(values):.1f}×; "
            f"reaches the target on {won} of {len(results)} seeds; ≥ 20× (the goal) on {goal} "
            f"of {len(results)}."
        )
    return "\n".join(lines)


def benchmark_global_seed(
    model: DeepUFM,
    seed: int,
    gd_steps: int,
    max_starts: int | None = None,
    patience: int | None = None,
) -> dict:
    """GD once from the seed's initialization, then the global search with ``seed``; one row.

    ``max_starts``/``patience`` None keep :func:`ufm.solvers.solve`'s defaults; the time budget
    is always off (``time_budget=None``).
    """
    gd = timed_run(model, model.random_parameters(seed), "gd", gd_steps)
    gd_loss, gd_seconds = gd.solution.loss, gd.solution.time_seconds
    starts, seconds, best = [], [], []
    clock = time.perf_counter

    def observe(done: int, loss: float) -> None:
        seconds.append(clock() - start)
        starts.append(done)
        best.append(loss)

    options = {"time_budget": None}
    if max_starts is not None:
        options["max_starts"] = max_starts
    if patience is not None:
        options["patience"] = patience
    start = clock()
    found = solvers.solve(
        model, "global", seed=seed, predicted=None, progress=False, callback=observe, **options
    )
    total = clock() - start
    best_so_far = np.array(best)
    level = gd_loss + WITHIN
    hits = np.flatnonzero(best_so_far <= level)
    reach = int(hits[0]) if hits.size else None
    by_gd_time = np.flatnonzero(np.array(seconds) <= gd_seconds)
    at_gd_time = float(best_so_far[by_gd_time[-1]]) if by_gd_time.size else None
    reach_seconds = None if reach is None else float(seconds[reach])
    return {
        "seed": seed,
        "gd_steps": gd.solution.iterations,
        "gd_loss": gd_loss,
        "gd_seconds": gd_seconds,
        "gd_stop": gd.solution.stop_reason,
        "gd_ranks": solvers.class_mean_ranks(model, gd.solution.parameters),
        "at_gd_time": at_gd_time,
        "within_gd_time": reach_seconds is not None and reach_seconds <= gd_seconds,
        "reach_seconds": reach_seconds,
        "reach_starts": None if reach is None else int(starts[reach]),
        "speedup": (
            0.0 if reach_seconds is None else gd_seconds / max(reach_seconds, 1e-12)
        ),
        "final": found.loss,
        "ranks": found.basins[0].ranks if found.basins else (),
        "found_by": found.basins[0].found_by if found.basins else "",
        "basins": len(found.basins),
        "starts": int(starts[-1]) if starts else 0,
        "total_seconds": total,
        "stop_reason": found.stop_reason,
    }


def global_markdown(rows: list[dict], reference: float) -> str:
    """The per-seed table of the global mode and its summary: (a), (b), (c)."""

    def ranks(values) -> str:
        return "(" + ", ".join(map(str, values)) + ")"

    lines = [
        "| seed | GD final | GD ranks | T_GD s | global best at T_GD | (a) ≤ GD final by T_GD "
        "| (c) s to GD final | starts to GD final | speed-up T_GD / s | (b) global final "
        f"| final − {GD_LOWEST} | ranks M_1..M_4, M̃_4 | found by | basins | starts | total s "
        "| stop |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        at_gd_time = "—" if row["at_gd_time"] is None else f"{row['at_gd_time']:.7f}"
        if row["reach_seconds"] is None:
            reach = "never | — | 0×"
        else:
            reach = f"{row['reach_seconds']:.3f} | {row['reach_starts']} | {row['speedup']:.1f}×"
        lines.append(
            f"| {row['seed']} | {row['gd_loss']:.7f} | {ranks(row['gd_ranks'])} | "
            f"{row['gd_seconds']:.2f} | {at_gd_time} | "
            f"{'yes' if row['within_gd_time'] else 'no'} | {reach} | {row['final']:.9f} | "
            f"{row['final'] - GD_LOWEST:+.1e} | {ranks(row['ranks'])} | "
            f"{row['found_by']} | {row['basins']} | {row['starts']} | "
            f"{row['total_seconds']:.1f} | {row['stop_reason']} |"
        )
    count = len(rows)
    within = sum(row["within_gd_time"] for row in rows)
    below = sum(row["final"] < GD_LOWEST for row in rows)
    clearly_below = sum(row["final"] < GD_LOWEST - WITHIN for row in rows)
    level_with = sum(abs(row["final"] - GD_LOWEST) <= WITHIN for row in rows)
    below_gd = sum(row["final"] < row["gd_loss"] - WITHIN for row in rows)
    finals = np.array([row["final"] for row in rows])
    speedups = np.array([row["speedup"] for row in rows])
    reached = [row["reach_seconds"] for row in rows if row["reach_seconds"] is not None]
    goal = int(np.sum(speedups >= GOAL_SPEEDUP))
    totals = np.array([row["total_seconds"] for row in rows])
    gd_times = np.array([row["gd_seconds"] for row in rows])
    basins = np.array([row["basins"] for row in rows])
    profiles: dict[str, int] = {}
    for row in rows:
        profiles[ranks(row["ranks"])] = profiles.get(ranks(row["ranks"]), 0) + 1
    lines += [
        "",
        f"GD: η = {LEARNING_RATE}, {rows[0]['gd_steps'] if rows else 0} steps from each seed's "
        f"E-B1 initialization; T_GD median {np.median(gd_times):.2f} s. Global search: "
        "solvers.solve(model, 'global', seed=s), default settings, time_budget None. Level: GD's "
        f"final + {WITHIN:g} (absolute). L_DNC = {reference:.8f} (reference only).",
        f"(a) global best ≤ GD final + {WITHIN:g} within T_GD: {within} of {count} seeds "
        f"({100 * within / count:.0f}%; goal 100%).",
        f"(b) global final below {GD_LOWEST} (the lowest minimum GD has reached on this model): "
        f"{below} of {count} seeds (goal: most); below it by more than {WITHIN:g}: "
        f"{clearly_below}; within ±{WITHIN:g} of it: {level_with}; below GD's own final − "
        f"{WITHIN:g}: {below_gd} of {count}; finals min {finals.min():.9f}, median "
        f"{np.median(finals):.9f}, max {finals.max():.9f}; best-basin ranks "
        + ", ".join(f"{key} on {value}" for key, value in sorted(profiles.items()))
        + f"; basins median {np.median(basins):.0f} (range {basins.min()}–{basins.max()}); total "
        f"time median {np.median(totals):.1f} s (range {totals.min():.1f}–{totals.max():.1f} s).",
        f"(c) time to GD final + {WITHIN:g}: reached on {len(reached)} of {count} seeds"
        + (
            f", median {np.median(reached):.3f} s (range {min(reached):.3f}–{max(reached):.3f} s)"
            if reached
            else ""
        )
        + f"; speed-up T_GD / time (0 where never): median {np.median(speedups):.1f}×, min "
        f"{speedups.min():.1f}×, max {speedups.max():.1f}×; ≥ {GOAL_SPEEDUP:.0f}× (the goal) on "
        f"{goal} of {count} seeds.",
    ]
    return "\n".join(lines)


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.processor() or platform.machine()}, {cores} CPU cores, BLAS 1 thread"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="GD 20,000 steps, L-BFGS 3,000")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="initialization seeds")
    parser.add_argument(
        "--global",
        dest="global_search",
        action="store_true",
        help="GD once per seed against solvers.solve(method='global', seed=s): (a), (b), (c)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        choices=["gd", "lbfgs", "numpy_lbfgs", "kink_lbfgs"],
        help="methods to time (default all; gd is always included; not with --global)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="GD steps before the other phases of numpy_lbfgs and kink_lbfgs (default 0)",
    )
    parser.add_argument(
        "--kink-iterations", type=int, default=None, help="kink_lbfgs: iterations in all (3000)"
    )
    for key, kind, text in KINK_OPTIONS:
        default = list(LOW_RANK[key]) if key == "smoothing" else LOW_RANK[key]
        parser.add_argument(
            "--" + key.replace("_", "-"),
            type=kind,
            nargs="*" if key == "smoothing" else None,
            default=None,
            help=f"kink_lbfgs: {text} (default {default})",
        )
    parser.add_argument(
        "--max-starts",
        type=int,
        default=None,
        help=f"--global: at most this many starts (default {GLOBAL_DEFAULTS['max_starts']})",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="--global: stop after this many starts without a lower basin (default solve's, 24)",
    )
    arguments = parser.parse_args(argv)
    if any(seed < 0 for seed in arguments.seeds):
        parser.error(f"--seeds must be non-negative integers, got {arguments.seeds}")
    kink_flags = ["--" + key.replace("_", "-") for key, _, _ in KINK_OPTIONS]
    local_flags = {
        "--methods": arguments.methods,
        "--warmup": arguments.warmup,
        "--kink-iterations": arguments.kink_iterations,
        **{flag: getattr(arguments, key) for flag, (key, _, _) in zip(kink_flags, KINK_OPTIONS)},
    }
    global_flags = {"--max-starts": arguments.max_starts, "--patience": arguments.patience}
    if arguments.global_search:
        given = [flag for flag, value in local_flags.items() if value is not None]
        if given:
            parser.error(f"--global must not be combined with {', '.join(given)}")
        for flag, value in global_flags.items():
            if value is not None and value < 1:
                parser.error(f"{flag} must be an integer >= 1, got {value}")
    else:
        given = [flag for flag, value in global_flags.items() if value is not None]
        if given:
            parser.error(f"{', '.join(given)} must be used with --global")
    gd_budget, qn_budget = (20_000, 3_000) if arguments.quick else (100_000, 10_000)
    model = build_model()
    reference = optima.predict(model).optimal_loss
    header = (
        f"4-DUFM K = {NUM_CLASSES}, L = {NUM_LAYERS}, width {WIDTH}, n = {PER_CLASS}, "
        f"λ = {PENALTY} on every block; {machine()}\n"
    )
    if arguments.global_search:
        rows = []
        for seed in arguments.seeds:
            rows.append(
                benchmark_global_seed(
                    model, seed, gd_budget, arguments.max_starts, arguments.patience
                )
            )
            row = rows[-1]
            print(
                f"seed {seed}: GD {row['gd_loss']:.6f} in {row['gd_seconds']:.2f} s; global "
                f"{row['final']:.6f} in {row['total_seconds']:.1f} s ({row['starts']} starts)",
                file=sys.stderr,
                flush=True,
            )
        print(header)
        print(global_markdown(rows, reference))
        return 0
    methods = arguments.methods or ["gd", "lbfgs", "numpy_lbfgs", "kink_lbfgs"]
    warmup = arguments.warmup if arguments.warmup is not None else 0
    if warmup < 0:
        parser.error(f"--warmup must be an integer >= 0, got {warmup}")
    budgets = {"gd": gd_budget}
    budgets.update({m: qn_budget for m in methods if m != "gd"})
    if "kink_lbfgs" in budgets:
        budgets["kink_lbfgs"] = (
            arguments.kink_iterations if arguments.kink_iterations is not None else 3000
        )
    kink_options = {
        key: getattr(arguments, key) if getattr(arguments, key) is not None else LOW_RANK[key]
        for key, _, _ in KINK_OPTIONS
    }
    kink_options["smoothing"] = tuple(kink_options["smoothing"])
    results = [
        benchmark_seed(model, seed, budgets, warmup, kink_options) for seed in arguments.seeds
    ]
    print(header)
    print(markdown(results, reference, budgets, warmup, kink_options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
