"""Per-layer collapse reports of a model's parameters: ``ufm.models`` meets ``ufm.metrics``.

The forward pass of a model (:meth:`ufm.models.DeepUFM.forward` and friends) gives H₁…H_L and
H̃₂…H̃_L; :func:`ufm.metrics.layer_report` turns them, with the weights and the λ's, into the
per-layer table of docs/theory.md §3 ("Per-layer DNC metrics").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .metrics import LayerReport, layer_report

__all__ = [
    "DNCVerdict",
    "is_deep_neural_collapse",
    "model_layer_report",
    "output_scale",
    "plot_solution_history",
]


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
    """The scale q of an output F ≈ qY (docs/theory.md §4.1, §4.3), by least squares.

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


def plot_solution_history(solution: Any, predicted_loss: float | None, path: Any, *, title: str = "") -> Any:
    """Plot a solver's history: Φ and its gap to the predicted optimum, and ‖∇Φ‖, per iteration.

    Parameters
    ----------
    solution : ufm.solvers.Solution
        Its ``history`` (log-spaced records of Φ, the fit and penalty terms and ‖∇Φ‖) is plotted.
    predicted_loss : float, optional
        The predicted optimum (docs/theory.md §4), drawn as a line; the gap Φ − Φ* is drawn on a log
        axis (its absolute value, marked where the run is below the prediction).
    path : str or path-like
        Where the PNG goes (written to a temporary name, then renamed).
    """
    import os
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = solution.history
    iterations = np.maximum(np.asarray(history.iteration, dtype=float), 1.0)
    total = np.asarray(history.total, dtype=float)
    figure, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    axes[0].plot(iterations, total, label="Φ found")
    axes[0].plot(iterations, history.fit, "--", label="fit (1/(2N))‖F − Y‖²")
    axes[0].plot(iterations, history.penalty, ":", label="penalty Σ(λ/2)‖θ‖²")
    if predicted_loss is not None:
        axes[0].axhline(predicted_loss, color="black", lw=1, label=f"predicted {predicted_loss:.6g}")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("iteration")
    axes[0].set_title("objective and its parts")
    axes[0].legend(fontsize=8)
    if predicted_loss is not None:
        gap = total - predicted_loss
        axes[1].plot(iterations, np.abs(gap) + 1e-300, label="|Φ − Φ*|")
        below = gap < 0
        if np.any(below):
            axes[1].plot(iterations[below], np.abs(gap[below]), "rv", ms=4, label="below Φ*")
        axes[1].set_yscale("log")
        axes[1].legend(fontsize=8)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("iteration")
    axes[1].set_title("gap to the predicted optimum")
    axes[2].plot(iterations, history.gradient_norm)
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("iteration")
    axes[2].set_title("‖∇Φ‖ (stationarity)")
    for axis in axes:
        axis.grid(True, which="both", alpha=0.3)
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, path)
    return path


@dataclass(frozen=True)
class DNCVerdict:
    """Outcome of :func:`is_deep_neural_collapse`: IS_DNC and its three criteria (docs/theory.md §3).

    Attributes
    ----------
    layers : tuple of int
        The layers l = 2..L whose class means M_l (after the ReLU) are checked.
    ranks : tuple of int
        RANK(M_l) per layer of ``layers`` (relative tolerance ``rank_rtol``).
    orth : tuple of float
        NC2.orth(M_l) per layer of ``layers``; NaN where M_l = 0.
    loss : float
        The objective Φ at the point.
    dnc_loss : float
        L_DNC of the model (:func:`ufm.optima.predict`).
    relative_gap : float
        (Φ − L_DNC)/L_DNC; negative below the DNC value.
    rank_ok, orth_ok, loss_ok : bool
        Every rank equals K; every NC2.orth is ≤ ``orth_tolerance``; ``|relative_gap|`` ≤
        ``loss_tolerance``.
    num_classes : int
        K.
    rank_rtol, orth_tolerance, loss_tolerance : float
        The tolerances used.
    """

    layers: tuple[int, ...]
    ranks: tuple[int, ...]
    orth: tuple[float, ...]
    loss: float
    dnc_loss: float
    relative_gap: float
    rank_ok: bool
    orth_ok: bool
    loss_ok: bool
    num_classes: int
    rank_rtol: float
    orth_tolerance: float
    loss_tolerance: float

    @property
    def is_dnc(self) -> bool:
        """IS_DNC: all three criteria hold."""
        return self.rank_ok and self.orth_ok and self.loss_ok

    def __bool__(self) -> bool:
        return self.is_dnc

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary (with ``is_dnc``)."""
        return {**asdict(self), "layers": list(self.layers), "ranks": list(self.ranks),
                "orth": list(self.orth), "is_dnc": self.is_dnc}


def is_deep_neural_collapse(
    model: Any,
    parameters: Any,
    *,
    rank_rtol: float = 1e-2,
    orth_tolerance: float = 0.2,
    loss_tolerance: float = 5e-3,
) -> DNCVerdict:
    """IS_DNC of docs/theory.md §3 at ``parameters`` of a deep UFM.

    The point is a DNC point when every M_l, l = 2..L (class means of the post-activation
    features H_l), has RANK K (:func:`ufm.metrics.numerical_rank`, relative tolerance
    ``rank_rtol``) and NC2.orth(M_l) ≤ ``orth_tolerance``
    (:func:`ufm.metrics.nc2_orthogonal_frame_distance`), and the objective is within a relative
    ``loss_tolerance`` of L_DNC (§4.3): ``|Φ − L_DNC|`` ≤ loss_tolerance·L_DNC. Low-rank points below
    L_DNC (§4.5) fail the rank and the loss criteria. For L = 1 the layer criteria are vacuous.

    Parameters
    ----------
    model : ufm.models.DeepUFM or ufm.models.DeepLinearUFM
        The objective; L_DNC is :func:`ufm.optima.predict` of it.
    parameters : ufm.models.Parameters
        The point (e.g. ``Solution.parameters``).
    rank_rtol : float
        Relative tolerance of RANK (singular values ≤ rank_rtol·σ_max count as zero).
    orth_tolerance : float
        Largest NC2.orth accepted (NC2.orth ∈ [0, 2]).
    loss_tolerance : float
        Largest relative distance ``|Φ/L_DNC − 1|`` accepted.
    """
    from .metrics import class_statistics, nc2_orthogonal_frame_distance, numerical_rank
    from .models import DeepLinearUFM, DeepUFM
    from .optima import predict

    if not isinstance(model, (DeepUFM, DeepLinearUFM)):
        raise TypeError(f"IS_DNC needs a DeepUFM or DeepLinearUFM, got {type(model).__name__}")
    for value, name in ((rank_rtol, "rank_rtol"), (orth_tolerance, "orth_tolerance"),
                        (loss_tolerance, "loss_tolerance")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
    parameters = parameters.to_numpy() if getattr(parameters, "is_torch", False) else parameters
    k = model.num_classes
    forward = model.forward(parameters)
    layers = tuple(range(2, forward.num_layers + 1))
    ranks: list[int] = []
    orth: list[float] = []
    for layer in layers:
        features = np.asarray(forward.post_activations[layer - 1], dtype=np.float64)
        means = class_statistics(features, forward.labels, k).means
        ranks.append(int(numerical_rank(means, rank_rtol)))
        if np.any(means):
            orth.append(float(nc2_orthogonal_frame_distance(features, forward.labels, num_classes=k)))
        else:
            orth.append(math.nan)
    loss = float(model.objective(parameters).total)
    dnc_loss = float(predict(model).optimal_loss)
    relative_gap = (loss - dnc_loss) / dnc_loss
    return DNCVerdict(
        layers=layers,
        ranks=tuple(ranks),
        orth=tuple(orth),
        loss=loss,
        dnc_loss=dnc_loss,
        relative_gap=float(relative_gap),
        rank_ok=all(rank == k for rank in ranks),
        orth_ok=all(value <= orth_tolerance for value in orth),  # NaN fails
        loss_ok=bool(abs(relative_gap) <= loss_tolerance),
        num_classes=k,
        rank_rtol=float(rank_rtol),
        orth_tolerance=float(orth_tolerance),
        loss_tolerance=float(loss_tolerance),
    )
