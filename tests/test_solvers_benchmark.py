"""benchmarks/solvers.py --global: GD once per seed against the global search, on budgets small
enough for a test; the summary's shares and medians; the argument checks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "solvers_benchmark", ROOT / "benchmarks" / "solvers.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["solvers_benchmark"] = module
    spec.loader.exec_module(module)
    return module


def test_global_seed_row_is_consistent(bench):
    model = bench.build_model()
    row = bench.benchmark_global_seed(model, seed=3, gd_steps=300, max_starts=2)
    assert row["seed"] == 3 and row["gd_steps"] == 300
    assert row["starts"] == 2 and row["stop_reason"] == "max_starts"
    assert 1 <= row["basins"] <= 2
    assert len(row["ranks"]) == model.num_layers + 1 and len(row["gd_ranks"]) == 5
    # After 300 GD steps the run is far from a minimum: two polished starts end lower.
    assert row["final"] < row["gd_loss"]
    # 0: a construction the search starts from (DNC point, SRG family) is already below GD's end
    assert row["reach_seconds"] is not None and row["reach_starts"] in (0, 1, 2)
    assert row["reach_seconds"] <= row["total_seconds"]
    assert row["speedup"] == pytest.approx(row["gd_seconds"] / row["reach_seconds"])
    assert row["within_gd_time"] == (row["reach_seconds"] <= row["gd_seconds"])


def test_global_summary_counts_goals(bench):
    def row(seed, gd_loss, final, reach, gd_seconds=6.0):
        return {
            "seed": seed, "gd_steps": 100_000, "gd_loss": gd_loss, "gd_seconds": gd_seconds,
            "gd_stop": "max_iterations", "gd_ranks": (6, 6, 6, 10, 6),
            "at_gd_time": final if reach is not None and reach <= gd_seconds else None,
            "within_gd_time": reach is not None and reach <= gd_seconds,
            "reach_seconds": reach, "reach_starts": None if reach is None else 2,
            "speedup": 0.0 if reach is None else gd_seconds / reach, "final": final,
            "ranks": (4, 4, 4, 10, 4), "found_by": "narrow", "basins": 7, "starts": 30,
            "total_seconds": 40.0, "stop_reason": "patience",
        }

    rows = [
        row(0, 0.085, 0.0805, 0.2),
        row(1, 0.084, 0.0812, 0.5),
        row(2, 0.080, 0.0810, None),
        row(3, 0.083, bench.GD_LOWEST - 5e-7, 0.1, gd_seconds=3.0),
    ]
    text = bench.global_markdown(rows, reference=0.099)
    assert text.count("\n| ") == 4  # one row per seed
    assert "within T_GD: 3 of 4 seeds (75%; goal 100%)" in text
    assert (
        "below 0.0809113983 (the lowest minimum GD has reached on this model): 2 of 4 seeds (goal: "
        "most); below it by more than 1e-06: 1; within ±1e-06 of it: 1; below GD's own final − "
        "1e-06: 3 of 4" in text
    )
    # speed-ups 30×, 12×, 0×, 30×: median 21×, two seeds ≥ 20×
    assert "median 21.0×, min 0.0×, max 30.0×; ≥ 20× (the goal) on 2 of 4 seeds" in text
    assert "| 2 | 0.0800000 |" in text and "never | — | 0× |" in text
    assert "| -4.1e-04 |" in text and "| -5.0e-07 |" in text


def test_command_line_global_mode_prints_table_and_summary(bench, capsys):
    assert bench.main(["--global", "--quick", "--max-starts", "1", "--seeds", "4"]) == 0
    output = capsys.readouterr().out
    assert "| 4 | " in output
    assert "(a) global best ≤ GD final + 1e-06 within T_GD:" in output
    assert "20000 steps" in output


@pytest.mark.parametrize(
    "arguments",
    [
        ["--global", "--methods", "gd"],
        ["--global", "--warmup", "10"],
        ["--global", "--smoothing"],
        ["--max-starts", "3"],
        ["--patience", "3"],
        ["--global", "--max-starts", "0"],
        ["--global", "--seeds", "-1"],
    ],
)
def test_command_line_rejects_mixed_or_invalid_options(bench, arguments, capsys):
    with pytest.raises(SystemExit) as raised:
        bench.main(arguments)
    assert raised.value.code == 2
    assert "must" in capsys.readouterr().err
