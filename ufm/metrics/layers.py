"""Every per-layer metric of a network or a solver's solution, as one table: :func:`layer_report`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..arrays import as_float64_matrix, check_positive_scalar
from ..labels import validate_labels
from ..statistics import ClassStatistics
from ..streaming import check_features_and_labels, class_statistics
from .common import METRIC_IDS, UndefinedMetricError, _check_bias, _columns, _output_pass
from .rank import condition_number_nonzero, numerical_rank
from .nc3 import nc3_cosine_alignment, nc3_self_duality_distance, nc3_span_residual
from .neg import _negativity, _second_moment_if_known
from .bal import _balancedness_from_grams, _gram_rows, _symmetric_norms
from .report import _check_undefined, _class_metrics, _cosine_pair, _evaluate


@dataclass(frozen=True)
class LayerRow:
    """Metrics of one layer's features (post- or pre-activation).

    Attributes
    ----------
    layer : int
        l = 1..L (docs/theory.md numbering: features[0] is H₁).
    kind : str
        "post" (H_l, the input of W_l) or "pre" (H̃_l = W_{l−1}H_{l−1}).
    width : int
        d_l.
    metrics : dict
        Metric ID → value, None where the metric does not apply or is undefined.
    """

    layer: int
    kind: str
    width: int
    metrics: dict[str, float | int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """{"layer", "kind", "width", then the metrics by ID}."""
        return {"layer": self.layer, "kind": self.kind, "width": self.width, **self.metrics}


def _format_value(value: Any, precision: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{precision}g}"


@dataclass(frozen=True)
class LayerReport:
    """Per-layer DNC metrics (docs/theory.md §3, "Per-layer DNC metrics") as one table.

    Attributes
    ----------
    rows : tuple of LayerRow
        One row per layer and kind, in layer order (a layer's "pre" row before its "post" row).
    totals : dict
        Network-level values: ``ERR``, ``ERR.data`` (of W_LH_L + b), ``BAL.scalar`` (spread of
        λ_j‖θ_j‖², with H₁ first when ``feature_decay`` is given) and ``BAL.weighted`` of the
        first pair (λ_1W₁ᵀW₁ − λ_HH₁H₁ᵀ); absent where not computed.
    notes : tuple of str
        Why a metric is None where its denominator was zero.
    """

    rows: tuple[LayerRow, ...]
    totals: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dictionary per row (see :meth:`LayerRow.to_dict`)."""
        return [row.to_dict() for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        """{"rows": [...], "totals": {...}, "notes": [...]}."""
        return {"rows": self.to_dicts(), "totals": dict(self.totals), "notes": list(self.notes)}

    def to_json(self, indent: int | None = None) -> str:
        """JSON text of :meth:`to_dict` (an infinite NC2.kappa is written as ``Infinity``)."""
        return json.dumps(self.to_dict(), indent=indent)

    def columns(self) -> list[str]:
        """Metric IDs with a value in at least one row, in :data:`METRIC_IDS` order."""
        return [
            key
            for key in METRIC_IDS
            if any(row.metrics.get(key) is not None for row in self.rows)
        ]

    def format_table(self, columns: Sequence[str] | None = None, precision: int = 4) -> str:
        """Aligned text table: one line per row, "–" where a metric is missing.

        Parameters
        ----------
        columns : sequence of str, optional
            Metric IDs to show (default :meth:`columns`).
        precision : int
            Significant digits.
        """
        keys = list(self.columns() if columns is None else columns)
        header = ["layer", "kind", "d", *keys]
        body = [
            [str(row.layer), row.kind, str(row.width)]
            + [_format_value(row.metrics.get(key), precision) for key in keys]
            for row in self.rows
        ]
        widths = [max(len(line[j]) for line in [header, *body]) for j in range(len(header))]
        lines = [
            "  ".join(cell.rjust(width) for cell, width in zip(line, widths))
            for line in [header, *body]
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        for key, value in self.totals.items():
            if isinstance(value, (list, tuple)):
                shown = "(" + ", ".join(_format_value(v, precision) for v in value) + ")"
            else:
                shown = _format_value(value, precision)
            lines.append(f"{key} = {shown}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def _layer_statistics(matrix: Any, label_array: np.ndarray | None, k: int) -> ClassStatistics:
    """The statistics themselves, or those of a feature matrix (d×d scatter when cheaper)."""
    if isinstance(matrix, ClassStatistics):
        return matrix
    return class_statistics(matrix, label_array, k, within="auto")


def layer_report(
    features: Sequence[Any],
    labels: Any = None,
    weights: Sequence[Any] | None = None,
    *,
    pre_activations: Sequence[Any | None] | None = None,
    bias: Any = None,
    weight_decays: Sequence[float] | None = None,
    feature_decay: float | None = None,
    rank_rtol: float | None = None,
    num_classes: int | None = None,
    undefined: str = "none",
    rows: bool = False,
) -> LayerReport:
    """Every per-layer metric of a network or a solver's solution, as one table.

    Layers are numbered l = 1..L as in docs/theory.md: ``features[l−1]`` = H_l (post-activation, the
    input of W_l; H₁ for a UFM) and ``weights[l−1]`` = W_l ∈ R^{d_{l+1}×d_l}, which maps H_l to the
    pre-activation H̃_{l+1}; the last weight W_L is the classifier (K rows). Per docs/theory.md §3
    ("Per-layer DNC metrics"):

    - every row (H_l, and H̃_l when given): all NC1 variants (DNC1), NC2.kappa, NC2.kappa_nz,
      NC2.orth, NC2.etf (DNC2; never assert a geometry for M₁, M̃₂), RANK of its class means;
    - "pre" rows: NEG(H̃_l);
    - "post" rows with weights: KAPPA(W_l); for l < L NC3.span(W_l, M_l) and BAL.op, BAL.fro,
      BAL.rel_op, BAL.rel_fro, BAL.diag of D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ, plus BAL.weighted
      (λ_{l+1}, λ_l) and BAL.scalar entry λ_l‖W_l‖² with ``weight_decays``; for l = L NC3.dual,
      NC3.cos, NC3.cos_min and NC4.ncc of (W_L, b) (class means centred iff a bias is given);
    - ``totals``: ERR and ERR.data of W_LH_L + b1ᵀ, BAL.scalar spread (with λ_H‖H₁‖² first when
      ``feature_decay`` is given) and BAL.weighted of (H₁, W₁).

    Parameters
    ----------
    features : sequence of arrays or tensors, shapes (d_l, N), or of ClassStatistics
        H_1, …, H_L, or their streamed statistics (:mod:`ufm.streaming`; ``labels`` may then be
        omitted): NC4.ncc, ERR and NEG need the matrices and are None (with a note) for layers
        given as statistics, as is the (H₁, W₁) BAL.weighted when H₁'s statistics lack the d×d
        scatter.
    labels : array_like, shape (N,)
        Classes 0..K-1, shared by every layer.
    weights : sequence of arrays, shapes (d_{l+1}, d_l), optional
        W_1, …, W_L (same length as ``features``; d_{L+1} = K).
    pre_activations : sequence of arrays or None, optional
        H̃_1, …, H̃_L with None where absent (H̃_1 does not exist in a DUFM).
    bias : array_like, shape (K,), optional
        Bias of the classifier.
    weight_decays : sequence of float, optional
        λ_1, …, λ_L (enables BAL.weighted and BAL.scalar).
    feature_decay : float, optional
        λ_H (adds λ_H‖H₁‖² to BAL.scalar and the (H₁, W₁) BAL.weighted).
    rank_rtol : float, optional
        Tolerance of RANK and KAPPA (default max(shape)·eps; (C) plots use 1e-3 to 1e-2).
    num_classes : int, optional
        K; by default max(labels) + 1.
    undefined : {"none", "raise"}
        A metric whose denominator is zero is None with a note (default) or raises.
    rows : bool
        Every feature and pre-activation matrix holds one sample per row, shape (N, d_l).
    """
    _check_undefined(undefined)
    if isinstance(features, (str, bytes)) or not isinstance(features, Sequence) or not features:
        raise TypeError("features must be a non-empty list of feature matrices, one per layer")
    if rows:
        features = [_columns(matrix, True) for matrix in features]
        if pre_activations is not None and not isinstance(pre_activations, (str, bytes)):
            pre_activations = [None if matrix is None else _columns(matrix, True)
                               for matrix in pre_activations]
    depth = len(features)
    streamed = [isinstance(matrix, ClassStatistics) for matrix in features]
    if pre_activations is not None and not isinstance(pre_activations, (str, bytes)):
        streamed += [isinstance(matrix, ClassStatistics) for matrix in pre_activations]
    if any(streamed) and labels is None:
        k = next(matrix for matrix in features if isinstance(matrix, ClassStatistics)).num_classes
        if num_classes is not None and int(num_classes) != k:
            raise ValueError(f"num_classes = {num_classes} but the ClassStatistics have K = {k}")
        if not all(streamed):
            raise TypeError("labels are required when some features are matrices")
        label_array = None
    else:
        label_array = validate_labels(labels, num_classes)
        k = int(num_classes) if num_classes is not None else int(label_array.max()) + 1

    def width_of(matrix: Any, name: str) -> int:
        if isinstance(matrix, ClassStatistics):
            if matrix.num_classes != k:
                raise ValueError(f"{name} has K = {matrix.num_classes} classes, expected {k}")
            if label_array is not None and not np.array_equal(
                matrix.counts, np.bincount(label_array, minlength=k)
            ):
                raise ValueError(f"{name}: its class counts differ from those of labels")
            return matrix.dimension
        return check_features_and_labels(matrix, label_array, k, features_name=name)[1]

    widths = [width_of(matrix, f"features[{j}]") for j, matrix in enumerate(features)]
    if pre_activations is not None:
        if len(pre_activations) != depth:
            raise ValueError(
                f"pre_activations must have one entry per layer ({depth}), "
                f"got {len(pre_activations)}"
            )
        for j, matrix in enumerate(pre_activations):
            if matrix is None:
                continue
            width = width_of(matrix, f"pre_activations[{j}]")
            if width != widths[j]:
                raise ValueError(
                    f"pre_activations[{j}] has d = {width} rows but features[{j}] has "
                    f"{widths[j]}"
                )
    weight_list: list[np.ndarray] = []
    if weights is not None:
        if len(weights) != depth:
            raise ValueError(
                f"weights must have one matrix per layer ({depth}, the last one the classifier), "
                f"got {len(weights)}"
            )
        for j, weight in enumerate(weights):
            matrix = as_float64_matrix(weight, f"weights[{j}]")
            expected_rows = widths[j + 1] if j + 1 < depth else k
            if matrix.shape != (expected_rows, widths[j]):
                what = "the next layer's width" if j + 1 < depth else "K (the classifier)"
                raise ValueError(
                    f"weights[{j}] must have shape ({expected_rows}, {widths[j]}) "
                    f"(rows = {what}, columns = d of features[{j}]), got {matrix.shape}"
                )
            weight_list.append(matrix)
    if weight_decays is not None:
        if weights is None or len(weight_decays) != depth:
            raise ValueError("weight_decays needs weights and one λ per weight matrix")
        decays = [
            check_positive_scalar(value, f"weight_decays[{j}]")
            for j, value in enumerate(weight_decays)
        ]
    else:
        decays = None
    bias_vector = _check_bias(bias, k) if weights is not None else None
    center = bias is not None

    rows: list[LayerRow] = []
    notes: list[str] = []
    totals: dict[str, Any] = {}
    first_stats: ClassStatistics | None = None
    for j in range(depth):
        layer = j + 1
        if pre_activations is not None and pre_activations[j] is not None:
            pre = pre_activations[j]
            stats = _layer_statistics(pre, label_array, k)
            metrics: dict[str, Any] = {}
            prefix = f"layer {layer} pre: "
            _class_metrics(stats, metrics, undefined, notes, prefix)
            metrics["RANK"] = numerical_rank(stats.means, rank_rtol)
            if isinstance(pre, ClassStatistics):
                metrics["NEG"] = None
                notes.append(f"{prefix}NEG needs the pre-activations themselves, not their statistics")
            else:
                _evaluate(
                    metrics,
                    ["NEG"],
                    lambda: _negativity(pre, _second_moment_if_known(stats)),
                    undefined,
                    notes,
                    prefix,
                )
            rows.append(LayerRow(layer, "pre", widths[j], metrics))
        stats = _layer_statistics(features[j], label_array, k)
        if j == 0:
            first_stats = stats
        metrics = {}
        prefix = f"layer {layer}: "
        _class_metrics(stats, metrics, undefined, notes, prefix)
        metrics["RANK"] = numerical_rank(stats.means, rank_rtol)
        if weight_list:
            weight = weight_list[j]
            _evaluate(
                metrics,
                ["KAPPA"],
                lambda: condition_number_nonzero(weight, rank_rtol),
                undefined,
                notes,
                prefix,
            )
            if decays is not None:
                metrics["BAL.scalar"] = decays[j] * float(np.sum(weight**2))
            if j + 1 < depth:
                following = weight_list[j + 1]
                _evaluate(
                    metrics,
                    ["NC3.span"],
                    lambda: nc3_span_residual(stats, weights=weight),
                    undefined,
                    notes,
                    prefix,
                )
                outer, inner = weight @ weight.T, following.T @ following
                _evaluate(
                    metrics,
                    ["BAL.op", "BAL.fro", "BAL.rel_op", "BAL.rel_fro", "BAL.diag"],
                    lambda: tuple(_balancedness_from_grams(outer, inner).to_dict().values()),
                    undefined,
                    notes,
                    prefix,
                )
                if decays is not None:
                    metrics["BAL.weighted"] = _symmetric_norms(
                        decays[j + 1] * inner - decays[j] * outer
                    )[1]
            else:
                _evaluate(
                    metrics,
                    ["NC3.dual"],
                    lambda: nc3_self_duality_distance(stats, weights=weight, center=center),
                    undefined,
                    notes,
                    prefix,
                )
                _evaluate(
                    metrics,
                    ["NC3.cos", "NC3.cos_min"],
                    lambda: _cosine_pair(
                        nc3_cosine_alignment(stats, weights=weight, center=center)
                    ),
                    undefined,
                    notes,
                    prefix,
                )
                if isinstance(features[j], ClassStatistics):
                    metrics["NC4.ncc"] = None
                    notes.append(f"{prefix}NC4.ncc and ERR need the features themselves, not "
                                 "their statistics")
                else:
                    agreements, residual = _output_pass(
                        features[j], stats.means, weight, bias_vector, label_array
                    )
                    metrics["NC4.ncc"] = agreements / stats.num_samples
                    totals["ERR"] = math.sqrt(residual)
                    totals["ERR.data"] = residual / (2.0 * stats.num_samples)
        rows.append(LayerRow(layer, "post", widths[j], metrics))

    if decays is not None:
        values = [decay * float(np.sum(w**2)) for decay, w in zip(decays, weight_list)]
        if feature_decay is not None and first_stats is not None:
            feature_lambda = check_positive_scalar(feature_decay, "feature_decay")
            squared_features = float(
                first_stats.within_sum_of_squares.sum()
                + np.sum(first_stats.counts * np.sum(first_stats.means**2, axis=0))
            )
            values.insert(0, feature_lambda * squared_features)
            first = weight_list[0]
            second_moment = _second_moment_if_known(first_stats)
            if second_moment is None and not isinstance(features[0], ClassStatistics):
                second_moment = _gram_rows(features[0], "features[0]")
            if second_moment is None:
                notes.append("BAL.weighted of (H₁, W₁) needs H₁H₁ᵀ: give features[0] or its "
                             "statistics with the d×d scatter")
            else:
                totals["BAL.weighted"] = _symmetric_norms(
                    decays[0] * first.T @ first - feature_lambda * second_moment
                )[1]
        mean = sum(values) / len(values)
        if mean == 0:
            if undefined == "raise":
                raise UndefinedMetricError("BAL.scalar: every λ_j‖θ_j‖² is zero")
            notes.append("BAL.scalar: every λ_j‖θ_j‖² is zero")
        else:
            totals["BAL.scalar"] = (max(values) - min(values)) / mean
            totals["BAL.scalar.values"] = tuple(values)
    elif feature_decay is not None:
        raise ValueError("feature_decay needs weight_decays")
    return LayerReport(rows=tuple(rows), totals=totals, notes=tuple(notes))
