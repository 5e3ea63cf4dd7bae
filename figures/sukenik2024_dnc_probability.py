"""E-C6 (Súkeník, Lampert & Mondelli 2024, Fig. 3 right): probability of reaching DNC against width.

The 4-DUFM with n = 1 and λ = 0.004 on every block, solved by plain gradient descent (lr 0.5,
:func:`ufm.solvers.solve`, E-B1 initialization) from several seeds at each width (the same width
d_1 = … = d_4). A run reaches DNC when :func:`ufm.reports.is_deep_neural_collapse` (IS_DNC of
docs/theory.md §3) holds at its end point: every M_l, l ≥ 2, has rank K (relative tolerance
``RANK_RTOL``), NC2.orth ≤ ``ORTH_TOLERANCE``, and ``|Φ/L_DNC − 1|`` ≤ ``LOSS_TOLERANCE``. Panels:

- the fraction of seeds with IS_DNC against width, with its binomial standard error
  √(p(1 − p)/m) over m seeds;
- the final Φ/L_DNC − 1 (:func:`ufm.optima.predict_dufm`) of every run on a symlog axis, marked by
  its verdict: negative at the low-rank end points, far above 0 where a run stalls.

Expectation (docs/theory.md §6, E-C6): wider ⇒ DNC more often. The full figure uses K = 10; the quick
one K = 4, for which the narrow widths already end at low-rank points (docs/theory.md §4.6).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ufm.models import DeepUFM
from ufm.optima import predict_dufm
from ufm.reports import is_deep_neural_collapse
from ufm.solvers import solve

from .common import (
    figure_title,
    new_figure,
    plot_seed_fraction,
    save_figure,
    scatter_runs_by_outcome,
    write_csv,
    write_json,
)

NAME = "sukenik2024_dnc_probability"
RANK_RTOL = 1e-2  # relative tolerance of RANK (docs/theory.md §3: plots use 1e-3 to 1e-2)
ORTH_TOLERANCE = 0.2  # largest NC2.orth of M_l accepted as DNC (low-rank end points: ≥ 0.45)
LOSS_TOLERANCE = 5e-3  # largest |Φ/L_DNC − 1| accepted (low-rank end points: ≤ 1 − 0.012)


def settings(quick: bool) -> dict:
    """Model, widths, seeds, solver settings and the IS_DNC tolerances."""
    common = {"num_layers": 4, "per_class": 1, "lam": 0.004, "lr": 0.5, "method": "gd",
              "tolerance": 1e-10, "rank_rtol": RANK_RTOL, "orth_tolerance": ORTH_TOLERANCE,
              "loss_tolerance": LOSS_TOLERANCE}
    if quick:
        return {**common, "num_classes": 4, "widths": [5, 6, 8, 12, 16, 32], "seeds": list(range(6)),
                "steps": 15_000}
    return {**common, "num_classes": 10, "widths": [10, 15, 20, 30, 40, 60, 80, 120],
            "seeds": list(range(10)), "steps": 50_000}


def binomial_band(successes: int, trials: int) -> tuple[float, float]:
    """Fraction p = successes/trials and its binomial standard error √(p(1 − p)/trials)."""
    if trials <= 0:
        raise ValueError(f"trials must be ≥ 1, got {trials}")
    fraction = successes / trials
    return fraction, float(np.sqrt(fraction * (1.0 - fraction) / trials))


def compute(quick: bool) -> dict:
    """One solve per (width, seed) and its IS_DNC verdict; the fraction per width."""
    config = settings(quick)
    k, depth, n, lam = config["num_classes"], config["num_layers"], config["per_class"], config["lam"]
    reference = predict_dufm(k, depth, n, lam, lam).optimal_loss
    rows: list[dict] = []
    summary: list[dict] = []
    for width in config["widths"]:
        model = DeepUFM(num_classes=k, per_class=n, widths=(width,) * depth, lam_h=lam, lam_w=lam)
        count = 0
        for seed in config["seeds"]:
            solution = solve(model, config["method"], seed=seed, lr=config["lr"],
                             tolerance=config["tolerance"], max_iterations=config["steps"],
                             history_points=0, predicted=None, progress=False)
            verdict = is_deep_neural_collapse(model, solution.parameters, rank_rtol=config["rank_rtol"],
                                              orth_tolerance=config["orth_tolerance"],
                                              loss_tolerance=config["loss_tolerance"])
            row = {"width": width, "seed": seed, "loss": float(solution.loss), "dnc_loss": reference,
                   "loss_ratio": float(solution.loss) / reference, "relative_gap": verdict.relative_gap,
                   "stop_reason": solution.stop_reason}
            for layer, rank, orth in zip(verdict.layers, verdict.ranks, verdict.orth):
                row[f"rank_{layer}"] = rank
                row[f"orth_{layer}"] = orth
            row.update(rank_ok=verdict.rank_ok, orth_ok=verdict.orth_ok, loss_ok=verdict.loss_ok,
                       is_dnc=verdict.is_dnc)
            count += int(verdict.is_dnc)
            rows.append(row)
        fraction, error = binomial_band(count, len(config["seeds"]))
        summary.append({"width": width, "dnc_runs": count, "runs": len(config["seeds"]),
                        "fraction": fraction, "standard_error": error})
    return {"settings": config, "dnc_loss": reference, "summary": summary, "rows": rows}


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``sukenik2024_dnc_probability.png``, ``.csv`` and ``.json`` into ``out_dir``."""
    data = compute(quick)
    config, rows, summary = data["settings"], data["rows"], data["summary"]
    k, depth, seeds, widths = config["num_classes"], config["num_layers"], config["seeds"], config["widths"]
    x = np.array(widths, dtype=float)
    figure, axes = new_figure(1, 2, 11.0, 4.6)

    axis = axes[0]
    plot_seed_fraction(axis, widths, summary, "dnc_runs", f"fraction of {len(seeds)} seeds with IS_DNC")
    axis.set_ylim(-0.05, 1.12)
    axis.set_xlabel(r"width $d_1 = \dots = d_4$ (log₂ axis)")
    axis.set_ylabel("probability of reaching DNC")
    axis.set_title(f"IS_DNC: rank $M_l$ = K, NC2.orth ≤ {config['orth_tolerance']:g} (l ≥ 2), "
                   rf"|Φ/$L_{{\mathrm{{DNC}}}}$ − 1| ≤ {config['loss_tolerance']:g}")
    axis.legend(fontsize=7, loc="upper left")

    axis = axes[1]
    tolerance = config["loss_tolerance"]
    axis.axhspan(-tolerance, tolerance, color="tab:green", alpha=0.12, linewidth=0,
                 label=f"IS_DNC loss tolerance ± {tolerance:g}")
    offsets = np.linspace(-0.08, 0.08, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    scatter_runs_by_outcome(axis, rows, seeds, offsets, "is_dnc", lambda row: row["relative_gap"],
                            ("run with IS_DNC", "run without IS_DNC"))
    axis.axhline(0.0, color="black", linestyle="--", linewidth=1.0,
                 label=rf"$L_{{\mathrm{{DNC}}}}$ = {data['dnc_loss']:.6g} (ufm.optima.predict_dufm)")
    axis.set_xscale("log", base=2)
    axis.set_yscale("symlog", linthresh=1e-4, linscale=0.5)
    largest = max(row["relative_gap"] for row in rows)
    axis.set_ylim(top=max(largest, tolerance) * 300)  # room for the legend above the stalled runs
    axis.set_xticks(x, [str(width) for width in widths])
    axis.minorticks_off()
    axis.set_xlabel(r"width (log₂ axis; seeds spread sideways)")
    axis.set_ylabel(r"final $\Phi / L_{\mathrm{DNC}} - 1$ (symlog, linear within ±1e-4)")
    axis.set_title("final objective relative to the DNC value (< 0: low-rank point below DNC)")
    axis.legend(fontsize=7, loc="upper right")

    figure.suptitle(figure_title(
        "C", "E-C6 (Fig. 3 right)", "probability of reaching deep neural collapse against width", quick,
        f"K = {k}, L = {depth}, n = {config['per_class']}, λ = {config['lam']:g} (all blocks), plain GD lr "
        f"{config['lr']}, {config['steps']} steps (gradient-norm stop {config['tolerance']:g}), "
        f"{len(seeds)} seeds per width, rank rtol {config['rank_rtol']:g}\n"
        "ufm.solvers.solve, ufm.reports.is_deep_neural_collapse, ufm.optima.predict_dufm",
    ))
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "E-C6", "quick": quick, **data}))
    return paths
