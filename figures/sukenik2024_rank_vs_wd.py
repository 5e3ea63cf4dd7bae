"""E-C5 (Súkeník, Lampert & Mondelli 2024, Fig. 3 middle): average rank at convergence against λ.

The 4-DUFM with K = 10, n = 1, width 30 and the same λ on every block, solved by plain gradient
descent (:func:`ufm.solvers.solve`, E-B1 initialization) from several seeds at each λ on a log₂
grid. Panels:

- the numerical rank (:func:`ufm.metrics.numerical_rank`, relative tolerance ``RANK_RTOL``) of the
  class means (:func:`ufm.metrics.class_statistics`) before each ReLU, M̃_2, M̃_3, M̃_4, and of the
  last features M_4, mean ± 1 std over seeds, against K (DNC);
- the final objective relative to L_DNC (:func:`ufm.optima.predict_dufm`): below 1 where gradient
  descent ends at low-rank points below the DNC value.

Expectation (docs/theory.md §6): lower rank at larger λ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ufm.metrics import class_statistics, numerical_rank
from ufm.models import DeepUFM
from ufm.optima import predict_dufm
from ufm.solvers import solve

from .common import figure_title, layer_colors, new_figure, plot_band, save_figure, write_csv, write_json

NAME = "sukenik2024_rank_vs_wd"
RANK_RTOL = 1e-2  # relative tolerance of RANK (docs/theory.md §3: plots use 1e-3 to 1e-2)


def settings(quick: bool) -> dict:
    """Model, λ grid (powers of two), seeds and solver settings."""
    common = {"num_classes": 10, "num_layers": 4, "per_class": 1, "width": 30, "lr": 0.5,
              "method": "gd", "tolerance": 1e-10, "rank_rtol": RANK_RTOL}
    if quick:
        return {**common, "log2_lams": [-12, -11, -10, -9, -8, -7], "seeds": [0, 1, 2], "steps": 20_000}
    return {**common, "log2_lams": [-13, -12, -11, -10, -9, -8, -7, -6.5, -6], "seeds": [0, 1, 2, 3, 4],
            "steps": 100_000}


def compute(quick: bool) -> dict:
    """One solve per (λ, seed): final loss and ranks of the class means."""
    config = settings(quick)
    k, depth, n = config["num_classes"], config["num_layers"], config["per_class"]
    rows: list[dict] = []
    for exponent in config["log2_lams"]:
        lam = float(2.0 ** exponent)
        model = DeepUFM(num_classes=k, per_class=n, widths=(config["width"],) * depth, lam_h=lam, lam_w=lam)
        reference = predict_dufm(k, depth, n, lam, lam).optimal_loss
        for seed in config["seeds"]:
            solution = solve(model, config["method"], seed=seed, lr=config["lr"],
                             tolerance=config["tolerance"], max_iterations=config["steps"],
                             history_points=0, predicted=None, progress=False)
            features = model.forward(solution.parameters)
            row = {"log2_lam": exponent, "lam": lam, "seed": seed, "loss": float(solution.loss),
                   "dnc_loss": reference, "stop_reason": solution.stop_reason}
            for layer in range(2, depth + 1):
                means = class_statistics(features.pre_activations[layer - 1], model.labels, k).means
                row[f"rank_pre_{layer}"] = numerical_rank(means, config["rank_rtol"])
            means = class_statistics(features.post_activations[depth - 1], model.labels, k).means
            row[f"rank_post_{depth}"] = numerical_rank(means, config["rank_rtol"])
            rows.append(row)
    return {"settings": config, "rows": rows}


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``sukenik2024_rank_vs_wd.png``, ``.csv`` and ``.json`` into ``out_dir``."""
    data = compute(quick)
    config, rows = data["settings"], data["rows"]
    k, depth, seeds = config["num_classes"], config["num_layers"], config["seeds"]
    exponents = config["log2_lams"]
    lams = np.array([2.0 ** value for value in exponents])
    figure, axes = new_figure(1, 2, 11.0, 4.6)

    def by_seed(key: str) -> list[list[float]]:
        return [[next(row[key] for row in rows if row["seed"] == seed and row["log2_lam"] == exponent)
                 for exponent in exponents] for seed in seeds]

    axis = axes[0]
    series = [(f"rank_pre_{layer}", rf"$\tilde M_{layer}$ (before ReLU)") for layer in range(2, depth + 1)]
    series.append((f"rank_post_{depth}", rf"$M_{depth}$ (after the last ReLU)"))
    colors = layer_colors(len(series) - 1) + ["tab:red"]
    for (key, label), color in zip(series, colors):
        plot_band(axis, lams, by_seed(key), color=color, label=label,
                  linestyle="--" if key.startswith("rank_post") else "-")
        means = np.mean(by_seed(key), axis=0)
        axis.plot(lams, means, "o", color=color, markersize=3.5)
    axis.axhline(k, color="black", linestyle=":", linewidth=1.0, label=f"K = {k} (DNC)")
    axis.set_xscale("log", base=2)
    axis.set_xlabel(r"weight decay $\lambda$ (all blocks; log₂ axis)")
    axis.set_ylabel(f"numerical rank of the class means (rtol {config['rank_rtol']:g})")
    axis.set_ylim(0, k + 1.5)
    axis.set_title(f"average rank at the end, mean ± 1 std over {len(seeds)} seeds")
    axis.legend(fontsize=7, loc="lower left")

    axis = axes[1]
    ratios = [[loss / row_dnc for loss, row_dnc in zip(values, dnc)]
              for values, dnc in zip(by_seed("loss"), by_seed("dnc_loss"))]
    plot_band(axis, lams, ratios, color="tab:blue", label=r"GD end point $\Phi / L_{\mathrm{DNC}}$ (mean ± 1 std)")
    for values in ratios:
        axis.plot(lams, values, ".", color="tab:blue", alpha=0.5)
    axis.axhline(1.0, color="black", linestyle="--", label=r"$L_{\mathrm{DNC}}$ (ufm.optima.predict_dufm)")
    axis.set_xscale("log", base=2)
    axis.set_xlabel(r"weight decay $\lambda$ (log₂ axis)")
    axis.set_ylabel(r"final objective / $L_{\mathrm{DNC}}$")
    axis.set_title("final objective relative to the DNC value (< 1: below DNC)")
    axis.legend(fontsize=7, loc="upper left")

    figure.suptitle(figure_title(
        "C", "E-C5 (Fig. 3 middle)", "rank of the class means at convergence against weight decay", quick,
        f"K = {k}, L = {depth}, n = {config['per_class']}, width {config['width']}, plain GD lr {config['lr']}, "
        f"{config['steps']} steps (gradient-norm stop {config['tolerance']:g}), seeds {seeds}\n"
        "ufm.solvers.solve, ufm.metrics.class_statistics / numerical_rank, ufm.optima.predict_dufm",
    ))
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "E-C5", "quick": quick, **data}))
    return paths
