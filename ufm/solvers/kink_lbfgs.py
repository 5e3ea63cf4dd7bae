"""Method ``"kink_lbfgs"``: kink-aware L-BFGS for the ReLU DUFM.

GD warm-up, Nesterov momentum phase, optional ReLU smoothing continuation, then L-BFGS that
re-grows dead ReLU neurons and collapsed classes when it stalls (each change kept only if Φ
decreases); and :data:`KINK_LBFGS_LOW_RANK_SETTINGS`, the settings of the solver benchmark.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..models import DeepUFM, Parameters
from .numpy_lbfgs import (
    _LbfgsMemory,
    _add_curvature_pair,
    _armijo_backtracking,
    _diverged_result,
    _lbfgs_direction,
    _start_flat_method,
)

__all__ = ["KINK_LBFGS_LOW_RANK_SETTINGS"]

#: Settings of ``kink_lbfgs`` for the low-rank minima of the DUFM (the solver benchmark's:
#: README, Performance): 1,000 Nesterov steps (coefficient 0.95, step ``lr``) with every λ
#: multiplied by 1.15, then the ReLU smoothing continuation, 100 L-BFGS iterations per
#: relative width.
KINK_LBFGS_LOW_RANK_SETTINGS = {
    "momentum": 0.95,
    "momentum_steps": 1000,
    "momentum_penalty_scale": 1.15,
    "smoothing": (1.0, 0.3, 0.1, 0.01, 0.001, 0.0001),
    "smoothing_iterations": 100,
}


def _neuron_birth_direction(inputs: np.ndarray, upstream: np.ndarray) -> tuple[float, Any, Any]:
    """max over unit u of ‖G σ(Hᵀu)‖ (G = ``upstream``, H = ``inputs``) by projected ascent from
    every input column; returns (value, u, unit v = −Gσ(Hᵀu)/‖·‖). Deterministic."""
    best = (0.0, None, None)
    norms = np.linalg.norm(inputs, axis=0)
    for column in np.flatnonzero(norms > 0.0):
        u = inputs[:, column] / norms[column]
        for _ in range(30):
            pre = inputs.T @ u
            active = pre > 0.0
            if not active.any():
                break
            ascent = inputs @ ((upstream.T @ (upstream @ np.where(active, pre, 0.0))) * active)
            size = float(np.linalg.norm(ascent))
            if size == 0.0:
                break
            u = ascent / size
        out = upstream @ np.maximum(inputs.T @ u, 0.0)
        value = float(np.linalg.norm(out))
        if value > best[0]:
            best = (value, u, -out / value)
    return best


def _revive_dead_neurons(model, x, value, objective, dead_tolerance=1e-9):
    """Re-grow dead ReLU neurons of a :class:`DeepUFM` where that lowers Φ.

    A hidden neuron i of layer k is dead when its pre-activations Z_k[i, :] are all ≤ 0 (up to
    ``dead_tolerance`` times max|Z_k|): no gradient reaches its weights, so GD and L-BFGS never
    move it again. Replacing its input row by αu and its output column by βv changes the fit by
    −αβ‖Gσ(Hᵀu)‖ + O((αβ)²) (G = ∂fit/∂Z_{k+1}, H the layer's input) and the penalty by
    (λ_k α² + λ_{k+1} β²)/2 minus the old row's and column's: a descent direction when
    max_u ‖Gσ(Hᵀu)‖ > √(λ_k λ_{k+1}). The scale is chosen on the true Φ from a geometric grid;
    the change is kept only if Φ decreases. Returns (x, Φ, number of neurons revived).
    """
    if not isinstance(model, DeepUFM) or model.num_layers < 2:
        return x, value, 0
    lams = model._numpy_plan[1]
    shapes = model.parameter_shapes
    offsets = np.cumsum([0] + [math.prod(shape) for shape in shapes])
    first_weight = 1 if model._has_free_features else 0
    revived = 0
    for layer in range(1, model.num_layers):  # hidden layer k = layer: W_k row, W_{k+1} column
        tried: set[int] = set()
        while True:
            params = model._unflatten_views(x)
            pre, post, output = model._forward_numpy(params)
            z = pre[layer]
            scale = float(np.max(np.abs(z)))
            dead = [
                i
                for i in range(z.shape[0])
                if i not in tried and float(np.max(z[i])) <= dead_tolerance * scale
            ]
            if not dead:
                break
            upstream = (output - model.targets) / model.num_samples
            for k in range(model.num_layers - 1, layer, -1):
                upstream = (params.weights[k].T @ upstream) * (pre[k] > 0.0)
            strength, u, v = _neuron_birth_direction(post[layer - 1], upstream)
            lam_in, lam_out = lams[layer - 1], lams[layer]
            threshold = math.sqrt(lam_in * lam_out)
            neuron = dead[0]
            tried.add(neuron)
            if u is None or strength <= threshold * (1.0 + 1e-6):
                break  # the same test holds for every dead neuron of this layer
            # β/α = √(λ_k/λ_{k+1}) minimizes the penalty of the product αβ.
            ratio = math.sqrt(lam_in / lam_out) if lam_in > 0.0 and lam_out > 0.0 else 1.0
            row_shape = shapes[first_weight + layer - 1]
            column_shape = shapes[first_weight + layer]
            row_start = offsets[first_weight + layer - 1] + neuron * row_shape[1]
            column_block = offsets[first_weight + layer]
            column = column_block + neuron + column_shape[1] * np.arange(column_shape[0])
            typical = math.sqrt(float(np.mean(np.sum(params.weights[layer - 1] ** 2, axis=1))))
            best_value, best_x = value, None
            for step in range(24):
                alpha = max(typical, 1e-3) * 2.0 ** (1 - step)
                candidate = x.copy()
                candidate[row_start : row_start + row_shape[1]] = alpha * u
                candidate[column] = alpha * ratio * v
                new_value, _ = objective(candidate)
                if math.isfinite(new_value) and new_value < best_value:
                    best_value, best_x = new_value, candidate
                elif best_x is not None:
                    break
            if best_x is None:
                continue
            x, value = best_x, best_value
            revived += 1
    return x, value, revived


def _class_scores(model, output: np.ndarray) -> np.ndarray:
    """s_k = mean over the samples of class k of their output on their own class, ⟨F_i, y_i⟩."""
    own = np.sum(output * model.targets, axis=0)
    return np.array(
        [float(np.mean(own[model.labels == k])) for k in range(model.num_classes)]
    )


def _revive_collapsed_classes(model, x, value, objective, fraction=0.5):
    """Re-grow the path of classes whose features collapsed towards 0, where that lowers Φ.

    Criterion: the score of class k is s_k = mean over its samples i of ⟨F_i, y_i⟩ = F[k, i],
    its output on its own class (≈ 1 when the class is fitted). Class k is *collapsed* when
    s_k < ``fraction`` · median_j s_j (default one half of the median score; nothing is tried when
    the median is ≤ 0).

    Why this is a spurious stationary region: without biases the output of a class is positively
    homogeneous of degree L + 1 in the factors along its path (its H₁ columns, the weights that
    carry them, the row k of W_L), so when all these factors are small their gradients are
    products of L small factors, while weight decay pulls each of them back by λ times itself.
    A class whose features shrank early (as happens in a few hundred momentum steps on the
    4-DUFM) thus stays near 0 with a tiny gradient and an output ≈ 0 that costs ≈ n/(2N) of fit:
    no neuron is dead, so :func:`_revive_dead_neurons` does not help, and L-BFGS does not stall
    but creeps.

    Revival: for each collapsed class k (lowest score first) an exclusive chain is grown: its H₁
    columns are set to a₀u, u the unit projection of their mean on the orthogonal complement of
    the other classes' H₁ columns (a fixed complement vector if that projection vanishes, the
    least singular direction if there is no complement), so that the chosen layer-1 neuron sees 0
    from every other sample; in every hidden layer the neuron with the least
    ‖input row‖·‖output column‖·‖activations‖ (not yet used by this call) is rewired to take
    input only from the chain's previous neuron (row a_l u or a_l e_{previous}) and to feed only
    the chain's next neuron (the last one only output k, with weight a_L). The product
    c = a₀a₁⋯a_L is the class's new output; the factors are balanced for the penalty (λ_j a_j²
    equal, or equal factors when a λ is 0) and c is picked on the true Φ from a grid in (0, 1].
    The change is kept only if Φ decreases at once (never worse than before); otherwise the
    point is left as it was. Only for :class:`DeepUFM` with L ≥ 2.

    Returns (x, Φ, number of classes revived).
    """
    if not isinstance(model, DeepUFM) or model.num_layers < 2:
        return x, value, 0
    lams = model.penalty_weights[: model.num_layers + 1]  # λ_H, λ_1, …, λ_L
    depth = model.num_layers + 1
    if all(lam > 0.0 for lam in lams):
        log_root = 0.5 * sum(math.log(lam) for lam in lams)  # log Π √λ_j
    else:
        log_root = None
    params = model.unflatten(x)
    _, _, output = model._forward_numpy(params)
    scores = _class_scores(model, output)
    median = float(np.median(scores))
    if not median > 0.0:
        return x, value, 0
    order = np.argsort(scores, kind="stable")
    collapsed = [int(k) for k in order if scores[k] < fraction * median]
    used: list[set[int]] = [set() for _ in range(model.num_layers - 1)]
    revived = 0
    for k in collapsed:
        params = model.unflatten(x)
        _, post, _ = model._forward_numpy(params)
        features, weights = params.features, list(params.weights)
        mine = model.labels == k
        others = features[:, ~mine]
        basis, singular, _ = np.linalg.svd(others, full_matrices=True)
        largest = float(singular[0]) if singular.size else 0.0
        rank = int(np.sum(singular > 1e-12 * largest)) if largest > 0.0 else 0
        if rank < basis.shape[1]:
            complement = basis[:, rank:]
            u = complement @ (complement.T @ features[:, mine].mean(axis=1))
            size = float(np.linalg.norm(u))
            scale = float(np.linalg.norm(features))
            u = u / size if size > 1e-12 * scale and size > 0.0 else complement[:, 0]
        else:
            u = basis[:, -1]
        chain = []
        for layer in range(1, model.num_layers):  # hidden layer l: row of W_l, column of W_{l+1}
            importance = (
                np.linalg.norm(weights[layer - 1], axis=1)
                * np.linalg.norm(weights[layer], axis=0)
                * np.linalg.norm(post[layer], axis=1)
            )
            importance[list(used[layer - 1])] = np.inf
            neuron = int(np.argmin(importance))
            if not math.isfinite(importance[neuron]):
                chain = None
                break
            chain.append(neuron)
        if chain is None:
            continue
        best_value, best_x = value, None
        for c in np.linspace(1.0, 0.05, 20):
            if log_root is None:
                factors = [c ** (1.0 / depth)] * depth
            else:
                mu = math.exp(2.0 * (math.log(c) + log_root) / depth)
                factors = [math.sqrt(mu / lam) for lam in lams]
            new_features = features.copy()
            new_features[:, mine] = (factors[0] * u)[:, None]
            new_weights = [w.copy() for w in weights]
            new_weights[0][chain[0]] = factors[1] * u
            for layer in range(1, model.num_layers):
                new_weights[layer][:, chain[layer - 1]] = 0.0
                if layer < model.num_layers - 1:
                    new_weights[layer][chain[layer]] = 0.0
                    new_weights[layer][chain[layer], chain[layer - 1]] = factors[layer + 1]
                else:
                    new_weights[layer][k, chain[layer - 1]] = factors[layer + 1]
            candidate = Parameters._unchecked(new_features, tuple(new_weights), None).flatten()
            new_value, _ = objective(candidate)
            if math.isfinite(new_value) and new_value < best_value:
                best_value, best_x = new_value, candidate
        if best_x is None:
            continue
        x, value = best_x, best_value
        for layer, neuron in enumerate(chain):
            used[layer].add(neuron)
        revived += 1
    return x, value, revived


def _hidden_preactivation_rms(model, x: np.ndarray) -> float:
    """Scale of the pre-activations entering a ReLU at the point ``x``: the square root of the
    mean over those layers of each layer's mean square (their RMS when the hidden widths are
    equal; 0 if the model has no ReLU)."""
    relu_after = model._numpy_plan[0]
    pre, _, _ = model._forward_numpy(model._unflatten_views(x))
    squares = [float(np.mean(pre[l + 1] ** 2)) for l, relu in enumerate(relu_after) if relu]
    return math.sqrt(sum(squares) / len(squares)) if squares else 0.0


def _smoothing_continuation(
    model, state, trace, x, start_value, iteration, max_iterations, schedule, level_iterations,
    memory, tolerance,
):
    """L-BFGS on Φ_ε (ReLU replaced by its C¹ quadratic smoothing σ_ε,
    :meth:`ufm.models.DeepUFM.smoothed_value_and_gradient`) for each ε = ρ·s in turn, ρ from
    ``schedule`` and s the RMS of the hidden pre-activations at ``x``; at most
    ``level_iterations`` iterations per level, each counted and recorded with the true Φ (and the
    norm of ∇Φ_ε). A minimum of Φ on its kinks is the limit of minimizers of Φ_ε, which
    L-BFGS reaches without zigzagging across the kinks.

    ``start_value`` is Φ(x). Returns (x, iterations done, Φ at the end); the starting point is
    returned when the phase ended with a higher Φ.
    """
    scale = _hidden_preactivation_rms(model, x)
    start_x, last = x, {}
    if scale == 0.0 or not schedule:
        return x, iteration, start_value

    def smoothed(point, width):
        value, gradient, true_value = model._smoothed_value_and_gradient_numpy(
            model._unflatten_views(point), width
        )
        state.evaluations += 1
        last["true"] = true_value  # Φ of the last point evaluated (the accepted one, below)
        return value, np.concatenate([block.ravel() for block in gradient.blocks()])

    true_value = start_value
    for relative in schedule:
        width = relative * scale

        def objective(point, width=width):
            return smoothed(point, width)

        value, gradient = objective(x)
        pairs = _LbfgsMemory(x.size, memory)
        for _ in range(level_iterations):
            norm = math.sqrt(float(gradient @ gradient))
            if iteration >= max_iterations or not math.isfinite(value) or norm <= tolerance:
                break
            direction, slope = _lbfgs_direction(pairs, gradient, norm)
            accepted, candidate, new_value, new_gradient = _armijo_backtracking(
                objective, x, value, direction, slope
            )
            if not accepted or not np.any(candidate - x):
                break
            _add_curvature_pair(pairs, candidate - x, new_gradient - gradient)
            x, value, gradient, true_value = candidate, new_value, new_gradient, last["true"]
            iteration += 1
            trace.record(iteration, x, true_value, gradient)
            trace.finish(iteration, true_value)
    if not true_value <= start_value:
        return start_x, iteration, true_value
    return x, iteration, true_value


def _run_kink_lbfgs(
    model,
    initial,
    *,
    tolerance,
    max_iterations,
    lbfgs_memory,
    warmup_steps,
    lr,
    momentum,
    momentum_steps,
    stall_window,
    stall_decrease,
    state,
    progress,
    callback=None,
    smoothing=(),
    smoothing_iterations=100,
    momentum_penalty_scale=1.0,
):
    """Fixed-step GD warm-up, optional Nesterov momentum phase, optional smoothing continuation
    (:func:`_smoothing_continuation`), then L-BFGS that, at its start and when it stalls at the
    ReLU kinks, re-grows dead neurons (:func:`_revive_dead_neurons`) and collapsed classes
    (:func:`_revive_collapsed_classes`), each kept only if Φ decreases, and goes on. Returns
    (parameters, iterations, stop reason, message; the message counts the revived neurons and
    classes)."""
    # Phase 1: the papers' fixed-step gradient descent (the same iterates as method "gd").
    warmup = min(warmup_steps, max_iterations)
    objective, trace, x, value, gradient, norm, iteration, failure = _start_flat_method(
        "kink_lbfgs", model, initial, state, progress, callback, (warmup, lr, tolerance)
    )
    if failure is not None:
        return failure

    # Phase 2: Nesterov momentum (step lr), restarted whenever the phase's objective increases.
    # The iterate is the extrapolated point, where Φ and ∇Φ are evaluated. With
    # momentum_penalty_scale c ≠ 1 the phase descends Φ + ((c − 1)/2)Σ_j λ_j‖θ_j‖² (every λ
    # multiplied by c) and reports Φ.
    extra_penalty = None
    if momentum_penalty_scale != 1.0:
        extra_penalty = (momentum_penalty_scale - 1.0) * np.concatenate(
            [
                np.full(math.prod(shape), lam)
                for lam, shape in zip(model.penalty_weights, model.parameter_shapes)
            ]
        )

    def phase_objective(point, value, gradient):
        """(objective of the phase, its gradient) from Φ(point), ∇Φ(point)."""
        if extra_penalty is None:
            return value, gradient
        extra = extra_penalty * point
        return value + 0.5 * float(extra @ point), gradient + extra

    last = min(warmup + momentum_steps, max_iterations)
    phase_value, phase_gradient = phase_objective(x, value, gradient)
    base, previous_base = x - lr * phase_gradient, x
    while iteration < last and norm > tolerance and momentum > 0.0:
        candidate = base + momentum * (base - previous_base)
        new_value, new_gradient = objective(candidate)
        if not (math.isfinite(new_value) and np.all(np.isfinite(new_gradient))):
            return _diverged_result(model, x, iteration, "momentum")
        new_phase_value, phase_gradient = phase_objective(candidate, new_value, new_gradient)
        previous_base, base = base, candidate - lr * phase_gradient
        if new_phase_value > phase_value:
            previous_base = base
        x, value, gradient, phase_value = candidate, new_value, new_gradient, new_phase_value
        iteration += 1
        norm = trace.record(iteration, x, value, gradient)
        trace.finish(iteration, value)
    if norm <= tolerance:
        message = f"stationarity {norm:.3e} <= {tolerance:.3e} (before L-BFGS)"
        return model.unflatten(x), iteration, "gradient_tolerance", message

    # Phase 3: L-BFGS with dead-neuron and collapsed-class revival at its start and whenever it
    # stalls.
    def revive(x, value):
        x, value, neurons = _revive_dead_neurons(model, x, value, objective)
        x, value, classes = _revive_collapsed_classes(model, x, value, objective)
        return x, value, neurons, classes

    revived_total = classes_total = 0
    if iteration < max_iterations:
        x_new, value_new, revived_total, classes_total = revive(x, value)
        if revived_total or classes_total:
            x = x_new
            value, gradient = objective(x)
            iteration += 1
            norm = trace.record(iteration, x, value, gradient)
            trace.finish(iteration, value)
    smoothing_note = ""
    if smoothing and iteration < max_iterations:
        before = value
        x, iteration, after = _smoothing_continuation(
            model, state, trace, x, value, iteration, max_iterations, smoothing,
            smoothing_iterations, lbfgs_memory, tolerance,
        )
        value, gradient = objective(x)
        norm = math.sqrt(float(gradient @ gradient))
        smoothing_note = f"; smoothing phase: Φ {before:.8g} → {after:.8g}" + (
            " (higher: its start point kept)" if not after <= before else ""
        )
    pairs = _LbfgsMemory(x.size, lbfgs_memory)
    window = [value]  # Φ of the last stall_window + 1 L-BFGS iterates
    reason, message = "max_iterations", f"{max_iterations} iterations"
    while True:
        if norm <= tolerance:
            reason, message = "gradient_tolerance", f"stationarity {norm:.3e} <= {tolerance:.3e}"
            break
        if iteration >= max_iterations:
            break
        stalled = len(window) > stall_window and window[0] - value <= stall_decrease * max(
            1.0, abs(value)
        )
        failed = False
        if not stalled:
            direction, slope = _lbfgs_direction(pairs, gradient, norm)
            accepted, candidate, new_value, new_gradient = _armijo_backtracking(
                objective, x, value, direction, slope
            )
            if not accepted and len(pairs):
                pairs.clear()
                continue
            failed = not accepted or not np.any(candidate - x)
        if stalled or failed:
            x_new, value_new, revived, classes = revive(x, value)
            if revived == 0 and classes == 0:
                if failed:
                    reason = "line_search_failed"
                    message = (
                        "no step along −∇Φ decreases Φ and no dead neuron or collapsed class can "
                        "be revived"
                    )
                else:
                    reason = "no_progress"
                    message = (
                        f"Φ decreased by ≤ {stall_decrease:.1e} (relative) in {stall_window} "
                        "iterations and no dead neuron or collapsed class can be revived"
                    )
                break
            revived_total += revived
            classes_total += classes
            x, value = x_new, value_new
            value, gradient = objective(x)
            pairs.clear()
            window = [value]
            iteration += 1
            norm = trace.record(iteration, x, value, gradient)
            trace.finish(iteration, value)
            continue
        _add_curvature_pair(pairs, candidate - x, new_gradient - gradient)
        x, value, gradient = candidate, new_value, new_gradient
        iteration += 1
        window.append(value)
        if len(window) > stall_window + 1:
            del window[0]
        norm = trace.record(iteration, x, value, gradient)
        trace.finish(iteration, value)
    message += f"; {revived_total} dead neurons revived; {classes_total} collapsed classes revived"
    return model.unflatten(x), iteration, reason, message + smoothing_note
