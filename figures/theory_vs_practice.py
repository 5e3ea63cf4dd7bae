"""Theory against practice: a trained network's last layers beside the matching ``ufm`` optimum.

A ReLU MLP with a linear head is trained on mnist-5k digits with full-batch gradient descent and
weight decay (:func:`fullnet.training.train`), with a feature penalty λ_H on the output of its last
non-linear layer; :func:`fullnet.compare.compare_run` then sees its last layers through

- the linear head with fixed features (docs/theory.md §2(d)): the optimum of the head on the measured
  features (L-BFGS, with the convex certificate for L2 = 2), its balanced-chain singular values and
  class-mean norms (F2, J5), the balancedness bound (J9) and the residual singular values (J11);
- the deep linear unconstrained-features view (§2(b), §4.2) of the layers after the penalized
  features: L_DNC, q*, singular values, class-mean norms and the BAL.scalar entries (D4);
- the per-layer metrics (docs/theory.md §3) of the solved head optimum against the trained head.

Panels: every compared quantity as a pair of bars (predicted, measured; log scale) with the
relative error ``|measured − predicted|/|predicted|`` written beside it; the per-layer metrics the
same way; the quantities that theory bounds (measured against its bound). Nothing is computed
here: every number is a field of the :class:`fullnet.compare.Comparison`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fullnet.compare import compare_run
from fullnet.config import RunConfig
from fullnet.training import train

from .common import apply_style, figure_title, plt, save_figure, write_csv, write_json

NAME = "theory_vs_practice"
VIEW_COLORS = {"head": "tab:blue", "network": "tab:purple", "view": "tab:green"}


def settings(quick: bool) -> dict:
    """The run configuration (a plain dict of :class:`fullnet.config.RunConfig`) and options."""
    if quick:
        return {
            "per_class": 20, "nonlinear_widths": [128, 64], "linear_depth": 2, "linear_width": 32,
            "epochs": 800, "learning_rate": 0.05, "weight_decay": 2e-3, "feature_penalty": 5e-5,
            "log_points": 4, "threads": 2, "seed": 0, "rank_tolerance": 1e-3,
        }
    return {
        "per_class": 50, "nonlinear_widths": [512, 256, 128], "linear_depth": 2, "linear_width": 64,
        "epochs": 8000, "learning_rate": 0.05, "weight_decay": 2e-3, "feature_penalty": 5e-5,
        "log_points": 20, "threads": None, "seed": 0, "rank_tolerance": 1e-3,
    }


def run_config(config: dict, directory: str | Path) -> RunConfig:
    """The :class:`RunConfig` of the network (features penalized at the last non-linear layer)."""
    return RunConfig.from_dict({
        "name": NAME,
        "data": {"name": "mnist-5k", "per_class": config["per_class"], "standardization": "global"},
        "model": {"architecture": "mlp", "nonlinear_widths": list(config["nonlinear_widths"]),
                  "linear_depth": config["linear_depth"], "linear_width": config["linear_width"],
                  "activation": "relu", "init": "lecun", "seed": config["seed"]},
        "training": {"optimizer": "gd", "epochs": config["epochs"], "learning_rate": config["learning_rate"],
                     "weight_decay": config["weight_decay"], "feature_penalty": config["feature_penalty"],
                     "feature_penalty_layer": len(config["nonlinear_widths"]), "device": "cpu",
                     "threads": config["threads"], "seed": config["seed"]},
        "observe": {"log_points": config["log_points"]},
        "output": {"directory": str(directory), "progress": False},
    })


def compute(out_dir: str | Path, quick: bool) -> dict:
    """Train, compare (:func:`fullnet.compare.compare_run`) and list the rows of the data file."""
    import torch

    import shutil

    config = settings(quick)
    directory = Path(out_dir) / f"{NAME}_run"
    # The run directory is this figure's own output: a rerun trains afresh into it.
    shutil.rmtree(directory, ignore_errors=True)
    threads = torch.get_num_threads()
    try:
        result = train(run_config(config, Path(out_dir)), output_dir=directory, progress=False)
    finally:
        torch.set_num_threads(threads)
    comparison = compare_run(directory, seed=config["seed"], rank_tolerance=config["rank_tolerance"])
    rows = [{"series": "comparison", **row.to_dict()} for row in comparison.rows]
    rows += [{"series": "layer_metric", **entry} for entry in comparison.layer_rows]
    return {"settings": config, "run_directory": str(directory),
            "training": {"status": result.status, "epochs": result.epochs_completed,
                         "wall_seconds": result.wall_seconds},
            "comparison": comparison.to_dict(), "rows": rows}


def _bars(axis, labels, predicted, measured, errors, colors, *, predicted_label="predicted (ufm)",
          measured_label="measured (network)", headroom=40.0) -> None:
    """Horizontal pairs of bars on a log axis, top to bottom, with the relative errors written."""
    count = len(labels)
    position = np.arange(count)[::-1].astype(float)
    height = 0.38
    axis.barh(position + height / 2, predicted, height=height, color=colors, alpha=0.45,
              edgecolor="black", linewidth=0.4, label=predicted_label)
    axis.barh(position - height / 2, measured, height=height, color=colors, alpha=0.95,
              edgecolor="black", linewidth=0.4, hatch="///", label=measured_label)
    axis.set_xscale("log")
    values = [value for value in list(predicted) + list(measured) if value and value > 0]
    low, high = min(values), max(values)
    axis.set_xlim(low / 3.0, high * headroom)
    for y, p, m, error in zip(position, predicted, measured, errors):
        text = "–" if error is None else (f"{100 * error:.1f}%" if error < 10 else f"{error:.3g}×")
        axis.text(max(p or 0, m or 0, low) * 1.3, y, text, va="center", fontsize=6.5)
    axis.set_yticks(position)
    axis.set_yticklabels(labels, fontsize=6.5)
    axis.set_ylim(-0.8, count - 0.2)
    axis.grid(axis="y", visible=False)


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``theory_vs_practice.png``, ``.csv`` and ``.json`` into ``out_dir``."""
    data = compute(out_dir, quick)
    config, comparison = data["settings"], data["comparison"]
    compared = [row for row in comparison["rows"] if row["relation"] in ("=", ">=", "reference")
                and row["predicted"] and row["predicted"] > 0 and row["measured"] and row["measured"] > 0]
    bounded = [row for row in comparison["rows"] if row["relation"] == "<=" and row["measured"] is not None]
    metrics = [entry for entry in comparison["layer_rows"] if entry["predicted"] and entry["measured"]
               and entry["predicted"] > 0 and entry["measured"] > 0]

    apply_style()
    figure = plt.figure(figsize=(13.0, max(9.0, 0.2 * len(compared) + 2.5)), layout="constrained")
    left, right = figure.subfigures(1, 2, width_ratios=[1.25, 1.0])
    axis = left.subplots()
    relation = {"=": "", ">=": " [≥]", "reference": " [ref.]"}
    _bars(axis, [f"{row['view']}: {row['quantity']}{relation[row['relation']]}" for row in compared],
          [row["predicted"] for row in compared], [row["measured"] for row in compared],
          [row["relative_error"] for row in compared], [VIEW_COLORS[row["view"]] for row in compared])
    axis.set_xlabel("value (log scale); text: relative error |measured − predicted| / |predicted|")
    axis.set_title("compared quantities (light: predicted by the ufm optimum; hatched: measured)\n"
                   "blue: linear head on fixed features (§2(d)); green: deep UFM view (§4.2); "
                   "purple: network", fontsize=8.5)
    axis.legend(fontsize=7, loc="lower right")

    top, bottom = right.subplots(2, 1, height_ratios=[max(len(metrics), 1), max(len(bounded), 1) + 2])
    if metrics:
        _bars(top, [f"layer {entry['layer']}: {entry['metric']}" for entry in metrics],
              [entry["predicted"] for entry in metrics], [entry["measured"] for entry in metrics],
              [entry["relative_error"] for entry in metrics], ["tab:orange"] * len(metrics),
              predicted_label="at the solved head optimum", measured_label="trained head", headroom=3e4)
        top.legend(fontsize=7, loc="lower right")
    top.set_xlabel("value (log scale); text: relative error")
    top.set_title("per-layer metrics of the head (docs/theory.md §3)", fontsize=8.5)
    if bounded:
        labels = [f"{row['view']}: {row['quantity']}" for row in bounded]
        position = np.arange(len(bounded))[::-1]
        bottom.barh(position + 0.19, [row["bound"] for row in bounded], height=0.38, color="tab:gray",
                    alpha=0.5, edgecolor="black", linewidth=0.4, label="bound (theory)")
        bottom.barh(position - 0.19, [max(row["measured"], 1e-300) for row in bounded], height=0.38,
                    color="tab:red", alpha=0.9, edgecolor="black", linewidth=0.4, hatch="///",
                    label="measured (predicted: 0)")
        for y, row in zip(position, bounded):
            bottom.text(max(row["bound"], row["measured"]) * 1.3, y,
                        "holds" if row["holds"] else "violated", va="center", fontsize=7)
        bottom.set_yticks(position)
        bottom.set_yticklabels(labels, fontsize=6.5)
        bottom.set_xscale("log")
        values = [value for row in bounded for value in (row["bound"], row["measured"]) if value > 0]
        bottom.set_xlim(min(values) / 3.0, max(values) * 20.0)
        bottom.grid(axis="y", visible=False)
        bottom.legend(fontsize=7, loc="lower right")
    bottom.set_xlabel("value (log scale)")
    bottom.set_title("quantities that vanish at the optimum, against proven bounds", fontsize=8.5)

    network = comparison["network"]
    figure.suptitle(figure_title(
        "A", "E-A1 / E-B4 reduced", "a trained network's last layers against the matching ufm optimum",
        quick,
        f"mnist-5k, n = {config['per_class']} per class; ReLU MLP {config['nonlinear_widths']} + "
        f"{config['linear_depth']} linear layers (width {config['linear_width']}); full-batch GD, η = "
        f"{config['learning_rate']}, λ = {config['weight_decay']}, λ_H = {config['feature_penalty']} on "
        f"Z_{len(config['nonlinear_widths'])}, {data['training']['epochs']} epochs; Φ_net = "
        f"{network['objective']:.4g}, accuracy {network['accuracy']:.3g}\n"
        "fullnet.training.train → fullnet.compare.compare_run (ufm.models.LinearHead, ufm.solvers, "
        "ufm.optima.predict_deep_linear)",
    ))
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, data["rows"])]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "E-A1/E-B4", "quick": quick,
                                            **data}))
    return paths
