"""Tests of ufm.dynamics: the GD-dynamics predictions J5, J7, J8, J9, J11, J12 of docs/theory.md §5.

The library's closed forms and recursions are compared with literal step-by-step loops, with
the sums of geometric series, with fullnet's learning-rate schedule (its function and a real
training run) and with gradient descent on a linear chain in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ufm import dynamics


# ------------------------------------------------------------------------------------------
# a linear chain F = W_3W_2W_1Z in float64 (the head of docs/theory.md §2(d))
# ------------------------------------------------------------------------------------------


def chain_problem(seed: int = 0, classes: int = 3, per_class: int = 3, widths=(5, 4, 4)):
    """Fixed features Z, one-hot Y and random weights W_1, W_2, W_3 (W_3 maps to K)."""
    generator = np.random.default_rng(seed)
    samples = classes * per_class
    features = generator.standard_normal((widths[0], samples))
    targets = np.kron(np.eye(classes), np.ones((1, per_class)))
    shapes = list(zip(widths[1:] + (classes,), widths))
    weights = [generator.standard_normal(shape) / math.sqrt(shape[1]) for shape in shapes]
    return features, targets, weights


def chain_data_gradients(features, targets, weights):
    """Gradients g_l of (1/(2N))‖W_L⋯W_1Z − Y‖² with respect to every W_l."""
    inputs = [features]
    for weight in weights:
        inputs.append(weight @ inputs[-1])
    signal = (inputs[-1] - targets) / features.shape[1]
    gradients = [None] * len(weights)
    for index in range(len(weights) - 1, -1, -1):
        gradients[index] = signal @ inputs[index].T
        signal = weights[index].T @ signal
    return gradients


def chain_objective(features, targets, weights, lam):
    output = features
    for weight in weights:
        output = weight @ output
    fit = 0.5 * np.sum((output - targets) ** 2) / features.shape[1]
    return fit + 0.5 * lam * sum(np.sum(weight * weight) for weight in weights)


def operator_norm(matrix):
    return float(np.max(np.abs(np.linalg.eigvalsh(matrix))))


# ------------------------------------------------------------------------------------------
# the learning-rate schedule
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("epochs", [1, 2, 4, 5, 7, 10, 99, 1200])
@pytest.mark.parametrize("fraction, factor", [(0.8, 0.1), (0.5, 0.3), (1.0, 0.1), (0.99, 0.1)])
def test_schedule_matches_fullnet_learning_rate_at(epochs, fraction, factor):
    from fullnet.training import drop_epoch, learning_rate_at

    schedule = dynamics.step_size_schedule(0.2, epochs, drop_fraction=fraction, drop_factor=factor)
    assert schedule.shape == (epochs,)
    for epoch in range(epochs):
        assert schedule[epoch] == learning_rate_at(epoch, 0.2, epochs, fraction, factor)
    assert dynamics.learning_rate_drop_epoch(epochs, fraction) == drop_epoch(epochs, fraction)


def test_schedule_repeats_each_epoch_for_minibatches():
    schedule = dynamics.step_size_schedule(0.1, 5, steps_per_epoch=3)
    assert schedule.tolist() == [0.1] * 12 + [0.1 * 0.1] * 3


@pytest.mark.parametrize("optimizer, batch_size", [("gd", None), ("sgd", 5)])
def test_schedule_matches_the_step_sizes_of_a_real_training_run(tmp_path, optimizer, batch_size):
    from fullnet.config import DataConfig, ModelConfig, ObserveConfig, OutputConfig, RunConfig, TrainingConfig
    from fullnet.training import train

    config = RunConfig(
        name="schedule",
        data=DataConfig(name="gaussian", per_class=4, gaussian_classes=3, gaussian_dimension=5),
        model=ModelConfig(nonlinear_widths=[6], linear_depth=2, linear_width=4, seed=0),
        training=TrainingConfig(optimizer=optimizer, batch_size=batch_size, epochs=11, learning_rate=0.05,
                                weight_decay=0.01, device="cpu", dtype="float64", threads=1),
        observe=ObserveConfig(log_points=0, per_layer=False),
        output=OutputConfig(progress=False),
    )
    used = []
    train(config, output_dir=tmp_path / optimizer, progress=False,
          on_step=lambda trainer: used.append(trainer.optimizer.param_groups[0]["lr"]))
    steps_per_epoch = 1 if batch_size is None else math.ceil(12 / batch_size)
    expected = dynamics.step_size_schedule(0.05, 11, steps_per_epoch=steps_per_epoch)
    assert np.array_equal(np.array(used), expected)


# ------------------------------------------------------------------------------------------
# contraction, envelope, floor: literal recursions and geometric sums
# ------------------------------------------------------------------------------------------


def test_contraction_is_the_literal_product():
    steps = dynamics.step_size_schedule(0.3, 50)
    lam = 0.02
    contraction = dynamics.balancedness_contraction(steps, lam)
    product, expected = 1.0, [1.0]
    for step in steps:
        product *= (1.0 - step * lam) ** 2
        expected.append(product)
    assert np.allclose(contraction, expected, rtol=1e-14, atol=0.0)
    constant = dynamics.balancedness_contraction(np.full(30, 0.3), lam)
    assert np.allclose(constant, (1.0 - 0.3 * lam) ** (2 * np.arange(31)), rtol=1e-13)


def test_envelope_is_the_literal_sum():
    generator = np.random.default_rng(1)
    steps = dynamics.step_size_schedule(0.4, 40, drop_fraction=0.75)
    brackets = generator.uniform(0.0, 2.0, size=steps.shape)
    lam, start = 0.05, 3.0
    envelope = dynamics.balancedness_envelope(start, steps, lam, brackets)
    for k in range(steps.size + 1):
        contraction = np.prod((1.0 - steps[:k] * lam) ** 2)
        total = contraction * start
        for j in range(k):
            total += steps[j] ** 2 * brackets[j] * np.prod((1.0 - steps[j + 1:k] * lam) ** 2)
        assert math.isclose(envelope[k], total, rel_tol=1e-13)
    pure = dynamics.balancedness_envelope(start, steps, lam)
    assert np.allclose(pure, start * dynamics.balancedness_contraction(steps, lam), rtol=1e-14)


def test_envelope_with_constant_bracket_is_a_geometric_sum_with_the_floor_as_limit():
    step, lam, bracket, start = 0.2, 0.01, 0.7, 5.0
    count = 4000
    envelope = dynamics.balancedness_envelope(start, np.full(count, step), lam, np.full(count, bracket))
    ratio = (1.0 - step * lam) ** 2
    k = np.arange(count + 1)
    closed = ratio**k * start + step**2 * bracket * (1.0 - ratio**k) / (1.0 - ratio)
    assert np.allclose(envelope, closed, rtol=1e-12)
    floor = dynamics.balancedness_floor(step, lam, bracket)
    assert math.isclose(floor, step**2 * bracket / (1.0 - ratio), rel_tol=1e-14)
    assert math.isclose(floor, step * bracket / (2.0 * lam), rel_tol=step * lam)  # ≈ ηG/(2λ)
    long = dynamics.balancedness_envelope(start, np.full(100_000, step), lam, np.full(100_000, bracket))
    assert math.isclose(long[-1], floor, rel_tol=1e-12)


def test_balancing_steps_match_the_contraction():
    start, tolerance, step, lam = 4.0, 1e-3, 0.1, 0.02
    exact = int(dynamics.balancing_steps(start, tolerance, step, lam, exact=True))
    contraction = dynamics.balancedness_contraction(np.full(exact + 1, step), lam)
    assert contraction[exact] * start <= tolerance < contraction[exact - 1] * start
    estimate = dynamics.balancing_steps(start, tolerance, step, lam)
    assert math.isclose(estimate, math.log(start / tolerance) / (2 * step * lam), rel_tol=1e-15)
    assert abs(estimate - exact) <= step * lam * exact + 1
    assert dynamics.balancing_steps(1e-4, tolerance, step, lam) == 0.0


def test_gradient_flow_is_the_small_step_limit_of_the_contraction():
    lam, time = 0.05, 7.0
    assert math.isclose(float(dynamics.gradient_flow_balancedness(2.0, lam, time)), 2.0 * math.exp(-0.7),
                        rel_tol=1e-15)
    for count in (100, 1000, 10_000):
        step = time / count
        discrete = dynamics.balancedness_contraction(np.full(count, step), lam)[-1]
        assert abs(discrete / math.exp(-2 * lam * time) - 1.0) <= 2 * lam * step * lam * time + 1e-12
    times = np.array([0.0, 1.0, 2.0])
    assert np.allclose(dynamics.gradient_flow_balancedness(1.0, lam, times), np.exp(-2 * lam * times))


def test_gradient_flow_solution_follows_the_linear_chain_flow():
    from scipy.integrate import solve_ivp

    features, targets, weights = chain_problem(2)
    lam = 0.05
    shapes = [weight.shape for weight in weights]
    sizes = [weight.size for weight in weights]

    def unpack(vector):
        parts, start = [], 0
        for shape, size in zip(shapes, sizes):
            parts.append(vector[start:start + size].reshape(shape))
            start += size
        return parts

    def velocity(_, vector):
        current = unpack(vector)
        gradients = chain_data_gradients(features, targets, current)
        return np.concatenate([(-g - lam * w).ravel() for g, w in zip(gradients, current)])

    initial = np.concatenate([weight.ravel() for weight in weights])
    solution = solve_ivp(velocity, (0.0, 6.0), initial, rtol=1e-11, atol=1e-13, t_eval=[2.0, 6.0])
    start = dynamics.balancedness_matrix(weights[0], weights[1])
    for time, column in zip(solution.t, solution.y.T):
        current = unpack(column)
        measured = dynamics.balancedness_matrix(current[0], current[1])
        predicted = dynamics.gradient_flow_balancedness(start, lam, time)
        assert np.allclose(measured, predicted, rtol=0.0, atol=1e-8 * np.abs(start).max())


# ------------------------------------------------------------------------------------------
# J7 and J12 along gradient descent on a linear chain (float64)
# ------------------------------------------------------------------------------------------


def test_one_step_identity_and_envelope_hold_along_gradient_descent_with_the_drop():
    features, targets, weights = chain_problem(0)
    lam, epochs = 0.03, 300
    steps = dynamics.step_size_schedule(0.5, epochs)
    pairs = range(len(weights) - 1)
    starts = {l: dynamics.balancedness_matrix(weights[l], weights[l + 1]) for l in pairs}
    measured = {l: [operator_norm(starts[l])] for l in pairs}
    brackets = {l: [] for l in pairs}
    for step in steps:
        gradients = chain_data_gradients(features, targets, weights)
        predicted = {}
        for l in pairs:
            before = dynamics.balancedness_matrix(weights[l], weights[l + 1])
            predicted[l] = dynamics.balancedness_step(before, step, lam, gradients[l], gradients[l + 1])
            brackets[l].append(dynamics.gradient_bracket_norm(gradients[l], gradients[l + 1]))
        weights = [(1.0 - step * lam) * w - step * g for w, g in zip(weights, gradients)]
        for l in pairs:
            after = dynamics.balancedness_matrix(weights[l], weights[l + 1])
            scale = np.linalg.norm(weights[l]) ** 2 + np.linalg.norm(weights[l + 1]) ** 2
            assert np.linalg.norm(after - predicted[l]) <= 1e-13 * scale  # J7
            measured[l].append(operator_norm(after))
    for l in pairs:
        envelope = dynamics.balancedness_envelope(measured[l][0], steps, lam, brackets[l])
        contraction = measured[l][0] * dynamics.balancedness_contraction(steps, lam)
        assert np.all(np.array(measured[l]) <= envelope * (1 + 1e-10) + 1e-14)  # J12
        assert np.all(envelope >= contraction)
        # the run balances: at the end the measured value is far below its start
        assert measured[l][-1] < 0.5 * measured[l][0]
    assert np.isclose(dynamics.gradient_bracket_norm(gradients[0], gradients[1], "fro"),
                      np.linalg.norm(gradients[1].T @ gradients[1] - gradients[0] @ gradients[0].T))


def test_envelope_holds_along_fullnet_training_in_float64(tmp_path):
    """J12 with the brackets of fullnet's own gradients and its dropped learning rate."""
    import torch

    from fullnet.config import DataConfig, ModelConfig, ObserveConfig, OutputConfig, RunConfig, TrainingConfig
    from fullnet.training import train

    epochs, lam = 40, 0.02
    config = RunConfig(
        name="envelope",
        data=DataConfig(name="gaussian", per_class=5, gaussian_classes=3, gaussian_dimension=6),
        model=ModelConfig(nonlinear_widths=[8], linear_depth=3, linear_width=5, seed=1),
        training=TrainingConfig(epochs=epochs, learning_rate=0.3, weight_decay=lam, device="cpu",
                                dtype="float64", threads=1),
        observe=ObserveConfig(log_points=epochs + 1),
        output=OutputConfig(progress=False),
    )
    brackets = {2: [], 3: []}  # D_2, D_3: the pairs whose first layer is linear (L1 = 1)

    def record(trainer):
        weights = trainer.model.weight_matrices()
        for layer in brackets:
            lower, upper = weights[layer - 1].grad, weights[layer].grad
            brackets[layer].append(dynamics.gradient_bracket_norm(lower, upper))

    result = train(config, output_dir=tmp_path, progress=False, on_step=record)
    assert torch.get_default_dtype() == torch.float32
    steps = dynamics.step_size_schedule(0.3, epochs)
    logged = np.array([snapshot.epoch for snapshot in result.history])
    assert logged[0] == 0 and logged[-1] == epochs and logged.size > 10
    for layer, values in brackets.items():
        assert len(values) == epochs
        measured = np.array([snapshot.layers[layer - 1].metrics["BAL.op"] for snapshot in result.history])
        envelope = dynamics.balancedness_envelope(measured[0], steps, lam, values)[logged]
        contraction = measured[0] * dynamics.balancedness_contraction(steps, lam)[logged]
        assert np.all(measured <= envelope * (1 + 1e-9))
        assert np.all(envelope[1:] > contraction[1:])
        assert measured[-1] < measured[0]


# ------------------------------------------------------------------------------------------
# J9, J5, J11
# ------------------------------------------------------------------------------------------


def minimize_chain(features, targets, weights, lam):
    from scipy.optimize import minimize

    shapes = [weight.shape for weight in weights]

    def unpack(vector):
        parts, start = [], 0
        for shape in shapes:
            size = shape[0] * shape[1]
            parts.append(vector[start:start + size].reshape(shape))
            start += size
        return parts

    def value_and_gradient(vector):
        current = unpack(vector)
        gradients = chain_data_gradients(features, targets, current)
        value = chain_objective(features, targets, current, lam)
        return value, np.concatenate([(g + lam * w).ravel() for g, w in zip(gradients, current)])

    initial = np.concatenate([weight.ravel() for weight in weights])
    result = minimize(value_and_gradient, initial, jac=True, method="L-BFGS-B",
                      options={"maxiter": 20_000, "gtol": 1e-13, "ftol": 0.0, "maxcor": 30})
    return unpack(result.x)


def test_critical_point_is_balanced_and_the_head_conditioning_matches_j5_and_j11():
    features, targets, weights = chain_problem(3, classes=3, per_class=3, widths=(5, 4, 4))
    features[:, :3] *= 2.5  # unequal classes: κ(W_L) > 1
    lam = 0.02
    random = dynamics.linear_head_conditioning(weights, features, targets)
    assert random.num_linear_layers == 3 and random.last_layer > 1.0
    optimum = minimize_chain(features, targets, weights, lam)
    gradients = chain_data_gradients(features, targets, optimum)
    full = [g + lam * w for g, w in zip(gradients, optimum)]
    gradient_norm = math.sqrt(sum(np.sum(g * g) for g in full))
    assert gradient_norm < 1e-7
    for l in range(2):
        imbalance = np.linalg.norm(dynamics.balancedness_matrix(optimum[l], optimum[l + 1]))
        bound = dynamics.critical_balancedness_bound(optimum[l], optimum[l + 1], full[l], full[l + 1], lam)
        assert imbalance <= bound * (1 + 1e-10) + 1e-15  # J9
        assert bound < 1e-6
    report = dynamics.linear_head_conditioning(optimum, features, targets)
    assert report.last_layer > 1.05
    assert math.isclose(report.chain_prediction, report.last_layer, rel_tol=1e-6)  # J5
    assert math.isclose(report.residual_prediction, report.last_layer, rel_tol=1e-6)  # J11
    assert report.to_dict()["num_linear_layers"] == 3


def test_j9_bound_holds_at_a_random_point():
    features, targets, weights = chain_problem(4)
    lam = 0.1
    gradients = chain_data_gradients(features, targets, weights)
    full = [g + lam * w for g, w in zip(gradients, weights)]
    imbalance = lam * dynamics.balancedness_matrix(weights[0], weights[1])
    assert np.allclose(imbalance, weights[1].T @ full[1] - full[0] @ weights[0].T, atol=1e-13)
    bound = dynamics.critical_balancedness_bound(weights[0], weights[1], full[0], full[1], lam)
    assert np.linalg.norm(imbalance) / lam <= bound


def test_balanced_chain_conditioning_is_the_root_of_the_product():
    generator = np.random.default_rng(5)
    classes, depth = 3, 4
    spectrum = np.diag([2.0, 1.3, 0.6])
    bases = [np.linalg.qr(generator.standard_normal((6, 6)))[0][:, :classes] for _ in range(depth)]
    bases.append(np.eye(classes))
    weights = [bases[index + 1] @ spectrum @ bases[index].T for index in range(depth)]
    for l in range(depth - 1):
        assert np.linalg.norm(dynamics.balancedness_matrix(weights[l], weights[l + 1])) < 1e-12
    report = dynamics.linear_head_conditioning(weights)
    assert math.isclose(report.last_layer, 2.0 / 0.6, rel_tol=1e-12)
    assert math.isclose(report.product, (2.0 / 0.6) ** depth, rel_tol=1e-12)
    assert math.isclose(report.chain_prediction, report.last_layer, rel_tol=1e-12)
    assert report.residual is None and report.residual_prediction is None
    assert dynamics.balanced_chain_condition_number(math.inf, 2) == math.inf


# ------------------------------------------------------------------------------------------
# input checks
# ------------------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="epochs"):
        dynamics.step_size_schedule(0.1, 0)
    with pytest.raises(ValueError, match="drop_fraction"):
        dynamics.step_size_schedule(0.1, 10, drop_fraction=1.5)
    with pytest.raises(ValueError, match="bracket_norms"):
        dynamics.balancedness_envelope(1.0, [0.1, 0.1], 0.01, [1.0])
    with pytest.raises(ValueError, match="step_sizes"):
        dynamics.balancedness_contraction([0.1, -0.1], 0.01)
    with pytest.raises(ValueError, match="< 2"):
        dynamics.balancedness_floor(100.0, 0.05, 1.0)
    with pytest.raises(ValueError, match="columns"):
        dynamics.balancedness_matrix(np.ones((3, 2)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="together"):
        dynamics.linear_head_conditioning([np.eye(2)], features=np.eye(2))
    with pytest.raises(ValueError, match="norm"):
        dynamics.gradient_bracket_norm(np.eye(2), np.eye(2), "nuclear")
    with pytest.raises(ValueError, match=">= 1"):
        dynamics.balanced_chain_condition_number(0.5, 2)
