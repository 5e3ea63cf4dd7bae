"""E-A4 (Jacot, Súkeník, Wang & Mondelli 2025, Fig. 3): deeper non-linear parts act more linearly.

ReLU MLPs with L1 non-linear layers (a wide first layer, then equal widths) and L2 = 2 linear
layers, trained by full-batch gradient descent with weight decay on a class-balanced subset of
the mnist-5k digits (K = 10), the learning rate dropped ten-fold at 80% of the epochs
(:func:`fullnet.training.train`; docs/theory.md §6 (A) E-A4). At the end of training, for the
non-linear layers l = 1..L1 (:func:`fullnet.observe.observe` through
:func:`ufm.metrics.layer_report`):

- the relative balancedness ‖D_l‖_op/‖W_lW_lᵀ‖_op (BAL.rel_op), D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ,
  of every pair across a ReLU, its minimum and mean over l;
- the negativity NEG = ‖H_l − σ(H_l)‖_op/‖H_l‖_op of the pre-activations, minimum and mean;
- both per layer, for every depth.

Weight decay: (A) scales its weight decay as wd = 0.016/L with the depth. (A) reports framework
weight decay and learning rates (0.001 and 0.002) without their normalization; they are read as
``torch.nn.MSELoss()`` with coupled weight decay and converted by
:func:`ufm.conventions.to_paper_convention` (λ = K·wd/2, η = 2·lr/K), with L = L1 + L2 the number of
weight matrices (the reading of "L" is not confirmed). The converted steps are far too small for
full-batch GD on a CPU; the figure keeps the converted λ and uses larger steps in the same 1 : 2
ratio (same stationary points, docs/theory.md §1.3); the JSON records both. Claim of (A): deeper
non-linear parts have layers that are less non-linear and more balanced.

What the quick version shows, and why its settings are what they are ([numerical], 1 CPU
thread, ≈ 1 ms per step, ≈ 60 s in all): at the end of training the middle ReLU layers act almost
linearly (BAL.rel_op ≈ 0.04–0.1, NEG ≈ 0.02–0.04) while the first and, above all, the last ReLU
layer stay non-linear (last pair, into the first linear layer: BAL.rel_op ≈ 0.65–0.8, NEG ≈
0.55–0.6, at every depth). The mean over layers therefore falls with L1 (≈ (b_1 + b_L1)/L1 plus
the small middle terms), and the minimum falls to a floor (≈ 0.04 for BAL.rel_op, ≈ 0.02 for NEG)
set by the training length, on which neighbouring depths can swap order. Seen only after
convergence: balancing takes ≳ 3/(ηλ) steps and λ = 0.08/L shrinks with the depth, so with too
few steps (the earlier quick version: 4000 at η = 0.07, L1 = 2..6) the deeper networks' middle
layers are still unbalanced and the mean balancedness rose with L1 (0.34 → 0.37). The quick
depths are (A)'s range 4..12 without 12 (L1 = 12 needs more steps than the budget allows). Below (A)'s range the mean balancedness does not follow: at L1 = 2 (converged,
16 000 steps at η = 0.07) the last pair stays fairly balanced (≈ 0.3) and the mean (≈ 0.30–0.32)
lies below that of L1 = 4 (≈ 0.38), though its negativity (≈ 0.5) is the highest; L1 = 3 goes
either way with the seed; and η = 0.15 diverges at L1 = 2.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from ufm.conventions import to_paper_convention

from .common import figure_title, layer_colors, mean_and_std, new_figure, save_figure, write_csv, write_json
from .jacot2025_fig1 import run_config
from .overrides import apply_overrides

NAME = "jacot2025_fig3"
NUM_CLASSES = 10  # mnist-5k digits


def settings(quick: bool) -> dict:
    """Data, networks, training, the non-linear depths and the seeds."""
    common = {"paper_weight_decay_times_depth": 0.016, "linear_depth": 2, "log_points": 0}
    if quick:
        return {
            **common,
            "per_class": 10,
            "first_width": 64,
            "width": 48,
            "linear_width": 32,
            "nonlinear_depths": [4, 6, 8, 10],
            "paper_learning_rates": [0.001],
            "learning_rates": [0.15],
            "epochs": 8000,
            "seeds": [0, 1],
            "threads": 1,
            "device": "cpu",
        }
    return {
        **common,
        "per_class": 100,
        "first_width": 512,
        "width": 256,
        "linear_width": 128,
        "nonlinear_depths": [4, 6, 8, 10, 12],
        "paper_learning_rates": [0.001, 0.002],
        "learning_rates": [0.025, 0.05],
        "epochs": 40_000,
        "seeds": [0, 1, 2],
        "threads": None,
        "device": "auto",
    }


def network(config: dict, nonlinear_depth: int) -> dict:
    """Widths, L and the converted λ of the network with ``nonlinear_depth`` ReLU layers.

    wd = 0.016/L with L = L1 + L2, converted as ``nn.MSELoss()`` + SGD weight decay on the full
    batch (:func:`ufm.conventions.to_paper_convention`).
    """
    depth = nonlinear_depth + config["linear_depth"]
    weight_decay = config["paper_weight_decay_times_depth"] / depth
    samples = config["per_class"] * NUM_CLASSES
    converted = [to_paper_convention(weight_decay, rate, reduction="mean", batch_size=samples,
                                     num_classes=NUM_CLASSES) for rate in config["paper_learning_rates"]]
    return {
        "nonlinear_depth": nonlinear_depth,
        "depth": depth,
        "nonlinear_widths": [config["first_width"]] + [config["width"]] * (nonlinear_depth - 1),
        "paper_weight_decay": weight_decay,
        "lam": converted[0].lam,
        "converted_step_sizes": [paper.step_size for paper in converted],
    }


def _value(value) -> float:
    return math.nan if value is None else float(value)


def layer_values(snapshot, nonlinear_depth: int) -> tuple[list[float], list[float]]:
    """BAL.rel_op of D_l (row l) and NEG of H_l (row l + 1, pre-activation) for l = 1..L1."""
    balancedness = [_value(snapshot.layers[layer - 1].metrics.get("BAL.rel_op"))
                    for layer in range(1, nonlinear_depth + 1)]
    negativity = [_value(snapshot.layers[layer].pre_metrics.get("NEG"))
                  for layer in range(1, nonlinear_depth + 1)]
    return balancedness, negativity


def compute(quick: bool, overrides: dict | None = None) -> dict:
    """Train every (learning rate, depth, seed); rows per run and layer, at epoch 0 and at the end.

    ``overrides`` change keys of :func:`settings` (:func:`figures.overrides.apply_overrides`).
    """
    import torch

    from fullnet.training import train

    config = apply_overrides(settings(quick), overrides, NAME)
    threads = torch.get_num_threads()
    rows: list[dict] = []
    networks = [network(config, depth) for depth in config["nonlinear_depths"]]
    try:
        for rate_index, rate in enumerate(config["learning_rates"]):
            for net in networks:
                run = dict(config, nonlinear_widths=net["nonlinear_widths"], learning_rate=rate,
                           weight_decay=net["lam"])
                for seed in config["seeds"]:
                    with tempfile.TemporaryDirectory(prefix=f"{NAME}_") as directory:
                        result = train(run_config(run, seed, NAME), output_dir=directory, progress=False)
                    for stage, snapshot in (("initial", result.history[0]), ("final", result.final)):
                        balancedness, negativity = layer_values(snapshot, net["nonlinear_depth"])
                        for layer, (bal, neg) in enumerate(zip(balancedness, negativity), start=1):
                            rows.append({
                                "learning_rate": rate,
                                "paper_learning_rate": config["paper_learning_rates"][rate_index],
                                "nonlinear_depth": net["nonlinear_depth"],
                                "lam": net["lam"],
                                "seed": seed,
                                "stage": stage,
                                "epoch": snapshot.epoch,
                                "layer": layer,
                                "balancedness": bal,
                                "negativity": neg,
                                "objective": snapshot.terms.objective,
                                "accuracy": snapshot.accuracy,
                            })
    finally:
        torch.set_num_threads(threads)
    return {"settings": config, "networks": networks, "rows": rows,
            "conversion": "(A)'s wd = 0.016/L and lr read as torch nn.MSELoss() + SGD(lr, weight_decay=wd) "
                          "on the full batch; λ = K·wd/2 and η = 2·lr/K (ufm.conventions.to_paper_convention, "
                          "docs/theory.md §1.3); L = L1 + L2. The converted η (networks[].converted_step_sizes) "
                          "is replaced by settings.learning_rates (same 1 : 2 ratio), λ is kept."}


def summary(rows: list[dict], rate: float, depth: int, stage: str, key: str) -> tuple[float, float, float, float]:
    """Mean over seeds of the minimum and of the mean over layers of ``key``, with their stds."""
    minima, means = [], []
    for seed in sorted({row["seed"] for row in rows}):
        values = [row[key] for row in rows if row["learning_rate"] == rate and row["nonlinear_depth"] == depth
                  and row["stage"] == stage and row["seed"] == seed]
        if values:
            minima.append([float(np.nanmin(values))])
            means.append([float(np.nanmean(values))])
    minimum, minimum_std = mean_and_std(minima)
    mean, mean_std = mean_and_std(means)
    return float(minimum[0]), float(minimum_std[0]), float(mean[0]), float(mean_std[0])


def make(out_dir: str | Path, quick: bool = False, overrides: dict | None = None) -> list[Path]:
    """Write ``jacot2025_fig3.png``, ``.csv`` and ``.json`` into ``out_dir``.

    ``overrides``: new values of :func:`settings` keys (``--set KEY=VALUE``).
    """
    return draw(compute(quick, overrides), out_dir, quick)


def draw(data: dict, out_dir: str | Path, quick: bool) -> list[Path]:
    """Plot the output of :func:`compute` and write the three files."""
    config, rows = data["settings"], data["rows"]
    depths = list(config["nonlinear_depths"])
    rates = list(config["learning_rates"])
    figure, axes = new_figure(2, 2, 11.5, 8.6)
    palette = ["#1f77b4", "#d62728", "#2ca02c"]
    for index, rate in enumerate(rates):
        color = palette[index % len(palette)]
        for axis, key in ((axes[0, 0], "balancedness"), (axes[0, 1], "negativity")):
            finals = np.array([summary(rows, rate, depth, "final", key) for depth in depths])
            initials = np.array([summary(rows, rate, depth, "initial", key) for depth in depths])
            axis.errorbar(depths, finals[:, 2], yerr=finals[:, 3], fmt="-o", color=color, capsize=3,
                          label=f"mean over ReLU layers, η = {rate}")
            axis.errorbar(depths, finals[:, 0], yerr=finals[:, 1], fmt="--v", color=color, capsize=3,
                          label=f"min over ReLU layers, η = {rate}")
            if index == 0:
                axis.plot(depths, initials[:, 2], ":", color="gray", marker=".", label="mean at initialization")
    axes[0, 0].set_ylabel(r"$\|D_l\|_{op} / \|W_l W_l^\top\|_{op}$, $l \leq L_1$ (end of training)")
    axes[0, 0].set_title(r"balancedness of the pairs across a ReLU ($D_l$, $l = 1..L_1$)")
    axes[0, 1].set_ylabel(r"negativity $\|H_l - \sigma(H_l)\|_{op} / \|H_l\|_{op}$ (end of training)")
    axes[0, 1].set_title(r"negativity of the ReLU layers ($H_l$, $l = 1..L_1$)")
    for axis in axes[0]:
        axis.set_xticks(depths)
        axis.set_xlabel(r"non-linear depth $L_1$ (λ = K·0.016 / (2L), L = $L_1$ + %d)" % config["linear_depth"])
        axis.set_ylim(bottom=0.0)
        axis.legend(fontsize=7)

    # per-layer profiles at the end, first learning rate, seed-averaged
    colors = layer_colors(len(depths))
    rate = rates[0]
    for color, depth in zip(colors, depths):
        for axis, key in ((axes[1, 0], "balancedness"), (axes[1, 1], "negativity")):
            per_seed = {}
            for row in rows:
                if row["learning_rate"] == rate and row["nonlinear_depth"] == depth and row["stage"] == "final":
                    per_seed.setdefault(row["seed"], []).append(row[key])
            mean, _ = mean_and_std(list(per_seed.values()))
            axis.plot(range(1, depth + 1), mean, "-o", color=color, markersize=4, label=f"$L_1$ = {depth}")
    axes[1, 0].set_ylabel(r"$\|D_l\|_{op} / \|W_l W_l^\top\|_{op}$")
    axes[1, 0].set_title(f"balancedness per layer at the end (η = {rate}, mean over seeds)")
    axes[1, 1].set_ylabel(r"negativity of $H_l$")
    axes[1, 1].set_title(f"negativity per layer at the end (η = {rate}, mean over seeds)")
    for axis in axes[1]:
        axis.set_xlabel("ReLU layer l")
        axis.set_xticks(range(1, max(depths) + 1))
        axis.set_ylim(bottom=0.0)
        axis.legend(fontsize=7, ncol=2)

    first = data["networks"][0]
    figure.suptitle(
        figure_title(
            "A", "E-A4 (Fig. 3)", "balancedness and negativity against the non-linear depth", quick,
            f"mnist-5k digits, n = {config['per_class']} per class (K = 10); L1 ReLU layers (widths "
            f"{config['first_width']}, {config['width']}, …) + {config['linear_depth']} linear layers (width "
            f"{config['linear_width']})\nfull-batch GD, {config['epochs']} epochs, η ÷ 10 at 80%; "
            f"{len(config['seeds'])} seed(s); fullnet.training.train, fullnet.observe, ufm.metrics\n"
            f"(A)'s wd = 0.016/L read as nn.MSELoss + SGD weight decay: λ = K·wd/2 (ufm.conventions; "
            f"λ = {first['lam']:.3g} at L1 = {first['nonlinear_depth']})\n(A)'s lr converts to "
            f"η = {first['converted_step_sizes'][0]:.2g}, replaced by larger steps (same stationary points)",
        )
    )
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "E-A4", "quick": quick, **data}))
    return paths
