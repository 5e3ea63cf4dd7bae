"""Runs you can watch: the live history journal, the log, ``fullnet plot``, ``on_snapshot``,
TensorBoard, and continuing a finished run for more epochs.

- ``history.jsonl`` gets one row per snapshot as it is taken: a ``python -m fullnet train`` killed
  with SIGKILL keeps every snapshot taken before the kill, and ``fullnet plot`` draws that
  directory; a torn last line is ignored; resuming drops the rows written after the checkpoint.
- ``train.log`` records the start, the configuration, every snapshot, checkpoints, interrupts and
  the end.
- ``--resume --set training.epochs=N`` continues a finished run: the first part's rows are kept,
  the new ones appended, the final epoch is N, and the recomputed learning-rate schedule is
  recorded; a target below the epochs done is refused in one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fullnet import cli, plot
from fullnet import training as ft
from fullnet.config import ConfigError, RunConfig

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(directory: Path, **sections) -> dict:
    """A sub-second run on a synthetic mixture (3 classes, 24 samples)."""
    config = {
        "name": "tiny",
        "data": {"name": "gaussian", "gaussian_classes": 3, "gaussian_dimension": 6, "per_class": 8},
        "model": {"nonlinear_widths": [16, 8], "linear_depth": 1},
        "training": {"epochs": 3, "learning_rate": 0.1, "device": "cpu", "threads": 1},
        "observe": {"log_points": 3},
        "output": {"directory": str(directory), "progress": False},
    }
    for section, values in sections.items():
        config[section].update(values)
    return config


def _environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _rows(path: Path) -> list[dict]:
    return ft.read_history_journal(path)


def _log_lines(run: Path, kind: str) -> list[str]:
    return [line for line in (run / ft.LOG_NAME).read_text().splitlines() if f"  {kind}:" in line]


def _one_line_error(capsys, argv: list[str], argument: str, pattern: str) -> None:
    import re

    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {argument}: "), err
    assert re.search(pattern, err), err


# ------------------------------------------------------------------------------------------
# The journal survives a kill; plot draws it
# ------------------------------------------------------------------------------------------


def test_sigkill_keeps_every_snapshot_taken_and_plot_draws_the_killed_run(tmp_path, capsys):
    epochs, points = 200_000, 40
    config_path = tmp_path / "long.json"
    config_path.write_text(json.dumps(_tiny(tmp_path / "unused", training={"epochs": epochs},
                                            observe={"log_points": points})))
    run = tmp_path / "run"
    journal = run / ft.HISTORY_JOURNAL_NAME
    process = subprocess.Popen(
        [sys.executable, "-m", "fullnet", "train", "--config", str(config_path), "--output-dir", str(run),
         "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment(),
    )
    try:
        deadline = time.monotonic() + 120
        while not (journal.is_file() and journal.read_bytes().count(b"\n") >= 2):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no second snapshot row appeared (status {process.returncode})")
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGKILL

    rows = _rows(journal)
    schedule = ft.log_spaced_epochs(epochs, points)
    assert len(rows) >= 2
    assert [row["epoch"] for row in rows] == schedule[: len(rows)]  # the snapshots in order, none lost
    assert rows[-1]["epoch"] < epochs  # killed midway: no history.json, no final result
    assert not (run / "history.json").exists() and not (run / "result.json").exists()
    assert all(ft.Snapshot.from_dict(row).layers for row in rows)  # complete snapshots
    # the log is written after the journal row: it never reports a snapshot the journal lacks
    logged = _log_lines(run, "snapshot")
    assert len(rows) - 1 <= len(logged) <= len(rows)
    assert _log_lines(run, "start") and _log_lines(run, "training")

    assert cli.main(["plot", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"{len(rows)} snapshots" in out and "running or killed" in out
    figure = run / "training_curves.png"
    assert figure.read_bytes().startswith(PNG)
    assert not [path for path in run.iterdir() if path.name.endswith(".tmp")]


def test_a_torn_last_line_is_ignored_and_a_damaged_middle_line_is_named(tmp_path):
    journal = tmp_path / "history.jsonl"
    ft.write_history_journal(journal, [{"epoch": 0, "x": 1}, {"epoch": 1, "x": 2}])
    with open(journal, "a") as handle:
        handle.write('{"epoch": 3, "terms": {"objec')  # a kill in the middle of a write
    assert [row["epoch"] for row in ft.read_history_journal(journal)] == [0, 1]
    journal.write_text('{"epoch": 0}\n{"epo\n{"epoch": 2}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        ft.read_history_journal(journal)


def test_resume_drops_the_rows_written_after_the_checkpoint(tmp_path):
    config = RunConfig.from_dict(_tiny(tmp_path, training={"epochs": 8}, observe={"log_points": 8}))
    assert ft.train(config, stop_at_epoch=4).status == "stopped"
    run = tmp_path / "tiny"
    journal = run / ft.HISTORY_JOURNAL_NAME
    kept = _rows(journal)
    assert [row["epoch"] for row in kept] == [0, 1, 2, 3, 4]
    # what a session killed after its checkpoint at epoch 4 leaves: later rows, a torn line
    ghost = dict(kept[-1], epoch=6, step=6)
    with open(journal, "a") as handle:
        handle.write(json.dumps(ghost) + "\n" + '{"epoch": 8, "ter')

    result = ft.train(config, resume=True)
    rows = _rows(journal)
    assert rows[:5] == kept
    assert [row["epoch"] for row in rows] == [snapshot.epoch for snapshot in result.history]
    assert rows == json.loads((run / "history.json").read_text())
    assert rows[[row["epoch"] for row in rows].index(6)] != ghost
    assert any("1 row(s) written after it dropped" in line for line in _log_lines(run, "history"))


def test_a_fresh_start_empties_a_journal_left_without_a_checkpoint(tmp_path):
    run = tmp_path / "tiny"
    run.mkdir()
    (run / ft.HISTORY_JOURNAL_NAME).write_text('{"epoch": 0, "stale": true}\n')
    result = ft.train(RunConfig.from_dict(_tiny(tmp_path)))
    rows = _rows(run / ft.HISTORY_JOURNAL_NAME)
    assert [row["epoch"] for row in rows] == [snapshot.epoch for snapshot in result.history]
    assert not any("stale" in row for row in rows)


# ------------------------------------------------------------------------------------------
# on_snapshot, train.log
# ------------------------------------------------------------------------------------------


def test_on_snapshot_is_called_once_per_snapshot_after_its_row_is_written(tmp_path):
    journal = tmp_path / "tiny" / ft.HISTORY_JOURNAL_NAME
    seen, rows_at_call = [], []

    def watch(snapshot):
        seen.append(snapshot)
        rows_at_call.append(len(_rows(journal)))

    result = ft.train(RunConfig.from_dict(_tiny(tmp_path, training={"epochs": 10},
                                                observe={"log_points": 5})), on_snapshot=watch)
    assert [snapshot.epoch for snapshot in seen] == [snapshot.epoch for snapshot in result.history]
    assert [snapshot.to_dict() for snapshot in seen] == _rows(journal)
    assert rows_at_call == list(range(1, len(seen) + 1))


def test_trainer_on_snapshot_and_log(tmp_path):
    from fullnet import data as fd
    from fullnet.architectures import PyramidalMLP
    from fullnet.objective import Regularization

    data = fd.prepare_data(fd.gaussian_mixture(3, 6, 5, seed=0), standardization="none", dtype=torch.float32)
    model = PyramidalMLP(5, 3, [8], linear_depth=1, seed=0)
    messages, snapshots = [], []
    trainer = ft.Trainer(model, data, Regularization([1e-3, 1e-3]), learning_rate=0.1, epochs=5,
                         log_points=3, checkpoint_path=tmp_path / "c.pt", on_snapshot=snapshots.append,
                         log=messages.append)
    trainer.run()
    assert [snapshot.epoch for snapshot in snapshots] == [snapshot.epoch for snapshot in trainer.history]
    assert any(message.startswith("checkpoint: epoch 5") for message in messages)
    assert [message for message in messages if message.startswith("learning rate")] == [
        "learning rate: η = 0.1 from epoch 0", "learning rate: η = 0.01 from epoch 4"]


def test_train_log_records_start_configuration_snapshots_checkpoints_and_end(tmp_path):
    config = RunConfig.from_dict(_tiny(tmp_path, training={"epochs": 10}, observe={"log_points": 5},
                                       output={"checkpoint_every": 5}))
    result = ft.train(config)
    run = tmp_path / "tiny"
    text = (run / ft.LOG_NAME).read_text()
    for kind in ("start", "process", "data", "model", "training", "observe", "output"):
        assert len(_log_lines(run, kind)) == 1, kind
    assert "new run 'tiny'" in _log_lines(run, "start")[0]
    assert "N = 24 samples, K = 3 classes" in _log_lines(run, "data")[0]
    snapshots = _log_lines(run, "snapshot")
    assert len(snapshots) == len(result.history)
    assert "epoch 10, step 10, Φ = " in snapshots[-1] and "NC1.tr_unc[L3] = " in snapshots[-1]
    assert [line.split("checkpoint: ")[1].split(",")[0] for line in _log_lines(run, "checkpoint")] == [
        "epoch 5", "epoch 10"]
    assert "learning rate: η = 0.01 from epoch 8" in text
    (end,) = _log_lines(run, "end")
    assert "completed at epoch 10" in end
    assert all(line[:4].isdigit() and line[19:21] == "  " for line in text.splitlines())


def test_train_log_records_an_interrupt(tmp_path):
    config = RunConfig.from_dict(_tiny(tmp_path, training={"epochs": 6}))

    def terminate(trainer):
        if trainer.step == 2:
            signal.raise_signal(signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt):
        ft.train(config, on_step=terminate)
    run = tmp_path / "tiny"
    (line,) = _log_lines(run, "interrupted")
    assert "SIGTERM at epoch 2, step 2; state saved in checkpoint.pt" in line
    assert _log_lines(run, "checkpoint") and not _log_lines(run, "end")
    ft.train(config, resume=True)
    assert "resume 'tiny' from epoch 2" in _log_lines(run, "start")[1]
    assert "completed at epoch 6" in _log_lines(run, "end")[0]


# ------------------------------------------------------------------------------------------
# Continuing a finished run
# ------------------------------------------------------------------------------------------


def test_a_finished_run_continues_for_more_epochs_keeping_its_history(tmp_path, capsys):
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(_tiny(tmp_path / "unused", training={"epochs": 10},
                                            observe={"log_points": 4})))
    run = tmp_path / "run"
    base = ["train", "--config", str(config_path), "--output-dir", str(run), "--no-progress"]
    assert cli.main(base) == 0
    first = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in first] == [0, 1, 3, 10]
    capsys.readouterr()

    assert cli.main(base + ["--resume", "--set", "training.epochs=40"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["epochs"] == 40
    history = json.loads((run / "history.json").read_text())
    assert history[: len(first)] == first  # the first part's rows, unchanged
    assert [row["epoch"] for row in history][len(first):] == [40]
    assert _rows(run / ft.HISTORY_JOURNAL_NAME) == history
    assert ft.load_checkpoint(run / "checkpoint.pt")["epoch"] == 40
    assert json.loads((run / "config.json").read_text())["training"]["epochs"] == 40
    assert (run / "history.csv").read_text().count("\n") == len(history) + 1

    result = json.loads((run / "result.json").read_text())
    assert result["schedule"]["epochs"] == 40 and result["schedule"]["lr_drop_epoch"] == 32
    (continuation,) = result["continuations"]
    assert continuation["from_epoch"] == 10 and continuation["previous_epochs"] == 10
    assert (continuation["previous_lr_drop_epoch"], continuation["lr_drop_epoch"]) == (8, 32)
    assert "undropped" in continuation["note"]
    (schedule,) = _log_lines(run, "schedule")
    assert "recomputed" in schedule and "epochs 10..31 run at the undropped η = 0.1 again" in schedule
    assert "training.epochs 10 -> 40" in _log_lines(run, "start")[1]
    assert history[-1]["learning_rate"] == pytest.approx(0.01)

    # a target below the epochs done is refused in one line, and changes nothing
    before = (run / "checkpoint.pt").read_bytes()
    _one_line_error(capsys, base + ["--resume", "--set", "training.epochs=20"], "training.epochs",
                    r"training.epochs: 20 is fewer than the 40 epochs .* set training.epochs >= 40")
    assert (run / "checkpoint.pt").read_bytes() == before
    # other changes are still refused
    assert cli.main(base + ["--resume", "--set", "training.epochs=50", "--set", "training.learning_rate=0.2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "configuration changed: training.learning_rate: saved 0.1, now 0.2" in err
    assert "training.epochs" not in err


def test_a_stopped_run_may_get_a_nearer_target_but_not_below_its_epochs(tmp_path):
    config = RunConfig.from_dict(_tiny(tmp_path, training={"epochs": 10}))
    ft.train(config, stop_at_epoch=5)
    with pytest.raises(ConfigError, match="fewer than the 5 epochs"):
        ft.train(config.with_overrides(["training.epochs=4"]), resume=True)
    result = ft.train(config.with_overrides(["training.epochs=6"]), resume=True)
    assert result.status == "completed" and result.epochs_completed == 6
    assert result.continuations[0]["previous_epochs"] == 10 and result.continuations[0]["epochs"] == 6


# ------------------------------------------------------------------------------------------
# plot
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    directory = tmp_path_factory.mktemp("finished")
    threads = torch.get_num_threads()
    try:
        ft.train(RunConfig.from_dict(_tiny(directory, training={"epochs": 10}, observe={"log_points": 4})))
    finally:
        torch.set_num_threads(threads)
    return directory / "tiny"


def test_plot_formats_and_metrics(finished, tmp_path, capsys):
    assert cli.main(["plot", str(finished), "--out", str(tmp_path / "curves.pdf")]) == 0
    assert (tmp_path / "curves.pdf").read_bytes().startswith(b"%PDF")
    assert cli.main(["plot", str(finished), "--format", "svg", "--metrics", "NC1.tr_unc,NEG"]) == 0
    assert b"<svg" in (finished / "training_curves.svg").read_bytes()[:500]
    assert "completed" in capsys.readouterr().out
    history = plot.load_run_history(finished)
    assert history.source.name == "history.jsonl" and history.status == "completed"
    assert plot.choose_metrics(history.rows) == list(plot.DEFAULT_METRICS)
    assert set(plot.metric_series(history.rows, "NEG")) == {"l=2 pre", "l=3 pre"}
    assert set(plot.metric_series(history.rows, "NC1.tr_unc")) == {"l=1", "l=2", "l=3"}


def test_plot_reads_history_json_of_a_run_without_a_journal(finished, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(finished, old)
    (old / ft.HISTORY_JOURNAL_NAME).unlink()
    assert plot.load_run_history(old).source.name == "history.json"
    assert plot.plot_run(old).read_bytes().startswith(PNG)


def test_plot_refuses_in_one_line(finished, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    started = tmp_path / "started"
    started.mkdir()
    (started / "config.json").write_text("{}")
    (started / ft.HISTORY_JOURNAL_NAME).write_text("")
    cases = [
        (["plot", str(tmp_path / "missing")], "RUN_DIR", "does not exist"),
        (["plot", str(empty)], "RUN_DIR", "holds no history"),
        (["plot", str(started)], "RUN_DIR", "history of .* is empty"),
        (["plot", str(finished), "--metrics", "NC9.x"], "--metrics", "NC9.x not in this run's history"),
        (["plot", str(finished), "--out", str(tmp_path / "curves.txt")], "--out", "cannot tell the format"),
        (["plot", str(finished), "--out", str(tmp_path / "c.png"), "--format", "pdf"], "--out", "does not match"),
        (["plot", str(finished), "--out", str(empty)], "--out", "is a folder"),
    ]
    for argv, argument, pattern in cases:
        _one_line_error(capsys, argv, argument, pattern)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "started"]
    assert not list(empty.iterdir())


# ------------------------------------------------------------------------------------------
# TensorBoard
# ------------------------------------------------------------------------------------------


def test_tensorboard_without_the_package_is_refused_at_validation(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'ufm-sandbox\[tensorboard\]'"):
        RunConfig.from_dict(_tiny(tmp_path, output={"tensorboard": True}))
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(_tiny(tmp_path / "out")))
    _one_line_error(capsys, ["train", "--config", str(config_path), "--set", "output.tensorboard=true"],
                    "--set", r"output.tensorboard = true needs the tensorboard package.*ufm-sandbox\[tensorboard\]")
    assert not (tmp_path / "out").exists()


def test_tensorboard_writer_writes_every_snapshot(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = RunConfig.from_dict(_tiny(tmp_path, training={"epochs": 10}, observe={"log_points": 4},
                                       output={"tensorboard": True}))
    result = ft.train(config)
    folder = tmp_path / "tiny" / ft.TENSORBOARD_NAME
    assert list(folder.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"loss/objective", "accuracy/train", "NC1.tr_unc/layer3", "NEG/layer2_pre"} <= set(tags)
    objective = events.Scalars("loss/objective")
    assert [event.step for event in objective] == [snapshot.epoch for snapshot in result.history]
    assert objective[-1].value == pytest.approx(result.history[-1].terms.objective, rel=1e-6)
