"""fullnet.sweeps: grid expansion (λ·width lines included), sweep files, resumption after an
interruption, failed runs, retry after a worker death, a dask LocalCluster against local
processes, aggregation into (λ, width) grids and lines, and the ``sweep`` command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from fullnet import cli
from fullnet.config import ConfigError
from fullnet.store import FinalMetricRow, FinalMetricTable, SweepStore
from fullnet import sweeps

CONFIGS = Path(__file__).resolve().parents[1] / "fullnet" / "configs"


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """In-process runs set torch's thread count (training.threads = 1); restore it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _base(directory: Path) -> dict:
    return {
        "data": {"name": "gaussian", "gaussian_classes": 3, "gaussian_dimension": 6, "per_class": 8},
        "model": {"nonlinear_widths": [16, 8], "linear_depth": 1},
        "training": {"epochs": 30, "learning_rate": 0.1, "device": "cpu"},
        "observe": {"log_points": 4},
        "output": {"directory": str(directory), "progress": False},
    }


def _specification(directory: Path, name: str = "tiny", **grid) -> sweeps.SweepSpecification:
    return sweeps.SweepSpecification.from_dict({"name": name, "base": _base(directory), "grid": grid})


def _values_by_hash(path: Path) -> dict[str, dict]:
    """config hash → {(epoch, layer, metric): value} of every run of a store."""
    with SweepStore(path) as store:
        hashes = {record.run_id: record.config_hash for record in store.runs()}
        values: dict[str, dict] = {digest: {} for digest in hashes.values()}
        for run_id, epoch, layer, metric, value in store.iterate_metrics():
            values[hashes[run_id]][(epoch, layer, metric)] = value
    return values


# ------------------------------------------------------------------------------------------
# grid
# ------------------------------------------------------------------------------------------


def test_grid_expansion_with_lambda_width_lines(tmp_path):
    specification = _specification(
        tmp_path, weight_decays=[1e-3, 1e-2], widths=[8, 16], seeds=[0, 1],
        lambda_width_products=[0.016],
    )
    cells = sweeps.expand_grid(specification)
    # per seed: 2 λ × 2 widths, plus λ = 0.016/8 = 0.002 (0.016/16 = 0.001 is already a cell)
    assert len(cells) == 10
    coordinates = [(cell.coordinates["seed"], cell.coordinates["width"], cell.coordinates["weight_decay"])
                   for cell in cells]
    assert coordinates[:5] == [(0, 8, 1e-3), (0, 8, 1e-2), (0, 8, 0.002), (0, 16, 1e-3), (0, 16, 1e-2)]
    assert len({cell.config_hash for cell in cells}) == 10
    for cell in cells:
        config = cell.config
        assert config.model.nonlinear_widths == [cell.coordinates["width"], 8]
        assert config.training.weight_decay == cell.coordinates["weight_decay"]
        assert config.model.seed == config.training.seed == cell.coordinates["seed"]
        assert cell.directory == tmp_path.resolve() / "tiny" / cell.name
    line = [cell for cell in cells if cell.coordinates["seed"] == 0
            and cell.coordinates["weight_decay"] * cell.coordinates["width"] == pytest.approx(0.016)]
    assert [cell.coordinates["width"] for cell in line] == [8, 16]
    # λ ∝ width^(−2) and depths: the last width is repeated to pad, cut to shorten
    deeper = sweeps.expand_grid(_specification(
        tmp_path, widths=[4, 32], lambda_width_products=[0.32], lambda_width_power=2.0,
        nonlinear_depths=[1, 3], linear_depths=[1, 2]))
    assert len(deeper) == 8
    assert {tuple(cell.config.model.nonlinear_widths) for cell in deeper} == {(4,), (32,), (4, 8, 8), (32, 8, 8)}
    assert {cell.coordinates["weight_decay"] for cell in deeper} == {0.02, 0.0003125}
    # further axes and defaults from the base
    axes = sweeps.expand_grid(_specification(tmp_path, axes={"training.learning_rate": [0.05, 0.1]}))
    assert [cell.coordinates["training.learning_rate"] for cell in axes] == [0.05, 0.1]
    assert axes[0].coordinates["width"] == 16 and axes[0].coordinates["weight_decay"] == 1e-3


def test_configuration_hash_ignores_where_and_how_a_run_executes(tmp_path):
    cell = sweeps.expand_grid(_specification(tmp_path))[0]
    moved = cell.config.with_overrides(["output.directory=/elsewhere", "training.threads=4",
                                        "training.device=auto", "name=other"])
    assert sweeps.configuration_hash(moved) == cell.config_hash
    assert sweeps.configuration_hash(cell.config.with_overrides(["training.epochs=31"])) != cell.config_hash


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"widths": 8}, "grid.widths must be a list"),
        ({"widths": [8, 0]}, r"grid.widths\[1\]"),
        ({"weight_decays": [-1e-3]}, r"grid.weight_decays\[0\]"),
        ({"seeds": [1.5]}, r"grid.seeds\[0\]"),
        ({"lambda_width_products": [0.0]}, r"grid.lambda_width_products\[0\]"),
        ({"lambda_width_power": "one"}, "grid.lambda_width_power"),
        ({"seed_keys": ["model.gamma"]}, r"grid.seed_keys\[0\]"),
        ({"axes": {"training.learning_rat": [0.1]}}, "unknown key 'training.learning_rat'"),
        ({"axes": {"training.weight_decay": [0.1]}}, "set by the grid itself"),
        ({"axes": {"training.epochs": []}}, "non-empty list"),
        ({"width": [8]}, r"unknown key\(s\) \['width'\] in \[grid\]"),
    ],
)
def test_bad_grid_specifications_name_the_key(tmp_path, grid, message):
    with pytest.raises(ConfigError, match=message):
        _specification(tmp_path, **grid)


def test_bad_sweep_files_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['sweeps'\]"):
        sweeps.SweepSpecification.from_dict({"name": "x", "sweeps": {}})
    with pytest.raises(ConfigError, match="needs a name"):
        sweeps.SweepSpecification.from_dict({"grid": {}})
    with pytest.raises(ConfigError, match="base: configuration file .*missing.toml does not exist"):
        sweeps.SweepSpecification.from_dict({"name": "x", "base": "missing.toml"}, base_directory=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['epochs'\] in section \[model\]"):
        sweeps.SweepSpecification.from_dict({"name": "x", "base": {"model": {"epochs": 3}}})
    with pytest.raises(ConfigError, match="name must be a non-empty folder name"):
        sweeps.SweepSpecification.from_dict({"name": "a/b"})
    base = _base(tmp_path)
    base["training"]["layer_weight_decay"] = [1e-3, 1e-3, 1e-3]
    with pytest.raises(ConfigError, match="layer_weight_decay"):
        sweeps.SweepSpecification.from_dict({"name": "x", "base": base, "grid": {"weight_decays": [1e-3]}})
    momentum = _specification(tmp_path, axes={"training.momentum": [0.5, 1.5]})
    with pytest.raises(ConfigError, match=r"grid cell \{.*'training.momentum': 1.5\}: training.momentum"):
        sweeps.expand_grid(momentum)


def test_sweep_files_load_expand_and_take_overrides(tmp_path):
    files = sorted(CONFIGS.glob("sweep_*.toml"))
    assert files
    for path in files:
        specification = sweeps.load_sweep(path)
        cells = sweeps.expand_grid(specification)
        assert len(cells) > 1 and specification.name == path.stem.removeprefix("sweep_")
    specification = sweeps.load_sweep(
        CONFIGS / "sweep_lambda_width_gaussian_quick.toml",
        ["grid.widths=[8, 12]", "grid.seeds=[3]", "sweep.name=renamed", "training.epochs=7",
         f"output.directory={tmp_path}"],
    )
    assert specification.name == "renamed" and specification.widths == [8, 12]
    assert specification.base.training.epochs == 7 and specification.seeds == [3]
    assert specification.default_store_path == tmp_path.resolve() / "renamed" / "sweep.sqlite"
    with pytest.raises(ConfigError, match="unknown grid key 'width'"):
        sweeps.load_sweep(CONFIGS / "sweep_lambda_width_gaussian_quick.toml", ["grid.width=[8]"])
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        sweeps.load_sweep(CONFIGS / "sweep_lambda_width_gaussian_quick.toml", ["training.epoch=7"])
    with pytest.raises(FileNotFoundError):
        sweeps.load_sweep(tmp_path / "none.toml")


def test_sweeps_and_their_base_load_by_packaged_name(tmp_path):
    by_name = sweeps.load_sweep("sweep_lambda_width_gaussian_quick", [f"output.directory={tmp_path}"])
    by_path = sweeps.load_sweep(CONFIGS / "sweep_lambda_width_gaussian_quick.toml",
                                [f"output.directory={tmp_path}"])
    assert by_name == by_path
    # a sweep file of one's own may name a packaged run configuration as its base
    own = tmp_path / "mine.toml"
    own.write_text('name = "mine"\nbase = "gaussian_smoke"\n[grid]\nwidths = [8, 16]\n')
    specification = sweeps.load_sweep(own)
    assert specification.base.name == "gaussian_smoke" and specification.widths == [8, 16]
    with pytest.raises(FileNotFoundError, match="sweep file no_sweep .*packaged: sweep_"):
        sweeps.load_sweep("no_sweep")


# ------------------------------------------------------------------------------------------
# running, resuming, failing
# ------------------------------------------------------------------------------------------


def test_interrupted_sweep_resumes_without_running_or_writing_anything_twice(tmp_path):
    specification = _specification(tmp_path, weight_decays=[1e-3, 1e-2], widths=[8, 12])
    store_path = tmp_path / "store.sqlite"
    seen = []

    def stop_after_two(record):
        seen.append(record.run_id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweeps.run_sweep(specification, store_path, workers=0, progress=False, on_result=stop_after_two)
    with SweepStore(store_path) as store:
        assert store.counts() == {"pending": 2, "running": 0, "completed": 2, "failed": 0}
        rows_after_two = store.metric_row_count()
        per_run = rows_after_two // 2
        assert per_run > 0 and all(store.metric_row_count(run_id) == per_run for run_id in seen)
    report = sweeps.run_sweep(specification, store_path, workers=0, progress=False)
    assert report.skipped_completed == 2 and len(report.completed) == 2 and not set(report.completed) & set(seen)
    with SweepStore(store_path) as store:
        assert store.counts() == {"pending": 0, "running": 0, "completed": 4, "failed": 0}
        assert store.metric_row_count() == 4 * per_run
        assert all(record.attempts == 1 for record in store.runs())
        first = store.runs()[0]
        assert first.epochs_completed == 30 and first.wall_seconds > 0 and first.worker
        assert first.config["training"]["threads"] == 1
    again = sweeps.run_sweep(specification, store_path, workers=0, progress=False)
    assert again.skipped_completed == 4 and again.completed == [] and again.failed == []
    with SweepStore(store_path) as store:
        assert store.metric_row_count() == 4 * per_run


def test_half_finished_run_continues_from_its_checkpoint(tmp_path):
    specification = _specification(tmp_path / "interrupted", widths=[8])
    store_path = tmp_path / "interrupted.sqlite"

    def stop_at_epoch_12(trainer):
        if trainer.epoch == 12:
            raise KeyboardInterrupt

    def interrupting_runner(task):
        return sweeps.run_cell(task, on_step=stop_at_epoch_12)

    with pytest.raises(KeyboardInterrupt):
        sweeps.run_sweep(specification, store_path, workers=0, progress=False, runner=interrupting_runner)
    with SweepStore(store_path) as store:
        (record,) = store.runs()
        assert record.status == "pending" and store.metric_row_count() == 0
        assert (Path(record.directory) / "checkpoint.pt").is_file()
    sweeps.run_sweep(specification, store_path, workers=0, progress=False)
    with SweepStore(store_path) as store:
        (record,) = store.runs()
        assert record.status == "completed" and record.resumed_from_epoch == 12 and record.attempts == 2
    reference = _specification(tmp_path / "reference", widths=[8])
    sweeps.run_sweep(reference, tmp_path / "reference.sqlite", workers=0, progress=False)
    resumed, uninterrupted = _values_by_hash(store_path), _values_by_hash(tmp_path / "reference.sqlite")
    assert resumed == uninterrupted  # bit-identical continuation


def test_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    # λ = 1e5 with η = 0.1: W ← (1 − 10⁴)W, the loss overflows within a few steps
    specification = _specification(tmp_path, weight_decays=[1e-3, 1e5], widths=[8, 12])
    store_path = tmp_path / "store.sqlite"
    report = sweeps.run_sweep(specification, store_path, workers=0, progress=False)
    assert len(report.completed) == 2 and len(report.failed) == 2
    with SweepStore(store_path) as store:
        failed = store.runs(status="failed")
        assert {record.weight_decay for record in failed} == {1e5}
        for record in failed:
            assert record.error.startswith("FloatingPointError")
            assert "learning_rate" in record.error and "Traceback" in record.error
            assert store.metric_row_count(record.run_id) == 0
    rerun = sweeps.run_sweep(specification, store_path, workers=0, progress=False)
    assert rerun.skipped_failed == 2 and rerun.skipped_completed == 2 and not rerun.failed
    retried = sweeps.run_sweep(specification, store_path, workers=0, progress=False, retry_failed=True)
    assert len(retried.failed) == 2
    with SweepStore(store_path) as store:
        assert [record.attempts for record in store.runs(status="failed")] == [2, 2]


def die_once(task: sweeps.RunTask) -> sweeps.RunOutcome:
    """Runner whose worker process dies the first time it starts the λ = 1e-2 run."""
    marker = Path(task.directory).parent / "died-once"
    if task.config["training"]["weight_decay"] == 1e-2 and not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(os.getpid()))
        os._exit(3)
    return sweeps.run_cell(task)


@pytest.fixture(scope="module")
def process_pool_sweep(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pool")
    specification = _specification(directory / "runs", weight_decays=[1e-3, 1e-2, 3e-2], widths=[8])
    store_path = directory / "store.sqlite"
    report = sweeps.run_sweep(specification, store_path, workers=2, progress=False, runner=die_once)
    return specification, store_path, report


def test_worker_death_is_retried(process_pool_sweep):
    specification, store_path, report = process_pool_sweep
    assert (specification.directory / "died-once").is_file()
    assert report.worker_losses >= 1 and len(report.completed) == 3 and not report.failed
    with SweepStore(store_path) as store:
        assert store.counts()["completed"] == 3
        attempts = {record.weight_decay: record.attempts for record in store.runs()}
        assert attempts[1e-2] == 2 and all(count <= 2 for count in attempts.values())
        workers = {record.worker.split(":")[1] for record in store.runs()}
        assert str(os.getpid()) not in workers  # ran in worker processes


def test_dask_local_cluster_stores_the_same_results_as_local_processes(process_pool_sweep, tmp_path):
    distributed = pytest.importorskip("distributed")
    specification, store_path, _ = process_pool_sweep
    on_dask = sweeps.SweepSpecification.from_dict(
        {**specification.to_dict(), "base": {**specification.to_dict()["base"],
                                             "output": {"directory": str(tmp_path), "progress": False}}})
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        report = sweeps.run_sweep(on_dask, tmp_path / "dask.sqlite", scheduler=cluster.scheduler_address,
                                  progress=False)
    assert len(report.completed) == 3 and not report.failed
    local, dask = _values_by_hash(store_path), _values_by_hash(tmp_path / "dask.sqlite")
    assert set(local) == set(dask) and len(local) == 3
    for digest in local:
        assert dask[digest].keys() == local[digest].keys()
        undefined = {key for key, value in local[digest].items() if value is None}
        assert undefined == {key for key, value in dask[digest].items() if value is None}
        defined = {key: value for key, value in local[digest].items() if key not in undefined}
        assert {key: dask[digest][key] for key in defined} == pytest.approx(defined, rel=1e-12, abs=1e-14)


def test_executor_arguments_are_checked(tmp_path):
    specification = _specification(tmp_path)
    with pytest.raises(ValueError, match="at most one of executor, workers, scheduler"):
        sweeps.run_sweep(specification, tmp_path / "s.sqlite", workers=1, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="max_retries"):
        sweeps.run_sweep(specification, tmp_path / "s.sqlite", max_retries=-1)
    with pytest.raises(ValueError, match="workers must be an integer"):
        sweeps.run_sweep(specification, tmp_path / "s.sqlite", workers=-2)


# ------------------------------------------------------------------------------------------
# aggregation
# ------------------------------------------------------------------------------------------


def _table(rows):
    return FinalMetricTable(metric="NC1.tr_unc", layer=2, sweep="grid", rows=[
        FinalMetricRow(run_id=index, weight_decay=weight_decay, width=width, nonlinear_depth=2,
                       linear_depth=depth, seed=seed, epoch=30, value=value,
                       coordinates={"weight_decay": weight_decay, "width": width, "nonlinear_depth": 2,
                                    "linear_depth": depth, "seed": seed})
        for index, (weight_decay, width, seed, value, depth) in enumerate(rows)
    ])


def test_aggregation_into_grids_and_lines():
    table = _table([
        (1e-3, 8, 0, 1.0, 1), (1e-3, 8, 1, 3.0, 1), (1e-2, 8, 0, 5.0, 1),
        (1e-3, 16, 0, 7.0, 1), (1e-3, 16, 1, None, 1), (5e-4, 16, 0, 2.0, 1), (5e-4, 16, 1, 4.0, 1),
        (1e-3, 8, 0, 100.0, 2),
    ])
    with pytest.raises(ValueError, match="linear_depth"):
        sweeps.aggregate_grid(table)
    grid = sweeps.aggregate_grid(table, linear_depth=1)
    assert grid.weight_decays == [5e-4, 1e-3, 1e-2] and grid.widths == [8, 16]
    assert grid.mean[1] == [2.0, 7.0] and grid.std[1] == [1.0, 0.0] and grid.count[1] == [2, 1]
    assert grid.count[0] == [0, 2] and grid.mean[0][1] == 3.0
    assert grid.to_dict()["mean"][0][0] is None and grid.selection == {"linear_depth": 1, "nonlinear_depth": 2}
    assert sweeps.aggregate_grid(table, linear_depth=1, ddof=1).std[1][0] == pytest.approx(2 ** 0.5)
    (line,) = sweeps.aggregate_lines(table, linear_depth=1)  # λ·width = 0.008 at widths 8 and 16
    assert line.product == pytest.approx(0.008) and line.widths == [8, 16]
    assert line.weight_decays == [1e-3, 5e-4] and line.mean == [2.0, 3.0] and line.count == [2, 2]
    assert sweeps.aggregate_lines(table, linear_depth=1, minimum_points=1, power=2.0)
    with pytest.raises(ValueError, match="no completed run"):
        sweeps.aggregate_grid(table, linear_depth=7)


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------


def test_sweep_command(tmp_path, capsys):
    config = CONFIGS / "sweep_lambda_width_gaussian_quick.toml"
    common = ["sweep", "--config", str(config), "--set", "grid.widths=[8]", "--set", "grid.seeds=[0]",
              "--set", "grid.weight_decays=[1e-3]", "--set", "grid.lambda_width_products=[0.016]",
              "--set", "training.epochs=5", "--set", "observe.log_points=2",
              "--set", f"output.directory={tmp_path}", "--set", "observe.per_layer=false"]
    assert cli.main(common + ["--dry-run"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["width"], line["weight_decay"]) for line in lines] == [(8, 1e-3), (8, 0.002)]
    assert cli.main(common + ["--workers", "0", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["completed"] == 2 and summary["failed"] == 0
    assert summary["store"] == str(tmp_path.resolve() / "lambda_width_gaussian_quick" / "sweep.sqlite")
    assert cli.main(common + ["--workers", "0", "--no-progress", "--store", summary["store"]]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_completed"] == 2
    assert cli.main(["sweep", "--config", str(config), "--set", "grid.widths=[0]"]) == 2
    assert "grid.widths[0]" in capsys.readouterr().err
    not_a_store = tmp_path / "notes.txt"
    not_a_store.write_text("hello")
    assert cli.main(common + ["--workers", "0", "--store", str(not_a_store)]) == 2
    assert "not a sweep store" in capsys.readouterr().err


def test_configuration_hash_is_unchanged_by_settings_at_their_default(tmp_path):
    """A key that a later version adds at its default must not change the hash of a stored run."""
    cell = sweeps.expand_grid(_specification(tmp_path))[0]
    mapping = cell.config.to_dict()
    older = {section: dict(values) if isinstance(values, dict) else values for section, values in mapping.items()}
    del older["data"]["input_norm"]  # as written before the key existed (its default is 1.0)
    assert sweeps.configuration_hash(older) == cell.config_hash
    changed = cell.config.with_overrides(["data.standardization=centred", "data.input_norm=2.0"])
    assert sweeps.configuration_hash(changed) != cell.config_hash
