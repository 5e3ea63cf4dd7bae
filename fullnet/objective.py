"""The training objective of a full network in the package's convention (docs/theory.md §1.2, §2(e)).

    Φ(θ) = (1/(2N))‖F − Y‖_F² + Σ_l (λ_l/2)‖W_l‖_F² + (λ_B/2)Σ_j‖B_j‖_F² + (λ_H/2)‖H₁‖_F²,

F ∈ R^{K×N} the output, W_1..W_L the layer stack's weight matrices with per-layer λ_l, B_j the
backbone's weight tensors (convolution kernels) with λ_B, and H₁ the features of one chosen
layer (a ResNet's backbone output by default), penalized as a **sum over samples** (§1.2).
Biases and batch-norm parameters are unregularized unless asked.

On a minibatch ℬ of B samples the objective is
(1/(2B))‖F_ℬ − Y_ℬ‖² + (λ_H/2)(N/B)Σ_{i∈ℬ}‖h_i‖² + the weight penalties, whose expectation over
uniform batches is Φ (docs/theory.md §1.3). Gradient descent θ ← θ − η∇Φ updates a weight block as
W ← (1 − ηλ)W − η∇_W(data term): :func:`parameter_groups` gives the optimizer these λ as
``weight_decay`` in torch's parameter-group layout (the data term is computed in the package's
convention, so ``lr`` and ``weight_decay`` are η and λ, see
:func:`ufm.conventions.to_paper_convention` with ``reduction="paper"``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .architectures import LayerFeatures


@dataclass
class Regularization:
    """Penalty coefficients of Φ.

    Attributes
    ----------
    layer_lambdas : list of float
        λ_1, …, λ_L, one per weight matrix of the layer stack.
    backbone_lambda : float
        λ_B of the backbone's weight tensors (ignored for an MLP).
    feature_penalty : float
        λ_H of (λ_H/2)‖H₁‖_F² (sum over samples).
    feature_layer : int
        0: the stack input Z_0 (a ResNet's backbone output); l ≥ 1: the post-activation Z_l.
    one_dimensional_lambda : float
        λ of biases and batch-norm parameters (0: unregularized, docs/theory.md §1.2).
    """

    layer_lambdas: list[float]
    backbone_lambda: float = 0.0
    feature_penalty: float = 0.0
    feature_layer: int = 0
    one_dimensional_lambda: float = 0.0

    def __post_init__(self) -> None:
        values = [*self.layer_lambdas, self.backbone_lambda, self.feature_penalty,
                  self.one_dimensional_lambda]
        for value in values:
            if not (isinstance(value, (int, float)) and value >= 0 and value == value):
                raise ValueError(f"penalty coefficients must be numbers >= 0, got {value!r}")
        if self.feature_layer < 0:
            raise ValueError(f"feature_layer must be >= 0, got {self.feature_layer}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stack_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    weights = list(model.weight_matrices())
    identities = {id(weight) for weight in weights}
    others = [
        parameter for parameter in model.stack.parameters() if id(parameter) not in identities
    ]
    return weights, others


def parameter_groups(model: nn.Module, regularization: Regularization,
                     learning_rate: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups (torch's layout), one per penalty coefficient, with a ``name``.

    Groups: ``W1`` … ``WL`` (λ_l), ``backbone`` (weight tensors with ≥ 2 dimensions, λ_B), and
    ``one_dimensional`` (biases, batch-norm scales and shifts, λ = ``one_dimensional_lambda``).
    Empty groups are left out.

    Raises
    ------
    ValueError
        If the number of λ_l differs from the number of weight matrices.
    """
    weights, stack_others = _stack_parameters(model)
    if len(regularization.layer_lambdas) != len(weights):
        raise ValueError(
            f"regularization.layer_lambdas must have one value per weight matrix "
            f"({len(weights)}), got {len(regularization.layer_lambdas)}"
        )
    groups: list[dict[str, Any]] = [
        {"name": f"W{index + 1}", "params": [weight], "weight_decay": float(lam),
         "lr": float(learning_rate)}
        for index, (weight, lam) in enumerate(zip(weights, regularization.layer_lambdas))
    ]
    backbone = list(model.backbone_parameters())
    backbone_tensors = [parameter for parameter in backbone if parameter.dim() >= 2]
    one_dimensional = [parameter for parameter in backbone if parameter.dim() < 2] + stack_others
    if backbone_tensors:
        groups.append({"name": "backbone", "params": backbone_tensors,
                       "weight_decay": float(regularization.backbone_lambda),
                       "lr": float(learning_rate)})
    if one_dimensional:
        groups.append({"name": "one_dimensional", "params": one_dimensional,
                       "weight_decay": float(regularization.one_dimensional_lambda),
                       "lr": float(learning_rate)})
    counted = sum(len(group["params"]) for group in groups)
    total = len(list(model.parameters()))
    if counted != total:  # pragma: no cover - a model with parameters outside backbone and stack
        raise ValueError(f"parameter groups cover {counted} of the model's {total} parameters")
    return groups


def penalized_features(features: LayerFeatures, layer: int) -> torch.Tensor:
    """The features (d, N) that carry the λ_H penalty: Z_0 for ``layer = 0``, else Z_layer."""
    if layer == 0:
        return features.inputs
    if layer > features.depth:
        raise ValueError(f"feature layer must lie in 0..{features.depth}, got {layer}")
    return features.post_activations[layer - 1]


def data_term(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(1/(2B))‖F − Y‖_F² for outputs F in torch's layout (B, K) and targets Y (K, B)."""
    if outputs.dim() != 2 or targets.dim() != 2 or outputs.shape[::-1] != targets.shape:
        raise ValueError(
            f"outputs (B, K) and targets (K, B) must match, got {tuple(outputs.shape)} and "
            f"{tuple(targets.shape)}"
        )
    return 0.5 * (outputs.T - targets).pow(2).sum() / outputs.shape[0]


@dataclass
class ObjectiveTerms:
    """The parts of Φ (floats).

    Attributes
    ----------
    objective : float
        Φ.
    data_term : float
        (1/(2N))‖F − Y‖_F².
    layer_penalties : list of float
        (λ_l/2)‖W_l‖_F², l = 1..L.
    backbone_penalty, feature_penalty, one_dimensional_penalty : float
    fit_error : float
        ‖F − Y‖_F (ε1 of docs/theory.md §5, ERR of §3).
    """

    objective: float
    data_term: float
    layer_penalties: list[float] = field(default_factory=list)
    backbone_penalty: float = 0.0
    feature_penalty: float = 0.0
    one_dimensional_penalty: float = 0.0
    fit_error: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def objective_terms(
    model: nn.Module,
    features: LayerFeatures,
    targets: torch.Tensor,
    regularization: Regularization,
) -> ObjectiveTerms:
    """Every term of Φ on the full data set, in the precision of ``features`` (use float64).

    Parameters
    ----------
    model : PyramidalMLP or ResNet20
    features : LayerFeatures
        Of all N training samples (columns).
    targets : torch.Tensor, shape (K, N)
    regularization : Regularization
    """
    dtype = features.output.dtype
    with torch.no_grad():
        residual = features.output - targets.to(dtype)
        squared = float(residual.pow(2).sum())
        count = features.output.shape[1]
        data = 0.5 * squared / count
        layers = [
            0.5 * float(lam) * float(weight.detach().to(dtype).pow(2).sum())
            for weight, lam in zip(model.weight_matrices(), regularization.layer_lambdas)
        ]
        backbone = 0.5 * regularization.backbone_lambda * sum(
            float(parameter.detach().to(dtype).pow(2).sum())
            for parameter in model.backbone_parameters() if parameter.dim() >= 2
        )
        _, stack_others = _stack_parameters(model)
        one_dimensional = 0.5 * regularization.one_dimensional_lambda * sum(
            float(parameter.detach().to(dtype).pow(2).sum())
            for parameter in [*stack_others,
                              *[p for p in model.backbone_parameters() if p.dim() < 2]]
        )
        feature = 0.0
        if regularization.feature_penalty > 0:
            chosen = penalized_features(features, regularization.feature_layer)
            feature = 0.5 * regularization.feature_penalty * float(chosen.pow(2).sum())
    total = data + sum(layers) + backbone + feature + one_dimensional
    return ObjectiveTerms(
        objective=total,
        data_term=data,
        layer_penalties=layers,
        backbone_penalty=backbone,
        feature_penalty=feature,
        one_dimensional_penalty=one_dimensional,
        fit_error=squared ** 0.5,
    )


__all__ = [
    "ObjectiveTerms",
    "Regularization",
    "data_term",
    "objective_terms",
    "parameter_groups",
    "penalized_features",
]
