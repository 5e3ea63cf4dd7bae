"""fullnet.sweeps under failure: a SIGKILLed coordinator leaves no process behind, coordinators
sharing a store run each cell once (leases, stale takeover), a changed configuration under one
sweep name is refused and a changed grid is aggregated alone, a sweep whose every cell failed
exits 1, and run folders go beside the store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from fullnet import cli, sweeps
from fullnet.store import (
    CLAIMED,
    DONE_COMPLETED,
    DONE_FAILED,
    HELD,
    LeaseHeartbeat,
    LeaseOwner,
    RunRegistration,
    SweepStore,
    lease_is_stale,
)

from process_tree import HAS_PROC, alive, children, survivors_after

ROOT = Path(__file__).resolve().parents[1]
TINY_OVERRIDES = [
    "data.per_class=8", "data.gaussian_dimension=6", "model.nonlinear_widths=[16, 8]",
    "model.linear_depth=1", "training.device=cpu", "output.progress=false", "observe.per_layer=false",
]


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """In-process runs set torch's thread count (training.threads = 1); restore it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _sweep_file(folder: Path, *, name: str = "tiny", epochs: int = 30, log_points: int = 3,
                weight_decays=(1e-3, 1e-2), widths=(8, 16), seeds=(0,), extra=()) -> Path:
    """A tiny Gaussian sweep file on the packaged gaussian_smoke base (no output.directory)."""
    folder.mkdir(parents=True, exist_ok=True)
    overrides = [f"training.epochs={epochs}", f"observe.log_points={log_points}", *TINY_OVERRIDES, *extra]
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nbase = "gaussian_smoke"\noverrides = {json.dumps(overrides)}\n'
        f"[grid]\nweight_decays = {json.dumps(list(weight_decays))}\n"
        f"widths = {json.dumps(list(widths))}\nseeds = {json.dumps(list(seeds))}\n"
    )
    return path


def _environment() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def _sweep_process(arguments: list[str], cwd: Path, **keywords) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fullnet", "sweep", "--no-progress", *arguments],
                            cwd=cwd, env=_environment(), **keywords)


# ------------------------------------------------------------------------------------------
# a killed coordinator leaves nothing running
# ------------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc")
def test_sigkilled_coordinator_leaves_no_process_and_releases_its_stdout(tmp_path):
    # runs far longer than the test: the coordinator is killed while its workers train
    config = _sweep_file(tmp_path / "in", epochs=200_000, log_points=2)
    store = tmp_path / "out" / "sweep.sqlite"
    process = _sweep_process(["--config", str(config), "--workers", "2", "--store", str(store)],
                             tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        # two workers and multiprocessing's resource tracker, and the runs have started
        while time.monotonic() < deadline and process.poll() is None:
            pids = children(process.pid)
            if len(pids) >= 3 and len([p for p in (tmp_path / "out").glob("w*") if p.is_dir()]) >= 2:
                break
            time.sleep(0.1)
        assert process.poll() is None, "the sweep ended before it could be killed"
        assert len(pids) >= 3, f"children of the coordinator: {pids}"
        pids = children(process.pid)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    # what `| tee` waits for: every holder of the coordinator's stdout is gone
    ended = threading.Event()
    reader = threading.Thread(target=lambda: (process.stdout.read(), ended.set()), daemon=True)
    reader.start()
    assert survivors_after(pids, 10.0) == []
    assert ended.wait(5.0), "the coordinator's stdout is still held open"
    process.stdout.close()
    # the killed coordinator's leases are stale at once (its process is gone): the next one
    # takes the cells over without waiting for the lease timeout
    with SweepStore(store) as opened:
        leases = opened.leases()
        assert len(leases) == 2 and {lease.pid for lease in leases} == {process.pid}
        assert all(lease_is_stale(lease, timeout=3600.0) for lease in leases)
        assert opened.claim_run(leases[0].run_id, LeaseOwner.new(), timeout=3600.0) == CLAIMED


# ------------------------------------------------------------------------------------------
# coordinators sharing a store
# ------------------------------------------------------------------------------------------


def test_two_coordinators_started_at_once_run_each_cell_once(tmp_path):
    config = _sweep_file(tmp_path / "in", weight_decays=(1e-3, 3e-3, 1e-2), widths=(8, 16))
    store = tmp_path / "out" / "sweep.sqlite"
    arguments = ["--config", str(config), "--workers", "0", "--store", str(store)]
    first = _sweep_process(arguments, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = _sweep_process(arguments, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], [error for _, error in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    # every cell ran in exactly one of them; the other saw it done
    assert sum(report["completed"] for report in reports) == 6
    for report in reports:
        assert report["completed"] + report["elsewhere"] + report["skipped_completed"] == 6
        assert report["totals"]["completed"] == 6 and report["failed"] == 0
    with SweepStore(store) as opened:
        records = opened.runs()
        assert len(records) == 6 and all(record.status == "completed" for record in records)
        assert [record.attempts for record in records] == [1] * 6
        assert opened.leases() == []
    folders = sorted(path.name for path in store.parent.iterdir() if path.is_dir())
    assert folders == sorted(record.name for record in records)
    assert all((store.parent / name / "result.json").is_file() for name in folders)


def _counting_runner(calls: list, lock: threading.Lock):
    def runner(task: sweeps.RunTask) -> sweeps.RunOutcome:
        with lock:
            calls.append((task.run_id, threading.current_thread().name))
        time.sleep(0.1)
        return sweeps.RunOutcome(run_id=task.run_id, status="completed", started=time.time(),
                                 finished=time.time(), worker="test")
    return runner


def _specification(directory: Path, name: str = "grid", **grid) -> sweeps.SweepSpecification:
    base = {
        "data": {"name": "gaussian", "gaussian_classes": 3, "gaussian_dimension": 6, "per_class": 8},
        "model": {"nonlinear_widths": [16, 8], "linear_depth": 1},
        "training": {"epochs": 30, "learning_rate": 0.1, "device": "cpu"},
        "observe": {"log_points": 3, "per_layer": False},
        "output": {"directory": str(directory), "progress": False},
    }
    return sweeps.SweepSpecification.from_dict({"name": name, "base": base, "grid": grid})


def test_coordinators_in_threads_share_the_cells_and_each_runs_once(tmp_path):
    specification = _specification(tmp_path, weight_decays=[1e-3, 2e-3, 3e-3, 4e-3], widths=[8, 16])
    store = tmp_path / "sweep.sqlite"
    calls: list = []
    runner = _counting_runner(calls, threading.Lock())
    start = threading.Barrier(2)
    reports: dict[str, sweeps.SweepReport] = {}

    def coordinate() -> None:
        start.wait()
        reports[threading.current_thread().name] = sweeps.run_sweep(
            specification, store, workers=0, progress=False, runner=runner)

    threads = [threading.Thread(target=coordinate, name=name) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert set(reports) == {"A", "B"}
    counted = Counter(run_id for run_id, _ in calls)
    assert len(counted) == 8 and set(counted.values()) == {1}
    assert {name for _, name in calls} == {"A", "B"}  # both worked
    assert sorted(reports["A"].completed + reports["B"].completed) == sorted(counted)
    assert all(report.totals["completed"] == 8 for report in reports.values())


def test_a_cell_held_by_a_live_coordinator_is_waited_for_and_a_stale_one_taken_over(tmp_path):
    specification = _specification(tmp_path, weight_decays=[1e-3, 1e-2], widths=[8])
    store_path = tmp_path / "sweep.sqlite"
    calls: list = []
    runner = _counting_runner(calls, threading.Lock())
    # register the grid, then let "another coordinator" hold both cells
    with pytest.raises(KeyboardInterrupt):
        sweeps.run_sweep(specification, store_path, workers=0, progress=False,
                         runner=lambda task: (_ for _ in ()).throw(KeyboardInterrupt()))
    calls.clear()
    other = LeaseOwner(owner="node7:4242:other", pid=4242, host="node7")
    with SweepStore(store_path) as store:
        first, second = (record.run_id for record in store.runs())
        assert store.claim_run(first, other, timeout=60.0) == CLAIMED
        assert store.claim_run(second, other, timeout=60.0) == CLAIMED

        def other_completes_the_first() -> None:
            time.sleep(0.5)
            with SweepStore(store_path) as own:
                own.record_completed(first, [], worker="node7:4242")

        helper = threading.Thread(target=other_completes_the_first)
        helper.start()
        began = time.monotonic()
        report = sweeps.run_sweep(specification, store, workers=0, progress=False, runner=runner,
                                  lease_timeout=2.0)
        helper.join()
        # the first was done by the other coordinator; the second's lease went stale (no
        # heartbeat for 2 s) and was taken over
        assert report.elsewhere == [first] and report.completed == [second]
        assert [run_id for run_id, _ in calls] == [second]
        assert time.monotonic() - began >= 1.5
        assert store.run(second).attempts == 2 and store.leases() == []


def test_claims_are_exclusive_until_a_lease_is_stale(tmp_path):
    with SweepStore(tmp_path / "store.sqlite") as store:
        store.register_sweep("grid", {})
        registrations = [RunRegistration(config_hash=f"h{index}", name=f"r{index}", config={},
                                         coordinates={"seed": index}, directory=f"/r{index}")
                         for index in range(4)]
        ids = list(store.register_runs("grid", registrations).values())
        me, other = LeaseOwner.new(), LeaseOwner.new()  # two coordinators of this process
        assert store.claim_run(ids[0], me, timeout=60.0) == CLAIMED
        assert store.claim_run(ids[0], other, timeout=60.0) == HELD
        assert store.run(ids[0]).status == "running" and store.run(ids[0]).attempts == 1
        # a lease whose owner process on this host is gone is stale at once
        finished = subprocess.run([sys.executable, "-c", "pass"], check=True)
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        assert finished.returncode == 0 and not alive(dead.pid)
        ghost = LeaseOwner(owner=f"{socket.gethostname()}:{dead.pid}:ghost", pid=dead.pid,
                           host=socket.gethostname())
        assert store.claim_run(ids[1], ghost, timeout=60.0) == CLAIMED
        assert store.claim_run(ids[1], other, timeout=60.0) == CLAIMED
        # another host's lease is stale only by its heartbeat
        remote = LeaseOwner(owner="elsewhere:1:x", pid=1, host="elsewhere")
        assert store.claim_run(ids[2], remote, timeout=0.2) == CLAIMED
        assert store.claim_run(ids[2], me, timeout=0.2) == HELD
        time.sleep(0.3)
        assert store.claim_run(ids[2], me, timeout=0.2) == CLAIMED
        # a heartbeat keeps a lease fresh; giving back returns the runs to pending
        with LeaseHeartbeat(store.path, me, 0.05) as beat:
            time.sleep(0.3)
            assert store.claim_run(ids[2], other, timeout=0.2) == HELD
        assert beat.beats >= 2
        assert store.release_leases(me) == 2
        assert store.run(ids[0]).status == "pending" and store.claim_run(ids[0], other, timeout=60.0) == CLAIMED
        # done cells are not claimed; a failure recorded before a retrying coordinator began is
        assert store.record_completed(ids[0], []) and store.claim_run(ids[0], me, timeout=60.0) == DONE_COMPLETED
        store.record_failed(ids[3], "FloatingPointError: nan", finished=100.0)
        assert store.claim_run(ids[3], me, timeout=60.0) == DONE_FAILED
        assert store.claim_run(ids[3], me, timeout=60.0, retry_failed_before=50.0) == DONE_FAILED
        assert store.claim_run(ids[3], me, timeout=60.0, retry_failed_before=200.0) == CLAIMED
        assert {lease.run_id for lease in store.leases("grid")} == {ids[1], ids[3]}


# ------------------------------------------------------------------------------------------
# a changed configuration under one sweep name
# ------------------------------------------------------------------------------------------


def test_a_changed_configuration_under_one_name_is_refused_in_one_line(tmp_path, capsys):
    config = _sweep_file(tmp_path / "in", epochs=5, log_points=2, widths=(8,))
    store = tmp_path / "out" / "sweep.sqlite"
    common = ["sweep", "--config", str(config), "--workers", "0", "--no-progress", "--store", str(store)]
    assert cli.main(common) == 0
    capsys.readouterr()
    with SweepStore(store) as opened:
        specification_before = opened.sweeps()[0].specification
        runs_before = [record.to_dict() for record in opened.runs()]
    assert cli.main(common + ["--set", "training.epochs=6", "--set", "training.learning_rate=0.05"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --config: sweep 'tiny'")
    assert "training.epochs: 5 → 6" in lines[0] and "training.learning_rate: 0.1 → 0.05" in lines[0]
    assert "--set sweep.name=tiny_2" in lines[0]
    with SweepStore(store) as opened:  # nothing written
        assert opened.sweeps()[0].specification == specification_before
        assert [record.to_dict() for record in opened.runs()] == runs_before
    # how to run it: a new name, kept apart in the same store
    assert cli.main(common + ["--set", "training.epochs=6", "--set", "sweep.name=tiny_2"]) == 0
    capsys.readouterr()
    with SweepStore(store) as opened:
        for name, epochs in (("tiny", 5), ("tiny_2", 6)):
            table = opened.final_metrics("objective", sweep=name)
            assert [row.epoch for row in table.rows] == [epochs, epochs]
            assert sweeps.aggregate_grid(table).count == [[1], [1]]
    # settings that do not change what a run computes do not count as a change
    assert cli.main(common + ["--set", "training.threads=2", "--set", "output.progress=true",
                              "--set", "description='again'"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_completed"] == 2


def test_a_changed_grid_is_aggregated_alone(tmp_path):
    store = tmp_path / "sweep.sqlite"
    three = _specification(tmp_path, weight_decays=[1e-3], widths=[8], seeds=[0, 1, 2])
    sweeps.run_sweep(three, store, workers=0, progress=False)
    two = _specification(tmp_path, weight_decays=[1e-3], widths=[8], seeds=[0, 1])
    report = sweeps.run_sweep(two, store, workers=0, progress=False)
    assert report.skipped_completed == 2 and report.completed == []  # the same cells, reused
    with SweepStore(store) as opened:
        table = opened.final_metrics("objective")
        assert sorted(row.seed for row in table.rows) == [0, 1]
        assert sweeps.aggregate_grid(table).count == [[2]]  # not 3: seed 2 is not in the grid
        assert len(opened.runs()) == 3 and opened.counts(grid_only=True)["completed"] == 2
    grown = _specification(tmp_path, weight_decays=[1e-3], widths=[8], seeds=[0, 1, 2, 3])
    report = sweeps.run_sweep(grown, store, workers=0, progress=False)
    assert report.skipped_completed == 3 and len(report.completed) == 1
    with SweepStore(store) as opened:
        assert sweeps.aggregate_grid(opened.final_metrics("objective")).count == [[4]]


def test_the_base_comparison_names_every_key_that_changes_a_run(tmp_path):
    stored = _specification(tmp_path).to_dict()
    assert sweeps.base_changes(stored, _specification(tmp_path)) == []
    moved = _specification(tmp_path / "elsewhere")  # output.* does not change a run
    assert sweeps.base_changes(stored, moved) == []
    changed = sweeps.SweepSpecification.from_dict({
        **stored, "base": {**stored["base"], "training": {**stored["base"]["training"], "epochs": 60,
                                                          "threads": 3}}})
    assert sweeps.base_changes(stored, changed) == ["training.epochs: 30 → 60"]
    assert sweeps.base_changes({"grid": {}}, changed) == []  # nothing stored to compare


# ------------------------------------------------------------------------------------------
# failures, exit status
# ------------------------------------------------------------------------------------------


def test_a_sweep_whose_every_cell_failed_exits_1_in_one_line(tmp_path, capsys):
    # λ = 1e5 with η = 0.1: the loss overflows within a few steps
    config = _sweep_file(tmp_path / "in", weight_decays=(1e5,), widths=(8, 16), epochs=10)
    store = tmp_path / "out" / "sweep.sqlite"
    command = ["sweep", "--config", str(config), "--workers", "0", "--no-progress", "--store", str(store)]
    assert cli.main(command) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["failed"] == 2 and summary["completed"] == 0
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: sweep tiny: all 2 cells failed")
    assert "FloatingPointError" in lines[0] and "--retry-failed" in lines[0]
    assert cli.main(command) == 1  # still nothing completed
    capsys.readouterr()


def test_partial_failures_exit_0_and_are_counted_in_one_line(tmp_path, capsys):
    config = _sweep_file(tmp_path / "in", weight_decays=(1e-3, 1e5), widths=(8,), epochs=10)
    store = tmp_path / "out" / "sweep.sqlite"
    assert cli.main(["sweep", "--config", str(config), "--workers", "0", "--no-progress",
                     "--store", str(store)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["totals"] == {"pending": 0, "running": 0, "completed": 1, "failed": 1}
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: sweep tiny: 1 of 2 cells failed, 1 completed")


def test_all_failed_through_a_process_pool_exits_1(tmp_path):
    config = _sweep_file(tmp_path / "in", weight_decays=(1e5,), widths=(8,), epochs=10)
    result = subprocess.run(
        [sys.executable, "-m", "fullnet", "sweep", "--config", str(config), "--workers", "1",
         "--no-progress", "--store", str(tmp_path / "out" / "sweep.sqlite")],
        cwd=tmp_path, env=_environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: sweep tiny: all 1 cells failed")


# ------------------------------------------------------------------------------------------
# run folders
# ------------------------------------------------------------------------------------------


def test_run_folders_go_beside_the_store(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    config = _sweep_file(tmp_path / "in", epochs=5, log_points=2, widths=(8,))
    store = tmp_path / "results" / "mine.sqlite"
    assert cli.main(["sweep", "--config", str(config), "--workers", "0", "--no-progress",
                     "--store", str(store)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["run_directory"] == str(store.parent.resolve())
    with SweepStore(store) as opened:
        records = opened.runs()
    assert len(records) == 2
    for record in records:
        assert Path(record.directory) == store.parent.resolve() / record.name
        assert (Path(record.directory) / "result.json").is_file()
    assert list(work.iterdir()) == []  # nothing under ./outputs
    # without --store: output.directory/NAME holds the store and the runs, as before
    assert cli.main(["sweep", "--config", str(config), "--workers", "0", "--no-progress"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert Path(default["store"]) == work / "outputs" / "fullnet" / "tiny" / "sweep.sqlite"
    assert default["run_directory"] == str(work / "outputs" / "fullnet" / "tiny")
    # an output.directory that is set is where the runs go, whatever the store
    elsewhere = tmp_path / "runs"
    assert cli.main(["sweep", "--config", str(config), "--workers", "0", "--no-progress",
                     "--store", str(tmp_path / "other" / "s.sqlite"),
                     "--set", f"output.directory={elsewhere}"]) == 0
    assert json.loads(capsys.readouterr().out)["run_directory"] == str(elsewhere.resolve() / "tiny")
    assert len(list((elsewhere / "tiny").glob("w8-*"))) == 2
