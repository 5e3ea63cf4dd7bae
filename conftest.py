"""Shared pytest set-up: one torch thread per process and seeded hypothesis profiles."""

from __future__ import annotations

import os

# Two shared cores: one BLAS/OpenMP thread per process, set before numpy or torch load their
# thread pools (OpenBLAS and torch threads otherwise oversubscribe the cores many times over).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

try:  # torch is a dependency, but keep collection working if it is broken
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

# Deterministic example generation so that a CI failure reproduces locally; no deadline because
# two shared cores make timings noisy. "thorough" raises the count: pytest --hypothesis-profile=thorough
settings.register_profile(
    "default",
    derandomize=True,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("UFM_HYPOTHESIS_PROFILE", "default"))


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_figure_files(paths, directory, name: str, *, ordered: bool = False, quick=None):
    """The PNG, CSV and JSON of figure ``name`` in ``directory`` (in that order when
    ``ordered``); the PNG a real image (> 20 kB), the CSV non-empty, the JSON naming the figure
    (and its ``quick`` flag when given). Returns (CSV rows, JSON data)."""
    import csv
    import json
    from pathlib import Path

    paths = [Path(path) for path in paths]
    expected = [Path(directory) / f"{name}.{ext}" for ext in ("png", "csv", "json")]
    if ordered:
        assert paths == expected
    else:
        assert set(paths) == set(expected) and len(paths) == 3
    png, table, record = expected
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000
    with table.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    data = json.loads(record.read_text(encoding="utf-8"))
    assert data["figure"] == name
    if quick is not None:
        assert data["quick"] is quick
    return rows, data


@pytest.fixture
def figure_files():
    """:func:`_check_figure_files`, the shared check of a figure's three output files."""
    return _check_figure_files
