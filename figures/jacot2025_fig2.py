"""E-A3 (Jacot, Súkeník, Wang & Mondelli 2025, Fig. 2): deeper linear heads give better NC2.

A ReLU MLP (L1 non-linear layers) followed by L2 = 1, 2, … linear layers, trained by full-batch
gradient descent with weight decay on a class-balanced subset of the mnist-5k digits (K = 10),
with the learning rate dropped ten-fold at 80% of the epochs (:func:`fullnet.training.train`;
docs/theory.md §6 (A) E-A3 and "Reduced versions (ii)"). At the end of training, against L2:

- NC1.tr_unc and NC2.kappa (κ of the uncentred class means) of Z_{L−1}, the input of the last
  layer, and of Z_{L1}, the input of the first linear layer (:func:`fullnet.observe.observe`
  through :func:`ufm.metrics.layer_report`); for L2 = 1 the two coincide;
- κ(W_L) of the classifier against the predictions of :func:`ufm.dynamics.linear_head_conditioning`:
  κ(A)^{1/L2} for the head product A = W_{L:L1+1} (J5, exact for a balanced head) and
  κ(R)^{1/(L2−2)}, R = (1/N)(Y − AZ_{L1})Z_{L1}ᵀ, for L2 ≥ 3 (J11, exact at a critical point).

Weight decay: (A) reports framework weight decays (wd = 0.001 and 0.004) and learning rate 0.001
without their normalization; they are read as ``torch.nn.MSELoss()`` with coupled weight decay
and converted by :func:`ufm.conventions.to_paper_convention` (λ = K·wd/2, η = 2·lr/K). The
converted η = 2e-4 would need ~10⁶ full-batch steps to balance the head (J8); the figure keeps
the converted λ and takes a larger step η (same stationary points, docs/theory.md §1.3), recorded in
the JSON. Claim of (A): NC2 improves as the linear head deepens.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from ufm.conventions import to_paper_convention
from ufm.dynamics import linear_head_conditioning

from .common import figure_title, mean_and_std, new_figure, save_figure, write_csv, write_json
from .jacot2025_fig1 import TrainingProbe, describe_network, final_features, linear_pairs, run_config
from .overrides import apply_overrides

NAME = "jacot2025_fig2"
NUM_CLASSES = 10  # mnist-5k digits


def settings(quick: bool) -> dict:
    """Data, network, training, the linear depths and the seeds.

    Every key can be changed with ``python -m figures jacot2025_fig2 --set KEY=VALUE``; (A)'s
    ResNet20 panel is ``--set architecture=resnet20 --set dataset=cifar10 --set
    standardization=channel --set nonlinear_widths=[64,64,64] --set linear_depths=[1,2,3,4,5,6]
    --set paper_weight_decays=[0.001] --set data_root=DIR`` (the ReLU widths are then the head's).
    """
    common = {"paper_learning_rate": 0.001, "log_points": 0, "dataset": "mnist-5k", "data_root": None,
              "standardization": "global", "architecture": "mlp"}
    if quick:
        return {
            **common,
            "per_class": 10,
            "nonlinear_widths": [128, 64, 64],
            "linear_depths": [1, 2, 3, 4],
            "linear_width": 32,
            "learning_rate": 0.1,
            "paper_weight_decays": [0.004],
            "epochs": 2000,
            "seeds": [0, 1],
            "threads": 1,
            "device": "cpu",
        }
    return {
        **common,
        "per_class": 100,
        "nonlinear_widths": [512, 256, 256, 128, 128],
        "linear_depths": [1, 2, 3, 4, 5],
        "linear_width": 64,
        "learning_rate": 0.05,
        "paper_weight_decays": [0.001, 0.004],
        "epochs": 30_000,
        "seeds": [0, 1, 2],
        "threads": None,
        "device": "auto",
    }


def converted_hyperparameters(config: dict) -> list[dict]:
    """(A)'s weight decays and learning rate in the package's convention (docs/theory.md §1.3).

    Read as ``torch.nn.MSELoss()`` with ``SGD(lr, weight_decay=wd)`` on the full batch.
    """
    samples = config["per_class"] * NUM_CLASSES
    converted = []
    for weight_decay in config["paper_weight_decays"]:
        paper = to_paper_convention(weight_decay, config["paper_learning_rate"], reduction="mean",
                                    batch_size=samples, num_classes=NUM_CLASSES)
        converted.append({"paper_weight_decay": weight_decay, "lam": paper.lam,
                          "converted_step_size": paper.step_size, "step_size_used": config["learning_rate"]})
    return converted


def _metric(snapshot, layer: int, metric: str) -> float:
    value = snapshot.layers[layer - 1].metrics.get(metric)
    return math.nan if value is None else float(value)


def compute(quick: bool, overrides: dict | None = None) -> dict:
    """Train every (λ, L2, seed); one row per run with the end-of-training measurements.

    ``overrides`` change keys of :func:`settings` (:func:`figures.overrides.apply_overrides`).
    """
    import torch

    from fullnet.training import train

    config = apply_overrides(settings(quick), overrides, NAME)
    threads = torch.get_num_threads()
    nonlinear = len(config["nonlinear_widths"])
    rows: list[dict] = []
    try:
        for hyper in converted_hyperparameters(config):
            for depth in config["linear_depths"]:
                run = dict(config, linear_depth=depth, weight_decay=hyper["lam"])
                for seed in config["seeds"]:
                    probe = TrainingProbe()
                    with tempfile.TemporaryDirectory(prefix=f"{NAME}_") as directory:
                        result = train(run_config(run, seed, NAME), output_dir=directory, progress=False,
                                       on_step=probe)
                    final = result.final
                    total = nonlinear + depth
                    features, _, targets = final_features(probe.trainer)
                    weights = [weight.detach() for weight in probe.trainer.model.weight_matrices()]
                    head = linear_head_conditioning(weights[nonlinear:], features.post_activations[nonlinear - 1],
                                                    targets)
                    pairs = linear_pairs(run)
                    rows.append({
                        "paper_weight_decay": hyper["paper_weight_decay"],
                        "lam": hyper["lam"],
                        "linear_depth": depth,
                        "seed": seed,
                        # row l of a snapshot holds Z_{l−1}: row L is the last layer's input,
                        # row L1 + 1 the first linear layer's input
                        "last_input_nc1": _metric(final, total, "NC1.tr_unc"),
                        "last_input_nc2": _metric(final, total, "NC2.kappa"),
                        "first_linear_input_nc1": _metric(final, nonlinear + 1, "NC1.tr_unc"),
                        "first_linear_input_nc2": _metric(final, nonlinear + 1, "NC2.kappa"),
                        "kappa_last_layer": head.last_layer,
                        "kappa_head_product": head.product,
                        "j5_prediction": head.chain_prediction,
                        "j11_prediction": head.residual_prediction,
                        "head_balancedness": max((_metric(final, pair, "BAL.rel_op") for pair in pairs),
                                                 default=None),
                        "objective": final.terms.objective,
                        "accuracy": final.accuracy,
                        "wall_seconds": result.wall_seconds,
                    })
    finally:
        torch.set_num_threads(threads)
    return {"settings": config, "hyperparameters": converted_hyperparameters(config), "rows": rows}


def make(out_dir: str | Path, quick: bool = False, overrides: dict | None = None) -> list[Path]:
    """Write ``jacot2025_fig2.png``, ``.csv`` and ``.json`` into ``out_dir``.

    ``overrides``: new values of :func:`settings` keys (``--set KEY=VALUE``).
    """
    return draw(compute(quick, overrides), out_dir, quick)


def _aggregate(rows: list[dict], lam: float, depths: list[int], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over seeds of ``key`` for every linear depth (NaN where absent)."""
    means, stds = [], []
    for depth in depths:
        values = [np.nan if row[key] is None else row[key] for row in rows
                  if row["lam"] == lam and row["linear_depth"] == depth]
        mean, std = mean_and_std([[value] for value in values])
        means.append(mean[0])
        stds.append(std[0])
    return np.array(means), np.array(stds)


def draw(data: dict, out_dir: str | Path, quick: bool) -> list[Path]:
    """Plot the output of :func:`compute` and write the three files."""
    config, rows = data["settings"], data["rows"]
    depths = list(config["linear_depths"])
    figure, axes = new_figure(1, 3, 13.5, 4.6)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for index, hyper in enumerate(data["hyperparameters"]):
        lam, color = hyper["lam"], palette[index % len(palette)]
        tag = f"λ = {lam:.3g} (wd {hyper['paper_weight_decay']:g})"
        for axis, metric in ((axes[0], "nc1"), (axes[1], "nc2")):
            for key, style, where in ((f"last_input_{metric}", "-o", r"$Z_{L-1}$, last layer's input"),
                                      (f"first_linear_input_{metric}", "--s", r"$Z_{L_1}$, first linear layer's input")):
                mean, std = _aggregate(rows, lam, depths, key)
                axis.errorbar(depths, mean, yerr=std, fmt=style, color=color, capsize=3, markersize=5,
                              alpha=1.0 if style.startswith("-") else 0.6, label=f"{where}, {tag}")
        mean, std = _aggregate(rows, lam, depths, "kappa_last_layer")
        axes[2].errorbar(depths, mean, yerr=std, fmt="-o", color=color, capsize=3, markersize=4,
                         label=rf"measured $\kappa(W_L)$, {tag}")
        for key, marker, size, label in (
            ("j5_prediction", "^", 11, r"J5: $\kappa(W_{L:L_1+1})^{1/L_2}$ (balanced head)"),
            ("j11_prediction", "x", 11, r"J11: $\kappa(R)^{1/(L_2-2)}$ (critical point, $L_2 \geq 3$)"),
        ):
            mean, _ = _aggregate(rows, lam, depths, key)
            axes[2].plot(depths, mean, linestyle="none", marker=marker, markersize=size, color=color,
                         markerfacecolor="none", markeredgewidth=1.3, label=label)
    for axis in axes:
        axis.set_xticks(depths)
        axis.set_xlabel(r"number of linear layers $L_2$")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(r"NC1: tr$\Sigma_W$ / tr$\Sigma_B^{\mathrm{unc}}$ (end of training)")
    axes[0].set_title("NC1 against the depth of the linear head")
    axes[1].set_ylabel(r"NC2: $\kappa(M)$ of the class means (1 = orthogonal frame)")
    axes[1].set_title("NC2 against the depth of the linear head")
    axes[2].set_ylabel(r"condition number of the classifier $W_L$")
    axes[2].set_title(r"$\kappa(W_L)$ against ufm.dynamics (J5, J11)")
    for axis in axes:
        axis.legend(fontsize=6.5)
    hyper = data["hyperparameters"][0]
    figure.suptitle(
        figure_title(
            "A", "E-A3 (Fig. 2)", "collapse against the number of linear layers", quick,
            f"{describe_network(dict(config, linear_depth='L2'))}\nfull-batch GD, η = {config['learning_rate']} (÷10 at 80%), "
            f"{config['epochs']} epochs; mean ± std over {len(config['seeds'])} seeds\n(A)'s wd read as "
            f"nn.MSELoss + SGD weight decay: λ = K·wd/2 (ufm.conventions); (A)'s lr converts to "
            f"η = {hyper['converted_step_size']:.2g}, replaced by a larger step\n"
            "fullnet.training.train, ufm.conventions.to_paper_convention, ufm.metrics, "
            "ufm.dynamics.linear_head_conditioning",
        )
    )
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "E-A3", "quick": quick, **data}))
    return paths
