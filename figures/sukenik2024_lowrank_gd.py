"""E-C2 (Súkeník, Lampert & Mondelli 2024, Fig. 2 top): GD on the 4-DUFM beats DNC.

K = 10, L = 4, λ = 0.004 on all blocks, width 30, lr 0.5 (the paper's settings; its n is not
stated, n = 1 here as in docs/theory.md §4.6). Plain gradient descent (:func:`ufm.solvers.solve`,
E-B1 initialization) from several seeds; panels:

- the objective along GD (mean ± 1 std over seeds) against L_DNC
  (:func:`ufm.optima.predict_dufm`) and the low-rank SRG values L_SRG for r = 5
  (:func:`ufm.optima.predict_srg`, basic point and improved family);
- the numerical rank of the class means M̃_l (pre-activation) along GD
  (:func:`ufm.metrics.layer_report`, relative tolerance ``RANK_RTOL``);
- the final ranks of W_l, M̃_l and M_l (:func:`ufm.metrics.numerical_rank`), against K (DNC) and
  r = 5 (SRG);
- the normalized singular values of M̃_4 and M_4 at the end (rank r before the last ReLU,
  K after it).

Claim reproduced: every seed ends below L_DNC, at solutions of rank about 5 before the last ReLU.
With n = 1 the within-class variability is zero by construction, so DNC1 is not plotted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ufm.metrics import class_statistics, numerical_rank
from ufm.models import DeepUFM
from ufm.optima import predict_dufm, predict_srg

from .common import figure_title, layer_colors, new_figure, plot_band, save_figure, write_csv, write_json
from .runs import (
    checkpoint_iterations,
    dufm_layer_report,
    gradient_descent_checkpoints,
    report_value,
    singular_values,
)

NAME = "sukenik2024_lowrank_gd"
RANK_RTOL = 1e-2  # relative tolerance of RANK in the plots (docs/theory.md §3: 1e-3 to 1e-2)
SRG_VERTICES = 5  # K = 10 = r(r−1)/2


def settings(quick: bool) -> dict:
    """Model, seeds and GD settings."""
    common = {"num_classes": 10, "num_layers": 4, "per_class": 1, "lam": 0.004, "width": 30,
              "lr": 0.5, "rank_rtol": RANK_RTOL, "srg_vertices": SRG_VERTICES}
    if quick:
        return {**common, "seeds": [0, 1, 2, 3], "steps": 12_000, "checkpoints": 25}
    return {**common, "seeds": list(range(10)), "steps": 100_000, "checkpoints": 45}


def compute(quick: bool) -> dict:
    """GD from every seed: loss and ranks at checkpoints, ranks and singular values at the end."""
    config = settings(quick)
    depth, k, n, lam = config["num_layers"], config["num_classes"], config["per_class"], config["lam"]
    model = DeepUFM(num_classes=k, per_class=n, widths=(config["width"],) * depth, lam_h=lam, lam_w=lam)
    dnc = predict_dufm(k, depth, n, lam, lam)
    srg_basic = predict_srg(config["srg_vertices"], depth, n, lam, lam, shift=-1.0)
    srg_improved = predict_srg(config["srg_vertices"], depth, n, lam, lam, shift=None)
    iterations = checkpoint_iterations(config["steps"], config["checkpoints"])
    rows: list[dict] = []
    for seed in config["seeds"]:
        run = gradient_descent_checkpoints(model, seed, iterations, lr=config["lr"])
        for checkpoint in run:
            report = dufm_layer_report(model, checkpoint.parameters, rank_rtol=config["rank_rtol"])
            row = {"series": "trajectory", "seed": seed, "iteration": checkpoint.iteration,
                   "loss": checkpoint.loss}
            for layer in range(2, depth + 1):
                row[f"rank_pre_{layer}"] = report_value(report, layer, "pre", "RANK")
            rows.append(row)
        final = run[-1]
        features = model.forward(final.parameters)
        for layer in range(1, depth + 1):
            rows.append({"series": "final_rank", "seed": seed, "layer": layer, "matrix": "W",
                         "rank": numerical_rank(final.parameters.weights[layer - 1], config["rank_rtol"])})
            for kind, matrices in (("pre", features.pre_activations), ("post", features.post_activations)):
                if kind == "pre" and layer == 1:
                    continue
                means = class_statistics(matrices[layer - 1], model.labels, k).means
                rows.append({"series": "final_rank", "seed": seed, "layer": layer,
                             "matrix": "M_pre" if kind == "pre" else "M",
                             "rank": numerical_rank(means, config["rank_rtol"])})
                if layer == depth:
                    values = singular_values(means)
                    for index, value in enumerate(values[:k], start=1):
                        rows.append({"series": "final_singular_value", "seed": seed, "layer": layer,
                                     "matrix": "M_pre" if kind == "pre" else "M", "index": index,
                                     "value": float(value), "relative": float(value / values[0])})
    references = {
        "dnc_loss": dnc.optimal_loss,
        "srg_loss_basic": srg_basic.optimal_loss,
        "srg_loss_improved": srg_improved.optimal_loss,
        "srg_shift_improved": srg_improved.shift,
    }
    return {"settings": config, "references": references, "rows": rows}


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``sukenik2024_lowrank_gd.png``, ``.csv`` and ``.json`` into ``out_dir``."""
    data = compute(quick)
    config, rows, references = data["settings"], data["rows"], data["references"]
    depth, k, seeds = config["num_layers"], config["num_classes"], config["seeds"]
    r = config["srg_vertices"]
    figure, axes = new_figure(2, 2, 10.5, 8.0)
    trajectory = {seed: [row for row in rows if row["series"] == "trajectory" and row["seed"] == seed]
                  for seed in seeds}
    iteration = np.array([row["iteration"] for row in trajectory[seeds[0]]], dtype=float)
    keep = iteration > 0

    # (a) loss
    axis = axes[0, 0]
    losses = [[row["loss"] for row in trajectory[seed]] for seed in seeds]
    for values in losses:
        axis.plot(iteration[keep], np.array(values)[keep], color="tab:blue", alpha=0.25, linewidth=0.8)
    plot_band(axis, iteration[keep], [np.array(values)[keep] for values in losses], color="tab:blue",
              label=f"GD, mean ± 1 std ({len(seeds)} seeds; thin: each seed)")
    axis.axhline(references["dnc_loss"], color="black", linestyle="--",
                 label=rf"$L_{{\mathrm{{DNC}}}}$ = {references['dnc_loss']:.4f}")
    axis.axhline(references["srg_loss_basic"], color="tab:red", linestyle=":",
                 label=rf"$L_{{\mathrm{{SRG}}}}$, r = {r}, basic = {references['srg_loss_basic']:.4f}")
    axis.axhline(references["srg_loss_improved"], color="tab:red", linestyle="-.",
                 label=rf"$L_{{\mathrm{{SRG}}}}$, r = {r}, improved = {references['srg_loss_improved']:.4f}")
    axis.set_xscale("log")
    axis.set_xlabel("gradient-descent step (iterations)")
    axis.set_ylabel(r"objective $\Phi$")
    final_losses = [values[-1] for values in losses]
    low = min(min(final_losses), references["srg_loss_improved"])
    axis.set_ylim(low - 0.15 * (references["dnc_loss"] - low), low + 4.0 * (references["dnc_loss"] - low))
    axis.set_title(f"objective along GD (start ≈ {np.mean([v[0] for v in losses]):.2f}, off scale); "
                   f"final {min(final_losses):.4f} to {max(final_losses):.4f}", fontsize=8.5)
    axis.legend(fontsize=7, loc="upper right")

    # (b) rank of the pre-activation class means along GD
    axis = axes[0, 1]
    colors = layer_colors(depth - 1)
    for color, layer in zip(colors, range(2, depth + 1)):
        values = [[row[f"rank_pre_{layer}"] for row in trajectory[seed]] for seed in seeds]
        plot_band(axis, iteration[keep], [np.array(v)[keep] for v in values], color=color,
                  label=rf"rank $\tilde M_{layer}$")
    axis.axhline(k, color="black", linestyle="--", linewidth=1.0, label=f"K = {k} (DNC)")
    axis.axhline(r, color="tab:red", linestyle=":", linewidth=1.2, label=f"r = {r} (SRG)")
    axis.set_xscale("log")
    axis.set_xlabel("gradient-descent step (iterations)")
    axis.set_ylabel(f"numerical rank (rtol {config['rank_rtol']:g})")
    axis.set_title("rank of the pre-activation class means (mean ± 1 std)")
    axis.legend(fontsize=7, loc="lower left")

    # (c) final ranks
    axis = axes[1, 0]
    groups = [("W", "$W_{l}$"), ("M_pre", r"$\tilde M_{l}$ (pre-ReLU)"), ("M", "$M_{l}$ (post)")]
    width = 0.26
    for index, ((matrix, label), color) in enumerate(zip(groups, ("tab:gray", "tab:orange", "tab:green"))):
        layers, means, stds = [], [], []
        for layer in range(1, depth + 1):
            values = [row["rank"] for row in rows if row["series"] == "final_rank"
                      and row["layer"] == layer and row["matrix"] == matrix]
            if values:
                layers.append(layer)
                means.append(np.mean(values))
                stds.append(np.std(values))
        positions = np.array(layers) + (index - 1) * width
        axis.bar(positions, means, width=width, yerr=stds, capsize=2, color=color,
                 label=label.replace("{l}", "l"), alpha=0.85)
    axis.axhline(k, color="black", linestyle="--", linewidth=1.0, label=f"K = {k} (DNC)")
    axis.axhline(r, color="tab:red", linestyle=":", linewidth=1.2, label=f"r = {r} (SRG)")
    axis.set_xticks(range(1, depth + 1))
    axis.set_xticklabels([f"layer {layer}" for layer in range(1, depth + 1)])
    axis.set_ylabel(f"numerical rank (rtol {config['rank_rtol']:g}), mean ± 1 std")
    axis.set_title(f"ranks at step {config['steps']}")
    axis.set_ylim(0, k + 3.5)
    axis.legend(fontsize=7, loc="upper left", ncol=3)

    # (d) singular values of the last class means
    axis = axes[1, 1]
    for matrix, color, label in (("M_pre", "tab:orange", rf"$\tilde M_{depth}$ (before the last ReLU)"),
                                 ("M", "tab:green", rf"$M_{depth}$ (after it)")):
        for number, seed in enumerate(seeds):
            points = [row for row in rows if row["series"] == "final_singular_value" and row["seed"] == seed
                      and row["matrix"] == matrix]
            axis.plot([row["index"] for row in points], [max(row["relative"], 1e-17) for row in points],
                      "o-", color=color, alpha=0.6, markersize=3, label=label if number == 0 else None)
    axis.axvline(r + 0.5, color="tab:red", linestyle=":", linewidth=1.2, label=f"rank r = {r}")
    axis.set_yscale("log")
    axis.set_xticks(range(1, k + 1))
    axis.set_xlabel("index i")
    axis.set_ylabel(r"$s_i / s_1$ of the class means")
    axis.set_title(f"singular values at step {config['steps']} (one line per seed)")
    axis.legend(fontsize=7, loc="lower left")

    figure.suptitle(
        figure_title(
            "C", "E-C2 (Fig. 2 top)", "gradient descent on the 4-DUFM finds low-rank solutions below DNC",
            quick,
            f"K = {k}, L = {depth}, n = {config['per_class']}, λ = {config['lam']} on all blocks, width "
            f"{config['width']}, plain GD lr {config['lr']}, {config['steps']} steps, {len(seeds)} seeds\n"
            "ufm.solvers.solve, ufm.optima.predict_dufm / predict_srg, ufm.metrics",
        )
    )
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "E-C2", "quick": quick, **data}))
    return paths
