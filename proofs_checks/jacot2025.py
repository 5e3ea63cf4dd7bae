"""Jacot, Súkeník, Wang & Mondelli 2025 (paper (A)): explicit re-derivations J1–J12, KF4.

docs/theory.md §5 J. The package checks its own explicit constants, not (A)'s (whose exact constants
are unconfirmed).

Setting for J1–J6: W_L ∈ R^{K×m}, W_{L−1} ∈ R^{m×m'}, Z_{L−2} ∈ R^{m'×N}, Z_{L−1} = W_{L−1}Z_{L−2},
Z_L = W_LZ_{L−1}; ε1 = ‖Z_L − Y‖_F < √n, ε2 = ‖W_LᵀW_L − W_{L−1}W_{L−1}ᵀ‖_op,
δ = ε1/s_K(W_L) + √ε2·min(√(m−K)‖Z_{L−2}‖_op, ‖Z_{L−2}‖_F).

Statements
----------
::

    J1 [derived]   s_K(W_L) ≥ (√n − ε1)/‖Z_{L−1}‖_op.
    J2 [derived]   Z_{L−1} = W_L^+Y + E, ‖E‖_F ≤ δ.
    J3 [derived]   if δ < √N/‖W_L‖_op, NC1.tr_unc(Z_{L−1}) ≤ δ²/(√N/‖W_L‖_op − δ)².
    J4 [derived]   ‖M − W_L^+‖_op ≤ δ/√n; if s_1(W_L)δ < √n,
                   κ(M) ≤ κ(W_L)(1 + s_K(W_L)δ/√n)/(1 − s_1(W_L)δ/√n).
    J5 [classical, Arora et al. 2018]  D_l = 0 ⇒ AAᵀ = (W_LW_Lᵀ)^{L2}, s_i(W_L) = s_i(A)^{1/L2},
                   κ(W_L) = κ(A)^{1/L2}.
    J6 [derived]   cos∠(W_L^+e_c, W_Lᵀe_c) ≥ 2κ/(1+κ²); with s_1(W_L)δ < √n,
                   cos∠(μ_c, w_c) ≥ 2κ/(1+κ²) − arcsin(s_1(W_L)δ/√n) ≥ 2κ/(1+κ²) − (π/2)s_1(W_L)δ/√n.
    J7 [derived]   identity activation after W_l: D_l(k+1) = (1−ηλ)²D_l(k) + η²(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ).
    J8 [derived]   V = −g − λW: W_{l+1}ᵀV_{l+1} + V_{l+1}ᵀW_{l+1} − V_lW_lᵀ − W_lV_lᵀ = −2λD_l.
    J9 [derived]   λD_l = W_{l+1}ᵀ∇_{l+1} − ∇_lW_lᵀ (∇ = g + λW), so
                   ‖D_l‖_F ≤ (‖W_{l+1}‖_op‖∇_{l+1}‖_F + ‖∇_l‖_F‖W_l‖_op)/λ.
    J10 [derived]  positively homogeneous activation after W_l: the diagonal of J7 holds; the full
                   matrix does not (KF4), and for σ_γ not even the diagonal.
    J12 [derived from J7]  ‖D_l(k)‖ ≤ (1−ηλ)^{2k}‖D_l(0)‖ + η²Σ_{j<k}(1−ηλ)^{2(k−1−j)}‖g_{l+1}ᵀg_{l+1} − g_lg_lᵀ‖(j).
    KF4 (known false)  full-matrix J7 for a ReLU pair.

The data gradients of the chains are computed here in numpy (two-line backpropagation formulas);
J11 evaluates the package's ``ufm.models.LinearHead`` at critical points found by ``ufm.solvers``.
"""

from __future__ import annotations

import math

import numpy as np

from .catalogue import INEQUALITY_TOLERANCE, UNIT_ROUNDOFF, Draw, Sides, Statement, Tolerance
from .tools import one_hot_targets, random_orthonormal, relu, singular_values

SOURCE = "Jacot, Súkeník, Wang & Mondelli 2025 (ICLR), arXiv:2410.04887; docs/theory.md §5 J"
LAMBDA_RANGE = (1e-4, 1e-1)


# ---------------------------------------------------------------------------------------------
# J1–J6: the last two layers of a nearly balanced, nearly interpolating network
# ---------------------------------------------------------------------------------------------


def sample_last_two_layers(draw: Draw) -> dict:
    """The generator of docs/theory.md §5 for J1–J6, with ε1, ε2, δ measured.

    W_L = USV_Lᵀ (singular values U[0.3, 3]); W_{L−1} = V_LSQᵀ + ν·noise (ν = 10^{U[−6,0]});
    Z_{L−2} = (W_LW_{L−1})^+Y + 10^{U[−6,0]}·noise.
    """
    classes = draw.integer(2, 6, "K")
    per_class = draw.integer(1, 6, "n")
    width = classes + draw.integer(0, 6, "m − K")
    input_width = classes + draw.integer(0, 6, "m' − K")
    imbalance = draw.log_uniform(1e-6, 1.0, "ν")
    feature_noise = draw.log_uniform(1e-6, 1.0, "feature noise")
    generator = draw.generator
    targets = one_hot_targets(classes, per_class)
    values = generator.uniform(0.3, 3.0, classes)
    left = random_orthonormal(generator, classes, classes)
    right = random_orthonormal(generator, width, classes)
    last = (left * values) @ right.T
    mixing = random_orthonormal(generator, input_width, classes)
    previous = (right * values) @ mixing.T + imbalance * generator.standard_normal((width, input_width))
    inputs = np.linalg.pinv(last @ previous) @ targets
    inputs = inputs + feature_noise * generator.standard_normal(inputs.shape)
    return _measure_last_two_layers(
        {"K": classes, "n": per_class, "m": width, "m_prime": input_width,
         "nu": imbalance, "feature_noise": feature_noise,
         "_W_L": last, "_W_prev": previous, "_Z_prev2": inputs, "_Y": targets}
    )


def _measure_last_two_layers(instance: dict) -> dict:
    """Add Z_{L−1}, Z_L, ε1, ε2, δ and the singular values of W_L to ``instance``."""
    last, previous, inputs, targets = (
        instance["_W_L"], instance["_W_prev"], instance["_Z_prev2"], instance["_Y"],
    )
    classes, width = last.shape
    features = previous @ inputs
    outputs = last @ features
    values = singular_values(last)
    input_values = singular_values(inputs)
    epsilon1 = float(np.linalg.norm(outputs - targets))
    epsilon2 = float(singular_values(last.T @ last - previous @ previous.T)[0])
    spread = min(math.sqrt(width - classes) * input_values[0], float(np.linalg.norm(inputs)))
    delta = epsilon1 / values[classes - 1] + math.sqrt(epsilon2) * spread
    instance.update(
        epsilon1=epsilon1, epsilon2=epsilon2, delta=delta,
        _Z_prev=features, _values=values,
    )
    return instance


def interpolation_hypothesis(instance: dict) -> bool:
    """ε1 < √n."""
    return instance["epsilon1"] < math.sqrt(instance["n"])


def evaluate_j1(instance: dict) -> Sides:
    """J1: s_K(W_L) ≥ (√n − ε1)/‖Z_{L−1}‖_op."""
    values = instance["_values"]
    lhs = float(values[instance["K"] - 1])
    rhs = (math.sqrt(instance["n"]) - instance["epsilon1"]) / singular_values(instance["_Z_prev"])[0]
    return Sides(lhs=lhs, rhs=rhs, scale=lhs)


def _decomposition_error(instance: dict) -> np.ndarray:
    return instance["_Z_prev"] - np.linalg.pinv(instance["_W_L"]) @ instance["_Y"]


def evaluate_j2(instance: dict) -> Sides:
    """J2: ‖Z_{L−1} − W_L^+Y‖_F ≤ δ."""
    lhs = float(np.linalg.norm(_decomposition_error(instance)))
    scale = float(np.linalg.norm(instance["_Z_prev"]))
    return Sides(lhs=lhs, rhs=instance["delta"], scale=scale)


def class_mean_field(features: np.ndarray, classes: int, per_class: int) -> np.ndarray:
    """Z̄ = ZΠ: every column replaced by its class mean (docs/theory.md §1.1)."""
    means = features.reshape(features.shape[0], classes, per_class).mean(axis=2)
    return np.repeat(means, per_class, axis=1)


def class_means(features: np.ndarray, classes: int, per_class: int) -> np.ndarray:
    """M = ZYᵀ/n."""
    return features.reshape(features.shape[0], classes, per_class).mean(axis=2)


def j3_hypothesis(instance: dict) -> bool:
    """δ < √N/‖W_L‖_op."""
    total = instance["K"] * instance["n"]
    return instance["delta"] < math.sqrt(total) / instance["_values"][0]


def evaluate_j3(instance: dict) -> Sides:
    """J3: NC1.tr_unc(Z_{L−1}) = ‖Z − Z̄‖²/‖Z̄‖² ≤ δ²/(√N/‖W_L‖_op − δ)²."""
    features = instance["_Z_prev"]
    mean_field = class_mean_field(features, instance["K"], instance["n"])
    lhs = float(np.sum((features - mean_field) ** 2) / np.sum(mean_field**2))
    total = instance["K"] * instance["n"]
    rhs = instance["delta"] ** 2 / (math.sqrt(total) / instance["_values"][0] - instance["delta"]) ** 2
    return Sides(lhs=lhs, rhs=rhs, scale=max(lhs, rhs))


def evaluate_j4_means(instance: dict) -> Sides:
    """J4 (means): ‖M − W_L^+‖_op ≤ δ/√n."""
    means = class_means(instance["_Z_prev"], instance["K"], instance["n"])
    pseudo_inverse = np.linalg.pinv(instance["_W_L"])
    lhs = float(singular_values(means - pseudo_inverse)[0])
    return Sides(lhs=lhs, rhs=instance["delta"] / math.sqrt(instance["n"]),
                 scale=float(singular_values(pseudo_inverse)[0]))


def conditioning_hypothesis(instance: dict) -> bool:
    """s_1(W_L)δ < √n."""
    return instance["_values"][0] * instance["delta"] < math.sqrt(instance["n"])


def evaluate_j4_conditioning(instance: dict) -> Sides:
    """J4 (NC2): κ(M) ≤ κ(W_L)(1 + s_K(W_L)δ/√n)/(1 − s_1(W_L)δ/√n)."""
    classes, root_n, delta = instance["K"], math.sqrt(instance["n"]), instance["delta"]
    means = class_means(instance["_Z_prev"], classes, instance["n"])
    mean_values = singular_values(means)
    values = instance["_values"]
    lhs = float(mean_values[0] / mean_values[classes - 1])
    rhs = float(
        values[0] / values[classes - 1]
        * (1.0 + values[classes - 1] * delta / root_n)
        / (1.0 - values[0] * delta / root_n)
    )
    return Sides(lhs=lhs, rhs=rhs, scale=lhs)


def _cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Column-wise cos∠(first_c, second_c)."""
    return np.sum(first * second, axis=0) / (
        np.linalg.norm(first, axis=0) * np.linalg.norm(second, axis=0)
    )


def evaluate_j6_kantorovich(instance: dict) -> Sides:
    """J6 (exact part): cos∠(W_L^+e_c, W_Lᵀe_c) ≥ 2κ/(1+κ²) for every c, κ = κ(W_L)."""
    last, values, classes = instance["_W_L"], instance["_values"], instance["K"]
    kappa = values[0] / values[classes - 1]
    lhs = _cosines(np.linalg.pinv(last), last.T)
    return Sides(lhs=lhs, rhs=np.full(classes, 2.0 * kappa / (1.0 + kappa**2)), scale=1.0)


def evaluate_j6_means(instance: dict) -> Sides:
    """J6 (means): cos∠(μ_c, w_c) ≥ 2κ/(1+κ²) − arcsin(s_1δ/√n) ≥ 2κ/(1+κ²) − (π/2)s_1δ/√n.

    Both bounds are checked for every class (the sides are vectors of length 2K).
    """
    last, values, classes = instance["_W_L"], instance["_values"], instance["K"]
    kappa = values[0] / values[classes - 1]
    ratio = values[0] * instance["delta"] / math.sqrt(instance["n"])
    means = class_means(instance["_Z_prev"], classes, instance["n"])
    cosines = _cosines(means, last.T)
    base = 2.0 * kappa / (1.0 + kappa**2)
    bounds = np.concatenate(
        [np.full(classes, base - math.asin(ratio)), np.full(classes, base - 0.5 * math.pi * ratio)]
    )
    return Sides(lhs=np.concatenate([cosines, cosines]), rhs=bounds, scale=1.0)


def sample_balanced_chain(draw: Draw) -> dict:
    """A balanced linear head W_l = U_{l+1}SU_lᵀ, L2 ∈ 2..5 layers, widths K..K+6, S ∈ U[0.3, 3]^K."""
    classes = draw.integer(2, 6, "K")
    depth = draw.integer(2, 5, "L2")
    widths = [classes + draw.integer(0, 6, f"d{l}") for l in range(depth)] + [classes]
    generator = draw.generator
    values = generator.uniform(0.3, 3.0, classes)
    bases = [random_orthonormal(generator, width, classes) for width in widths]
    layers = [(bases[l + 1] * values) @ bases[l].T for l in range(depth)]
    return {"K": classes, "L2": depth, "widths": widths, "S": values, "_layers": layers}


def chain_is_balanced(instance: dict) -> bool:
    """Hypothesis D_l = 0 (to rounding: ‖D_l‖_F ≤ 1e-13·‖W_l‖_F²) for every consecutive pair."""
    layers = instance["_layers"]
    for lower, upper in zip(layers[:-1], layers[1:]):
        imbalance = np.linalg.norm(upper.T @ upper - lower @ lower.T)
        if imbalance > 1e-13 * np.linalg.norm(lower) ** 2:
            return False
    return True


def _product(layers: list[np.ndarray]) -> np.ndarray:
    product = layers[0]
    for layer in layers[1:]:
        product = layer @ product
    return product


def evaluate_j5_gram(instance: dict) -> Sides:
    """J5 (Gram): AAᵀ = (W_LW_Lᵀ)^{L2}, A = W_{L:L1+1}."""
    layers, depth = instance["_layers"], instance["L2"]
    head = _product(layers)
    gram = layers[-1] @ layers[-1].T
    return Sides(lhs=head @ head.T, rhs=np.linalg.matrix_power(gram, depth),
                 scale=float(np.linalg.norm(head) ** 2))


def evaluate_j5_singular_values(instance: dict) -> Sides:
    """J5 (spectrum): s_i(W_L) = s_i(A)^{1/L2} (top K) and κ(W_L) = κ(A)^{1/L2}."""
    layers, depth, classes = instance["_layers"], instance["L2"], instance["K"]
    head_values = singular_values(_product(layers))[:classes]
    last_values = singular_values(layers[-1])[:classes]
    lhs = np.append(last_values, last_values[0] / last_values[-1])
    rhs = np.append(head_values ** (1.0 / depth), (head_values[0] / head_values[-1]) ** (1.0 / depth))
    conditioning = float(head_values[0] / head_values[-1])
    return Sides(lhs=lhs, rhs=rhs, conditioning=conditioning)


# ---------------------------------------------------------------------------------------------
# J7–J12: gradient steps on a pair of layers
# ---------------------------------------------------------------------------------------------


GAMMA = 0.2  # σ_γ with γ = 0.2 (docs/theory.md §2(e) test activation)


def activation(name: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (φ(H), φ'(H)) for φ ∈ {identity, relu, leaky relu (slope 0.1), sigma_gamma}."""
    if name == "identity":
        return values, np.ones_like(values)
    if name == "relu":
        return relu(values), (values > 0).astype(float)
    if name == "leaky relu":
        return np.where(values > 0, values, 0.1 * values), np.where(values > 0, 1.0, 0.1)
    if name == "sigma_gamma":
        softplus = np.logaddexp(0.0, values)
        sigmoid = 0.5 * (1.0 + np.tanh(0.5 * values))
        return GAMMA * values + (1.0 - GAMMA) * (softplus - math.log(2.0)), GAMMA + (1.0 - GAMMA) * sigmoid
    raise ValueError(f"unknown activation {name!r}")


def sample_layer_pair(draw: Draw, inner_activations: tuple[str, ...] = ("identity",)) -> dict:
    """Z_{l−1} → W_l → φ → W_{l+1} → ψ → W_{l+2} → F with the data term (1/(2N))‖F − Y‖².

    K ∈ 2..6, n ∈ 1..6, input width 1..8, widths K..K+6; weights Gaussian/√fan-in times
    10^{U[−1, 0.5]}; η = 10^{U[−3, 0]}, λ log-uniform in [1e-4, 1e-1]; φ from ``inner_activations``,
    ψ ∈ {identity, relu, sigma_gamma}; full batch or a minibatch of B samples.
    """
    classes = draw.integer(2, 6, "K")
    per_class = draw.integer(1, 6, "n")
    input_width = draw.integer(1, 8, "d_{l−1}")
    width = classes + draw.integer(0, 6, "d_l − K")
    next_width = classes + draw.integer(0, 6, "d_{l+1} − K")
    inner = draw.choice(list(inner_activations), "φ")
    outer = draw.choice(["identity", "relu", "sigma_gamma"], "ψ")
    step = draw.log_uniform(1e-3, 1.0, "η")
    decay = draw.log_uniform(*LAMBDA_RANGE, "λ")
    batch = draw.choice(["full", "minibatch"], "batch")
    generator = draw.generator
    total = classes * per_class
    columns = np.arange(total)
    if batch == "minibatch":
        columns = np.sort(generator.choice(total, size=draw.integer(1, total, "B"), replace=False))
    shapes = [(width, input_width), (next_width, width), (classes, next_width)]
    weights = [
        draw.log_uniform(0.1, 3.0, f"scale {i}") * generator.standard_normal(shape) / math.sqrt(shape[1])
        for i, shape in enumerate(shapes)
    ]
    inputs = generator.standard_normal((input_width, total))
    return {
        "K": classes, "n": per_class, "phi": inner, "psi": outer, "eta": step, "lambda": decay,
        "batch": batch, "B": int(columns.size), "widths": [input_width, width, next_width, classes],
        "_inputs": inputs[:, columns], "_targets": one_hot_targets(classes, per_class)[:, columns],
        "_weights": weights,
    }


def data_gradients(instance: dict, weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (g_l, g_{l+1}, g_{l+2}): gradients of (1/(2B))‖F − Y‖² w.r.t. W_l, W_{l+1}, W_{l+2}."""
    inputs, targets = instance["_inputs"], instance["_targets"]
    lower, upper, top = weights
    hidden, hidden_slope = activation(instance["phi"], lower @ inputs)
    upper_pre = upper @ hidden
    upper_out, upper_slope = activation(instance["psi"], upper_pre)
    residual = (top @ upper_out - targets) / inputs.shape[1]
    top_gradient = residual @ upper_out.T
    upper_signal = (top.T @ residual) * upper_slope  # G_{l+1}: gradient w.r.t. H_{l+1}
    upper_gradient = upper_signal @ hidden.T
    lower_gradient = ((upper.T @ upper_signal) * hidden_slope) @ inputs.T
    return lower_gradient, upper_gradient, top_gradient


def imbalance(weights: list[np.ndarray]) -> np.ndarray:
    """D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ."""
    return weights[1].T @ weights[1] - weights[0] @ weights[0].T


def _gradient_step(instance: dict) -> dict:
    """One step W ← (1 − ηλ)W − ηg on all three layers; the quantities J7/J10 compare."""
    step, decay = instance["eta"], instance["lambda"]
    weights = instance["_weights"]
    gradients = data_gradients(instance, weights)
    updated = [(1.0 - step * decay) * w - step * g for w, g in zip(weights, gradients)]
    lower_gradient, upper_gradient, _ = gradients
    bracket = upper_gradient.T @ upper_gradient - lower_gradient @ lower_gradient.T
    predicted = (1.0 - step * decay) ** 2 * imbalance(weights) + step**2 * bracket
    scale = float(np.linalg.norm(updated[1]) ** 2 + np.linalg.norm(updated[0]) ** 2)
    return {"after": imbalance(updated), "predicted": predicted, "scale": scale}


def evaluate_j7(instance: dict) -> Sides:
    """J7: D_l(k+1) = (1−ηλ)²D_l(k) + η²(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ)."""
    quantities = _gradient_step(instance)
    return Sides(lhs=quantities["after"], rhs=quantities["predicted"], scale=quantities["scale"])


def evaluate_j10_diagonal(instance: dict) -> Sides:
    """J10: diag D_l(k+1) = (1−ηλ)²diag D_l(k) + η²diag(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ)."""
    quantities = _gradient_step(instance)
    return Sides(lhs=np.diag(quantities["after"]), rhs=np.diag(quantities["predicted"]),
                 scale=quantities["scale"])


def evaluate_j8(instance: dict) -> Sides:
    """J8: W_{l+1}ᵀV_{l+1} + V_{l+1}ᵀW_{l+1} − V_lW_lᵀ − W_lV_lᵀ = −2λD_l, V = −g − λW."""
    weights, decay = instance["_weights"], instance["lambda"]
    lower_gradient, upper_gradient, _ = data_gradients(instance, weights)
    lower_velocity = -lower_gradient - decay * weights[0]
    upper_velocity = -upper_gradient - decay * weights[1]
    lhs = (
        weights[1].T @ upper_velocity + upper_velocity.T @ weights[1]
        - lower_velocity @ weights[0].T - weights[0] @ lower_velocity.T
    )
    scale = 2.0 * (
        np.linalg.norm(weights[1]) * np.linalg.norm(upper_velocity)
        + np.linalg.norm(weights[0]) * np.linalg.norm(lower_velocity)
    )
    return Sides(lhs=lhs, rhs=-2.0 * decay * imbalance(weights), scale=float(scale))


def _full_gradients(instance: dict) -> tuple[np.ndarray, np.ndarray]:
    weights, decay = instance["_weights"], instance["lambda"]
    lower_gradient, upper_gradient, _ = data_gradients(instance, weights)
    return lower_gradient + decay * weights[0], upper_gradient + decay * weights[1]


def evaluate_j9_identity(instance: dict) -> Sides:
    """J9 (identity): λD_l = W_{l+1}ᵀ∇_{l+1} − ∇_lW_lᵀ, ∇ = g + λW."""
    weights, decay = instance["_weights"], instance["lambda"]
    lower_full, upper_full = _full_gradients(instance)
    rhs = weights[1].T @ upper_full - lower_full @ weights[0].T
    scale = float(
        np.linalg.norm(weights[1]) * np.linalg.norm(upper_full)
        + np.linalg.norm(lower_full) * np.linalg.norm(weights[0])
        + decay * np.linalg.norm(weights[1]) ** 2 + decay * np.linalg.norm(weights[0]) ** 2
    )
    return Sides(lhs=decay * imbalance(weights), rhs=rhs, scale=scale)


def evaluate_j9_bound(instance: dict) -> Sides:
    """J9 (bound): ‖D_l‖_F ≤ (‖W_{l+1}‖_op‖∇_{l+1}‖_F + ‖∇_l‖_F‖W_l‖_op)/λ."""
    weights, decay = instance["_weights"], instance["lambda"]
    lower_full, upper_full = _full_gradients(instance)
    lhs = float(np.linalg.norm(imbalance(weights)))
    rhs = (
        singular_values(weights[1])[0] * np.linalg.norm(upper_full)
        + np.linalg.norm(lower_full) * singular_values(weights[0])[0]
    ) / decay
    scale = float(np.linalg.norm(weights[1]) ** 2 + np.linalg.norm(weights[0]) ** 2)
    return Sides(lhs=lhs, rhs=float(rhs), scale=scale)


def sample_trajectory(draw: Draw) -> dict:
    """A layer pair (identity after W_l) and k ∈ 1..60 gradient steps (η ≤ 0.3 keeps it stable)."""
    instance = sample_layer_pair(draw)
    instance["eta"] = min(instance["eta"], 0.3)
    instance["steps"] = draw.integer(1, 60, "k")
    return instance


def evaluate_j12(instance: dict) -> Sides:
    """J12: ‖D_l(k)‖ ≤ (1−ηλ)^{2k}‖D_l(0)‖ + η²Σ_{j<k}(1−ηλ)^{2(k−1−j)}‖bracket(j)‖ (op and F norms)."""
    step, decay, steps = instance["eta"], instance["lambda"], instance["steps"]
    contraction = (1.0 - step * decay) ** 2
    weights = [w.copy() for w in instance["_weights"]]
    initial = imbalance(weights)
    envelope = np.array([singular_values(initial)[0], np.linalg.norm(initial)])
    scale = 0.0
    for _ in range(steps):
        gradients = data_gradients(instance, weights)
        bracket = gradients[1].T @ gradients[1] - gradients[0] @ gradients[0].T
        envelope = contraction * envelope + step**2 * np.array(
            [singular_values(bracket)[0], np.linalg.norm(bracket)]
        )
        weights = [(1.0 - step * decay) * w - step * g for w, g in zip(weights, gradients)]
        if not all(np.all(np.isfinite(w)) for w in weights):
            break
        scale = max(scale, float(np.linalg.norm(weights[0]) ** 2 + np.linalg.norm(weights[1]) ** 2))
    final = imbalance(weights)
    lhs = np.array([singular_values(final)[0], np.linalg.norm(final)])
    return Sides(lhs=lhs, rhs=envelope, scale=scale * steps)


def trajectory_is_finite(instance: dict) -> bool:
    """Hypothesis: the gradient steps stay bounded (‖W‖ below 10⁶: no divergence)."""
    weights = [w.copy() for w in instance["_weights"]]
    for _ in range(instance["steps"]):
        gradients = data_gradients(instance, weights)
        weights = [(1.0 - instance["eta"] * instance["lambda"]) * w - instance["eta"] * g
                   for w, g in zip(weights, gradients)]
        if max(np.linalg.norm(w) for w in weights) > 1e6:
            return False
    return True


def sample_homogeneous_pair(draw: Draw) -> dict:
    """A layer pair with ReLU or leaky ReLU after W_l."""
    return sample_layer_pair(draw, ("relu", "leaky relu"))


def sample_relu_pair(draw: Draw) -> dict:
    """A layer pair with ReLU after W_l (KF4)."""
    return sample_layer_pair(draw, ("relu",))


def sample_smooth_pair(draw: Draw) -> dict:
    """A layer pair with σ_γ after W_l (J10, smooth activation)."""
    return sample_layer_pair(draw, ("sigma_gamma",))


def relu_is_active_and_inactive(instance: dict) -> bool:
    """Hypothesis for KF4: the ReLU after W_l is neither all-on nor all-off on the batch."""
    pre = instance["_weights"][0] @ instance["_inputs"]
    return bool(np.any(pre > 0) and np.any(pre < 0))


GRADIENT_IDENTITY_TOLERANCE = Tolerance(
    relative=1e-13,
    reason="c·u·κ with κ = 1 once the error is measured against scale = ‖W_{l+1}‖² + ‖W_l‖² (the "
    "size of the terms that cancel in D_l): each side is a handful of products of matrices with at "
    "most 12 rows or columns, error ≲ 4·12·u·scale ≈ 1e-14; docs/theory.md's 1e-14 is the typical error, "
    "1e-13 covers the worst of the seeded draws",
)

SPECTRAL_TOLERANCE = Tolerance(
    relative=100 * UNIT_ROUNDOFF,
    reason="c·u·κ with c = 100 and κ = κ(A) ≤ 10^{L2} per instance (the small singular values of "
    "A carry absolute error u·s_1(A), i.e. relative error u·κ(A); the L2-th root divides it by L2)",
)

GRAM_TOLERANCE = Tolerance(
    relative=1e-12,
    reason="AAᵀ and (W_LW_Lᵀ)^{L2} are products of at most 10 factors of norm ≤ 3: error "
    "≲ 10·12·u·‖A‖² ≈ 3e-14 relative to ‖A‖_F²; 1e-12 keeps a margin",
)


def _statement(identifier: str, title: str, tag: str, formula: str, relation: str, sample, evaluate,
               tolerance=INEQUALITY_TOLERANCE, hypotheses=None, **options) -> Statement:
    """A statement of this module (source: paper (A) unless ``source`` is given)."""
    return Statement(
        identifier=identifier, title=title, source=options.pop("source", SOURCE), tag=tag, formula=formula, relation=relation, sample=sample,
        evaluate=evaluate, tolerance=tolerance, hypotheses=hypotheses, **options,
    )


STATEMENTS = [
    _statement(
        "J1", "rank of the last layer", "[derived]",
        "s_K(W_L) ≥ (√n − ε1)/‖Z_{L−1}‖_op (Weyl: s_K(Z_L) ≥ √n − ε1)", ">=",
        sample_last_two_layers, evaluate_j1, hypotheses=interpolation_hypothesis,
        default_instances=300, hypothesis_examples=30,
    ),
    _statement(
        "J2", "decomposition of the penultimate features", "[derived]",
        "Z_{L−1} = W_L^+Y + E, ‖E‖_F ≤ δ := ε1/s_K(W_L) + √ε2·min(√(m−K)‖Z_{L−2}‖_op, ‖Z_{L−2}‖_F)",
        "<=", sample_last_two_layers, evaluate_j2,
        default_instances=300, hypothesis_examples=30,
    ),
    _statement(
        "J3", "NC1 bound", "[derived]",
        "δ < √N/‖W_L‖_op ⇒ NC1.tr_unc(Z_{L−1}) ≤ δ²/(√N/‖W_L‖_op − δ)²", "<=",
        sample_last_two_layers, evaluate_j3, hypotheses=j3_hypothesis,
        default_instances=300, minimum_held=0.2, hypothesis_examples=30,
    ),
    _statement(
        "J4.means", "class means near W_L^+", "[derived]",
        "‖M − W_L^+‖_op ≤ δ/√n", "<=", sample_last_two_layers, evaluate_j4_means,
        default_instances=300, hypothesis_examples=30,
    ),
    _statement(
        "J4.kappa", "NC2 bound (conditioning of the class means)", "[derived]",
        "s_1(W_L)δ < √n ⇒ κ(M) ≤ κ(W_L)(1 + s_K(W_L)δ/√n)/(1 − s_1(W_L)δ/√n)", "<=",
        sample_last_two_layers, evaluate_j4_conditioning, hypotheses=conditioning_hypothesis,
        default_instances=300, minimum_held=0.2, hypothesis_examples=30,
    ),
    _statement(
        "J5.gram", "balanced chain: Gram of the head", "[classical]",
        "D_l = 0 for l = L1+1..L−1 ⇒ AAᵀ = (W_LW_Lᵀ)^{L2}, A = W_{L:L1+1}", "=",
        sample_balanced_chain, evaluate_j5_gram, tolerance=GRAM_TOLERANCE,
        hypotheses=chain_is_balanced, default_instances=200, minimum_held=0.9,
        hypothesis_examples=20, source="Arora, Cohen & Hazan 2018 (ICML)",
    ),
    _statement(
        "J5.spectrum", "balanced chain: singular values and conditioning of W_L", "[classical]",
        "s_i(W_L) = s_i(A)^{1/L2} and κ(W_L) = κ(A)^{1/L2} (top K)", "=",
        sample_balanced_chain, evaluate_j5_singular_values, tolerance=SPECTRAL_TOLERANCE,
        hypotheses=chain_is_balanced, default_instances=200, minimum_held=0.9,
        hypothesis_examples=20, source="Arora, Cohen & Hazan 2018 (ICML)",
    ),
    _statement(
        "J6.kantorovich", "NC3: exact cosine bound for W_L^+ against W_Lᵀ", "[derived]",
        "cos∠(W_L^+e_c, W_Lᵀe_c) ≥ 2κ/(1+κ²), κ = κ(W_L) (Kantorovich)", ">=",
        sample_last_two_layers, evaluate_j6_kantorovich,
        default_instances=300, hypothesis_examples=30,
    ),
    _statement(
        "J6.means", "NC3 bound for the class means", "[derived]",
        "s_1δ < √n ⇒ cos∠(μ_c, w_c) ≥ 2κ/(1+κ²) − arcsin(s_1(W_L)δ/√n) ≥ 2κ/(1+κ²) − (π/2)s_1(W_L)δ/√n",
        ">=", sample_last_two_layers, evaluate_j6_means, hypotheses=conditioning_hypothesis,
        default_instances=300, minimum_held=0.2, hypothesis_examples=30,
    ),
    _statement(
        "J7", "exact GD balancedness recursion (linear layer pair)", "[derived]",
        "D_l(k+1) = (1−ηλ)²D_l(k) + η²(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ)", "=",
        sample_layer_pair, evaluate_j7, tolerance=GRADIENT_IDENTITY_TOLERANCE,
        default_instances=300, hypothesis_examples=30,
    ),
    _statement(
        "J8", "gradient flow contracts D_l at rate 2λ", "[derived]",
        "V = −g − λW: W_{l+1}ᵀV_{l+1} + V_{l+1}ᵀW_{l+1} − V_lW_lᵀ − W_lV_lᵀ = −2λD_l", "=",
        sample_layer_pair, evaluate_j8, tolerance=GRADIENT_IDENTITY_TOLERANCE,
        default_instances=300, hypothesis_examples=30,
    ),
    _statement(
        "J9.identity", "imbalance equals a gradient expression", "[derived]",
        "λD_l = W_{l+1}ᵀ∇_{l+1} − ∇_lW_lᵀ, ∇ = g + λW", "=",
        sample_layer_pair, evaluate_j9_identity, tolerance=GRADIENT_IDENTITY_TOLERANCE,
        default_instances=300, hypothesis_examples=30,
    ),
    _statement(
        "J9.bound", "critical points are balanced (bound)", "[derived]",
        "‖D_l‖_F ≤ (‖W_{l+1}‖_op‖∇_{l+1}‖_F + ‖∇_l‖_F‖W_l‖_op)/λ", "<=",
        sample_layer_pair, evaluate_j9_bound,
        default_instances=300, hypothesis_examples=30,
    ),
    _statement(
        "J10.diagonal", "homogeneous activation: the diagonal recursion", "[derived]",
        "diag D_l(k+1) = (1−ηλ)²diag D_l(k) + η²diag(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ)", "=",
        sample_homogeneous_pair, evaluate_j10_diagonal, tolerance=GRADIENT_IDENTITY_TOLERANCE,
        default_instances=300, hypothesis_examples=30,
    ),
    _statement(
        "J10.smooth", "σ_γ activation: not even the diagonal recursion holds (demonstration)",
        "[derived]",
        "for φ = σ_γ, diag D_l(k+1) ≠ (1−ηλ)²diag D_l(k) + η²diag(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ)", "=",
        sample_smooth_pair, evaluate_j10_diagonal, tolerance=GRADIENT_IDENTITY_TOLERANCE,
        default_instances=20, minimum_held=1.0, expected_false=True,
    ),
    _statement(
        "J12", "envelope of the imbalance along GD", "[derived]",
        "‖D_l(k)‖ ≤ (1−ηλ)^{2k}‖D_l(0)‖ + η²Σ_{j<k}(1−ηλ)^{2(k−1−j)}‖g_{l+1}ᵀg_{l+1} − g_lg_lᵀ‖(j)",
        "<=", sample_trajectory, evaluate_j12, hypotheses=trajectory_is_finite,
        default_instances=100, minimum_held=0.5, hypothesis_examples=15,
    ),
    _statement(
        "KF4", "full-matrix GD balancedness across a ReLU (known false)", "[derived]",
        "ReLU after W_l: D_l(k+1) ≠ (1−ηλ)²D_l(k) + η²(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ) in general", "=",
        sample_relu_pair, evaluate_j7, tolerance=GRADIENT_IDENTITY_TOLERANCE,
        hypotheses=relu_is_active_and_inactive, default_instances=20, minimum_held=0.5,
        expected_false=True,
    ),
]


# ---------------------------------------------------------------------------------------------
# J11: conditioning of a linear head at a critical point (ufm.models.LinearHead, ufm.solvers)
# ---------------------------------------------------------------------------------------------

HEAD_GRADIENT = 1e-10


def sample_solved_head(draw: Draw) -> dict:
    """Fixed features Z (class means plus noise, m ∈ K..K+3 rows), K ∈ 2..4, n ∈ 2..4, L2 ∈ 2..4 head
    layers of widths K..K+2, λ log-uniform in [1e-4, 1e-2]; Φ_head minimized by L-BFGS."""
    from ufm.models import LinearHead
    from ufm.solvers import solve

    classes = draw.integer(2, 4, "K")
    per_class = draw.integer(2, 4, "n")
    rows = classes + draw.integer(0, 3, "m − K")
    depth = draw.integer(2, 4, "L2")
    decay = draw.log_uniform(1e-4, 1e-2, "λ")
    generator = draw.generator
    means = generator.standard_normal((rows, classes))
    noise = draw.log_uniform(1e-2, 1.0, "feature noise")
    features = np.repeat(means, per_class, axis=1) + noise * generator.standard_normal((rows, classes * per_class))
    labels = np.repeat(np.arange(classes), per_class)
    widths = (rows,) + tuple(classes + draw.integer(0, 2, f"d{l + 2} − K") for l in range(depth - 1))
    model = LinearHead(features, labels, widths, decay, num_classes=classes)
    solution = solve(model, "lbfgs", seed=generator, tolerance=1e-13, max_iterations=5000, predicted=None)
    return {"K": classes, "n": per_class, "m": rows, "L2": depth, "lambda": decay, "widths": widths,
            "gradient_norm": solution.gradient_norm, "_model": model, "_solution": solution}


def _head_quantities(instance: dict):
    model, solution = instance["_model"], instance["_solution"]
    weights = solution.parameters.weights
    head = _product(list(weights))
    features = np.asarray(model.features if hasattr(model, "features") else model._fixed_features)
    targets = one_hot_targets(instance["K"], instance["n"])
    residual = (targets - head @ features) @ features.T / features.shape[1]
    return head, residual, weights[-1]


def head_is_critical_with_full_rank(instance: dict) -> bool:
    """Hypotheses: ‖∇Φ_head‖ ≤ 1e-10 and rank A = K (s_K(A) > 1e-6·s_1(A))."""
    if instance["gradient_norm"] > HEAD_GRADIENT:
        return False
    values = singular_values(_head_quantities(instance)[0])
    return bool(values[instance["K"] - 1] > 1e-6 * values[0])


def evaluate_j11_projector(instance: dict) -> Sides:
    """J11: R = RP_A, R = (1/N)(Y − AZ)Zᵀ, P_A the projector on row(A)."""
    head, residual, _ = _head_quantities(instance)
    projector = np.linalg.pinv(head) @ head
    scale = float(np.linalg.norm(residual))
    return Sides(lhs=residual @ projector, rhs=residual, scale=scale, slack=_head_slack(instance, scale))


def evaluate_j11_spectrum(instance: dict) -> Sides:
    """J11: the nonzero singular values of R are λ·s_i(W_L)^{2−L2} (so κ(W_L) = κ(R)^{1/(L2−2)} for L2 ≥ 3)."""
    _, residual, last = _head_quantities(instance)
    classes, depth, decay = instance["K"], instance["L2"], instance["lambda"]
    lhs = np.sort(singular_values(residual)[:classes])
    rhs = np.sort(decay * singular_values(last)[:classes] ** (2.0 - depth))
    scale = float(rhs.max())
    return Sides(lhs=lhs, rhs=rhs, scale=scale, slack=_head_slack(instance, scale))


def _head_slack(instance: dict, scale: float) -> float:
    """Allowance from the final gradient norm g: scale·(g/λ)·(1 + s_1(W_L))^{L2} (J9 bounds the
    imbalance of the head by ‖W‖‖∇‖/λ, and the identities move linearly with it)."""
    last = instance["_solution"].parameters.weights[-1]
    growth = (1.0 + singular_values(last)[0]) ** instance["L2"]
    return scale * instance["gradient_norm"] / instance["lambda"] * growth


HEAD_TOLERANCE = Tolerance(
    relative=1e-8,
    reason="docs/theory.md J11: 1e-8 relative at converged solver points, plus the per-instance allowance "
    "scale·(g/λ)·(1 + s_1(W_L))^{L2} from the final gradient norm g ≤ 1e-10: the identities hold "
    "exactly at ∇ = 0 and their residuals are linear in the imbalance, which J9 bounds by ‖W‖‖∇‖/λ",
)

STATEMENTS += [
    _statement(
        "J11.projector", "head at a critical point: R lives on row(A)", "[derived]",
        "at a critical point of Φ_head with rank A = K, R = (1/N)(Y − AZ_{L1})Z_{L1}ᵀ satisfies R = RP_A",
        "=", sample_solved_head, evaluate_j11_projector, tolerance=HEAD_TOLERANCE,
        hypotheses=head_is_critical_with_full_rank, default_instances=15, minimum_held=0.4,
        requires=("ufm.models:LinearHead", "ufm.solvers:solve"),
    ),
    _statement(
        "J11.spectrum", "head conditioning at a critical point", "[derived]",
        "nonzero singular values of R are λ·s_i(W_L)^{2−L2}; for L2 ≥ 3, κ(W_L) = κ(R)^{1/(L2−2)}",
        "=", sample_solved_head, evaluate_j11_spectrum, tolerance=HEAD_TOLERANCE,
        hypotheses=head_is_critical_with_full_rank, default_instances=15, minimum_held=0.4,
        requires=("ufm.models:LinearHead", "ufm.solvers:solve"),
    ),
]
