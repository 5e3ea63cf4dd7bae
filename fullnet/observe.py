"""One snapshot of a model on a data set: objective, accuracy and every per-layer metric.

The features of every layer (docs/theory.md §2(e): Z_0, H_l = W_lZ_{l−1}, Z_l, as columns) are
computed in ``metric_dtype`` — by default with a float64 copy of the network, so that strong
collapse (NC1 ≪ 1e-7) is not hidden by float32 rounding — and measured in float64 by
:func:`ufm.metrics.layer_report` (docs/theory.md §3). Batch-normalized models are measured with the
statistics of the measured samples (the function full-batch GD optimizes) or in eval mode
(``batch_norm``).

Numbering (that of :func:`ufm.metrics.layer_report` and of D_l in docs/theory.md §1.1): row l = 1..L
holds the features Z_{l−1} that enter W_l (for l = 1 the stack input: the flattened data of an
MLP, the backbone output of a ResNet), the pre-activation H_{l−1} when Z_{l−1} = σ(H_{l−1}), and
the metrics of W_l: KAPPA(W_l); for l < L NC3.span(W_l, M) and the balancedness of
D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ (BAL.*); for l = L NC3.dual, NC3.cos, NC4.ncc of the classifier.
NEG is (A)'s negativity ‖H − σ(H)‖_op/‖H‖_op of the pre-activation, for the network's σ.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ufm.metrics import layer_report

from .architectures import LayerFeatures, compute_layer_features
from .data import TensorData
from .objective import ObjectiveTerms, Regularization, objective_terms


@dataclass
class LayerSnapshot:
    """Metrics of row l: the features Z_{l−1} entering W_l, and W_l.

    Attributes
    ----------
    layer : int
        l = 1..L.
    width : int
        p_{l−1}, the number of features.
    after_activation : bool
        Z_{l−1} = σ(H_{l−1}) (a non-linear layer precedes W_l).
    metrics : dict
        Metric ID (docs/theory.md §3, :data:`ufm.metrics.METRIC_IDS`) → value of Z_{l−1} with W_l;
        None where not applicable or undefined.
    pre_metrics : dict or None
        The same of H_{l−1} (with NEG) when ``after_activation``.
    """

    layer: int
    width: int
    after_activation: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    pre_metrics: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Snapshot:
    """Everything measured at one epoch.

    Attributes
    ----------
    epoch, step : int
        Completed epochs and optimizer steps.
    learning_rate : float
        η in force at that point.
    terms : ObjectiveTerms
        Φ and its parts on the full training set.
    accuracy : float
        Training accuracy, argmax_c F_{c,i} = y_i.
    test_accuracy : float or None
    layers : list of LayerSnapshot
        Rows l = 1..L (empty when per-layer metrics are off).
    totals : dict
        Network-level values of :func:`ufm.metrics.layer_report` (ERR, ERR.data, BAL.scalar…).
    notes : list of str
        Why a metric is None.
    """

    epoch: int
    step: int
    learning_rate: float
    terms: ObjectiveTerms
    accuracy: float
    test_accuracy: float | None
    layers: list[LayerSnapshot] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def last_nc1(self) -> float | None:
        """NC1.tr_unc of Z_{L−1}, the features entering the classifier W_L."""
        if not self.layers:
            return None
        return self.layers[-1].metrics.get("NC1.tr_unc")

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "learning_rate": self.learning_rate,
            "terms": self.terms.to_dict(),
            "accuracy": self.accuracy,
            "test_accuracy": self.test_accuracy,
            "layers": [layer.to_dict() for layer in self.layers],
            "totals": dict(self.totals),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, mapping: dict[str, Any]) -> "Snapshot":
        return cls(
            epoch=int(mapping["epoch"]),
            step=int(mapping["step"]),
            learning_rate=float(mapping["learning_rate"]),
            terms=ObjectiveTerms(**mapping["terms"]),
            accuracy=float(mapping["accuracy"]),
            test_accuracy=mapping["test_accuracy"],
            layers=[LayerSnapshot(**layer) for layer in mapping["layers"]],
            totals=dict(mapping.get("totals", {})),
            notes=list(mapping.get("notes", [])),
        )

    def flat(self) -> dict[str, Any]:
        """One CSV row: scalars, ``layer_penalty_l``, ``L{l}_{ID}`` and ``L{l}_pre_{ID}``."""
        row: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.step,
            "learning_rate": self.learning_rate,
            "objective": self.terms.objective,
            "data_term": self.terms.data_term,
            "fit_error": self.terms.fit_error,
            "backbone_penalty": self.terms.backbone_penalty,
            "feature_penalty": self.terms.feature_penalty,
            "one_dimensional_penalty": self.terms.one_dimensional_penalty,
            "accuracy": self.accuracy,
            "test_accuracy": self.test_accuracy,
        }
        for index, value in enumerate(self.terms.layer_penalties, start=1):
            row[f"layer_penalty_{index}"] = value
        for key, value in self.totals.items():
            if not isinstance(value, (list, tuple)):
                row[key] = value
        for layer in self.layers:
            for name, value in layer.metrics.items():
                row[f"L{layer.layer}_{name}"] = value
            for name, value in (layer.pre_metrics or {}).items():
                row[f"L{layer.layer}_pre_{name}"] = value
        return row


def negativity_of(pre_activations: torch.Tensor, activation: nn.Module) -> float | None:
    """NEG = ‖H − σ(H)‖_op / ‖H‖_op (docs/theory.md §3) for any σ, in float64; None if H = 0."""
    values = pre_activations.detach().to(torch.float64)
    denominator = float(torch.linalg.matrix_norm(values, ord=2))
    if denominator == 0.0:
        return None
    return float(torch.linalg.matrix_norm(values - activation(values), ord=2)) / denominator


def layer_metrics(
    features: LayerFeatures,
    labels: torch.Tensor,
    weights: list[torch.Tensor],
    num_classes: int,
    regularization: Regularization,
    *,
    activation: nn.Module,
    rank_tolerance: float | None = 1e-3,
) -> tuple[list[LayerSnapshot], dict[str, Any], list[str]]:
    """Rows l = 1..L, totals and notes of :func:`ufm.metrics.layer_report` for a layer stack.

    ``features[l−1]`` = Z_{l−1}, ``pre_activations[l−1]`` = H_{l−1} when l − 1 ≤ L1 (and
    l ≥ 2), ``weights`` = W_1..W_L, ``weight_decays`` = λ_l, ``feature_decay`` = λ_H when the
    penalty is on Z_0. For a σ other than ReLU, NEG is recomputed with :func:`negativity_of`.
    """
    depth = features.depth
    inputs = [features.inputs] + list(features.post_activations[:-1])
    pre = [None] + [
        features.pre_activations[index] if index < features.nonlinear_depth else None
        for index in range(depth - 1)
    ]
    feature_decay = None
    if regularization.feature_penalty > 0 and regularization.feature_layer == 0:
        feature_decay = regularization.feature_penalty
    report = layer_report(
        inputs, labels, weights,
        pre_activations=pre,
        weight_decays=regularization.layer_lambdas,
        feature_decay=feature_decay,
        rank_rtol=rank_tolerance,
        num_classes=num_classes,
        undefined="none",
    )
    rows: dict[int, LayerSnapshot] = {}
    for row in report.rows:
        index = row.layer
        snapshot = rows.setdefault(
            index, LayerSnapshot(layer=index, width=row.width, after_activation=pre[index - 1] is not None)
        )
        values = {key: _plain(value) for key, value in row.metrics.items()}
        if row.kind == "pre":
            if not isinstance(activation, nn.ReLU):
                values["NEG"] = negativity_of(pre[index - 1], activation)
            snapshot.pre_metrics = values
        else:
            snapshot.metrics = values
    totals = {key: _plain(value) for key, value in report.totals.items()}
    return [rows[index] for index in sorted(rows)], totals, list(report.notes)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def accuracy(outputs_by_column: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of columns whose largest entry is at the label (ties: lowest index)."""
    return float((outputs_by_column.argmax(dim=0) == labels).double().mean())


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


def measurement_model(model: nn.Module, dtype: torch.dtype, *, copy_always: bool = False) -> nn.Module:
    """The model itself if its parameters already have ``dtype`` (and no copy is asked), else a
    converted copy."""
    parameter = next(model.parameters())
    if parameter.dtype == dtype and not copy_always:
        return model
    return copy.deepcopy(model).to(dtype=dtype)


def observe(
    model: nn.Module,
    data: TensorData,
    regularization: Regularization,
    *,
    epoch: int = 0,
    step: int = 0,
    learning_rate: float = float("nan"),
    test_data: TensorData | None = None,
    metric_dtype: torch.dtype = torch.float64,
    chunk_size: int | None = None,
    rank_tolerance: float = 1e-3,
    per_layer: bool = True,
    batch_norm: str = "batch",
) -> Snapshot:
    """Measure ``model`` on ``data``: Φ and its parts, accuracy, and per-layer metrics.

    Parameters
    ----------
    model : PyramidalMLP or ResNet20
        Left unchanged (its training/eval mode is restored).
    data : TensorData
        The training set (all N samples).
    regularization : Regularization
        The λ's of Φ.
    epoch, step : int
    learning_rate : float
    test_data : TensorData, optional
        For the test accuracy.
    metric_dtype : torch.dtype
        Precision of the feature pass (float64 by default: a float64 copy of the model).
    chunk_size : int, optional
        Samples per forward pass.
    rank_tolerance : float
    per_layer : bool
        False: objective and accuracy only.
    batch_norm : {"batch", "running"}
        Batch-normalized models only: ``"batch"`` normalizes with the statistics of the measured
        samples (of each chunk when ``chunk_size`` is set) — the function that full-batch GD
        optimizes — on a copy, so the running statistics are untouched; ``"running"`` uses the
        running statistics (eval mode), the usual choice after minibatch training.

    Returns
    -------
    Snapshot
    """
    if metric_dtype not in (torch.float32, torch.float64):
        raise TypeError(f"metric_dtype must be torch.float32 or torch.float64, got {metric_dtype}")
    if batch_norm not in ("batch", "running"):
        raise ValueError(f"batch_norm must be 'batch' or 'running', got {batch_norm!r}")
    was_training = model.training
    batch_statistics = batch_norm == "batch" and has_batch_norm(model)
    measured = measurement_model(model, metric_dtype, copy_always=batch_statistics)
    measured.train(batch_statistics)
    try:
        features = compute_layer_features(
            measured, data.inputs.to(metric_dtype), chunk_size=chunk_size
        )
        terms = objective_terms(measured, features, data.targets, regularization)
        train_accuracy = accuracy(features.output, data.labels)
        test_accuracy = None
        if test_data is not None:
            test_features = compute_layer_features(
                measured, test_data.inputs.to(metric_dtype), chunk_size=chunk_size
            )
            test_accuracy = accuracy(test_features.output, test_data.labels)
        layers: list[LayerSnapshot] = []
        totals: dict[str, Any] = {}
        notes: list[str] = []
        if per_layer:
            weights = [weight.detach() for weight in measured.weight_matrices()]
            layers, totals, notes = layer_metrics(
                features, data.labels, weights, data.num_classes, regularization,
                activation=measured.stack.activation, rank_tolerance=rank_tolerance,
            )
    finally:
        model.train(was_training)
    return Snapshot(
        epoch=int(epoch),
        step=int(step),
        learning_rate=float(learning_rate),
        terms=terms,
        accuracy=train_accuracy,
        test_accuracy=test_accuracy,
        layers=layers,
        totals=totals,
        notes=notes,
    )


__all__ = [
    "LayerSnapshot",
    "Snapshot",
    "accuracy",
    "layer_metrics",
    "has_batch_norm",
    "measurement_model",
    "negativity_of",
    "observe",
]
