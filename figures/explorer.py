"""The interactive explorer of docs/theory.md §4.3 and §6 ("λ–width exploration"), as plain functions.

Two views, used by ``figures/explorer.ipynb`` (ipywidgets sliders; shipped with the package,
``ufm-figures explore notebook`` copies it out and opens it) and by the command line
``ufm-figures explore …`` (``python -m figures explore …``, PNG files), so that both draw exactly
the same plots:

1. **Predicted against found optima.** :func:`explore_dufm` builds the L-DUFM (or the deep
   linear UFM) of ``ufm.models`` with K classes, n samples per class, L weight matrices of equal
   width and one λ on every block (λ_H = λ_1 = … = λ_L), predicts its optimum with
   :func:`ufm.optima.predict_dufm` / :func:`ufm.optima.predict_deep_linear`, solves it from one
   random start with :func:`ufm.solvers.solve` (L-BFGS, capped iterations: a slider answers in
   about a second), and compares the two: loss, output scale q, singular values of every W_l,
   the per-layer collapse metrics of :func:`ufm.reports.model_layer_report`.
   :func:`threshold_curve` is the prediction along λ with the threshold
   λ_crit = (P_crit/n)^{1/(L+1)} (:func:`ufm.optima.dnc_critical_lambda`).
   :func:`plot_exploration` draws all of it.
2. **A sweep's store.** :func:`store_cells` lists the runs of a :class:`fullnet.store.SweepStore`
   with their (λ, width, depths, seed) coordinates; :func:`plot_cell_history` draws stored
   metrics over training for one run; :func:`plot_sweep_heatmap` draws a final metric on the
   (λ, width) plane, mean over seeds (:func:`fullnet.sweeps.aggregate_grid`).

None of these functions creates a widget; each plotting function draws into given matplotlib
axes or makes its own figure and returns it. Every plotted number comes from ``ufm`` or
``fullnet``.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .common import layer_colors, new_figure

__all__ = [
    "ENVIRONMENT_STORE",
    "MODELS",
    "DEFAULT_HISTORY_METRICS",
    "ExplorerResult",
    "ThresholdCurve",
    "StoreCell",
    "explore_dufm",
    "build_model",
    "threshold_curve",
    "plot_exploration",
    "plot_threshold_curve",
    "quick_sweep_store",
    "resolve_store",
    "store_cells",
    "find_cell",
    "store_metric_names",
    "cell_history",
    "plot_cell_history",
    "sweep_grid",
    "plot_sweep_heatmap",
    "save_png",
    "png_bytes",
    "main",
    "notebook_path",
    "copy_notebook",
]

#: Environment variable naming the sweep store the notebook opens.
ENVIRONMENT_STORE = "UFM_EXPLORER_STORE"

#: Models of :func:`explore_dufm`: the ReLU L-DUFM and the deep linear UFM (L = 1: the UFM).
MODELS = ("dufm", "deep_linear")

#: Metrics drawn by :func:`plot_cell_history` by default (one panel each, every stored layer).
DEFAULT_HISTORY_METRICS = ("objective", "NC1.tr_unc", "NC2.orth", "BAL.scalar")

FLOOR = 1e-16  # log-axis floor for values that are exactly 0

#: The packaged quick Gaussian λ–width sweep (``fullnet/configs/``).
QUICK_SWEEP_NAME = "sweep_lambda_width_gaussian_quick"


# --------------------------------------------------------------------------------------------
# Predicted against found optima
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplorerResult:
    """One solve of a deep unconstrained-features model next to its predicted optimum.

    Attributes
    ----------
    model : str
        ``"dufm"`` or ``"deep_linear"``.
    num_classes, num_layers, per_class, width : int
        K, L, n and the width d of every layer (d_1 = … = d_L).
    lam : float
        λ_1 = … = λ_L.
    lam_h : float
        λ_H.
    seed : int
        Seed of the random initialization.
    method : str
        Solver method of :func:`ufm.solvers.solve`.
    prediction : ufm.optima.PredictedOptimum
        The predicted optimum (L_DNC and the DNC structure).
    solution : ufm.solvers.Solution
        The solver's outcome (parameters, history, stop reason).
    report : ufm.metrics.LayerReport
        Per-layer metrics of the found point (:func:`ufm.reports.model_layer_report`).
    predicted_kind : str
        ``"global_optimum"`` (proven: K = 2, L = 1 or the deep linear UFM) or ``"dnc_reference"``
        (the best DNC value of a ReLU DUFM with K > 2, L ≥ 2; low-rank points can be lower,
        docs/theory.md §4.5).
    critical_lambda : float
        λ_crit: with one λ on every block the optimum is nonzero iff λ < λ_crit.
    found_q : float
        Output scale q of the found output F ≈ qY (:func:`ufm.reports.output_scale`).
    singular_values : tuple of numpy.ndarray
        Singular values of the found W_1..W_L, decreasing.
    seconds : float
        Wall time of the prediction, the solve and the report.
    """

    model: str
    num_classes: int
    num_layers: int
    per_class: int
    width: int
    lam: float
    lam_h: float
    seed: int
    method: str
    prediction: Any
    solution: Any
    report: Any
    predicted_kind: str
    critical_lambda: float
    found_q: float
    singular_values: tuple
    seconds: float

    @property
    def predicted_loss(self) -> float:
        """The predicted optimum L_DNC (docs/theory.md §4.3)."""
        return float(self.prediction.optimal_loss)

    @property
    def found_loss(self) -> float:
        """Φ at the solver's end point."""
        return float(self.solution.loss)

    @property
    def gap(self) -> float:
        """Φ_found − L_DNC (≥ −rounding when ``predicted_kind`` is ``"global_optimum"``)."""
        return self.found_loss - self.predicted_loss

    @property
    def relative_gap(self) -> float:
        """``gap / L_DNC``."""
        return self.gap / self.predicted_loss

    @property
    def predicted_q(self) -> float:
        """q* of the prediction (0 for the zero solution)."""
        return float(self.prediction.q_star)

    @property
    def singular_value_errors(self) -> list[float | None]:
        """Per layer, max ``|s_found − s_predicted|`` over the first K singular values (the rest are
        predicted 0). None for W₁ of the ReLU DUFM with L ≥ 2, whose spectrum varies along the
        flat family of optima (docs/theory.md §4.4; only ‖W₁‖_F is fixed)."""
        errors: list[float | None] = []
        for layer, found in enumerate(self.singular_values, start=1):
            if layer == 1 and self.model == "dufm" and self.num_layers >= 2:
                errors.append(None)
                continue
            predicted = np.zeros(found.shape[0])
            values = np.asarray(self.prediction.singular_values[layer - 1], dtype=float)
            predicted[: min(values.size, predicted.size)] = values[: predicted.size]
            errors.append(float(np.max(np.abs(found - predicted))))
        return errors

    def comparison(self) -> dict[str, Any]:
        """The comparison numbers as a flat JSON-serializable dict."""
        return {
            "model": self.model,
            "K": self.num_classes,
            "L": self.num_layers,
            "n": self.per_class,
            "width": self.width,
            "lam": self.lam,
            "lam_h": self.lam_h,
            "seed": self.seed,
            "method": self.method,
            "critical_lambda": self.critical_lambda,
            "predicted_is_zero": bool(self.prediction.is_zero),
            "predicted_kind": self.predicted_kind,
            "predicted_loss": self.predicted_loss,
            "found_loss": self.found_loss,
            "gap": self.gap,
            "relative_gap": self.relative_gap,
            "predicted_q": self.predicted_q,
            "found_q": self.found_q,
            "singular_value_errors": self.singular_value_errors,
            "found_BAL.scalar": self.report.totals.get("BAL.scalar"),
            "stop_reason": self.solution.stop_reason,
            "iterations": int(self.solution.iterations),
            "gradient_norm": float(self.solution.gradient_norm),
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        """Two lines: the setting, then predicted against found."""
        zero = " (zero solution optimal)" if self.prediction.is_zero else ""
        return (
            f"{self.model} K={self.num_classes} L={self.num_layers} n={self.per_class} "
            f"d={self.width} λ={self.lam:.4g} (λ_crit={self.critical_lambda:.4g}){zero}, "
            f"seed {self.seed}, {self.method}\n"
            f"Φ found {self.found_loss:.8g} vs L_DNC {self.predicted_loss:.8g} "
            f"[{self.predicted_kind}] gap {self.gap:+.3g}; q found {self.found_q:.4g} vs "
            f"q* {self.predicted_q:.4g}; {self.solution.stop_reason} after "
            f"{self.solution.iterations} it., {self.seconds:.2f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        """Comparison, prediction, found singular values and the per-layer report (JSON)."""
        return {
            "comparison": self.comparison(),
            "prediction": self.prediction.to_dict(),
            "found_singular_values": [values.tolist() for values in self.singular_values],
            "report": self.report.to_dict(),
            "history": self.solution.history.to_dict(),
        }


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _positive_float(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def build_model(model: str, K: int, L: int, n: int, lam: float, width: int, lam_h: float | None = None):
    """The ``ufm.models`` objective of the explorer: ``DeepUFM`` or ``DeepLinearUFM`` with L
    layers of width ``width`` and penalties λ_H = ``lam_h`` (default ``lam``), λ_l = ``lam``."""
    from ufm.models import DeepLinearUFM, DeepUFM

    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    K = _positive_int(K, "K", 2)
    L = _positive_int(L, "L")
    n = _positive_int(n, "n")
    width = _positive_int(width, "width")
    lam = _positive_float(lam, "lam")
    lam_h = lam if lam_h is None else _positive_float(lam_h, "lam_h")
    cls = DeepUFM if model == "dufm" else DeepLinearUFM
    return cls(num_classes=K, per_class=n, widths=(width,) * L, lam_h=lam_h, lam_w=lam)


def explore_dufm(
    K: int = 2,
    L: int = 3,
    n: int = 5,
    lam: float = 0.004,
    width: int = 10,
    seed: int = 0,
    method: str = "numpy_lbfgs",
    *,
    model: str = "dufm",
    lam_h: float | None = None,
    max_iterations: int | None = None,
    tolerance: float = 1e-9,
    lr: float = 0.5,
    init_scale: float = 1.0,
) -> ExplorerResult:
    """Predict and solve the L-DUFM (or deep linear UFM) of the explorer; compare the two.

    Parameters
    ----------
    K, L, n : int
        Classes (≥ 2), weight matrices (≥ 1), samples per class (≥ 1).
    lam : float
        λ of every weight matrix (and of H₁ unless ``lam_h`` is given), > 0.
    width : int
        Width d of every layer (the theory needs d ≥ K for a collapsed optimum).
    seed : int
        Seed of the random initialization (:meth:`random_parameters`, E-B1 scale).
    method : {"numpy_lbfgs", "lbfgs", "gd", "kink_lbfgs"}
        :func:`ufm.solvers.solve` method (any of ``ufm.solvers.METHODS`` is accepted);
        ``"kink_lbfgs"`` runs with ``ufm.solvers.KINK_LBFGS_LOW_RANK_SETTINGS`` (the low-rank
        minima of (C); default cap 3,000 iterations).
    model : {"dufm", "deep_linear"}
        ReLU L-DUFM (docs/theory.md §2(c)) or deep linear UFM (§2(b)); L = 1 is the UFM without bias.
    lam_h : float, optional
        λ_H (default ``lam``).
    max_iterations : int, optional
        Iteration cap (default 1000 for L-BFGS, 5000 for ``gd``): under a second up to
        K = 8, L = 5, n = 10, d = 32 (the notebook's slider ranges).
    tolerance : float
        Stationarity tolerance of the solver.
    lr : float
        Step of ``gd`` (and of the GD warm-up steps of ``numpy_lbfgs``, if any).
    init_scale : float
        Scale of the random initialization.
    """
    from ufm.optima import dnc_critical_lambda, predict_deep_linear, predict_dufm
    from ufm.reports import model_layer_report, output_scale
    from ufm.solvers import KINK_LBFGS_LOW_RANK_SETTINGS, METHODS, solve

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    seed = _positive_int(seed, "seed", 0)
    start = time.perf_counter()
    objective = build_model(model, K, L, n, lam, width, lam_h)
    predict = predict_dufm if model == "dufm" else predict_deep_linear
    prediction = predict(K, L, n, objective.lam_h, objective.lam_w, widths=objective.widths)
    options = dict(KINK_LBFGS_LOW_RANK_SETTINGS) if method == "kink_lbfgs" else {}
    if max_iterations is None:
        defaults = {"gd": 5_000, "torch_gd": 5_000, "kink_lbfgs": 3_000}
        max_iterations = defaults.get(method, 1_000)
    solution = solve(
        objective, method, seed=seed, max_iterations=max_iterations, tolerance=tolerance, lr=lr,
        init_scale=init_scale, progress=False, **options,
    )
    report = model_layer_report(objective, solution.parameters)
    output = objective.forward(solution.parameters).output
    found_q = output_scale(np.asarray(output), objective.targets)
    spectra = tuple(
        np.linalg.svd(np.asarray(weight, dtype=np.float64), compute_uv=False)
        for weight in solution.parameters.weights
    )
    kind = solution.predicted_kind or "global_optimum"
    return ExplorerResult(
        model=model,
        num_classes=objective.num_classes,
        num_layers=objective.num_layers,
        per_class=objective.per_class,
        width=int(width),
        lam=float(lam),
        lam_h=float(objective.lam_h),
        seed=seed,
        method=method,
        prediction=prediction,
        solution=solution,
        report=report,
        predicted_kind=kind,
        critical_lambda=dnc_critical_lambda(K, L, n),
        found_q=float(found_q),
        singular_values=spectra,
        seconds=time.perf_counter() - start,
    )


@dataclass(frozen=True)
class ThresholdCurve:
    """The predicted optimum along λ (one λ on every block), docs/theory.md §4.3.

    Attributes
    ----------
    num_classes, num_layers, per_class : int
    lams : numpy.ndarray
        λ values, ascending.
    optimal_loss, q_star : numpy.ndarray
        L_DNC and q* at each λ (:func:`ufm.optima.predict_dufm`).
    is_zero : numpy.ndarray of bool
        The zero solution is optimal.
    critical_lambda : float
        λ_crit (:func:`ufm.optima.dnc_critical_lambda`).
    threshold : float
        P_crit on P = nλ^{L+1} (:func:`ufm.optima.dnc_threshold`).
    """

    num_classes: int
    num_layers: int
    per_class: int
    lams: np.ndarray
    optimal_loss: np.ndarray
    q_star: np.ndarray
    is_zero: np.ndarray
    critical_lambda: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "K": self.num_classes, "L": self.num_layers, "n": self.per_class,
            "lams": self.lams.tolist(), "optimal_loss": self.optimal_loss.tolist(),
            "q_star": self.q_star.tolist(), "is_zero": self.is_zero.tolist(),
            "critical_lambda": self.critical_lambda, "threshold": self.threshold,
        }


def threshold_curve(K: int, L: int, n: int, lams: Sequence[float] | None = None) -> ThresholdCurve:
    """L_DNC and q* of :func:`ufm.optima.predict_dufm` at every λ of ``lams`` (λ_H = λ_l = λ).

    ``lams`` defaults to 200 log-spaced values from λ_crit/100 to 3λ_crit.
    """
    from ufm.optima import dnc_critical_lambda, dnc_threshold, predict_dufm

    critical = dnc_critical_lambda(K, L, n)
    if lams is None:
        lams = np.logspace(math.log10(critical / 100.0), math.log10(3.0 * critical), 200)
    values = np.sort(np.asarray([_positive_float(value, "lams[i]") for value in lams], dtype=float))
    if values.size == 0:
        raise ValueError("lams must hold at least one λ")
    predictions = [predict_dufm(K, L, n, lam, lam) for lam in values]
    return ThresholdCurve(
        num_classes=int(K), num_layers=int(L), per_class=int(n), lams=values,
        optimal_loss=np.array([item.optimal_loss for item in predictions]),
        q_star=np.array([item.q_star for item in predictions]),
        is_zero=np.array([item.is_zero for item in predictions], dtype=bool),
        critical_lambda=critical,
        threshold=dnc_threshold(K, L),
    )


def _axes_list(axes: Any) -> list:
    if axes is None:
        return []
    if hasattr(axes, "ravel"):
        return list(axes.ravel())
    if isinstance(axes, (list, tuple)):
        return list(axes)
    return [axes]


def plot_threshold_curve(curve: ThresholdCurve, axis: Any = None, *, mark: float | None = None,
                         found: Sequence[tuple[float, float]] = ()):
    """L_DNC (left axis) and q* (right axis) against λ, λ_crit as a vertical line.

    Parameters
    ----------
    curve : ThresholdCurve
    axis : matplotlib axis, optional
        Drawn into; a new figure otherwise.
    mark : float, optional
        A λ to mark (the slider's value).
    found : sequence of (λ, Φ)
        Solver end points to overlay.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if axis is None:
        figure, axis = new_figure(1, 1, 5.5, 3.8)
    figure = axis.figure
    axis.plot(curve.lams, curve.optimal_loss, color="C0", label="L_DNC (predicted)")
    axis.axhline(0.5, color="grey", lw=0.8, ls=":", label="zero solution (½)")
    axis.axvline(curve.critical_lambda, color="C3", lw=1.0, ls="--",
                 label=f"λ_crit = {curve.critical_lambda:.4g}")
    if mark is not None:
        axis.axvline(mark, color="black", lw=0.8, alpha=0.6, label=f"λ = {mark:.4g}")
    if found:
        xs, ys = zip(*found)
        axis.plot(xs, ys, "k*", ms=8, label="found Φ")
    axis.set_xscale("log")
    axis.set_xlabel("λ (λ_H = λ_1 = … = λ_L)")
    axis.set_ylabel("optimal loss")
    twin = axis.twinx()
    twin.plot(curve.lams, curve.q_star, color="C1", ls="-.", label="q*")
    twin.set_ylabel("q*", color="C1")
    twin.set_ylim(-0.05, 1.05)
    twin.grid(False)
    handles, labels = axis.get_legend_handles_labels()
    more_handles, more_labels = twin.get_legend_handles_labels()
    axis.legend(handles + more_handles, labels + more_labels, loc="center left", fontsize=7)
    axis.set_title(
        f"threshold: K={curve.num_classes}, L={curve.num_layers}, n={curve.per_class}, "
        f"P_crit={curve.threshold:.3g}"
    )
    return figure


def _report_rows(result: ExplorerResult) -> list[tuple[str, list[float]]]:
    """(label, values for l = 1..L) of the per-layer panel; NaN where a metric does not apply."""
    depth = result.num_layers

    def value(layer: int, kind: str, metric: str) -> float:
        for row in result.report.rows:
            if row.layer == layer and row.kind == kind:
                item = row.metrics.get(metric)
                return math.nan if item is None else float(item)
        return math.nan

    layers = range(1, depth + 1)
    series = [
        ("NC1.tr_unc (H_l)", [value(l, "post", "NC1.tr_unc") for l in layers]),
        ("NC1.tr_unc (H̃_l)", [value(l, "pre", "NC1.tr_unc") for l in layers]),
        ("NC2.orth (H_l)", [value(l, "post", "NC2.orth") if l >= 2 else math.nan for l in layers]),
        ("NC3 (span l<L, dual l=L)",
         [value(l, "post", "NC3.span" if l < depth else "NC3.dual") for l in layers]),
    ]
    return [(label, values) for label, values in series if any(math.isfinite(v) for v in values)]


def plot_exploration(result: ExplorerResult, axes: Any = None, *, threshold: bool = True):
    """Predicted against found: loss along the solve, singular values, per-layer metrics and
    (with ``threshold``) the threshold curve with the chosen λ.

    Parameters
    ----------
    result : ExplorerResult
    axes : sequence of 3 or 4 matplotlib axes, optional
        Drawn into (the fourth, if given, gets the threshold curve); by default a new 2×2
        figure (1×3 without ``threshold``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    panels = _axes_list(axes)
    if not panels:
        if threshold:
            figure, grid = new_figure(2, 2, 11.0, 8.0)
        else:
            figure, grid = new_figure(1, 3, 14.0, 4.0)
        panels = list(np.ravel(grid))
    if len(panels) not in (3, 4):
        raise ValueError(f"axes must hold 3 or 4 axes, got {len(panels)}")
    figure = panels[0].figure
    prediction = result.prediction
    k, depth = result.num_classes, result.num_layers

    # (a) Φ along the solve against L_DNC
    axis = panels[0]
    history = result.solution.history
    iterations = np.maximum(np.asarray(history.iteration, dtype=float), 1.0)
    total = np.asarray(history.total, dtype=float)
    axis.plot(iterations, total, color="C0", label=f"Φ found: {result.found_loss:.6g}")
    axis.axhline(result.predicted_loss, color="black", lw=1.0,
                 label=f"L_DNC: {result.predicted_loss:.6g} ({result.predicted_kind})")
    axis.axhline(0.5, color="grey", lw=0.8, ls=":", label="zero solution (½)")
    axis.set_xscale("log")
    if np.all(total > 0):
        axis.set_yscale("log")
    axis.set_xlabel("iteration")
    axis.set_ylabel("Φ")
    axis.set_title(f"loss: gap {result.gap:+.3g} ({result.solution.stop_reason})")
    axis.legend(fontsize=7)

    # (b) singular values of W_l against the prediction
    axis = panels[1]
    colors = layer_colors(depth)
    shown = min(k + 2, max(values.size for values in result.singular_values))
    for layer, (color, found) in enumerate(zip(colors, result.singular_values), start=1):
        found = found[:shown]
        index = np.arange(1, found.size + 1)
        axis.plot(index, np.maximum(found, FLOOR), "o-", color=color, ms=4, label=f"W_{layer} found")
        predicted = np.zeros(found.size)
        values = np.asarray(prediction.singular_values[layer - 1], dtype=float)[: found.size]
        predicted[: values.size] = values
        axis.plot(index, np.maximum(predicted, FLOOR), "x", color=color, ms=8, mew=1.6)
    axis.plot([], [], "kx", label="predicted")
    axis.set_yscale("log")
    axis.set_xticks(np.arange(1, shown + 1))
    axis.set_xlabel("index i")
    axis.set_ylabel("s_i(W_l)")
    note = " (W₁: only ‖W₁‖_F fixed)" if result.model == "dufm" and depth >= 2 else ""
    axis.set_title("singular values" + note)
    axis.legend(fontsize=7, ncols=2)

    # (c) per-layer collapse metrics (0 at the DNC optimum)
    axis = panels[2]
    layers = np.arange(1, depth + 1)
    for position, (label, values) in enumerate(_report_rows(result)):
        values = np.asarray(values, dtype=float)
        axis.plot(layers + 0.06 * (position - 1.5), np.where(np.isfinite(values), np.maximum(values, FLOOR), np.nan),
                  "o-", ms=5, label=label)
    balance = result.report.totals.get("BAL.scalar")
    axis.set_yscale("log")
    axis.set_xticks(layers)
    axis.set_xlabel("layer l")
    title = "per-layer DNC metrics (found)"
    if balance is not None:
        title += f"; BAL.scalar {float(balance):.2g}"
    axis.set_title(title)
    axis.legend(fontsize=7)

    # (d) threshold curve
    if len(panels) == 4:
        if threshold:
            curve = threshold_curve(k, depth, result.per_class, _threshold_lams(result))
            plot_threshold_curve(curve, panels[3], mark=result.lam, found=[(result.lam, result.found_loss)])
        else:
            panels[3].set_visible(False)
    figure.suptitle(result.summary(), fontsize=8.5)
    return figure


def _threshold_lams(result: ExplorerResult) -> np.ndarray:
    """λ grid of the threshold panel: covers λ_crit and the chosen λ."""
    low = min(result.critical_lambda / 30.0, result.lam / 3.0)
    high = max(result.critical_lambda * 3.0, result.lam * 3.0)
    return np.logspace(math.log10(low), math.log10(high), 160)


# --------------------------------------------------------------------------------------------
# A sweep's store
# --------------------------------------------------------------------------------------------


def quick_sweep_store(directory: str | os.PathLike | None = None, *, workers: int | None = None,
                      progress: bool = False) -> Path:
    """Run the quick Gaussian λ–width sweep (the packaged ``sweep_lambda_width_gaussian_quick``)
    into ``directory`` (default ``$TMPDIR/ufm-explorer``) and return its store.

    Completed runs are kept: a second call only checks the store. About a minute on 2 CPUs.
    """
    from fullnet import sweeps

    root = Path(directory) if directory is not None else Path(tempfile.gettempdir()) / "ufm-explorer"
    root = root.resolve()
    specification = sweeps.load_sweep(
        QUICK_SWEEP_NAME,
        [f"output.directory={root}", "output.progress=false", "training.device=cpu"],
    )
    store = specification.default_store_path
    store.parent.mkdir(parents=True, exist_ok=True)
    sweeps.run_sweep(specification, store, workers=workers, progress=progress)
    return store


def resolve_store(path: str | os.PathLike | None = None, *, build: bool = True) -> Path:
    """The sweep store to browse: ``path``, else ``$UFM_EXPLORER_STORE``, else the quick Gaussian
    sweep's default store (``outputs/fullnet/lambda_width_gaussian_quick/sweep.sqlite``, from the
    working directory or the repository root) if it exists, else (with ``build``)
    :func:`quick_sweep_store` into a temporary folder.

    Raises
    ------
    FileNotFoundError
        If a given path (argument or environment variable) does not exist, or nothing is found
        and ``build`` is False.
    """
    given = path if path is not None else os.environ.get(ENVIRONMENT_STORE) or None
    if given is not None:
        given = Path(given)
        if not given.is_file():
            raise FileNotFoundError(f"sweep store {given} does not exist")
        return given
    default = Path("outputs") / "fullnet" / "lambda_width_gaussian_quick" / "sweep.sqlite"
    for candidate in (default, Path(__file__).resolve().parents[1] / default):
        if candidate.is_file():
            return candidate
    if not build:
        raise FileNotFoundError(
            f"no sweep store: give a path, set {ENVIRONMENT_STORE}, or run "
            "fullnet sweep --config sweep_lambda_width_gaussian_quick"
        )
    return quick_sweep_store()


def _open_store(store_path: str | os.PathLike):
    from fullnet.store import SweepStore

    path = Path(store_path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep store {path} does not exist")
    return SweepStore(path, create=False)


@dataclass(frozen=True)
class StoreCell:
    """One run of a sweep store with its grid coordinates.

    Attributes
    ----------
    run_id : int
    sweep : str
    weight_decay : float or None
        λ.
    width : int or None
        First-layer width p₁.
    nonlinear_depth, linear_depth : int or None
        L1 and L2.
    seed : int or None
    status : str
        ``pending``, ``running``, ``completed`` or ``failed``.
    name : str
    coordinates : dict
        Every grid coordinate (further axes included).
    """

    run_id: int
    sweep: str
    weight_decay: float | None
    width: int | None
    nonlinear_depth: int | None
    linear_depth: int | None
    seed: int | None
    status: str
    name: str
    coordinates: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """One line for a dropdown: ``λ=0.001 p1=16 L1×L2=2×1 seed 0 (completed)``."""
        lam = "–" if self.weight_decay is None else f"{self.weight_decay:.3g}"
        return (f"λ={lam} p1={self.width} L1×L2={self.nonlinear_depth}×{self.linear_depth} "
                f"seed {self.seed} [run {self.run_id}, {self.status}]")

    @property
    def key(self) -> tuple:
        """(λ, width, nonlinear_depth, linear_depth, seed)."""
        return (self.weight_decay, self.width, self.nonlinear_depth, self.linear_depth, self.seed)


def store_cells(store_path: str | os.PathLike, *, sweep: str | None = None,
                status: str | Sequence[str] | None = None) -> list[StoreCell]:
    """The runs of a sweep store (all sweeps, or one), ordered by (depths, width, λ, seed).

    ``status`` keeps only runs in that status (e.g. ``"completed"``).
    """
    with _open_store(store_path) as store:
        records = store.runs(sweep, status)
    cells = [
        StoreCell(
            run_id=record.run_id, sweep=record.sweep, weight_decay=record.weight_decay,
            width=record.width, nonlinear_depth=record.nonlinear_depth,
            linear_depth=record.linear_depth, seed=record.seed, status=record.status,
            name=record.name, coordinates=dict(record.coordinates),
        )
        for record in records
    ]

    def order(cell: StoreCell) -> tuple:
        return tuple((value is None, value if value is not None else 0) for value in
                     (cell.nonlinear_depth, cell.linear_depth, cell.width, cell.weight_decay,
                      cell.seed)) + ((False, cell.run_id),)

    return sorted(cells, key=order)


def find_cell(store_path: str | os.PathLike, cell: Any = None, **coordinates: Any) -> StoreCell:
    """The run named by ``cell`` or by coordinates.

    Parameters
    ----------
    cell : int, StoreCell or mapping, optional
        A run id, a :class:`StoreCell`, or a mapping of coordinates.
    **coordinates
        ``weight_decay`` (or ``lam``), ``width``, ``nonlinear_depth``, ``linear_depth``,
        ``seed``, ``sweep``: the matching runs must be exactly one.

    Raises
    ------
    KeyError
        If no run, or more than one, matches (the message lists the candidates).
    """
    cells = store_cells(store_path)
    if isinstance(cell, StoreCell):
        cell = cell.run_id
    if isinstance(cell, (int, np.integer)) and not isinstance(cell, bool):
        for item in cells:
            if item.run_id == int(cell):
                return item
        raise KeyError(f"no run {cell} in {store_path}; run ids: {[item.run_id for item in cells]}")
    wanted = dict(cell or {})
    wanted.update(coordinates)
    if "lam" in wanted:
        wanted["weight_decay"] = wanted.pop("lam")
    if not wanted:
        raise KeyError("give a run id or coordinates (weight_decay, width, nonlinear_depth, ...)")
    matches = []
    for item in cells:
        values = {"weight_decay": item.weight_decay, "width": item.width,
                  "nonlinear_depth": item.nonlinear_depth, "linear_depth": item.linear_depth,
                  "seed": item.seed, "sweep": item.sweep, **item.coordinates}
        ok = True
        for key, value in wanted.items():
            if key not in values:
                raise KeyError(f"unknown coordinate {key!r}; coordinates: {sorted(values)}")
            have = values[key]
            if isinstance(value, float) or isinstance(have, float):
                ok = have is not None and math.isclose(float(have), float(value), rel_tol=1e-9)
            else:
                ok = have == value
            if not ok:
                break
        if ok:
            matches.append(item)
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise KeyError(f"{found} match {wanted}; candidates: {[item.label for item in (matches or cells)]}")
    return matches[0]


def store_metric_names(store_path: str | os.PathLike, *, sweep: str | None = None) -> list[tuple[int, str]]:
    """The (layer, metric) pairs stored (layer 0: network-level values)."""
    with _open_store(store_path) as store:
        return store.metric_names(sweep)


def cell_history(store_path: str | os.PathLike, cell: Any, metrics: Sequence[str] | None = None,
                 **coordinates: Any) -> dict[str, Any]:
    """Stored values over training of one run: ``{"cell", "epochs", "series"}`` where
    ``series[metric]`` maps layer → list of values (None where not recorded)."""
    item = find_cell(store_path, cell, **coordinates)
    with _open_store(store_path) as store:
        history = store.history(item.run_id)
    names = list(DEFAULT_HISTORY_METRICS if metrics is None else metrics)
    known = sorted({name for _, name in history.values})
    series: dict[str, dict[int, list]] = {}
    for name in names:
        layers = {layer: list(values) for (layer, metric), values in sorted(history.values.items())
                  if metric == name}
        if not layers and history.epochs:
            raise KeyError(f"run {item.run_id} has no metric {name!r}; metrics: {known}")
        series[name] = layers
    return {"cell": item, "epochs": list(history.epochs), "series": series}


def plot_cell_history(store_path: str | os.PathLike, cell: Any = None,
                      metrics: Sequence[str] | None = None, *, axes: Any = None, **coordinates: Any):
    """Stored metrics over training of one run, one panel per metric, one line per layer.

    Parameters
    ----------
    store_path : path-like
        A :class:`fullnet.store.SweepStore` file.
    cell : int, StoreCell or mapping
        Run id, cell, or coordinates (see :func:`find_cell`; keyword coordinates also work).
    metrics : sequence of str, optional
        Metric names (default :data:`DEFAULT_HISTORY_METRICS`).
    axes : sequence of matplotlib axes, optional
        One per metric; a new figure by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = cell_history(store_path, cell, metrics, **coordinates)
    item, epochs, series = data["cell"], data["epochs"], data["series"]
    names = list(series)
    panels = _axes_list(axes)
    if not panels:
        columns = min(len(names), 4)
        rows = math.ceil(len(names) / columns)
        figure, grid = new_figure(rows, columns, 3.6 * columns, 3.2 * rows, squeeze=False)
        panels = list(np.ravel(grid))
        for extra in panels[len(names):]:
            extra.set_visible(False)
    if len(panels) < len(names):
        raise ValueError(f"axes must hold one axis per metric ({len(names)}), got {len(panels)}")
    figure = panels[0].figure
    x = np.asarray(epochs, dtype=float)
    for axis, name in zip(panels, names):
        layers = series[name]
        colors = layer_colors(max(len(layers), 1))
        positive = True
        for color, (layer, values) in zip(colors, layers.items()):
            y = np.array([np.nan if value is None else float(value) for value in values])
            positive &= bool(np.all(y[np.isfinite(y)] > 0))
            axis.plot(x, y, "o-", ms=3, color=color, label="network" if layer == 0 else f"layer {layer}")
        axis.set_xscale("symlog", linthresh=1.0)
        if positive and layers:
            axis.set_yscale("log")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        if layers:
            axis.legend(fontsize=7)
    figure.suptitle(f"{item.sweep}: {item.label}", fontsize=9)
    return figure


def sweep_grid(store_path: str | os.PathLike, metric: str = "NC1.tr_unc", layer: int | None = None, *,
               sweep: str | None = None, nonlinear_depth: int | None = None,
               linear_depth: int | None = None):
    """:func:`fullnet.sweeps.aggregate_grid` of a final metric; ``layer`` defaults to the
    deepest layer that stores ``metric``."""
    from fullnet.sweeps import aggregate_grid

    with _open_store(store_path) as store:
        if layer is None:
            layers = [item_layer for item_layer, name in store.metric_names(sweep) if name == metric]
            if not layers:
                known = sorted({name for _, name in store.metric_names(sweep)})
                raise KeyError(f"metric {metric!r} is not stored; metrics: {known}")
            layer = max(layers)
        table = store.final_metrics(metric, int(layer), sweep)
    return aggregate_grid(table, nonlinear_depth=nonlinear_depth, linear_depth=linear_depth)


def plot_sweep_heatmap(store_path: str | os.PathLike, metric: str = "NC1.tr_unc", layer: int | None = None,
                       *, axis: Any = None, sweep: str | None = None, nonlinear_depth: int | None = None,
                       linear_depth: int | None = None, log: bool | None = None):
    """A final metric on the (λ, width) plane, mean over seeds (:func:`sweep_grid`).

    Cells show the mean (and the number of seeds); empty cells have no completed run. The colour
    scale is logarithmic when every value is positive (``log=None``), or as ``log`` says.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import LogNorm

    grid = sweep_grid(store_path, metric, layer, sweep=sweep, nonlinear_depth=nonlinear_depth,
                      linear_depth=linear_depth)
    if axis is None:
        figure, axis = new_figure(1, 1, 1.4 * len(grid.widths) + 3.0, 0.7 * len(grid.weight_decays) + 2.6)
    figure = axis.figure
    mean = np.asarray(grid.mean, dtype=float)
    finite = mean[np.isfinite(mean)]
    use_log = bool(finite.size and np.all(finite > 0)) if log is None else bool(log)
    norm = LogNorm(vmin=finite.min(), vmax=max(finite.max(), finite.min() * (1 + 1e-9))) \
        if use_log and finite.size else None
    image = axis.imshow(np.ma.masked_invalid(mean), origin="lower", aspect="auto", cmap="viridis", norm=norm)
    axis.set_xticks(range(len(grid.widths)), [str(width) for width in grid.widths])
    axis.set_yticks(range(len(grid.weight_decays)), [f"{value:.3g}" for value in grid.weight_decays])
    axis.set_xlabel("width p₁")
    axis.set_ylabel("λ (weight decay)")
    axis.grid(False)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            if math.isfinite(mean[i, j]):
                shade = float(image.norm(mean[i, j])) if finite.size > 1 else 0.0
                axis.text(j, i, f"{mean[i, j]:.2g}\n({grid.count[i][j]})", ha="center", va="center",
                          fontsize=6.5, color="black" if shade > 0.6 else "white")
    figure.colorbar(image, ax=axis, label=f"{metric} (layer {grid.layer}), mean over seeds")
    selection = ", ".join(f"{key}={value}" for key, value in grid.selection.items())
    axis.set_title(f"final {metric}, layer {grid.layer}" + (f"\n{selection}" if selection else ""))
    return figure


def png_bytes(figure: Any, dpi: float = 90) -> bytes:
    """``figure`` rendered as PNG (for ``IPython.display.Image``, whatever the backend); closes it."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    return buffer.getvalue()


def save_png(figure: Any, path: str | os.PathLike) -> Path:
    """Write ``figure`` as PNG at ``path`` (folders created, written atomically) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.png")
    figure.savefig(temporary)
    plt.close(figure)
    os.replace(temporary, path)
    return path


# --------------------------------------------------------------------------------------------
# Command line: the notebook's plots as PNG files
# --------------------------------------------------------------------------------------------

DEFAULT_OUT = os.path.join("outputs", "figures", "explorer")

#: File name of the notebook, shipped inside the package beside this module.
NOTEBOOK_NAME = "explorer.ipynb"


def notebook_path() -> Path:
    """The explorer notebook shipped with the package (``figures/explorer.ipynb``)."""
    return Path(__file__).resolve().parent / NOTEBOOK_NAME


def copy_notebook(directory: str | os.PathLike = ".", *, force: bool = False) -> Path:
    """Copy the explorer notebook into ``directory`` (created if missing) and return the copy.

    Raises
    ------
    FileExistsError
        If ``directory/explorer.ipynb`` exists and ``force`` is False (a notebook one has
        edited is never overwritten silently).
    """
    import shutil

    target = Path(directory) / NOTEBOOK_NAME
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists (--force replaces it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook_path(), target)
    return target


def build_parser():
    """Parser of ``ufm-figures explore {dufm,store,notebook} …``."""
    import argparse

    from ufm.cli import program_name

    parser = argparse.ArgumentParser(
        prog=f"{program_name('figures', 'ufm-figures')} explore",
        description="The plots of figures/explorer.ipynb as PNG files, without Jupyter; or the "
                    "notebook itself (notebook).",
    )
    commands = parser.add_subparsers(dest="view", required=True, metavar="{dufm,store,notebook}")
    dufm = commands.add_parser(
        "dufm", help="solve one DUFM and draw it against the predicted optimum",
        description="Predict (ufm.optima) and solve (ufm.solvers) one L-DUFM with one λ on every "
                    "block; write explore_dufm.png (loss, singular values, per-layer metrics, "
                    "threshold curve) and explore_dufm.json (the comparison numbers).",
    )
    dufm.add_argument("--K", type=int, default=2, help="classes (default 2)")
    dufm.add_argument("--L", type=int, default=3, help="weight matrices (default 3)")
    dufm.add_argument("--n", type=int, default=5, help="samples per class (default 5)")
    dufm.add_argument("--lam", type=float, default=0.004, help="λ of every block (default 0.004)")
    dufm.add_argument("--width", type=int, default=10, help="width of every layer (default 10)")
    dufm.add_argument("--seed", type=int, default=0, help="initialization seed (default 0)")
    dufm.add_argument("--method", default="numpy_lbfgs",
                      help="ufm.solvers method (default numpy_lbfgs; kink_lbfgs runs with "
                           "ufm.solvers.KINK_LBFGS_LOW_RANK_SETTINGS)")
    dufm.add_argument("--model", choices=MODELS, default="dufm", help="ReLU DUFM or deep linear UFM")
    dufm.add_argument("--max-iterations", type=int, default=None, help="solver iteration cap")
    dufm.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default {DEFAULT_OUT})")
    store = commands.add_parser(
        "store", help="draw a sweep store: a final metric on the (λ, width) plane and one run's history",
        description="Write explore_store_heatmap.png (final METRIC at LAYER, mean over seeds) and "
                    "explore_store_run<ID>.png (stored metrics over training of one run; default "
                    "the first completed run).",
    )
    store.add_argument("path", help="sweep store (SQLite) of python -m fullnet sweep")
    store.add_argument("--metric", default="NC1.tr_unc", help="heat-map metric (default NC1.tr_unc)")
    store.add_argument("--layer", type=int, default=None, help="its layer (default: the deepest that stores it)")
    store.add_argument("--nonlinear-depth", type=int, default=None, help="L1, when the store holds several")
    store.add_argument("--linear-depth", type=int, default=None, help="L2, when the store holds several")
    store.add_argument("--sweep", default=None, help="sweep name, when the store holds several")
    store.add_argument("--run", type=int, default=None, metavar="ID", help="run id of the history plot")
    store.add_argument("--cell", default=None, metavar="LAM,WIDTH[,L1,L2,SEED]",
                       help="the history plot's run by coordinates instead of --run")
    store.add_argument("--history-metrics", nargs="+", default=list(DEFAULT_HISTORY_METRICS),
                       metavar="METRIC", help=f"metrics over training (default {' '.join(DEFAULT_HISTORY_METRICS)})")
    store.add_argument("--list", action="store_true", help="list the store's runs and exit")
    store.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default {DEFAULT_OUT})")
    notebook = commands.add_parser(
        "notebook", help="copy the explorer notebook into a folder and (with --open) open it",
        description=f"Copy the packaged {NOTEBOOK_NAME} into DIR and print how to open it; --open "
                    "starts JupyterLab on it (pip install 'ufm-sandbox[explorer]').",
    )
    notebook.add_argument("--out", default=".", metavar="DIR", help="destination folder (default .)")
    notebook.add_argument("--force", action="store_true", help="replace an existing copy")
    notebook.add_argument("--open", action="store_true", help="start JupyterLab on the copy")
    notebook.add_argument("--print-path", action="store_true",
                          help="print the packaged notebook's path and exit (copies nothing)")
    return parser


def _cell_coordinates(text: str) -> dict[str, Any]:
    names = ("weight_decay", "width", "nonlinear_depth", "linear_depth", "seed")
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not 2 <= len(parts) <= len(names):
        raise ValueError(f"--cell takes LAM,WIDTH[,L1,L2,SEED], got {text!r}")
    values: dict[str, Any] = {}
    for name, part in zip(names, parts):
        values[name] = float(part) if name == "weight_decay" else int(part)
    return values


def _explore_dufm_command(arguments) -> list[Path]:
    import json

    from .common import to_jsonable

    result = explore_dufm(
        arguments.K, arguments.L, arguments.n, arguments.lam, arguments.width, arguments.seed,
        arguments.method, model=arguments.model, max_iterations=arguments.max_iterations,
    )
    print(result.summary())
    out = Path(arguments.out)
    figure = plot_exploration(result)
    paths = [save_png(figure, out / "explore_dufm.png")]
    path = out / "explore_dufm.json"
    data = to_jsonable(result.to_dict())
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    paths.append(path)
    return paths


def _explore_store_command(arguments) -> list[Path]:
    import json

    from .common import to_jsonable

    cells = store_cells(arguments.path, sweep=arguments.sweep)
    if arguments.list:
        for cell in cells:
            print(cell.label)
        return []
    out = Path(arguments.out)
    grid = sweep_grid(arguments.path, arguments.metric, arguments.layer, sweep=arguments.sweep,
                      nonlinear_depth=arguments.nonlinear_depth, linear_depth=arguments.linear_depth)
    figure = plot_sweep_heatmap(arguments.path, arguments.metric, grid.layer, sweep=arguments.sweep,
                                nonlinear_depth=arguments.nonlinear_depth,
                                linear_depth=arguments.linear_depth)
    paths = [save_png(figure, out / "explore_store_heatmap.png")]
    grid_path = out / "explore_store_heatmap.json"
    grid_path.write_text(json.dumps(to_jsonable(grid.to_dict()), indent=1) + "\n", encoding="utf-8")
    paths.append(grid_path)
    if arguments.run is not None and arguments.cell is not None:
        raise ValueError("give --run or --cell, not both")
    if arguments.cell is not None:
        cell = find_cell(arguments.path, **_cell_coordinates(arguments.cell))
    elif arguments.run is not None:
        cell = find_cell(arguments.path, arguments.run)
    else:
        completed = [item for item in cells if item.status == "completed"]
        if not completed:
            raise ValueError(f"no completed run in {arguments.path}")
        cell = completed[0]
    figure = plot_cell_history(arguments.path, cell.run_id, arguments.history_metrics)
    paths.append(save_png(figure, out / f"explore_store_run{cell.run_id}.png"))
    return paths


def _notebook_command(arguments) -> int:
    import importlib.util
    import subprocess
    import sys

    if arguments.print_path:
        print(notebook_path())
        return 0
    if arguments.open and importlib.util.find_spec("jupyterlab") is None:
        raise ValueError("JupyterLab is not installed: pip install 'ufm-sandbox[explorer]'")
    target = copy_notebook(arguments.out, force=arguments.force)
    print(f"    {target}")
    if not arguments.open:
        print(f"open it with: jupyter lab {target}")
        return 0
    return subprocess.call([sys.executable, "-m", "jupyterlab", str(target)])


def main(argv: Sequence[str] | None = None) -> int:
    """``ufm-figures explore …`` (``python -m figures explore …``); returns the exit status
    (2: bad input)."""
    import sys

    from fullnet.store import StoreError

    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        if arguments.view == "notebook":
            return _notebook_command(arguments)
        if arguments.view == "dufm":
            paths = _explore_dufm_command(arguments)
        else:
            paths = _explore_store_command(arguments)
    except (FileNotFoundError, FileExistsError, KeyError, TypeError, ValueError, StoreError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"    {path}")
    return 0
