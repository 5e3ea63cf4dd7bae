"""Tests of :mod:`ufm.atlas` and ``python -m ufm atlas`` (tiny cells, cheap local methods)."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from process_tree import HAS_PROC, workers_of_killed_command

from ufm import atlas, cli, optima

REPOSITORY = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAM = 0.004
# Cheap search: kink_lbfgs from 2 seeds, 600 iterations each (the tiny cells converge well
# within them or not: the checks below hold for any point).
CHEAP = dict(method="kink_lbfgs", max_starts=2, max_iterations=600, time_budget=30.0)


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def store_rows(path: Path) -> list[tuple]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    try:
        return connection.execute(
            "SELECT config_key, K, L, config, result, finished FROM cells ORDER BY finished"
        ).fetchall()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def small_atlas(tmp_path_factory):
    """K ∈ {2, 3}, L ∈ {2, 3}, width auto (two widths per cell)."""
    out = tmp_path_factory.mktemp("atlas")
    result = atlas.run_atlas([2, 3], "2..3", per_class=1, lam=LAM, width="auto", out=out,
                             **CHEAP)
    return out, result


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def test_csv_columns_and_values(small_atlas):
    out, result = small_atlas
    columns, rows = read_csv(out / "atlas.csv")
    assert columns == list(atlas.CSV_COLUMNS)
    assert columns == ["K", "L", "n", "lam", "width", "best_loss", "dnc_loss", "ratio",
                       "srg_loss", "ranks", "basins", "seconds", "point"]
    assert [(int(row["K"]), int(row["L"])) for row in rows] == [(2, 2), (2, 3), (3, 2), (3, 3)]
    assert result.computed == 4 and result.reused == 0 and not result.failed
    for row, cell in zip(rows, result.cells):
        k, depth, n, lam = int(row["K"]), int(row["L"]), int(row["n"]), float(row["lam"])
        assert (n, lam) == (1, LAM)
        dnc = optima.predict_dufm(k, depth, n, lam, lam).optimal_loss
        assert float(row["dnc_loss"]) == dnc  # full precision in the CSV
        best = float(row["best_loss"])
        assert float(row["ratio"]) == best / dnc
        if k == 2:
            # L_DNC is the global minimum for K = 2 ((B), docs/theory.md §4.3): no point is lower
            # than it by more than the (relative) basin tolerance.
            assert float(row["ratio"]) >= 1.0 - atlas.BASIN_TOLERANCE
        if depth >= 3 and k == 3:  # K = 3 = r(r−1)/2 with r = 3: the triangular construction
            srg = optima.predict_srg(3, depth, n, lam, lam, shift=None).optimal_loss
            assert float(row["srg_loss"]) == srg
        else:
            assert row["srg_loss"] == ""
        ranks = [int(value) for value in row["ranks"].split(";")]
        assert len(ranks) == depth + 1 and all(0 <= rank <= k for rank in ranks)
        assert int(row["basins"]) >= 1 and float(row["seconds"]) > 0
        assert row["point"] == f"points/K{k}_L{depth}.npz" and (out / row["point"]).is_file()
        # width auto: searched at w = max(2K, 10) and w + K, the lower kept
        searched = [search["width"] for search in cell.searches]
        assert searched == [max(2 * k, 10), max(2 * k, 10) + k]
        kept = min(cell.searches, key=lambda search: search["loss"])
        assert int(row["width"]) == kept["width"] == cell.width
        # the wider search also starts from the narrower best point: never above it (up to the
        # few ulps by which the zero-padded sums may differ)
        assert cell.searches[1]["loss"] <= cell.searches[0]["loss"] * (1 + 1e-14)
        assert cell.wider_lower == (cell.searches[1]["loss"] < cell.searches[0]["loss"]
                                    * (1.0 - atlas.BASIN_TOLERANCE))
    data = json.loads((out / "atlas.json").read_text())
    assert data["columns"] == list(atlas.CSV_COLUMNS) and len(data["cells"]) == 4
    assert data["settings"]["method"] == "kink_lbfgs"


def test_stored_point_reevaluates_to_its_value(small_atlas):
    out, result = small_atlas
    _, rows = read_csv(out / "atlas.csv")
    stored = {(row[1], row[2]): json.loads(row[4]) for row in store_rows(out / "atlas.sqlite")}
    for row in rows:
        k, depth = int(row["K"]), int(row["L"])
        model, parameters, value = atlas.load_point(out / row["point"])
        assert (model.num_classes, model.num_layers, model.per_class) == (k, depth, 1)
        assert model.widths == (int(row["width"]),) * depth
        assert model.lam_h == LAM and model.lam_w == (LAM,) * depth
        assert parameters.features.shape == (int(row["width"]), k)
        # the CSV's value is the recomputed one, the search's own value agrees with it
        assert float(row["best_loss"]) == value
        search_value = stored[k, depth]["loss"]
        assert value == pytest.approx(search_value, rel=1e-12, abs=0.0)
        # the ranks of the CSV are those of the stored point
        assert row["ranks"] == ";".join(str(r) for r in atlas.class_mean_ranks(model, parameters))


def test_load_point_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        atlas.load_point(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, H1=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="lacks"):
        atlas.load_point(bad)


def test_heatmap_written(small_atlas, tmp_path):
    out, result = small_atlas
    assert (out / "atlas.png").read_bytes()[:8] == PNG_MAGIC
    assert result.paths["png"] == str(out / "atlas.png")
    # a grid with L = 1 and a flagged cell, and a missing cell (K = 3, L = 1)
    cells = [cell for cell in result.cells]
    extra = atlas.AtlasCell(2, 1, 1, LAM, 10, 0.02, 0.02, 1.0, None, (2, 2), 1, 0.1, "",
                            "lbfgs", 0, "x", "auto", True)
    path = atlas.plot_atlas(cells + [extra], tmp_path / "figure.png", title="test")
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="cells"):
        atlas.plot_atlas([], tmp_path / "empty.png")


# --------------------------------------------------------------------------------------------
# Store: resume, configurations kept apart
# --------------------------------------------------------------------------------------------


def test_resume_after_kill(tmp_path, capsys):
    out, store = tmp_path / "out", tmp_path / "store.sqlite"
    # every cell takes at least the time budget (1,000 starts allowed, no new one after 0.7 s)
    arguments = ["atlas", "--K", "2..3", "--L", "2..3", "--width", "6", "--method",
                 "kink_lbfgs", "--max-starts", "1000", "--max-iterations", "300",
                 "--time-budget", "0.7", "--store", str(store), "--out", str(out),
                 "--no-progress"]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPOSITORY), os.environ.get("PYTHONPATH", "")]), OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "ufm", *arguments], cwd=tmp_path,
                               env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first = None
    deadline = time.monotonic() + 120.0
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if store.exists():
                try:
                    rows = store_rows(store)
                except sqlite3.OperationalError:  # schema not created yet
                    rows = []
                if rows:
                    first = rows[0]
                    break
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert first is not None, "no cell was stored before the deadline"
    killed = store_rows(store)
    assert 1 <= len(killed) < 4  # killed in flight: the later cells are missing
    assert not (out / "atlas.csv").exists()

    assert cli.main(arguments) == 0
    captured = capsys.readouterr()
    assert f"{4 - len(killed)} computed, {len(killed)} from the store" in captured.out
    rows = store_rows(store)
    assert len(rows) == 4
    assert sorted((row[1], row[2]) for row in rows) == [(2, 2), (2, 3), (3, 2), (3, 3)]
    assert len({row[0] for row in rows}) == 4
    # the first cell was not recomputed: its row, time stamp included, is unchanged
    assert [row for row in rows if row[0] == first[0]] == [first]
    _, csv_rows = read_csv(out / "atlas.csv")
    assert len(csv_rows) == 4


@pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc")
def test_killed_coordinator_takes_its_workers_down(tmp_path):
    arguments = ["atlas", "--K", "2..3", "--L", "2..3", "--width", "6", "--method",
                 "kink_lbfgs", "--max-starts", "1000", "--max-iterations", "300",
                 "--time-budget", "1.0", "--workers", "2", "--out", str(tmp_path / "out"),
                 "--no-progress"]
    pids, survivors = workers_of_killed_command(arguments, tmp_path)
    assert len(pids) >= 2, "the workers did not start"
    assert not survivors


def test_configuration_change_is_kept_apart(tmp_path):
    store = tmp_path / "shared.sqlite"
    options = dict(width=4, store=store, **CHEAP)
    first = atlas.run_atlas(2, 2, lam=0.004, out=tmp_path / "a", **options)
    second = atlas.run_atlas(2, 2, lam=0.005, out=tmp_path / "b", **options)
    assert (first.computed, second.computed) == (1, 1)
    rows = store_rows(store)
    assert len(rows) == 2 and {(row[1], row[2]) for row in rows} == {(2, 2)}
    assert sorted(json.loads(row[3])["lam"] for row in rows) == [0.004, 0.005]
    _, csv_rows = read_csv(tmp_path / "b" / "atlas.csv")
    assert [float(row["lam"]) for row in csv_rows] == [0.005]
    assert float(csv_rows[0]["dnc_loss"]) == optima.predict_dufm(2, 2, 1, 0.005, 0.005).optimal_loss
    # another λ is another cell: it never competes with the first
    assert [cell.search_count for cell in (first.cells[0], second.cells[0])] == [1, 1]
    assert second.cells[0].config_key != first.cells[0].config_key
    # a rerun of the first configuration computes nothing; another seed is another search of
    # the same cell (stored beside it, competing with it)
    again = atlas.run_atlas(2, 2, lam=0.004, out=tmp_path / "a", **options)
    assert (again.computed, again.reused) == (0, 1)
    assert again.cells[0].best_loss == first.cells[0].best_loss
    other_seed = atlas.run_atlas(2, 2, lam=0.004, seed=1, out=tmp_path / "c", **options)
    assert other_seed.computed == 1 and len(store_rows(store)) == 3
    assert other_seed.cells[0].search_count == 2
    # another width setting is another cell too
    other_width = atlas.run_atlas(2, 2, lam=0.004, **dict(options, width=5))
    assert other_width.computed == 1 and other_width.cells[0].search_count == 1


# --------------------------------------------------------------------------------------------
# A cell is the best of its stored searches
# --------------------------------------------------------------------------------------------

# Two searches of one cell that end at different values: a single start of kink_lbfgs stopped
# after 5 iterations, far from any minimum, so the end value depends on the random start
# (seed). Fixed width 6: one search per cell.
WEAK = dict(method="kink_lbfgs", width=6, max_starts=1, max_iterations=5, time_budget=30.0)


def test_lower_search_of_another_seed_replaces_the_value_higher_does_not(tmp_path, capsys):
    store = tmp_path / "store.sqlite"
    first = atlas.run_atlas(3, 2, seed=0, store=store, out=tmp_path / "seed0", **WEAK)
    assert first.computed == 1 and first.cells[0].search_count == 1
    value_0 = first.cells[0].best_loss
    second = atlas.run_atlas(3, 2, seed=1, store=store, out=tmp_path / "seed1", **WEAK)
    assert second.computed == 1 and second.reused == 0
    values = {search["seed"]: search["best_loss"] for search in second.cells[0].stored_searches}
    assert sorted(values) == [0, 1] and values[0] == value_0
    # the two starts differ, so the two searches end at different values (else this test
    # could not tell which one is shown)
    assert values[0] != values[1]
    lower, higher = sorted(values, key=values.get)
    for result in (second,
                   atlas.run_atlas(3, 2, seed=0, store=store, out=tmp_path / "again", **WEAK)):
        cell = result.cells[0]
        # whichever seed the run has, the cell shows the lower search: a lower search of the
        # other seed replaced the value, a higher one did not
        assert cell.best_loss == values[lower] < values[higher]
        assert cell.seed == lower and cell.kept_config["seed"] == lower
        assert cell.search_count == 2 and len(cell.stored_searches) == 2
        assert [search["kept"] for search in cell.stored_searches] == [
            search["seed"] == lower for search in cell.stored_searches]
        assert cell.config_key == next(search["key"] for search in cell.stored_searches
                                       if search["seed"] == lower)
    assert result.computed == 0 and result.reused == 1
    # the written table, JSON and point are those of the lower search (re-evaluated)
    out = tmp_path / "again"
    _, rows = read_csv(out / "atlas.csv")
    assert [float(row["best_loss"]) for row in rows] == [values[lower]]
    assert atlas.load_point(out / rows[0]["point"])[2] == values[lower]
    data = json.loads((out / "atlas.json").read_text())["cells"][0]
    assert data["search_count"] == 2 and data["kept_config"]["seed"] == lower
    assert data["kept_config"]["time_budget"] == WEAK["time_budget"]
    assert data["config_key"] == cell.config_key
    # the command line names the cells kept from another configuration
    code = cli.main(["atlas", "--K", "3", "--L", "2", "--width", "6", "--method", "kink_lbfgs",
                     "--max-starts", "1", "--max-iterations", "5", "--time-budget", "30",
                     "--seed", str(higher), "--store", str(store), "--out",
                     str(tmp_path / "cli"), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0 and "0 computed, 1 from the store" in printed
    assert f"K=3 L=2: kept the lowest of 2 stored searches, kink_lbfgs seed {lower}" in printed


def test_cell_with_only_other_searches_still_appears(tmp_path, monkeypatch):
    store = tmp_path / "store.sqlite"
    # the store holds seed 1 of the whole grid K = 3, L = 2..3
    other = atlas.run_atlas(3, "2..3", seed=1, store=store, **WEAK)
    assert other.computed == 2
    kept = {cell.num_layers: cell.best_loss for cell in other.cells}
    # a run with seed 0 whose search of (3, 3) fails: the cell still appears, from seed 1
    compute = atlas.compute_cell

    def failing_at_three_layers(config: dict) -> dict:
        if config["num_layers"] == 3:
            raise RuntimeError("no search")
        return compute(config)

    monkeypatch.setattr(atlas, "compute_cell", failing_at_three_layers)
    result = atlas.run_atlas(3, "2..3", seed=0, store=store, out=tmp_path / "out", **WEAK)
    assert result.computed == 1 and result.reused == 0
    assert [(failure["K"], failure["L"]) for failure in result.failed] == [(3, 3)]
    cells = {cell.num_layers: cell for cell in result.cells}
    assert sorted(cells) == [2, 3]
    assert cells[3].seed == 1 and cells[3].search_count == 1
    assert cells[3].best_loss == kept[3]
    assert cells[2].search_count == 2 and cells[2].best_loss <= kept[2]
    _, rows = read_csv(tmp_path / "out" / "atlas.csv")
    assert [(int(row["K"]), int(row["L"])) for row in rows] == [(3, 2), (3, 3)]
    for row in rows:
        assert atlas.load_point(tmp_path / "out" / row["point"])[2] == float(row["best_loss"])
    # a grid cell without any stored search of it is left out
    def failing(config: dict) -> dict:
        raise RuntimeError("no search")

    monkeypatch.setattr(atlas, "compute_cell", failing)
    empty = atlas.run_atlas(3, 4, seed=0, store=store, **WEAK)
    assert empty.cells == [] and len(empty.failed) == 1


def test_store_rejects_other_files(tmp_path):
    other = tmp_path / "other.sqlite"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    connection.execute("INSERT INTO store_info VALUES ('format', 'something-else')")
    connection.commit()
    connection.close()
    with pytest.raises(ValueError, match="store"):
        atlas.AtlasStore(other)


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------


def test_local_processes(tmp_path):
    result = atlas.run_atlas([2, 3], 2, width=6, workers=2, out=tmp_path, **CHEAP)
    assert result.computed == 2 and not result.failed
    assert [(cell.num_classes, cell.num_layers) for cell in result.cells] == [(2, 2), (3, 2)]
    # the cells ran in other processes
    pids = {json.loads(row[4])["worker"].rsplit(":", 1)[1]
            for row in store_rows(tmp_path / "atlas.sqlite")}
    assert str(os.getpid()) not in pids


def test_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        result = atlas.run_atlas(2, [2, 3], width=4, scheduler=cluster.scheduler_address,
                                 out=tmp_path, **CHEAP)
    assert result.computed == 2 and not result.failed
    assert (tmp_path / "atlas.csv").is_file()


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_parse_range():
    assert atlas.parse_range("2..5", "--K", 2) == (2, 3, 4, 5)
    assert atlas.parse_range("4", "--K", 2) == (4,)
    assert atlas.parse_range("5,2,3", "--K", 2) == (2, 3, 5)
    for text, message in (("1..3", ">= 2"), ("5..2", "empty"), ("a..b", "expected a range"),
                          ("", "expected a range"), ("2..", "expected a range")):
        with pytest.raises(ValueError, match=message) as error:
            atlas.parse_range(text, "--K", 2)
        assert str(error.value).startswith("--K:")


@pytest.mark.parametrize(
    "extra, name",
    [
        (["--K", "1..3"], "--K"),
        (["--K", "5..2"], "--K"),
        (["--K", "2..x"], "--K"),
        (["--L", "0..2"], "--L"),
        (["--lam", "-1"], "--lam"),
        (["--n", "0"], "--n"),
        (["--width", "2", "--K", "2..3"], "--width"),
        (["--workers", "0"], "--workers"),
        (["--method", "torch_gd"], "--method"),
        (["--out-is-file"], "--out"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, extra, name):
    out = tmp_path / "out"
    if extra == ["--out-is-file"]:
        out = tmp_path / "a_file"
        out.write_text("keep me")
        extra = []
    arguments = ["atlas", "--K", "2", "--L", "2", "--width", "4", "--method", "kink_lbfgs",
                 "--out", str(out), "--no-progress"]
    # later options win in argparse
    code = cli.main(arguments + extra)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and lines[0].startswith("error:")
    assert captured.out == ""
    if out.is_file():
        assert out.read_text() == "keep me"
    else:
        assert not out.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ([] if not out.is_file()
                                                                else ["a_file"])


def test_unreachable_scheduler(tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    code = cli.main(["atlas", "--K", "2", "--L", "2", "--width", "4", "--out", str(out),
                     "--method", "kink_lbfgs", "--scheduler", "tcp://127.0.0.1:9",
                     "--scheduler-timeout", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "scheduler" in lines[0] and "tcp://127.0.0.1:9" in lines[0]
    assert not out.exists()


def test_api_errors_name_the_argument(tmp_path):
    cases = [
        (dict(num_classes=[1, 2], num_layers=2), "num_classes"),
        (dict(num_classes=2, num_layers=2, lam=0.0), "lam"),
        (dict(num_classes=2, num_layers=2, width="wide"), "width"),
        (dict(num_classes=3, num_layers=2, width=2), "width"),
        (dict(num_classes=2, num_layers=2, method="newton"), "method"),
        (dict(num_classes=2, num_layers=2, workers=2, scheduler="tcp://x:1"), "scheduler"),
        (dict(num_classes=None, num_layers=2), "num_classes"),
    ]
    for kwargs, name in cases:
        with pytest.raises((ValueError, TypeError), match=name):
            atlas.run_atlas(**kwargs, out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


# --------------------------------------------------------------------------------------------
# The global search
# --------------------------------------------------------------------------------------------


def test_global_method_is_the_default_and_runs(tmp_path):
    from ufm import solvers

    assert "global" in solvers.METHODS and atlas.DEFAULT_METHOD == "global"
    result = atlas.run_atlas(2, [2, 3], width="auto", max_starts=4, patience=2, time_budget=20.0,
                             out=tmp_path)
    assert result.computed == 2 and not result.failed
    for cell in result.cells:
        assert cell.method == "global"
        # K = 2: L_DNC is the minimum; the search starts from the DNC point, so it reaches it
        assert 1.0 - atlas.BASIN_TOLERANCE <= cell.ratio <= 1.0 + 1e-9
        assert cell.basins == len(cell.basin_list) >= 1
        assert all({"loss", "ranks", "count"} <= set(basin) for basin in cell.basin_list)
        # The wider search starts from the narrower best point embedded with zero neurons: the
        # same Φ up to the summation order of the longer sums (a few ulps).
        assert cell.searches[1]["loss"] <= cell.searches[0]["loss"] * (1 + 1e-14)
    config = json.loads(store_rows(tmp_path / "atlas.sqlite")[0][3])
    assert (config["method"], config["max_starts"], config["patience"]) == ("global", 4, 2)


def test_basins_group_like_the_global_method():
    ends = [(1.0, (2, 2)), (1.00005, (2, 2)), (1.00005, (3, 3)), (1.001, (2, 2)),
            (float("nan"), (2, 2))]
    basins = atlas._basins_of(ends, 1e-4)
    assert [(basin["loss"], basin["ranks"], basin["count"]) for basin in basins] == [
        (1.0, [2, 2], 2), (1.00005, [3, 3], 1), (1.001, [2, 2], 1)]


def test_without_output_folder_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = atlas.run_atlas(2, 2, width=4, **CHEAP)
    assert result.paths == {} and list(tmp_path.iterdir()) == []
    cell = result.cells[0]
    assert cell.point == "" and cell.best_loss == pytest.approx(cell.stored_loss, rel=1e-12)
    assert result.to_csv().splitlines()[0] == ",".join(atlas.CSV_COLUMNS)
    json.dumps(result.to_dict(), allow_nan=False)


def test_committed_atlas_points_are_certificates():
    """Every row of docs/atlas/atlas.csv is attained by its stored point, re-evaluated here."""
    folder = REPOSITORY / "docs" / "atlas"
    columns, rows = read_csv(folder / "atlas.csv")
    assert columns == list(atlas.CSV_COLUMNS) and rows
    for row in rows:
        model, parameters, value = atlas.load_point(folder / row["point"])
        assert (model.num_classes, model.num_layers) == (int(row["K"]), int(row["L"]))
        # The same float64 evaluation of Φ as when the table was written.
        assert value == pytest.approx(float(row["best_loss"]), rel=1e-12)
        assert value == pytest.approx(model.objective(parameters).total, rel=1e-15)
        assert float(row["ratio"]) == pytest.approx(value / float(row["dnc_loss"]), rel=1e-12)


# --------------------------------------------------------------------------------------------
# Neighbour starts
# --------------------------------------------------------------------------------------------

# A small global search: the plain searches of the grid, then the neighbour polish (one start
# per width after the neighbour starts, as the documented polish command).
SMALL_GLOBAL = dict(per_class=1, lam=LAM, width="auto", max_starts=3, time_budget=5.0)


def test_neighbour_constructions_keep_the_output(tmp_path):
    rng = np.random.default_rng(0)
    model = atlas.CellConfig(4, 3, 1, LAM, 10, "global", 0, 1, 1.0, None).model(10)
    point = model.random_parameters(rng, 1.0)
    output = model.forward(point).output
    # dropping class c removes column c of the output and row c of Y: the other entries stay
    dropped = atlas._drop_class(point, 1, 2)
    smaller = atlas.CellConfig(3, 3, 1, LAM, 10, "global", 0, 1, 1.0, None).model(10)
    kept = [0, 1, 3]
    # the same products in the same order: equal up to rounding of the matrix products
    np.testing.assert_allclose(smaller.forward(dropped).output, output[np.ix_(kept, kept)],
                               rtol=1e-12, atol=1e-15)
    # adding a copy of class 1: the old classes keep their outputs exactly
    added = atlas._add_class(point, 1, 1, np.random.default_rng(1))
    larger = atlas.CellConfig(5, 3, 1, LAM, 10, "global", 0, 1, 1.0, None).model(10)
    np.testing.assert_allclose(larger.forward(added).output[:4, :4], output,
                               rtol=1e-12, atol=1e-15)
    # inserting a layer: σ(D·H_l) = H_l for H_l ≥ 0, then a rescaling of product 1 (positive
    # homogeneity); the output agrees to rounding, and the balanced penalty is at most the
    # penalty of the unbalanced point with D (AM–GM), so Φ(start) ≤ Φ_L(point) + (λ/2)·‖D‖².
    deeper = atlas.CellConfig(4, 4, 1, LAM, 10, "global", 0, 1, 1.0, None).model(10)
    for position in (1, 2):
        inserted = atlas._insert_layer(model, point, position)
        np.testing.assert_allclose(deeper.forward(inserted).output, output, rtol=1e-10,
                                   atol=1e-14)
        active = int(np.sum(np.max(model.forward(point).post_activations[position],
                                   axis=1) > 0))
        bound = model.objective(point).total + LAM / 2 * active
        assert deeper.objective(inserted).total <= bound * (1 + 1e-12)


def test_neighbour_starts_are_used_recorded_and_never_raise_a_cell(tmp_path, capsys):
    store = tmp_path / "store.sqlite"
    plain = atlas.run_atlas("2..4", "2..3", store=store, **SMALL_GLOBAL)
    assert plain.computed == 6
    before = {(cell.num_classes, cell.num_layers): cell.best_loss for cell in plain.cells}
    plain_keys = {cell.config_key for cell in plain.cells}
    # the polish through the command line (max_starts 1: only the first start of each width)
    arguments = ["atlas", "--K", "2..4", "--L", "2..3", "--lam", str(LAM), "--max-starts", "1",
                 "--time-budget", "5", "--neighbours", "--store", str(store), "--out",
                 str(tmp_path / "out"), "--no-progress"]
    assert cli.main(arguments) == 0
    assert "6 computed, 0 from the store" in capsys.readouterr().out
    rows = {(row[1], row[2]): (row[0], json.loads(row[3]), json.loads(row[4]))
            for row in store_rows(store) if json.loads(row[3]).get("neighbours")}
    assert len(rows) == 6 and not plain_keys & {key for key, _, _ in rows.values()}
    # in grid order (K, then L), each cell took the best stored points of the neighbours that
    # exist: (K + 1, L), (K − 1, L) and (K, L − 1) where stored; K = 1 and L = 1 are skipped
    expected = {(2, 2): {(3, 2)}, (2, 3): {(3, 3), (2, 2)}, (3, 2): {(4, 2), (2, 2)},
                (3, 3): {(4, 3), (2, 3), (3, 2)}, (4, 2): {(3, 2)}, (4, 3): {(3, 3), (4, 2)}}
    for cell, (key, config, result) in rows.items():
        record = result["neighbours"]
        assert {tuple(item["cell"]) for item in record["cells"]} == expected[cell]
        kinds = {"drop": (cell[0] + 1, cell[1]), "add": (cell[0] - 1, cell[1]),
                 "insert": (cell[0], cell[1] - 1)}
        starts = record["starts"]
        for start in starts:
            assert tuple(start["cell"]) == kinds[start["kind"]]
            # a local run never keeps an end above its start
            assert start["loss"] <= start["start_loss"]
        for kind in kinds:
            count = sum(start["kind"] == kind for start in starts)
            assert count <= atlas.NEIGHBOUR_STARTS_PER_KIND
        # one start per dropped class up to the limit: K + 1 classes to drop
        if (cell[0] + 1, cell[1]) in expected[cell]:
            assert sum(start["kind"] == "drop" for start in starts) == min(
                cell[0] + 1, atlas.NEIGHBOUR_STARTS_PER_KIND)
        best = min(starts, key=lambda start: start["loss"])
        assert record["best_start"] == best
        # the search starts from the best polished neighbour point and never ends above it
        # (up to the summation order of the wider model: a few ulps)
        assert result["searches"][-1]["loss"] <= best["loss"] * (1 + 1e-14)
        assert result["loss"] <= result["searches"][-1]["loss"]
        # the neighbour search is a search of the same cell with another key
        assert config["neighbours"] is True and key != atlas.CellConfig(
            **{**config, "neighbours": False}).key
    # the cells never rise: each shows the lowest of its plain and neighbour searches
    result = atlas.run_atlas("2..4", "2..3", store=store, neighbours=True,
                             **dict(SMALL_GLOBAL, max_starts=1))
    assert (result.computed, result.reused) == (0, 6)  # resumed: nothing recomputed
    for cell in result.cells:
        position = (cell.num_classes, cell.num_layers)
        assert cell.search_count == 2
        assert cell.best_loss <= before[position]
        assert cell.best_loss == min(search["best_loss"] for search in cell.stored_searches)
        assert {search["neighbours"] for search in cell.stored_searches} == {False, True}
        # a kept neighbour search (ties go to the run's configuration) has no flag of its own:
        # the narrower search of the polish is one start; the cell shows the plain search's
        plain_search = next(search for search in cell.stored_searches
                            if not search["neighbours"])
        if cell.kept_config.get("neighbours"):
            assert cell.wider_lower == plain_search["wider_lower"]
    assert any(cell.kept_config.get("neighbours") for cell in result.cells)
    # the plain configuration still resumes with its own keys and shows the same table
    again = atlas.run_atlas("2..4", "2..3", store=store, **SMALL_GLOBAL)
    assert (again.computed, again.reused) == (0, 6)
    assert [cell.best_loss for cell in again.cells] == [cell.best_loss for cell in result.cells]


def test_missing_neighbours_are_skipped_and_wider_neighbours_widen_the_search(tmp_path):
    store = tmp_path / "store.sqlite"
    # no neighbour in the store: the search runs as the plain one, with no neighbour start
    alone = atlas.run_atlas(3, 3, store=store, neighbours=True, **SMALL_GLOBAL)
    assert alone.computed == 1 and not alone.failed
    result = json.loads(store_rows(store)[0][4])
    assert result["neighbours"]["cells"] == [] and result["neighbours"]["starts"] == []
    assert result["neighbours"]["best_start"] is None
    assert [search["width"] for search in result["searches"]] == list(atlas.auto_widths(3))
    # a (K + 1)-class neighbour wider than w + K: the wider search runs at its width
    config = atlas.CellConfig(2, 2, 1, LAM, "auto", "global", 0, 1, 5.0, None, 3, True)
    neighbour_model = atlas.CellConfig(3, 2, 1, LAM, 13, "global", 0, 1, 1.0, None).model(15)
    point = neighbour_model.random_parameters(np.random.default_rng(0), 1.0)
    value = neighbour_model.objective(point).total
    payload = atlas.compute_cell(config.to_dict(), [
        {"cell": [3, 2], "key": "k32", "loss": value,
         "point": atlas._point_bytes(neighbour_model, point, value, {})}])
    searched = payload["result"]
    assert [search["width"] for search in searched["searches"]] == [10, 15]
    assert [item["cell"] for item in searched["neighbours"]["cells"]] == [[3, 2]]
    assert len(searched["neighbours"]["starts"]) == min(3, atlas.NEIGHBOUR_STARTS_PER_KIND)


def test_readme_table_is_the_committed_atlas():
    """The README's atlas table shows docs/atlas/atlas.csv: per cell best/L_DNC to 4 decimals,
    in bold exactly where it is below 1 at that precision, RANK M̃_L (the last entry of ``ranks``)
    for bold cells, and L_SRG/L_DNC to 3 decimals where a construction exists."""
    import csv
    import re

    root = Path(__file__).resolve().parents[1]
    rows = {}
    with open(root / "docs" / "atlas" / "atlas.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows[int(row["K"]), int(row["L"])] = row
    text = (root / "README.md").read_text(encoding="utf-8")
    header = re.search(r"^\| K \|((?: L = \d+ \|)+)\n\|[-:| ]+\|\n", text, re.MULTILINE)
    assert header, "README: the atlas table header '| K | L = 2 | ...' is missing"
    layers = [int(value) for value in re.findall(r"L = (\d+)", header.group(1))]
    cell_pattern = re.compile(
        r"^(\*\*)?(\d\.\d{4})(?:\*\*)?(?: \((\d+)\))?(?: · (\d\.\d{3}))?$"
    )
    seen = 0
    for line in text[header.end():].splitlines():
        if not line.startswith("| "):
            break
        fields = [field.strip() for field in line.strip("|").split("|")]
        classes = int(fields[0])
        for layer, field in zip(layers, fields[1:]):
            row = rows[classes, layer]
            match = cell_pattern.match(field)
            assert match, f"K = {classes}, L = {layer}: cannot read {field!r}"
            bold, ratio, rank, srg = match.groups()
            expected = float(row["ratio"])
            assert ratio == f"{expected:.4f}", (classes, layer, field, expected)
            assert bool(bold) == (f"{expected:.4f}" < "1.0000"), (classes, layer, field)
            if rank is not None:
                assert int(rank) == int(row["ranks"].split(";")[-1]), (classes, layer, field)
            if row["srg_loss"]:
                assert srg == f"{float(row['srg_loss']) / float(row['dnc_loss']):.3f}", (
                    classes, layer, field)
            else:
                assert srg is None, (classes, layer, field)
            seen += 1
    assert seen == len(rows), f"README table shows {seen} of {len(rows)} atlas cells"
