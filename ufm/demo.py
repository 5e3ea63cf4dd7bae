"""The metrics demo: collapse metrics of a deep-neural-collapse point under growing noise.

The point is the DNC optimum of a 3-layer deep ReLU UFM (:func:`ufm.optima.dnc_construct`,
docs/theory.md §4.3), at which every metric of docs/theory.md §3 takes its collapse value. Gaussian noise
of relative size σ is added to the free features and to every weight matrix, the network is run
forward, and the per-layer report (:func:`ufm.reports.model_layer_report`) is taken at every σ.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .models import DeepUFM, Parameters
from .optima import dnc_construct
from .reports import model_layer_report

#: The configuration of the demo: K classes, n per class, L layers of width d, λ on every block.
DEMO_SETTINGS = {"num_classes": 4, "per_class": 20, "num_layers": 3, "width": 8, "lam": 0.004}
PLOTTED_METRICS = ("NC1.tr_unc", "NC2.orth", "NC3", "BAL.diag", "NEG", "NC4.ncc")


@dataclass
class MetricsDemoResult:
    """Paths written by :func:`run_metrics_demo`, the table at σ = ``table_noise`` and the sweep."""

    paths: list[Path]
    table: str
    table_noise: float
    noise_levels: np.ndarray
    rows: list[dict[str, Any]] = field(default_factory=list)


def noisy_parameters(parameters: Parameters, noise: float, rng: np.random.Generator) -> Parameters:
    """Add noise of relative size σ to every block: θ + σ·(‖θ‖_F/√(size))·G, G standard normal.

    The scale ‖θ‖_F/√size is the root-mean-square entry of the block, so σ is a relative size.
    """

    def perturb(block: np.ndarray) -> np.ndarray:
        scale = np.linalg.norm(block) / np.sqrt(block.size)
        return block + noise * scale * rng.standard_normal(block.shape)

    return parameters.map(perturb)


def metric_rows(report, noise: float) -> list[dict[str, Any]]:
    """Long-format rows (noise, layer, kind, metric, value) of a layer report."""
    rows = []
    for row in report.rows:
        for key, value in row.metrics.items():
            if value is None or isinstance(value, (tuple, list)):
                continue
            rows.append({"noise": noise, "layer": row.layer, "kind": row.kind, "metric": key,
                         "value": float(value)})
    return rows


def run_metrics_demo(
    out_dir: str | os.PathLike, *, seed: int = 0, quiet: bool = False, num_levels: int = 17
) -> MetricsDemoResult:
    """Print the per-layer table of a noisy DNC point and plot every metric against noise.

    Writes ``metrics_demo.png`` (metrics against σ, one line per layer) and ``metrics_demo.csv``
    (the numbers behind it) into ``out_dir``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = DEMO_SETTINGS
    k, n, depth, width, lam = (settings[key] for key in
                               ("num_classes", "per_class", "num_layers", "width", "lam"))
    model = DeepUFM(k, n, (width,) * depth, lam, lam)
    optimum = dnc_construct(k, depth, n, lam, lam, widths=(width,) * depth)
    rng = np.random.default_rng(seed)
    noise_levels = np.logspace(-4, 0, num_levels)
    rows: list[dict[str, Any]] = []
    table_noise = 0.05
    table_report = model_layer_report(model, noisy_parameters(optimum, table_noise, rng))
    columns = ["NC1.tr_unc", "NC1.cdnv", "NC2.orth", "NC2.kappa", "NC3.span", "NC3.dual",
               "NC4.ncc", "BAL.diag", "NEG", "RANK"]
    table = table_report.format_table(columns=columns)
    if not quiet:
        print(f"Deep ReLU UFM, K = {k}, n = {n}, L = {depth}, width {width}, λ = {lam}: the DNC "
              f"optimum plus noise of relative size σ = {table_noise}")
        print(table)
    for noise in noise_levels:
        report = model_layer_report(model, noisy_parameters(optimum, float(noise), rng))
        rows.extend(metric_rows(report, float(noise)))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "metrics_demo.csv"
    temporary = csv_path.with_suffix(".csv.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["noise", "layer", "kind", "metric", "value"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, csv_path)

    figure, axes = plt.subplots(2, 3, figsize=(13, 7.5), constrained_layout=True)
    titles = {
        "NC1.tr_unc": "NC1: tr Σ_W / tr Σ_B (uncentred)",
        "NC2.orth": "NC2: distance to an orthogonal frame",
        "NC3": "NC3: span (l < L), self-duality (l = L)",
        "BAL.diag": "balancedness ‖diag D_l‖_∞",
        "NEG": "negativity of pre-activations",
        "NC4.ncc": "NC4: nearest-centre agreement (last layer)",
    }
    for axis, metric in zip(axes.flat, PLOTTED_METRICS):
        for layer in range(1, depth + 1):
            kind = "pre" if metric == "NEG" else "post"
            if metric == "NC3":
                key = "NC3.dual" if layer == depth else "NC3.span"
            else:
                key = metric
            points = [(r["noise"], r["value"]) for r in rows
                      if r["metric"] == key and r["layer"] == layer and r["kind"] == kind]
            if not points:
                continue
            x, y = np.array(points).T
            axis.plot(x, y, marker="o", markersize=3, label=f"layer {layer}")
        axis.set_xscale("log")
        if metric != "NC4.ncc":
            axis.set_yscale("log")
        axis.set_title(titles[metric], fontsize=10)
        axis.set_xlabel("relative noise σ")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(
        f"Collapse metrics (docs/theory.md §3) of the DNC optimum of a {depth}-layer ReLU UFM "
        f"(K = {k}, n = {n}) under noise; collapse values: 0 (NC1–NC3, BAL, NEG), 1 (NC4)",
        fontsize=11,
    )
    png_path = out / "metrics_demo.png"
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
    return MetricsDemoResult(paths=[png_path, csv_path], table=table, table_noise=table_noise,
                             noise_levels=noise_levels, rows=rows)
