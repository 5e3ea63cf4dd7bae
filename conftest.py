"""Shared pytest set-up: one torch thread per process and seeded hypothesis profiles."""

from __future__ import annotations

import os

# Two shared cores: one BLAS/OpenMP thread per process, set before numpy or torch load their
# thread pools (OpenBLAS and torch threads otherwise oversubscribe the cores many times over).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

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
