"""Theory against practice: the ``ufm`` models that match a trained network, and a side-by-side table.

A network of docs/theory.md §2(e) (L1 non-linear layers, then L2 linear layers, trained on
Φ_net = (1/(2N))‖Z_L − Y‖² + Σ_l (λ_l/2)‖W_l‖² (+ (λ_H/2)‖Z_f‖², a sum over samples)) is seen
through two unconstrained-features models:

1. **Linear head with fixed features** (docs/theory.md §2(d)): Z_{L1}, the output of the last non-linear
   layer, is frozen and the L2 linear layers W_{L1+1}, …, W_L with their λ's form
   :class:`ufm.models.LinearHead`,

       Φ_head = (1/(2N))‖W_{L:L1+1}Z_{L1} − Y‖² + Σ_{l>L1} (λ_l/2)‖W_l‖².

   Its optimum is found by L-BFGS (:func:`ufm.solvers.solve`), started from the trained head and
   from a random point. By F2 it equals min_A (1/(2N))‖AZ_{L1} − Y‖² + (L2/2)(Πλ_l)^{1/L2}Σ_i
   s_i(A)^{2/L2}, which gives the closed forms used as cross-checks: ridge regression for L2 = 1,
   A* = YZᵀ(ZZᵀ + NλI)^{−1}; the nuclear-norm regression for L2 = 2, certified with a duality gap
   by :func:`ufm.convex.certify_linear_head`. At the optimum the head is a balanced chain (J9, J5):
   W_l = c_lU_{l+1}S^{1/L2}U_lᵀ with A* = USV_Aᵀ, c_l = (Πλ)^{1/(2L2)}/√λ_l, so
   s_i(W_l) = c_l s_i(A*)^{1/L2} and the class means after j head layers have norms
   (Π_{i≤j}c_i)‖S^{j/L2}V_Aᵀμ_c‖.

2. **Deep (linear or ReLU) unconstrained-features view** of the last layers, when the run has a
   feature penalty λ_H on Z_f (``training.feature_penalty``): H₁ = Z_f is treated as free and the
   L' = L − f layers W_{f+1}, …, W_L with their λ's form a deep linear UFM (no activation after
   W_{f+1}, …, W_{L−1}; docs/theory.md §2(b)) or an L'-DUFM (ReLU after each; §2(c); H₁ = Z_f ≥ 0 after a
   ReLU is the ``nonneg_H1`` variant). The penalty is a sum over samples, so for collapsed
   features it is (nλ_H/2)‖M₁‖² and the prediction depends on (n, λ_H) through nλ_H only (§1.2,
   U0). The prediction is that of §4.2–4.3 (:func:`ufm.optima.predict_deep_linear`,
   :func:`ufm.optima.predict_dufm`): L_DNC, q*, the singular values s_l, the class-mean norms and
   the BAL.scalar entries. L_DNC is the global minimum for the deep linear UFM and for the DUFM
   with K = 2 or L' = 1, so the measured Φ_view can only be ≥ L_DNC there; for the DUFM with K > 2
   and for ReLU-then-linear chains it is the value of the DNC points, a reference only (§4.5).

Every comparison is a :class:`ComparisonRow` (predicted, measured, relative error, the docs/theory.md
statement it comes from and the relation theory imposes). :func:`compare_model` works on an
in-memory model and data set, :func:`compare_run` on a run directory written by
``python -m fullnet train``; ``python -m fullnet compare RUN_DIR`` prints the table and writes
``compare.json`` there (:func:`write_comparison`, atomic).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ufm.metrics import layer_report
from ufm.models import LinearHead, Parameters
from ufm.solvers import solve

from .architectures import LayerFeatures, compute_layer_features
from .data import TensorData
from .objective import Regularization
from .observe import has_batch_norm, measurement_model, observe

COMPARISON_NAME = "compare.json"

#: Metric IDs of the per-layer table (docs/theory.md §3).
LAYER_METRIC_IDS = ("NC1.tr_unc", "NC2.kappa", "NC2.orth", "NC3.span", "NC3.dual", "NC3.cos",
                    "KAPPA", "BAL.op", "BAL.rel_op")

#: Meaning of :attr:`ComparisonRow.relation`.
RELATIONS = {
    "=": "theory predicts the measured value (equal at an optimum of the view)",
    ">=": "measured ≥ predicted must hold (the prediction is a proven minimum)",
    "<=": "measured ≤ bound must hold (an inequality of docs/theory.md)",
    "reference": "the prediction is a reference value, not a proven optimum",
}


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Numpy and torch scalars and arrays as JSON-friendly Python values (non-finite → None)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return [_plain(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def relative_error(predicted: float | None, measured: float | None) -> float | None:
    """``|measured − predicted| / |predicted|``; None when either is missing or predicted = 0."""
    if predicted is None or measured is None:
        return None
    if predicted == 0 or not (math.isfinite(predicted) and math.isfinite(measured)):
        return None
    return abs(measured - predicted) / abs(predicted)


@dataclass
class ComparisonRow:
    """One predicted quantity against its measurement on the trained network.

    Attributes
    ----------
    view : str
        ``"head"`` (the linear head on fixed features, docs/theory.md §2(d)), ``"view"`` (the deep
        unconstrained-features view of the last layers, §2(b)/(c)) or ``"network"``.
    quantity : str
        What is compared, e.g. ``"Φ_head"``, ``"s_1(W_5)"``, ``"‖μ‖ after W_4 (mean)"``.
    predicted, measured : float or None
    relative_error : float or None
        ``|measured − predicted|/|predicted|`` (None when predicted = 0: see ``absolute_error``).
    absolute_error : float or None
        ``|measured − predicted|``.
    relation : str
        A key of :data:`RELATIONS`.
    bound : float or None
        For ``"<="`` rows, the bound the measured value must not exceed.
    holds : bool or None
        For ``">="`` and ``"<="`` rows: whether the inequality holds (rounding slack 1e-12
        relative); None otherwise.
    source : str
        The docs/theory.md statement or section.
    note : str
    """

    view: str
    quantity: str
    predicted: float | None
    measured: float | None
    relation: str = "="
    bound: float | None = None
    source: str = ""
    note: str = ""
    relative_error: float | None = None
    absolute_error: float | None = None
    holds: bool | None = None

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"relation must be one of {tuple(RELATIONS)}, got {self.relation!r}")
        self.predicted = None if self.predicted is None else float(self.predicted)
        self.measured = None if self.measured is None else float(self.measured)
        self.bound = None if self.bound is None else float(self.bound)
        self.relative_error = relative_error(self.predicted, self.measured)
        if self.predicted is not None and self.measured is not None:
            self.absolute_error = abs(self.measured - self.predicted)
        if self.measured is not None:
            slack = 1e-12
            if self.relation == ">=" and self.predicted is not None:
                self.holds = self.measured >= self.predicted - slack * max(1.0, abs(self.predicted))
            elif self.relation == "<=" and self.bound is not None:
                self.holds = self.measured <= self.bound + slack * max(1.0, abs(self.bound))

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass
class LinearHeadPrediction:
    """The linear head with fixed features that matches the network, and its solved optimum.

    Attributes
    ----------
    nonlinear_depth : int
        L1; the head is W_{L1+1}, …, W_L and its fixed features are Z_{L1}.
    linear_depth : int
        L2.
    widths : list of int
        (p_{L1}, …, p_{L−1}), the input width of each head layer.
    lambdas : list of float
        λ_{L1+1}, …, λ_L.
    num_classes, num_samples : int
    measured_loss : float
        Φ_head at the trained head.
    measured_gradient_norm : float
        ‖∇Φ_head‖ at the trained head (0 at a critical point).
    optimal_loss : float
        The least Φ_head found (L-BFGS from the trained head and from a random point).
    solver : dict
        Per start: loss, gradient norm, stop reason, iterations.
    closed_form_loss : float or None
        L2 = 1: the ridge-regression value; L2 = 2: the certified nuclear-norm value (upper end
        of the certificate interval); None for L2 ≥ 3.
    certificate : dict or None
        L2 = 2: ``optimal_value``, ``dual_value``, ``duality_gap``, ``status`` of
        :func:`ufm.convex.certify_linear_head`.
    suboptimality_bound : float or None
        A proven upper bound on Φ_head(trained) − min Φ_head: for L2 = 2 the duality gap of the
        trained head, Φ_head(trained) − D(R), R = (Y − AZ)/N shrunk into the dual feasible set
        ‖RZᵀ‖_op ≤ √(λ_1λ_2) (F1 and :func:`ufm.convex.dual_lower_bound`); for L2 = 1 the
        strong-convexity bound ‖∇Φ_head‖²/(2λ); None for L2 ≥ 3.
    schatten_loss : float
        The F2 form (1/(2N))‖A*Z − Y‖² + (L2/2)(Πλ)^{1/L2}Σs_i(A*)^{2/L2} at the solved product
        A* (equals ``optimal_loss`` at a balanced optimum).
    product_singular_values : list of float
        Nonzero singular values of A* (relative tolerance 1e-9).
    singular_values : list of list of float
        Predicted nonzero singular values of each head layer, c_l·s_i(A*)^{1/L2}.
    class_mean_norms : list of list of float
        Predicted norms of the K class means after each of the L2 head layers (the last is the
        output).
    """

    nonlinear_depth: int
    linear_depth: int
    widths: list[int]
    lambdas: list[float]
    num_classes: int
    num_samples: int
    measured_loss: float
    measured_gradient_norm: float
    optimal_loss: float
    solver: dict[str, Any]
    closed_form_loss: float | None
    certificate: dict[str, Any] | None
    suboptimality_bound: float | None
    schatten_loss: float
    product_singular_values: list[float]
    singular_values: list[list[float]]
    class_mean_norms: list[list[float]]

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass
class UnconstrainedFeaturesView:
    """The deep unconstrained-features model of the last layers (docs/theory.md §2(b), (c), §4.2–4.3).

    Attributes
    ----------
    kind : str
        ``"deep_linear"``, ``"dufm"`` (ReLU after every view layer but the last) or
        ``"relu_then_linear"``.
    feature_layer : int
        f: H₁ = Z_f (0: the stack input).
    num_layers : int
        L' = L − f.
    num_classes, per_class : int
        K, n.
    lam_h : float
        λ_H (penalty of Z_f, a sum over samples).
    lam_w : list of float
        λ_{f+1}, …, λ_L.
    effective_feature_penalty : float
        nλ_H, the only way (n, λ_H) enter the prediction (U0).
    nonneg_H1 : bool
        H₁ = Z_f ≥ 0 (Z_f follows a ReLU).
    is_global_optimum : bool
        L_DNC is the proven minimum of the view (deep linear, or DUFM with K = 2 or L' = 1).
    prediction : dict
        :meth:`ufm.optima.PredictedOptimum.to_dict`.
    """

    kind: str
    feature_layer: int
    num_layers: int
    num_classes: int
    per_class: int
    lam_h: float
    lam_w: list[float]
    effective_feature_penalty: float
    nonneg_H1: bool
    is_global_optimum: bool
    prediction: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


@dataclass
class Comparison:
    """Predicted against measured for one trained network.

    Attributes
    ----------
    source : str
        The run directory, or ``"memory"``.
    epoch : int or None
        Completed epochs of the measured state.
    network : dict
        Architecture (widths, depths, activation) and Φ_net, its data term, the accuracy.
    head : LinearHeadPrediction or None
    view : UnconstrainedFeaturesView or None
    rows : list of ComparisonRow
    layer_rows : list of dict
        Per head layer and metric ID (docs/theory.md §3): the value at the solved head optimum
        (``predicted``) and on the network (``measured``).
    notes : list of str
        Why a view or a row is missing.
    """

    source: str
    epoch: int | None
    network: dict[str, Any]
    head: LinearHeadPrediction | None
    view: UnconstrainedFeaturesView | None
    rows: list[ComparisonRow] = field(default_factory=list)
    layer_rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary (non-finite floats become None)."""
        return _plain({
            "source": self.source,
            "epoch": self.epoch,
            "network": self.network,
            "head": None if self.head is None else self.head.to_dict(),
            "view": None if self.view is None else self.view.to_dict(),
            "rows": [row.to_dict() for row in self.rows],
            "layer_rows": self.layer_rows,
            "notes": list(self.notes),
            "relations": RELATIONS,
        })

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def violations(self) -> list[ComparisonRow]:
        """Rows whose inequality (``">="`` or ``"<="``) does not hold."""
        return [row for row in self.rows if row.holds is False]

    def row(self, quantity: str, view: str | None = None) -> ComparisonRow:
        """The row named ``quantity`` (in ``view`` if given); KeyError if absent."""
        for row in self.rows:
            if row.quantity == quantity and (view is None or row.view == view):
                return row
        raise KeyError(f"no comparison row {quantity!r}" + (f" in view {view!r}" if view else ""))

    def format_table(self, precision: int = 5) -> str:
        """Aligned text: the comparison rows, then the per-layer metrics, then the notes."""

        def number(value: Any) -> str:
            if value is None:
                return "–"
            if isinstance(value, bool):
                return "yes" if value else "NO"
            return f"{value:.{precision}g}"

        header = ["view", "quantity", "theory", "relation", "predicted", "measured", "rel. error",
                  "holds"]
        body = []
        for row in self.rows:
            relation = row.relation if row.relation != "<=" else f"<= {number(row.bound)}"
            body.append([row.view, row.quantity, row.source, relation, number(row.predicted),
                         number(row.measured), number(row.relative_error), number(row.holds)])
        lines = [f"comparison of {self.source} (epoch {self.epoch})"]
        network = self.network
        if "objective" in network:
            lines.append(
                f"network widths {network.get('widths')}, L1 = {network.get('nonlinear_depth')}, "
                f"L2 = {network.get('linear_depth')}, {network.get('activation')}; "
                f"Φ_net = {number(network['objective'])}, data term = "
                f"{number(network.get('data_term'))}, accuracy = {number(network.get('accuracy'))}"
            )
        lines.extend(_aligned(header, body))
        if self.layer_rows:
            lines.append("")
            lines.append("per-layer metrics of the head (docs/theory.md §3): solved optimum / network")
            keys = [key for key in LAYER_METRIC_IDS
                    if any(entry.get("metric") == key for entry in self.layer_rows)]
            layers = sorted({entry["layer"] for entry in self.layer_rows})
            table = []
            for layer in layers:
                cells = [str(layer)]
                for key in keys:
                    match = [entry for entry in self.layer_rows
                             if entry["layer"] == layer and entry["metric"] == key]
                    if match:
                        cells.append(f"{number(match[0]['predicted'])} / {number(match[0]['measured'])}")
                    else:
                        cells.append("–")
                table.append(cells)
            lines.extend(_aligned(["layer", *keys], table))
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def _aligned(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(line[j]) for line in [header, *body]) for j in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in [header, *body]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


# --------------------------------------------------------------------------------------------
# Linear algebra of the predictions
# --------------------------------------------------------------------------------------------


def balanced_factor_scales(lambdas: Sequence[float]) -> np.ndarray:
    """c_l = (Π_jλ_j)^{1/(2p)}/√λ_l, the scales of the balanced factors attaining F2.

    F2 (docs/theory.md §5): Σ_j (λ_j/2)‖A_j‖² ≥ (p/2)(Πλ_j)^{1/p}Σ_i s_i(X)^{2/p} for X = A_p⋯A_1,
    with equality at A_j = c_jU_{j+1}S^{1/p}U_jᵀ, λ_jc_j² all equal and Π_jc_j = 1.
    """
    values = np.asarray([float(value) for value in lambdas], dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or np.any(values <= 0):
        raise ValueError(f"lambdas must be a non-empty list of numbers > 0, got {list(lambdas)}")
    power = len(values)
    return np.exp(np.sum(np.log(values)) / (2 * power)) / np.sqrt(values)


def schatten_head_loss(product: np.ndarray, features: np.ndarray, targets: np.ndarray,
                       lambdas: Sequence[float]) -> float:
    """(1/(2N))‖AZ − Y‖² + (p/2)(Πλ)^{1/p}Σ_i s_i(A)^{2/p} (docs/theory.md §2(d) via F2), p = len(λ).

    Parameters
    ----------
    product : numpy.ndarray, shape (K, m)
        A = W_{L:L1+1}.
    features : numpy.ndarray, shape (m, N)
        Z_{L1}.
    targets : numpy.ndarray, shape (K, N)
    lambdas : sequence of float
        λ of each of the p factors.
    """
    count = features.shape[1]
    power = len(lambdas)
    residual = product @ features - targets
    singular = np.linalg.svd(product, compute_uv=False)
    scale = math.exp(sum(math.log(float(value)) for value in lambdas) / power)
    return float(np.sum(residual**2)) / (2.0 * count) + 0.5 * power * scale * float(
        np.sum(singular ** (2.0 / power))
    )


def ridge_head(features: np.ndarray, targets: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Closed-form optimum of a one-layer head (L2 = 1): A* = YZᵀ(ZZᵀ + NλI)^{−1} and its Φ_head.

    Φ = (1/(2N))‖AZ − Y‖² + (λ/2)‖A‖²; the normal equations (1/N)(AZ − Y)Zᵀ + λA = 0 give A*.
    """
    count = features.shape[1]
    gram = features @ features.T + count * lam * np.eye(features.shape[0])
    product = np.linalg.solve(gram, features @ targets.T).T
    residual = product @ features - targets
    value = float(np.sum(residual**2)) / (2.0 * count) + 0.5 * lam * float(np.sum(product**2))
    return product, value


def predicted_head_structure(
    product: np.ndarray, features: np.ndarray, labels: np.ndarray, num_classes: int,
    lambdas: Sequence[float], *, rank_tolerance: float = 1e-9,
) -> tuple[list[float], list[list[float]], list[list[float]]]:
    """Singular values of each balanced head layer and class-mean norms after each layer.

    With A* = USV_Aᵀ (rank r), the balanced chain (J5, J9, F2) is W_l = c_lU_{l+1}S^{1/p}U_lᵀ
    (U_1 = V_A, U_{p+1} = U), so s_i(W_l) = c_l s_i(A*)^{1/p} and the class mean μ_c of Z_{L1}
    is mapped after j layers to a vector of norm (Π_{i≤j}c_i)‖S^{j/p}V_Aᵀμ_c‖.

    Returns
    -------
    (product_singular_values, layer_singular_values, class_mean_norms)
        The r nonzero singular values of A*; per layer its r predicted singular values; per
        layer j = 1..p the K class-mean norms after it.
    """
    power = len(lambdas)
    left, singular, right_t = np.linalg.svd(product, full_matrices=False)
    keep = singular > rank_tolerance * (singular[0] if singular.size else 0.0)
    singular, right_t = singular[keep], right_t[keep]
    scales = balanced_factor_scales(lambdas)
    layer_values = [list(scale * singular ** (1.0 / power)) for scale in scales]
    means = class_means(features, labels, num_classes)
    projected = right_t @ means  # (r, K)
    norms = []
    cumulative = 1.0
    for index in range(power):
        cumulative *= scales[index]
        mapped = (singular[:, None] ** ((index + 1) / power)) * projected
        norms.append(list(cumulative * np.linalg.norm(mapped, axis=0)))
    return list(singular), layer_values, norms


def class_means(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """M = [μ_1, …, μ_K] (m, K): the mean of each class's columns (docs/theory.md §1.1)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    if np.any(counts == 0):
        raise ValueError("every class must have at least one sample")
    sums = np.zeros((features.shape[0], num_classes))
    np.add.at(sums.T, labels, features.T)
    return sums / counts


def _top_singular_values(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.svd(matrix, compute_uv=False)


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


def _measured_features(model: nn.Module, data: TensorData, *, batch_norm: str) -> tuple[nn.Module, LayerFeatures]:
    """A float64 copy of ``model`` (batch statistics of all samples for ``"batch"``) and its
    per-layer features on ``data``."""
    statistics = batch_norm == "batch" and has_batch_norm(model)
    measured = measurement_model(model, torch.float64, copy_always=True)
    measured.train(statistics)
    features = compute_layer_features(measured, data.inputs.to(torch.float64))
    return measured, features


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(torch.float64).cpu().numpy()


def _check_one_hot(data: TensorData) -> np.ndarray:
    labels = data.labels.detach().cpu().numpy().astype(np.int64)
    targets = _numpy(data.targets)
    expected = np.zeros_like(targets)
    expected[labels, np.arange(labels.size)] = 1.0
    if not np.array_equal(targets, expected):
        raise ValueError(
            "data.targets must be one-hot (data.targets = 'one_hot'): the ufm models of docs/theory.md "
            "§2 fit Y = I_K ⊗ 1_nᵀ"
        )
    return labels


def _gradient_norm(gradient: Parameters) -> float:
    return float(math.sqrt(sum(float(np.sum(np.asarray(block) ** 2)) for block in gradient.blocks())))


def _operator_norm(matrix: np.ndarray) -> float:
    return float(np.linalg.norm(matrix, 2)) if matrix.size else 0.0


# --------------------------------------------------------------------------------------------
# The linear head
# --------------------------------------------------------------------------------------------


def linear_head_of(
    model: nn.Module, features: LayerFeatures, labels: np.ndarray, num_classes: int,
    regularization: Regularization,
) -> tuple[LinearHead, Parameters]:
    """The :class:`ufm.models.LinearHead` of a network and the trained head as its parameters.

    Fixed features Z_{L1} (the stack input when L1 = 0), widths (p_{L1}, …, p_{L−1}), λ's
    λ_{L1+1}, …, λ_L (docs/theory.md §2(d)).

    Raises
    ------
    ValueError
        If the network has biases, or a feature penalty sits on a head layer (then Φ_net
        restricted to the head is not Φ_head).
    """
    depth = model.depth
    nonlinear = model.nonlinear_depth
    if any(getattr(layer, "bias", None) is not None for layer in model.stack.layers):
        raise ValueError("model has biases (model.bias = true): the linear head of docs/theory.md "
                         "§2(d) has none")
    if regularization.feature_penalty > 0 and regularization.feature_layer > nonlinear:
        raise ValueError(
            f"the feature penalty sits on Z_{regularization.feature_layer}, inside the linear head "
            f"(layers {nonlinear + 1}..{depth}): Φ_net restricted to the head is not Φ_head"
        )
    fixed = features.inputs if nonlinear == 0 else features.post_activations[nonlinear - 1]
    weights = [_numpy(weight) for weight in model.weight_matrices()[nonlinear:]]
    head = LinearHead(
        features=_numpy(fixed), labels=labels,
        widths=tuple(weight.shape[1] for weight in weights),
        lam=tuple(regularization.layer_lambdas[nonlinear:]), num_classes=num_classes,
    )
    return head, Parameters(features=None, weights=tuple(weights))


def suboptimality_bound(head: LinearHead, params: Parameters) -> float | None:
    """A proven upper bound on Φ_head(params) − min Φ_head (docs/theory.md §2(d), F1).

    - L2 = 1: Φ_head is λ-strongly convex, so Φ − Φ* ≤ ‖∇Φ‖²/(2λ).
    - L2 = 2: Φ_head(W) ≥ P(W_2W_1) ≥ P* ≥ D(R) for P(A) = (1/(2N))‖AZ − Y‖² + √(λ_1λ_2)‖A‖_*
      (F1) and any dual-feasible R (:func:`ufm.convex.dual_lower_bound`), so
      Φ_head(W) − P* ≤ Φ_head(W) − D(R) with R the shrunk scaled residual (Y − AZ)/N; the bound is
      tight at the optimum.
    - L2 ≥ 3: None (no convex reformulation).
    """
    value, gradient = head.value_and_gradient(params)
    lambdas = list(head.lam)
    if head.num_layers == 1:
        return _gradient_norm(gradient) ** 2 / (2.0 * lambdas[0])
    if head.num_layers != 2:
        return None
    from ufm.convex import dual_lower_bound

    features, targets = np.asarray(head.features), np.asarray(head.targets)
    product = np.asarray(params.weights[1]) @ np.asarray(params.weights[0])
    residual = (targets - product @ features) / features.shape[1]
    dual, _ = dual_lower_bound(residual, targets, math.sqrt(lambdas[0] * lambdas[1]),
                               features=features)
    return float(value) - float(dual)


def predict_linear_head(
    head: LinearHead, trained: Parameters, *, nonlinear_depth: int, tolerance: float = 1e-10,
    max_iterations: int = 5000, seed: int = 0, certify: bool = True,
) -> tuple[LinearHeadPrediction, Parameters, list[str]]:
    """Solve the linear head (docs/theory.md §2(d)) and predict its optimal structure.

    L-BFGS (:func:`ufm.solvers.solve`, ``"lbfgs"``) from the trained head and from a random point
    (``seed``); the lower value is the prediction. Cross-checks: ridge closed form (L2 = 1), the
    convex certificate (L2 = 2, ``certify``), the F2 form at the solved product.

    Returns
    -------
    (prediction, solved_parameters, notes)
    """
    notes: list[str] = []
    lambdas = list(head.lam)
    if any(value <= 0 for value in lambdas):
        raise ValueError(f"the head's λ's must be > 0 for a prediction, got {lambdas}")
    measured_loss, measured_gradient = head.value_and_gradient(trained)
    runs = {}
    best = None
    for name, options in (("from_trained", {"initial": trained}), ("from_random", {"seed": seed})):
        solution = solve(head, "lbfgs", tolerance=tolerance, max_iterations=max_iterations,
                         predicted=None, **options)
        runs[name] = {
            "loss": solution.loss, "gradient_norm": solution.gradient_norm,
            "stop_reason": solution.stop_reason, "iterations": solution.iterations,
        }
        if best is None or solution.loss < best.loss:
            best = solution
    params = best.parameters
    product = params.weights[-1]
    for weight in reversed(params.weights[:-1]):
        product = product @ weight
    features, targets = np.asarray(head.features), np.asarray(head.targets)
    closed_form, certificate = None, None
    depth = head.num_layers
    if depth == 1:
        _, closed_form = ridge_head(features, targets, lambdas[0])
    elif depth == 2 and certify:
        try:
            from ufm.convex import certify_linear_head

            result, _ = certify_linear_head(head)
            closed_form = result.optimal_value
            certificate = {
                "optimal_value": result.optimal_value, "dual_value": result.dual_value,
                "duality_gap": result.duality_gap, "status": result.status,
                "solver": result.solver, "solve_time": result.solve_time,
            }
        except (ImportError, RuntimeError, ValueError) as error:
            notes.append(f"no convex certificate for the two-layer head: {error}")
    elif depth >= 3:
        notes.append(
            f"L2 = {depth}: Φ_head is not convex in A (Schatten-2/{depth} penalty); the solved "
            "value is the best of two L-BFGS starts, not a certified optimum"
        )
    bound = suboptimality_bound(head, trained)
    schatten = schatten_head_loss(product, features, targets, lambdas)
    singular, layer_values, norms = predicted_head_structure(
        product, features, np.asarray(head.labels), head.num_classes, lambdas
    )
    prediction = LinearHeadPrediction(
        nonlinear_depth=nonlinear_depth,
        linear_depth=depth,
        widths=list(head.widths),
        lambdas=lambdas,
        num_classes=head.num_classes,
        num_samples=head.num_samples,
        measured_loss=float(measured_loss),
        measured_gradient_norm=_gradient_norm(measured_gradient),
        optimal_loss=float(best.loss),
        solver=runs,
        closed_form_loss=closed_form,
        certificate=certificate,
        suboptimality_bound=bound,
        schatten_loss=schatten,
        product_singular_values=singular,
        singular_values=layer_values,
        class_mean_norms=norms,
    )
    return prediction, params, notes


def _head_rows(
    head: LinearHead, trained: Parameters, prediction: LinearHeadPrediction,
    features: LayerFeatures, labels: np.ndarray, nonlinear: int, penalty_before: float,
    measured_objective: float,
) -> list[ComparisonRow]:
    rows: list[ComparisonRow] = []
    depth = prediction.linear_depth
    optimum = prediction.optimal_loss
    certified = depth == 1 or (prediction.certificate is not None)
    rows.append(ComparisonRow(
        "head", "Φ_head", optimum, prediction.measured_loss,
        relation=">=" if certified else "reference", source="§2(d), F2",
        note="optimum of the head on the measured Z_{L1}" + ("" if certified else
                                                               " (best of two L-BFGS starts)"),
    ))
    if prediction.suboptimality_bound is not None:
        rows.append(ComparisonRow(
            "head", "Φ_head(trained) − min Φ_head", 0.0, prediction.measured_loss - optimum,
            relation="<=", bound=prediction.suboptimality_bound,
            source="F1, §2(d)" if depth == 2 else "§2(d)",
            note="bound: the trained head's duality gap (L2 = 2) or ‖∇Φ‖²/(2λ) (L2 = 1)",
        ))
    if prediction.closed_form_loss is not None:
        label = "ridge closed form" if depth == 1 else "convex certificate (nuclear norm)"
        rows.append(ComparisonRow(
            "head", f"Φ_head: L-BFGS vs {label}", prediction.closed_form_loss, optimum,
            source="§2(d), F2" + (", F1" if depth == 2 else ""),
            note="both sides are predictions; they must agree to solver tolerance",
        ))
    rows.append(ComparisonRow(
        "head", "Φ_head: F2 form at A*", prediction.schatten_loss, optimum, source="F2",
        note="equal at a balanced optimum",
    ))
    rows.append(ComparisonRow(
        "network", "Φ_net with Z_{L1} fixed", penalty_before + optimum, measured_objective,
        relation=">=" if certified else "reference", source="§2(d), §2(e)",
        note="the non-linear layers' penalty plus the head optimum",
    ))
    # singular values of each head layer (balanced chain at the optimum: J5, J9, F2)
    rank = len(prediction.product_singular_values)
    weights = [np.asarray(weight) for weight in trained.weights]
    for index, (weight, predicted) in enumerate(zip(weights, prediction.singular_values)):
        layer = nonlinear + index + 1
        measured = _top_singular_values(weight)
        for position in range(rank):
            value = float(measured[position]) if position < measured.size else 0.0
            rows.append(ComparisonRow(
                "head", f"s_{position + 1}(W_{layer})", predicted[position], value,
                source="F2, J5", note="balanced chain c_l·s_i(A*)^{1/L2}",
            ))
        if measured.size > rank:
            rows.append(ComparisonRow(
                "head", f"s_{rank + 1}(W_{layer})", 0.0, float(measured[rank]),
                source="F2, J5", note="rank W_l = rank A* ≤ K at the optimum",
            ))
    # class-mean norms after each head layer
    num_classes = prediction.num_classes
    for index in range(depth):
        layer = nonlinear + index + 1
        measured_features = _numpy(features.post_activations[layer - 1])
        measured = np.linalg.norm(class_means(measured_features, labels, num_classes), axis=0)
        predicted = np.asarray(prediction.class_mean_norms[index])
        where = "output" if index == depth - 1 else f"Z_{layer}"
        rows.append(ComparisonRow(
            "head", f"mean ‖μ_c‖ of {where}", float(predicted.mean()), float(measured.mean()),
            source="§2(d), F2", note=f"largest per-class relative error "
            f"{float(np.max(np.abs(measured - predicted) / np.maximum(predicted, 1e-300))):.3g}",
        ))
    # balancedness at critical points (J9): λ_{l+1}W_{l+1}ᵀW_{l+1} − λ_lW_lW_lᵀ = W_{l+1}ᵀ∇_{l+1} − ∇_lW_lᵀ
    _, gradient = head.value_and_gradient(trained)
    gradients = [np.asarray(block) for block in gradient.weights]
    lambdas = prediction.lambdas
    for index in range(depth - 1):
        layer = nonlinear + index + 1
        lower, upper = weights[index], weights[index + 1]
        weighted = lambdas[index + 1] * upper.T @ upper - lambdas[index] * lower @ lower.T
        bound = (_operator_norm(upper) * float(np.linalg.norm(gradients[index + 1]))
                 + float(np.linalg.norm(gradients[index])) * _operator_norm(lower))
        if lambdas[index] == lambdas[index + 1]:
            quantity = f"‖D_{layer}‖_F"
            measured_value = float(np.linalg.norm(weighted)) / lambdas[index]
            bound /= lambdas[index]
        else:
            quantity = f"‖λ_{layer + 1}W_{layer + 1}ᵀW_{layer + 1} − λ_{layer}W_{layer}W_{layer}ᵀ‖_F"
            measured_value = float(np.linalg.norm(weighted))
        rows.append(ComparisonRow(
            "head", quantity, 0.0, measured_value, relation="<=", bound=bound, source="J9",
            note="0 at critical points; bound (‖W_{l+1}‖_op‖∇_{l+1}‖_F + ‖∇_l‖_F‖W_l‖_op)/λ",
        ))
    # J11: nonzero singular values of R = (1/N)(Y − AZ)Zᵀ equal λ·s_i(W_L)^{2−L2} (equal λ)
    if len(set(lambdas)) == 1:
        product = weights[-1]
        for weight in reversed(weights[:-1]):
            product = product @ weight
        fixed, targets = np.asarray(head.features), np.asarray(head.targets)
        residual = (targets - product @ fixed) @ fixed.T / fixed.shape[1]
        residual_values = _top_singular_values(residual)
        last_values = _top_singular_values(weights[-1])
        count = min(num_classes, residual_values.size, last_values.size, rank)
        for position in range(count):
            rows.append(ComparisonRow(
                "head", f"s_{position + 1}(R)", lambdas[0] * last_values[position] ** (2 - depth),
                float(residual_values[position]), source="J11",
                note="predicted from the measured W_L: λ·s_i(W_L)^{2−L2}, at critical points",
            ))
    return rows


def _head_layer_rows(
    head: LinearHead, trained: Parameters, solved: Parameters, labels: np.ndarray,
    nonlinear: int, rank_tolerance: float,
) -> list[dict[str, Any]]:
    """Per-layer metrics (docs/theory.md §3) of the solved head and of the trained head."""
    reports = []
    for params in (solved, trained):
        forward = head.forward(params)
        reports.append(layer_report(
            list(forward.post_activations), labels, list(params.weights),
            weight_decays=list(head.lam), rank_rtol=rank_tolerance,
            num_classes=head.num_classes, undefined="none",
        ))
    entries = []
    for predicted_row, measured_row in zip(*(report.rows for report in reports)):
        if predicted_row.kind != "post":
            continue
        layer = nonlinear + predicted_row.layer
        for key in LAYER_METRIC_IDS:
            predicted = predicted_row.metrics.get(key)
            measured = measured_row.metrics.get(key)
            if predicted is None and measured is None:
                continue
            entries.append({
                "layer": layer, "metric": key,
                "predicted": _plain(predicted), "measured": _plain(measured),
                "relative_error": relative_error(
                    None if predicted is None else float(predicted),
                    None if measured is None else float(measured),
                ),
            })
    return entries


# --------------------------------------------------------------------------------------------
# The deep unconstrained-features view
# --------------------------------------------------------------------------------------------


def unconstrained_features_view(
    model: nn.Module, regularization: Regularization, labels: np.ndarray, num_classes: int,
) -> tuple[UnconstrainedFeaturesView | None, str | None]:
    """The deep linear UFM or DUFM of the layers after the penalized features (docs/theory.md §2(b),
    (c), §4.2–4.3), or None and the reason it does not apply."""
    from ufm.optima import predict_deep_linear, predict_dufm

    if regularization.feature_penalty <= 0:
        return None, ("no feature penalty (training.feature_penalty = 0): with λ_H = 0 the "
                      "unconstrained-features view has infimum 0 and no optimum (docs/theory.md §1.2)")
    counts = np.bincount(labels, minlength=num_classes)
    if np.any(counts != counts[0]):
        return None, f"classes are unbalanced (counts {counts.tolist()}): the DUFM needs n per class"
    layer = regularization.feature_layer
    depth, nonlinear = model.depth, model.nonlinear_depth
    if layer >= depth:
        return None, f"the feature penalty sits on the output Z_{layer}: no layers follow it"
    activations = [index < nonlinear for index in range(layer, depth - 1)]  # after W_{layer+1}..W_{L−1}
    activation_name = model.stack.activation_name
    if not any(activations):
        kind = "deep_linear"
    elif activation_name != "relu":
        return None, (f"the layers after Z_{layer} use {activation_name}: only identity or ReLU "
                      "chains have a UFM counterpart")
    elif all(activations):
        kind = "dufm"
    else:
        kind = "relu_then_linear"
    lam_w = list(regularization.layer_lambdas[layer:])
    if any(value <= 0 for value in lam_w):
        return None, f"a view layer has λ = 0 ({lam_w}): the closed forms need λ > 0"
    per_class = int(counts[0])
    num_layers = depth - layer
    lam_h = regularization.feature_penalty
    predictor = predict_deep_linear if kind == "deep_linear" else predict_dufm
    # Input widths of W_{layer+1}..W_L: a bottleneck below K changes the optimum (rank-limited
    # closed forms) or, for the ReLU DUFM, leaves no DNC point (ufm.optima.predict_dufm).
    widths = [int(weight.shape[1]) for weight in model.weight_matrices()[layer:]]
    prediction = predictor(num_classes, num_layers, per_class, lam_h, lam_w, widths=widths)
    nonneg = layer >= 1 and layer <= nonlinear and activation_name == "relu"
    if layer == 0 and isinstance(getattr(model, "backbone", None), nn.Module):
        nonneg = True  # a ResNet's backbone output is an average of ReLU outputs
    is_global = kind in ("deep_linear", "dufm") and prediction.kind == "global_optimum"
    view = UnconstrainedFeaturesView(
        kind=kind, feature_layer=layer, num_layers=num_layers, num_classes=num_classes,
        per_class=per_class, lam_h=lam_h, lam_w=lam_w,
        effective_feature_penalty=per_class * lam_h, nonneg_H1=nonneg,
        is_global_optimum=is_global, prediction=prediction.to_dict(),
    )
    return view, None


def _view_rows(view: UnconstrainedFeaturesView, model: nn.Module, features: LayerFeatures,
               labels: np.ndarray, targets: np.ndarray) -> list[ComparisonRow]:
    prediction = view.prediction
    layer = view.feature_layer
    source = "§4.2" if view.kind == "deep_linear" else "§4.3"
    free = _numpy(features.inputs if layer == 0 else features.post_activations[layer - 1])
    weights = [_numpy(weight) for weight in model.weight_matrices()[layer:]]
    output = _numpy(features.output)
    count = output.shape[1]
    data = float(np.sum((output - targets) ** 2)) / (2.0 * count)
    entries = [view.lam_h * float(np.sum(free**2))] + [
        lam * float(np.sum(weight**2)) for lam, weight in zip(view.lam_w, weights)
    ]
    measured_loss = data + 0.5 * sum(entries)
    rows = [ComparisonRow(
        "view", "Φ_view = L_DNC", prediction["optimal_loss"], measured_loss,
        relation=">=" if view.is_global_optimum else "reference", source=source + ", U0",
        note=f"{view.kind}, L' = {view.num_layers}, nλ_H = {view.effective_feature_penalty:.4g}",
    )]
    q_measured = float(np.sum(output * targets)) / float(np.sum(targets**2))
    rows.append(ComparisonRow("view", "q (output ≈ qY)", prediction["q_star"], q_measured,
                              source=source, note="q = ⟨F, Y⟩/‖Y‖²"))
    if prediction["is_zero"]:
        return rows
    num_classes = view.num_classes
    for index, (weight, values) in enumerate(zip(weights, prediction["singular_values"])):
        name = layer + index + 1
        if index == 0 and view.kind != "deep_linear":
            measured = math.sqrt(float(np.sum(weight**2)) / num_classes)
            rows.append(ComparisonRow(
                "view", f"(‖W_{name}‖_F²/K)^½", values[0], measured, source="§4.3, §4.4",
                note="W₁ is fixed only through ‖W₁‖_F² = K·s_1² (β family)",
            ))
            continue
        measured = _top_singular_values(weight)[:num_classes]
        rows.append(ComparisonRow(
            "view", f"mean s_1..s_K(W_{name})", values[0], float(np.mean(measured)),
            source=source, note=f"spread s_1/s_K = {float(measured[0] / measured[-1]):.4g}",
        ))
    view_features = [free] + [_numpy(features.post_activations[index])
                              for index in range(layer, model.depth - 1)]
    for index, predicted in enumerate(prediction["class_mean_norms"]):
        if index == 0 and view.kind != "deep_linear":
            continue  # ‖μ‖₁ depends on β (§4.4)
        norms = np.linalg.norm(class_means(view_features[index], labels, num_classes), axis=0)
        name = "H₁ = Z_%d" % layer if index == 0 else f"Z_{layer + index}"
        rows.append(ComparisonRow(
            "view", f"mean ‖μ_c‖ of {name}", predicted, float(np.mean(norms)), source=source,
        ))
    names = [f"λ_H‖Z_{layer}‖²"] + [f"λ_{layer + j + 1}‖W_{layer + j + 1}‖²"
                                     for j in range(len(weights))]
    for name, predicted, measured in zip(names, prediction["balancedness"], entries):
        rows.append(ComparisonRow("view", f"BAL.scalar {name}", predicted, measured,
                                  source=source + ", D4"))
    return rows


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def compare_model(
    model: nn.Module,
    data: TensorData,
    regularization: Regularization,
    *,
    epoch: int | None = None,
    source: str = "memory",
    optimizer: str = "gd",
    tolerance: float = 1e-10,
    max_iterations: int = 5000,
    seed: int = 0,
    certify: bool = True,
    rank_tolerance: float = 1e-3,
) -> Comparison:
    """Compare a trained network with the predictions of its ``ufm`` counterparts.

    Parameters
    ----------
    model : PyramidalMLP or ResNet20
        The trained network (left unchanged; measured through a float64 copy).
    data : TensorData
        Its training set (one-hot targets).
    regularization : Regularization
        The λ's it was trained with.
    epoch : int, optional
        Recorded in the result.
    source : str
        Recorded in the result (a run directory, or ``"memory"``).
    optimizer : {"gd", "sgd"}
        How it was trained: batch-normalized models are measured with the statistics of all
        samples after ``"gd"`` and with the running statistics after ``"sgd"``.
    tolerance, max_iterations, seed
        Of the L-BFGS solves of the head (:func:`ufm.solvers.solve`).
    certify : bool
        Compute the convex certificate of a two-layer head (cvxpy).
    rank_tolerance : float
        Of the per-layer metrics (RANK, KAPPA).

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        For targets that are not one-hot, a network with biases, or a non-positive head λ.
    """
    if not isinstance(data, TensorData):
        raise TypeError(f"data must be a fullnet.data.TensorData, got {type(data).__name__}")
    if not isinstance(regularization, Regularization):
        raise TypeError(
            f"regularization must be a fullnet.objective.Regularization, got {type(regularization).__name__}"
        )
    if optimizer not in ("gd", "sgd"):
        raise ValueError(f"optimizer must be 'gd' or 'sgd', got {optimizer!r}")
    labels = _check_one_hot(data)
    num_classes = data.num_classes
    batch_norm = "batch" if optimizer == "gd" else "running"
    snapshot = observe(model, data, regularization, per_layer=False, batch_norm=batch_norm,
                       epoch=epoch or 0)
    measured, features = _measured_features(model, data, batch_norm=batch_norm)
    network = dict(model.describe()) if hasattr(model, "describe") else {}
    network.update(
        objective=snapshot.terms.objective, data_term=snapshot.terms.data_term,
        fit_error=snapshot.terms.fit_error, accuracy=snapshot.accuracy,
        layer_lambdas=list(regularization.layer_lambdas),
        feature_penalty=regularization.feature_penalty,
        feature_layer=regularization.feature_layer,
        num_samples=data.num_samples, num_classes=num_classes,
    )
    comparison = Comparison(source=source, epoch=epoch, network=network, head=None, view=None)
    nonlinear = measured.nonlinear_depth
    try:
        head, trained = linear_head_of(measured, features, labels, num_classes, regularization)
        prediction, solved, notes = predict_linear_head(
            head, trained, nonlinear_depth=nonlinear, tolerance=tolerance,
            max_iterations=max_iterations, seed=seed, certify=certify,
        )
    except ValueError as error:
        comparison.notes.append(f"no linear-head view: {error}")
    else:
        comparison.head = prediction
        comparison.notes.extend(notes)
        terms = snapshot.terms
        penalty_before = (terms.objective - terms.data_term
                          - sum(terms.layer_penalties[nonlinear:]))
        comparison.rows.extend(_head_rows(
            head, trained, prediction, features, labels, nonlinear, penalty_before, terms.objective,
        ))
        comparison.layer_rows = _head_layer_rows(head, trained, solved, labels, nonlinear,
                                                 rank_tolerance)
    view, reason = unconstrained_features_view(measured, regularization, labels, num_classes)
    if view is None:
        comparison.notes.append(f"no unconstrained-features view: {reason}")
    else:
        comparison.view = view
        comparison.rows.extend(_view_rows(view, measured, features, labels, _numpy(data.targets)))
    return comparison


class RunDirectoryError(FileNotFoundError):
    """A run directory is missing or holds no trained state; the message says what to run."""


def check_run_directory(run_directory: str | os.PathLike) -> Path:
    """``run_directory`` as a :class:`~pathlib.Path` if it looks like a finished or stopped run
    (a folder with ``config.json`` and ``checkpoint.pt`` files); reads nothing else.

    Raises
    ------
    RunDirectoryError
        The folder, its configuration or its checkpoint is missing.
    NotADirectoryError, IsADirectoryError
        The path is a file, or ``config.json``/``checkpoint.pt`` is a folder.
    """
    from .training import CHECKPOINT_NAME

    directory = Path(run_directory)
    if not directory.exists():
        raise RunDirectoryError(f"run directory {directory} does not exist")
    if not directory.is_dir():
        raise NotADirectoryError(f"run directory {directory} is a file, expected a folder written by train")
    config_path, checkpoint_path = directory / "config.json", directory / CHECKPOINT_NAME
    for path in (config_path, checkpoint_path):
        if path.is_dir():
            raise IsADirectoryError(f"run directory {directory}: {path.name} is a folder, expected a file")
    if not config_path.exists():
        raise RunDirectoryError(
            f"run directory {directory} has no config.json: it is not a fullnet run "
            "(python -m fullnet train --config FILE writes one)"
        )
    if not checkpoint_path.exists():
        raise RunDirectoryError(
            f"run directory {directory} has no {CHECKPOINT_NAME}: no trained state to compare; "
            "train it first (python -m fullnet train --config FILE)"
        )
    return directory


def load_run(run_directory: str | os.PathLike) -> tuple[Any, nn.Module, TensorData, Regularization, int]:
    """Rebuild (configuration, trained model, training data, λ's, epoch) from a run directory.

    The directory is one written by ``python -m fullnet train`` (:func:`fullnet.training.train`):
    ``config.json`` and ``checkpoint.pt`` are needed. The data are prepared as in training (same
    subset, standardization and dtype) on the CPU.

    Raises
    ------
    RunDirectoryError
        If the directory, its configuration or its checkpoint is missing.
    ConfigError
        If ``config.json`` is empty or not a valid configuration (the message names the file).
    ValueError
        If the checkpoint is damaged or does not fit the configuration.
    """
    from .config import ConfigError, RunConfig, read_mapping
    from .training import DTYPES, CHECKPOINT_NAME, build_model, load_checkpoint, load_data
    from .training import regularization_from_config

    directory = check_run_directory(run_directory)
    config_path, checkpoint_path = directory / "config.json", directory / CHECKPOINT_NAME
    try:
        config = RunConfig.from_dict(read_mapping(config_path, "configuration file"))
    except ConfigError as error:
        text = str(error)
        if not text.startswith(str(config_path)) and str(config_path) not in text:
            text = f"{config_path}: {text}"
        raise ConfigError(f"run directory {directory}: {text}") from None
    state = load_checkpoint(checkpoint_path)
    dtype = DTYPES[config.training.dtype]
    flatten = config.model.architecture == "mlp"
    data, _ = load_data(config.data, flatten=flatten, device="cpu", dtype=dtype)
    model = build_model(config.model, data.input_shape, data.num_classes).to(dtype=dtype)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as error:
        raise ValueError(
            f"run directory {directory}: {CHECKPOINT_NAME} does not fit its config.json "
            f"({one_line_error(error)})"
        ) from None
    regularization = regularization_from_config(config.training, model.depth)
    return config, model, data, regularization, int(state["epoch"])


def one_line_error(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def compare_run(run_directory: str | os.PathLike, **options: Any) -> Comparison:
    """:func:`compare_model` on the trained state of a run directory (see :func:`load_run`).

    ``options`` are passed to :func:`compare_model` (``tolerance``, ``max_iterations``, ``seed``,
    ``certify``, ``rank_tolerance``).
    """
    config, model, data, regularization, epoch = load_run(run_directory)
    comparison = compare_model(
        model, data, regularization, epoch=epoch, source=str(run_directory),
        optimizer=config.training.optimizer, **options,
    )
    comparison.network["run_name"] = config.name
    comparison.network["epochs"] = config.training.epochs
    return comparison


def write_comparison(comparison: Comparison, run_directory: str | os.PathLike) -> Path:
    """Write ``compare.json`` into ``run_directory`` atomically (temporary file, fsync, replace)."""
    from .training import atomic_write_text

    return atomic_write_text(Path(run_directory) / COMPARISON_NAME, comparison.to_json() + "\n")


__all__ = [
    "COMPARISON_NAME",
    "Comparison",
    "ComparisonRow",
    "LAYER_METRIC_IDS",
    "LinearHeadPrediction",
    "RELATIONS",
    "RunDirectoryError",
    "UnconstrainedFeaturesView",
    "balanced_factor_scales",
    "check_run_directory",
    "class_means",
    "compare_model",
    "compare_run",
    "linear_head_of",
    "load_run",
    "predict_linear_head",
    "predicted_head_structure",
    "relative_error",
    "ridge_head",
    "schatten_head_loss",
    "suboptimality_bound",
    "unconstrained_features_view",
    "write_comparison",
]
