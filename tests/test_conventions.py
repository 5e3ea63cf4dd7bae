"""Tests of ufm.conventions: every conversion checked by taking the same step both ways.

A torch optimizer step on the framework's loss must coincide with one gradient-descent step on the
paper objective Φ (docs/theory.md §1.2) with the converted λ and η. Both are computed in float64 on a
two-layer linear model, so they agree to rounding: the tolerance 1e-12 relative covers the few
float64 operations (≈ 1e-15 each) of one step on O(1) entries.
"""

import itertools

import numpy as np
import pytest
import torch

from ufm import conventions as C
from ufm.labels import one_hot_targets

STEP_RTOL = 1e-12  # one float64 step on O(1) entries, see module docstring


def _problem(seed, num_samples=12, num_classes=3, width=5, dim=4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_samples)
    x = torch.tensor(rng.standard_normal((dim, num_samples)))
    y = torch.tensor(one_hot_targets(labels, num_classes))
    w1 = torch.tensor(rng.standard_normal((width, dim)))
    w2 = torch.tensor(rng.standard_normal((num_classes, width)))
    return x, y, [w1, w2]


def _framework_step(x, y, weights, reduction, weight_decay, learning_rate, batch):
    params = [w.clone().requires_grad_(True) for w in weights]
    optimizer = torch.optim.SGD(params, lr=learning_rate, weight_decay=weight_decay)
    out = params[1] @ params[0] @ x[:, batch]
    target = y[:, batch]
    if reduction == "mean":
        loss = torch.nn.MSELoss()(out.T, target.T)
    elif reduction == "sum":
        loss = torch.nn.MSELoss(reduction="sum")(out, target)
    else:  # half_sum
        loss = 0.5 * ((out - target) ** 2).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return [p.detach() for p in params]


def _paper_step(x, y, weights, lam, step, batch):
    """θ ← θ − η∇Φ_ℬ with Φ_ℬ = (1/(2B))‖F_ℬ − Y_ℬ‖² + (λ/2)Σ‖W‖² (docs/theory.md §1.2)."""
    params = [w.clone().requires_grad_(True) for w in weights]
    out = params[1] @ params[0] @ x[:, batch]
    objective = ((out - y[:, batch]) ** 2).sum() / (2 * len(batch))
    objective = objective + sum(lam / 2 * (p**2).sum() for p in params)
    objective.backward()
    return [(p - step * p.grad).detach() for p in params]


@pytest.mark.parametrize("reduction", ["mean", "sum", "half_sum"])
@pytest.mark.parametrize("batch_size", [12, 5])  # full batch and a minibatch
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_torch_sgd_step_equals_paper_gradient_step(reduction, batch_size, seed):
    x, y, weights = _problem(seed)
    rng = np.random.default_rng(100 + seed)
    batch = np.sort(rng.choice(x.shape[1], batch_size, replace=False)).tolist()
    weight_decay, learning_rate = 10 ** rng.uniform(-4, -1), 10 ** rng.uniform(-3, -1)
    converted = C.to_paper_convention(
        weight_decay, learning_rate, reduction=reduction, batch_size=batch_size, num_classes=3
    )
    framework = _framework_step(x, y, weights, reduction, weight_decay, learning_rate, batch)
    paper = _paper_step(x, y, weights, converted.lam, converted.step_size, batch)
    for a, b in zip(framework, paper):
        torch.testing.assert_close(a, b, rtol=STEP_RTOL, atol=STEP_RTOL)


def test_mse_mean_table_row():
    # docs/theory.md §1.3: nn.MSELoss() with SGD(lr, weight_decay=wd) gives λ = K·wd/2, η = 2·lr/K
    # whatever the batch size.
    for batch_size in (1, 7, 100):
        out = C.to_paper_convention(0.01, 0.1, reduction="mean", batch_size=batch_size, num_classes=10)
        assert out.lam == pytest.approx(10 * 0.01 / 2, rel=1e-15)
        assert out.step_size == pytest.approx(2 * 0.1 / 10, rel=1e-15)
    out = C.to_paper_convention(0.02, 0.5, reduction="sum", batch_size=50, num_classes=3)
    assert out.lam == pytest.approx(0.02 / 100) and out.step_size == pytest.approx(50.0)
    out = C.to_paper_convention(0.02, 0.5, reduction="half_sum", batch_size=50, num_classes=3)
    assert out.lam == pytest.approx(0.02 / 50) and out.step_size == pytest.approx(25.0)
    out = C.to_paper_convention(0.02, 0.5, reduction="paper", batch_size=50, num_classes=3)
    assert out.lam == pytest.approx(0.02) and out.step_size == pytest.approx(0.5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "half_sum", "paper"])
def test_round_trip(reduction):
    lam, step = 3e-3, 0.25
    wd, lr = C.from_paper_convention(lam, step, reduction=reduction, batch_size=8, num_classes=4)
    back = C.to_paper_convention(wd, lr, reduction=reduction, batch_size=8, num_classes=4)
    assert back.lam == pytest.approx(lam, rel=1e-15)
    assert back.step_size == pytest.approx(step, rel=1e-15)


@pytest.mark.parametrize("penalty_form", ["sum", "mean"])
def test_feature_penalty_expectation_over_all_batches(penalty_form):
    """Averaging the batch gradient of the feature penalty over every batch of size B gives λ_H·H.

    The framework batch loss is divided by 2Bc (so its data term is the paper's minibatch term);
    the exact average over all C(N, B) batches of that penalty's gradient must equal the gradient
    λ_H·H of (λ_H/2)‖H‖² with λ_H from feature_penalty_to_lambda.
    """
    num_samples, batch_size, num_classes, mu = 6, 3, 4, 0.37
    rng = np.random.default_rng(5)
    features = rng.standard_normal((2, num_samples))
    scale = C.loss_scale("mean", batch_size, num_classes)
    gradient = np.zeros_like(features)
    batches = list(itertools.combinations(range(num_samples), batch_size))
    for batch in batches:
        factor = mu if penalty_form == "sum" else mu / batch_size
        grad = np.zeros_like(features)
        grad[:, batch] = factor * features[:, batch]
        gradient += grad / (2 * batch_size * scale)
    gradient /= len(batches)
    lam_h = C.feature_penalty_to_lambda(
        mu, penalty_form=penalty_form, batch_size=batch_size, num_samples=num_samples,
        num_classes=num_classes,
    )
    np.testing.assert_allclose(gradient, lam_h * features, rtol=1e-13)  # sum of 20 terms
    expected = num_classes * mu * (batch_size if penalty_form == "sum" else 1) / (2 * num_samples)
    assert lam_h == pytest.approx(expected, rel=1e-15)  # docs/theory.md §1.3 closed forms


def test_optimizer_groups_and_adamw_rejected():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    sgd = torch.optim.SGD([{"params": [a], "weight_decay": 0.01}, {"params": [b]}], lr=0.1)
    groups = C.lambdas_from_torch_optimizer(sgd, batch_size=10, num_classes=4)
    assert [g.lam for g in groups] == pytest.approx([0.02, 0.0])
    with pytest.raises(ValueError, match="decoupled"):
        C.lambdas_from_torch_optimizer(torch.optim.AdamW([a], lr=0.1), batch_size=10, num_classes=4)
    with pytest.raises(TypeError, match="Optimizer"):
        C.lambdas_from_torch_optimizer(object(), batch_size=10, num_classes=4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"weight_decay": float("nan")}, "weight_decay must be finite"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
        ({"reduction": "mse"}, "reduction must be one of"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = {"weight_decay": 0.1, "learning_rate": 0.1, "reduction": "mean", "batch_size": 4,
                 "num_classes": 3}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        C.to_paper_convention(
            arguments.pop("weight_decay"), arguments.pop("learning_rate"), **arguments
        )
    with pytest.raises(ValueError, match="penalty_form"):
        C.feature_penalty_to_lambda(1.0, penalty_form="avg", batch_size=2, num_samples=4, num_classes=2)
