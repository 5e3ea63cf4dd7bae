"""fullnet.training, fullnet.objective, fullnet.observe: the objective in docs/theory.md §1.2's
convention, the GD step, the learning-rate drop, atomic checkpoints and bit-identical resume,
and a small real training on mnist-5k."""

from __future__ import annotations

import copy
import math
import os
import signal

import numpy as np
import pytest
import torch

from fullnet.architectures import PyramidalMLP, ResNet20
from fullnet.data import gaussian_mixture, load_mnist_5k, prepare_data
from fullnet.objective import Regularization, objective_terms, parameter_groups
from fullnet.observe import negativity_of, observe
from fullnet import training as ft


def _gaussian_data(per_class=10, dtype=torch.float64, classes=3, dimension=6):
    raw = gaussian_mixture(classes, per_class, dimension, margin=3.0, seed=0)
    return prepare_data(raw, standardization="none", dtype=dtype)


def _mlp(dtype=torch.float64, seed=0, **options):
    model = PyramidalMLP(6, 3, [12, 8], linear_depth=2, linear_width=5, seed=seed, **options)
    return model.to(dtype)


def _trainer(model, data, **options):
    settings = dict(learning_rate=0.05, epochs=10, log_points=4, per_layer=False)
    settings.update(options)
    regularization = settings.pop("regularization", Regularization([1e-2, 2e-2, 3e-2, 4e-2]))
    return ft.Trainer(model, data, regularization, **settings)


# ------------------------------------------------------------------------------------------
# objective and one step
# ------------------------------------------------------------------------------------------


def test_objective_in_the_paper_convention_equals_a_manual_computation():
    data = _gaussian_data()
    model = _mlp()
    lambdas = [1e-2, 2e-2, 3e-2, 4e-2]
    regularization = Regularization(lambdas, feature_penalty=0.5, feature_layer=1)
    with torch.no_grad():
        features = model.layer_features(data.inputs)
    terms = objective_terms(model, features, data.targets, regularization)
    output = features.output
    count = data.num_samples
    data_term = float(((output - data.targets) ** 2).sum()) / (2 * count)
    penalties = [lam / 2 * float((w.detach() ** 2).sum()) for lam, w in zip(lambdas, model.weight_matrices())]
    feature = 0.5 / 2 * float((features.post_activations[0] ** 2).sum())  # sum over samples
    assert terms.data_term == pytest.approx(data_term, rel=1e-14)
    assert terms.layer_penalties == pytest.approx(penalties, rel=1e-14)
    assert terms.feature_penalty == pytest.approx(feature, rel=1e-14)
    assert terms.objective == pytest.approx(data_term + sum(penalties) + feature, rel=1e-14)
    # torch's nn.MSELoss() is the data term times 2/K (docs/theory.md §1.3)
    with torch.no_grad():
        mse = torch.nn.MSELoss()(model(data.inputs), data.targets.T)
    assert float(mse) * data.num_classes / 2 == pytest.approx(data_term, rel=1e-13)


def test_one_full_batch_gd_step_is_the_weight_decay_update():
    data = _gaussian_data()
    model = _mlp()
    before = [weight.detach().clone() for weight in model.weight_matrices()]
    reference = copy.deepcopy(model)
    loss = 0.5 * ((reference(data.inputs).T - data.targets) ** 2).sum() / data.num_samples
    gradients = torch.autograd.grad(loss, reference.weight_matrices())
    lambdas = [1e-2, 2e-2, 3e-2, 4e-2]
    eta = 0.05
    trainer = _trainer(model, data, learning_rate=eta, regularization=Regularization(lambdas))
    result = trainer.run(stop_at_epoch=1)
    assert result.status == "stopped" and trainer.step == 1
    for weight, old, gradient, lam in zip(model.weight_matrices(), before, gradients, lambdas):
        expected = (1 - eta * lam) * old - eta * gradient  # W ← (1 − ηλ)W − η∇(data term)
        assert torch.allclose(weight.detach(), expected, rtol=0, atol=1e-15)
    summary = {group["name"]: group for group in result.groups}
    assert [summary[f"W{index}"]["lambda"] for index in range(1, 5)] == pytest.approx(lambdas)


def test_chunked_full_batch_gradient_equals_the_full_one():
    data = _gaussian_data(per_class=7)
    whole, chunked = _mlp(), _mlp()
    _trainer(whole, data).run(stop_at_epoch=3)
    _trainer(chunked, data, chunk_size=4).run(stop_at_epoch=3)
    for left, right in zip(whole.weight_matrices(), chunked.weight_matrices()):
        assert torch.allclose(left, right, rtol=0, atol=1e-14)


def test_learning_rate_drops_ten_fold_at_eighty_percent():
    assert ft.drop_epoch(10) == 8 and ft.learning_rate_at(10, 0.5, 10, 1.0) == 0.5
    assert ft.learning_rate_at(7, 0.5, 10) == 0.5
    assert ft.learning_rate_at(8, 0.5, 10) == pytest.approx(0.05)
    rates = []
    trainer = _trainer(_mlp(), _gaussian_data(), learning_rate=0.5, epochs=10,
                       on_step=lambda t: rates.append(t.optimizer.param_groups[0]["lr"]))
    trainer.run()
    assert rates == pytest.approx([0.5] * 8 + [0.05] * 2)
    assert ft.log_spaced_epochs(1000, 10)[:2] == [0, 1] and ft.log_spaced_epochs(1000, 10)[-1] == 1000
    assert ft.log_spaced_epochs(5, 0) == [0, 5]


def test_parameter_groups_of_a_resnet_and_bad_settings():
    model = ResNet20(3, head_nonlinear_widths=[16], linear_depth=2, linear_width=8)
    groups = parameter_groups(model, Regularization([1e-3, 2e-3, 3e-3], backbone_lambda=5e-4), 0.1)
    names = [group["name"] for group in groups]
    assert names == ["W1", "W2", "W3", "backbone", "one_dimensional"]
    assert groups[-1]["weight_decay"] == 0.0  # batch-norm parameters are not decayed
    assert all(p.dim() >= 2 for p in groups[3]["params"])
    data = _gaussian_data()
    with pytest.raises(ValueError, match="batch_size"):
        _trainer(_mlp(), data, optimizer="sgd")
    with pytest.raises(ValueError, match="feature penalty on layer 0"):
        _trainer(_mlp(), data, regularization=Regularization([0.0] * 4, feature_penalty=1.0))
    with pytest.raises(ValueError, match="share device and dtype"):
        _trainer(_mlp(dtype=torch.float32), data)
    with pytest.raises(FloatingPointError, match="learning_rate"):
        _trainer(_mlp(), data, learning_rate=1e6).run()


# ------------------------------------------------------------------------------------------
# checkpoints and resume
# ------------------------------------------------------------------------------------------


def _state_equal(left: ft.Trainer, right: ft.Trainer) -> None:
    for (name, a), (_, b) in zip(left.model.state_dict().items(), right.model.state_dict().items()):
        assert torch.equal(a, b), name
    left_state, right_state = left.optimizer.state_dict(), right.optimizer.state_dict()
    assert left_state["state"].keys() == right_state["state"].keys()
    for key, buffer in left_state["state"].items():  # momentum buffers
        assert torch.equal(buffer, right_state["state"][key])
    assert [s.to_dict() for s in left.history] == [s.to_dict() for s in right.history]
    assert (left.epoch, left.step) == (right.epoch, right.step)


@pytest.mark.parametrize("kind", ["gd", "sgd"])
def test_resume_continues_bit_identically(tmp_path, kind):
    data = _gaussian_data(per_class=10, dtype=torch.float32)
    options = dict(epochs=6, log_points=5, per_layer=True, momentum=0.5)
    if kind == "sgd":
        options.update(optimizer="sgd", batch_size=7)  # 30 samples: ragged last batch
    one_go = _trainer(_mlp(torch.float32), data, **options)
    one_go.run()
    path = tmp_path / "checkpoint.pt"
    first = _trainer(_mlp(torch.float32), data, checkpoint_path=path, **options)
    assert first.run(stop_at_epoch=3).status == "stopped"
    second = _trainer(_mlp(torch.float32, seed=99), data, checkpoint_path=path, **options)
    second.resume_from()
    result = second.run()
    assert result.status == "completed" and result.epochs_completed == 6
    _state_equal(one_go, second)


def test_interrupt_mid_epoch_checkpoints_a_completed_step(tmp_path):
    data = _gaussian_data(per_class=10, dtype=torch.float32)
    options = dict(epochs=4, optimizer="sgd", batch_size=7, momentum=0.9)
    one_go = _trainer(_mlp(torch.float32), data, **options)
    one_go.run()

    def interrupt_at_step_seven(trainer):
        if trainer.step == 7:  # mid-epoch (5 steps per epoch)
            signal.raise_signal(signal.SIGINT)

    path = tmp_path / "run" / "checkpoint.pt"
    interrupted = _trainer(_mlp(torch.float32), data, checkpoint_path=path,
                           on_step=interrupt_at_step_seven, **options)
    with pytest.raises(KeyboardInterrupt):
        interrupted.run()
    state = ft.load_checkpoint(path)
    assert (state["epoch"], state["step"], state["batch_position"]) == (1, 7, 2)
    assert [entry.name for entry in path.parent.iterdir()] == ["checkpoint.pt"]
    resumed = _trainer(_mlp(torch.float32, seed=5), data, checkpoint_path=path, **options)
    resumed.resume_from()
    resumed.run()
    _state_equal(one_go, resumed)


def test_interrupted_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    ft.atomic_torch_save({"format": ft.CHECKPOINT_FORMAT, "value": torch.arange(3)}, path)
    before = path.read_bytes()

    def half_written(state, handle):
        handle.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ft.torch, "save", half_written)
    with pytest.raises(KeyboardInterrupt):
        ft.atomic_torch_save({"format": ft.CHECKPOINT_FORMAT, "value": torch.arange(5)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.pt"]
    assert torch.equal(ft.load_checkpoint(path)["value"], torch.arange(3))
    with pytest.raises(ValueError, match="damaged or foreign"):
        (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
        ft.load_checkpoint(tmp_path / "bad.pt")


def test_resume_refuses_a_different_trainer(tmp_path):
    data = _gaussian_data(dtype=torch.float32)
    path = tmp_path / "checkpoint.pt"
    _trainer(_mlp(torch.float32), data, checkpoint_path=path).run(stop_at_epoch=2)
    other = _trainer(_mlp(torch.float32), data, learning_rate=0.1, checkpoint_path=path)
    with pytest.raises(ValueError, match="learning_rate"):
        other.resume_from()


# ------------------------------------------------------------------------------------------
# observation and a real training
# ------------------------------------------------------------------------------------------


def test_observe_reports_every_layer_and_smooth_negativity():
    data = _gaussian_data(dtype=torch.float32)
    model = _mlp(torch.float32, activation="smooth_leaky")
    snapshot = observe(model, data, Regularization([1e-3] * 4))
    assert [row.layer for row in snapshot.layers] == [1, 2, 3, 4]
    assert [row.after_activation for row in snapshot.layers] == [False, True, True, False]
    assert snapshot.layers[1].pre_metrics is not None and snapshot.layers[3].pre_metrics is None
    assert snapshot.layers[0].metrics["BAL.op"] is not None  # D_1 of (W_1, W_2)
    assert snapshot.layers[-1].metrics["NC3.dual"] is not None  # the classifier W_L
    pre = model.double().layer_features(data.inputs.double()).pre_activations[0].detach()
    sigma = model.stack.activation
    expected = float(torch.linalg.matrix_norm(pre - sigma(pre), ord=2) / torch.linalg.matrix_norm(pre, ord=2))
    assert snapshot.layers[1].pre_metrics["NEG"] == pytest.approx(expected, rel=1e-9)
    assert negativity_of(torch.zeros(3, 4), sigma) is None
    assert snapshot.last_nc1 == snapshot.layers[-1].metrics["NC1.tr_unc"]
    row = snapshot.flat()
    assert "L2_pre_NEG" in row and "layer_penalty_4" in row


def test_quick_training_on_mnist_5k_reduces_loss_and_increases_collapse():
    """200 real digits, full-batch GD with weight decay, 300 steps (about 2 s).

    Honest expectation: GD on Φ fits the training set (accuracy → 1) and, with weight decay, the
    features entering the classifier W_L concentrate around their class means, so NC1.tr_unc of
    Z_{L−1} falls. Across seeds 0–2 the observed ratio final/initial NC1 is 0.10–0.24 and the
    objective falls by a factor of about 12; the assertions leave a twofold margin.
    """
    data = prepare_data(load_mnist_5k(), per_class=20, seed=0)
    model = PyramidalMLP(784, 10, [128, 64], linear_depth=2, seed=0)
    trainer = ft.Trainer(model, data, Regularization([1e-3] * 4), learning_rate=0.1, epochs=300,
                         log_points=3, progress=True)
    result = trainer.run()
    first, last = result.history[0], result.final
    assert (first.epoch, last.epoch) == (0, 300)
    assert last.terms.objective < 0.15 * first.terms.objective
    assert last.accuracy >= 0.98
    assert last.last_nc1 < 0.5 * first.last_nc1, (first.last_nc1, last.last_nc1)


def test_train_from_a_configuration_writes_results_and_resumes(tmp_path):
    from fullnet.config import ConfigError, RunConfig

    config = RunConfig.from_dict({
        "name": "smoke",
        "data": {"name": "gaussian", "per_class": 6, "gaussian_dimension": 8},
        "model": {"nonlinear_widths": [16, 8], "linear_depth": 2},
        "training": {"epochs": 12, "learning_rate": 0.1, "device": "cpu"},
        "observe": {"log_points": 4},
        "output": {"directory": str(tmp_path), "progress": False, "checkpoint_every": 4},
    })
    result = ft.train(config, stop_at_epoch=5)
    assert result.status == "stopped"
    run = tmp_path / "smoke"
    assert {"config.json", "checkpoint.pt", "history.json", "history.csv", "final_metrics.json",
            "result.json"} <= set(os.listdir(run))
    with pytest.raises(FileExistsError, match="--resume"):
        ft.train(config)
    with pytest.raises(ConfigError, match="training.learning_rate"):
        ft.train(config.with_overrides(["training.learning_rate=0.2"]), resume=True)
    finished = ft.train(config, resume=True)
    assert finished.status == "completed" and finished.epochs_completed == 12
    assert (run / "history.csv").read_text().startswith("epoch,step,learning_rate,objective")


def test_weight_decay_gradient_descent_with_momentum_matches_its_formula():
    parameter = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = ft.WeightDecayGradientDescent(
        [{"params": [parameter], "lr": 0.1, "weight_decay": 0.5, "name": "W1"}], momentum=0.9
    )
    theta = parameter.detach().clone()
    velocity = None
    for gradient in (torch.tensor([0.3, 0.4]), torch.tensor([-1.0, 2.0])):
        parameter.grad = gradient.double()
        optimizer.step()
        direction = gradient.double() + 0.5 * theta  # d = g + λθ
        velocity = direction if velocity is None else 0.9 * velocity + direction
        theta = theta - 0.1 * velocity
        assert torch.allclose(parameter.detach(), theta, rtol=0, atol=1e-15)
    restored = ft.WeightDecayGradientDescent(
        [{"params": [parameter], "lr": 0.1, "weight_decay": 0.5, "name": "W1"}], momentum=0.9
    )
    restored.load_state_dict(optimizer.state_dict())
    assert torch.equal(restored.state[0], optimizer.state[0])
    with pytest.raises(ValueError, match="momentum"):
        ft.WeightDecayGradientDescent([], momentum=1.0)


def test_resnet_with_feature_penalty_on_the_backbone_output_trains_and_is_measured():
    from fullnet.data import RawDataset

    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 3, 8, 8), generator=generator, dtype=torch.uint8).numpy()
    raw = RawDataset(images, torch.arange(2).repeat_interleave(6).numpy(), "toy", "train",
                     ("a", "b"), "random images")
    data = prepare_data(raw, standardization="channel", flatten=False)
    model = ResNet20(2, head_nonlinear_widths=[8], linear_depth=2, linear_width=4, seed=0)
    regularization = Regularization([1e-3] * 3, backbone_lambda=1e-3, feature_penalty=1e-2)
    trainer = ft.Trainer(model, data, regularization, learning_rate=0.01, epochs=2, log_points=2)
    result = trainer.run()
    terms = result.final.terms
    assert terms.backbone_penalty > 0 and terms.feature_penalty > 0
    assert [row.width for row in result.final.layers] == [64, 8, 4]
    assert result.final.totals["BAL.scalar"] is not None  # includes λ_H‖H₁‖² first
    assert model.training  # observe restores the mode
    running = model.backbone.stem_norm.running_mean.clone()
    snapshot = observe(model, data, regularization)  # batch statistics, on a float64 copy
    assert torch.equal(model.backbone.stem_norm.running_mean, running)
    with torch.no_grad():
        fitted = 0.5 * ((model(data.inputs).T - data.targets) ** 2).sum() / data.num_samples
    assert snapshot.terms.data_term == pytest.approx(float(fitted), rel=1e-5)  # what GD optimizes
    evaluated = observe(model, data, regularization, batch_norm="running")
    assert evaluated.terms.data_term != pytest.approx(snapshot.terms.data_term, rel=1e-5)


# ------------------------------------------------------------------------------------------
# backbone initialization and centred inputs from a configuration
# ------------------------------------------------------------------------------------------


def _manual_weights(layers, seed=5):
    """W_1, …, W_L of PyramidalMLP(30, 4, [40, 16, 12], linear_depth=2) drawn in order from one
    generator with ``layers`` = [(scheme, gain), …] (:func:`fullnet.architectures.initialize_linear`)."""
    from fullnet.architectures import initialize_linear

    generator = torch.Generator().manual_seed(seed)
    shapes = [(40, 30), (16, 40), (12, 16), (12, 12), (4, 12)]
    weights = []
    for shape, (scheme, gain) in zip(shapes, layers):
        weight = torch.empty(shape)
        initialize_linear(weight, scheme, generator, gain)
        weights.append(weight)
    return weights


def test_build_model_draws_the_backbone_with_its_own_init_and_gain():
    """Every layer drawn in order from one generator: the default configuration gives the weights it
    always gave (every layer ``init`` × ``init_gain``), and W_1..W_b take ``backbone_init`` ×
    ``backbone_init_gain`` when ``backbone_layers`` = b."""
    from fullnet.config import ConfigError, ModelConfig

    base = {"nonlinear_widths": [40, 16, 12], "linear_depth": 2, "init": "uniform", "init_gain": 1.6, "seed": 5}

    def weights(**options):
        return ft.build_model(ModelConfig(**base, **options), (30,), 4).weight_matrices()

    def same(left, right):
        return len(left) == len(right) and all(torch.equal(a, b) for a, b in zip(left, right))

    head = ("uniform", 1.6)
    default = weights()
    assert same(default, _manual_weights([head] * 5))
    assert same(weights(backbone_layers=2, backbone_init="uniform", backbone_init_gain=1.6), default)
    assert same(weights(backbone_layers=3), default)  # backbone defaults: the head's scheme and gain
    drawn = weights(backbone_layers=2, backbone_init="lecun", backbone_init_gain=4.0)
    assert same(drawn, _manual_weights([("lecun", 4.0)] * 2 + [head] * 3))
    assert same(weights(backbone_layers=1, backbone_init_gain=3.0), _manual_weights([("uniform", 3.0)] + [head] * 4))
    assert same(weights(backbone_layers=1, backbone_init="he"), _manual_weights([("he", 1.6)] + [head] * 4))
    assert abs(float(drawn[0].detach().std()) * math.sqrt(30) / 4.0 - 1.0) < 0.05
    with pytest.raises(ValueError, match="backbone_layers must be an integer in 0..4"):
        PyramidalMLP(30, 4, [40, 16, 12], linear_depth=2, backbone_layers=5)
    with pytest.raises(ValueError, match="need backbone_layers >= 1"):
        PyramidalMLP(30, 4, [40, 16, 12], linear_depth=2, backbone_init="he")
    with pytest.raises(ValueError, match="backbone_init_gain must be a finite number > 0"):
        PyramidalMLP(30, 4, [40, 16, 12], linear_depth=2, backbone_layers=1, backbone_init_gain=-1.0)
    resnet = ModelConfig(architecture="resnet20", nonlinear_widths=[8], linear_depth=1, backbone_layers=1)
    with pytest.raises(ConfigError, match="ResNet20 backbone keeps its He initialization"):
        ft.build_model(resnet, (3, 32, 32), 10)


def test_train_with_centred_inputs_and_a_backbone_initialization(tmp_path):
    """``data.standardization = "centred"`` and ``model.backbone_*`` through :func:`fullnet.training.train`:
    recorded in config.json and the result, the training inputs centred with mean norm ``input_norm``,
    the test set prepared by the training map; a checkpoint saved before these keys existed resumes."""
    import json

    from fullnet.config import RunConfig

    config = RunConfig.from_dict({
        "name": "centred",
        "data": {"name": "gaussian", "per_class": 6, "gaussian_dimension": 8, "test_per_class": 4,
                 "standardization": "centred", "input_norm": 3.0},
        "model": {"nonlinear_widths": [16, 8], "linear_depth": 2, "backbone_layers": 1, "backbone_init": "he",
                  "backbone_init_gain": 2.0, "init": "uniform"},
        "training": {"epochs": 6, "learning_rate": 0.05, "device": "cpu", "dtype": "float64",
                     "feature_penalty": 1e-3, "feature_penalty_layer": 1},
        "observe": {"log_points": 3},
        "output": {"directory": str(tmp_path), "progress": False},
    })
    seen = []
    result = ft.train(config, stop_at_epoch=3, on_step=seen.append)
    trainer = seen[-1]
    inputs = trainer.data.inputs.numpy()
    assert abs(inputs.mean(axis=0)).max() < 1e-12
    assert math.isclose(float(np.mean(np.linalg.norm(inputs, axis=1))), 3.0, rel_tol=1e-12)
    assert trainer.test_data.standardization is trainer.data.standardization
    assert result.data["standardization"] == "centred"
    saved = json.loads((tmp_path / "centred" / "config.json").read_text())
    assert saved["data"]["standardization"] == "centred" and saved["data"]["input_norm"] == 3.0
    assert saved["model"]["backbone_layers"] == 1 and saved["model"]["backbone_init"] == "he"
    assert saved["model"]["backbone_init_gain"] == 2.0
    # a configuration saved without the new keys counts them at their defaults
    old = RunConfig().to_dict()
    for section, key in (("data", "input_norm"), ("model", "backbone_layers"), ("model", "backbone_init"),
                         ("model", "backbone_init_gain")):
        del old[section][key]
    assert ft._config_differences(old, RunConfig().to_dict()) == []
    assert ft._config_differences(old, config.to_dict()) != []
    plain = config.with_overrides(["data.standardization=global", "data.input_norm=1", "model.backbone_layers=0",
                                   "model.backbone_init=none", "model.backbone_init_gain=none", "name=plain"])
    ft.train(plain, stop_at_epoch=3)
    checkpoint = tmp_path / "plain" / ft.CHECKPOINT_NAME
    state = ft.load_checkpoint(checkpoint)
    for section, key in (("data", "input_norm"), ("model", "backbone_layers"), ("model", "backbone_init"),
                         ("model", "backbone_init_gain")):
        del state["extra"]["config"][section][key]
    ft.atomic_torch_save(state, checkpoint)
    assert ft.train(plain, resume=True).status == "completed"
