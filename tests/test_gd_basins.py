"""benchmarks/gd_basins.py: the end points of GD at several steps and of kink_lbfgs, polished to
their minima, the same-minimum counts and the picture, on budgets small enough for a test."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gd_basins():
    spec = importlib.util.spec_from_file_location("gd_basins", ROOT / "benchmarks" / "gd_basins.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gd_basins"] = module
    spec.loader.exec_module(module)
    return module


def test_end_points_follow_the_same_flow_time_and_polishing_never_raises_the_loss(gd_basins):
    model = gd_basins.build_model()
    ends = gd_basins.seed_end_points(
        model, seed=3, steps=(0.5, 1.0), flow_time=100.0, polish_iterations=300, kink_iterations=60
    )
    assert [end.method for end in ends] == ["gd η=0.5", "gd η=1", "kink_lbfgs"]
    for end in ends:
        assert end.seed == 3
        # L-BFGS-B accepts only steps that decrease Φ (its line search); equality when it cannot.
        assert end.polished_loss <= end.final_loss
        assert len(end.ranks) == model.num_layers + 1
        assert all(1 <= rank <= 10 for rank in end.ranks)
    # After 200 and 100 GD steps the run is far from stationary: polishing must lower Φ a lot
    # (relative 1e-3 is far below the drop of any unconverged start, far above rounding).
    assert all(end.polished_loss < end.final_loss * (1 - 1e-3) for end in ends[:2])


def test_summary_counts_same_lower_and_higher_minima(gd_basins):
    end = gd_basins.EndPoint
    papers = "gd η=0.5"
    ends = [
        end(0, papers, 0.09, 0.0850, (5,), 1.0),
        end(0, "kink_lbfgs", 0.09, 0.0850 + 0.5 * gd_basins.SAME_MINIMUM, (5,), 0.1),
        end(1, papers, 0.09, 0.0850, (5,), 1.0),
        end(1, "kink_lbfgs", 0.09, 0.0840, (4,), 0.1),
        end(2, papers, 0.09, 0.0850, (5,), 1.0),
        end(2, "kink_lbfgs", 0.09, 0.0860, (6,), 0.1),
    ]
    text = gd_basins.summary(ends, reference=0.1)
    assert "kink_lbfgs: same minimum as gd η=0.5 on 1 of 3 seeds, a lower one on 1, a higher one on 1." in text
    assert "kink_lbfgs: polished minima 0.0840000–0.0860000" in text
    assert text.count("| kink_lbfgs |") == 3


def test_command_line_writes_table_and_plot(gd_basins, tmp_path, capsys):
    path = tmp_path / "minima.png"
    code = gd_basins.main(
        [
            "--seeds", "0", "--steps", "0.5", "--flow-time", "20",
            "--polish-iterations", "50", "--kink-iterations", "0", "--plot", str(path),
        ]
    )
    assert code == 0
    output = capsys.readouterr().out
    assert "| 0 | gd η=0.5 |" in output and "kink_lbfgs" not in output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    "arguments", [["--flow-time", "0"], ["--steps", "0.5", "-1"], ["--seeds", "-1"]]
)
def test_command_line_rejects_nonpositive_steps_flow_time_and_negative_seeds(gd_basins, arguments, capsys):
    with pytest.raises(SystemExit) as raised:
        gd_basins.main(arguments)
    assert raised.value.code == 2
    assert "must" in capsys.readouterr().err
