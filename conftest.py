"""Shared pytest set-up: one torch thread per process and seeded hypothesis profiles."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

os.environ.setdefault("MPLBACKEND", "Agg")

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
