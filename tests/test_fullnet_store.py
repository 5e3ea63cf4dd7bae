"""fullnet.store: schema, WAL mode, idempotent writes, queries, and refusal of foreign files."""

from __future__ import annotations

import sqlite3

import pytest

from fullnet.store import (
    STORE_FORMAT,
    STORE_VERSION,
    RunRegistration,
    StoreError,
    SweepStore,
    snapshot_values,
)


def _registration(index: int, *, width: int = 8, weight_decay: float = 1e-3, seed: int = 0) -> RunRegistration:
    coordinates = {"weight_decay": weight_decay, "width": width, "nonlinear_depth": 2,
                   "linear_depth": 1, "seed": seed}
    return RunRegistration(config_hash=f"hash{index}", name=f"run{index}",
                           config={"training": {"weight_decay": weight_decay}},
                           coordinates=coordinates, directory=f"/runs/run{index}")


def _snapshot(epoch: int, objective: float, nc1: float | None) -> dict:
    return {
        "epoch": epoch, "step": epoch, "learning_rate": 0.1,
        "terms": {"objective": objective, "data_term": objective / 2, "layer_penalties": [0.1, 0.2],
                  "backbone_penalty": 0.0, "feature_penalty": 0.0, "one_dimensional_penalty": 0.0,
                  "fit_error": 1.0},
        "accuracy": 1.0, "test_accuracy": None,
        "layers": [
            {"layer": 1, "width": 6, "after_activation": False, "metrics": {"NC1.tr_unc": 2.0, "RANK": 3},
             "pre_metrics": None},
            {"layer": 2, "width": 8, "after_activation": True, "metrics": {"NC1.tr_unc": nc1},
             "pre_metrics": {"NEG": 0.5}},
        ],
        "totals": {"ERR": 0.25, "singular_values": [1.0, 2.0]},
        "notes": [],
    }


def test_schema_wal_mode_and_unique_constraints(tmp_path):
    path = tmp_path / "store.sqlite"
    with SweepStore(path) as store:
        assert store.journal_mode() == "wal"
    connection = sqlite3.connect(path)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"store_info", "sweeps", "runs", "metrics", "grid_cells", "leases"} <= tables
    info = dict(connection.execute("SELECT key, value FROM store_info"))
    assert info == {"format": STORE_FORMAT, "version": str(STORE_VERSION)} and STORE_VERSION == 2
    columns = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
    assert {"config", "config_hash", "status", "attempts", "error", "started", "finished",
            "wall_seconds", "weight_decay", "width", "seed"} <= columns
    connection.execute("INSERT INTO sweeps(name, specification, created, updated) VALUES ('s', '{}', 0, 0)")
    connection.execute(
        "INSERT INTO runs(sweep_id, config_hash, name, config, coordinates, created) VALUES (1, 'h', 'n', '{}', '{}', 0)")
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute(
            "INSERT INTO runs(sweep_id, config_hash, name, config, coordinates, created) VALUES (1, 'h', 'm', '{}', '{}', 0)")
    connection.execute("INSERT INTO metrics VALUES (1, 0, 0, 'objective', 1.0)")
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute("INSERT INTO metrics VALUES (1, 0, 0, 'objective', 2.0)")
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute("UPDATE runs SET status = 'finished'")
    connection.close()


def test_registration_and_results_are_idempotent(tmp_path):
    with SweepStore(tmp_path / "store.sqlite") as store:
        store.register_sweep("grid", {"grid": {"widths": [8, 16]}})
        assert store.register_sweep("grid", {"grid": {"widths": [8, 16, 32]}}) == 1
        runs = [_registration(0), _registration(1, width=16)]
        first = store.register_runs("grid", runs)
        assert store.register_runs("grid", runs + [_registration(2, width=32)]) == {**first, "hash2": 3}
        assert store.counts("grid") == {"pending": 3, "running": 0, "completed": 0, "failed": 0}
        values = snapshot_values(_snapshot(0, 1.0, 0.5)) + snapshot_values(_snapshot(10, 0.5, 0.1))
        store.mark_submitted(first["hash0"])
        assert store.run(first["hash0"]).status == "running"
        assert store.record_completed(first["hash0"], values, wall_seconds=1.5, epochs_completed=10)
        count = store.metric_row_count()
        assert count == len(values)
        # a second delivery of the same run writes nothing
        assert not store.record_completed(first["hash0"], values)
        assert not store.record_failed(first["hash0"], "late error")
        assert store.metric_row_count() == count
        record = store.run(first["hash0"])
        assert (record.status, record.attempts, record.wall_seconds, record.error) == ("completed", 1, 1.5, None)
        # an interrupted run goes back to pending; a completed one stays completed
        store.mark_submitted(first["hash1"])
        store.mark_pending([first["hash0"], first["hash1"]])
        assert store.run(first["hash1"]).status == "pending"
        assert store.run(first["hash0"]).status == "completed"
        store.record_failed(first["hash1"], "FloatingPointError: the loss became nan")
        assert store.run(first["hash1"]).error.startswith("FloatingPointError")
        assert store.counts() == {"pending": 1, "running": 0, "completed": 1, "failed": 1}
        assert [sweep.name for sweep in store.sweeps()] == ["grid"]
        assert store.sweeps()[0].specification["grid"]["widths"] == [8, 16, 32]


def test_snapshot_rows_history_and_final_metrics(tmp_path):
    rows = snapshot_values(_snapshot(5, 0.75, None))
    keyed = {(layer, metric): value for _, layer, metric, value in rows}
    assert keyed[(0, "objective")] == 0.75 and keyed[(0, "step")] == 5.0
    assert keyed[(0, "ERR")] == 0.25 and (0, "singular_values") not in keyed
    assert keyed[(1, "layer_penalty")] == 0.1 and keyed[(2, "layer_penalty")] == 0.2
    assert keyed[(1, "RANK")] == 3.0 and keyed[(2, "width")] == 8.0
    assert keyed[(2, "NC1.tr_unc")] is None and keyed[(2, "pre_NEG")] == 0.5
    assert keyed[(0, "test_accuracy")] is None
    with pytest.raises(ValueError, match="snapshot"):
        snapshot_values({"objective": 1.0})

    with SweepStore(tmp_path / "store.sqlite") as store:
        store.register_sweep("grid", {})
        ids = store.register_runs("grid", [_registration(0, seed=0), _registration(1, seed=1),
                                           _registration(2, width=16)])
        for index, final in enumerate((0.3, 0.1)):
            store.record_completed(ids[f"hash{index}"], snapshot_values(_snapshot(0, 1.0, 0.9))
                                   + snapshot_values(_snapshot(20, 0.5, final)))
        history = store.history(ids["hash0"])
        assert history.epochs == [0, 20]
        assert history.series("NC1.tr_unc", layer=2) == ([0, 20], [0.9, 0.3])
        with pytest.raises(KeyError, match="no metric 'NC9'"):
            history.series("NC9")
        assert store.history(ids["hash0"], metric="objective").values == {(0, "objective"): [1.0, 0.5]}
        table = store.final_metrics("NC1.tr_unc", layer=2)
        assert table.sweep == "grid"
        assert [row.value for row in table.rows] == [0.3, 0.1]  # the pending run is left out
        assert table.column("seed") == [0, 1] and table.column("epoch") == [20, 20]
        assert (2, "NC1.tr_unc") in store.metric_names("grid")
        with pytest.raises(StoreError, match="metric 'NC9' at layer 2 is not stored"):
            store.final_metrics("NC9", layer=2)
        with pytest.raises(StoreError, match="run_id 99"):
            store.history(99)
        with pytest.raises(StoreError, match="sweep 'other' is not in store"):
            store.runs(sweep="other")
        with pytest.raises(StoreError, match="status must be one of"):
            store.runs(status="done")
        store.register_sweep("second", {})
        with pytest.raises(StoreError, match="name one with the sweep argument"):
            store.final_metrics("objective")


def test_a_file_that_is_not_a_sweep_store_is_refused(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database at all")
    with pytest.raises(StoreError, match="not a sweep store"):
        SweepStore(text)
    foreign = tmp_path / "foreign.sqlite"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE measurements (x REAL)")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="no store_info"):
        SweepStore(foreign)
    other_format = tmp_path / "other.sqlite"
    connection = sqlite3.connect(other_format)
    connection.execute("CREATE TABLE store_info (key TEXT PRIMARY KEY, value TEXT)")
    connection.execute("INSERT INTO store_info VALUES ('format', 'something-else')")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="format 'something-else'"):
        SweepStore(other_format)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SweepStore(tmp_path / "missing.sqlite", create=False)
    with pytest.raises(StoreError, match="is not a file"):
        SweepStore(tmp_path)


def test_a_version_1_store_is_upgraded_in_place_and_keeps_its_runs(tmp_path):
    path = tmp_path / "old.sqlite"
    with SweepStore(path) as store:
        store.register_sweep("grid", {})
        ids = store.register_runs("grid", [_registration(0), _registration(1, width=16)])
    connection = sqlite3.connect(path)  # as version 1 wrote it: no grid_cells, no leases
    connection.executescript("DROP TABLE grid_cells; DROP TABLE leases; "
                             "UPDATE store_info SET value = '1' WHERE key = 'version';")
    connection.close()
    with SweepStore(path) as store:
        assert store.counts("grid") == {"pending": 2, "running": 0, "completed": 0, "failed": 0}
        assert store.grid_hashes("grid") is None and store.leases() == []
        assert store.register_runs("grid", [_registration(0)]) == {"hash0": ids["hash0"]}
    connection = sqlite3.connect(path)
    assert dict(connection.execute("SELECT key, value FROM store_info"))["version"] == "2"
    connection.execute("UPDATE store_info SET value = '7' WHERE key = 'version'")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="has version 7; this package reads versions 1, 2"):
        SweepStore(path)


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    """Four processes open the same new store at the same instant, five times over. Without the
    retried set-up, about one open in ten failed with "database is locked" or "disk I/O error"
    (the race of the switch to WAL mode)."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from fullnet.store import SweepStore\n"
        "start = float(sys.argv[2])\n"
        "while time.time() < start:\n"
        "    pass\n"
        "with SweepStore(sys.argv[1]) as store:\n"
        "    print(store.journal_mode())\n"
    )
    for trial in range(5):
        path = tmp_path / f"store{trial}.sqlite"
        start = time.time() + 1.0  # after every interpreter has started
        processes = [subprocess.Popen([sys.executable, "-c", script, str(path), str(start)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(4)]
        results = [process.communicate(timeout=120) for process in processes]
        assert [process.returncode for process in processes] == [0] * 4, [err for _, err in results]
        assert [out.strip() for out, _ in results] == ["wal"] * 4
