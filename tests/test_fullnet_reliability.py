"""Hostile input and interrupted runs of ``python -m fullnet``.

- Every subcommand (train, compare, sweep, download, datasets) answers bad input with exit
  status 2 and one line on stderr, ``error: ARGUMENT: …``, naming the argument, without a
  traceback and without writing anything (the tree under tmp_path is unchanged).
- SIGTERM (what SLURM sends) and SIGKILL during ``train``: the checkpoint on disk lets
  ``--resume`` finish with parameters and history bit-identical to an uninterrupted run; stale
  temporary files of a killed atomic write are removed on resume; a changed ``description``
  does not block ``--resume``.
- Checks before allocation: the memory estimate of a run against the free memory, the IDX
  reader against gzip bombs and headers that do not match the data set.
"""

from __future__ import annotations

import errno
import gzip
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from fullnet import cli, guards
from fullnet import data as fd
from fullnet import training as ft
from fullnet.config import ConfigError, RunConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tree(root: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root)) + ("/" if path.is_dir() else f" {path.stat().st_size}")
        for path in root.rglob("*")
    )


def _tiny(directory: Path, **sections) -> dict:
    """A seconds-long run on a synthetic mixture (3 classes, 24 samples)."""
    config = {
        "name": "tiny",
        "data": {"name": "gaussian", "gaussian_classes": 3, "gaussian_dimension": 6, "per_class": 8},
        "model": {"nonlinear_widths": [16, 8], "linear_depth": 1},
        "training": {"epochs": 3, "learning_rate": 0.1, "device": "cpu", "threads": 1},
        "observe": {"log_points": 3},
        "output": {"directory": str(directory), "progress": False},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            config[section].update(values)
        else:
            config[section] = values
    return config


def _run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exit:  # argparse
        return int(exit.code)


def _assert_refused(capsys, argv, argument, pattern, root):
    before = _tree(root)
    code = _run(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: "), lines[0]
    assert argument in lines[0], lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert _tree(root) == before, "a refused command wrote something"
    return lines[0]


@pytest.fixture
def unwritable(tmp_path):
    """A folder nobody may write into: a read-only mode for a user, sysfs for root."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    folder = Path("/sys")
    try:
        guards._probe_writable(folder)
    except OSError:
        yield folder
        return
    pytest.skip("running as root without a read-only folder to test with")


def _unused_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


# ------------------------------------------------------------------------------------------
# train
# ------------------------------------------------------------------------------------------


@pytest.fixture
def train_inputs(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = inputs / "tiny.json"
    good.write_text(json.dumps(_tiny(tmp_path / "out")))
    (inputs / "bad.json").write_text('{"name": "x", "data": {')
    (inputs / "empty.json").write_text("")
    (inputs / "list.json").write_text("[1, 2, 3]")
    (inputs / "bad.toml").write_text("[data\nname = 1\n")
    (inputs / "latin1.toml").write_bytes(b'name = "caf\xe9"\n')
    (inputs / "a_file").write_text("not a folder")
    return tmp_path, good


TRAIN_CASES = [
    # (id, arguments after `train`, argument named, message pattern)
    ("missing-config", ["--config", "{in}/missing.toml"], "--config", "does not exist"),
    ("config-is-folder", ["--config", "{in}"], "--config", "is a folder"),
    ("malformed-json", ["--config", "{in}/bad.json"], "--config", "invalid JSON"),
    ("empty-json", ["--config", "{in}/empty.json"], "--config", "is empty"),
    ("json-not-a-table", ["--config", "{in}/list.json"], "--config", "expected a table"),
    ("malformed-toml", ["--config", "{in}/bad.toml"], "--config", "invalid TOML"),
    ("not-utf8", ["--config", "{in}/latin1.toml"], "--config", "not UTF-8"),
    ("unknown-override", ["--config", "{good}", "--set", "training.epoch=3"], "--set", "unknown key"),
    ("bad-override-value", ["--config", "{good}", "--set", "training.epochs=0"], "--set", r"training.epochs must be > 0"),
    ("huge-log-points", ["--config", "{good}", "--set", "observe.log_points=100000"], "--set", "at most"),
    ("resume-without-checkpoint", ["--config", "{good}", "--resume"], "--resume", "no checkpoint"),
    ("stop-at-negative", ["--config", "{good}", "--stop-at-epoch", "-1"], "--stop-at-epoch", r"0\.\.3"),
    ("stop-after-end", ["--config", "{good}", "--stop-at-epoch", "9"], "--stop-at-epoch", r"0\.\.3"),
    ("stop-not-a-number", ["--config", "{good}", "--stop-at-epoch", "x"], "--stop-at-epoch", "invalid int"),
    ("class-outside-data-set", ["--config", "{good}", "--set", "data.name=mnist-5k", "--set",
                                "data.classes=[3, 12]", "--set", "data.per_class=5"], "data.classes", r"0\.\.9"),
    ("per-class-above-class-size", ["--config", "{good}", "--set", "data.name=mnist-5k", "--set",
                                    "data.per_class=501"], "data.per_class", "at most 500"),
    ("test-split-of-mnist-5k", ["--config", "{good}", "--set", "data.name=mnist-5k", "--set",
                                "data.test_per_class=5"], "data.test_per_class", "no test split"),
    ("sgd-batch-above-n", ["--config", "{good}", "--set", "training.optimizer=sgd", "--set",
                           "training.batch_size=1000"], "training.batch_size", r"1\.\.24"),
    ("widths-beyond-memory", ["--config", "{good}", "--set", "model.nonlinear_widths=[10000000000, 8]"],
     "model.nonlinear_widths", r"needs about [\d.]+ [TP]B .* free on cpu"),
    ("output-dir-is-a-file", ["--config", "{good}", "--output-dir", "{in}/a_file"], "--output-dir", "is a file"),
    ("output-dir-empty", ["--config", "{good}", "--output-dir", ""], "--output-dir", "empty path"),
    ("output-dir-under-a-file", ["--config", "{good}", "--output-dir", "{in}/a_file/run"], "--output-dir",
     "a_file is a file"),
    ("output-directory-is-a-file", ["--config", "{good}", "--set", 'output.directory="{in}/a_file"'],
     "output.directory", "cannot be created"),
    ("missing-idx-files", ["--config", "{good}", "--set", "data.name=mnist", "--set",
                           'data.data_root="{in}"'], "data.data_root", "not found"),
]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=[case[0] for case in TRAIN_CASES])
def test_train_refuses_bad_input_in_one_line_writing_nothing(case, train_inputs, capsys):
    _, arguments, argument, pattern = case
    root, good = train_inputs
    argv = ["train", "--no-progress"] + [
        item.format(**{"in": root / "in", "good": good}) for item in arguments
    ]
    _assert_refused(capsys, argv, argument, pattern, root)


def test_train_refuses_cuda_without_a_gpu(train_inputs, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    root, good = train_inputs
    _assert_refused(capsys, ["train", "--config", str(good), "--set", "training.device=cuda"],
                    "training.device", "CUDA is not available", root)


def test_train_refuses_an_unwritable_output_folder(train_inputs, unwritable, capsys):
    root, good = train_inputs
    _assert_refused(capsys, ["train", "--config", str(good), "--output-dir", str(unwritable / "run")],
                    "--output-dir", "not writable", root)


def test_train_on_a_full_disk_leaves_no_run_folder(train_inputs, capsys, monkeypatch):
    root, good = train_inputs

    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    _assert_refused(capsys, ["train", "--config", str(good), "--output-dir", str(root / "out" / "run")],
                    "--output-dir", "No space left on device", root)


def test_train_module_entry_point_prints_one_line(train_inputs):
    root, _ = train_inputs
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "fullnet", "train", "--config", str(root / "in" / "bad.json")],
        capture_output=True, text=True, env=environment, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --config: ")
    assert "Traceback" not in result.stderr


def test_a_good_tiny_run_still_trains(train_inputs, capsys):
    root, good = train_inputs
    assert cli.main(["train", "--config", str(good), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["epochs"] == 3
    assert not [name for name in os.listdir(root / "out" / "tiny") if name.startswith(".")]


# ------------------------------------------------------------------------------------------
# compare
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("trained")
    threads = torch.get_num_threads()
    try:
        ft.train(RunConfig.from_dict(_tiny(directory)), progress=False)
    finally:
        torch.set_num_threads(threads)
    return directory / "tiny"


def _copy_run(trained_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


COMPARE_CASES = [
    ("missing", lambda run: shutil.rmtree(run), [], "RUN_DIR", "does not exist"),
    ("a-file", lambda run: (shutil.rmtree(run), run.write_text("x")), [], "RUN_DIR", "is a file"),
    ("empty-folder", lambda run: [path.unlink() for path in run.iterdir()], [], "RUN_DIR", "no config.json"),
    ("empty-config", lambda run: (run / "config.json").write_text(""), [], "RUN_DIR", "config.json is empty"),
    ("malformed-config", lambda run: (run / "config.json").write_text("{"), [], "RUN_DIR",
     "config.json: invalid JSON"),
    ("config-is-folder", lambda run: ((run / "config.json").unlink(), (run / "config.json").mkdir()), [],
     "RUN_DIR", "config.json is a folder"),
    ("no-checkpoint", lambda run: (run / "checkpoint.pt").unlink(), [], "RUN_DIR", "no checkpoint.pt"),
    ("damaged-checkpoint", lambda run: (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 junk"), [], "RUN_DIR",
     "damaged or foreign"),
    ("compare-json-is-folder", lambda run: (run / "compare.json").mkdir(), [], "RUN_DIR", "is a folder"),
    ("negative-tolerance", lambda run: None, ["--tolerance", "-1"], "--tolerance", "> 0"),
    ("nan-tolerance", lambda run: None, ["--tolerance", "nan"], "--tolerance", "> 0"),
    ("zero-iterations", lambda run: None, ["--max-iterations", "0"], "--max-iterations", "> 0"),
]


@pytest.mark.parametrize("case", COMPARE_CASES, ids=[case[0] for case in COMPARE_CASES])
def test_compare_refuses_bad_input_in_one_line_writing_nothing(case, trained_run, tmp_path, capsys):
    _, damage, options, argument, pattern = case
    run = _copy_run(trained_run, tmp_path)
    damage(run)
    _assert_refused(capsys, ["compare", str(run), "--no-certificate"] + options, argument, pattern, tmp_path)


def test_compare_refuses_an_unwritable_run_folder(trained_run, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    run = _copy_run(trained_run, tmp_path)
    run.chmod(0o555)
    try:
        _assert_refused(capsys, ["compare", str(run), "--no-certificate"], "RUN_DIR", "not writable", tmp_path)
    finally:
        run.chmod(0o755)


def test_compare_on_a_full_disk_writes_nothing(trained_run, tmp_path, capsys, monkeypatch):
    run = _copy_run(trained_run, tmp_path)

    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    before = _tree(tmp_path)
    assert cli.main(["compare", str(run), "--no-certificate", "--json"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: RUN_DIR: ") and "No space left" in lines[0]
    assert _tree(tmp_path) == before


# ------------------------------------------------------------------------------------------
# sweep
# ------------------------------------------------------------------------------------------


@pytest.fixture
def sweep_inputs(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    base = _tiny(tmp_path / "out")
    base.pop("name")
    specification = {"name": "grid", "base": base, "grid": {"weight_decays": [1e-3], "widths": [8]}}
    good = inputs / "sweep.json"
    good.write_text(json.dumps(specification))
    (inputs / "bad.toml").write_text("name = \n")
    (inputs / "a_file").write_text("x")
    (inputs / "not_sqlite.sqlite").write_text("plain text, not SQLite")
    (inputs / "scheduler.json").write_text("{not json")
    elsewhere = json.loads(json.dumps(specification))
    elsewhere["base"]["output"]["directory"] = str(inputs / "a_file")
    (inputs / "output_is_file.json").write_text(json.dumps(elsewhere))
    return tmp_path, good


SWEEP_CASES = [
    ("missing-config", ["--config", "{in}/missing.toml"], "--config", "does not exist"),
    ("config-is-folder", ["--config", "{in}"], "--config", "is a folder"),
    ("malformed-toml", ["--config", "{in}/bad.toml"], "--config", "invalid TOML"),
    ("unknown-grid-key", ["--config", "{good}", "--set", "grid.nope=1"], "--set", "unknown grid key"),
    ("negative-workers", ["--config", "{good}", "--workers", "-1"], "--workers", ">= 0"),
    ("negative-retries", ["--config", "{good}", "--max-retries", "-1"], "--max-retries", ">= 0"),
    ("zero-threads", ["--config", "{good}", "--threads-per-run", "0"], "--threads-per-run", "> 0"),
    ("zero-timeout", ["--config", "{good}", "--connect-timeout", "0"], "--connect-timeout", "> 0"),
    ("workers-and-scheduler", ["--config", "{good}", "--workers", "1", "--scheduler", "tcp://127.0.0.1:1"],
     "--scheduler", "not both"),
    ("scheduler-not-an-address", ["--config", "{good}", "--scheduler", "nowhere"], "--scheduler",
     "not an address"),
    ("scheduler-file-not-json", ["--config", "{good}", "--scheduler", "{in}/scheduler.json"], "--scheduler",
     "not JSON"),
    ("store-is-folder", ["--config", "{good}", "--store", "{in}"], "--store", "is a folder"),
    ("store-empty", ["--config", "{good}", "--store", ""], "--store", "empty path"),
    ("store-under-a-file", ["--config", "{good}", "--store", "{in}/a_file/s.sqlite"], "--store", "is a file"),
    ("store-not-sqlite", ["--config", "{good}", "--store", "{in}/not_sqlite.sqlite", "--workers", "0"],
     "--store", "not a sweep store"),
    ("output-directory-is-a-file", ["--config", "{in}/output_is_file.json"], "output.directory",
     "cannot be created"),
]


@pytest.mark.parametrize("case", SWEEP_CASES, ids=[case[0] for case in SWEEP_CASES])
def test_sweep_refuses_bad_input_in_one_line_writing_nothing(case, sweep_inputs, capsys):
    _, arguments, argument, pattern = case
    root, good = sweep_inputs
    argv = ["sweep", "--no-progress"] + [item.format(**{"in": root / "in", "good": good}) for item in arguments]
    _assert_refused(capsys, argv, argument, pattern, root)


def test_sweep_with_an_unreachable_scheduler_fails_fast_in_one_line(sweep_inputs, capsys):
    pytest.importorskip("distributed")
    root, good = sweep_inputs
    started = time.monotonic()
    line = _assert_refused(
        capsys, ["sweep", "--config", str(good), "--no-progress", "--connect-timeout", "0.5",
                 "--scheduler", f"tcp://127.0.0.1:{_unused_port()}"],
        "--scheduler", r"no dask scheduler answered .* within 0\.5 s", root,
    )
    assert time.monotonic() - started < 20, line


def test_sweep_refuses_an_unwritable_store_folder(sweep_inputs, unwritable, capsys):
    root, good = sweep_inputs
    _assert_refused(capsys, ["sweep", "--config", str(good), "--store", str(unwritable / "s.sqlite")],
                    "--store", "not writable", root)


def test_sweep_on_a_full_disk_leaves_no_store(sweep_inputs, capsys, monkeypatch):
    import sqlite3

    from fullnet.store import SweepStore

    root, good = sweep_inputs

    def full(self, name, specification, runs, **keywords):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(SweepStore, "register_grid", full)
    _assert_refused(capsys, ["sweep", "--config", str(good), "--workers", "0", "--no-progress"],
                    "output.directory", "disk is full", root)


# ------------------------------------------------------------------------------------------
# download, datasets
# ------------------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    import urllib.request

    def refuse(*arguments, **options):
        raise AssertionError("a refused command must not reach the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize("case", [
    ("root-is-a-file", ["--data-root", "{in}/a_file"], "--data-root", "is a file"),
    ("root-under-a-file", ["--data-root", "{in}/a_file/data"], "--data-root", "a_file is a file"),
    ("empty-root", ["--data-root", ""], "--data-root", "empty path"),
    ("zero-timeout", ["--data-root", "{in}/data", "--timeout", "0"], "--timeout", "> 0"),
    ("nan-timeout", ["--data-root", "{in}/data", "--timeout", "nan"], "--timeout", "> 0"),
    ("unknown-name", ["--data-root", "{in}/data"], "name", "invalid choice"),
], ids=lambda case: case[0])
def test_download_refuses_bad_input_in_one_line_writing_nothing(case, tmp_path, capsys, no_network):
    _, arguments, argument, pattern = case
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_file").write_text("x")
    name = "imagenet" if case[0] == "unknown-name" else "mnist"
    argv = ["download", name] + [item.format(**{"in": tmp_path / "in"}) for item in arguments]
    _assert_refused(capsys, argv, argument, pattern, tmp_path)


def test_download_refuses_an_unwritable_root(tmp_path, unwritable, capsys, no_network):
    _assert_refused(capsys, ["download", "mnist", "--data-root", str(unwritable / "data")],
                    "--data-root", "not writable", tmp_path)


def test_download_on_a_full_disk_says_so_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import io
    import urllib.request

    class Response(io.BytesIO):
        pass

    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout: Response(b"x" * 1000))

    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    _assert_refused(capsys, ["download", "mnist", "--data-root", str(tmp_path / "data")],
                    "--data-root", "No space left on device", tmp_path)


@pytest.mark.parametrize("case", [
    ("missing-root", "{tmp}/nowhere", "does not exist"),
    ("root-is-a-file", "{tmp}/a_file", "is a file"),
    ("empty-root", "", "empty path"),
], ids=lambda case: case[0])
def test_datasets_refuses_a_bad_data_root(case, tmp_path, capsys):
    _, root, pattern = case
    (tmp_path / "a_file").write_text("x")
    _assert_refused(capsys, ["datasets", "--data-root", root.format(tmp=tmp_path)], "--data-root", pattern,
                    tmp_path)


def test_argparse_errors_are_one_line(capsys):
    assert _run(["train"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--config" in err and "usage" not in err


# ------------------------------------------------------------------------------------------
# Signals, resume, leftovers
# ------------------------------------------------------------------------------------------


def _signal_config(directory: Path) -> dict:
    """SGD with momentum and a ragged last batch: the resumed state includes the minibatch
    order, the generator and the momentum buffers."""
    return {
        "name": "signalled",
        "description": "SIGTERM test",
        "data": {"name": "gaussian", "gaussian_classes": 3, "gaussian_dimension": 6, "per_class": 10},
        "model": {"nonlinear_widths": [16, 8], "linear_depth": 1},
        "training": {"epochs": 400, "learning_rate": 0.05, "device": "cpu", "threads": 1,
                     "optimizer": "sgd", "batch_size": 7, "momentum": 0.5},
        "observe": {"log_points": 6, "per_layer": False},
        "output": {"directory": str(directory), "progress": False, "checkpoint_every": 20},
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    directory = tmp_path_factory.mktemp("uninterrupted")
    threads = torch.get_num_threads()
    try:
        ft.train(RunConfig.from_dict(_signal_config(directory)), progress=False)
    finally:
        torch.set_num_threads(threads)
    return directory / "signalled"


def _environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _start_and_signal(config_path: Path, run: Path, signum: int) -> subprocess.CompletedProcess:
    """Start ``python -m fullnet train``, send ``signum`` once the first checkpoint exists."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fullnet", "train", "--config", str(config_path), "--output-dir", str(run),
         "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment(),
    )
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"no checkpoint appeared (status {process.returncode}): {err}")
        time.sleep(0.005)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _assert_same_run(run: Path, reference: Path) -> None:
    mine, theirs = ft.load_checkpoint(run / "checkpoint.pt"), ft.load_checkpoint(reference / "checkpoint.pt")
    assert (mine["epoch"], mine["step"]) == (theirs["epoch"], theirs["step"])
    assert mine["model"].keys() == theirs["model"].keys()
    for name, tensor in theirs["model"].items():
        assert torch.equal(mine["model"][name], tensor), name
    for name, buffer in theirs["optimizer"]["state"].items():
        assert torch.equal(mine["optimizer"]["state"][name], buffer), name
    assert (run / "history.json").read_text() == (reference / "history.json").read_text()


def _plant_stale_temporaries(run: Path) -> tuple[list[Path], list[Path]]:
    stale = [run / ".checkpoint.pt.k1l2m3n4.tmp", run / ".history.json.abcd_123.tmp"]
    stale[0].write_bytes(b"PK\x03\x04 half a checkpoint")
    stale[1].write_text("[")
    kept = [run / "notes.tmp", run / ".other.json.abcdefgh.tmp"]
    for path in kept:
        path.write_text("not ours")
    return stale, kept


def test_sigterm_checkpoints_and_resume_is_bit_identical(tmp_path, uninterrupted):
    config_path = tmp_path / "signalled.json"
    config_path.write_text(json.dumps(_signal_config(tmp_path / "unused")))
    run = tmp_path / "run"
    stopped = _start_and_signal(config_path, run, signal.SIGTERM)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert "SIGTERM: state saved in" in stopped.stderr and "--resume" in stopped.stderr
    state = ft.load_checkpoint(run / "checkpoint.pt")
    assert 20 <= state["epoch"] < 400, state["epoch"]
    assert json.loads((run / "result.json").read_text())["status"] == "interrupted"
    assert not [path for path in run.iterdir() if path.name.endswith(".tmp")]
    stale, kept = _plant_stale_temporaries(run)

    resumed = subprocess.run(
        [sys.executable, "-m", "fullnet", "train", "--config", str(config_path), "--output-dir", str(run),
         "--resume", "--no-progress"],
        capture_output=True, text=True, env=_environment(), timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["status"] == "completed"
    _assert_same_run(run, uninterrupted)
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept)


def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(tmp_path, uninterrupted, capsys):
    config_path = tmp_path / "signalled.json"
    config = _signal_config(tmp_path / "unused")
    config["description"] = "changed after the kill: does not block --resume"
    config_path.write_text(json.dumps(_signal_config(tmp_path / "unused")))
    run = tmp_path / "run"
    killed = _start_and_signal(config_path, run, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert ft.load_checkpoint(run / "checkpoint.pt")["epoch"] % 20 == 0
    stale, _ = _plant_stale_temporaries(run)
    config_path.write_text(json.dumps(config))
    assert cli.main(["train", "--config", str(config_path), "--output-dir", str(run), "--resume",
                     "--no-progress"]) == 0, capsys.readouterr().err
    _assert_same_run(run, uninterrupted)
    assert not any(path.exists() for path in stale)


def test_sigterm_in_process_stops_at_a_completed_step(tmp_path):
    config = RunConfig.from_dict(_signal_config(tmp_path))
    config.training.epochs = 6

    def terminate_at_step_seven(trainer):
        if trainer.step == 7:  # mid-epoch: 5 steps per epoch
            signal.raise_signal(signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(guards.Interrupted) as caught:
        ft.train(config, on_step=terminate_at_step_seven, progress=False)
    assert caught.value.signum == signal.SIGTERM and isinstance(caught.value, KeyboardInterrupt)
    state = ft.load_checkpoint(tmp_path / "signalled" / "checkpoint.pt")
    assert (state["epoch"], state["step"], state["batch_position"]) == (1, 7, 2)
    assert signal.getsignal(signal.SIGTERM) == before


def test_interrupted_survives_pickling_as_a_worker_exception():
    import pickle

    back = pickle.loads(pickle.dumps(guards.Interrupted(signal.SIGTERM)))
    assert isinstance(back, KeyboardInterrupt) and back.signum == signal.SIGTERM and str(back) == "SIGTERM"


def test_a_description_change_resumes_and_a_real_change_does_not(tmp_path):
    config = RunConfig.from_dict(_tiny(tmp_path, training={"epochs": 8}))
    assert ft.train(config, stop_at_epoch=4, progress=False).status == "stopped"
    changed = config.with_overrides(["description='a new description'"])
    with pytest.raises(ConfigError, match="training.learning_rate"):
        ft.train(changed.with_overrides(["training.learning_rate=0.2"]), resume=True, progress=False)
    result = ft.train(changed, resume=True, progress=False)
    assert result.status == "completed" and result.epochs_completed == 8


def test_a_fresh_start_removes_stale_temporaries_and_a_live_run_is_locked(tmp_path):
    run = tmp_path / "tiny"
    run.mkdir()
    stale, kept = _plant_stale_temporaries(run)
    with guards.RunLock(run):
        with pytest.raises(BlockingIOError, match="in use by another training"):
            ft.train(RunConfig.from_dict(_tiny(tmp_path)), progress=False)
        assert all(path.exists() for path in stale)  # a live writer's files are not touched
    ft.train(RunConfig.from_dict(_tiny(tmp_path)), progress=False)
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept)


def test_checkpoints_by_wall_time_change_nothing_but_the_saves(tmp_path, monkeypatch):
    from fullnet.architectures import PyramidalMLP
    from fullnet.objective import Regularization

    data = fd.prepare_data(fd.gaussian_mixture(3, 10, 6, seed=0), standardization="none", dtype=torch.float32)

    def trainer(**options):
        model = PyramidalMLP(6, 3, [16, 8], linear_depth=1, seed=0)
        return ft.Trainer(model, data, Regularization([1e-3] * 3), learning_rate=0.05,
                          epochs=4, optimizer="sgd", batch_size=7, momentum=0.5, log_points=3, **options)

    plain = trainer()
    plain.run()
    saves = []
    original = ft.atomic_torch_save
    monkeypatch.setattr(ft, "atomic_torch_save",
                        lambda state, path: (saves.append((state["epoch"], state["batch_position"])),
                                             original(state, path))[1])
    timed = trainer(checkpoint_path=tmp_path / "checkpoint.pt", checkpoint_seconds=1e-9)
    timed.run()
    assert any(position != 0 for _, position in saves)  # mid-epoch saves of an SGD epoch
    for name, tensor in plain.model.state_dict().items():
        assert torch.equal(timed.model.state_dict()[name], tensor)
    assert RunConfig().output.checkpoint_minutes == 5.0
    with pytest.raises(ConfigError, match="output.checkpoint_minutes"):
        RunConfig.from_dict({"output": {"checkpoint_minutes": -1}})


# ------------------------------------------------------------------------------------------
# Memory before allocation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [
    {"architecture": "mlp", "nonlinear_widths": [64, 32], "linear_depth": 2},
    {"architecture": "mlp", "nonlinear_widths": [50, 20], "linear_depth": 3, "linear_width": 10, "bias": True},
    {"architecture": "resnet20", "nonlinear_widths": [32], "linear_depth": 2},
    {"architecture": "resnet20", "nonlinear_widths": [], "linear_depth": 1, "batch_norm": False,
     "shortcut": "B", "bias": True},
])
def test_memory_estimate_counts_the_parameters_exactly(model):
    name = "cifar10" if model["architecture"] == "resnet20" else "mnist"
    config = RunConfig.from_dict({"data": {"name": name, "per_class": 5}, "model": model})
    estimate = guards.estimate_memory(config)
    shape = (3, 32, 32) if name == "cifar10" else (784,)
    built = ft.build_model(config.model, shape, 10)
    assert estimate.parameter_count == sum(parameter.numel() for parameter in built.parameters())
    assert estimate.samples == 50 and estimate.parameters == 4 * estimate.parameter_count
    assert estimate.peak >= estimate.parameters + estimate.gradients + estimate.activations


def test_memory_check_names_the_key_to_change():
    wide = RunConfig.from_dict(_tiny(Path("unused"), model={"nonlinear_widths": [10 ** 8, 8]}))
    with pytest.raises(guards.InsufficientMemoryError, match=r"^model.nonlinear_widths = \[100000000, 8\]: "
                                                           r"this run needs about .*GB.* free on cpu"):
        guards.check_memory(wide, torch.device("cpu"), available=10 ** 9)
    resnet = RunConfig.from_dict({"data": {"name": "cifar10", "per_class": 5000},
                                  "model": {"architecture": "resnet20", "nonlinear_widths": [64]}})
    with pytest.raises(guards.InsufficientMemoryError, match=r"^training.chunk_size \(a batch of 50000 "):
        guards.check_memory(resnet, torch.device("cpu"), available=10 ** 9)
    chunked = resnet.with_overrides(["training.chunk_size=100"])
    with pytest.raises(guards.InsufficientMemoryError, match=r"^data.per_class \(N = 50000 samples\)"):
        guards.check_memory(chunked, torch.device("cpu"), available=10 ** 9)
    assert guards.check_memory(chunked, torch.device("cpu"), available=10 ** 10).batch == 100
    small = RunConfig.from_dict(_tiny(Path("unused")))
    assert guards.check_memory(small, torch.device("cpu"), available=10 ** 9).peak < 10 ** 6
    available = guards.available_host_memory()
    assert available is None or available > 0


def test_shipped_configurations_fit_in_a_few_gigabytes():
    for path in sorted((ROOT / "configs").glob("*.toml")):
        if path.name.startswith("sweep_"):
            continue
        from fullnet.config import load_config

        estimate = guards.estimate_memory(load_config(path))
        assert estimate.peak < 4 * 10 ** 9, (path.name, estimate.describe())


# ------------------------------------------------------------------------------------------
# IDX files: headers checked first, bounded streaming
# ------------------------------------------------------------------------------------------


def _write_gzip(path: Path, header: bytes, zeros: int) -> None:
    chunk = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as output:
        output.write(header)
        while zeros > 0:
            output.write(chunk[: min(zeros, len(chunk))])
            zeros -= len(chunk)


def _mnist_folder(root: Path) -> Path:
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True)
    labels = np.arange(20, dtype=np.uint8) % 10
    header = bytes([0, 0, 8, 1]) + struct.pack(">I", 20)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.tobytes()))
    return folder


def test_a_gzip_bomb_given_as_mnist_is_refused_in_bounded_memory(tmp_path):
    folder = _mnist_folder(tmp_path)
    bomb = folder / "train-images-idx3-ubyte.gz"
    _write_gzip(bomb, bytes([0, 0, 8, 3]) + struct.pack(">3I", 20, 28, 28), 64 << 20)  # 64 MB of zeros
    assert bomb.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(fd.CorruptDataError, match="holds more bytes"):
            fd.load_dataset("mnist", data_root=tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # 20 images and a few chunks, never the 64 MB


@pytest.mark.parametrize("shape, pattern", [
    ((4_000_000_000, 28, 28), r"header says 4000000000 samples, expected 1\.\.60000"),
    ((20, 32, 32), r"header says shape \(20, 32, 32\), expected \(N, 28, 28\)"),
    ((20, 28), r"expected \(N, 28, 28\)"),
])
def test_idx_headers_that_do_not_fit_the_data_set_are_refused_before_reading(tmp_path, shape, pattern):
    folder = _mnist_folder(tmp_path)
    header = bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(100)))
    with pytest.raises(fd.CorruptDataError, match=pattern):
        fd.load_dataset("mnist", data_root=tmp_path)


def test_idx_reader_bounds_the_payload_and_reads_in_chunks(tmp_path, monkeypatch):
    path = tmp_path / "big-idx1-ubyte"
    header = bytes([0, 0, 8, 1]) + struct.pack(">I", 5000)
    path.write_bytes(header + bytes(range(256)) * 19 + bytes(136))
    with pytest.raises(fd.CorruptDataError, match="more than the 1000 accepted"):
        fd.read_idx(path, max_bytes=1000)
    monkeypatch.setattr(fd, "IDX_CHUNK_BYTES", 64)
    values = fd.read_idx(path)
    assert values.shape == (5000,) and values[:256].tolist() == list(range(256))
    with pytest.raises(fd.CorruptDataError, match="is a folder"):
        fd.read_idx(tmp_path)
    assert math.isfinite(float(values.sum()))
