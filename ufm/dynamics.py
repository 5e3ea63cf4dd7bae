"""Predictions of gradient-descent dynamics for the balancedness of linear layers (docs/theory.md §5 J).

Notation of docs/theory.md §1.1–§1.2: layers W_l ∈ R^{d_{l+1}×d_l}, balancedness matrix
D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ, gradient descent W ← (1 − ηλ)W − ηg with g the gradient of the
data term (1/(2N))‖F − Y‖² (or of a minibatch's), λ the weight decay shared by W_l and W_{l+1}.
When the activation after W_l is the identity:

- **J7** one step: D_l(k+1) = (1 − η_kλ)²D_l(k) + η_k²(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ)
  (:func:`balancedness_step`, :func:`gradient_bracket`);
- **J12** envelope: ‖D_l(k)‖ ≤ Π_{j<k}(1 − η_jλ)²‖D_l(0)‖ + Σ_{j<k}η_j²G_jΠ_{j<i<k}(1 − η_iλ)²,
  G_j = ‖g_{l+1}ᵀg_{l+1} − g_lg_lᵀ‖ at step j (:func:`balancedness_envelope`); the contraction
  alone is :func:`balancedness_contraction`, the floor of a constant step and bracket bound
  η²G/(1 − (1 − ηλ)²) ≈ ηG/(2λ) is :func:`balancedness_floor`;
- **J8** gradient flow Ẇ = −g − λW: D_l(t) = e^{−2λt}D_l(0) (:func:`gradient_flow_balancedness`),
  so that balancing to ε takes ≈ log(‖D_l(0)‖/ε)/(2ηλ) steps (:func:`balancing_steps`);
- **J9** at any point, λD_l = W_{l+1}ᵀ∇_{l+1} − ∇_lW_lᵀ with ∇ = g + λW, hence the bound
  ‖D_l‖_F ≤ (‖W_{l+1}‖_op‖∇_{l+1}‖_F + ‖∇_l‖_F‖W_l‖_op)/λ (:func:`critical_balancedness_bound`);
- **J5** a balanced linear head A = W_{L:L1+1} of L2 layers has κ(W_L) = κ(A)^{1/L2}, and
  **J11** at a critical point of the head with L2 ≥ 3, κ(W_L) = κ(R)^{1/(L2−2)} with
  R = (1/N)(Y − AZ_{L1})Z_{L1}ᵀ (:func:`linear_head_conditioning`).

Learning rates follow the schedule of ``fullnet`` training: constant, multiplied by a factor (0.1)
from epoch ⌊0.8·epochs⌋ on (:func:`step_size_schedule`). Every value is computed in float64;
inputs may be numpy arrays or torch tensors (copied to float64 numpy).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from .arrays import as_float64_matrix, as_float64_vector, check_positive_scalar

__all__ = [
    "HeadConditioning",
    "balanced_chain_condition_number",
    "balancedness_contraction",
    "balancedness_envelope",
    "balancedness_floor",
    "balancedness_matrix",
    "balancedness_step",
    "balancing_steps",
    "critical_balancedness_bound",
    "gradient_bracket",
    "gradient_bracket_norm",
    "gradient_flow_balancedness",
    "learning_rate_drop_epoch",
    "linear_head_conditioning",
    "step_size_schedule",
]

NORMS = ("op", "fro")


# ---------------------------------------------------------------------------------------------
# Learning-rate schedule
# ---------------------------------------------------------------------------------------------
def _check_count(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def learning_rate_drop_epoch(epochs: int, drop_fraction: float = 0.8) -> int:
    """First epoch (0-based) trained with the dropped learning rate: ⌊drop_fraction·epochs⌋.

    The schedule of ``fullnet`` training (docs/theory.md §6: one drop after 80% of the epochs).

    Parameters
    ----------
    epochs : int
        Total number of epochs (≥ 1).
    drop_fraction : float
        In (0, 1]; 1 means no drop (the value is then ``epochs``).
    """
    epochs = _check_count(epochs, "epochs")
    drop_fraction = check_positive_scalar(drop_fraction, "drop_fraction", allow_zero=False)
    if drop_fraction > 1.0:
        raise ValueError(f"drop_fraction must lie in (0, 1], got {drop_fraction}")
    return int(math.floor(drop_fraction * epochs + 1e-9))


def step_size_schedule(
    base_step_size: float,
    epochs: int,
    *,
    drop_fraction: float = 0.8,
    drop_factor: float = 0.1,
    steps_per_epoch: int = 1,
) -> np.ndarray:
    """The step size η_j of every gradient step j = 0..epochs·steps_per_epoch − 1.

    η_j = ``base_step_size`` during epochs 0..E−1 and ``drop_factor``·``base_step_size`` from
    epoch E = :func:`learning_rate_drop_epoch` on (no drop when ``drop_fraction`` = 1): the
    schedule of ``fullnet`` training, with its ⌈N/B⌉ minibatch steps per epoch for SGD
    (docs/theory.md §6 (A), "a single learning-rate drop after 80% of the epochs"; the factor 0.1 is
    the package's choice, (A)'s is unknown).

    Parameters
    ----------
    base_step_size : float
        η > 0 before the drop (docs/theory.md §1.2 convention).
    epochs : int
        Number of epochs (≥ 1).
    drop_fraction : float
        In (0, 1].
    drop_factor : float
        > 0.
    steps_per_epoch : int
        Gradient steps per epoch (1 for full-batch GD).

    Returns
    -------
    ndarray, shape (epochs·steps_per_epoch,)
    """
    base = check_positive_scalar(base_step_size, "base_step_size", allow_zero=False)
    factor = check_positive_scalar(drop_factor, "drop_factor", allow_zero=False)
    epochs = _check_count(epochs, "epochs")
    steps_per_epoch = _check_count(steps_per_epoch, "steps_per_epoch")
    drop = learning_rate_drop_epoch(epochs, drop_fraction)
    per_epoch = np.full(epochs, base)
    if drop_fraction < 1.0:
        per_epoch[drop:] = base * factor
    return np.repeat(per_epoch, steps_per_epoch)


def _step_sizes(step_sizes: Any) -> np.ndarray:
    """A 1-D float64 array of step sizes η_j ≥ 0 (a scalar is one step)."""
    values = as_float64_vector(np.atleast_1d(np.asarray(step_sizes, dtype=np.float64)), "step_sizes")
    if np.any(values < 0):
        raise ValueError("step_sizes must be >= 0")
    return values


# ---------------------------------------------------------------------------------------------
# J7: one step, J12: envelope
# ---------------------------------------------------------------------------------------------
def balancedness_matrix(weight: Any, next_weight: Any) -> np.ndarray:
    """D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ (docs/theory.md §1.1), a symmetric d_{l+1}×d_{l+1} matrix.

    Parameters
    ----------
    weight : array_like, shape (d_{l+1}, d_l)
        W_l.
    next_weight : array_like, shape (d_{l+2}, d_{l+1})
        W_{l+1}.
    """
    lower = as_float64_matrix(weight, "weight")
    upper = as_float64_matrix(next_weight, "next_weight")
    if upper.shape[1] != lower.shape[0]:
        raise ValueError(
            f"next_weight has {upper.shape[1]} columns but weight has {lower.shape[0]} rows; "
            "W_{l+1} must act on the output of W_l"
        )
    return upper.T @ upper - lower @ lower.T


def gradient_bracket(gradient: Any, next_gradient: Any) -> np.ndarray:
    """The bracket g_{l+1}ᵀg_{l+1} − g_lg_lᵀ of J7 (docs/theory.md §5), from data gradients.

    Parameters
    ----------
    gradient : array_like, shape (d_{l+1}, d_l)
        g_l, gradient of the data term with respect to W_l (without the weight-decay term).
    next_gradient : array_like, shape (d_{l+2}, d_{l+1})
        g_{l+1}.
    """
    return balancedness_matrix(gradient, next_gradient)


def _matrix_norm(matrix: np.ndarray, norm: str) -> float:
    if norm == "op":
        return float(np.max(np.abs(np.linalg.eigvalsh(0.5 * (matrix + matrix.T)))))
    if norm == "fro":
        return float(np.linalg.norm(matrix))
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def gradient_bracket_norm(gradient: Any, next_gradient: Any, norm: str = "op") -> float:
    """G = ‖g_{l+1}ᵀg_{l+1} − g_lg_lᵀ‖ (operator or Frobenius norm), the input of the J12 envelope.

    Parameters
    ----------
    gradient, next_gradient : array_like
        g_l and g_{l+1} (see :func:`gradient_bracket`).
    norm : {"op", "fro"}
        The norm, the same as that of ‖D_l‖ it bounds (BAL.op or BAL.fro of docs/theory.md §3).
    """
    return _matrix_norm(gradient_bracket(gradient, next_gradient), norm)


def balancedness_step(
    balancedness: Any, step_size: float, lam: float, gradient: Any, next_gradient: Any
) -> np.ndarray:
    """J7: the predicted D_l(k+1) = (1 − ηλ)²D_l(k) + η²(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ).

    Exact for one full-batch GD (or plain minibatch SGD) step W ← (1 − ηλ)W − ηg on W_l and
    W_{l+1} when the activation after W_l is the identity (docs/theory.md §5 J7); not with momentum.

    Parameters
    ----------
    balancedness : array_like, shape (d_{l+1}, d_{l+1})
        D_l(k).
    step_size : float
        η ≥ 0.
    lam : float
        λ ≥ 0, the weight decay of both layers.
    gradient, next_gradient : array_like
        Data gradients g_l, g_{l+1} at step k.
    """
    current = as_float64_matrix(balancedness, "balancedness")
    step = check_positive_scalar(step_size, "step_size")
    decay = check_positive_scalar(lam, "lam")
    bracket = gradient_bracket(gradient, next_gradient)
    if bracket.shape != current.shape:
        raise ValueError(
            f"balancedness has shape {current.shape} but the gradients give a bracket of shape "
            f"{bracket.shape}"
        )
    return (1.0 - step * decay) ** 2 * current + step**2 * bracket


def balancedness_contraction(step_sizes: Any, lam: float) -> np.ndarray:
    """The J12 contraction c_k = Π_{j<k}(1 − η_jλ)², k = 0..len(step_sizes).

    c_k‖D_l(0)‖ is the balancedness after k GD steps if the gradient brackets vanish; for a
    constant step it is (1 − ηλ)^{2k} (docs/theory.md §5 J12, with the learning-rate schedule of
    :func:`step_size_schedule`).

    Parameters
    ----------
    step_sizes : array_like, shape (k_max,)
        η_j of steps j = 0..k_max − 1 (a scalar is one step).
    lam : float
        λ ≥ 0.

    Returns
    -------
    ndarray, shape (k_max + 1,)
        c_0 = 1, c_1, …, c_{k_max}.
    """
    steps = _step_sizes(step_sizes)
    decay = check_positive_scalar(lam, "lam")
    factors = (1.0 - steps * decay) ** 2
    return np.concatenate(([1.0], np.cumprod(factors)))


def balancedness_envelope(
    initial_norm: float, step_sizes: Any, lam: float, bracket_norms: Any = None
) -> np.ndarray:
    """The J12 upper bound on ‖D_l(k)‖ along gradient descent, k = 0..len(step_sizes).

    E_0 = ‖D_l(0)‖ and E_{k+1} = (1 − η_kλ)²E_k + η_k²G_k, that is

        E_k = Π_{j<k}(1 − η_jλ)²‖D_l(0)‖ + Σ_{j<k} η_j²G_j Π_{j<i<k}(1 − η_iλ)²,

    which for a constant step is (1 − ηλ)^{2k}‖D_l(0)‖ + η²Σ_{j<k}(1 − ηλ)^{2(k−1−j)}G_j
    (docs/theory.md §5 J12, derived from J7 by the triangle inequality). It bounds ‖D_l(k)‖ in the
    norm in which the G_j are measured when the activation after W_l is the identity.

    Parameters
    ----------
    initial_norm : float
        ‖D_l(0)‖ ≥ 0.
    step_sizes : array_like, shape (k_max,)
        η_j (e.g. :func:`step_size_schedule`).
    lam : float
        λ ≥ 0.
    bracket_norms : array_like, shape (k_max,), optional
        G_j = ‖g_{l+1}ᵀg_{l+1} − g_lg_lᵀ‖ measured at step j (:func:`gradient_bracket_norm`);
        omitted: zero, so the envelope is the contraction term alone.

    Returns
    -------
    ndarray, shape (k_max + 1,)
    """
    start = check_positive_scalar(initial_norm, "initial_norm")
    steps = _step_sizes(step_sizes)
    decay = check_positive_scalar(lam, "lam")
    if bracket_norms is None:
        brackets = np.zeros_like(steps)
    else:
        brackets = as_float64_vector(np.atleast_1d(np.asarray(bracket_norms, dtype=float)),
                                     "bracket_norms", length=steps.shape[0])
        if np.any(brackets < 0):
            raise ValueError("bracket_norms must be >= 0")
    factors = ((1.0 - steps * decay) ** 2).tolist()
    sources = (steps**2 * brackets).tolist()
    envelope = [start]
    value = start
    for factor, source in zip(factors, sources):
        value = factor * value + source
        envelope.append(value)
    return np.asarray(envelope)


def balancedness_floor(step_size: float, lam: float, bracket_bound: float) -> float:
    """The level where the J12 envelope settles for a constant step and a bracket bound G.

    lim_k E_k = η²G/(1 − (1 − ηλ)²) = ηG/(λ(2 − ηλ)) ≈ ηG/(2λ) for ηλ ≪ 1 (docs/theory.md §5 J12,
    "the floor is ≈ ηG/(2λ)"); the sum of the geometric series η²GΣ_{j≥0}(1 − ηλ)^{2j}.

    Parameters
    ----------
    step_size : float
        η with 0 < ηλ < 2.
    lam : float
        λ > 0.
    bracket_bound : float
        G ≥ 0, a bound on ‖g_{l+1}ᵀg_{l+1} − g_lg_lᵀ‖ along the run.
    """
    step = check_positive_scalar(step_size, "step_size", allow_zero=False)
    decay = check_positive_scalar(lam, "lam", allow_zero=False)
    bound = check_positive_scalar(bracket_bound, "bracket_bound")
    if step * decay >= 2.0:
        raise ValueError(f"step_size·lam must be < 2 for the contraction to shrink, got {step * decay}")
    return step * bound / (decay * (2.0 - step * decay))


# ---------------------------------------------------------------------------------------------
# J8: gradient flow and the balancing time
# ---------------------------------------------------------------------------------------------
def gradient_flow_balancedness(initial: Any, lam: float, time: Any) -> np.ndarray:
    """J8: D_l(t) = e^{−2λt}D_l(0) along the gradient flow Ẇ = −g − λW (docs/theory.md §5 J8).

    One GD step of size η advances the flow time by η, so t = Σ_{j<k}η_j after k steps; the
    GD contraction Π(1 − η_jλ)² agrees with e^{−2λt} up to O(ηλ) relative per unit of λt.

    Parameters
    ----------
    initial : float or array_like
        D_l(0) (a matrix) or its norm.
    lam : float
        λ ≥ 0.
    time : float or array_like
        t ≥ 0. With a matrix ``initial``, ``time`` must be a scalar.

    Returns
    -------
    ndarray
        e^{−2λt}·``initial`` (broadcast over ``time`` for a scalar ``initial``).
    """
    decay = check_positive_scalar(lam, "lam")
    times = np.asarray(time, dtype=np.float64)
    if not np.all(np.isfinite(times)) or np.any(times < 0):
        raise ValueError("time must be finite and >= 0")
    start = np.asarray(initial, dtype=np.float64)
    if not np.all(np.isfinite(start)):
        raise ValueError("initial must be finite")
    if start.ndim > 0 and times.ndim > 0:
        raise ValueError("give either a matrix initial with a scalar time, or a norm with many times")
    return np.exp(-2.0 * decay * times) * start


def balancing_steps(
    initial_norm: float, tolerance: float, step_size: float, lam: float, *, exact: bool = False
) -> float:
    """Number of GD steps for the contraction to bring ‖D_l‖ from ‖D_l(0)‖ down to ε (J8).

    docs/theory.md §5 J8: "balancing takes ≈ log(‖D_0‖/ε)/(2ηλ) GD steps" (the default). With
    ``exact=True`` the smallest integer k with (1 − ηλ)^{2k}‖D_0‖ ≤ ε,
    ⌈log(‖D_0‖/ε)/(−2 log(1 − ηλ))⌉. Both are 0 when ‖D_0‖ ≤ ε. The bracket term of J12 is
    ignored, so this is the time to reach ε only when ε is above the floor
    (:func:`balancedness_floor`).

    Parameters
    ----------
    initial_norm : float
        ‖D_l(0)‖ ≥ 0.
    tolerance : float
        ε > 0.
    step_size : float
        η > 0 (constant).
    lam : float
        λ > 0 with ηλ < 1.
    exact : bool
        Integer count of the discrete contraction instead of the gradient-flow estimate.
    """
    start = check_positive_scalar(initial_norm, "initial_norm")
    target = check_positive_scalar(tolerance, "tolerance", allow_zero=False)
    step = check_positive_scalar(step_size, "step_size", allow_zero=False)
    decay = check_positive_scalar(lam, "lam", allow_zero=False)
    if step * decay >= 1.0:
        raise ValueError(f"step_size·lam must be < 1, got {step * decay}")
    if start <= target:
        return 0.0
    ratio = math.log(start / target)
    if exact:
        return float(math.ceil(ratio / (-2.0 * math.log1p(-step * decay)) - 1e-12))
    return ratio / (2.0 * step * decay)


# ---------------------------------------------------------------------------------------------
# J9: balancedness from the gradient
# ---------------------------------------------------------------------------------------------
def critical_balancedness_bound(
    weight: Any, next_weight: Any, full_gradient: Any, next_full_gradient: Any, lam: float
) -> float:
    """J9: ‖D_l‖_F ≤ (‖W_{l+1}‖_op‖∇_{l+1}‖_F + ‖∇_l‖_F‖W_l‖_op)/λ at any point.

    From the identity λD_l = W_{l+1}ᵀ∇_{l+1} − ∇_lW_lᵀ (∇ = g + λW, identity activation after
    W_l; docs/theory.md §5 J9): the balancedness is small wherever the gradient is, and vanishes at
    critical points.

    Parameters
    ----------
    weight, next_weight : array_like
        W_l, W_{l+1}.
    full_gradient, next_full_gradient : array_like
        ∇_l = g_l + λW_l and ∇_{l+1} = g_{l+1} + λW_{l+1}, gradients of Φ.
    lam : float
        λ > 0.
    """
    decay = check_positive_scalar(lam, "lam", allow_zero=False)
    lower = as_float64_matrix(weight, "weight")
    upper = as_float64_matrix(next_weight, "next_weight")
    lower_gradient = as_float64_matrix(full_gradient, "full_gradient")
    upper_gradient = as_float64_matrix(next_full_gradient, "next_full_gradient")
    if lower_gradient.shape != lower.shape or upper_gradient.shape != upper.shape:
        raise ValueError("each gradient must have the shape of its weight")
    upper_op = float(np.linalg.norm(upper, 2))
    lower_op = float(np.linalg.norm(lower, 2))
    return (upper_op * float(np.linalg.norm(upper_gradient))
            + float(np.linalg.norm(lower_gradient)) * lower_op) / decay


# ---------------------------------------------------------------------------------------------
# J5, J11: conditioning of a linear head
# ---------------------------------------------------------------------------------------------
def balanced_chain_condition_number(product_condition_number: float, num_linear_layers: int) -> float:
    """J5: κ(W_L) = κ(A)^{1/L2} for a balanced chain A = W_{L:L1+1} of L2 linear layers.

    If D_l = 0 for l = L1+1..L−1 then AAᵀ = (W_LW_Lᵀ)^{L2} (Arora et al. 2018; docs/theory.md §5 J5).

    Parameters
    ----------
    product_condition_number : float
        κ(A) ≥ 1 over its top K singular values (+inf allowed).
    num_linear_layers : int
        L2 ≥ 1.
    """
    kappa = float(product_condition_number)
    if math.isnan(kappa) or kappa < 1.0:
        raise ValueError(f"product_condition_number must be >= 1, got {product_condition_number!r}")
    depth = _check_count(num_linear_layers, "num_linear_layers")
    return kappa ** (1.0 / depth)


@dataclass(frozen=True)
class HeadConditioning:
    """Conditioning of a linear head A = W_{L:L1+1} and its J5/J11 predictions for κ(W_L).

    Condition numbers are s_1/s_K over the top K singular values (K = rows of W_L), +inf when
    s_K = 0.

    Attributes
    ----------
    num_linear_layers : int
        L2.
    last_layer : float
        κ(W_L), measured.
    product : float
        κ(A), A = W_L⋯W_{L1+1}.
    chain_prediction : float
        κ(A)^{1/L2}: κ(W_L) of a balanced chain with the same product (J5).
    residual : float or None
        κ(R), R = (1/N)(Y − AZ_{L1})Z_{L1}ᵀ, when features and targets were given.
    residual_prediction : float or None
        κ(R)^{1/(L2−2)} for L2 ≥ 3: κ(W_L) at a critical point of the head (J11).
    """

    num_linear_layers: int
    last_layer: float
    product: float
    chain_prediction: float
    residual: float | None = None
    residual_prediction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serializable except for infinite values)."""
        return asdict(self)


def _top_condition_number(matrix: np.ndarray, count: int) -> float:
    values = np.linalg.svd(matrix, compute_uv=False)
    if values.shape[0] < count or values[count - 1] <= 0.0:
        return math.inf
    return float(values[0] / values[count - 1])


def linear_head_conditioning(
    weights: Sequence[Any], features: Any = None, targets: Any = None
) -> HeadConditioning:
    """κ(W_L), κ(A) of a linear head and the J5, J11 predictions of κ(W_L) (docs/theory.md §5).

    J5: for a balanced head (D_l = 0 between the linear layers), κ(W_L) = κ(A)^{1/L2}; GD
    approaches it as the linear layers balance (J12), so the gap between ``last_layer`` and
    ``chain_prediction`` measures the remaining imbalance. J11: at a critical point of
    Φ_head (or of Φ_net with the same λ on the head) with rank A = K, the nonzero singular values
    of R = (1/N)(Y − AZ_{L1})Z_{L1}ᵀ are λs_i(W_L)^{2−L2}, so κ(W_L) = κ(R)^{1/(L2−2)} for
    L2 ≥ 3 — the mechanism by which deeper linear heads give better NC2 in (A).

    Parameters
    ----------
    weights : sequence of array_like
        W_{L1+1}, …, W_L in order (W_l of shape (d_{l+1}, d_l), W_L of shape (K, d_L)).
    features : array_like, shape (d_{L1+1}, N), optional
        Z_{L1}, the input of the head.
    targets : array_like, shape (K, N), optional
        Y (one-hot); required with ``features``.
    """
    matrices = [as_float64_matrix(weight, f"weights[{index}]") for index, weight in enumerate(weights)]
    if not matrices:
        raise ValueError("weights must hold at least one matrix")
    for index in range(1, len(matrices)):
        if matrices[index].shape[1] != matrices[index - 1].shape[0]:
            raise ValueError(
                f"weights[{index}] has {matrices[index].shape[1]} columns but weights[{index - 1}] "
                f"has {matrices[index - 1].shape[0]} rows"
            )
    product = matrices[0]
    for matrix in matrices[1:]:
        product = matrix @ product
    classes = matrices[-1].shape[0]
    depth = len(matrices)
    last = _top_condition_number(matrices[-1], classes)
    head = _top_condition_number(product, classes)
    residual = residual_prediction = None
    if (features is None) != (targets is None):
        raise ValueError("give features and targets together")
    if features is not None:
        inputs = as_float64_matrix(features, "features")
        labels = as_float64_matrix(targets, "targets")
        if inputs.shape[0] != product.shape[1] or labels.shape != (classes, inputs.shape[1]):
            raise ValueError(
                f"features must have shape ({product.shape[1]}, N) and targets ({classes}, N), "
                f"got {inputs.shape} and {labels.shape}"
            )
        gradient = (labels - product @ inputs) @ inputs.T / inputs.shape[1]
        residual = _top_condition_number(gradient, classes)
        if depth >= 3:
            residual_prediction = residual ** (1.0 / (depth - 2))
    return HeadConditioning(
        num_linear_layers=depth,
        last_layer=last,
        product=head,
        chain_prediction=balanced_chain_condition_number(head, depth),
        residual=residual,
        residual_prediction=residual_prediction,
    )
