"""Bad input to every public API family: the documented exception type (ValueError or TypeError),
a message that names the argument, and no memory taken before the check.

The command lines have their own batteries (tests/test_cli_reliability.py,
tests/test_fullnet_reliability.py); this file covers the Python API a user calls directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import ufm
from ufm import atlas, conventions, optima
from ufm.models import DeepUFM, UFM

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(6, 12))
LABELS = np.arange(12) % 3
TORCH = {"batch_size": 128, "num_classes": 10}  # a torch training set-up for the conversions


def good_dufm():
    return DeepUFM(3, 2, (4, 4, 4), 0.01, 0.01)


CASES = [
    # models: K, widths, λ, flags
    ("models", lambda: UFM(1, 2, 3, 0.01, 0.01), ValueError, "num_classes"),
    ("models", lambda: UFM(3, 0, 3, 0.01, 0.01), ValueError, "per_class"),
    ("models", lambda: UFM(3, 2, 3, -0.01, 0.01), ValueError, "lam_w"),
    ("models", lambda: UFM(3, 2, 3, 0.01, math.nan), ValueError, "lam_h"),
    ("models", lambda: DeepUFM(3, 2, (4, 0, 4), 0.01, 0.01), ValueError, "widths"),
    ("models", lambda: DeepUFM(3, 2, (4, 4), 0.01, (0.01, 0.01, 0.01)), ValueError, "lam_w"),
    ("models", lambda: DeepUFM(3, 2, (4, 4), 0.01, 0.01, nonneg_H1="yes"), TypeError, "nonneg_H1"),
    # predicted optima
    ("optima", lambda: optima.predict_dufm(1, 3, 1, 0.01, 0.01), ValueError, "num_classes"),
    ("optima", lambda: optima.predict_dufm(3, 0, 1, 0.01, 0.01), ValueError, "num_layers"),
    ("optima", lambda: optima.predict_dufm(3, 2, 1, -1.0, 0.01), ValueError, "lam_h"),
    ("optima", lambda: optima.predict_ufm(3, 2, 0.01, 0.01, width=0), ValueError, "width"),
    ("optima", lambda: optima.predict("not a model"), TypeError, "str"),
    # solvers
    ("solvers", lambda: ufm.solve(good_dufm(), "newton"), ValueError, "method"),
    ("solvers", lambda: ufm.solve(good_dufm(), "gd", lr=0.0), ValueError, "lr"),
    ("solvers", lambda: ufm.solve(good_dufm(), "gd", max_iterations=0), ValueError,
     "max_iterations"),
    ("solvers", lambda: ufm.solve(good_dufm(), "gd", tolerance=-1.0), ValueError, "tolerance"),
    ("solvers", lambda: ufm.solve(good_dufm(), "global", workers=0), ValueError, "workers"),
    ("solvers", lambda: ufm.solve(good_dufm(), initial=np.zeros(3)), TypeError, "initial"),
    ("solvers", lambda: ufm.solve("model"), TypeError, "model"),
    ("solvers", lambda: ufm.solve_with_restarts(good_dufm(), []), ValueError, "seeds"),
    # metrics
    ("metrics", lambda: ufm.all_metrics(np.where(np.eye(6, 12) > 0, np.nan, FEATURES), LABELS),
     ValueError, "features"),
    ("metrics", lambda: ufm.all_metrics(FEATURES, LABELS[:-1]), ValueError, "labels"),
    ("metrics", lambda: ufm.all_metrics(FEATURES, LABELS + 7), ValueError, "labels"),
    ("metrics", lambda: ufm.all_metrics(FEATURES, np.zeros(12, dtype=int)), ValueError,
     "num_classes"),
    ("metrics", lambda: ufm.all_metrics(FEATURES, LABELS.astype(float)), TypeError, "labels"),
    ("metrics", lambda: ufm.all_metrics(FEATURES, LABELS, weights=np.ones((3, 5))), ValueError,
     "weights"),
    ("metrics", lambda: ufm.nc1_pseudo_inverse(FEATURES, np.r_[LABELS[:-1], 10**9]), ValueError,
     "labels"),
    # streaming accumulators
    ("streaming", lambda: ufm.ClassStatisticsAccumulator(1), ValueError, "num_classes"),
    # loss conventions
    ("conventions", lambda: conventions.to_paper_convention(-1e-3, **TORCH), ValueError,
     "weight_decay"),
    ("conventions", lambda: conventions.to_paper_convention(1e-3, 0.0, **TORCH), ValueError,
     "learning_rate"),
    ("conventions", lambda: conventions.to_paper_convention(1e-3, reduction="max", **TORCH),
     ValueError, "reduction"),
    ("conventions", lambda: conventions.to_paper_convention(1e-3, batch_size=0, num_classes=10),
     ValueError, "batch_size"),
    # atlas
    ("atlas", lambda: atlas.run_atlas([1, 2], [2]), ValueError, "num_classes"),
    ("atlas", lambda: atlas.run_atlas([2], [2], lam=-1.0), ValueError, "lam"),
    ("atlas", lambda: atlas.load_point("/nonexistent/K2_L2.npz"), FileNotFoundError, "K2_L2"),
]


@pytest.mark.parametrize("family, call, error, name", CASES,
                         ids=[f"{case[0]}-{case[3]}-{index}" for index, case in enumerate(CASES)])
def test_bad_input_is_named(family, call, error, name):
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    assert name in message, f"{family}: the message does not name {name!r}: {message}"
    assert "\n" not in message.strip()  # one line


def test_every_public_family_is_covered():
    families = {case[0] for case in CASES}
    assert {"models", "optima", "solvers", "metrics", "streaming", "conventions", "atlas"} <= families


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"layers": ["fc9"]}, "fc9"),
        ({"layers": ["fc1"], "num_classes": 1}, "num_classes"),
    ],
)
def test_collapse_report_bad_input_is_named(kwargs, name):
    torch.manual_seed(0)
    loader = [(torch.randn(6, 4), torch.arange(6) % 3)]
    options = {"num_classes": 3, **kwargs}
    with pytest.raises((ValueError, TypeError)) as raised:
        ufm.collapse_report(_Tiny(), loader, **options)
    assert name in str(raised.value)
