"""Per-layer collapse reports of a model's parameters: ``ufm.models`` meets ``ufm.metrics``.

The forward pass of a model (:meth:`ufm.models.DeepUFM.forward` and friends) gives H₁…H_L and
H̃₂…H̃_L; :func:`ufm.metrics.layer_report` turns them, with the weights and the λ's, into the
per-layer table of THEORY.md §3 ("Per-layer DNC metrics").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import LayerReport, layer_report


def model_layer_report(
    model: Any, parameters: Any, *, rank_rtol: float | None = 1e-6, undefined: str = "none"
) -> LayerReport:
    """The per-layer metric table of ``parameters`` of ``model``.

    Parameters
    ----------
    model : UFM, DeepLinearUFM, DeepUFM or LinearHead
        The objective; gives the forward pass, labels and penalty weights.
    parameters : ufm.models.Parameters
        A point of the model (e.g. ``Solution.parameters``).
    rank_rtol : float, optional
        Relative tolerance of RANK and KAPPA. The default 1e-6 suits solver output, whose
        "zero" singular values are at the solver tolerance rather than at machine precision.
    undefined : {"none", "raise"}
        Passed to :func:`ufm.metrics.layer_report`.
    """
    parameters = parameters.to_numpy() if getattr(parameters, "is_torch", False) else parameters
    forward = model.forward(parameters)
    pre = [None] + [np.asarray(h) for h in forward.pre_activations[1:]]
    # penalty_weights follow the block order (H₁, W_1, …, W_L, b), skipping absent blocks.
    penalty_weights = [float(value) for value in model.penalty_weights]
    has_features = parameters.features is not None
    feature_decay = penalty_weights[0] if has_features else None
    first = 1 if has_features else 0
    weight_decays = penalty_weights[first:first + len(parameters.weights)]
    return layer_report(
        [np.asarray(h) for h in forward.post_activations],
        forward.labels,
        [np.asarray(w) for w in parameters.weights],
        pre_activations=pre,
        bias=None if parameters.bias is None else np.asarray(parameters.bias),
        weight_decays=weight_decays,
        feature_decay=feature_decay,
        rank_rtol=rank_rtol,
        num_classes=forward.num_classes,
        undefined=undefined,
    )


def output_scale(output: Any, targets: Any, *, bias: bool = False) -> float:
    """The scale q of an output F ≈ qY (THEORY.md §4.1, §4.3), by least squares.

    Without bias, q = ⟨F, Y⟩/‖Y‖². With bias the optimal output is qY + ((1 − q)/K)J_{K×N}, whose
    inner product with Y is qN + (1 − q)N/K, so q = (⟨F, Y⟩/N − 1/K)/(1 − 1/K).
    """
    output = np.asarray(output, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if output.shape != targets.shape:
        raise ValueError(f"output must have the targets' shape {targets.shape}, got {output.shape}")
    inner = float(np.sum(output * targets))
    if not bias:
        return inner / float(np.sum(targets * targets))
    num_classes, num_samples = targets.shape
    return (inner / num_samples - 1.0 / num_classes) / (1.0 - 1.0 / num_classes)
