"""Training curves of a run directory: ``python -m fullnet plot RUN_DIR``.

The history is read from ``history.jsonl`` — appended snapshot by snapshot while the run goes on,
so a run that is still training, or was killed, can be plotted at any time
(:func:`fullnet.training.read_history_journal` ignores a last line torn by a kill) — and, for a
run written before the journal existed, from ``history.json``. One figure holds

- the parts of Φ (docs/theory.md §1.2) against the epoch: Φ, the data term, the weight penalty
  Σ_l (λ_l/2)‖W_l‖², and the feature, backbone and one-dimensional penalties where the run has
  them, on a log scale (as every panel whose values are positive and span a decade); the epoch axis is logarithmic beyond 1 (the snapshots are log-spaced)
  and a dotted line marks the learning-rate drop;
- the training (and test) accuracy;
- one panel per collapse metric (docs/theory.md §3; by default NC1.tr_unc, NC2.etf, NC3.dual,
  BAL.rel_fro, NEG and RANK where the snapshots hold them, ``--metrics all`` for every one), a
  line per layer l: the features Z_{l−1} entering W_l, and for NEG the pre-activation H_{l−1}.

The figure is written atomically (temporary file, fsync, rename) to ``RUN_DIR/training_curves.png``
or ``--out FILE``, as PNG, PDF or SVG (``--format``, else the suffix of ``--out``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

PLOT_FORMATS = ("png", "pdf", "svg")
DEFAULT_PLOT_NAME = "training_curves"
#: Metric panels drawn by default, those the history holds (``--metrics all``: every metric).
DEFAULT_METRICS = ("NC1.tr_unc", "NC2.etf", "NC3.dual", "BAL.rel_fro", "NEG", "RANK")
#: Metrics kept on a linear scale (counts).
LINEAR_METRICS = ("RANK",)

_LOSS_PARTS = (
    ("objective", "Φ"),
    ("data_term", "data term"),
    ("weight_penalty", "Σ_l (λ_l/2)‖W_l‖²"),
    ("feature_penalty", "feature penalty"),
    ("backbone_penalty", "backbone penalty"),
    ("one_dimensional_penalty", "bias/BN penalty"),
)


class RunHistoryError(ValueError):
    """A run directory without a history to plot (not a run, not started, no snapshot yet)."""


@dataclass
class RunHistory:
    """The snapshots of a run directory and what is known about the run.

    Attributes
    ----------
    directory, source : Path
        The run folder and the file the rows come from.
    rows : list of dict
        :meth:`fullnet.observe.Snapshot.to_dict` of each snapshot, in epoch order.
    config : dict
        ``config.json`` (empty if missing or unreadable).
    status : str
        ``result.json``'s status when it describes the last snapshot, else ``"running or killed"``.
    """

    directory: Path
    source: Path
    rows: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "running or killed"

    @property
    def epochs(self) -> list[int]:
        return [int(row["epoch"]) for row in self.rows]

    @property
    def target_epochs(self) -> int | None:
        value = self.config.get("training", {}).get("epochs")
        return int(value) if isinstance(value, int) else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_run_history(run_dir: str | os.PathLike) -> RunHistory:
    """The history of ``run_dir``: ``history.jsonl`` if present (a running, killed or finished
    run), else ``history.json``.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        The folder does not exist or is a file.
    RunHistoryError
        No history file, or no snapshot in it yet.
    ValueError
        A damaged history file (the message names it).
    """
    from .training import HISTORY_JOURNAL_NAME, read_history_journal

    directory = Path(run_dir)
    if not directory.exists():
        raise FileNotFoundError(f"run directory {directory} does not exist")
    if not directory.is_dir():
        raise NotADirectoryError(f"run directory {directory} is a file, expected a folder written by train")
    journal, final = directory / HISTORY_JOURNAL_NAME, directory / "history.json"
    if journal.is_file():
        source = journal
        rows = read_history_journal(journal)
    elif final.is_file():
        source = final
        rows = _read_json(final)
        if not isinstance(rows, list) or not all(isinstance(row, dict) and "epoch" in row for row in rows):
            raise ValueError(f"{final} is not a list of snapshots; the file is damaged")
    elif (directory / "config.json").is_file():
        raise RunHistoryError(
            f"run directory {directory} has no {HISTORY_JOURNAL_NAME} or history.json yet: "
            "the run has not begun training"
        )
    else:
        raise RunHistoryError(
            f"run directory {directory} holds no history ({HISTORY_JOURNAL_NAME} or history.json): "
            "it is not a fullnet run (python -m fullnet train --config FILE writes one)"
        )
    if not rows:
        raise RunHistoryError(
            f"the history of {directory} is empty ({source.name} has no snapshot yet; the run "
            "records its first at epoch 0)"
        )
    rows = sorted(rows, key=lambda row: int(row["epoch"]))
    config = _read_json(directory / "config.json")
    history = RunHistory(directory, source, rows, config if isinstance(config, dict) else {})
    result = _read_json(directory / "result.json")
    if isinstance(result, dict) and result.get("epochs_completed") == history.epochs[-1]:
        fresh = source != journal or (directory / "result.json").stat().st_mtime >= journal.stat().st_mtime
        if fresh and isinstance(result.get("status"), str):
            history.status = result["status"]
    return history


# --------------------------------------------------------------------------------------------
# Series
# --------------------------------------------------------------------------------------------


def _number(value: Any) -> float:
    """A finite float, or NaN (a gap) for None, booleans, text and non-finite values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def loss_series(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The parts of Φ per snapshot (the penalties only where some value is non-zero)."""
    series: dict[str, list[float]] = {}
    for key, _ in _LOSS_PARTS:
        values = []
        for row in rows:
            terms = row.get("terms", {})
            if key == "weight_penalty":
                penalties = terms.get("layer_penalties") or []
                values.append(_number(sum(penalties)) if penalties else math.nan)
            else:
                values.append(_number(terms.get(key)))
        if key in ("objective", "data_term") or any(value > 0 for value in values):
            series[key] = values
    return series


def metric_ids(rows: list[dict[str, Any]]) -> list[str]:
    """Every metric ID with a number in some layer of some snapshot (post- or pre-activation),
    sorted."""
    found = set()
    for row in rows:
        for layer in row.get("layers", []):
            for metrics in (layer.get("metrics") or {}, layer.get("pre_metrics") or {}):
                found.update(key for key, value in metrics.items() if not math.isnan(_number(value)))
    return sorted(found)


def metric_series(rows: list[dict[str, Any]], metric: str) -> dict[str, list[float]]:
    """One series per layer: ``"l=3"`` (the features Z_{l−1} entering W_l) from the post-activation
    metrics, or, for a metric only measured there (NEG), ``"l=2 pre"`` (H_{l−1})."""
    layers = sorted({int(layer["layer"]) for row in rows for layer in row.get("layers", [])})
    post = any(metric in (layer.get("metrics") or {}) for row in rows for layer in row.get("layers", []))
    kind, suffix = ("metrics", "") if post else ("pre_metrics", " pre")
    series: dict[str, list[float]] = {}
    for index in layers:
        values = []
        for row in rows:
            entry = next((layer for layer in row.get("layers", []) if int(layer["layer"]) == index), None)
            values.append(_number(((entry or {}).get(kind) or {}).get(metric)))
        if any(not math.isnan(value) for value in values):
            series[f"l={index}{suffix}"] = values
    return series


def choose_metrics(rows: list[dict[str, Any]], metrics: Sequence[str] | str | None = None) -> list[str]:
    """The metric panels: ``None`` → :data:`DEFAULT_METRICS` the history holds; ``"all"`` → every
    one; else the given IDs, each of which must be in the history (ValueError naming those
    available)."""
    available = metric_ids(rows)
    if metrics is None:
        return [metric for metric in DEFAULT_METRICS if metric in available]
    if isinstance(metrics, str):
        if metrics.strip() == "all":
            return available
        metrics = [item.strip() for item in metrics.split(",") if item.strip()]
    missing = [metric for metric in metrics if metric not in available]
    if missing:
        raise ValueError(
            f"metric(s) {', '.join(missing)} not in this run's history; available: "
            f"{', '.join(available) or 'none (the run measures loss and accuracy only)'}"
        )
    return list(dict.fromkeys(metrics))


# --------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------


def _log_scale(series: list[list[float]]) -> bool:
    """A log axis for positive values spanning at least a decade."""
    finite = [value for values in series for value in values if not math.isnan(value)]
    return bool(finite) and min(finite) > 0 and max(finite) >= 10 * min(finite)


def _epoch_axis(axes: Any, epochs: list[int]) -> None:
    last = max(epochs)
    if last > 1:
        axes.set_xscale("symlog", linthresh=1.0, linscale=0.3)
        axes.set_xlim(0, last * 1.15)
    axes.set_xlabel("epoch")
    axes.grid(True, which="major", alpha=0.3)


def drop_epoch_of(config: dict[str, Any]) -> int | None:
    """The learning-rate drop epoch of a saved configuration (None without a drop)."""
    training = config.get("training", {})
    epochs, fraction = training.get("epochs"), training.get("lr_drop_fraction", 0.8)
    if not isinstance(epochs, int) or not isinstance(fraction, (int, float)) or fraction >= 1.0:
        return None
    return int(math.floor(fraction * epochs + 1e-9))


def figure_of_history(history: RunHistory, metrics: Sequence[str] | str | None = None) -> Any:
    """The training-curve figure (a :class:`matplotlib.figure.Figure`, no pyplot state)."""
    from matplotlib.figure import Figure

    rows, epochs = history.rows, history.epochs
    chosen = choose_metrics(rows, metrics)
    panels = 2 + len(chosen)
    columns = min(3, panels)
    lines = math.ceil(panels / columns)
    figure = Figure(figsize=(4.6 * columns, 3.4 * lines), layout="constrained")
    grid = figure.subplots(lines, columns, squeeze=False)
    axes_list = [axes for row in grid for axes in row]
    for axes in axes_list[panels:]:
        axes.set_visible(False)
    drop = drop_epoch_of(history.config)
    markers = "o" if len(epochs) <= 40 else None

    def mark_drop(axes: Any) -> None:
        if drop is not None and 0 < drop <= max(epochs):
            axes.axvline(drop, color="0.5", linestyle=":", linewidth=1.0)

    loss = axes_list[0]
    labels = dict(_LOSS_PARTS)
    parts = loss_series(rows)
    for key, values in parts.items():
        loss.plot(epochs, values, marker=markers, markersize=3, label=labels[key])
    if _log_scale(list(parts.values())):
        loss.set_yscale("log")
    loss.set_title("objective Φ and its parts")
    mark_drop(loss)
    _epoch_axis(loss, epochs)
    loss.legend(fontsize="small")

    accuracy = axes_list[1]
    accuracy.plot(epochs, [_number(row.get("accuracy")) for row in rows], marker=markers, markersize=3,
                  label="train")
    test = [_number(row.get("test_accuracy")) for row in rows]
    if any(not math.isnan(value) for value in test):
        accuracy.plot(epochs, test, marker=markers, markersize=3, label="test")
    accuracy.set_ylim(-0.02, 1.02)
    accuracy.set_title("accuracy")
    mark_drop(accuracy)
    _epoch_axis(accuracy, epochs)
    accuracy.legend(fontsize="small")

    for axes, metric in zip(axes_list[2:], chosen):
        series = metric_series(rows, metric)
        for label, values in series.items():
            axes.plot(epochs, values, marker=markers, markersize=3, label=label)
        if metric not in LINEAR_METRICS and _log_scale(list(series.values())):
            axes.set_yscale("log")
        axes.set_title(metric + (" (pre-activation)" if any(" pre" in key for key in series) else ""))
        mark_drop(axes)
        _epoch_axis(axes, epochs)
        axes.legend(fontsize="x-small", ncol=2 if len(series) > 4 else 1)

    name = history.config.get("name") or history.directory.name
    target = history.target_epochs
    of = f" of {target}" if target is not None else ""
    figure.suptitle(f"{name}: {len(rows)} snapshots, epoch {epochs[-1]}{of} ({history.status}; "
                    f"from {history.source.name})")
    return figure


def output_path(run_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                fmt: str | None = None) -> tuple[Path, str]:
    """Where the figure goes and in which format: ``RUN_DIR/training_curves.FORMAT`` by default;
    with ``out`` the format is ``fmt`` or else the suffix of ``out``."""
    if fmt is not None and fmt not in PLOT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(PLOT_FORMATS)}, got {fmt!r}")
    if out is None:
        fmt = fmt or "png"
        return Path(run_dir) / f"{DEFAULT_PLOT_NAME}.{fmt}", fmt
    path = Path(out)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, expected a file name for the figure")
    suffix = path.suffix.lower().lstrip(".")
    if fmt is None:
        if suffix not in PLOT_FORMATS:
            raise ValueError(
                f"cannot tell the format of {path} from its suffix: name it .png, .pdf or .svg, or "
                "pass --format"
            )
        fmt = suffix
    elif suffix in PLOT_FORMATS and suffix != fmt:
        raise ValueError(f"format {fmt} does not match the suffix of {path}")
    return path, fmt


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
             fmt: str | None = None, metrics: Sequence[str] | str | None = None) -> Path:
    """Draw the training curves of ``run_dir`` and write them atomically; returns the path.

    See the module docstring for what is drawn; ``out`` and ``fmt`` as in :func:`output_path`,
    ``metrics`` as in :func:`choose_metrics`.
    """
    from .guards import check_output_directory
    from .training import atomic_write_bytes

    path, fmt = output_path(run_dir, out, fmt)
    history = load_run_history(run_dir)
    if path.is_dir():  # the default name, taken by a folder
        raise IsADirectoryError(f"{path} is a folder, expected a file name for the figure")
    check_output_directory(path.parent, "output folder")
    figure = figure_of_history(history, metrics)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=120)
    return atomic_write_bytes(path, buffer.getvalue())


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_plot_command(commands: Any) -> Any:
    """Add ``plot`` to the subcommands of ``python -m fullnet`` (an argparse subparsers object)."""
    parser = commands.add_parser(
        "plot", help="draw the training curves of a run (running, killed or finished)",
        description="Loss parts and per-layer collapse metrics against the epoch, from the run's "
                    "history.jsonl (written as the run goes) or history.json.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by train")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help=f"figure file (default RUN_DIR/{DEFAULT_PLOT_NAME}.FORMAT)")
    parser.add_argument("--format", default=None, choices=PLOT_FORMATS,
                        help="png, pdf or svg (default: the suffix of --out, else png)")
    parser.add_argument("--metrics", default=None, metavar="ID[,ID...]|all",
                        help=f"metric panels (default those of {', '.join(DEFAULT_METRICS)} the run has)")
    parser.set_defaults(handler=_plot)
    return parser


def _plot(arguments: argparse.Namespace) -> int:
    from .guards import CommandError, argument_errors, describe_error

    with argument_errors("--out"):
        output_path(arguments.run_dir, arguments.out, arguments.format)
    with argument_errors("RUN_DIR"):
        history = load_run_history(arguments.run_dir)
    with argument_errors("--metrics"):
        choose_metrics(history.rows, arguments.metrics)
    try:
        path = plot_run(arguments.run_dir, arguments.out, fmt=arguments.format, metrics=arguments.metrics)
    except (OSError, ValueError) as error:
        raise CommandError("--out" if arguments.out is not None else "RUN_DIR",
                           f"cannot write the figure: {describe_error(error)}") from None
    print(f"written: {path} ({len(history.rows)} snapshots, epoch {history.epochs[-1]}, {history.status})")
    return 0


__all__ = [
    "DEFAULT_METRICS",
    "PLOT_FORMATS",
    "RunHistory",
    "RunHistoryError",
    "add_plot_command",
    "choose_metrics",
    "figure_of_history",
    "load_run_history",
    "loss_series",
    "metric_ids",
    "metric_series",
    "output_path",
    "plot_run",
]
