"""The one loss convention of the package and every conversion to it (docs/theory.md §1.2–§1.3).

Every objective is

    Φ(θ) = (1/(2N))‖F(θ) − Y‖_F² + Σ_j (λ_j/2)‖θ_j‖_F²,

F ∈ R^{K×N} the output, θ_j the parameter blocks (weights, and free features H₁ in
unconstrained-features models), biases unregularized; gradient descent with step η is
θ ← θ − η∇Φ(θ).

A framework that minimizes c·‖F − Y‖_F² with coupled weight decay ``wd`` (the gradient wd·θ is
added to the loss gradient) and learning rate ``lr`` runs gradient descent on
c‖F − Y‖² + (wd/2)‖θ‖² = 2Nc·Φ, hence (docs/theory.md §1.3)

    λ = wd / (2Nc),        η = 2Nc · lr.

For a minibatch of B samples, N is replaced by B and Φ by the minibatch objective
(1/(2B))‖F_ℬ − Y_ℬ‖² + Σ(λ/2)‖θ‖², whose expectation over uniformly drawn batches is Φ.
All conversions of the package go through :func:`loss_scale` and :func:`to_paper_convention`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from .arrays import check_positive_scalar

LossReduction = Literal["mean", "sum", "half_sum", "paper"]

#: The framework losses understood by the conversions, and the data term each one computes.
LOSS_REDUCTIONS: dict[str, str] = {
    "mean": "torch nn.MSELoss() (mean over the B·K entries of the batch): ‖F − Y‖²/(BK)",
    "sum": "torch nn.MSELoss(reduction='sum'): ‖F − Y‖²",
    "half_sum": "paper-style ½‖F − Y‖² + (λ'/2)‖θ‖² without 1/N",
    "paper": "this package's (1/(2B))‖F − Y‖² (the identity conversion)",
}


@dataclass(frozen=True)
class PaperHyperparameters:
    """Weight decay and step size expressed in the package's convention (docs/theory.md §1.2).

    Attributes
    ----------
    lam : float
        λ of Φ's penalty (λ/2)‖θ‖².
    step_size : float or None
        η of θ ← θ − η∇Φ; None when no learning rate was given.
    loss_scale : float
        c, the factor of the framework's data term c‖F − Y‖² (per batch).
    reduction : str
        The framework loss the numbers were converted from.
    batch_size : int
        Samples per gradient step (N for full batch).
    """

    lam: float
    step_size: float | None
    loss_scale: float
    reduction: str
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def loss_scale(reduction: str, batch_size: int, num_classes: int) -> float:
    """Factor c of the framework's data term c‖F_ℬ − Y_ℬ‖_F² on a batch of B samples.

    Parameters
    ----------
    reduction : {"mean", "sum", "half_sum", "paper"}
        ``"mean"``: torch ``nn.MSELoss()``, c = 1/(BK); ``"sum"``: ``reduction='sum'``, c = 1;
        ``"half_sum"``: ½‖F − Y‖², c = ½; ``"paper"``: (1/(2B))‖F − Y‖², c = 1/(2B).
    batch_size : int
        B (N for full-batch training).
    num_classes : int
        K, the number of outputs.

    Returns
    -------
    float
        c (docs/theory.md §1.3, first column of the table).
    """
    batch_size = _check_count(batch_size, "batch_size")
    num_classes = _check_count(num_classes, "num_classes")
    if reduction == "mean":
        return 1.0 / (batch_size * num_classes)
    if reduction == "sum":
        return 1.0
    if reduction == "half_sum":
        return 0.5
    if reduction == "paper":
        return 1.0 / (2.0 * batch_size)
    raise ValueError(
        f"reduction must be one of {sorted(LOSS_REDUCTIONS)}, got {reduction!r}"
    )


def to_paper_convention(
    weight_decay: float,
    learning_rate: float | None = None,
    *,
    reduction: str = "mean",
    batch_size: int,
    num_classes: int,
) -> PaperHyperparameters:
    """Convert a framework's weight decay and learning rate to the paper's λ and η.

    λ = wd/(2Bc), η = 2Bc·lr with c = :func:`loss_scale` (docs/theory.md §1.3). For ``nn.MSELoss()``
    this gives λ = K·wd/2 and η = 2·lr/K whatever the batch size.

    Parameters
    ----------
    weight_decay : float
        Coupled weight decay ``wd`` ≥ 0 (``torch.optim.SGD(weight_decay=wd)``; for the
        ``"half_sum"`` loss, the λ' of ½‖F − Y‖² + (λ'/2)‖θ‖²).
    learning_rate : float, optional
        The framework's learning rate ``lr`` > 0.
    reduction : str
        The framework loss, see :func:`loss_scale`.
    batch_size : int
        Samples per step (N for full batch).
    num_classes : int
        K.
    """
    weight_decay = check_positive_scalar(weight_decay, "weight_decay")
    scale = loss_scale(reduction, batch_size, num_classes)
    factor = 2.0 * batch_size * scale
    step = None
    if learning_rate is not None:
        step = factor * check_positive_scalar(learning_rate, "learning_rate", allow_zero=False)
    return PaperHyperparameters(
        lam=weight_decay / factor,
        step_size=step,
        loss_scale=scale,
        reduction=reduction,
        batch_size=batch_size,
    )


def from_paper_convention(
    lam: float,
    step_size: float | None = None,
    *,
    reduction: str = "mean",
    batch_size: int,
    num_classes: int,
) -> tuple[float, float | None]:
    """Inverse of :func:`to_paper_convention`: the (weight_decay, learning_rate) giving λ and η.

    wd = 2Bc·λ, lr = η/(2Bc).
    """
    lam = check_positive_scalar(lam, "lam")
    factor = 2.0 * batch_size * loss_scale(reduction, batch_size, num_classes)
    rate = None
    if step_size is not None:
        rate = check_positive_scalar(step_size, "step_size", allow_zero=False) / factor
    return lam * factor, rate


def feature_penalty_to_lambda(
    coefficient: float,
    *,
    penalty_form: str,
    reduction: str = "mean",
    batch_size: int,
    num_samples: int,
    num_classes: int,
) -> float:
    """λ_H of a penalty on per-sample features added inside a batch loss (docs/theory.md §1.3).

    The penalty of Φ is the sum (λ_H/2)Σ_i‖h_i‖² over all N samples, while a framework adds,
    on each batch ℬ of B samples, either (μ/2)Σ_{i∈ℬ}‖h_i‖² (``penalty_form="sum"``) or
    (μ/(2B))Σ_{i∈ℬ}‖h_i‖² (``"mean"``) to c‖F_ℬ − Y_ℬ‖². Dividing the batch loss by 2Bc and
    taking the expectation over uniform batches (each sample is in ℬ with probability B/N):

        λ_H = μ_eff / (2Nc),   μ_eff = μ ("sum") or μ/B ("mean").

    For ``nn.MSELoss()`` (c = 1/(BK)): λ_H = KμB/(2N) ("sum", batch-size dependent) and
    λ_H = Kμ/(2N) ("mean"). Free features stored as one tensor and decayed by the optimizer are
    not this case: they follow :func:`to_paper_convention` (λ_H = K·wd_H/2).
    """
    coefficient = check_positive_scalar(coefficient, "coefficient")
    num_samples = _check_count(num_samples, "num_samples")
    batch_size = _check_count(batch_size, "batch_size")
    if batch_size > num_samples:
        raise ValueError(
            f"batch_size must be at most num_samples = {num_samples}, got {batch_size}"
        )
    scale = loss_scale(reduction, batch_size, num_classes)
    if penalty_form == "sum":
        effective = coefficient
    elif penalty_form == "mean":
        effective = coefficient / batch_size
    else:
        raise ValueError(f"penalty_form must be 'sum' or 'mean', got {penalty_form!r}")
    return effective / (2.0 * num_samples * scale)


def lambdas_from_torch_optimizer(
    optimizer: Any, *, reduction: str = "mean", batch_size: int, num_classes: int
) -> list[PaperHyperparameters]:
    """λ and η of every parameter group of a torch optimizer, or a clear error if there is none.

    Accepts optimizers with coupled weight decay (``SGD``, with or without momentum, ``Adam``,
    ``RMSprop``…): they share the stationary points of Φ with λ = wd/(2Bc), although momentum and
    Adam change the dynamics (docs/theory.md §1.3; identities J7, J12 then do not hold exactly).
    Rejects ``AdamW`` and any optimizer with decoupled decay: it has no fixed λ equivalent.
    """
    name = type(optimizer).__name__
    groups = getattr(optimizer, "param_groups", None)
    if groups is None:
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {name}")
    if name == "AdamW" or any(group.get("decoupled_weight_decay", False) for group in groups):
        raise ValueError(
            f"optimizer {name} uses decoupled weight decay, which has no fixed λ of the paper's "
            "objective; use SGD (or Adam with coupled weight_decay) for theory comparisons"
        )
    return [
        to_paper_convention(
            group.get("weight_decay", 0.0),
            group.get("lr"),
            reduction=reduction,
            batch_size=batch_size,
            num_classes=num_classes,
        )
        for group in groups
    ]
