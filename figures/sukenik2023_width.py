"""E-B2 (Súkeník, Mondelli & Lampert 2023): the effect of width on reaching the DNC optimum.

Experiment
----------
docs/theory.md §6 (B), E-B2: the K = 2 L-DUFM (:class:`ufm.models.DeepUFM`, all widths equal to d),
solved by plain full-batch gradient descent (:func:`ufm.solvers.solve`, ``method="gd"``, lr 0.5,
the E-B1 initialization ``model.random_parameters(seed)``) from several seeds at every width d
from K up to 64. For K = 2, L_DNC (:func:`ufm.optima.predict_dufm`, docs/theory.md §4.3) is the
global minimum of Φ_DUFM [derived from (B)], so every end point has Φ ≥ L_DNC; the question is
how often GD gets there. Claim [paper†, (B) RQ2]: narrow networks stall (fraction < 1), wide ones
reach L_DNC.

Settings
--------
K = 2, L = 3, n = 5, λ_H = λ_1 = … = λ_L = 0.004 (E-B1's range), lr 0.5, gradient-norm stop
1e-10. Quick: widths 2, 3, 4, 6, 8, 16, 32, 64, 6 seeds, 10⁴ steps. Full: 11 widths, 20 seeds,
3·10⁴ steps.

Formula
-------
A run *reaches* L_DNC when Φ_end − L_DNC ≤ τ (:func:`ufm.optima.dnc_reach_tolerance`): τ is half
the smallest gap (value − L_DNC) among the non-collapsed critical points GD stalls at (docs/theory.md
§4.6: "narrow widths can stall at non-collapsed critical points"), whose values follow from the
scalar problem of §4.3 [derived; :func:`ufm.optima.dufm_stall_configurations`]: one class split
into two groups on disjoint neurons that merge in W_j, j = 2..L
(:func:`ufm.optima.dufm_split_class_loss`; a split merging in W_1 is not a critical point), one
sample with output 0, one class with output 0, and the zero point (½). Each value is realised
by :func:`ufm.optima.dufm_split_class_construct`. A run counts as reaching L_DNC when its end
loss is closer to L_DNC than to the nearest split or dropped sample. Panels: the fraction of
seeds reaching L_DNC against width (binomial standard error); the final Φ/L_DNC − 1 of every
run with the configuration values as reference lines; the final DNC1 (largest NC1.tr_unc of
H₁ … H_L, :func:`ufm.metrics.nc1_trace_ratio_uncentered`) of every run.

Paper
-----
P. Súkeník, M. Mondelli, C. H. Lampert, *Deep Neural Collapse Is Provably Optimal for the Deep
Unconstrained Features Model*, NeurIPS 2023, arXiv:2305.13165 (its width experiment's exact
settings are unknown, docs/theory.md §6).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ufm.metrics import UndefinedMetricError, nc1_trace_ratio_uncentered
from ufm.models import DeepUFM
from ufm.optima import dnc_reach_tolerance, dufm_stall_configurations, predict_dufm
from ufm.solvers import solve

from .common import (
    figure_title,
    new_figure,
    plot_seed_fraction,
    save_figure,
    scatter_runs_by_outcome,
    write_csv,
    write_json,
)
from .overrides import apply_overrides
from .sukenik2024_dnc_probability import binomial_band

NAME = "sukenik2023_width"
EXPERIMENT = "E-B2"
GAP_FLOOR = 1e-12  # log-axis floor of Φ/L_DNC − 1 (runs at L_DNC to rounding)
NC1_FLOOR = 1e-16  # log-axis floor of DNC1
OUTCOME_LABELS = ("run reaching $L_{\\mathrm{DNC}}$", "stalled run")


def settings(quick: bool) -> dict:
    """Model, widths, seeds and solver settings."""
    common = {"num_classes": 2, "num_layers": 3, "per_class": 5, "lam": 0.004, "lr": 0.5,
              "tolerance": 1e-10}
    if quick:
        return {**common, "widths": [2, 3, 4, 6, 8, 16, 32, 64], "seeds": list(range(6)), "steps": 10_000}
    return {**common, "widths": [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64], "seeds": list(range(20)),
            "steps": 30_000}


def _lambdas(config: dict) -> tuple[float, tuple[float, ...]]:
    """λ_H and (λ_1, …, λ_L) of ``config`` (equal λ on every block)."""
    return float(config["lam"]), (float(config["lam"]),) * config["num_layers"]


def final_dnc1(model: DeepUFM, parameters) -> float:
    """DNC1 of an end point: the largest NC1.tr_unc of H₁ … H_L (NaN if some M_l = 0)."""
    features = model.forward(parameters)
    values = []
    for layer in features.post_activations:
        try:
            values.append(nc1_trace_ratio_uncentered(np.asarray(layer), features.labels,
                                                     num_classes=model.num_classes))
        except UndefinedMetricError:
            return math.nan
    return float(max(values))


def compute(quick: bool, overrides: dict | None = None) -> dict:
    """One GD run per (width, seed): end loss, gap, verdict and DNC1; the fraction per width.

    ``overrides`` change keys of :func:`settings` (:func:`figures.overrides.apply_overrides`).
    """
    config = apply_overrides(settings(quick), overrides, NAME)
    k, depth, n = config["num_classes"], config["num_layers"], config["per_class"]
    lam_h, lams = _lambdas(config)
    prediction = predict_dufm(k, depth, n, lam_h, lams)
    reference = prediction.optimal_loss
    tolerance, nearest = dnc_reach_tolerance(k, depth, n, lam_h, lams)
    stalls = dufm_stall_configurations(k, depth, n, lam_h, lams)
    rows: list[dict] = []
    summary: list[dict] = []
    for width in config["widths"]:
        model = DeepUFM(num_classes=k, per_class=n, widths=(width,) * depth, lam_h=lam_h, lam_w=lams)
        reached_runs = 0
        for seed in config["seeds"]:
            solution = solve(model, "gd", seed=seed, lr=config["lr"], tolerance=config["tolerance"],
                             max_iterations=config["steps"], history_points=0, predicted=None,
                             progress=False)
            loss = float(solution.loss)
            reached = bool(loss - reference <= tolerance)
            reached_runs += int(reached)
            rows.append({"width": width, "seed": seed, "loss": loss, "dnc_loss": reference,
                         "gap": loss - reference, "relative_gap": loss / reference - 1.0,
                         "reached": reached, "dnc1": final_dnc1(model, solution.parameters),
                         "gradient_norm": float(solution.gradient_norm),
                         "iterations": int(solution.iterations), "stop_reason": solution.stop_reason})
        fraction, error = binomial_band(reached_runs, len(config["seeds"]))
        summary.append({"width": width, "reached_runs": reached_runs, "runs": len(config["seeds"]),
                        "fraction": fraction, "standard_error": error})
    return {"settings": config, "prediction": prediction.to_dict(), "dnc_loss": reference,
            "tolerance": tolerance, "relative_tolerance": tolerance / reference,
            "tolerance_from": nearest.to_dict(), "stall_values": [entry.to_dict() for entry in stalls],
            "summary": summary, "rows": rows}


def make(out_dir: str | Path, quick: bool = False, overrides: dict | None = None) -> list[Path]:
    """Write ``sukenik2023_width.png``, ``.csv`` and ``.json`` into ``out_dir``.

    ``overrides``: new values of :func:`settings` keys (``--set KEY=VALUE``).
    """
    return draw(compute(quick, overrides), out_dir, quick)


def _runs_axes(axis, x: np.ndarray, widths: list) -> None:
    """Log₂ width axis with a tick per width (seeds spread sideways) and a log value axis."""
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xticks(x, [str(width) for width in widths])
    axis.minorticks_off()
    axis.set_xlabel("width (log₂ axis; seeds spread sideways)")


def draw(data: dict, out_dir: str | Path, quick: bool) -> list[Path]:
    """Plot the output of :func:`compute` and write the three files."""
    config, rows, summary = data["settings"], data["rows"], data["summary"]
    widths, seeds = config["widths"], config["seeds"]
    x = np.array(widths, dtype=float)
    offsets = np.linspace(-0.1, 0.1, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    figure, axes = new_figure(1, 3, 16.0, 5.0)

    # (a) fraction of seeds reaching L_DNC
    axis = axes[0]
    plot_seed_fraction(
        axis, widths, summary, "reached_runs",
        f"fraction of {len(seeds)} seeds with $\\Phi - L_{{\\mathrm{{DNC}}}} \\leq \\tau$",
    )
    axis.axvline(2 * config["num_classes"], color="gray", linestyle=":", linewidth=1.0,
                 label=f"width 2K = {2 * config['num_classes']}")
    axis.set_ylim(-0.05, 1.15)
    axis.set_xlabel(r"width $d_1 = \dots = d_L$ (log₂ axis)")
    axis.set_ylabel(r"fraction of GD runs reaching $L_{\mathrm{DNC}}$")
    nearest = data["tolerance_from"]
    axis.set_title(f"reached: Φ/L_DNC − 1 ≤ τ/L_DNC = {data['relative_tolerance']:.3g}\n"
                   f"(τ = half the gap of the nearest stall: {nearest['label'].replace('$', '')})")
    axis.legend(fontsize=7, loc="lower right")

    # (b) final Φ/L_DNC − 1 of every run, with the derived stall values
    axis = axes[1]
    styles = {"split": ("tab:orange", "--"), "drop": ("tab:red", "-."), "drop_class": ("tab:purple", "-."),
              "zero": ("black", ":")}
    for kind, (color, linestyle) in styles.items():
        values = [value for value in data["stall_values"] if value["kind"] == kind]
        for index, value in enumerate(values):
            if kind == "split":
                layers = sorted({v["merge_layer"] for v in values})
                label = (f"split class (m, n − m), merge in $W_j$, j = {layers[0]}..{layers[-1]}: "
                         f"{len(values)} values, {min(v['ratio'] for v in values):.3g} to "
                         f"{max(v['ratio'] for v in values):.3g}") if index == 0 else None
            else:
                label = value["label"]
            axis.axhline(value["ratio"], color=color, linestyle=linestyle, linewidth=0.9, alpha=0.8, label=label)
    axis.axhspan(GAP_FLOOR, data["relative_tolerance"], color="tab:green", alpha=0.1, linewidth=0,
                 label=f"reached: ≤ τ/L_DNC = {data['relative_tolerance']:.3g}")
    scatter_runs_by_outcome(axis, rows, seeds, offsets, "reached",
                            lambda row: max(row["relative_gap"], GAP_FLOOR), OUTCOME_LABELS)
    _runs_axes(axis, x, widths)
    axis.set_ylabel(rf"final $\Phi / L_{{\mathrm{{DNC}}}} - 1$ (log; floor {GAP_FLOOR:g})")
    axis.set_title(rf"end points against $L_{{\mathrm{{DNC}}}}$ = {data['dnc_loss']:.6g} (global minimum, K = 2)"
                   "\nlines: derived values of non-collapsed configurations")
    axis.set_ylim(GAP_FLOOR / 3, 1e2)
    axis.legend(fontsize=6.3, loc="lower left")

    # (c) final DNC1
    axis = axes[2]
    scatter_runs_by_outcome(
        axis, rows, seeds, offsets, "reached",
        lambda row: (max(row["dnc1"], NC1_FLOOR)
                     if row["dnc1"] is not None and math.isfinite(row["dnc1"]) else None),
        OUTCOME_LABELS,
    )
    _runs_axes(axis, x, widths)
    axis.set_ylabel(rf"DNC1 at the end: $\max_l$ NC1.tr_unc$(H_l)$ (log; floor {NC1_FLOOR:g})")
    axis.set_title("within-class collapse of the end points\n(split stalls: DNC1 > 0; a dropped class leaves DNC1 = 0)")
    axis.legend(fontsize=7, loc="best")

    figure.suptitle(figure_title(
        "B", EXPERIMENT, "fraction of gradient-descent runs reaching the DNC optimum against width", quick,
        f"K = {config['num_classes']}, L = {config['num_layers']}, n = {config['per_class']}, "
        f"λ = {config['lam']:g} (all blocks), plain GD lr {config['lr']}, {config['steps']} steps "
        f"(gradient-norm stop {config['tolerance']:g}), {len(seeds)} seeds per width, E-B1 initialization\n"
        "ufm.solvers.solve, ufm.optima.predict_dufm / dufm_stall_configurations / dnc_reach_tolerance, "
        "ufm.metrics.nc1_trace_ratio_uncentered",
    ))
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": EXPERIMENT, "quick": quick, **data}))
    return paths
