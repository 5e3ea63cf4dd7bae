"""Gaps to the theory's optimum, followed over training: does a trained network converge to it?

:mod:`fullnet.compare` sets a trained network beside its ``ufm`` counterparts once, at the end of
training. This module measures, at every record of a run, the quantities that theory says vanish
(or match) at the optimum, as relative gaps that can be plotted on a log scale against epochs:

- ``head_suboptimality`` — (Φ_head − min Φ_head)/min Φ_head of the linear head W_{L1+1}, …, W_L on
  the *then-current* fixed features Z_{L1} (docs/theory.md §2(d); the minimum is solved by L-BFGS,
  :func:`ufm.solvers.solve`, warm-started from the previous record's optimum and from the trained
  head). It vanishes at a critical point of Φ_net (the head part of ∇Φ_net is ∇Φ_head).
- ``network_ufm_gap`` — (Φ_view − L_DNC)/L_DNC, the network's objective restricted to the layers
  after the penalized features Z_f (λ_H on Z_f) against the optimum of its unconstrained-features
  view (docs/theory.md §4.2, U0); L_DNC is a lower bound for the deep linear view.
- ``feature_gap`` — (min_head Φ_view − L_DNC)/L_DNC: the part of ``network_ufm_gap`` the head
  cannot remove, the cost of the features the backbone delivers (0 only at features of a UFM
  optimum). When f = L1, network_ufm_gap·L_DNC = feature_gap·L_DNC + (Φ_head − min Φ_head)
  exactly.
- ``head_balancedness`` — max over consecutive linear head layers of BAL.rel_op =
  ‖D_l‖_op/‖W_lW_lᵀ‖_op, D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ (docs/theory.md §3; 0 at critical points,
  J9), with the J12 envelope ‖D_l(k)‖ ≤ (1−ηλ)^{2k}‖D_l(0)‖ + η²Σ_j(1−ηλ)^{2(k−1−j)}‖g_{l+1}ᵀg_{l+1}
  − g_lg_lᵀ‖(j) accumulated step by step from the data gradients (J7, J12; normalized the same way).
- ``singular_values`` — max over head layers of ‖s(W_l) − ŝ_l‖/‖ŝ_l‖, the singular values of each
  head layer against those of the balanced chain of the solved head optimum,
  ŝ_l = c_l s(A*)^{1/L2} padded with zeros (F2, J5; :func:`fullnet.compare.predicted_head_structure`).
- ``nc1_features``, ``nc1_last``, ``nc2_last``, ``nc3_last`` — NC1.tr_unc of Z_f and of Z_{L−1},
  NC2.orth of the class means of Z_{L−1}, NC3.dual of (W_L, Z_{L−1}) (docs/theory.md §3): all 0
  at the DNC optimum of the view (§4.2).

:class:`GapTracker` records them during :func:`fullnet.training.train` through its ``on_step``
and ``on_snapshot`` callbacks (one record per history snapshot after the first step);
:func:`measure_gaps` measures one state; :func:`gap_summary` says whether a recorded gap closed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ufm.metrics import (UndefinedMetricError, nc1_trace_ratio_uncentered,
                         nc2_orthogonal_frame_distance, nc3_self_duality_distance)
from ufm.models import Parameters
from ufm.solvers import solve

from .compare import (_check_one_hot, _measured_features, _numpy, _plain, _view_rows, linear_head_of,
                      predicted_head_structure, unconstrained_features_view)
from .data import TensorData
from .objective import Regularization

#: The relative gaps of a :class:`GapRecord`, in plotting order, with what each measures.
GAP_NAMES = {
    "head_suboptimality": "(Φ_head − min Φ_head)/min Φ_head on the current features (§2(d))",
    "network_ufm_gap": "(Φ_view − L_DNC)/L_DNC, the network against its UFM bound (§4.2, U0)",
    "feature_gap": "(min_head Φ_view − L_DNC)/L_DNC, the cost of the current features (§4.2)",
    "head_balancedness": "max_l ‖D_l‖_op/‖W_lW_lᵀ‖_op over the linear head (J9, J12)",
    "singular_values": "max_l ‖s(W_l) − ŝ_l‖/‖ŝ_l‖ against the balanced head optimum (F2, J5)",
    "nc1_features": "NC1.tr_unc of the penalized features Z_f (§3)",
    "nc1_last": "NC1.tr_unc of Z_{L−1}, the input of W_L (§3)",
    "nc2_last": "NC2.orth of the class means of Z_{L−1} (§3)",
    "nc3_last": "NC3.dual of (W_L, Z_{L−1}) (§3)",
}


@dataclass
class GapRecord:
    """The gaps of one state of a network (see the module docstring for each definition).

    Attributes
    ----------
    epoch : int
    head_loss, head_optimum : float
        Φ_head of the trained head and the least Φ_head found on the same features.
    view_loss, ufm_bound : float or None
        Φ_view and L_DNC of the unconstrained-features view (None without a feature penalty).
    balancedness_op : list of float
        ‖D_l‖_op per consecutive linear head pair l = L1+1..L−1.
    balancedness_scale : list of float
        ‖W_lW_lᵀ‖_op of the same pairs (BAL.rel_op = ‖D_l‖_op/‖W_lW_lᵀ‖_op).
    envelope_op : list of float or None
        The J12 envelope of each ‖D_l‖_op at this record (None when not tracked).
    feature_pull : float or None
        s = ⟨∇_{Z_f}Φ_view, Z_f⟩ = ⟨F − Y, F⟩/N + λ_H‖Z_f‖², the derivative of Φ_view along the
        rescaling Z_f → cZ_f at c = 1 (F the output; the layers after Z_f are positively
        homogeneous). It is 0 at a critical point of the view with free features.
    backbone_decay : float or None
        λ_f‖W_f‖², the weight decay of the ReLU layer that produces Z_f. Rescaling W_f rescales
        Z_f (docs/theory.md J10), so at a critical point of Φ_net s = −λ_f‖W_f‖²: the backbone's
        weight decay keeps Z_f away from a critical point of the view.
    gaps : dict
        Name (a key of :data:`GAP_NAMES`) → relative gap (None where undefined).
    """

    epoch: int
    head_loss: float
    head_optimum: float
    view_loss: float | None
    ufm_bound: float | None
    balancedness_op: list[float] = field(default_factory=list)
    balancedness_scale: list[float] = field(default_factory=list)
    envelope_op: list[float] | None = None
    feature_pull: float | None = None
    backbone_decay: float | None = None
    gaps: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def _metric(function: Any, *args: Any, **options: Any) -> float | None:
    """A metric of docs/theory.md §3, None where it is undefined (e.g. all class means zero)."""
    try:
        return float(function(*args, **options))
    except UndefinedMetricError:
        return None


def _relative(value: float, reference: float) -> float | None:
    if reference == 0 or not (math.isfinite(value) and math.isfinite(reference)):
        return None
    return (value - reference) / abs(reference)


def measure_gaps(
    model: nn.Module, data: TensorData, regularization: Regularization, *, epoch: int = 0,
    warm_start: Parameters | None = None, tolerance: float = 1e-10, max_iterations: int = 5000,
) -> tuple[GapRecord, Parameters]:
    """Measure the gaps of :data:`GAP_NAMES` for one state of a network.

    Parameters
    ----------
    model : PyramidalMLP
        The network (measured through a float64 copy; left unchanged). It must have a linear head
        (``linear_depth`` ≥ 1) and no biases.
    data : TensorData
        Its training set (one-hot targets).
    regularization : Regularization
        Its λ's (and λ_H, f).
    epoch : int
        Recorded in the result.
    warm_start : Parameters, optional
        A head optimum of an earlier record (same widths): L-BFGS also starts from it.
    tolerance, max_iterations
        Of the L-BFGS solves of the head (:func:`ufm.solvers.solve`).

    Returns
    -------
    (record, head_optimum)
        The :class:`GapRecord` and the solved head parameters (the next ``warm_start``).

    Raises
    ------
    ValueError
        Targets that are not one-hot, a network with biases, a non-positive head λ.
    """
    if not isinstance(data, TensorData):
        raise TypeError(f"data must be a fullnet.data.TensorData, got {type(data).__name__}")
    if not isinstance(regularization, Regularization):
        raise TypeError("regularization must be a fullnet.objective.Regularization, got "
                        f"{type(regularization).__name__}")
    labels = _check_one_hot(data)
    num_classes = data.num_classes
    measured, features = _measured_features(model, data, batch_norm="batch")
    head, trained = linear_head_of(measured, features, labels, num_classes, regularization)
    lambdas = list(head.lam)
    if any(value <= 0 for value in lambdas):
        raise ValueError(f"the head's λ's must be > 0 for an optimum, got {lambdas}")
    head_loss = float(head.value_and_gradient(trained)[0])
    starts = [trained]
    if warm_start is not None and [np.shape(w) for w in warm_start.weights] == [
            np.shape(w) for w in trained.weights]:
        starts.append(warm_start)
    best = None
    for start in starts:
        solution = solve(head, "lbfgs", initial=start, tolerance=tolerance,
                         max_iterations=max_iterations, predicted=None)
        if best is None or solution.loss < best.loss:
            best = solution
    optimum = float(min(best.loss, head_loss))
    gaps: dict[str, float | None] = dict.fromkeys(GAP_NAMES)
    gaps["head_suboptimality"] = _relative(head_loss, optimum)

    weights = [np.asarray(weight) for weight in trained.weights]
    solved = [np.asarray(weight) for weight in best.parameters.weights]
    product = solved[-1]
    for weight in reversed(solved[:-1]):
        product = product @ weight
    fixed = np.asarray(head.features)
    _, predicted, _ = predicted_head_structure(product, fixed, labels, num_classes, lambdas,
                                               rank_tolerance=1e-9)
    errors = []
    for weight, values in zip(weights, predicted):
        measured_values = np.linalg.svd(weight, compute_uv=False)
        expected = np.zeros_like(measured_values)
        count = min(len(values), expected.size)
        expected[:count] = values[:count]
        scale = float(np.linalg.norm(expected))
        if scale > 0:
            errors.append(float(np.linalg.norm(measured_values - expected)) / scale)
    gaps["singular_values"] = max(errors) if errors else None

    balance, relative, scales = [], [], []
    for lower, upper in zip(weights[:-1], weights[1:]):
        difference = upper.T @ upper - lower @ lower.T
        norm = float(np.linalg.norm(difference, 2))
        balance.append(norm)
        outer = float(np.linalg.norm(lower @ lower.T, 2))
        scales.append(outer)
        relative.append(norm / outer if outer > 0 else None)
    defined = [value for value in relative if value is not None]
    gaps["head_balancedness"] = max(defined) if defined else None

    view_loss = bound = feature_pull = backbone_decay = None
    view, _ = unconstrained_features_view(measured, regularization, labels, num_classes)
    if view is not None:
        row = _view_rows(view, measured, features, labels, _numpy(data.targets))[0]
        view_loss, bound = row.measured, row.predicted
        if view.is_global_optimum and bound and bound > 0:
            gaps["network_ufm_gap"] = _relative(view_loss, bound)
            if view.feature_layer == measured.nonlinear_depth:
                gaps["feature_gap"] = _relative(view_loss - (head_loss - optimum), bound)
        free = _numpy(features.inputs if view.feature_layer == 0
                      else features.post_activations[view.feature_layer - 1])
        gaps["nc1_features"] = _metric(nc1_trace_ratio_uncentered, free, labels, num_classes=num_classes)
        output, targets = _numpy(features.output), _numpy(data.targets)
        feature_pull = (float(np.sum((output - targets) * output)) / output.shape[1]
                        + view.lam_h * float(np.sum(free**2)))
        layer = view.feature_layer
        if 1 <= layer <= measured.nonlinear_depth and measured.describe().get("activation") == "relu":
            producer = _numpy(measured.weight_matrices()[layer - 1])
            backbone_decay = regularization.layer_lambdas[layer - 1] * float(np.sum(producer**2))
    last = _numpy(features.inputs if measured.depth == 1 else features.post_activations[-2])
    classifier = weights[-1]
    gaps["nc1_last"] = _metric(nc1_trace_ratio_uncentered, last, labels, num_classes=num_classes)
    gaps["nc2_last"] = _metric(nc2_orthogonal_frame_distance, last, labels, num_classes=num_classes)
    gaps["nc3_last"] = _metric(nc3_self_duality_distance, last, labels, weights=classifier,
                               num_classes=num_classes)
    record = GapRecord(epoch=int(epoch), head_loss=head_loss, head_optimum=optimum,
                       view_loss=view_loss, ufm_bound=bound, balancedness_op=balance,
                       balancedness_scale=scales,
                       feature_pull=feature_pull, backbone_decay=backbone_decay, gaps=gaps)
    return record, best.parameters


class GapTracker:
    """Records :func:`measure_gaps` during :func:`fullnet.training.train`, with the J12 envelope.

    Pass ``on_step=tracker.on_step, on_snapshot=tracker.on_snapshot`` to ``train`` (or to a
    :class:`fullnet.training.Trainer`). ``on_step`` keeps the trainer and, after every optimizer
    step k → k+1 with step size η and λ of the pair, advances the envelope of each consecutive
    linear head pair (J7, J12, for equal λ's on the pair and no momentum; NaN otherwise)

        E_l(k+1) = (1 − ηλ)²E_l(k) + η²‖g_{l+1}ᵀg_{l+1} − g_lg_lᵀ‖_op,

    started at the first step's measured ‖D_l‖_op (the recursion bounds ‖D_l‖ from any start);
    g are the data gradients of the step (``parameter.grad``). ``on_snapshot`` measures the gaps at
    each snapshot taken after the first step (the snapshot at epoch 0 comes before any step).

    Parameters
    ----------
    tolerance, max_iterations
        Of the head solves (:func:`measure_gaps`).
    envelope : bool
        Accumulate the J12 envelope (one operator norm of a p_l×p_l matrix per pair and step).
    final_only : bool
        Measure only at the last snapshot of the run (``trainer.epochs``), e.g. for a sweep.

    Attributes
    ----------
    records : list of GapRecord
    """

    def __init__(self, *, tolerance: float = 1e-10, max_iterations: int = 5000,
                 envelope: bool = True, final_only: bool = False) -> None:
        self.track_envelope = bool(envelope)
        self.final_only = bool(final_only)
        self.tolerance = float(tolerance)
        self.max_iterations = int(max_iterations)
        self.records: list[GapRecord] = []
        self._trainer: Any = None
        self._optimum: Parameters | None = None
        self._envelope: list[float] | None = None

    def _head_pairs(self, trainer: Any) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        model = trainer.model
        weights = model.weight_matrices()[model.nonlinear_depth:]
        lambdas = trainer.regularization.layer_lambdas[model.nonlinear_depth:]
        return [(weights[i], weights[i + 1], lambdas[i] if lambdas[i] == lambdas[i + 1] else math.nan)
                for i in range(len(weights) - 1)]

    def _step_size(self, trainer: Any, parameter: torch.Tensor) -> float:
        """η of the step just taken; NaN with momentum, under which J7 does not hold."""
        for group in trainer.optimizer.param_groups:
            if any(item is parameter for item in group["params"]):
                return math.nan if group.get("momentum", 0.0) else float(group["lr"])
        raise ValueError("the parameter is in no optimizer group")

    @torch.no_grad()
    def on_step(self, trainer: Any) -> None:
        """After an optimizer step: keep the trainer and advance the J12 envelope."""
        self._trainer = trainer
        if not self.track_envelope:
            return
        pairs = self._head_pairs(trainer)
        if self._envelope is None:
            self._envelope = [
                float(torch.linalg.matrix_norm((upper.T @ upper - lower @ lower.T).double(), ord=2))
                for lower, upper, _ in pairs]
            return
        for index, (lower, upper, lam) in enumerate(pairs):
            if math.isnan(lam) or lower.grad is None or upper.grad is None:
                self._envelope[index] = math.nan
                continue
            rate = self._step_size(trainer, lower)
            g_lower, g_upper = lower.grad.double(), upper.grad.double()
            bracket = float(torch.linalg.matrix_norm(g_upper.T @ g_upper - g_lower @ g_lower.T, ord=2))
            self._envelope[index] = (1.0 - rate * lam) ** 2 * self._envelope[index] + rate**2 * bracket

    def on_snapshot(self, snapshot: Any) -> None:
        """At a snapshot after the first step: measure and append a :class:`GapRecord`."""
        trainer = self._trainer
        if trainer is None or (self.final_only and snapshot.epoch != trainer.epochs):
            return
        record, self._optimum = measure_gaps(
            trainer.model, trainer.data, trainer.regularization, epoch=snapshot.epoch,
            warm_start=self._optimum, tolerance=self.tolerance, max_iterations=self.max_iterations,
        )
        record.envelope_op = None if self._envelope is None else list(self._envelope)
        self.records.append(record)

    def series(self) -> dict[str, dict[str, list]]:
        """Name → ``{"epochs": [...], "values": [...]}`` of every gap that was defined throughout."""
        result = {}
        for name in GAP_NAMES:
            values = [record.gaps.get(name) for record in self.records]
            if values and all(value is not None for value in values):
                result[name] = {"epochs": [record.epoch for record in self.records],
                                "values": [float(value) for value in values]}
        return result

    def envelope_series(self) -> dict[str, list] | None:
        """The J12 envelope normalized like ``head_balancedness``: max_l envelope_l/‖W_lW_lᵀ‖_op
        at each record (an upper bound of ``head_balancedness`` wherever J12 holds)."""
        if not self.records or self.records[0].envelope_op is None:
            return None
        values = []
        for record in self.records:
            ratios = [envelope / scale
                      for envelope, scale in zip(record.envelope_op, record.balancedness_scale)
                      if scale > 0 and math.isfinite(envelope)]
            if not ratios:
                return None
            values.append(max(ratios))
        return {"epochs": [record.epoch for record in self.records], "values": values}


@dataclass
class GapSummary:
    """Whether one recorded gap closed.

    Attributes
    ----------
    name : str
    first, last : float
        The gap at the first and the last record.
    fall : float
        first/last (∞ when last = 0).
    threshold : float
        The value below which the gap counts as closed.
    closed : bool
        ``last ≤ threshold`` and ``fall ≥ min_fall``.
    late_fall : float
        The fall over the end of the run: the gap at the last record at or before
        epoch_last − window, over the last; > 1 while the gap still shrinks.
    window : int
    late_epochs : int
        The epochs ``late_fall`` spans (≥ ``window``; 0 when no record lies that early).
    """

    name: str
    first: float
    last: float
    fall: float
    threshold: float
    min_fall: float
    closed: bool
    late_fall: float
    window: int
    late_epochs: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def gap_summary(name: str, epochs: Sequence[int], values: Sequence[float], *, threshold: float,
                min_fall: float = 10.0, window: int | None = None) -> GapSummary:
    """Summarize a gap series: its fall first/last, whether it ended below ``threshold``, and its
    fall over the last ``window`` epochs (default: the last half of the run)."""
    if len(epochs) != len(values) or len(values) < 2:
        raise ValueError(f"epochs and values must have the same length ≥ 2, got {len(epochs)} and "
                         f"{len(values)}")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    first, last = abs(float(values[0])), abs(float(values[-1]))
    fall = math.inf if last == 0 else first / last
    end = int(epochs[-1])
    window = max(1, end // 2) if window is None else int(window)
    earlier = [(int(e), abs(float(v))) for e, v in zip(epochs, values) if e <= end - window]
    late_fall = (math.inf if last == 0 else earlier[-1][1] / last) if earlier else math.nan
    return GapSummary(name=name, first=first, last=last, fall=fall, threshold=float(threshold),
                      min_fall=float(min_fall), closed=last <= threshold and fall >= min_fall,
                      late_fall=late_fall, window=window,
                      late_epochs=end - earlier[-1][0] if earlier else 0)


__all__ = ["GAP_NAMES", "GapRecord", "GapSummary", "GapTracker", "gap_summary", "measure_gaps"]
