"""fullnet.architectures: shapes, weight order, features equal a manual forward pass."""

from __future__ import annotations

import math

import pytest
import torch

from fullnet.architectures import (
    LayerFeatures,
    PyramidalMLP,
    ResNet20,
    SmoothLeakyActivation,
    compute_layer_features,
)


def test_pyramidal_mlp_widths_and_weight_order():
    model = PyramidalMLP(784, 10, [300, 128, 64], linear_depth=3, linear_width=32)
    assert model.widths == [784, 300, 128, 64, 32, 32, 10]
    assert (model.nonlinear_depth, model.linear_depth, model.depth) == (3, 3, 6)
    shapes = [tuple(weight.shape) for weight in model.weight_matrices()]
    assert shapes == [(300, 784), (128, 300), (64, 128), (32, 64), (32, 32), (10, 32)]
    assert all(parameter.dim() == 2 for parameter in model.parameters())  # no biases by default
    assert model.weight_matrices()[0] is model.stack.layers[0].weight
    with_bias = PyramidalMLP(20, 3, [8], linear_depth=1, bias=True)
    assert sum(parameter.dim() == 1 for parameter in with_bias.parameters()) == 2


def test_features_equal_a_manual_forward_pass():
    torch.manual_seed(0)
    for activation in ("relu", "smooth_leaky"):
        model = PyramidalMLP(12, 4, [16, 8], linear_depth=2, activation=activation, seed=5).double()
        inputs = torch.randn(9, 3, 2, 2, dtype=torch.float64)
        features = model.layer_features(inputs)
        sigma = torch.relu if activation == "relu" else SmoothLeakyActivation(0.2)
        current = inputs.reshape(9, -1).T  # Z_0 = X as columns (p₀, N)
        assert torch.equal(features.inputs, current)
        for index, weight in enumerate(model.weight_matrices()):
            pre = weight @ current  # H_l = W_l Z_{l−1}
            current = sigma(pre) if index < model.nonlinear_depth else pre
            assert features.pre_activations[index].shape == (weight.shape[0], 9)
            assert torch.allclose(features.pre_activations[index], pre, rtol=0, atol=1e-13)
            assert torch.allclose(features.post_activations[index], current, rtol=0, atol=1e-13)
        assert torch.allclose(features.output.T, model(inputs), rtol=0, atol=1e-13)
        assert features.output.shape == (4, 9)


def test_smooth_leaky_activation_matches_theory():
    gamma = 0.3
    activation = SmoothLeakyActivation(gamma)
    values = torch.linspace(-30, 30, 601, dtype=torch.float64, requires_grad=True)
    output = activation(values)
    expected = gamma * values + (1 - gamma) * (torch.nn.functional.softplus(values) - math.log(2))
    assert torch.allclose(output, expected)
    assert float(activation(torch.zeros(1, dtype=torch.float64))) == 0.0
    (derivative,) = torch.autograd.grad(output.sum(), values)
    assert float(derivative.min()) > gamma - 1e-12 and float(derivative.max()) < 1.0 + 1e-12
    with pytest.raises(ValueError, match="gamma"):
        SmoothLeakyActivation(1.0)


def test_initializations_are_seeded_and_leave_global_state_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = PyramidalMLP(30, 3, [40, 20], seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    second = PyramidalMLP(30, 3, [40, 20], seed=7)
    for left, right in zip(first.weight_matrices(), second.weight_matrices()):
        assert torch.equal(left, right)
    small = PyramidalMLP(30, 3, [40, 20], seed=7, second_layer_scale=0.01)
    assert torch.allclose(small.weight_matrices()[1], 0.01 * first.weight_matrices()[1])
    assert torch.equal(small.weight_matrices()[0], first.weight_matrices()[0])
    wide = PyramidalMLP(50, 3, [4000, 20], init="lecun", seed=1)
    assert abs(float(wide.weight_matrices()[0].detach().var()) * 50 - 1.0) < 0.02  # Var = 1/p_in


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="pyramidal"):
        PyramidalMLP(10, 3, [50, 20, 40])
    PyramidalMLP(10, 3, [50, 20, 40], pyramidal=False)
    with pytest.raises(ValueError, match="activation"):
        PyramidalMLP(10, 3, [8], activation="tanh")
    with pytest.raises(ValueError, match="init"):
        PyramidalMLP(10, 3, [8], init="orthogonal")
    with pytest.raises(ValueError, match="linear_depth"):
        PyramidalMLP(10, 3, [8], linear_depth=0)
    with pytest.raises(TypeError, match="nonlinear_widths"):
        PyramidalMLP(10, 3, 8)
    with pytest.raises(ValueError, match="coordinates"):
        PyramidalMLP(10, 3, [8])(torch.zeros(2, 11))


def test_resnet20_shapes_head_weights_and_features():
    model = ResNet20(10, input_channels=3, head_nonlinear_widths=[32, 16], linear_depth=2,
                     linear_width=16, seed=0)
    backbone = sum(parameter.numel() for parameter in model.backbone.parameters())
    assert backbone == 269_072  # ResNet20 (He et al. 2016, option A) without its classifier
    assert model.widths == [64, 32, 16, 16, 10]
    assert [tuple(w.shape) for w in model.weight_matrices()] == [(32, 64), (16, 32), (16, 16), (10, 16)]
    model.eval()
    inputs = torch.randn(5, 3, 8, 8)
    features = model.layer_features(inputs)
    assert features.inputs.shape == (64, 5) and features.depth == 4
    assert torch.allclose(features.inputs, model.backbone(inputs).T)
    assert torch.allclose(features.output.T, model(inputs), atol=1e-6)
    chunked = compute_layer_features(model, inputs, chunk_size=2)
    assert isinstance(chunked, LayerFeatures)
    assert torch.allclose(chunked.output, features.output, atol=1e-6)
    mnist = ResNet20(10, input_channels=1, head_nonlinear_widths=[], linear_depth=1, shortcut="B")
    assert mnist(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="inputs must have shape"):
        mnist(torch.randn(2, 3, 28, 28))
