"""Property tests of ufm.metrics: invariance of every §3 metric under rotations of feature space,
global scaling, consistent class relabelling and sample permutation.

Tolerance: the metrics are O(1) quantities (ratios and normalized distances) of seeded Gaussian
data; a transformation changes only the rounding, by at most ~κ²·u·(problem size) relative with
κ the condition number of the class means (≲ 1e3 on these draws), hence rel 1e-9. Values whose
exact value is 0 (NC3.span when span(M) = R^d, NC2.etf for K = 2) are rounding residues: abs 1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ufm import metrics as m

RELATIVE, ABSOLUTE = 1e-9, 1e-12  # see module docstring


@st.composite
def problems(draw):
    k = draw(st.integers(2, 4))
    d = draw(st.integers(1, 6))
    counts = draw(st.lists(st.integers(2, 5), min_size=k, max_size=k))
    seed = draw(st.integers(0, 2**32 - 1))
    noise = draw(st.sampled_from([0.05, 0.5]))
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(k), counts))
    means = rng.standard_normal((d, k)) + 0.3
    features = means[:, labels] + noise * rng.standard_normal((d, labels.size))
    weights = means.T + 0.5 * rng.standard_normal((k, d))
    bias = 0.2 * rng.standard_normal(k)
    return features, labels, weights, bias, rng


def assert_same_metrics(first, second, skip=()):
    assert first.keys() == second.keys()
    for key, value in first.items():
        if key in skip:
            continue
        other = second[key]
        if value is None or (isinstance(value, float) and math.isinf(value)):
            assert other == value, key
        else:
            assert other == pytest.approx(value, rel=RELATIVE, abs=ABSOLUTE), key


@given(problems(), st.booleans())
def test_invariant_under_rotation(problem, with_bias):
    features, labels, weights, bias, rng = problem
    bias = bias if with_bias else None
    rotation, _ = np.linalg.qr(rng.standard_normal((features.shape[0],) * 2))
    before = m.all_metrics(features, labels, weights, bias)
    after = m.all_metrics(rotation @ features, labels, weights @ rotation.T, bias)
    assert_same_metrics(before, after, skip=("NEG",))  # NEG depends on the coordinates (ReLU)


@given(problems(), st.floats(1e-3, 1e3))
def test_invariant_under_global_scaling(problem, scale):
    features, labels, weights, bias, _ = problem
    before = m.all_metrics(features, labels, weights, bias)
    # scaling the bias with the features keeps argmax(W z + b); ERR measures the raw fit
    after = m.all_metrics(scale * features, labels, weights, scale * bias)
    assert_same_metrics(before, after, skip=("ERR", "ERR.data"))


@given(problems(), st.randoms(use_true_random=False))
def test_invariant_under_class_relabelling(problem, random):
    features, labels, weights, bias, _ = problem
    k = weights.shape[0]
    permutation = np.array(random.sample(range(k), k))  # class c becomes permutation[c]
    new_weights, new_bias = np.empty_like(weights), np.empty_like(bias)
    new_weights[permutation], new_bias[permutation] = weights, bias
    before = m.all_metrics(features, labels, weights, bias)
    after = m.all_metrics(features, permutation[labels], new_weights, new_bias)
    assert_same_metrics(before, after)
    report_before = m.layer_report([features], labels, [weights])
    report_after = m.layer_report([features], permutation[labels], [new_weights])
    assert_same_metrics(report_before.rows[0].metrics, report_after.rows[0].metrics)


@given(problems(), st.randoms(use_true_random=False))
def test_invariant_under_sample_permutation(problem, random):
    features, labels, weights, bias, _ = problem
    order = np.array(random.sample(range(labels.size), labels.size))
    before = m.all_metrics(features, labels, weights, bias)
    after = m.all_metrics(features[:, order], labels[order], weights, bias)
    assert_same_metrics(before, after)


@given(problems())
def test_ranges_and_identities(problem):
    features, labels, weights, bias, _ = problem
    values = m.all_metrics(features, labels, weights, bias)
    stats = m.class_statistics(features, labels)
    # NC1.wt = NC1.tr/(1 + NC1.tr) since Σ_T = Σ_W + Σ_B
    tr = values["NC1.tr"]
    assert values["NC1.wt"] == pytest.approx(tr / (1 + tr), rel=RELATIVE)
    assert 0 <= values["NC1.wt"] <= 1 and 0 <= values["NC3.span"] <= 1
    assert 0 <= values["NC4.ncc"] <= 1 and -1 <= values["NC3.cos_min"] <= values["NC3.cos"] <= 1
    assert 0 <= values["NC2.orth"] <= 2 and 0 <= values["NC3.dual"] <= 2
    assert values["NC2.kappa"] >= 1 and values["NC2.kappa_nz"] >= 1
    if features.shape[0] < weights.shape[0]:
        assert values["NC2.kappa"] == math.inf  # rank M ≤ d < K
    # NC1.pinv equals the d×d pseudo-inverse formula when Σ_B is full rank on its range
    d, k = features.shape[0], weights.shape[0]
    if d <= k - 1:  # Σ_B invertible (rank d)
        direct = np.trace(stats.within_covariance @ np.linalg.inv(stats.between_covariance)) / k
        assert values["NC1.pinv"] == pytest.approx(direct, rel=1e-8)
