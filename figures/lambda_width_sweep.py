"""λ–width exploration (docs/theory.md §6, "λ–width exploration"): NC metrics over (λ, width), with
the theory's predictions overlaid.

A sweep of :mod:`fullnet.sweeps` is run (:func:`fullnet.sweeps.run_sweep`) into a SQLite store in
the output folder; the store is reused, so a second call only reads it (completed runs are never
run again). The store is this figure's cache: if it holds an earlier version of the packaged sweep
(:class:`fullnet.sweeps.SweepChangedError`), it is replaced, with a note on stderr. Its final
values (:meth:`fullnet.store.SweepStore.final_metrics`) are aggregated over seeds by
:func:`fullnet.sweeps.aggregate_grid` (heatmaps over λ × first-layer width p₁) and
:func:`fullnet.sweeps.aggregate_lines` (the lines λ·p₁ = c, λ ∝ 1/p₁). Panels, one column per
quantity:

- top: the mean over seeds on the (λ, p₁) grid; cells not run are blank, cells on a line λ·p₁ = c
  are outlined; the predictions below are drawn over it;
- bottom: the same quantity against p₁ along each line λ·p₁ = c (solid, mean ± 1 std over seeds)
  and, for comparison, at each fixed λ of the grid (thin dashed); p₁ = K is marked.

Quantities: NC1.tr_unc and NC2.orth of the input of the last layer W_L (row L of the per-layer
metrics, docs/theory.md §3), the final objective Φ_net and, where J8 applies, the measured
balancedness ‖D_l‖_F(T)/‖D_l‖_F(0) of the first pair of linear layers (l = L1 + 1, BAL.fro), whose
bottom panel sets it against the J8 factor of the next section (in the quick sweep they agree to
≈ 3% down to J12's floor, ≈ 1e-7 of ‖D_0‖).

Predictions overlaid (:func:`predictions`, all for full-batch gradient descent without momentum)
-------------------------------------------------------------------------------------------------
- **λ ∝ 1/p₁** (docs/theory.md §6, λ–width exploration): (A)'s λ condition compares λ with
  ε1²/‖θ_0‖², and ‖θ_0‖² ≈ Σ_l p_l under LeCun initialization, which suggests λ ≲ ε1²/p₁ for a
  wide first layer (an inference, not a statement of (A)). The line drawn is λ·p₁ = c for each
  ``lambda_width_products`` c of the sweep; c plays the role of ε1². The quick sweep takes
  c = 0.32, which puts the line through the grid cell (p₁ = 32, λ = 10⁻²) — a cell that
  collapses — so that the line asks whether keeping λ·p₁ fixed keeps the collapse as the width
  grows. J8 (next item) says it cannot at a fixed number of steps: along the line the balancing
  time grows ∝ p₁ (the MNIST sweep takes c = 1.28, through (p₁ = 128, λ = 10⁻²)).
- **J8 balancing time** (docs/theory.md §5 J8, J7, J12): along gradient flow the imbalance
  D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ of a pair of linear layers decays as e^{−2λt}, so balancing to
  ε takes ≈ log(‖D_0‖/ε)/(2ηλ) steps; gradient descent multiplies it by (1 − η_kλ)² per step (J7)
  down to the floor ≈ ηG/(2λ) of J12. The same factor (1 − η_kλ) per step is all that shrinks the
  part of every weight matrix that the data gradients do not reach — what the initialization put
  there, which carries the within-class variability of the features. With ε = 10⁻²‖D_0‖ (the
  two decades asked of NC1 below), cells whose Π_k(1 − η_kλ)² over the run (learning-rate drop
  included) stays above 10⁻² are hatched: they cannot have balanced, and their features keep
  their initial within-class spread. The dashed line is the λ where the product reaches 10⁻².
- **Zero-solution threshold** (docs/theory.md §4.3, threshold): since ‖σ(W₁X)‖_F ≤ ‖W₁‖_F‖X‖_op,
  the network's objective is at least that of the (L−1)-layer DUFM with H₁ = σ(W₁X) and
  λ_H = λ/‖X‖²_op. By §4.3, no collapsed (DNC) point of that DUFM beats the zero solution once
  nλ_HΠλ_l ≥ P_crit(K, L−1), i.e. for λ ≥ λ₀ = (P_crit(K, L−1)·‖X‖²_op/n)^{1/L} (n samples per
  class, ‖X‖_op the largest singular value of the standardized training inputs). It is a bound,
  derived here: gradient descent may fall to zero below it (zero is a strict local minimum for
  L ≥ 2, §4.3), and for K > 2 low-rank points are not covered (§4.5). Drawn as a solid line, or
  named on the panel when it lies off the grid; not drawn for other models (biases,
  per-layer λ's, ResNets).
- **p₁ = K** (docs/theory.md §6: DNC needs widths ≥ K). For the quick sweep (K = 3) it is exact
  at p₁ = 2: the class means of Z₁ = σ(W₁X) ≥ 0 lie in a quadrant, one of them in the cone of the
  other two, so no row of W₂ is positive on it alone and the next class means cannot form an
  orthogonal frame [derived here]. For larger K a nonnegative cone of dimension ≥ 3 has more
  extreme rays, and the DUFM's first width needs only ⌈K/2⌉ (:func:`ufm.optima.dnc_min_widths`):
  there the line marks the theory's prediction, not a proven bound.

Quick: the Gaussian quick sweep (the packaged ``sweep_lambda_width_gaussian_quick``, 70 runs of
1500 steps in this process, ≈ 40 s of CPU on one core). Its grid is chosen so that each regime appears
for a physical reason: three Gaussian classes at margin 4 with n = 5 samples each (easy to fit, so
that the objective converges in a thousand steps), a large step η = 0.25 (stable up to p₁ = 128;
at p₁ = 256 one of two seeds ended in a degenerate state, Φ ≈ 0.2–0.5 with NC1 ≈ 1e-7, a false
collapse), and λ from 10⁻⁴ to 0.3, so that Σ_kη_kλ runs from 0.03 to ≈ 90. Measured (means over
the seeds): NC1 ends at 4·10⁻⁴–5·10⁻³ where the J8 factor is far below 10⁻² and p₁ ≥ K
(10⁻² ≤ λ ≤ 0.04); it stays ≳ 0.02 where the factor is not (λ ≤ 3·10⁻³; ≳ 0.3 at λ = 10⁻⁴,
p₁ ≥ 8), stays ≳ 0.15 at p₁ = 2 < K, weakens again near λ₀ (≈ 0.04 at λ = 0.1, where Φ ≈ 0.39 is
close to ½) and loses meaning above λ₀ ≈ 0.17, where the runs end at the zero solution (Φ = ½).

Full: the MNIST sweep (``sweep_lambda_width_mnist``: the E-A1/E-A3 reduced network, K = 10, 50
mnist-5k digits per class, 24000 steps at η = 0.05, λ 3·10⁻⁴ … 0.1 × p₁ 8 … 1024, 3 seeds, 102
runs) on local worker processes: ``python -m figures lambda_width_sweep``. Its J8 λ is ≈ 2.3·10⁻³
and its λ₀ ≈ 0.064, so it spans the same regimes; one of its cells (p₁ = 128, λ = 3·10⁻³, seed 0)
was run and ends at NC1 = 0.0032. Its expected cost is an estimate, extrapolated from timed cells
(see the sweep file): ≈ 5.5 CPU-hours, ≈ 3 h on 2 workers, ≈ 45 min on 8; not run in full here.
Fashion-MNIST is one ``--set data.name=fashion-mnist`` away (see the sweep file).
Both sweep files are in ``fullnet/configs/``.
"""

from __future__ import annotations

import math
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fullnet.config import resolve_config_path

from fullnet.store import SweepStore
from fullnet.sweeps import SweepChangedError, aggregate_grid, aggregate_lines, load_sweep, run_sweep

from .common import figure_title, new_figure, save_figure, write_csv, write_json

NAME = "lambda_width_sweep"
LAST_LAYER = -1  # stands for the row of the last layer's input (L = L1 + L2)
#: ε/‖D_0‖ of the J8 overlay: a cell is "balanced" once Π_k(1 − η_kλ)² ≤ this (two decades).
BALANCE_RATIO = 1e-2
#: NC1.tr_unc at or below which a cell counts as collapsed (two decades below its initial ≈ 0.5–1).
COLLAPSED_NC1 = 1e-2
#: Lower end of the balancedness panel's scales: far below J12's floor and float32 rounding (≈ 1e-7
#: in the quick sweep); smaller values (weights decaying to the zero solution) are drawn at it.
BALANCING_FLOOR = 1e-12


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


# --------------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------------


def _positive(value, name: str, *, integer: bool = False) -> float:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive {'integer' if integer else 'number'}, got {value!r}")
    return value


def _schedule(learning_rate: float, epochs: int, drop_fraction: float, drop_factor: float,
              steps_per_epoch: int) -> tuple[tuple[int, float], tuple[int, float]]:
    """(steps, η) before and after the learning-rate drop of :func:`fullnet.training.learning_rate_at`."""
    from fullnet.training import drop_epoch

    _positive(learning_rate, "learning_rate")
    _positive(epochs, "epochs", integer=True)
    _positive(steps_per_epoch, "steps_per_epoch", integer=True)
    if isinstance(drop_fraction, bool) or not isinstance(drop_fraction, (int, float)) or not 0 <= drop_fraction:
        raise ValueError(f"drop_fraction must be a number >= 0, got {drop_fraction!r}")
    _positive(drop_factor, "drop_factor")
    drop = epochs if drop_fraction >= 1.0 else drop_epoch(epochs, drop_fraction)
    return ((drop * steps_per_epoch, learning_rate),
            ((epochs - drop) * steps_per_epoch, learning_rate * drop_factor))


def j8_factor(weight_decay: float, learning_rate: float, epochs: int, *, drop_fraction: float = 0.8,
              drop_factor: float = 0.1, steps_per_epoch: int = 1) -> float:
    """Π_k (1 − η_kλ)² over a run: the factor by which its weight decay shrinks ‖D_l‖.

    docs/theory.md §5 J7: for a pair of linear layers, gradient descent gives
    D_l(k+1) = (1 − η_kλ)²D_l(k) + η_k²(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ), so without the η² term (whose
    envelope is the floor ≈ ηG/(2λ) of J12) ‖D_l‖ shrinks by this product; along gradient flow
    it is e^{−2λΣ_kη_k} (J8). η_k is η, times ``drop_factor`` from epoch ⌊drop_fraction·epochs⌋ on
    (:func:`fullnet.training.learning_rate_at`).

    Parameters
    ----------
    weight_decay : float
        λ ≥ 0 (of every layer).
    learning_rate : float
        η > 0.
    epochs : int
    drop_fraction, drop_factor : float
        The learning-rate drop (``training.lr_drop_fraction``, ``training.lr_drop_factor``).
    steps_per_epoch : int
        1 for full-batch gradient descent, ⌈N/B⌉ for minibatch SGD.

    Returns
    -------
    float
        In [0, 1] while η_kλ ≤ 2.
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not (
            math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    total = 0.0
    for steps, rate in _schedule(learning_rate, epochs, drop_fraction, drop_factor, steps_per_epoch):
        if steps == 0:
            continue
        shrink = abs(1.0 - rate * weight_decay)
        if shrink == 0.0:
            return 0.0
        total += 2.0 * steps * math.log(shrink)
    return math.exp(total)


def balancing_steps(weight_decay: float, learning_rate: float, ratio: float = BALANCE_RATIO) -> float:
    """log(‖D_0‖/ε)/(2ηλ) with ε/‖D_0‖ = ``ratio``: J8's step count to balance (docs/theory.md §5 J8)."""
    _positive(weight_decay, "weight_decay")
    _positive(learning_rate, "learning_rate")
    if not (isinstance(ratio, (int, float)) and 0 < ratio < 1):
        raise ValueError(f"ratio must be a number in (0, 1), got {ratio!r}")
    return math.log(1.0 / ratio) / (2.0 * learning_rate * weight_decay)


def balancing_lambda(learning_rate: float, epochs: int, *, drop_fraction: float = 0.8,
                     drop_factor: float = 0.1, steps_per_epoch: int = 1,
                     ratio: float = BALANCE_RATIO) -> float:
    """The λ at which :func:`j8_factor` over the run equals ``ratio``: smaller λ cannot balance.

    About log(1/ratio)/(2Σ_kη_k) (J8, docs/theory.md §5 J8); found by bisection on the exact
    product, to 1e-12 relative.
    """
    if not (isinstance(ratio, (int, float)) and 0 < ratio < 1):
        raise ValueError(f"ratio must be a number in (0, 1), got {ratio!r}")
    schedule = _schedule(learning_rate, epochs, drop_fraction, drop_factor, steps_per_epoch)
    high = 1.0 / max(rate for steps, rate in schedule if steps)  # the factor is 0 there

    def factor(lam: float) -> float:
        return j8_factor(lam, learning_rate, epochs, drop_fraction=drop_fraction,
                         drop_factor=drop_factor, steps_per_epoch=steps_per_epoch)

    low = 0.0
    while high - low > 1e-12 * high:
        middle = 0.5 * (low + high)
        low, high = (middle, high) if factor(middle) > ratio else (low, middle)
    return high


def zero_threshold(num_classes: int, num_layers: int, per_class: int, input_norm_squared: float) -> float:
    """λ₀ = (P_crit(K, L−1)·‖X‖²_op/n)^{1/L}: above it zero beats every DNC point of the network.

    A bound derived from docs/theory.md §4.3 (threshold): an L-layer network without biases, λ on
    every layer, satisfies (λ/2)‖W₁‖² ≥ (λ/(2‖X‖²_op))‖σ(W₁X)‖², so its objective is at least that
    of the (L−1)-layer DUFM with H₁ = σ(W₁X), λ_H = λ/‖X‖²_op and λ_l = λ, whose DNC points do not
    beat zero (value ½) once nλ_HΠλ_l = nλ^L/‖X‖²_op ≥ P_crit(K, L−1)
    (:func:`ufm.optima.dnc_threshold`). The network's linear layers, where the DUFM has ReLUs, do
    not weaken this: §4.3 bounds the value of a DNC point through a linear factorization of q·I_K
    (F2), which linear layers already are. With ‖X‖²_op = 1 it is
    :func:`ufm.optima.dnc_critical_lambda` (K, L−1, n).

    Parameters
    ----------
    num_classes : int
        K ≥ 2.
    num_layers : int
        L ≥ 2, the network's weight matrices.
    per_class : int
        n, samples per class.
    input_norm_squared : float
        ‖X‖²_op, the squared largest singular value of the (standardized) inputs X ∈ R^{p₀×N}.
    """
    from ufm.optima import dnc_threshold

    _positive(num_layers, "num_layers", integer=True)
    if num_layers < 2:
        raise ValueError(f"num_layers must be at least 2 (the bound uses an (L−1)-layer DUFM), got {num_layers}")
    _positive(per_class, "per_class", integer=True)
    _positive(input_norm_squared, "input_norm_squared")
    return (dnc_threshold(num_classes, num_layers - 1) * input_norm_squared / per_class) ** (1.0 / num_layers)


@dataclass
class SweepPredictions:
    """The overlays of one sweep (see the module docstring); None where a prediction does not apply.

    Attributes
    ----------
    num_classes : int
        K (p₁ = K line).
    num_layers, linear_depth : int
        L = L1 + L2 and L2.
    per_class : int or None
        n.
    learning_rate : float
        η before the drop.
    epochs, steps_per_epoch : int
    drop_fraction, drop_factor : float
    balance_ratio : float
        ε/‖D_0‖ of the J8 overlay (:data:`BALANCE_RATIO`).
    balancing_lambda : float or None
        :func:`balancing_lambda`; None without a pair of linear layers, with momentum or with
        per-layer λ's.
    input_norm_squared : float or None
        ‖X‖²_op of the training inputs.
    zero_threshold : float or None
        λ₀ of :func:`zero_threshold`; None for models outside its derivation.
    line_products : list of float
        c of the lines λ·p₁^power = c.
    line_power : float
    notes : list of str
        Why a prediction is None.
    """

    num_classes: int
    num_layers: int
    linear_depth: int
    per_class: int | None
    learning_rate: float
    epochs: int
    steps_per_epoch: int
    drop_fraction: float
    drop_factor: float
    balance_ratio: float
    balancing_lambda: float | None
    input_norm_squared: float | None
    zero_threshold: float | None
    line_products: list[float]
    line_power: float
    notes: list[str] = field(default_factory=list)

    def j8_factor(self, weight_decay: float) -> float | None:
        """:func:`j8_factor` of this sweep's schedule at λ (None where J8 does not apply)."""
        if self.balancing_lambda is None:
            return None
        return j8_factor(weight_decay, self.learning_rate, self.epochs, drop_fraction=self.drop_fraction,
                         drop_factor=self.drop_factor, steps_per_epoch=self.steps_per_epoch)

    def unbalanced(self, weight_decay: float) -> bool:
        """True where the J8 factor over the run stays above :attr:`balance_ratio`."""
        factor = self.j8_factor(weight_decay)
        return factor is not None and factor > self.balance_ratio

    def to_dict(self) -> dict:
        return asdict(self)


def predictions(specification) -> SweepPredictions:
    """The overlays of a :class:`fullnet.sweeps.SweepSpecification` (its base configuration).

    Loads the training data (float64, CPU) for ‖X‖_op.
    """
    import torch

    from fullnet.training import load_data

    base = specification.base
    model, training, data = base.model, base.training, base.data
    notes: list[str] = []
    uniform = not training.layer_weight_decay
    train, _ = load_data(data, flatten=model.architecture == "mlp", device="cpu", dtype=torch.float64)
    samples = train.num_samples
    if training.optimizer == "gd":
        steps_per_epoch = 1
    else:
        steps_per_epoch = math.ceil(samples / (training.batch_size or samples))
    num_layers = len(model.nonlinear_widths) + model.linear_depth
    balancing = None
    if model.linear_depth < 2:
        notes.append("J8: no pair of linear layers (linear_depth < 2)")
    elif training.momentum != 0 or not uniform:
        notes.append("J8: needs plain gradient descent (no momentum) with one λ on every layer")
    else:
        balancing = balancing_lambda(training.learning_rate, training.epochs,
                                     drop_fraction=training.lr_drop_fraction,
                                     drop_factor=training.lr_drop_factor, steps_per_epoch=steps_per_epoch)
    norm_squared = threshold = None
    if model.architecture != "mlp" or model.bias or not uniform or training.feature_penalty:
        notes.append("threshold: derived for bias-free MLPs with one λ on every layer and no feature penalty")
    elif train.per_class is None or data.targets != "one_hot" or num_layers < 2:
        notes.append("threshold: needs class-balanced one-hot targets and at least two layers")
    else:
        inputs = train.inputs.reshape(samples, -1).numpy()
        norm_squared = float(np.linalg.norm(inputs, 2) ** 2)
        threshold = zero_threshold(train.num_classes, num_layers, train.per_class, norm_squared)
    return SweepPredictions(
        num_classes=train.num_classes, num_layers=num_layers, linear_depth=model.linear_depth,
        per_class=train.per_class, learning_rate=training.learning_rate, epochs=training.epochs,
        steps_per_epoch=steps_per_epoch, drop_fraction=training.lr_drop_fraction,
        drop_factor=training.lr_drop_factor, balance_ratio=BALANCE_RATIO, balancing_lambda=balancing,
        input_norm_squared=norm_squared, zero_threshold=threshold,
        line_products=list(specification.lambda_width_products),
        line_power=specification.lambda_width_power, notes=notes,
    )


# --------------------------------------------------------------------------------------------
# Sweep and aggregates
# --------------------------------------------------------------------------------------------


def store_path(out_dir: str | Path) -> Path:
    """The SQLite store of the sweep in ``out_dir``."""
    return Path(out_dir) / f"{NAME}.sqlite"


def run(out_dir: str | Path, quick: bool) -> tuple[object, dict, dict]:
    """Run (or resume) the sweep into :func:`store_path`; returns (specification, report, config).

    Run directories go to ``out_dir/NAME_runs/SWEEP_NAME/``. A store that holds an earlier version
    of the sweep (another base configuration under the same name) is replaced, with its run folders.
    """
    import torch

    config = settings(quick)
    runs = (Path(out_dir) / f"{NAME}_runs").resolve()
    specification = load_sweep(config["sweep"], [f"output.directory={runs}", *config["overrides"]])
    threads = torch.get_num_threads()
    store = store_path(out_dir)
    try:  # in-process runs set this process's torch threads; restore them for later figures
        try:
            report = run_sweep(specification, store, workers=config["workers"], progress=False)
        except SweepChangedError as error:
            print(f"note: {store} holds an earlier version of the sweep and is replaced ({error})",
                  file=sys.stderr)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{store}{suffix}").unlink(missing_ok=True)
            shutil.rmtree(runs / specification.name, ignore_errors=True)
            report = run_sweep(specification, store, workers=config["workers"], progress=False)
    finally:
        torch.set_num_threads(threads)
    return specification, report.to_dict(), config


def compute(out_dir: str | Path, quick: bool) -> dict:
    """The sweep's grid and line aggregates of every quantity, the predictions and the CSV rows.

    Grid rows carry ``j8_factor`` (Π_k(1 − η_kλ)² over the run) and ``unbalanced`` (it stays above
    :data:`BALANCE_RATIO`). Where J8 applies, a last panel (metric ``BAL.fro ratio``) holds the
    measured ‖D_l‖_F(T)/‖D_l‖_F(0) of the first pair of linear layers (l = L1 + 1) of every run
    (:func:`balancing_table`), to set against the J8 factor.
    """
    specification, report, config = run(out_dir, quick)
    overlay = predictions(specification)
    rows: list[dict] = []
    panels = []

    def add(table, label: str, log: bool, kind: str) -> None:
        grid = aggregate_grid(table)
        lines = aggregate_lines(table, power=specification.lambda_width_power)
        panels.append({"metric": table.metric, "layer": table.layer, "label": label, "log": log,
                       "kind": kind, "floor": BALANCING_FLOOR if kind == "balancing" else None,
                       "grid": grid.to_dict(), "lines": [line.to_dict() for line in lines]})
        for i, lam in enumerate(grid.weight_decays):
            for j, width in enumerate(grid.widths):
                if grid.count[i][j]:
                    rows.append({"series": "grid", "metric": table.metric, "layer": table.layer,
                                 "weight_decay": lam, "width": width, "mean": grid.mean[i][j],
                                 "std": grid.std[i][j], "count": grid.count[i][j],
                                 "j8_factor": overlay.j8_factor(lam),
                                 "unbalanced": overlay.unbalanced(lam)})
        for line in lines:
            for width, lam, mean, std, count in zip(line.widths, line.weight_decays, line.mean,
                                                    line.std, line.count):
                rows.append({"series": "line", "metric": table.metric, "layer": table.layer,
                             "product": line.product, "power": line.power, "weight_decay": lam,
                             "width": width, "mean": mean, "std": std, "count": count})

    with SweepStore(store_path(out_dir), create=False) as store:
        counts = store.counts(specification.name)
        for metric, layer, label, log in config["quantities"]:
            add(store.final_metrics(metric, _layer(layer, specification), sweep=specification.name),
                label, log, "metric")
        if overlay.balancing_lambda is not None:
            pair = len(specification.base.model.nonlinear_widths) + 1
            add(balancing_table(store, specification.name, pair),
                rf"measured $\|D_{{{pair}}}\|_F(T)/\|D_{{{pair}}}\|_F(0)$, linear pair ({pair}, {pair + 1})",
                True, "balancing")
    return {"settings": {key: value for key, value in config.items() if key != "quantities"},
            "sweep": {"name": specification.name, "description": specification.description,
                      "grid": specification.to_dict()["grid"], "store": str(store_path(out_dir)),
                      "counts": counts, "epochs": specification.base.training.epochs,
                      "learning_rate": specification.base.training.learning_rate,
                      "data": specification.base.data.name,
                      "nonlinear_widths": list(specification.base.model.nonlinear_widths),
                      "linear_depth": specification.base.model.linear_depth},
            "predictions": overlay.to_dict(), "report": report, "panels": panels, "rows": rows}


def balancing_table(store: SweepStore, sweep: str, layer: int):
    """A :class:`fullnet.store.FinalMetricTable` of ‖D_l‖_F at the last snapshot over ‖D_l‖_F at the
    first (``BAL.fro`` of row ``layer``, docs/theory.md §3), one row per completed run of the grid;
    its metric is ``"BAL.fro ratio"``. Runs whose first value is 0 or missing are left out."""
    from dataclasses import replace

    from fullnet.store import FinalMetricTable

    final = store.final_metrics("BAL.fro", layer, sweep=sweep)
    rows = []
    for row in final.rows:
        values = store.history(row.run_id, "BAL.fro", layer).series("BAL.fro", layer)[1]
        first = values[0] if values else None
        if first and row.value is not None:
            rows.append(replace(row, value=row.value / first))
    return FinalMetricTable(metric="BAL.fro ratio", layer=layer, sweep=final.sweep, rows=rows)


def _layer(layer: int, specification) -> int:
    if layer != LAST_LAYER:
        return layer
    return len(specification.base.model.nonlinear_widths) + specification.base.model.linear_depth


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def _position(values: list[float], value: float) -> float:
    """Fractional index of ``value`` on a categorical axis of log-spaced ``values`` (ascending),
    linear in log(value) between neighbours and extrapolated from the end segments."""
    logs = np.log(np.asarray(values, dtype=float))
    target = math.log(value)
    if logs.size == 1:
        return 0.0 if target == logs[0] else (-1.0 if target < logs[0] else 1.0) * math.inf
    if target <= logs[0]:
        return float((target - logs[0]) / (logs[1] - logs[0]))
    if target >= logs[-1]:
        return float(logs.size - 1 + (target - logs[-1]) / (logs[-1] - logs[-2]))
    return float(np.interp(target, logs, np.arange(logs.size)))


def _overlay_styles(prediction: dict) -> dict:
    """Matplotlib artists' styles and legend labels of the predictions (one place for both)."""
    ratio = prediction["balance_ratio"]
    return {
        "line": dict(color="tab:red", linewidth=1.6, linestyle="-",
                     label=r"$\lambda p_1$ = " + ", ".join(f"{c:g}" for c in prediction["line_products"])
                           + " (λ ∝ 1/p₁; (A)'s λ ≲ ε1²/p₁ with c for ε1²), docs/theory.md §6 λ–width"),
        "hatch": dict(hatch="////", edgecolor="0.35", linewidth=0.0,
                      label=f"J8: log(‖D_0‖/ε)/(2ηλ) > the run (ε = {ratio:g}·‖D_0‖): cannot have "
                            "balanced, docs/theory.md §5 J8"),
        "balance": dict(color="black", linewidth=1.3, linestyle="--",
                        label=r"J8: $\Pi_k(1-\eta_k\lambda)^2$ = " + f"{ratio:g} over the run "
                              f"(λ = {prediction['balancing_lambda'] or math.nan:.3g})"),
        "zero": dict(color="tab:orange", linewidth=2.0, linestyle="-",
                     label=f"λ₀ = {prediction['zero_threshold'] or math.nan:.3g}: above it zero beats "
                           "every DNC point (a bound), docs/theory.md §4.3 threshold"),
        "classes": dict(color="white", linewidth=1.6, linestyle=":",
                        label=f"p₁ = K = {prediction['num_classes']}: DNC needs widths ≥ K, "
                              "docs/theory.md §6"),
    }


def _heatmap(axis, figure, panel: dict, lines: list[dict], prediction: dict) -> list:
    """Draw a panel's heatmap with the predictions; return the legend's artists."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    grid = panel["grid"]
    lams, widths = grid["weight_decays"], grid["widths"]
    values = np.array([[np.nan if value is None else value for value in row] for row in grid["mean"]],
                      dtype=float)
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    if panel["log"] and positive.size:
        norm = LogNorm(vmin=max(positive.min(), panel.get("floor") or 0.0), vmax=positive.max(), clip=True)
        values = np.where(values > 0, values, np.nan)
    else:
        norm = Normalize(vmin=finite.min() if finite.size else 0, vmax=finite.max() if finite.size else 1)
    image = axis.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap="viridis",
                        norm=norm, interpolation="nearest")
    axis.set_facecolor("#eeeeee")
    styles = _overlay_styles(prediction)
    handles = []
    unbalanced = [_unbalanced(prediction, lam) for lam in lams]
    for i in range(len(lams)):
        for j in range(len(widths)):
            if np.isfinite(values[i, j]):
                if unbalanced[i]:
                    style = {key: value for key, value in styles["hatch"].items() if key != "label"}
                    axis.add_patch(Rectangle((j - 0.5, i - 0.5), 1.0, 1.0, fill=False, alpha=0.55, **style))
                shade = norm(values[i, j])
                axis.text(j, i, f"{values[i, j]:.2g}", ha="center", va="center", fontsize=6.5,
                          color="white" if shade < 0.55 else "black")
    if any(unbalanced):
        handles.append(Patch(facecolor="none", **styles["hatch"]))
    for number, line in enumerate(lines):
        style = ("-", "--", ":", "-.")[number % 4]
        for width, lam in zip(line["widths"], line["weight_decays"]):
            i, j = lams.index(lam), widths.index(width)
            axis.add_patch(_rectangle(j, i, style))
    rows, columns = (-0.5, len(lams) - 0.5), (-0.5, len(widths) - 0.5)
    for product in prediction["line_products"]:
        sample = np.geomspace(widths[0] / 4.0, widths[-1] * 4.0, 80) if len(widths) > 1 else np.array(widths)
        xs = [_position(widths, width) for width in sample]
        ys = [_position(lams, product / width ** prediction["line_power"]) for width in sample]
        if len(lams) > 1 and len(widths) > 1:
            axis.plot(xs, ys, **{key: value for key, value in styles["line"].items() if key != "label"})
            handles.append(Line2D([], [], **styles["line"]))
    handles = _unique(handles)
    if prediction["balancing_lambda"] is not None and len(lams) > 1:
        y = _position(lams, prediction["balancing_lambda"])
        if rows[0] <= y <= rows[1]:
            axis.axhline(y, **{key: value for key, value in styles["balance"].items() if key != "label"})
            handles.append(Line2D([], [], **styles["balance"]))
    if prediction["zero_threshold"] is not None and len(lams) > 1:
        y = _position(lams, prediction["zero_threshold"])
        zero = {key: value for key, value in styles["zero"].items() if key != "label"}
        if rows[0] <= y <= rows[1]:
            axis.axhline(y, **zero)
        else:
            axis.text(0.98, 0.99 if y > rows[1] else 0.01,
                      f"λ₀ = {prediction['zero_threshold']:.3g} {'above' if y > rows[1] else 'below'} the grid",
                      transform=axis.transAxes, ha="right", va="top" if y > rows[1] else "bottom",
                      fontsize=7, color="tab:orange")
        handles.append(Line2D([], [], **styles["zero"]))
    if len(widths) > 1:
        x = _position(widths, prediction["num_classes"])
        if columns[0] <= x <= columns[1]:
            axis.axvline(x, **{key: value for key, value in styles["classes"].items() if key != "label"})
            handles.append(Line2D([], [], **{**styles["classes"], "color": "0.4"}))
    axis.set_xlim(*columns)
    axis.set_ylim(*rows)
    axis.set_xticks(range(len(widths)))
    axis.set_xticklabels([str(width) for width in widths])
    axis.set_yticks(range(len(lams)))
    axis.set_yticklabels([f"{lam:.3g}" for lam in lams])
    axis.set_xlabel(r"first-layer width $p_1$")
    axis.set_ylabel(r"weight decay $\lambda$")
    axis.grid(False)
    axis.set_title(panel["label"] + " (mean over seeds)")
    figure.colorbar(image, ax=axis, shrink=0.85)
    return handles


def _unique(handles: list) -> list:
    seen, result = set(), []
    for handle in handles:
        if handle.get_label() not in seen:
            seen.add(handle.get_label())
            result.append(handle)
    return result


def _unbalanced(prediction: dict, lam: float) -> bool:
    if prediction["balancing_lambda"] is None:
        return False
    return _j8(prediction, lam) > prediction["balance_ratio"]


def _rectangle(column: int, row: int, style: str):
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.46, row - 0.46), 0.92, 0.92, fill=False, edgecolor="tab:red",
                     linewidth=1.3, linestyle=style)


def _lines(axis, panel: dict, prediction: dict) -> None:
    grid = panel["grid"]
    lams = grid["weight_decays"]
    palette = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan",
               "tab:pink", "gold", "black")
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
    axis.axvline(prediction["num_classes"], color="0.4", linestyle=":", linewidth=1.2,
                 label=f"p₁ = K = {prediction['num_classes']}")
    if panel["metric"].startswith("NC1"):
        axis.axhline(COLLAPSED_NC1, color="0.2", linewidth=0.8, linestyle="-.",
                     label=f"NC1 = {COLLAPSED_NC1:g} (collapsed below)")
    axis.set_xscale("log", base=2)
    if panel["log"]:
        axis.set_yscale("log")
    axis.set_xlabel(r"first-layer width $p_1$ (log₂)")
    axis.set_ylabel(panel["metric"] if panel["layer"] == 0 else f"{panel['metric']} (row {panel['layer']})")
    axis.set_title(panel["label"] + r" along $\lambda p_1$ = const")
    axis.legend(fontsize=6, loc="best", ncols=2)


def _balancing(axis, panel: dict, prediction: dict) -> None:
    """Measured ‖D_l‖_F(T)/‖D_l‖_F(0) (mean ± std over seeds) against the J8 factor of its λ."""
    grid = panel["grid"]
    palette = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan")
    predicted_all = []
    for j, width in enumerate(grid["widths"]):
        points = [(_j8(prediction, lam), grid["mean"][i][j], grid["std"][i][j])
                  for i, lam in enumerate(grid["weight_decays"]) if grid["mean"][i][j] is not None]
        if not points:
            continue
        predicted, measured, spread = (np.array(column, dtype=float) for column in zip(*points))
        predicted_all += list(predicted)
        axis.errorbar(predicted, measured, yerr=np.nan_to_num(spread), linestyle="none", marker="o",
                      markersize=4, capsize=2, color=palette[j % len(palette)], label=f"p₁ = {width}")
    if predicted_all:
        high = max(predicted_all)
        axis.plot([BALANCING_FLOOR, high], [BALANCING_FLOOR, high], color="black", linewidth=1.0,
                  label="measured = J8: Π_k(1 − η_kλ)², docs/theory.md §5 J8")
        hidden = sum(value < BALANCING_FLOOR for value in predicted_all)
        if hidden:
            axis.text(0.02, 0.98, f"{hidden} cells with J8 factor < {BALANCING_FLOOR:g} off scale\n"
                      "(there the weights decay to the zero solution)", transform=axis.transAxes,
                      ha="left", va="top", fontsize=6.5)
    axis.set_xlim(BALANCING_FLOOR / 3, 3.0)
    axis.set_ylim(BALANCING_FLOOR / 3, 3.0)
    axis.axhline(prediction["balance_ratio"], color="black", linestyle="--", linewidth=0.9,
                 label=f"ε/‖D_0‖ = {prediction['balance_ratio']:g}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel(r"J8 factor $\Pi_k(1-\eta_k\lambda)^2$ of the run's λ")
    axis.set_ylabel(r"measured $\|D_l\|_F(T)/\|D_l\|_F(0)$")
    axis.set_title("balancedness of the linear pair against J8\n(floor: J12's ηG/(2λ) and float32 rounding)")
    axis.legend(fontsize=6, loc="best")


def _j8(prediction: dict, lam: float) -> float:
    return j8_factor(lam, prediction["learning_rate"], prediction["epochs"],
                     drop_fraction=prediction["drop_fraction"], drop_factor=prediction["drop_factor"],
                     steps_per_epoch=prediction["steps_per_epoch"])


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``lambda_width_sweep.png``, ``.csv`` and ``.json`` (and the store ``.sqlite``)."""
    data = compute(out_dir, quick)
    panels, sweep, prediction = data["panels"], data["sweep"], data["predictions"]
    figure, axes = new_figure(2, len(panels), 5.2 * len(panels), 10.0, squeeze=False)
    handles = []
    for column, panel in enumerate(panels):
        handles += _heatmap(axes[0, column], figure, panel, panel["lines"], prediction)
        if panel.get("kind") == "balancing":
            _balancing(axes[1, column], panel, prediction)
        else:
            _lines(axes[1, column], panel, prediction)
    handles = _unique(handles)
    if handles:
        figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7.5,
                      title="predictions overlaid on the heatmaps", title_fontsize=7.5)
    grid = sweep["grid"]
    figure.suptitle(figure_title(
        "A", "λ–width exploration (docs/theory.md §6)", "NC metrics and loss over weight decay × width",
        quick,
        f"sweep {sweep['name']}: {sweep['data']} data (K = {prediction['num_classes']}, n = "
        f"{prediction['per_class']}), MLP {sweep['nonlinear_widths']} (p₁ varied) + {sweep['linear_depth']} "
        f"linear layers, {sweep['epochs']} full-batch GD steps at η = {sweep['learning_rate']:g}, seeds "
        f"{grid['seeds']}; {sweep['counts'].get('completed', 0)} runs completed. Red outlines: cells on "
        "λ·p₁ = c\nfullnet.sweeps.run_sweep → SweepStore.final_metrics → aggregate_grid / aggregate_lines; "
        "predictions: figures.lambda_width_sweep.predictions",
    ))
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, data["rows"])]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "λ–width", "quick": quick, **data}))
    return paths
