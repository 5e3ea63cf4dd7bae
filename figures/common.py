"""Shared presentation helpers of the figures: style, titles, files, seed bands.

Nothing here computes science: these functions arrange, aggregate across seeds for display
(mean and standard deviation), draw and write what library functions computed.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

__all__ = [
    "PAPERS",
    "apply_style",
    "figure_title",
    "new_figure",
    "save_figure",
    "write_csv",
    "write_json",
    "to_jsonable",
    "mean_and_std",
    "plot_band",
    "layer_colors",
]

#: Short citations used in titles (docs/theory.md, "Papers").
PAPERS: dict[str, str] = {
    "A": "Jacot, Súkeník, Wang & Mondelli 2025 (A)",
    "B": "Súkeník, Mondelli & Lampert 2023 (B)",
    "C": "Súkeník, Lampert & Mondelli 2024 (C)",
}

_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.5,
    "legend.framealpha": 0.85,
    "figure.titlesize": 10.5,
}


def apply_style() -> None:
    """Set the common matplotlib style (Agg backend, font sizes, light grid)."""
    plt.rcParams.update(_STYLE)


def figure_title(paper: str, experiment: str, text: str, quick: bool, note: str = "") -> str:
    """Figure title naming the paper and the docs/theory.md §6 experiment ID.

    Parameters
    ----------
    paper : {"A", "B", "C"}
        Key of :data:`PAPERS`.
    experiment : str
        E.g. ``"E-C4"`` (or ``"E-C4, Fig. 3 left"``).
    text : str
        What the figure shows.
    quick : bool
        Appends "[quick]" for the CI version.
    note : str
        A second line (settings, method).
    """
    first = f"{PAPERS[paper]} — {experiment}: {text}" + ("  [quick]" if quick else "")
    return first if not note else f"{first}\n{note}"


def new_figure(rows: int, columns: int, width: float, height: float, **kwargs: Any):
    """A styled figure with a grid of axes (constrained layout)."""
    apply_style()
    return plt.subplots(rows, columns, figsize=(width, height), layout="constrained", **kwargs)


def save_figure(figure, out_dir: str | Path, name: str) -> Path:
    """Write ``NAME.png`` into ``out_dir`` and close the figure."""
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def to_jsonable(value: Any) -> Any:
    """Numpy arrays and scalars to lists and Python numbers; non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(out_dir: str | Path, name: str, data: Mapping[str, Any]) -> Path:
    """Write ``NAME.json`` (indented; non-finite numbers as null)."""
    path = Path(out_dir) / f"{name}.json"
    path.write_text(json.dumps(to_jsonable(data), indent=1) + "\n", encoding="utf-8")
    return path


def write_csv(out_dir: str | Path, name: str, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``NAME.csv``: one row per mapping, columns in order of first appearance.

    Floats are written with ``repr`` (round-trip exact), missing values as empty fields.
    """
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    path = Path(out_dir) / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _csv_field(value) for key, value in row.items()})
    return path


def _csv_field(value: Any) -> Any:
    value = to_jsonable(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def mean_and_std(values: Iterable[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation across seeds (axis 0), ignoring NaN entries."""
    array = np.asarray(list(values), dtype=np.float64)
    array = np.where(np.isfinite(array), array, np.nan)
    count = np.sum(np.isfinite(array), axis=0)
    mean = np.where(count > 0, np.nansum(array, axis=0) / np.maximum(count, 1), np.nan)
    squares = np.nansum((array - mean) ** 2, axis=0)
    std = np.where(count > 0, np.sqrt(squares / np.maximum(count, 1)), np.nan)
    return mean, std


def plot_band(axis, x: Sequence[float], values: Sequence[Sequence[float]], *, color, label: str,
              linestyle: str = "-", log: bool = False, alpha: float = 0.2) -> None:
    """Mean over seeds with a ±1 standard-deviation band.

    With ``log=True`` the band is drawn between mean ± std clipped to positive values, for
    log-scaled axes.
    """
    mean, std = mean_and_std(values)
    lower, upper = mean - std, mean + std
    if log:
        floor = np.nanmin(mean[mean > 0]) * 1e-3 if np.any(mean > 0) else 1e-300
        lower = np.maximum(lower, floor)
    axis.plot(x, mean, color=color, linestyle=linestyle, label=label)
    if len(values) > 1:
        axis.fill_between(x, lower, upper, color=color, alpha=alpha, linewidth=0)


def plot_seed_fraction(axis, widths: Sequence[int], summary: Sequence[Mapping[str, Any]],
                       count_key: str, label: str) -> None:
    """Fraction of seeds per width with its ± binomial standard-error band, each point annotated
    with ``entry[count_key]/entry["runs"]``, on a log₂ width axis (ticks at the widths).

    ``summary`` holds one entry per width with ``fraction``, ``standard_error``, ``runs`` and
    ``count_key``.
    """
    x = np.array(widths, dtype=float)
    fraction = np.array([entry["fraction"] for entry in summary])
    error = np.array([entry["standard_error"] for entry in summary])
    axis.fill_between(x, np.clip(fraction - error, 0, 1), np.clip(fraction + error, 0, 1),
                      color="tab:blue", alpha=0.2, linewidth=0, label="± binomial standard error")
    axis.plot(x, fraction, "o-", color="tab:blue", label=label)
    for width, entry in zip(x, summary):
        axis.annotate(f"{entry[count_key]}/{entry['runs']}", (width, entry["fraction"]),
                      textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
    axis.set_xscale("log", base=2)
    axis.set_xticks(x, [str(width) for width in widths])
    axis.minorticks_off()


def scatter_runs_by_outcome(axis, rows: Sequence[Mapping[str, Any]], seeds: Sequence[int],
                            offsets: Sequence[float], flag: str, value, labels: tuple[str, str]) -> None:
    """One point per run at (width, ``value(row)``), the seeds spread sideways by 2^offset; green
    circles for runs with ``row[flag]`` true, red crosses for the others (``labels`` in that
    order). Rows whose ``value`` is None are left out."""
    for marker, color, label, wanted in (("o", "tab:green", labels[0], True),
                                         ("x", "tab:red", labels[1], False)):
        points = [(row["width"] * 2.0 ** offsets[seeds.index(row["seed"])], value(row))
                  for row in rows if row[flag] == wanted]
        points = [point for point in points if point[1] is not None]
        if points:
            px, py = zip(*points)
            axis.plot(px, py, marker, color=color, linestyle="none", markersize=4.5, label=label)


def layer_colors(count: int):
    """``count`` distinct colours ordered along a perceptual colormap (layers 1..count)."""
    cmap = plt.get_cmap("viridis")
    if count == 1:
        return [cmap(0.2)]
    return [cmap(0.05 + 0.8 * index / (count - 1)) for index in range(count)]
