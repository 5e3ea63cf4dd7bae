"""E-B1 (Súkeník, Mondelli & Lampert 2023): gradient descent on the DUFM reaches the DNC optimum.

K = 2, L = 3, n = 5, λ = 0.004 on all blocks: L_DNC (:func:`ufm.optima.predict_dufm`) is the
global minimum for K = 2 (docs/theory.md §4.3). Plain GD (:func:`ufm.solvers.solve`, E-B1
initialization, lr 0.5) from several seeds; panels:

- the gap Φ − L_DNC along GD (log-log);
- DNC1 (NC1.tr_unc of H_l and H̃_l, :func:`ufm.metrics.layer_report`) along GD;
- the singular values of every W_l at the end against the predicted s_l (for W₁ only ‖W₁‖_F is
  fixed across the flat family of optima, §4.4);
- the per-layer DNC metrics at the end (DNC1, DNC2 = NC2.orth for l ≥ 2, DNC3 = NC3.span for
  l < L and NC3.dual for l = L, and the spread of BAL.scalar), all 0 at the DNC optimum.

Narrow layers (width 10) stall at non-collapsed critical points for some seeds (docs/theory.md §4.6,
E-B2); this figure uses width 30, within E-B1's range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ufm.models import DeepUFM
from ufm.optima import predict_dufm

from .common import figure_title, layer_colors, new_figure, save_figure, write_csv, write_json
from .runs import (
    checkpoint_iterations,
    dufm_layer_report,
    gradient_descent_checkpoints,
    report_value,
    singular_values,
)

NAME = "sukenik2023_dufm_gd"
FLOOR = 1e-30  # log-axis floor for values that are exactly 0


def settings(quick: bool) -> dict:
    """Model, seeds and GD settings."""
    common = {"num_classes": 2, "num_layers": 3, "per_class": 5, "lam": 0.004, "lr": 0.5}
    if quick:
        return {**common, "width": 30, "seeds": [0, 1, 2], "steps": 20_000, "checkpoints": 30}
    return {**common, "width": 64, "seeds": list(range(10)), "steps": 100_000, "checkpoints": 45}


def _metric_rows(report, seed: int, iteration: int, depth: int) -> list[dict]:
    """DNC metrics of one report as long rows (layer, kind, metric, value)."""
    rows = []
    wanted = [(layer, "post", "NC1.tr_unc") for layer in range(1, depth + 1)]
    wanted += [(layer, "pre", "NC1.tr_unc") for layer in range(2, depth + 1)]
    wanted += [(layer, "post", "NC2.orth") for layer in range(2, depth + 1)]
    wanted += [(layer, "pre", "NC2.orth") for layer in range(3, depth + 1)]
    wanted += [(layer, "post", "NC3.span") for layer in range(1, depth)]
    wanted += [(depth, "post", "NC3.dual")]
    for layer, kind, metric in wanted:
        rows.append(
            {
                "series": "metric",
                "seed": seed,
                "iteration": iteration,
                "layer": layer,
                "kind": kind,
                "metric": metric,
                "value": report_value(report, layer, kind, metric),
            }
        )
    rows.append(
        {
            "series": "metric",
            "seed": seed,
            "iteration": iteration,
            "layer": "",
            "kind": "total",
            "metric": "BAL.scalar",
            "value": report.totals.get("BAL.scalar", float("nan")),
        }
    )
    return rows


def compute(quick: bool) -> dict:
    """Run GD from every seed; losses and metrics at the checkpoints, singular values at the end."""
    config = settings(quick)
    depth = config["num_layers"]
    model = DeepUFM(
        num_classes=config["num_classes"],
        per_class=config["per_class"],
        widths=(config["width"],) * depth,
        lam_h=config["lam"],
        lam_w=config["lam"],
    )
    optimum = predict_dufm(config["num_classes"], depth, config["per_class"], config["lam"], config["lam"])
    iterations = checkpoint_iterations(config["steps"], config["checkpoints"])
    rows: list[dict] = []
    for seed in config["seeds"]:
        run = gradient_descent_checkpoints(model, seed, iterations, lr=config["lr"])
        for checkpoint in run:
            rows.append(
                {
                    "series": "loss",
                    "seed": seed,
                    "iteration": checkpoint.iteration,
                    "value": checkpoint.loss,
                    "predicted": optimum.optimal_loss,
                    "gap": checkpoint.loss - optimum.optimal_loss,
                }
            )
            report = dufm_layer_report(model, checkpoint.parameters)
            rows.extend(_metric_rows(report, seed, checkpoint.iteration, depth))
        final = run[-1]
        for layer, weight in enumerate(final.parameters.weights, start=1):
            for index, value in enumerate(singular_values(weight)[: config["num_classes"] + 1]):
                predicted = optimum.singular_values[layer - 1]
                rows.append(
                    {
                        "series": "singular_value",
                        "seed": seed,
                        "iteration": final.iteration,
                        "layer": layer,
                        "index": index + 1,
                        "value": float(value),
                        "predicted": predicted[index] if index < len(predicted) else 0.0,
                    }
                )
    return {"settings": config, "prediction": optimum.to_dict(), "rows": rows}


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``sukenik2023_dufm_gd.png``, ``.csv`` and ``.json`` into ``out_dir``."""
    data = compute(quick)
    config, rows, prediction = data["settings"], data["rows"], data["prediction"]
    depth, seeds, k = config["num_layers"], config["seeds"], config["num_classes"]
    figure, axes = new_figure(2, 2, 10.5, 8.0)
    seed_colors = layer_colors(len(seeds))

    # (a) loss gap
    axis = axes[0, 0]
    for color, seed in zip(seed_colors, seeds):
        points = [row for row in rows if row["series"] == "loss" and row["seed"] == seed]
        iteration = np.array([row["iteration"] for row in points], dtype=float)
        gap = np.array([row["gap"] for row in points])
        keep = iteration > 0
        axis.plot(iteration[keep], np.maximum(gap[keep], 1e-16), color=color, label=f"seed {seed}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("gradient-descent step (iterations)")
    axis.set_ylabel(r"$\Phi - L_{\mathrm{DNC}}$")
    axis.set_title(rf"loss gap to $L_{{\mathrm{{DNC}}}}$ = {prediction['optimal_loss']:.6g} (global optimum, K = 2)")
    axis.legend(fontsize=7, ncol=2)

    # (b) DNC1 along GD: median over seeds, min–max band
    axis = axes[0, 1]
    colors = layer_colors(depth)
    for layer in range(1, depth + 1):
        for kind, style in (("post", "-"), ("pre", "--")):
            if kind == "pre" and layer == 1:
                continue
            series = []
            for seed in seeds:
                points = [
                    row for row in rows
                    if row["series"] == "metric" and row["seed"] == seed and row["layer"] == layer
                    and row["kind"] == kind and row["metric"] == "NC1.tr_unc"
                ]
                series.append([row["value"] for row in points])
                iteration = np.array([row["iteration"] for row in points], dtype=float)
            values = np.array(series)
            keep = iteration > 0
            label = f"$H_{layer}$" if kind == "post" else rf"$\tilde H_{layer}$ (pre-ReLU)"
            axis.plot(iteration[keep], np.median(values, axis=0)[keep], linestyle=style,
                      color=colors[layer - 1], label=label)
            axis.fill_between(iteration[keep], values.min(axis=0)[keep], values.max(axis=0)[keep],
                              color=colors[layer - 1], alpha=0.15, linewidth=0)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("gradient-descent step (iterations)")
    axis.set_ylabel(r"DNC1: NC1.tr_unc $=\|H-\bar H\|_F^2/\|\bar H\|_F^2$")
    axis.set_title("DNC1 per layer (median over seeds; band: min to max)")
    axis.legend(fontsize=7)

    # (c) singular values at convergence, relative to the prediction
    axis = axes[1, 0]
    offsets = np.linspace(-0.18, 0.18, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    axis.axhline(1.0, color="black", linewidth=1.5, label=r"prediction $s_l$ (docs/theory.md §4.3)")
    for layer in range(1, depth + 1):
        for offset, color, seed in zip(offsets, seed_colors, seeds):
            points = [row for row in rows if row["series"] == "singular_value" and row["seed"] == seed
                      and row["layer"] == layer and row["index"] <= k]
            axis.scatter([layer + offset] * len(points),
                         [row["value"] / row["predicted"] for row in points], s=16, color=color,
                         zorder=3, label=f"seed {seed}" if layer == 1 else None)
    axis.set_xticks(range(1, depth + 1))
    axis.set_xticklabels(
        [f"$W_{layer}$, $s_{layer}$ = {prediction['singular_values'][layer - 1][0]:.4f}"
         + ("\n(β family: only $\\|W_1\\|_F$ fixed)" if layer == 1 else "")
         for layer in range(1, depth + 1)]
    )
    axis.set_ylabel(r"measured $s_i(W_l)$ / predicted $s_l$, $i \leq K$")
    axis.set_title(f"the K nonzero singular values at step {config['steps']} (ratio to prediction)")
    axis.legend(fontsize=7, loc="best")

    # (d) final DNC metrics per layer
    axis = axes[1, 1]
    final_iteration = config["steps"]
    categories = [(layer, "post", "NC1.tr_unc", f"DNC1 $H_{layer}$") for layer in range(1, depth + 1)]
    categories += [(layer, "post", "NC2.orth", f"DNC2 $M_{layer}$") for layer in range(2, depth + 1)]
    categories += [(layer, "pre", "NC2.orth", rf"DNC2 $\tilde M_{layer}$") for layer in range(3, depth + 1)]
    categories += [(layer, "post", "NC3.span", f"DNC3 $W_{layer}$ span") for layer in range(1, depth)]
    categories += [(depth, "post", "NC3.dual", f"DNC3 $W_{depth}$ dual")]
    categories += [("", "total", "BAL.scalar", "BAL.scalar spread")]
    for position, (layer, kind, metric, _) in enumerate(categories):
        for offset, color, seed in zip(offsets, seed_colors, seeds):
            value = [row["value"] for row in rows if row["series"] == "metric" and row["seed"] == seed
                     and row["iteration"] == final_iteration and row["layer"] == layer
                     and row["kind"] == kind and row["metric"] == metric]
            axis.scatter(position + offset, max(value[0], FLOOR), s=16, color=color, zorder=3)
    axis.set_yscale("log")
    axis.set_xticks(range(len(categories)))
    axis.set_xticklabels([label for *_, label in categories], rotation=40, ha="right", fontsize=7.5)
    axis.set_ylabel("metric value (0 at the DNC optimum)")
    axis.set_title(f"DNC metrics at step {config['steps']}, one dot per seed (0 drawn at {FLOOR:g})")

    figure.suptitle(
        figure_title(
            "B", "E-B1", "gradient descent on the L-DUFM reaches the DNC optimum", quick,
            f"K = {k}, L = {depth}, n = {config['per_class']}, λ = {config['lam']} on all blocks, "
            f"width {config['width']}, plain GD lr {config['lr']}, {len(seeds)} seeds\n"
            "ufm.solvers.solve, ufm.optima.predict_dufm, ufm.metrics.layer_report",
        )
    )
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "E-B1", "quick": quick, **data}))
    return paths
