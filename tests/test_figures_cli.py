"""The figures command line records each figure's wall time beside the figures."""

import csv

from figures import cli


def test_timings_are_written(tmp_path, capsys):
    assert cli.main(["sukenik2024_ratio", "--quick", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "timings.csv")))
    assert [row["figure"] for row in rows] == ["sukenik2024_ratio"]
    assert rows[0]["mode"] == "quick" and float(rows[0]["seconds"]) > 0
    assert not list(tmp_path.glob("*.tmp"))
