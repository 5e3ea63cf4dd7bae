"""Tests of the smoothed DUFM objective Φ_ε and of the smoothing phase of ``kink_lbfgs``.

σ_ε(z) = 0 (z ≤ −ε), (z + ε)²/(4ε) (|z| < ε), z (z ≥ ε): a C¹ surrogate of the ReLU with
0 ≤ σ_ε − ReLU ≤ ε/4 (``ufm.models.DeepUFM.smoothed_value_and_gradient``).
"""

import math

import numpy as np
import pytest

from ufm import solvers as S
from ufm.models import DeepLinearUFM, DeepUFM, LinearHead, UFM

EPS = np.finfo(np.float64).eps


def _dufm():
    return DeepUFM(3, 2, (6, 5, 7, 4), 0.003, [0.002, 0.004, 0.001, 0.003])


def _regions(model, params, width):
    """Which piece of σ_ε every hidden pre-activation is on (−1: zero, 0: quadratic, 1: linear)."""
    pre = model._forward_numpy(params)[0][1:]  # the pre-activations entering a ReLU
    return [np.where(z <= -width, -1, np.where(z >= width, 1, 0)) for z in pre]


def _assert_same_as_exact(model, params, width):
    value, gradient = model.smoothed_value_and_gradient(params, width)
    exact_value, exact_gradient = model.value_and_gradient(params)
    assert value == exact_value
    for a, b in zip(gradient.blocks(), exact_gradient.blocks()):
        np.testing.assert_array_equal(a, b)


def test_zero_width_is_the_objective_bit_for_bit():
    for model in (_dufm(), DeepLinearUFM(3, 2, (4, 5, 6), 0.003, 0.002), UFM(3, 4, 5, 0.01, 0.02)):
        _assert_same_as_exact(model, model.random_parameters(1), 0.0)


def test_models_without_relu_ignore_the_width():
    rng = np.random.default_rng(3)
    head = LinearHead(rng.normal(size=(5, 9)), np.arange(9) % 3, (5, 4, 6), 0.01)
    for model in (DeepLinearUFM(3, 2, (4, 5, 6), 0.003, 0.002), head):
        _assert_same_as_exact(model, model.random_parameters(2), 0.3)


def test_smoothed_gradient_taylor_remainder_has_slope_two():
    """Φ_ε is piecewise smooth in θ; on a segment where no pre-activation changes piece of σ_ε
    the first-order Taylor remainder of an exact gradient falls as t² (fitted log-log slope
    within 0.05 of 2 over 2.5 decades, as in tests/test_models.py)."""
    model = _dufm()
    params = model.random_parameters(1, scale=2.0)
    direction = model.random_parameters(2)
    pre = model._forward_numpy(params)[0][1:]
    # ε in the widest gap between the middle half of the sorted |z|: about half of the entries
    # on the quadratic piece, none near a breakpoint ±ε.
    sizes = np.sort(np.abs(np.concatenate([z.ravel() for z in pre])))
    middle = sizes[len(sizes) // 4 : 3 * len(sizes) // 4]
    gap = int(np.argmax(np.diff(middle)))
    width = float(0.5 * (middle[gap] + middle[gap + 1]))
    steps = np.logspace(-2.5, -5.0, 11)
    before = _regions(model, params, width)
    after = _regions(model, params.axpy(steps[0], direction), width)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert any(np.any(r == 0) for r in before)  # the quadratic piece is exercised
    value, gradient = model.smoothed_value_and_gradient(params, width)
    slope = gradient.inner(direction)
    errors = np.array(
        [
            abs(model.smoothed_value_and_gradient(params.axpy(t, direction), width)[0]
                - value - t * slope)
            for t in steps
        ]
    )
    assert np.all(errors > 100 * EPS)
    fitted = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(fitted - 2.0) < 0.05, fitted


def test_smoothed_value_is_within_its_bound_of_the_objective():
    """One hidden ReLU layer (L = 2): F_ε − F = W₂(σ_ε(Z) − ReLU(Z)) with entries of
    σ_ε − ReLU in [0, ε/4], so ‖F_ε − F‖_F ≤ ‖W₂‖₂·(ε/4)·√(dN) =: e and
    |Φ_ε − Φ| ≤ (‖F − Y‖_F·e + e²/2)/N (the penalties are equal). Checked over five decades of
    ε, with the bound tight to within a factor 100 at the largest (not vacuous)."""
    model = DeepUFM(4, 3, (5, 6), 0.01, 0.02)
    params = model.random_parameters(4, scale=1.5)
    value = model.objective(params).total
    layers = model.forward(params)
    residual = np.linalg.norm(layers.output - model.targets)
    spectral = np.linalg.norm(params.weights[1], 2)
    hidden = layers.pre_activations[1]
    for width in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
        smoothed = model.smoothed_value_and_gradient(params, width)[0]
        error = spectral * width / 4 * math.sqrt(hidden.size)
        bound = (residual * error + 0.5 * error**2) / model.num_samples
        assert abs(smoothed - value) <= bound + 4 * EPS * value  # + rounding of Φ
    smoothed = model.smoothed_value_and_gradient(params, 1e-1)[0]
    error = spectral * 1e-1 / 4 * math.sqrt(hidden.size)
    assert abs(smoothed - value) >= 1e-2 * (residual * error) / model.num_samples


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_width_is_a_clear_error(bad):
    model = _dufm()
    with pytest.raises(ValueError, match="smoothing"):
        model.smoothed_value_and_gradient(model.random_parameters(0), bad)


# --------------------------------------------------------------------------------------------
# The smoothing phase of kink_lbfgs
# --------------------------------------------------------------------------------------------


def test_kink_lbfgs_smoothing_phase_reports_the_true_objective():
    model = DeepUFM(4, 2, (8, 8, 8), 0.004, 0.004)
    schedule, per_level, momentum_steps = (1.0, 0.1, 0.01), 40, 60
    budget = momentum_steps + len(schedule) * per_level
    seen = []
    solution = S.solve(
        model, "kink_lbfgs", seed=3, momentum=0.9, momentum_steps=momentum_steps,
        smoothing=schedule, smoothing_iterations=per_level, tolerance=0.0,
        max_iterations=budget, callback=lambda i, loss: seen.append((i, loss)),
    )
    assert "smoothing phase" in solution.message
    assert solution.settings["smoothing"] == list(schedule)
    assert solution.settings["smoothing_iterations"] == per_level
    assert [i for i, _ in seen] == list(range(1, solution.iterations + 1))
    assert solution.iterations <= budget
    # The run ends in the smoothing phase (the budget is spent there), so its last reported
    # loss is the true Φ of the returned point, not Φ_ε.
    assert "higher" not in solution.message
    assert seen[-1][1] == solution.loss == model.objective(solution.parameters).total
    # Deterministic, and a run without the phase takes other iterates.
    again = S.solve(
        model, "kink_lbfgs", seed=3, momentum=0.9, momentum_steps=momentum_steps,
        smoothing=schedule, smoothing_iterations=per_level, tolerance=0.0, max_iterations=budget,
    )
    assert again.loss == solution.loss
    plain = S.solve(
        model, "kink_lbfgs", seed=3, momentum=0.9, momentum_steps=momentum_steps,
        tolerance=0.0, max_iterations=budget,
    )
    assert "smoothing phase" not in plain.message and plain.loss != solution.loss


def test_kink_lbfgs_smoothing_settings_are_checked():
    model = UFM(2, 2, 3, 0.01, 0.01)
    with pytest.raises(ValueError, match=r"smoothing\[1\]"):
        S.solve(model, "kink_lbfgs", smoothing=[0.1, -1.0])
    with pytest.raises(ValueError, match=r"smoothing\[0\]"):
        S.solve(model, "kink_lbfgs", smoothing=[0.0])
    with pytest.raises(TypeError, match="smoothing"):
        S.solve(model, "kink_lbfgs", smoothing="0.1")
    with pytest.raises(TypeError, match="smoothing_iterations"):
        S.solve(model, "kink_lbfgs", smoothing_iterations=2.5)
    with pytest.raises(ValueError, match="smoothing_iterations"):
        S.solve(model, "kink_lbfgs", smoothing_iterations=-1)


def test_kink_lbfgs_smoothing_ends_lower_on_the_benchmark_model():
    # benchmarks/solvers.py, seed 2 (4-DUFM, K = 10, width 30): without the smoothing phase
    # L-BFGS stalls on the kinks at Φ ≈ 0.08740; the continuation reaches ≈ 0.08415 from the
    # same momentum phase, below GD's 0.08774 after 100,000 steps. The margin asserted (1e-3)
    # is under a third of the observed difference (3.3e-3).
    model = DeepUFM(10, 1, (30,) * 4, 0.004, 0.004)
    options = dict(
        initial=model.random_parameters(2), lr=0.5, momentum=0.95, momentum_steps=1000,
        tolerance=1e-9, max_iterations=3000, predicted=None, history_points=0,
    )
    plain = S.solve(model, "kink_lbfgs", **options)
    smoothed = S.solve(
        model, "kink_lbfgs", smoothing=(1.0, 0.3, 0.1, 0.01, 0.001, 0.0001), **options
    )
    assert smoothed.loss < plain.loss - 1e-3
    assert smoothed.loss < 0.08774  # GD's end point from the same initialization
    assert smoothed.loss == model.objective(smoothed.parameters).total


# --------------------------------------------------------------------------------------------
# The heavier weight decay of the momentum phase
# --------------------------------------------------------------------------------------------


def test_momentum_penalty_scale_descends_the_heavier_objective_and_reports_phi():
    """With every λ multiplied by c in the momentum phase, its iterates are those of the same
    phase on the model with λ·c (to rounding: the two sum the penalty in different orders;
    1e-10 relative allows ~1e5 eps of accumulated difference over 80 steps), while the losses
    reported are the model's own Φ."""
    model = DeepUFM(4, 2, (8, 8, 8), 0.004, [0.003, 0.004, 0.005])
    scale, steps = 1.3, 80
    heavy = DeepUFM(4, 2, (8, 8, 8), 0.004 * scale, [0.003 * scale, 0.004 * scale, 0.005 * scale])
    options = dict(seed=5, momentum=0.9, momentum_steps=steps, tolerance=0.0,
                   max_iterations=steps, lr=0.3)
    seen = []
    scaled = S.solve(model, "kink_lbfgs", momentum_penalty_scale=scale,
                     callback=lambda i, loss: seen.append(loss), **options)
    reference = S.solve(heavy, "kink_lbfgs", **options)
    for a, b in zip(scaled.parameters.blocks(), reference.parameters.blocks()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert scaled.settings["momentum_penalty_scale"] == scale
    assert seen[-1] == scaled.loss == model.objective(scaled.parameters).total
    assert scaled.loss < heavy.objective(scaled.parameters).total  # Φ, not the heavier one
    # c = 1 is the phase without the option, bit for bit.
    plain = S.solve(model, "kink_lbfgs", **options)
    same = S.solve(model, "kink_lbfgs", momentum_penalty_scale=1.0, **options)
    for a, b in zip(plain.parameters.blocks(), same.parameters.blocks()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_momentum_penalty_scale_is_checked(bad):
    with pytest.raises(ValueError, match="momentum_penalty_scale"):
        S.solve(UFM(2, 2, 3, 0.01, 0.01), "kink_lbfgs", momentum_penalty_scale=bad)
