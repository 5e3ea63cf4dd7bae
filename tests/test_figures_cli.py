"""The figures command line records each figure's wall time beside the figures."""

import csv

from figures import cli


def test_timings_are_written(tmp_path, capsys):
    assert cli.main(["sukenik2024_ratio", "--quick", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "timings.csv")))
    assert [row["figure"] for row in rows] == ["sukenik2024_ratio"]
    assert rows[0]["mode"] == "quick" and float(rows[0]["seconds"]) > 0
    assert not list(tmp_path.glob("*.tmp"))


def test_theory_vs_practice_can_be_made_twice_into_the_same_folder(tmp_path, monkeypatch):
    """A second run overwrites the figure's own training folder instead of refusing it."""
    from figures import theory_vs_practice as figure

    tiny = dict(figure.settings(True))
    tiny.update({"epochs": 20, "per_class": 3, "nonlinear_widths": [32, 16], "linear_width": 16,
                 "log_points": 2})
    monkeypatch.setattr(figure, "settings", lambda quick: tiny)
    first = figure.make(tmp_path, quick=True)
    second = figure.make(tmp_path, quick=True)
    assert [p.name for p in first] == [p.name for p in second]
