"""The full versions of the figures, on the same code path as the paper settings.

The full versions need hours (and CIFAR-10, which cannot ship). These tests run the full
settings' code path with ``--set`` overrides that shrink only the sizes (samples, epochs, seeds)
on a synthetic CIFAR-10 folder in the official file format, and check the settings themselves
against docs/theory.md §6.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from figures import cli, registry  # noqa: E402
from figures import jacot2025_fig1 as figure1  # noqa: E402
from figures.overrides import SettingsError, apply_overrides, parse_overrides  # noqa: E402
from fullnet.data import CIFAR10_DIRECTORY, CIFAR10_FILES, load_dataset, write_cifar10_batch  # noqa: E402


def write_cifar_folder(root, per_class_per_batch: int = 1, seed: int = 0):
    """A CIFAR-10 folder (every batch file) with ``per_class_per_batch`` images of each class."""
    folder = root / CIFAR10_DIRECTORY
    folder.mkdir(parents=True)
    generator = np.random.default_rng(seed)
    labels = [label for label in range(10) for _ in range(per_class_per_batch)]
    for name in CIFAR10_FILES["train"] + CIFAR10_FILES["test"]:
        # class-dependent mean colour, so that the classes are separable
        images = np.stack([
            np.clip(generator.normal(25 * label, 30, size=(3, 32, 32)), 0, 255) for label in labels
        ]).astype(np.uint8)
        write_cifar10_batch(folder / name, images, labels)
    return root


def test_written_cifar_batches_read_back(tmp_path):
    write_cifar_folder(tmp_path, per_class_per_batch=2)
    raw = load_dataset("cifar10", "train", data_root=tmp_path)
    assert raw.inputs.shape == (5 * 20, 3, 32, 32)
    assert np.array_equal(np.bincount(raw.labels), np.full(10, 10))
    with pytest.raises(ValueError, match="images must be uint8"):
        write_cifar10_batch(tmp_path / "bad", np.zeros((2, 3, 32, 32)), [0, 1])
    with pytest.raises(ValueError, match="labels must lie in 0..9"):
        write_cifar10_batch(tmp_path / "bad", np.zeros((1, 3, 32, 32), np.uint8), [10])


def test_overrides_are_parsed_and_checked():
    parsed = parse_overrides(["epochs=10", "seeds=[0, 1]", "data_root=/data", "per_class=null"])
    assert parsed == {"epochs": 10, "seeds": [0, 1], "data_root": "/data", "per_class": None}
    config = {"epochs": 5, "learning_rate": 0.1, "seeds": [0], "data_root": None, "per_class": 3,
              "device": "cpu"}
    updated = apply_overrides(config, {"learning_rate": 1, "data_root": "/d"}, "fig")
    assert updated["learning_rate"] == 1.0 and isinstance(updated["learning_rate"], float)
    assert config["data_root"] is None  # the defaults are not modified
    with pytest.raises(SettingsError, match="has no setting 'epoch'.*epochs"):
        apply_overrides(config, {"epoch": 3}, "fig")
    with pytest.raises(SettingsError, match="'epochs' of figure 'fig' expects"):
        apply_overrides(config, {"epochs": "many"}, "fig")
    with pytest.raises(SettingsError, match="'seeds'.*expects"):
        apply_overrides(config, {"seeds": 3}, "fig")
    with pytest.raises(SettingsError, match="KEY=VALUE"):
        parse_overrides(["epochs"])
    with pytest.raises(SettingsError, match="twice"):
        parse_overrides(["epochs=1", "epochs=2"])


def test_cli_refuses_overrides_a_figure_does_not_take(tmp_path, capsys):
    assert registry.accepts_overrides("jacot2025_fig1")
    assert not registry.accepts_overrides("sukenik2024_ratio")
    assert cli.main(["sukenik2024_ratio", "--set", "epochs=3", "--out", str(tmp_path)]) == 2
    assert "no settings to override" in capsys.readouterr().err
    assert cli.main(["jacot2025_fig1", "--set", "epochz=3", "--out", str(tmp_path)]) == 2
    assert "has no setting 'epochz'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written before the settings are checked


def test_fig1_full_settings_are_the_camera_ready_experiment():
    """E-A2 of docs/theory.md §6: ResNet20 + 3 ReLU + 3 linear head layers on CIFAR-10, 5 runs,
    (A)'s wd 0.001 converted as nn.MSELoss() + coupled weight decay (λ = K·wd/2), 5,000 epochs."""
    full = figure1.settings(quick=False)
    assert full["dataset"] == "cifar10" and full["architecture"] == "resnet20"
    assert full["nonlinear_widths"] == [64, 64, 64] and full["linear_depth"] == 3
    assert full["weight_decay"] == pytest.approx(10 * 0.001 / 2, rel=1e-15)
    assert full["epochs"] == 5000 and len(full["seeds"]) == 5
    assert figure1.experiment(full) == "E-A2" and figure1.experiment(figure1.settings(True)) == "E-A1"


def test_fig1_full_version_runs_resnet20_on_cifar_files(tmp_path):
    """The full version's code path (ResNet20 backbone, CIFAR-10 reader, head metrics, J12
    envelope) end to end, shrunk by overrides to 2 images per class and 4 epochs."""
    root = write_cifar_folder(tmp_path / "data")
    out = tmp_path / "out"
    status = cli.main(["jacot2025_fig1", "--out", str(out), "--set", f"data_root={root}",
                       "--set", "per_class=2", "--set", "epochs=4", "--set", "log_points=3",
                       "--set", "seeds=[0]", "--set", "threads=1", "--set", "device=cpu",
                       "--set", "nonlinear_widths=[8, 8, 8]", "--set", "linear_width=8"])
    assert status == 0
    data = json.loads((out / "jacot2025_fig1.json").read_text())
    assert data["experiment"] == "E-A2" and data["quick"] is False
    assert data["settings"]["architecture"] == "resnet20" and data["settings"]["data_root"] == str(root)
    with open(out / "jacot2025_fig1.csv") as handle:
        rows = list(csv.DictReader(handle))
    epochs = sorted({int(row["epoch"]) for row in rows})
    assert epochs[0] == 0 and epochs[-1] == 4
    # six head layers: metrics of the features after each one, the envelope for the 2 linear pairs
    layers = {int(row["layer"]) for row in rows if row["metric"] == "NC1.tr_unc"}
    assert layers == set(range(1, 7))
    assert set(data["envelopes"]["0"]) == {"4", "5"}
    for entry in data["envelopes"]["0"].values():
        # J12 is an upper bound along the measured run (float32 training: relative slack 1e-5)
        assert entry["largest_measured_over_envelope"] <= 1.0 + 1e-5
    objective = [float(row["value"]) for row in rows if row["metric"] == "objective"]
    assert all(math.isfinite(value) for value in objective)
    assert (out / "jacot2025_fig1.png").stat().st_size > 10_000


def test_fig1_full_version_names_the_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar"):
        registry.make_figure("jacot2025_fig1", tmp_path / "out", quick=False,
                             overrides={"data_root": str(tmp_path / "nowhere"), "epochs": 1,
                                        "seeds": [0], "device": "cpu", "threads": 1})


def test_fig2_resnet_panel_runs_through_overrides(tmp_path):
    """(A)'s ResNet20/CIFAR-10 panel of Fig. 2 (E-A3) through ``--set``, shrunk to 2 images per
    class, 3 epochs and L2 ∈ {1, 3}: one row per L2 with the head's measurements."""
    root = write_cifar_folder(tmp_path / "data")
    out = tmp_path / "out"
    status = cli.main(["jacot2025_fig2", "--out", str(out), "--set", f"data_root={root}",
                       "--set", "dataset=cifar10", "--set", "architecture=resnet20",
                       "--set", "standardization=channel", "--set", "nonlinear_widths=[12, 12]",
                       "--set", "linear_width=12", "--set", "linear_depths=[1, 3]",
                       "--set", "paper_weight_decays=[0.001]", "--set", "per_class=2",
                       "--set", "epochs=3", "--set", "seeds=[0]", "--set", "threads=1",
                       "--set", "device=cpu"])
    assert status == 0
    data = json.loads((out / "jacot2025_fig2.json").read_text())
    assert data["settings"]["architecture"] == "resnet20"
    with open(out / "jacot2025_fig2.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["linear_depth"]) for row in rows] == [1, 3]
    assert data["hyperparameters"][0]["lam"] == pytest.approx(10 * 0.001 / 2, rel=1e-15)
