"""λ–width exploration (docs/theory.md §6, "λ–width exploration"): NC metrics over (λ, width).

A sweep of :mod:`fullnet.sweeps` is run (:func:`fullnet.sweeps.run_sweep`) into a SQLite store in
the output folder; the store is reused, so a second call only reads it (completed runs are never
run again). Its final values (:meth:`fullnet.store.SweepStore.final_metrics`) are aggregated over
seeds by :func:`fullnet.sweeps.aggregate_grid` (heatmaps over λ × first-layer width p₁) and
:func:`fullnet.sweeps.aggregate_lines` (the lines λ·p₁ = c, λ ∝ 1/p₁, along which docs/theory.md §6's
λ ≲ ε1²/p₁ is constant). Panels, one column per quantity:

- top: the mean over seeds on the (λ, p₁) grid; cells not run are blank, cells on a line λ·p₁ = c
  are outlined;
- bottom: the same quantity against p₁ along each line λ·p₁ = c (solid, mean ± 1 std over seeds)
  and, for comparison, at each fixed λ of the grid (thin dashed).

Quantities: NC1.tr_unc and NC2.orth of the input of the last layer W_L (row L of the per-layer
metrics, docs/theory.md §3) and the final objective Φ_net. Quick: the Gaussian quick sweep
(the packaged ``sweep_lambda_width_gaussian_quick``, 30 runs in this process); full: the MNIST
sweep (``sweep_lambda_width_mnist``, 99 runs on local worker processes); both in
``fullnet/configs/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fullnet.config import resolve_config_path

from fullnet.store import SweepStore
from fullnet.sweeps import aggregate_grid, aggregate_lines, load_sweep, run_sweep

from .common import figure_title, new_figure, save_figure, write_csv, write_json

NAME = "lambda_width_sweep"
LAST_LAYER = -1  # stands for the row of the last layer's input (L = L1 + L2)


def settings(quick: bool) -> dict:
    """Sweep file, its overrides, the executor and the plotted quantities.

    ``quantities``: (metric, layer, label, log colour scale); layer ``LAST_LAYER`` is row L.
    """
    quantities = [
        ("NC1.tr_unc", LAST_LAYER, "NC1.tr_unc of the last layer's input", True),
        ("NC2.orth", LAST_LAYER, "NC2.orth of the last layer's input", False),
        ("objective", 0, r"final objective $\Phi_{\mathrm{net}}$", True),
    ]
    if quick:
        return {"sweep": str(resolve_config_path("sweep_lambda_width_gaussian_quick", "sweep file")),
                "overrides": ["output.progress=false"], "workers": 0, "quantities": quantities}
    return {"sweep": str(resolve_config_path("sweep_lambda_width_mnist", "sweep file")),
            "overrides": ["output.progress=false"], "workers": None, "quantities": quantities}


def store_path(out_dir: str | Path) -> Path:
    """The SQLite store of the sweep in ``out_dir``."""
    return Path(out_dir) / f"{NAME}.sqlite"


def run(out_dir: str | Path, quick: bool) -> tuple[object, dict, dict]:
    """Run (or resume) the sweep into :func:`store_path`; returns (specification, report, config).

    Run directories go to ``out_dir/NAME_runs/SWEEP_NAME/``.
    """
    import torch

    config = settings(quick)
    runs = (Path(out_dir) / f"{NAME}_runs").resolve()
    specification = load_sweep(config["sweep"], [f"output.directory={runs}", *config["overrides"]])
    threads = torch.get_num_threads()
    try:  # in-process runs set this process's torch threads; restore them for later figures
        report = run_sweep(specification, store_path(out_dir), workers=config["workers"], progress=False)
    finally:
        torch.set_num_threads(threads)
    return specification, report.to_dict(), config


def compute(out_dir: str | Path, quick: bool) -> dict:
    """The sweep's grid and line aggregates of every quantity, and the CSV rows."""
    specification, report, config = run(out_dir, quick)
    rows: list[dict] = []
    panels = []
    with SweepStore(store_path(out_dir), create=False) as store:
        counts = store.counts(specification.name)
        for metric, layer, label, log in config["quantities"]:
            table = store.final_metrics(metric, _layer(layer, specification), sweep=specification.name)
            grid = aggregate_grid(table)
            lines = aggregate_lines(table, power=specification.lambda_width_power)
            panels.append({"metric": metric, "layer": table.layer, "label": label, "log": log,
                           "grid": grid.to_dict(), "lines": [line.to_dict() for line in lines]})
            for i, lam in enumerate(grid.weight_decays):
                for j, width in enumerate(grid.widths):
                    if grid.count[i][j]:
                        rows.append({"series": "grid", "metric": metric, "layer": table.layer,
                                     "weight_decay": lam, "width": width, "mean": grid.mean[i][j],
                                     "std": grid.std[i][j], "count": grid.count[i][j]})
            for line in lines:
                for width, lam, mean, std, count in zip(line.widths, line.weight_decays, line.mean,
                                                        line.std, line.count):
                    rows.append({"series": "line", "metric": metric, "layer": table.layer,
                                 "product": line.product, "power": line.power, "weight_decay": lam,
                                 "width": width, "mean": mean, "std": std, "count": count})
    return {"settings": {key: value for key, value in config.items() if key != "quantities"},
            "sweep": {"name": specification.name, "description": specification.description,
                      "grid": specification.to_dict()["grid"], "store": str(store_path(out_dir)),
                      "counts": counts, "epochs": specification.base.training.epochs,
                      "data": specification.base.data.name,
                      "nonlinear_widths": list(specification.base.model.nonlinear_widths),
                      "linear_depth": specification.base.model.linear_depth},
            "report": report, "panels": panels, "rows": rows}


def _layer(layer: int, specification) -> int:
    if layer != LAST_LAYER:
        return layer
    return len(specification.base.model.nonlinear_widths) + specification.base.model.linear_depth


def _heatmap(axis, figure, panel: dict, lines: list[dict]) -> None:
    from matplotlib.colors import LogNorm, Normalize

    grid = panel["grid"]
    lams, widths = grid["weight_decays"], grid["widths"]
    values = np.array([[np.nan if value is None else value for value in row] for row in grid["mean"]],
                      dtype=float)
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    if panel["log"] and positive.size:
        norm = LogNorm(vmin=positive.min(), vmax=positive.max())
        values = np.where(values > 0, values, np.nan)
    else:
        norm = Normalize(vmin=finite.min() if finite.size else 0, vmax=finite.max() if finite.size else 1)
    image = axis.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap="viridis",
                        norm=norm, interpolation="nearest")
    axis.set_facecolor("#eeeeee")
    for i in range(len(lams)):
        for j in range(len(widths)):
            if np.isfinite(values[i, j]):
                shade = norm(values[i, j])
                axis.text(j, i, f"{values[i, j]:.2g}", ha="center", va="center", fontsize=6.5,
                          color="white" if shade < 0.55 else "black")
    for number, line in enumerate(lines):
        style = ("-", "--", ":", "-.")[number % 4]
        for width, lam in zip(line["widths"], line["weight_decays"]):
            i, j = lams.index(lam), widths.index(width)
            axis.add_patch(_rectangle(j, i, style))
    axis.set_xticks(range(len(widths)))
    axis.set_xticklabels([str(width) for width in widths])
    axis.set_yticks(range(len(lams)))
    axis.set_yticklabels([f"{lam:.3g}" for lam in lams])
    axis.set_xlabel(r"first-layer width $p_1$")
    axis.set_ylabel(r"weight decay $\lambda$")
    axis.grid(False)
    axis.set_title(panel["label"] + " (mean over seeds)")
    figure.colorbar(image, ax=axis, shrink=0.85)


def _rectangle(column: int, row: int, style: str):
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.46, row - 0.46), 0.92, 0.92, fill=False, edgecolor="tab:red",
                     linewidth=1.3, linestyle=style)


def _lines(axis, panel: dict) -> None:
    grid = panel["grid"]
    lams = grid["weight_decays"]
    palette = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan")
    colors = [palette[index % len(palette)] for index in range(len(lams))]
    for i, (lam, color) in enumerate(zip(lams, colors)):
        mean = np.array([np.nan if value is None else value for value in grid["mean"][i]], dtype=float)
        keep = np.isfinite(mean)
        if keep.sum() >= 2:
            axis.plot(np.array(grid["widths"])[keep], mean[keep], "--", color=color, linewidth=0.9,
                      alpha=0.8, marker=".", label=f"λ = {lam:.3g} fixed")
    for number, line in enumerate(panel["lines"]):
        mean = np.array([np.nan if value is None else value for value in line["mean"]], dtype=float)
        std = np.array([np.nan if value is None else value for value in line["std"]], dtype=float)
        style = ("-", "--", ":", "-.")[number % 4]
        axis.errorbar(line["widths"], mean, yerr=np.nan_to_num(std), color="tab:red", linestyle=style,
                      marker="o", capsize=3, linewidth=1.8,
                      label=rf"$\lambda p_1$ = {line['product']:.3g} (λ ∝ 1/p₁), ± 1 std")
    axis.set_xscale("log", base=2)
    if panel["log"]:
        axis.set_yscale("log")
    axis.set_xlabel(r"first-layer width $p_1$ (log₂)")
    axis.set_ylabel(panel["metric"] if panel["layer"] == 0 else f"{panel['metric']} (row {panel['layer']})")
    axis.set_title(panel["label"] + r" along $\lambda p_1$ = const")
    axis.legend(fontsize=6.5, loc="best")


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``lambda_width_sweep.png``, ``.csv`` and ``.json`` (and the store ``.sqlite``)."""
    data = compute(out_dir, quick)
    panels, sweep = data["panels"], data["sweep"]
    figure, axes = new_figure(2, len(panels), 5.0 * len(panels), 8.6, squeeze=False)
    for column, panel in enumerate(panels):
        _heatmap(axes[0, column], figure, panel, panel["lines"])
        _lines(axes[1, column], panel)
    grid = sweep["grid"]
    figure.suptitle(figure_title(
        "A", "λ–width exploration (docs/theory.md §6)", "NC metrics and loss over weight decay × width",
        quick,
        f"sweep {sweep['name']}: {sweep['data']} data, MLP {sweep['nonlinear_widths']} (p₁ varied) + "
        f"{sweep['linear_depth']} linear layers, {sweep['epochs']} full-batch GD epochs, seeds "
        f"{grid['seeds']}; {sweep['counts'].get('completed', 0)} runs completed. Red outlines: cells on "
        "λ·p₁ = c\nfullnet.sweeps.run_sweep → SweepStore.final_metrics → aggregate_grid / aggregate_lines",
    ))
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, data["rows"])]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "λ–width", "quick": quick, **data}))
    return paths
