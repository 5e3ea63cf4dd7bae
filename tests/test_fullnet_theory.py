"""docs/theory.md §5 "J" statements along real trainings of fullnet networks on mnist-5k digits.

- J7 (and J10): the exact GD recursion of the balancedness matrix D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ
  for consecutive linear layers, at every step of a float64 full-batch GD run of the fullnet
  trainer (the full matrix fails across a ReLU, its diagonal does not).
- J12 (from J7): in the regime of (A)'s Thm 4.4 (wide first layer p₁ ≥ N, smooth σ_γ, γ = 0.2),
  ‖D_l(k)‖ stays below the envelope (1−ηλ)^{2k}‖D_l(0)‖ + floor built from the measured
  gradients, and decays at the rate (1−ηλ)² per step while the floor is negligible.
- §2(d), F1, J9, J11 through :mod:`fullnet.compare`: a linear head trained to convergence on
  fixed features reaches the optimum that ``ufm.solvers`` finds, and is balanced.

Every tolerance is derived in the test's docstring. Runtime about 10 s on one thread.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fullnet import training as ft
from fullnet.architectures import PyramidalMLP
from fullnet.compare import compare_model
from fullnet.data import load_mnist_5k, prepare_data, select_classes
from fullnet.objective import Regularization

UNIT_ROUNDOFF = float(np.finfo(np.float64).eps)


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [weight.detach().clone() for weight in model.weight_matrices()]


def _balancedness_matrix(weights: list[torch.Tensor], layer: int) -> torch.Tensor:
    """D_l = W_{l+1}ᵀW_{l+1} − W_lW_lᵀ for the 0-based index ``layer`` of W_l."""
    return weights[layer + 1].T @ weights[layer + 1] - weights[layer] @ weights[layer].T


def _gradient_forcing(gradients: list[torch.Tensor], layer: int) -> torch.Tensor:
    """g_{l+1}ᵀg_{l+1} − g_lg_lᵀ, the η² term of J7."""
    return gradients[layer + 1].T @ gradients[layer + 1] - gradients[layer] @ gradients[layer].T


def _rounding_scale(weights, gradients, layer: int, eta: float) -> float:
    """Frobenius size of the terms of one J7 step: ‖W_{l+1}‖² + ‖W_l‖²
    + η(‖W_{l+1}‖‖g_{l+1}‖ + ‖g_l‖‖W_l‖) + η²(‖g_{l+1}‖² + ‖g_l‖²)."""
    upper, lower = float(weights[layer + 1].norm()), float(weights[layer].norm())
    upper_gradient, lower_gradient = float(gradients[layer + 1].norm()), float(gradients[layer].norm())
    return (upper**2 + lower**2 + eta * (upper * upper_gradient + lower_gradient * lower)
            + eta**2 * (upper_gradient**2 + lower_gradient**2))


class _StepRecorder:
    """``on_step`` hook: W(k), the data gradients g(k) (``.grad`` after the step holds the gradient
    of the data term at W(k); the weight decay is added inside the optimizer) and η(k)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.previous = _weights(model)
        self.steps: list[tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], float]] = []
        self.data_terms: list[float] = []

    def __call__(self, trainer: ft.Trainer) -> None:
        current = _weights(self.model)
        gradients = [weight.grad.detach().clone() for weight in self.model.weight_matrices()]
        rate = trainer.optimizer.param_groups[0]["lr"]
        self.steps.append((self.previous, gradients, current, rate))
        self.data_terms.append(trainer.last_batch_loss)
        self.previous = current


def test_gd_balancedness_recursion_j7_holds_at_every_step_of_a_real_training():
    """J7: D_l(k+1) = (1−ηλ)²D_l(k) + η²(g_{l+1}ᵀg_{l+1} − g_lg_lᵀ) for every pair whose W_l is
    followed by the identity, at each of 100 full-batch GD steps (η dropped ten-fold at 80%) of a
    float64 network 784 → 64 → 32 (ReLU) → 16 → 16 → 10 (three linear layers) on 300 mnist-5k
    digits, equal λ on every layer.

    Tolerance (float64 rounding of one step): every term is a sum of inner products of length at
    most n = N + d_max (the gradient g = G·Zᵀ sums over the N samples, the Grams over the widths
    d ≤ 64), each with error ≤ γ_n ≈ n·u relative to the Frobenius size of its factors, so
    ‖lhs − rhs‖_F ≤ 4·n·u·scale with scale = ‖W_{l+1}‖² + ‖W_l‖² + η(‖W_{l+1}‖‖g_{l+1}‖ +
    ‖g_l‖‖W_l‖) + η²(‖g_{l+1}‖² + ‖g_l‖²) (norms at step k). Observed: ≈ 0.3·u·scale.

    Controls: across the ReLU after W_2 the full-matrix identity fails by many orders of
    magnitude, while its diagonal obeys the same recursion (J10, per-neuron rescaling invariance).
    """
    data = prepare_data(load_mnist_5k(), per_class=30, seed=0, dtype=torch.float64)
    model = PyramidalMLP(784, 10, [64, 32], linear_depth=3, linear_width=16, seed=0).double()
    lam = 1e-3
    recorder = _StepRecorder(model)
    trainer = ft.Trainer(model, data, Regularization([lam] * model.depth), learning_rate=0.05,
                         epochs=100, log_points=0, per_layer=False, on_step=recorder)
    trainer.run()
    assert len(recorder.steps) == 100
    rates = [step[3] for step in recorder.steps]
    assert rates == pytest.approx([0.05] * 80 + [0.005] * 20)
    inner_length = data.num_samples + max(model.widths[1:])
    linear_pairs = range(model.nonlinear_depth, model.depth - 1)  # W_3–W_4, W_4–W_5
    relu_pair = model.nonlinear_depth - 1  # W_2 (ReLU after it) – W_3
    worst_ratio = 0.0
    relu_violation = 0.0
    for before, gradients, after, eta in recorder.steps:
        decay = (1.0 - eta * lam) ** 2
        for layer in [*linear_pairs, relu_pair]:
            expected = decay * _balancedness_matrix(before, layer) + eta**2 * _gradient_forcing(
                gradients, layer)
            error = _balancedness_matrix(after, layer) - expected
            tolerance = 4 * inner_length * UNIT_ROUNDOFF * _rounding_scale(before, gradients, layer, eta)
            if layer == relu_pair:
                relu_violation = max(relu_violation, float(error.norm()) / tolerance)
                assert float(torch.diagonal(error).abs().max()) <= tolerance  # J10
            else:
                worst_ratio = max(worst_ratio, float(error.norm()) / tolerance)
                assert float(error.norm()) <= tolerance, (layer, float(error.norm()), tolerance)
    assert worst_ratio < 1.0
    assert relu_violation > 1e6  # KF4: the full matrix across a ReLU does not obey J7


def test_wide_smooth_network_balances_at_the_rate_of_j12():
    """J12 in the regime of (A)'s Thm 4.4: N = 100 mnist-5k digits (10 per class), p₁ = 128 ≥ N,
    pyramidal widths 128 ≥ 32 ≥ 16 ≥ 10, σ_γ with γ = 0.2, two linear layers (L2 = 2), float64
    full-batch GD for 1500 steps with η = 0.5, λ = 2e-3 (ηλ = 1e-3, no learning-rate drop).
    Inputs are scaled to unit norm (the curvature of Φ in W_1 grows with ‖X‖_op²/N, and η = 0.5
    is stable at this scale).

    1. Low loss: the data term falls below 5% of its initial value and the training accuracy is 1
       (observed: 0.505 → 0.013, 2.6%).
    2. Envelope (an inequality that must hold): with ρ = (1−ηλ)², b_j = ‖g_{l+1}ᵀg_{l+1} −
       g_lg_lᵀ‖_op(j) and e_j the J7 rounding tolerance of the previous test,
       ‖D_l(k)‖_op ≤ ρ^k‖D_l(0)‖_op + Σ_{j<k} ρ^{k−1−j}(η²b_j + e_j), checked with docs/theory.md §5's
       inequality rule lhs ≤ rhs(1 + 1e-10) + 1e-14·scale at every step.
    3. Rate: over the window [0, 500], where the floor F = Σ_j ρ^{499−j}η²b_j is below 1% of
       ρ^{500}‖D_l(0)‖, the triangle inequality on J7 bounds the measured per-step rate
       r = (‖D_l(500)‖/‖D_l(0)‖)^{1/500} to [(ρ^{500} − F')^{1/500}, (ρ^{500} + F')^{1/500}],
       F' = (F + Σ e_j)/‖D_l(0)‖; observed |r − ρ|/(1 − ρ) ≈ 1e-3.
    4. Balancing: ‖D_l‖ falls by more than 10× over the run (ρ^{1500} = 0.050).
    """
    data = prepare_data(load_mnist_5k(), per_class=10, seed=0, dtype=torch.float64)
    data = dataclasses.replace(data, inputs=data.inputs / data.inputs.norm(dim=1, keepdim=True))
    model = PyramidalMLP(784, 10, [128, 32], linear_depth=2, linear_width=16,
                         activation="smooth_leaky", gamma=0.2, seed=0).double()
    assert model.widths[1] >= data.num_samples  # wide first layer, hypothesis 1
    eta, lam, steps = 0.5, 2e-3, 1500
    pairs = list(range(model.nonlinear_depth, model.depth - 1))
    inner_length = data.num_samples + max(model.widths[1:])
    norms = {layer: [float(torch.linalg.matrix_norm(_balancedness_matrix(_weights(model), layer), 2))]
             for layer in pairs}
    forcing = {layer: [] for layer in pairs}
    rounding = {layer: [] for layer in pairs}
    data_terms: list[float] = []
    previous = {"weights": _weights(model)}

    def on_step(trainer: ft.Trainer) -> None:
        weights = _weights(model)
        gradients = [weight.grad.detach() for weight in model.weight_matrices()]
        for layer in pairs:
            norms[layer].append(float(torch.linalg.matrix_norm(_balancedness_matrix(weights, layer), 2)))
            forcing[layer].append(float(torch.linalg.matrix_norm(_gradient_forcing(gradients, layer), 2)))
            rounding[layer].append(4 * inner_length * UNIT_ROUNDOFF
                                   * _rounding_scale(previous["weights"], gradients, layer, eta))
        previous["weights"] = weights
        data_terms.append(trainer.last_batch_loss)

    trainer = ft.Trainer(model, data, Regularization([lam] * model.depth), learning_rate=eta,
                         epochs=steps, log_points=0, per_layer=False, lr_drop_fraction=1.0,
                         on_step=on_step)
    result = trainer.run()
    assert result.final.terms.data_term < 0.05 * data_terms[0]
    assert result.final.accuracy == 1.0
    rho = (1.0 - eta * lam) ** 2
    window = 500
    for layer in pairs:
        measured = np.asarray(norms[layer])
        gradient_floor = np.zeros(steps + 1)
        rounding_floor = np.zeros(steps + 1)
        for step in range(1, steps + 1):
            gradient_floor[step] = rho * gradient_floor[step - 1] + eta**2 * forcing[layer][step - 1]
            rounding_floor[step] = rho * rounding_floor[step - 1] + rounding[layer][step - 1]
        envelope = rho ** np.arange(steps + 1) * measured[0] + gradient_floor + rounding_floor
        assert np.all(measured <= envelope * (1 + 1e-10) + 1e-14 * measured.max()), layer
        assert gradient_floor[window] < 0.01 * rho**window * measured[0]  # floor negligible
        slack = (gradient_floor[window] + rounding_floor[window]) / measured[0]
        rate = (measured[window] / measured[0]) ** (1.0 / window)
        low = (rho**window - slack) ** (1.0 / window)
        high = (rho**window + slack) ** (1.0 / window)
        assert low <= rate <= high, (layer, rate, rho, low, high)
        assert abs(rate - rho) <= 0.02 * (1.0 - rho)  # the decay rate 1 − r matches 1 − ρ to 2%
        assert measured[-1] < 0.1 * measured[0]


def test_trained_linear_head_reaches_the_solved_optimum_and_is_balanced():
    """A network 784 → 32 → 16 (ReLU) → 3 → 3 on three digit classes (20 each, float64) is
    trained for 300 GD steps; then its non-linear layers are frozen (restored after every step)
    and the head alone runs 6000 more steps, which is exactly GD on Φ_head of docs/theory.md §2(d)
    with the fixed features Z_2. :func:`fullnet.compare.compare_model` must then find:

    - the L-BFGS optimum of ``ufm.solvers`` and the trained head agree: 0 ≤ Φ_head(trained) −
      Φ_head* ≤ Φ_head(trained) − D(R), the trained head's own duality gap for the nuclear-norm
      form of F1 (a proven bound; the L-BFGS value is ≥ the certified minimum up to the
      certificate's gap), and that gap is below 1e-7·Φ* (observed 5e-8·Φ*; the duality gap is
      first order in the distance to the optimum, the value difference second order: observed
      Φ_head(trained) − Φ_head* ≈ 6e-12·Φ*);
    - the cvxpy certificate confirms the solver's value within its duality gap + 1e-12;
    - the head is balanced (J9): ‖D_3‖_F ≤ (‖W_4‖_op‖∇_4‖_F + ‖∇_3‖_F‖W_3‖_op)/λ, a bound that
      vanishes at the optimum; here it is ≤ 1e-5 relative to ‖W_3W_3ᵀ‖_F;
    - the predicted singular values of both head layers (c_l·s_i(A*)^{1/2}, F2, J5) and class-mean
      norms match the trained head to 1e-5 relative (their first-order sensitivity to the
      distance from the optimum, √(gap/μ) with μ ≈ λ, is ≈ 3e-4·‖W‖ at most);
    - J11 at the (near-)critical point: the nonzero singular values of R = (1/N)(Y − AZ)Zᵀ equal
      λ for L2 = 2, to 1e-5 relative.
    """
    data = prepare_data(select_classes(load_mnist_5k(), [0, 1, 2]), per_class=20, seed=0,
                        dtype=torch.float64)
    model = PyramidalMLP(784, 3, [32, 16], linear_depth=2, linear_width=3, seed=0).double()
    lam = 1e-2
    regularization = Regularization([lam] * model.depth)
    ft.Trainer(model, data, regularization, learning_rate=0.03, epochs=300, log_points=0,
               per_layer=False, lr_drop_fraction=1.0).run()
    nonlinear = model.nonlinear_depth
    frozen = _weights(model)[:nonlinear]

    def hold_nonlinear_layers(trainer: ft.Trainer) -> None:
        with torch.no_grad():
            for weight, value in zip(model.weight_matrices()[:nonlinear], frozen):
                weight.copy_(value)

    ft.Trainer(model, data, regularization, learning_rate=0.2, epochs=6000, log_points=0,
               per_layer=False, lr_drop_fraction=1.0, on_step=hold_nonlinear_layers).run()
    for weight, value in zip(model.weight_matrices()[:nonlinear], frozen):
        assert torch.equal(weight.detach(), value)
    comparison = compare_model(model, data, regularization, epoch=6300)
    head = comparison.head
    assert head is not None and head.linear_depth == 2 and head.nonlinear_depth == 2
    assert all(run["stop_reason"] == "gradient_tolerance" for run in head.solver.values())
    difference = head.measured_loss - head.optimal_loss
    assert -1e-14 <= difference <= head.suboptimality_bound + 1e-15
    assert head.suboptimality_bound <= 1e-7 * head.optimal_loss
    assert comparison.row("Φ_head").relative_error <= 1e-7
    certificate = head.certificate
    assert certificate is not None
    assert certificate["dual_value"] - 1e-12 <= head.optimal_loss
    assert head.optimal_loss <= certificate["optimal_value"] + 1e-12
    assert not comparison.violations()
    balance = comparison.row("‖D_3‖_F")
    assert balance.holds and balance.measured <= balance.bound
    trained = [weight.detach().numpy() for weight in model.weight_matrices()[nonlinear:]]
    assert balance.measured <= 1e-5 * np.linalg.norm(trained[0] @ trained[0].T)
    for layer in (3, 4):
        for position in range(1, 4):
            row = comparison.row(f"s_{position}(W_{layer})")
            assert row.relative_error < 1e-5, row
    for name in ("mean ‖μ_c‖ of Z_3", "mean ‖μ_c‖ of output"):
        assert comparison.row(name).relative_error < 1e-5
    for position in range(1, 4):
        row = comparison.row(f"s_{position}(R)")
        assert row.predicted == pytest.approx(lam) and row.relative_error < 1e-5
    assert comparison.view is None  # no feature penalty: no unconstrained-features view
