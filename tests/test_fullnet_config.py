"""fullnet.config and the command line: TOML configurations, overrides, every shipped config,
``python -m fullnet train|download`` without network."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fullnet import cli
from fullnet.config import (
    CONFIG_DIRECTORY,
    ConfigError,
    RunConfig,
    apply_overrides,
    config_names,
    load_config,
    resolve_config_path,
)
from fullnet.training import build_model, regularization_from_config

# Run configurations; sweep_*.toml files describe grids of them (tested in test_fullnet_sweeps).
CONFIGS = sorted(
    path for path in (Path(__file__).resolve().parents[1] / "fullnet" / "configs").glob("*.toml")
    if not path.name.startswith("sweep_")
)
INPUT_SHAPES = {
    "mnist-5k": (1, 28, 28),
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
}


def test_there_is_a_quick_config_per_reproduced_experiment():
    names = {path.stem for path in CONFIGS}
    assert {"jacot_mlp_mnist_quick", "jacot_resnet20_cifar10_quick",
            "sukenik_resnet20_cifar10_quick", "gaussian_smoke"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_every_shipped_config_loads_and_builds_its_model(path):
    config = load_config(path)
    assert config.name == path.stem
    assert RunConfig.from_dict(json.loads(config.to_json())) == config  # JSON round trip
    if config.data.name == "gaussian":
        shape = (config.data.gaussian_dimension,)
        classes = config.data.gaussian_classes
    else:
        shape = INPUT_SHAPES[config.data.name]
        classes = len(config.data.classes) or 10
    model = build_model(config.model, shape, classes)
    regularization = regularization_from_config(config.training, model.depth)
    assert len(regularization.layer_lambdas) == len(model.weight_matrices())


def test_overrides_parse_toml_values_and_name_bad_keys():
    config = RunConfig()
    changed = apply_overrides(config, [
        "training.epochs=50", "model.nonlinear_widths=[64, 32]", "data.name=fashion-mnist",
        "training.batch_size=none", "training.learning_rate=1", "model.bias=true", "name=quick",
    ])
    assert changed.training.epochs == 50 and changed.model.nonlinear_widths == [64, 32]
    assert changed.data.name == "fashion-mnist" and changed.training.batch_size is None
    assert changed.training.learning_rate == 1.0 and isinstance(changed.training.learning_rate, float)
    assert changed.model.bias is True and changed.name == "quick"
    assert config.training.epochs == 1000  # the original is unchanged
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        apply_overrides(config, ["training.epoch=5"])
    with pytest.raises(ConfigError, match="training.epochs must be an integer"):
        apply_overrides(config, ["training.epochs=5.5"])
    with pytest.raises(ConfigError, match="model.activation must be one of"):
        apply_overrides(config, ["model.activation=gelu"])
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides(config, ["training.epochs"])
    with pytest.raises(ConfigError, match="training.batch_size is required"):
        apply_overrides(config, ["training.optimizer=sgd"])
    with pytest.raises(ConfigError, match="layer_weight_decay must list L = 5"):
        apply_overrides(config, ["training.layer_weight_decay=[0.1, 0.2]"])


def test_toml_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[training]\nepochs = 10\nlearning_rte = 0.1\n')
    with pytest.raises(ConfigError, match=r"bad.toml.*learning_rte.*\[training\]"):
        load_config(path)
    path.write_text("name = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_config(tmp_path / "missing.toml")


def test_cli_train_writes_results(tmp_path, capsys):
    smoke = next(path for path in CONFIGS if path.stem == "gaussian_smoke")
    code = cli.main([
        "train", "--config", str(smoke), "--set", "training.epochs=15",
        "--set", "observe.log_points=3", "--set", "training.device=cpu",
        "--output-dir", str(tmp_path / "run"), "--no-progress",
    ])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["epochs"] == 15
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["training"]["epochs"] == 15 and saved["name"] == "gaussian_smoke"
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [entry["epoch"] for entry in history][0] == 0 and history[-1]["epoch"] == 15
    assert cli.main(["train", "--config", str(smoke), "--set", "training.epoch=3"]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert cli.main(["train", "--config", str(smoke), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "gaussian_smoke"


def test_packaged_configs_load_by_name_and_by_path(tmp_path, monkeypatch):
    """A config is a file path or a packaged name (with or without .toml); the repository's former
    ``configs/NAME.toml`` still resolves; a file that exists wins over a packaged name."""
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    by_path = load_config(CONFIG_DIRECTORY / "gaussian_smoke.toml")
    for given in ("gaussian_smoke", "gaussian_smoke.toml", "configs/gaussian_smoke.toml",
                  Path("configs") / "gaussian_smoke.toml"):
        assert load_config(given) == by_path, given
    assert load_config("gaussian_smoke", ["training.epochs=7"]).training.epochs == 7
    local = tmp_path / "gaussian_smoke.toml"
    local.write_text('name = "local"\n')
    assert resolve_config_path("gaussian_smoke.toml") == Path("gaussian_smoke.toml")
    assert load_config("gaussian_smoke.toml").name == "local"
    assert load_config("gaussian_smoke").name == "gaussian_smoke"  # a bare name is the packaged one
    with pytest.raises(FileNotFoundError, match="no_such_config.*packaged: .*gaussian_smoke"):
        load_config("no_such_config")
    with pytest.raises(FileNotFoundError, match="elsewhere/gaussian_smoke.toml"):
        load_config("elsewhere/gaussian_smoke.toml")  # only a bare name or configs/NAME


def test_config_names_split_runs_and_sweeps():
    runs, sweeps = config_names("run"), config_names("sweep")
    assert "gaussian_smoke" in runs and "sweep_lambda_width_gaussian_quick" in sweeps
    assert sorted(runs + sweeps) == config_names() == sorted(
        path.stem for path in CONFIG_DIRECTORY.glob("*.toml"))
    assert [path.stem for path in CONFIGS] == runs
    with pytest.raises(ValueError, match="kind"):
        config_names("grid")


def test_cli_configs_lists_and_prints(capsys):
    assert cli.main(["configs"]) == 0
    out = capsys.readouterr().out
    assert "gaussian_smoke" in out and "sweep_lambda_width_mnist" in out
    assert cli.main(["configs", "gaussian_smoke"]) == 0
    assert capsys.readouterr().out == (CONFIG_DIRECTORY / "gaussian_smoke.toml").read_text()
    assert cli.main(["configs", "gaussian_smoke", "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(CONFIG_DIRECTORY / "gaussian_smoke.toml")
    assert cli.main(["configs", "nope"]) == 2
    assert "no packaged configuration 'nope'" in capsys.readouterr().err
    assert cli.main(["train", "--config", "gaussian_smoke", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "gaussian_smoke"
    assert cli.main(["train", "--config", "gaussian_smok", "--dry-run"]) == 2
    assert "packaged:" in capsys.readouterr().err


def test_cli_download_offline_reports_clearly(tmp_path, monkeypatch, capsys):
    def offline(request, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code = cli.main(["download", "fashion-mnist", "--data-root", str(tmp_path)])
    assert code == 1
    error = capsys.readouterr().err
    assert "could not download train-images-idx3-ubyte.gz" in error and "no network access" in error


def test_centred_input_norm_and_backbone_initialization_keys_are_validated():
    """``data.input_norm`` belongs to ``"centred"``; ``model.backbone_init``/``backbone_init_gain`` need
    ``model.backbone_layers`` ≥ 1, an MLP, and at least one head layer; the defaults change nothing."""
    default = RunConfig()
    assert default.data.input_norm == 1.0 and default.model.backbone_layers == 0
    assert default.model.backbone_init is None and default.model.backbone_init_gain is None
    config = apply_overrides(default, [
        "data.standardization=centred", "data.input_norm=2.5", "model.backbone_layers=2",
        "model.backbone_init=uniform", "model.backbone_init_gain=4",
    ])
    assert config.data.input_norm == 2.5 and config.model.backbone_layers == 2
    assert config.model.backbone_init == "uniform" and config.model.backbone_init_gain == 4.0
    assert RunConfig.from_dict(json.loads(config.to_json())) == config
    assert apply_overrides(config, ["model.backbone_init=none"]).model.backbone_init is None
    errors = [
        (["data.input_norm=2"], "data.input_norm = 2.0 applies to data.standardization = 'centred' only"),
        (["data.standardization=centred", "data.input_norm=0"], "data.input_norm must be > 0"),
        (["model.backbone_init=he"], "need model.backbone_layers >= 1"),
        (["model.backbone_init_gain=2"], "need model.backbone_layers >= 1"),
        (["model.backbone_layers=5"], r"model.backbone_layers must lie in 0..4"),
        (["model.backbone_layers=-1"], "model.backbone_layers must be >= 0"),
        (["model.backbone_layers=1", "model.backbone_init=orthogonal"], "model.backbone_init must be one of"),
        (["model.backbone_layers=1", "model.backbone_init_gain=0"], "model.backbone_init_gain must be > 0"),
        (["model.architecture=resnet20", "model.backbone_layers=1"], "keeps its own initialization"),
    ]
    for overrides, message in errors:
        with pytest.raises(ConfigError, match=message):
            apply_overrides(default, overrides)
