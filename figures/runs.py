"""Solver runs with checkpoints, for figures that plot quantities along gradient descent.

:func:`ufm.solvers.solve` records the loss along a run; the figures also need the per-layer
metrics at intermediate iterates. Gradient descent is memoryless, so a run of ``k`` steps equals
consecutive runs whose step counts add up to ``k``, each started at the previous end point;
:func:`gradient_descent_checkpoints` runs it that way and returns the iterate at every
checkpoint. Metrics come from :func:`ufm.metrics.layer_report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ufm.metrics import LayerReport, layer_report
from ufm.models import Parameters
from ufm.solvers import log_spaced_iterations, solve

__all__ = [
    "Checkpoint",
    "checkpoint_iterations",
    "gradient_descent_checkpoints",
    "dufm_layer_report",
    "report_value",
    "singular_values",
]


@dataclass(frozen=True)
class Checkpoint:
    """The iterate of a gradient-descent run after ``iteration`` steps.

    Attributes
    ----------
    iteration : int
    parameters : ufm.models.Parameters
    loss : float
        Φ at ``parameters`` (as reported by :func:`ufm.solvers.solve`).
    diverged : bool
        The objective became non-finite in the segment that ends here.
    """

    iteration: int
    parameters: Parameters
    loss: float
    diverged: bool = False


def checkpoint_iterations(max_iterations: int, points: int) -> list[int]:
    """0 and about ``points`` log-spaced iterations up to ``max_iterations`` (the last included)."""
    grid = [int(value) for value in log_spaced_iterations(max_iterations, points)]
    if grid[-1] != max_iterations:
        grid.append(int(max_iterations))
    return grid


def gradient_descent_checkpoints(
    model: Any,
    seed: int,
    checkpoints: Sequence[int],
    *,
    lr: float,
    init_scale: float = 1.0,
    method: str = "gd",
) -> list[Checkpoint]:
    """Run ``method`` (GD by default) from the random point of ``seed``, keeping checkpoints.

    Parameters
    ----------
    model : ufm.models model
        The objective.
    seed : int
        Seed of ``model.random_parameters`` (the E-B1 initialization).
    checkpoints : sequence of int
        Increasing iteration counts, the first one 0.
    lr : float
        GD step η.
    init_scale : float
        Scale of the random initialization.
    method : str
        ``"gd"`` (exact continuation across segments) or another method of
        :func:`ufm.solvers.solve` (then the checkpoints are restarts of its iterations).

    Returns
    -------
    list of Checkpoint
        One per checkpoint reached; the list stops early if the run diverged.
    """
    parameters = model.random_parameters(seed, init_scale)
    iterations = list(checkpoints)
    if iterations[0] != 0 or any(b <= a for a, b in zip(iterations, iterations[1:])):
        raise ValueError(f"checkpoints must increase from 0, got {iterations[:5]}...")
    loss = float(model.objective(parameters).total)
    result = [Checkpoint(0, parameters, loss)]
    for previous, current in zip(iterations, iterations[1:]):
        solution = solve(
            model,
            method,
            initial=parameters,
            lr=lr,
            tolerance=0.0,
            max_iterations=current - previous,
            history_points=0,
            predicted=None,
            progress=False,
        )
        parameters = solution.parameters
        diverged = solution.diverged
        result.append(Checkpoint(current, parameters, float(solution.loss), diverged))
        if diverged:
            break
    return result


def dufm_layer_report(model: Any, parameters: Parameters, rank_rtol: float | None = None) -> LayerReport:
    """:func:`ufm.metrics.layer_report` of a deep free-features model at ``parameters``.

    Rows: H_l (post-activation, the input of W_l) for l = 1..L and H̃_l (pre-activation) for
    l ≥ 2, with W_1..W_L, λ_1..λ_L and λ_H (docs/theory.md §3, "Per-layer DNC metrics").
    """
    features = model.forward(parameters)
    pre = [None] + list(features.pre_activations[1:])
    return layer_report(
        list(features.post_activations),
        model.labels,
        list(parameters.weights),
        pre_activations=pre,
        weight_decays=list(model.lam_w),
        feature_decay=model.lam_h,
        rank_rtol=rank_rtol,
        num_classes=model.num_classes,
        undefined="none",
    )


def report_value(report: LayerReport, layer: int, kind: str, metric: str) -> float:
    """The value of ``metric`` in row (``layer``, ``kind``) of ``report``; NaN if absent or None."""
    for row in report.rows:
        if row.layer == layer and row.kind == kind:
            value = row.metrics.get(metric)
            return float("nan") if value is None else float(value)
    return float("nan")


def singular_values(matrix: Any) -> np.ndarray:
    """Singular values of ``matrix`` in decreasing order (numpy's SVD, float64)."""
    return np.linalg.svd(np.asarray(matrix, dtype=np.float64), compute_uv=False)
