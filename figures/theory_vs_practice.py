"""Theory against practice: a trained network's gaps to the ``ufm`` optimum, followed to convergence.

A ReLU MLP with a linear head is trained on mnist-5k digits with full-batch gradient descent and
weight decay (:func:`fullnet.training.train`), with a feature penalty λ_H on the output Z_f of its
last non-linear layer. At every snapshot a :class:`fullnet.convergence.GapTracker` measures the
quantities that theory says vanish at the optimum, as relative gaps (docs/theory.md §2(d), §4.2,
J9, J12, F2, J5, §3): the head's suboptimality on the then-current fixed features, the network's
gap to its UFM bound L_DNC and the part of it the features cause, the balancedness of the linear
head against the J12 envelope, the head's singular values against the balanced optimum, and NC1–NC3
of the last layers. The same training at a few backbone widths gives the final gaps against width.

Panels: the gaps against epochs (log–log; the J12 envelope dashed, the 1% target dotted), the
final gaps against the backbone width, and a verdict table: each gap's first and last value, its
fall, whether it closed (fell ≥ 10× and ended below its target) and, if not, the measured reason
(its fall over the last 1/(ηλ) epochs, its change with width, and the pull of the backbone's
weight decay on the features). The end state is also compared row by row
(:func:`fullnet.compare.compare_run`) and written to the data files.

Settings (physics, not luck): the slowest mode of the head is the weight-decay dynamics of rate
ηλ (J8: ‖D_l‖ ∝ e^{−2ηλt}); the quick run trains 4/(ηλ) epochs with no learning-rate drop, so
balancing shrinks the head's gaps by ≈ e^{−8}, far more than the 10× asked.
"""

from __future__ import annotations

import math
import shutil
import textwrap
from pathlib import Path

from fullnet.compare import compare_run
from fullnet.config import RunConfig
from fullnet.convergence import GAP_NAMES, GapTracker, gap_summary
from fullnet.training import train

from .common import apply_style, figure_title, plt, save_figure, write_csv, write_json

NAME = "theory_vs_practice"

#: Label and colour of each gap in the panels.
GAP_STYLE = {
    "head_suboptimality": ("head suboptimality (Φ_head − min)/min", "tab:blue"),
    "singular_values": ("head singular values vs balanced optimum", "tab:cyan"),
    "head_balancedness": ("head balancedness ‖D‖/‖WWᵀ‖ (J9)", "tab:green"),
    "network_ufm_gap": ("network vs UFM bound (Φ_view − L_DNC)/L_DNC", "tab:purple"),
    "feature_gap": ("feature part of it (min_head Φ_view − L_DNC)/L_DNC", "tab:pink"),
    "nc1_features": ("NC1.tr_unc of Z_f", "tab:olive"),
    "nc1_last": ("NC1.tr_unc of Z_{L−1}", "tab:orange"),
    "nc2_last": ("NC2.orth of Z_{L−1}", "tab:red"),
    "nc3_last": ("NC3.dual of (W_L, Z_{L−1})", "tab:brown"),
}

#: Short names of the gaps in the verdict table.
SHORT_NAMES = {
    "head_suboptimality": "head suboptimality", "singular_values": "head singular values",
    "head_balancedness": "head balancedness (J9)", "network_ufm_gap": "network vs UFM bound",
    "feature_gap": "features vs UFM optimum", "nc1_features": "NC1.tr_unc of Z_f",
    "nc1_last": "NC1.tr_unc of Z_{L−1}", "nc2_last": "NC2.orth of Z_{L−1}",
    "nc3_last": "NC3.dual of (W_L, Z_{L−1})",
}

#: Gaps that the backbone's features decide (their reason names the pull of its weight decay).
FEATURE_GAPS = ("network_ufm_gap", "feature_gap", "nc1_features", "nc1_last", "nc2_last", "nc3_last")


def settings(quick: bool) -> dict:
    """The run configuration (a plain dict of :class:`fullnet.config.RunConfig`) and options.

    ``epochs`` = 4/(ηλ) (J8: the head balances as e^{−2ηλt}); one thread (N = 200 samples: the
    matrices are too small for a second thread to pay); ``target`` is the relative gap below
    which a gap counts as closed (the head suboptimality asked to end below 1%), ``min_fall`` the
    fall first/last record it must show; ``width_family`` the backbones of the width panel.
    """
    if quick:
        return {
            "per_class": 20, "nonlinear_widths": [128, 64], "linear_depth": 2, "linear_width": 32,
            "epochs": 8000, "learning_rate": 0.05, "weight_decay": 1e-2, "feature_penalty": 5e-5,
            "lr_drop_fraction": 1.0, "log_points": 20, "threads": 1, "seed": 0,
            "rank_tolerance": 1e-3, "target": 0.01, "min_fall": 10.0,
            "width_family": [[64, 32], [128, 64], [256, 128]],
        }
    return {
        "per_class": 50, "nonlinear_widths": [512, 256, 128], "linear_depth": 2, "linear_width": 64,
        "epochs": 16000, "learning_rate": 0.05, "weight_decay": 1e-2, "feature_penalty": 5e-5,
        "lr_drop_fraction": 1.0, "log_points": 30, "threads": None, "seed": 0,
        "rank_tolerance": 1e-3, "target": 0.01, "min_fall": 10.0,
        "width_family": [[256, 128, 64], [512, 256, 128], [1024, 512, 256]],
    }


def run_config(config: dict, directory: str | Path, nonlinear_widths: list[int] | None = None) -> RunConfig:
    """The :class:`RunConfig` of the network (features penalized at the last non-linear layer)."""
    widths = list(config["nonlinear_widths"] if nonlinear_widths is None else nonlinear_widths)
    return RunConfig.from_dict({
        "name": NAME,
        "data": {"name": "mnist-5k", "per_class": config["per_class"], "standardization": "global"},
        "model": {"architecture": "mlp", "nonlinear_widths": widths,
                  "linear_depth": config["linear_depth"], "linear_width": config["linear_width"],
                  "activation": "relu", "init": "lecun", "seed": config["seed"]},
        "training": {"optimizer": "gd", "epochs": config["epochs"], "learning_rate": config["learning_rate"],
                     "weight_decay": config["weight_decay"], "feature_penalty": config["feature_penalty"],
                     "feature_penalty_layer": len(widths), "device": "cpu",
                     "lr_drop_fraction": config.get("lr_drop_fraction", 1.0),
                     "threads": config["threads"], "seed": config["seed"]},
        "observe": {"log_points": config["log_points"], "per_layer": False},
        "output": {"directory": str(directory), "progress": False},
    })


def _train(config: dict, directory: Path, tracker: GapTracker, widths: list[int] | None = None):
    import torch

    # The run directory is this figure's own output: a rerun trains afresh into it.
    shutil.rmtree(directory, ignore_errors=True)
    threads = torch.get_num_threads()
    try:
        return train(run_config(config, directory.parent, widths), output_dir=directory, progress=False,
                     on_step=tracker.on_step, on_snapshot=tracker.on_snapshot)
    finally:
        torch.set_num_threads(threads)


def _threshold(name: str, target: float) -> float:
    """Target of a gap: ``target`` for all but the singular values, whose error near a
    non-degenerate minimum grows like the square root of the suboptimality (Φ − Φ* ≈ ½δᵀHδ):
    √target for them."""
    return math.sqrt(target) if name == "singular_values" else target


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.2g}"


def verdict(gaps: dict, records: list[dict], family: dict, config: dict) -> dict:
    """Per gap: its summary (:func:`fullnet.convergence.gap_summary`) and, for a gap that does not
    close, the measured reason with the numbers behind it (``evidence``).

    The reason combines (i) the fall over the last 1/(ηλ) epochs (still falling, or stalled) and
    the epochs it would need at that rate, (ii) the final gap against backbone width (the
    narrowest and widest of ``family``) and (iii) for the gaps that the features decide, the pull
    of the backbone's weight decay: r = −⟨∇_{Z_f}Φ_view, Z_f⟩/(λ_f‖W_f‖²), 1 at a critical point of
    Φ_net (J10 rescaling) and then Z_f cannot be a critical point of the view, whose UFM optimum
    needs ⟨∇Φ_view, Z_f⟩ = 0.
    """
    window = max(1, int(round(1.0 / (config["learning_rate"] * config["weight_decay"]))))
    last = records[-1] if records else {}
    pull, decay = last.get("feature_pull"), last.get("backbone_decay")
    pull_ratio = -pull / decay if pull is not None and decay else None
    widths = [int(entry[0]) for entry in family.get("widths", [])]
    result = {}
    for name, series in gaps.items():
        threshold = _threshold(name, config["target"])
        entry = {"description": GAP_NAMES[name], **series, "threshold": threshold}
        if len(series["values"]) < 2:
            entry.update(closed=False, reason="fewer than two records: nothing to follow",
                         evidence={"records": float(len(series["values"]))})
            result[name] = entry
            continue
        summary = gap_summary(name, series["epochs"], series["values"], threshold=threshold,
                              min_fall=config["min_fall"], window=window)
        entry.update(summary.to_dict())
        entry.pop("name", None)
        if summary.closed:
            entry.update(reason=None, evidence={})
            result[name] = entry
            continue
        evidence = {"last": summary.last, "threshold": threshold, "fall": summary.fall,
                    "late_fall": summary.late_fall, "window_epochs": float(window)}
        parts = []
        if summary.last <= threshold:
            parts.append(f"ends below its target {_fmt(threshold)} but fell only ×{_fmt(summary.fall)} "
                         f"(< {_fmt(config['min_fall'])}): it started close")
        finals = [value for value in family.get("gaps", {}).get(name, [])]
        if len(finals) >= 2 and all(value is not None for value in finals) and finals[-1] > 0:
            ratio = finals[0] / finals[-1]
            evidence.update(width_narrow=float(widths[0]), width_wide=float(widths[-1]),
                            width_ratio=ratio, widest_value=finals[-1])
            if finals[-1] <= threshold:
                parts.append(f"closes at backbone width {widths[-1]} ({_fmt(finals[-1])}): the backbone "
                             f"of this run is not wide enough")
            elif ratio >= 2.0:
                parts.append(f"×{_fmt(ratio)} smaller at width {widths[-1]} than at {widths[0]}, still "
                             f"{_fmt(finals[-1])}: width helps but does not close it")
            else:
                parts.append(f"width barely changes it (×{_fmt(ratio)} from width {widths[0]} to "
                             f"{widths[-1]}): not a width effect")
        if name in FEATURE_GAPS and pull_ratio is not None:
            evidence["pull_ratio"] = pull_ratio
            evidence["pull_over_bound"] = (
                -pull / last["ufm_bound"] if last.get("ufm_bound") else None)
            parts.append(f"the backbone's weight decay holds Z_f off the UFM optimum: growing Z_f "
                         f"would lower Φ_view at rate −⟨∇Φ_view, Z_f⟩ = "
                         f"{_fmt(evidence['pull_over_bound'])}·L_DNC but costs λ‖W_f‖² in the "
                         f"backbone (ratio {_fmt(pull_ratio)}; it is 1 at a critical point of Φ_net, "
                         f"where Z_f then cannot be a critical point of the view: the UFM bound "
                         f"ignores the backbone's cost)")
        late = summary.late_fall
        if math.isfinite(late) and summary.late_epochs > 0 and late > 0:
            # the fall per 1/(ηλ) epochs, measured over the last late_epochs ≥ 1/(ηλ) epochs
            rate = late ** (window / summary.late_epochs)
            evidence.update(fall_per_window=rate, late_epochs=float(summary.late_epochs))
            if rate >= 1.2 and summary.last > threshold:
                more = window * math.log(summary.last / threshold) / math.log(rate)
                evidence["epochs_needed"] = more
                parts.append(f"still falling ×{_fmt(rate)} per 1/(ηλ) = {window} epochs (over the last "
                             f"{summary.late_epochs}): ≈ {more:.2g} more epochs to the target at that rate, "
                             f"unless it levels off first")
            else:
                parts.append(f"stalled: ×{_fmt(rate)} per 1/(ηλ) = {window} epochs (over the last "
                             f"{summary.late_epochs})")
        entry.update(reason="; ".join(parts), reason_parts=parts, evidence=evidence)
        result[name] = entry
    return result


def compute(out_dir: str | Path, quick: bool) -> dict:
    """Train with a gap tracker, train the width family, compare the end state, list the rows."""
    config = settings(quick)
    out_dir = Path(out_dir)
    directory = out_dir / f"{NAME}_run"
    tracker = GapTracker()
    result = _train(config, directory, tracker)
    records = [record.to_dict() for record in tracker.records]
    series = tracker.series()
    comparison = compare_run(directory, seed=config["seed"], rank_tolerance=config["rank_tolerance"])

    family = {"widths": [], "gaps": {name: [] for name in GAP_NAMES}, "wall_seconds": []}
    for index, widths in enumerate(config["width_family"]):
        if list(widths) == list(config["nonlinear_widths"]):
            final, seconds = tracker.records[-1] if tracker.records else None, result.wall_seconds
        else:
            other = GapTracker(envelope=False, final_only=True)
            run = _train(config, out_dir / f"{NAME}_width_{index}", other, list(widths))
            final, seconds = (other.records[-1] if other.records else None), run.wall_seconds
        family["widths"].append(list(widths))
        family["wall_seconds"].append(seconds)
        for name in GAP_NAMES:
            family["gaps"][name].append(None if final is None else final.gaps.get(name))

    envelope = tracker.envelope_series()
    gaps = verdict(series, records, family, config)
    if envelope is not None and "head_balancedness" in gaps:
        measured = gaps["head_balancedness"]["values"]
        gaps["head_balancedness"]["envelope_holds"] = all(
            value <= bound * (1 + 1e-6) for value, bound in zip(measured, envelope["values"]))

    rows = [{"series": "gap", "gap": name, "epoch": epoch, "value": value}
            for name, entry in gaps.items() for epoch, value in zip(entry["epochs"], entry["values"])]
    if envelope is not None:
        rows += [{"series": "envelope_J12", "gap": "head_balancedness", "epoch": epoch, "value": value}
                 for epoch, value in zip(envelope["epochs"], envelope["values"])]
    rows += [{"series": "width", "gap": name, "width": widths[0], "value": value}
             for name in GAP_NAMES for widths, value in zip(family["widths"], family["gaps"][name])
             if value is not None]
    rows += [{"series": "comparison", **row.to_dict()} for row in comparison.rows]
    rows += [{"series": "layer_metric", **entry} for entry in comparison.layer_rows]
    return {"settings": config, "run_directory": str(directory),
            "training": {"status": result.status, "epochs": result.epochs_completed,
                         "wall_seconds": result.wall_seconds},
            "gaps": gaps, "envelope": envelope, "width_family": family, "records": records,
            "comparison": comparison.to_dict(), "rows": rows}


def _short_reason(entry: dict) -> str:
    if entry.get("closed"):
        return f"closed: ×{_fmt(entry['fall'])} to {_fmt(entry['last'])} ≤ {_fmt(entry['threshold'])}"
    evidence = entry.get("evidence", {})
    parts = []
    if "fall_per_window" in evidence:
        parts.append(f"×{_fmt(evidence['fall_per_window'])} per 1/(ηλ)")
    if "width_ratio" in evidence:
        parts.append(f"width ×{_fmt(evidence['width_ratio'])}")
    if "pull_ratio" in evidence:
        parts.append(f"pull r = {_fmt(evidence['pull_ratio'])}")
    return "open: " + ", ".join(parts) if parts else "open"


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``theory_vs_practice.png``, ``.csv`` and ``.json`` into ``out_dir``."""
    return plot(compute(out_dir, quick), out_dir, quick)


def plot(data: dict, out_dir: str | Path, quick: bool) -> list[Path]:
    """Draw the panels of :func:`compute`'s ``data`` and write the three files."""
    config, gaps, family = data["settings"], data["gaps"], data["width_family"]
    rate = config["learning_rate"] * config["weight_decay"]

    apply_style()
    figure = plt.figure(figsize=(15.0, 9.5), layout="constrained")
    left, right = figure.subfigures(1, 2, width_ratios=[1.15, 1.0])
    axis = left.subplots()
    for name, entry in gaps.items():
        label, color = GAP_STYLE[name]
        values = [max(abs(value), 1e-300) for value in entry["values"]]
        axis.loglog(entry["epochs"], values, marker=".", color=color,
                    linestyle="-" if entry.get("closed") else "--",
                    label=f"{label} [{'closed' if entry.get('closed') else 'open'}]")
    envelope = data["envelope"]
    if envelope is not None:
        axis.loglog(envelope["epochs"], envelope["values"], color="tab:green", linestyle=":",
                    linewidth=2.0, label="J12 envelope of the head balancedness")
    axis.axhline(config["target"], color="black", linestyle=":", linewidth=1.0)
    axis.axhline(math.sqrt(config["target"]), color="gray", linestyle=":", linewidth=0.8)
    axis.text(1.0, config["target"], f" target {config['target']:g}", va="bottom", fontsize=7)
    axis.text(1.0, math.sqrt(config["target"]), " √target (singular values)", va="bottom",
              fontsize=7, color="gray")
    axis.axvline(1.0 / rate, color="gray", linewidth=0.8)
    axis.text(1.0 / rate, axis.get_ylim()[0], " 1/(ηλ)", fontsize=7, va="bottom", color="gray")
    axis.set_xlabel("epoch (full-batch GD steps)")
    axis.set_ylabel("relative gap to the theory's optimum (log scale)")
    axis.set_title("gaps over training (solid: closed — fell ≥ "
                   f"{config['min_fall']:g}× and ended below target; dashed: open)", fontsize=9)
    axis.legend(fontsize=6.5, loc="lower left")

    top, bottom = right.subplots(2, 1, height_ratios=[1.0, 1.1])
    widths = [entry[0] for entry in family["widths"]]
    for name in gaps:
        label, color = GAP_STYLE[name]
        points = [(width, value) for width, value in zip(widths, family["gaps"][name]) if value]
        if points:
            top.loglog([w for w, _ in points], [abs(v) for _, v in points], marker="o", color=color,
                       linestyle="-" if gaps[name].get("closed") else "--", label=label)
    top.axhline(config["target"], color="black", linestyle=":", linewidth=1.0)
    top.set_xscale("log", base=2)
    top.set_xticks(widths, [str(entry) for entry in family["widths"]], fontsize=7)
    top.set_xlabel("backbone widths (ReLU layers)")
    top.set_ylabel(f"gap after {config['epochs']} epochs")
    top.set_title("final gaps against backbone width (same training; colours as on the left)",
                  fontsize=9)

    bottom.axis("off")
    cells = [[SHORT_NAMES[name], _fmt(entry.get("first")), _fmt(entry.get("last")),
              _fmt(entry.get("fall")), _short_reason(entry)] for name, entry in gaps.items()]
    table = bottom.table(cellText=cells, colLabels=["gap", "first", "last", "fall ×", "verdict"],
                         loc="upper center", cellLoc="left", colWidths=[0.27, 0.08, 0.08, 0.08, 0.49])
    table.auto_set_font_size(False)
    table.set_fontsize(6.5)
    table.scale(1.0, 1.25)
    lines, shared = [], None
    pull = "the backbone's weight decay"
    for name, entry in gaps.items():
        parts = entry.get("reason_parts") or []
        # the pull of the backbone is the same sentence for every feature gap: written once
        own = [part for part in parts if not part.startswith(pull)]
        shared = shared or next((part for part in parts if part.startswith(pull)), None)
        if own:
            lines.append(textwrap.fill(f"{SHORT_NAMES[name]}: " + "; ".join(own), 125,
                                       subsequent_indent="   "))
    if shared is not None:
        lines.append(textwrap.fill(f"all the feature gaps: {shared}", 125, subsequent_indent="   "))
    bottom.text(0.0, 0.0, "\n".join(lines), fontsize=6.3, va="bottom", transform=bottom.transAxes)
    bottom.set_title("verdict (reasons of the open gaps, measured; all in the data file)", fontsize=9)

    network = data["comparison"]["network"]
    figure.suptitle(figure_title(
        "A", "E-A1 / E-B4 reduced", "gaps of a trained network to the ufm optimum, followed to convergence",
        quick,
        f"mnist-5k, n = {config['per_class']} per class; ReLU MLP {config['nonlinear_widths']} + "
        f"{config['linear_depth']} linear layers (width {config['linear_width']}); full-batch GD, η = "
        f"{config['learning_rate']}, λ = {config['weight_decay']} (ηλ·epochs = "
        f"{rate * data['training']['epochs']:.3g}), λ_H = {config['feature_penalty']} on "
        f"Z_{len(config['nonlinear_widths'])}, {data['training']['epochs']} epochs; Φ_net = "
        f"{network['objective']:.4g}, accuracy {network['accuracy']:.3g}\n"
        "fullnet.training.train + fullnet.convergence.GapTracker (ufm.models.LinearHead, ufm.solvers, "
        "ufm.optima.predict_deep_linear); docs/theory.md §2(d), §4.2, J9, J12",
    ))
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, data["rows"])]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "E-A1/E-B4", "quick": quick,
                                            **data}))
    return paths
