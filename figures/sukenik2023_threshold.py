"""E-B3 (Súkeník, Mondelli & Lampert 2023): the DNC optimum against λ, across the threshold.

K = 2, n = 3 (the fixture of docs/theory.md §4.6), λ equal on all blocks, L = 2..5. Top: the
predicted optimum L_DNC (:func:`ufm.optima.predict_dufm`, the global minimum for K = 2) against
λ, with the threshold λ_crit (:func:`ufm.optima.dnc_critical_lambda`) above which the zero
solution (value ½) is optimal. Bottom: the output scale q* (the optimum outputs q*·Y), which
jumps from about (L−1)/L to 0 at λ_crit for L ≥ 2. Markers: end points of plain gradient descent
(:func:`ufm.solvers.solve`, E-B1 initialization, lr 0.5) at a few λ. Zero is a strict local
minimum for L ≥ 2 (docs/theory.md §4.3), so GD from the small E-B1 initialization falls into it well
below λ_crit, and sometimes stops at a one-class point (value ½(½ + g₂(q*))).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ufm.models import DeepUFM
from ufm.optima import dnc_critical_lambda, predict_dufm
from ufm.solvers import solve

from .common import figure_title, new_figure, save_figure, write_csv, write_json

NAME = "sukenik2023_threshold"
NUM_CLASSES = 2
PER_CLASS = 3
DEPTHS = (2, 3, 4, 5)


def settings(quick: bool) -> dict:
    """λ grid of the prediction and the gradient-descent runs of the overlay."""
    if quick:
        return {
            "lam_grid": np.logspace(-3, np.log10(0.4), 160).tolist(),
            "gd_depths": [3],
            "gd_lams": [0.005, 0.02, 0.05, 0.09],
            "gd_seeds": [0, 1, 2],
            "gd_width": 16,
            "gd_steps": 4000,
            "gd_lr": 0.5,
        }
    return {
        "lam_grid": np.logspace(-3, np.log10(0.4), 400).tolist(),
        "gd_depths": list(DEPTHS),
        "gd_lams": [0.002, 0.005, 0.01, 0.02, 0.04, 0.07, 0.1, 0.15],
        "gd_seeds": list(range(5)),
        "gd_width": 30,
        "gd_steps": 30000,
        "gd_lr": 0.5,
    }


def prediction_rows(quick: bool) -> list[dict]:
    """L_DNC, q* and λ_crit for every L and every λ of the grid (ufm.optima)."""
    config = settings(quick)
    rows = []
    for depth in DEPTHS:
        critical = dnc_critical_lambda(NUM_CLASSES, depth, PER_CLASS)
        for lam in config["lam_grid"]:
            optimum = predict_dufm(NUM_CLASSES, depth, PER_CLASS, lam, lam)
            rows.append(
                {
                    "series": "prediction",
                    "num_layers": depth,
                    "lam": lam,
                    "optimal_loss": optimum.optimal_loss,
                    "q_star": optimum.q_star,
                    "is_zero": optimum.is_zero,
                    "critical_lam": critical,
                }
            )
    return rows


def gradient_descent_rows(quick: bool) -> list[dict]:
    """Final loss of GD for every (L, λ, seed) of the overlay (ufm.solvers.solve)."""
    config = settings(quick)
    rows = []
    for depth in config["gd_depths"]:
        for lam in config["gd_lams"]:
            model = DeepUFM(
                num_classes=NUM_CLASSES,
                per_class=PER_CLASS,
                widths=(config["gd_width"],) * depth,
                lam_h=lam,
                lam_w=lam,
            )
            for seed in config["gd_seeds"]:
                solution = solve(
                    model,
                    "gd",
                    seed=seed,
                    lr=config["gd_lr"],
                    max_iterations=config["gd_steps"],
                    tolerance=1e-10,
                    history_points=0,
                    progress=False,
                )
                rows.append(
                    {
                        "series": "gd",
                        "num_layers": depth,
                        "lam": lam,
                        "seed": seed,
                        "loss": solution.loss,
                        "optimal_loss": solution.predicted_loss,
                        "iterations": solution.iterations,
                        "stop_reason": solution.stop_reason,
                    }
                )
    return rows


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``sukenik2023_threshold.png``, ``.csv`` and ``.json`` into ``out_dir``."""
    config = settings(quick)
    predicted = prediction_rows(quick)
    descent = gradient_descent_rows(quick)
    figure, axes = new_figure(2, 1, 7.5, 7.2, sharex=True)
    colors = {2: "tab:purple", 3: "tab:blue", 4: "tab:green", 5: "tab:orange"}
    for depth in DEPTHS:
        color = colors[depth]
        rows = [row for row in predicted if row["num_layers"] == depth]
        lam = np.array([row["lam"] for row in rows])
        loss = np.array([row["optimal_loss"] for row in rows])
        q = np.array([row["q_star"] for row in rows])
        nonzero = ~np.array([row["is_zero"] for row in rows])
        critical = rows[0]["critical_lam"]
        axes[0].plot(lam, loss, color=color, label=f"L = {depth}: $L_{{\\mathrm{{DNC}}}}$")
        # the nonzero branch of q* and the zero branch, not joined across the jump
        axes[1].plot(lam[nonzero], q[nonzero], color=color,
                     label=rf"L = {depth}: $q^*$; $\lambda_{{\mathrm{{crit}}}}$ = {critical:.4g}")
        axes[1].plot(lam[~nonzero], q[~nonzero], color=color)
        for axis in axes:
            axis.axvline(critical, color=color, linestyle="--", linewidth=1.0, alpha=0.8)
    axes[0].axhline(0.5, color="black", linestyle=":", linewidth=1.0, label="zero solution (½)")
    for depth in config["gd_depths"]:
        rows = [row for row in descent if row["num_layers"] == depth]
        axes[0].scatter(
            [row["lam"] for row in rows],
            [row["loss"] for row in rows],
            marker="x",
            s=30,
            color=colors[depth],
            zorder=3,
            label=f"L = {depth}: GD end points ({len(config['gd_seeds'])} seeds)",
        )
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(r"objective $\Phi$ (loss convention §1.2)")
    axes[0].set_title(r"predicted optimum $L_{\mathrm{DNC}}$ and plain GD")
    axes[0].legend(loc="lower right", fontsize=7)
    axes[1].set_ylabel(r"output scale $q^*$ (output $= q^*Y$)")
    axes[1].set_xlabel(r"weight decay $\lambda$ ($=\lambda_H=\lambda_1=\dots=\lambda_L$)")
    axes[1].set_title(r"$q^*$ jumps to 0 at $\lambda_{\mathrm{crit}}$ (dashed)")
    axes[1].legend(loc="center left", fontsize=7)
    axes[1].set_ylim(-0.03, 1.03)
    figure.suptitle(
        figure_title(
            "B", "E-B3", "DNC optimum across the λ threshold", quick,
            f"K = {NUM_CLASSES}, n = {PER_CLASS}; ufm.optima.predict_dufm / dnc_critical_lambda; "
            f"GD: width {config['gd_width']}, lr {config['gd_lr']}, {config['gd_steps']} steps",
        )
    )
    rows = predicted + descent
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(
        write_json(
            out_dir,
            NAME,
            {
                "figure": NAME,
                "experiment": "E-B3",
                "quick": quick,
                "num_classes": NUM_CLASSES,
                "per_class": PER_CLASS,
                "settings": config,
                "critical_lam": {
                    str(depth): dnc_critical_lambda(NUM_CLASSES, depth, PER_CLASS) for depth in DEPTHS
                },
                "prediction": predicted,
                "gradient_descent": descent,
            },
        )
    )
    return paths
