"""Tests of ufm.models: objectives, exact gradients, forward passes, torch path, validation.

docs/theory.md §1.2 (loss convention) and §2 (models).
"""

import json
import math

import numpy as np
import pytest

from ufm.models import (
    DeepLinearUFM,
    DeepUFM,
    LayerFeatures,
    LinearHead,
    ObjectiveParts,
    Parameters,
    UFM,
)

torch = pytest.importorskip("torch")

EPS = np.finfo(np.float64).eps


def _head_model():
    rng = np.random.default_rng(7)
    labels = np.array([0, 2, 1, 1, 0, 2, 2, 1, 0])  # unordered, K = 3, N = 9
    return LinearHead(rng.normal(size=(5, 9)), labels, (5, 4, 6), [0.01, 0.02, 0.005])


MODELS = {
    "ufm": lambda: UFM(3, 4, 5, 0.01, 0.02),
    "ufm_bias": lambda: UFM(4, 2, 6, 0.005, 0.01, bias=True),
    "deep_linear": lambda: DeepLinearUFM(3, 2, (4, 5, 6), 0.003, [0.002, 0.004, 0.001]),
    "dufm": lambda: DeepUFM(3, 2, (6, 5, 7, 4), 0.003, [0.002, 0.004, 0.001, 0.003]),
    "dufm_nonneg": lambda: DeepUFM(2, 3, (4, 4, 4), 0.01, 0.02, nonneg_H1=True),
    "dufm_L1": lambda: DeepUFM(2, 3, (4,), 0.01, 0.02),
    "head": _head_model,
}


def _random_point(model, seed):
    """A random point with a nonzero bias (the E-B1 initialization sets b = 0)."""
    params = model.random_parameters(seed)
    if params.bias is not None:
        rng = np.random.default_rng(seed + 100)
        params = Parameters(params.features, params.weights, rng.normal(size=params.bias.shape))
    return params


def _activation_pattern(model, params):
    return [pre > 0 for pre in model.forward(params).pre_activations[1:]]


def _taylor_errors(model, params, direction, steps):
    """|Φ(θ + tΔ) − Φ(θ) − t⟨∇Φ(θ), Δ⟩| for every t in ``steps``."""
    value, gradient = model.value_and_gradient(params)
    slope = gradient.inner(direction)
    return np.array(
        [abs(model.objective(params.axpy(t, direction)).total - value - t * slope) for t in steps]
    )


# ------------------------------------------------------------------------------------------
# Gradients
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_taylor_remainder_has_slope_two(name):
    """The first-order Taylor remainder of Φ falls as t² (exact gradient), as in pymanopt's check.

    Steps span 10^-2.5..10^-5 (2.5 decades): the remainder is ≥ ~1e-14 there, above the float64
    rounding of Φ (~1e-16 for Φ ≈ 0.5), and the fitted log-log slope of an exact gradient is 2 up
    to the third-order term's influence (local slopes ≥ 1.92 at the largest step, deep linear
    model); a gradient error of relative size δ would give slope 1 once t < δ. Tolerance 0.05
    on the fitted slope.
    """
    model = MODELS[name]()
    params = _random_point(model, 1)
    direction = _random_point(model, 2)
    steps = np.logspace(-2.5, -5.0, 11)
    if isinstance(model, DeepUFM):
        # Away from kinks: the ReLU pattern is the same along the whole segment θ + tΔ.
        before = _activation_pattern(model, params)
        after = _activation_pattern(model, params.axpy(steps[0], direction))
        assert all(np.array_equal(a, b) for a, b in zip(before, after))
    errors = _taylor_errors(model, params, direction, steps)
    assert np.all(errors > 100 * EPS)  # the remainder stays above rounding noise
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - 2.0) < 0.05, slope


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_autograd_gradient_equals_analytic_gradient(name):
    """Same formula in two implementations: agreement to 1e-12 relative (float64, ~1e4·eps)."""
    model = MODELS[name]()
    params = _random_point(model, 3)
    value, gradient = model.value_and_gradient(params)
    torch_value, torch_gradient = model.value_and_gradient_torch(params.to_torch())
    assert isinstance(torch_value, torch.Tensor) and torch_value.dtype == torch.float64
    assert torch_gradient.is_torch
    assert abs(float(torch_value) - value) <= 1e-12 * abs(value)
    difference = (torch_gradient.to_numpy() - gradient).norm()
    assert difference <= 1e-12 * gradient.norm()
    assert abs(float(model.torch_objective(params.to_torch())) - value) <= 1e-12 * abs(value)


def test_torch_gradient_accepts_numpy_and_leaves_input_untouched():
    model = MODELS["dufm"]()
    params = _random_point(model, 4).to_torch(requires_grad=True)
    before = params.flatten()
    _, gradient = model.value_and_gradient_torch(params)
    np.testing.assert_array_equal(params.flatten(), before)
    assert all(block.grad is None for block in params.blocks())
    _, from_numpy = model.value_and_gradient_torch(params.to_numpy())
    assert (from_numpy - gradient).norm() == 0.0


def test_torch_objective_parts_and_float32():
    model = MODELS["ufm_bias"]()
    params = _random_point(model, 5)
    parts = model.objective(params)
    total, fit, penalties = model.torch_objective(params.to_torch(), return_parts=True)
    assert abs(float(fit) - parts.fit) <= 1e-12 * parts.fit
    assert len(penalties) == 2  # the bias is unregularized
    single = model.torch_objective(params.to_torch(dtype=torch.float32))
    assert single.dtype == torch.float32
    # float32 rounding: relative error ~ sqrt(#terms)·6e-8; 1e-5 leaves a wide margin.
    assert abs(float(single) - parts.total) <= 1e-5 * parts.total


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_path_on_cuda():
    model = MODELS["dufm"]()
    params = _random_point(model, 6)
    value, gradient = model.value_and_gradient(params)
    cuda_value, cuda_gradient = model.value_and_gradient_torch(params.to_torch(device="cuda"))
    assert cuda_gradient.weights[0].device.type == "cuda"
    assert abs(float(cuda_value) - value) <= 1e-12 * value
    assert (cuda_gradient.to_numpy() - gradient).norm() <= 1e-12 * gradient.norm()


def test_relu_subgradient_is_zero_at_a_kink():
    """At a pre-activation exactly 0 the subgradient 1[x > 0] passes nothing back (numpy and
    torch.relu agree)."""
    model = DeepUFM(2, 1, (2, 2), 0.0, 0.0)
    features = np.array([[1.0, 0.0], [0.0, 1.0]])
    weights = (np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[1.0, 1.0], [1.0, 1.0]]))
    params = Parameters(features, weights)
    gradient = model.gradient(params)
    torch_gradient = model.value_and_gradient_torch(params)[1].to_numpy()
    assert (gradient - torch_gradient).norm() == 0.0
    assert np.all(gradient.weights[0][1] == 0.0)  # row 1 meets only zero pre-activations


def test_gradient_of_fit_and_penalty_by_hand_for_the_ufm():
    """∇_W = (1/N)(WH + b1ᵀ − Y)Hᵀ + λ_W W, ∇_H = (1/N)Wᵀ(WH + b1ᵀ − Y) + λ_H H, ∇_b = R1."""
    model = MODELS["ufm_bias"]()
    params = _random_point(model, 8)
    w, h, b = params.weights[0], params.features, params.bias
    residual = (w @ h + b[:, None] - model.targets) / model.num_samples
    gradient = model.gradient(params)
    # Same floating-point operations up to association: agreement to a few ulps of the norms.
    np.testing.assert_allclose(gradient.weights[0], residual @ h.T + model.lam_w * w, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gradient.features, w.T @ residual + model.lam_h * h, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gradient.bias, residual.sum(axis=1), rtol=1e-13, atol=1e-15)


def test_value_and_gradient_vector_matches_parameters_form():
    model = MODELS["deep_linear"]()
    params = _random_point(model, 9)
    value, gradient = model.value_and_gradient(params)
    flat_value, flat_gradient = model.value_and_gradient_vector(params.flatten())
    assert flat_value == value
    np.testing.assert_array_equal(flat_gradient, gradient.flatten())


# ------------------------------------------------------------------------------------------
# Objective, forward pass, targets
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_objective_split_equals_total_and_definition(name):
    model = MODELS[name]()
    params = _random_point(model, 10)
    parts = model.objective(params)
    assert isinstance(parts, ObjectiveParts)
    assert parts.names == params.block_names()
    assert len(parts.penalties) == len(model.penalty_weights) == len(params.blocks())
    # Total is a sum of a handful of positive terms: equal to 2 ulps.
    assert abs(parts.fit + sum(parts.penalties) - parts.total) <= 2 * EPS * parts.total
    output = model.forward(params).output
    fit = np.sum((output - model.targets) ** 2) / (2 * model.num_samples)
    assert abs(parts.fit - fit) <= 4 * EPS * fit
    for lam, block, penalty in zip(model.penalty_weights, params.blocks(), parts.penalties):
        assert abs(penalty - 0.5 * lam * np.sum(block**2)) <= 4 * EPS * max(penalty, 1e-300)
    assert json.loads(json.dumps(parts.to_dict()))["total"] == parts.total


def test_bias_is_unregularized():
    model = MODELS["ufm_bias"]()
    assert model.penalty_weights == (0.01, 0.005, 0.0)
    params = _random_point(model, 11)
    assert model.objective(params).penalties[-1] == 0.0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_shapes(name):
    model = MODELS[name]()
    params = _random_point(model, 12)
    layers = model.forward(params)
    assert isinstance(layers, LayerFeatures)
    assert layers.num_layers == model.num_layers
    assert len(layers.pre_activations) == model.num_layers
    for l, (pre, post) in enumerate(zip(layers.pre_activations, layers.post_activations)):
        assert pre.shape == post.shape == (model.widths[l], model.num_samples)
    assert layers.output.shape == (model.num_classes, model.num_samples)
    assert layers.labels.shape == (model.num_samples,)
    assert layers.num_classes == model.num_classes
    assert model.parameter_shapes == params.shapes
    assert model.num_parameters == params.size


def test_forward_applies_relu_only_between_weights():
    model = MODELS["dufm"]()
    params = _random_point(model, 13)
    layers = model.forward(params)
    np.testing.assert_array_equal(layers.pre_activations[0], params.features)
    np.testing.assert_array_equal(layers.post_activations[0], params.features)  # no ReLU on H₁
    for l in range(1, model.num_layers):
        pre = params.weights[l - 1] @ layers.post_activations[l - 1]
        np.testing.assert_array_equal(layers.pre_activations[l], pre)
        np.testing.assert_array_equal(layers.post_activations[l], np.maximum(pre, 0.0))
    np.testing.assert_array_equal(layers.output, params.weights[-1] @ layers.post_activations[-1])
    assert np.any(layers.output < 0)  # no ReLU on the output


def test_models_agree_where_they_coincide():
    """DUFM with L = 1 is the UFM without bias; on nonnegative points DUFM = deep linear UFM;
    the linear head on fixed Z is the deep linear UFM with H₁ = Z and λ_H = 0."""
    ufm = UFM(3, 2, 4, 0.01, 0.02)
    dufm1 = DeepUFM(3, 2, (4,), 0.02, 0.01)
    params = _random_point(ufm, 14)
    assert ufm.objective(params).total == dufm1.objective(params).total
    linear = DeepLinearUFM(3, 2, (4, 5), 0.02, 0.01)
    relu = DeepUFM(3, 2, (4, 5), 0.02, 0.01)
    positive = _random_point(linear, 15).map(np.abs)
    assert linear.objective(positive).total == relu.objective(positive).total
    assert (linear.gradient(positive) - relu.gradient(positive)).norm() == 0.0
    point = _random_point(linear, 16)
    head = LinearHead(point.features, linear.labels, (4, 5), 0.01)
    head_params = Parameters(None, point.weights)
    zero_feature_penalty = DeepLinearUFM(3, 2, (4, 5), 0.0, 0.01)
    assert head.objective(head_params).total == zero_feature_penalty.objective(point).total


def test_targets_are_balanced_one_hot():
    model = DeepUFM(3, 2, (3, 3), 0.01, 0.01)
    np.testing.assert_array_equal(model.targets, np.kron(np.eye(3), np.ones((1, 2))))
    np.testing.assert_array_equal(model.labels, [0, 0, 1, 1, 2, 2])
    assert not model.targets.flags.writeable
    head = _head_model()
    np.testing.assert_array_equal(head.targets.argmax(axis=0), head.labels)


def test_zero_point_has_value_one_half():
    """At θ = 0 the output is 0 and Φ = (1/(2N))‖Y‖² = ½ (docs/theory.md §4.3)."""
    for name in ("ufm", "deep_linear", "dufm"):
        model = MODELS[name]()
        assert model.objective(model.zeros()).total == 0.5


# ------------------------------------------------------------------------------------------
# Random initialization and projection
# ------------------------------------------------------------------------------------------


def test_random_parameters_follow_the_e_b1_initialization():
    model = DeepUFM(2, 50, (40, 30, 20), 0.01, 0.01)
    params = model.random_parameters(0)
    for l, weight in enumerate(params.weights):
        bound = 1 / math.sqrt(model.widths[l])
        assert np.all(np.abs(weight) <= bound)
        assert np.abs(weight).max() > 0.9 * bound  # uniform on the whole interval
    # Standard deviation of 40·100 N(0, 0.1²) draws: 0.1·(1 ± 5/√(2·4000)) with high probability.
    assert abs(params.features.std() - 0.1) < 0.1 * 5 / math.sqrt(2 * params.features.size)
    again = model.random_parameters(np.random.default_rng(0))
    assert (again - params).norm() == 0.0
    scaled = model.random_parameters(0, scale=2.0)
    assert (scaled - 2.0 * params).norm() <= 1e-15 * scaled.norm()


def test_nonneg_projection():
    model = DeepUFM(2, 3, (4, 4), 0.01, 0.02, nonneg_H1=True)
    params = model.random_parameters(1)
    assert np.all(params.features >= 0)  # the initialization is feasible
    moved = params.axpy(-10.0, model.gradient(params))
    projected = model.project(moved)
    np.testing.assert_array_equal(projected.features, np.maximum(moved.features, 0.0))
    assert projected.weights[0] is moved.weights[0]
    torch_projected = model.project(moved.to_torch())
    assert torch_projected.is_torch and (torch_projected.to_numpy() - projected).norm() == 0.0
    unconstrained = DeepUFM(2, 3, (4, 4), 0.01, 0.02)
    assert unconstrained.project(moved) is moved


# ------------------------------------------------------------------------------------------
# Parameters container
# ------------------------------------------------------------------------------------------


def test_parameters_vector_round_trip_and_arithmetic():
    model = MODELS["ufm_bias"]()
    p, q = _random_point(model, 20), _random_point(model, 21)
    vector = p.flatten()
    assert vector.dtype == np.float64 and vector.shape == (model.num_parameters,)
    assert (Parameters.from_vector(vector, p) - p).norm() == 0.0
    assert (model.unflatten(vector) - p).norm() == 0.0
    with pytest.raises(ValueError, match="entries"):
        model.unflatten(vector[:-1])
    np.testing.assert_array_equal((p + q).flatten(), vector + q.flatten())
    np.testing.assert_array_equal((p - q).flatten(), vector - q.flatten())
    np.testing.assert_array_equal((-p).flatten(), -vector)
    np.testing.assert_array_equal((2.5 * p).flatten(), 2.5 * vector)
    np.testing.assert_array_equal((p * 2.5).flatten(), 2.5 * vector)
    np.testing.assert_array_equal((p / 2.0).flatten(), vector / 2.0)
    np.testing.assert_array_equal(p.axpy(-0.5, q).flatten(), vector - 0.5 * q.flatten())
    assert abs(p.inner(q) - vector @ q.flatten()) <= 1e-14 * np.abs(vector) @ np.abs(q.flatten())
    assert abs(p.norm() - np.linalg.norm(vector)) <= 1e-14 * p.norm()
    assert p.block_names() == ("H1", "W1", "b") == model.block_names
    copy = p.copy()
    copy.features[0, 0] += 1.0
    assert copy.features[0, 0] != p.features[0, 0]
    assert p.zeros_like().norm() == 0.0


def test_parameters_torch_round_trip_copies():
    p = _random_point(MODELS["dufm"](), 22)
    tensors = p.to_torch()
    assert all(t.dtype == torch.float64 and t.device.type == "cpu" for t in tensors.blocks())
    tensors.weights[0][0, 0] += 1.0  # a copy: the numpy blocks are untouched
    assert (tensors.to_numpy() - p).norm() == 1.0
    leaves = p.to_torch(requires_grad=True)
    assert all(t.requires_grad and t.is_leaf for t in leaves.blocks())
    np.testing.assert_array_equal(leaves.flatten(), p.flatten())
    assert (leaves.axpy(1.0, leaves).to_numpy() - 2.0 * p).norm() == 0.0


def test_parameters_validation():
    with pytest.raises(TypeError, match="weights"):
        Parameters(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(TypeError, match="weights\\[0\\]"):
        Parameters(None, (np.array([["a"]]),))
    with pytest.raises(TypeError, match="either only numpy"):
        Parameters(np.zeros((2, 2)), (torch.zeros(2, 2, dtype=torch.float64),))
    p = Parameters(np.zeros((2, 3)), (np.zeros((2, 2)),))
    with pytest.raises(ValueError, match="different structure"):
        p + Parameters(np.zeros((2, 3)), (np.zeros((3, 2)),))
    with pytest.raises(ValueError, match="entries"):
        p.unflatten(np.zeros(5))


# ------------------------------------------------------------------------------------------
# Validation of the models
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: UFM(1, 2, 3, 0.1, 0.1), ValueError, "num_classes"),
        (lambda: UFM(2.0, 2, 3, 0.1, 0.1), TypeError, "num_classes"),
        (lambda: UFM(2, 0, 3, 0.1, 0.1), ValueError, "per_class"),
        (lambda: UFM(2, 2, 0, 0.1, 0.1), ValueError, "width"),
        (lambda: UFM(2, 2, 3, -0.1, 0.1), ValueError, "lam_w"),
        (lambda: UFM(2, 2, 3, 0.1, -1e-9), ValueError, "lam_h"),
        (lambda: UFM(2, 2, 3, 0.1, float("nan")), ValueError, "lam_h"),
        (lambda: UFM(2, 2, 3, "a", 0.1), TypeError, "lam_w"),
        (lambda: UFM(2, 2, 3, 0.1, 0.1, bias=1), TypeError, "bias"),
        (lambda: DeepLinearUFM(2, 2, (3, 0), 0.1, 0.1), ValueError, r"widths\[1\]"),
        (lambda: DeepLinearUFM(2, 2, (), 0.1, 0.1), ValueError, "widths"),
        (lambda: DeepLinearUFM(2, 2, 3, 0.1, 0.1), TypeError, "widths"),
        (lambda: DeepLinearUFM(2, 2, (3, 3), -0.1, 0.1), ValueError, "lam_h"),
        (lambda: DeepLinearUFM(2, 2, (3, 3), 0.1, [0.1]), ValueError, "lam_w"),
        (lambda: DeepLinearUFM(2, 2, (3, 3), 0.1, [0.1, -0.1]), ValueError, r"lam_w\[1\]"),
        (lambda: DeepUFM(1, 2, (3, 3), 0.1, 0.1), ValueError, "num_classes"),
        (lambda: DeepUFM(2, 0, (3, 3), 0.1, 0.1), ValueError, "per_class"),
        (lambda: DeepUFM(2, 2, (3, 3), 0.1, (0.1, 0.1, 0.1)), ValueError, "lam_w"),
        (lambda: DeepUFM(2, 2, (3, 3), 0.1, "0.1"), TypeError, "lam_w"),
        (lambda: DeepUFM(2, 2, (3, 3), 0.1, 0.1, nonneg_H1="yes"), TypeError, "nonneg_H1"),
        (lambda: LinearHead(np.zeros((3, 4)), [0, 1, 0], (3,), 0.1), ValueError, "labels"),
        (lambda: LinearHead(np.zeros(4), [0, 1, 0, 1], (3,), 0.1), ValueError, "features"),
        (lambda: LinearHead(np.full((3, 2), np.inf), [0, 1], (3,), 0.1), ValueError, "features"),
        (lambda: LinearHead(np.zeros((3, 2)), [0, 1], (4,), 0.1), ValueError, r"widths\[0\]"),
        (lambda: LinearHead(np.zeros((3, 2)), [0, 1], (3, 2), [0.1]), ValueError, "lam"),
        (lambda: LinearHead(np.zeros((3, 2)), [0, 1], (3,), -0.1), ValueError, "lam"),
        (lambda: LinearHead(np.zeros((3, 2)), [0.0, 1.0], (3,), 0.1), TypeError, "labels"),
        (lambda: LinearHead(np.zeros((3, 2)), [0, 0], (3,), 0.1), ValueError, "num_classes"),
    ],
)
def test_model_validation_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: Parameters(None, p.weights), "features"),
        (lambda p: Parameters(p.features, p.weights[:-1]), "L = 3"),
        (lambda p: Parameters(p.features[:, :-1], p.weights), "H1"),
        (lambda p: Parameters(p.features, (p.weights[0].T,) + p.weights[1:]), "W1"),
        (lambda p: Parameters(p.features, p.weights, np.zeros(3)), "bias"),
    ],
)
def test_parameter_shapes_are_checked(change, match):
    model = MODELS["deep_linear"]()
    params = model.random_parameters(0)
    with pytest.raises(ValueError, match=match):
        model.objective(change(params))
    with pytest.raises(TypeError, match="Parameters"):
        model.objective(params.flatten())


def test_models_are_frozen_hashable_and_normalized():
    a = DeepUFM(2, 3, [4, 4], 0.01, 0.02)
    b = DeepUFM(2, 3, (4, 4), 0.01, (0.02, 0.02))
    assert a == b and hash(a) == hash(b)
    assert a.lam_w == (0.02, 0.02) and a.widths == (4, 4)
    assert a.penalty_weights == (0.01, 0.02, 0.02)
    with pytest.raises(AttributeError):
        a.lam_h = 1.0
    features = np.ones((3, 2))
    head = LinearHead(features, [0, 1], (3,), 0.1)
    features[0, 0] = 5.0  # the model keeps its own copy
    assert head.features[0, 0] == 1.0 and not head.features.flags.writeable


# ------------------------------------------------------------------------------------------
# Unchecked fast paths: the same results, bit for bit, as the validating paths
# ------------------------------------------------------------------------------------------


def _assert_same_blocks(first, second):
    assert first.block_names() == second.block_names()
    for a, b in zip(first.blocks(), second.blocks()):
        assert type(a) is np.ndarray and a.dtype == np.float64
        np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unchecked_gradient_is_bit_identical_to_validated_path(name):
    model = MODELS[name]()
    params = _random_point(model, 3)
    value, gradient = model.value_and_gradient(params)
    fast_value, fast_gradient = model._value_and_gradient_numpy(params)
    assert fast_value == value == model.objective(params).total
    _assert_same_blocks(fast_gradient, gradient)
    rebuilt = Parameters(gradient.features, gradient.weights, gradient.bias)
    _assert_same_blocks(rebuilt, fast_gradient)
    vector_value, vector_gradient = model.value_and_gradient_vector(params.flatten())
    assert vector_value == value
    np.testing.assert_array_equal(vector_gradient, gradient.flatten(), strict=True)
    # The input is left untouched by the in-place updates of the fused backward pass.
    _assert_same_blocks(params, _random_point(model, 3))


def test_unchecked_constructor_matches_validating_constructor():
    rng = np.random.default_rng(0)
    features, weights, bias = rng.normal(size=(3, 4)), (rng.normal(size=(2, 3)),), np.ones(2)
    fast = Parameters._unchecked(features, weights, bias)
    slow = Parameters(features=features, weights=weights, bias=bias)
    _assert_same_blocks(fast, slow)
    assert fast.features is features and fast.weights is weights  # no copy, no conversion
    with pytest.raises(Exception):
        fast.features = None  # still frozen


def test_arithmetic_fast_path_equals_validated_rebuild():
    model = MODELS["ufm_bias"]()
    p, q = _random_point(model, 0), _random_point(model, 1)
    alpha = -0.37
    checks = {
        "add": (p + q, [a + b for a, b in zip(p.blocks(), q.blocks())]),
        "sub": (p - q, [a - b for a, b in zip(p.blocks(), q.blocks())]),
        "neg": (-p, [-a for a in p.blocks()]),
        "mul": (2.5 * p, [a * 2.5 for a in p.blocks()]),
        "div": (p / 4.0, [a / 4.0 for a in p.blocks()]),
        "axpy": (p.axpy(alpha, q), [a + alpha * b for a, b in zip(p.blocks(), q.blocks())]),
        "copy": (p.copy(), list(p.blocks())),
        "zeros": (p.zeros_like(), [np.zeros_like(a) for a in p.blocks()]),
    }
    for name, (result, blocks) in checks.items():
        _assert_same_blocks(result, p._rebuild(blocks))
    assert p.inner(q) == pytest.approx(float(np.dot(p.flatten(), q.flatten())), rel=1e-14)
    assert p.norm() == math.sqrt(p.inner(p))
    # Torch blocks keep the validating path; a numpy-torch mixture is still refused.
    tensors = p.to_torch()
    assert (tensors + tensors).is_torch and (2.0 * tensors).is_torch
    with pytest.raises(TypeError, match="only numpy arrays or only torch"):
        Parameters(np.ones((2, 2)), (torch.ones(2, 2, dtype=torch.float64),))
    with pytest.raises(ValueError, match="different structure"):
        p + Parameters(p.features, p.weights)
    with pytest.raises(ValueError, match="different structure"):
        p.inner(Parameters(p.features[:, :1], p.weights, p.bias))
