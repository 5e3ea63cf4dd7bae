"""Tests of the metrics computed without the d×d within-class scatter.

From ``(features, labels)`` the NC1 traces, NC2 and NC3 use one O(N d) pass, NC1.pinv a second
O(N d K) pass (S_W on the between-class directions); these must equal the metrics of the one-pass
d×d scatter statistics. Tolerance 1e-12 relative: both routes are float64 sums of the same N
products (rounding a few units of u = 2.2e-16 times the number of summands) followed by the same
O(K³) dense algebra on the class means, on data with isotropic within-class noise (no direction of
S_W is small against the others).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ufm import metrics as m
from ufm.metrics import neg as metrics_neg
from ufm import streaming

SAME = 1e-12  # see module docstring

NC_METRICS = {
    "NC1.tr_unc": m.nc1_trace_ratio_uncentered,
    "NC1.tr": m.nc1_trace_ratio,
    "NC1.pinv": m.nc1_pseudo_inverse,
    "NC1.wt": m.nc1_within_total,
    "NC1.cdnv": m.nc1_class_distance_normalized_variance,
    "NC2.kappa": m.nc2_condition_number,
    "NC2.kappa_nz": m.nc2_condition_number_nonzero,
    "NC2.orth": m.nc2_orthogonal_frame_distance,
    "NC2.etf": m.nc2_simplex_etf_distance,
}


def _problem(seed, counts, d, mean_scale=1.0, noise=0.5, offset=0.0):
    rng = np.random.default_rng(seed)
    k = len(counts)
    labels = rng.permutation(np.repeat(np.arange(k), counts))
    means = offset + mean_scale * rng.standard_normal((d, k))
    features = means[:, labels] + noise * rng.standard_normal((d, labels.size))
    weights = means.T + 0.3 * rng.standard_normal((k, d))
    return features, labels, weights


def _weighted(weights):
    return {
        "NC3.cos": lambda f, y=None: m.nc3_cosine_alignment(f, y, weights=weights).mean,
        "NC3.cos_c": lambda f, y=None: m.nc3_cosine_alignment(
            f, y, weights=weights, center=True
        ).minimum,
        "NC3.dual": lambda f, y=None: m.nc3_self_duality_distance(f, y, weights=weights),
        "NC3.span": lambda f, y=None: m.nc3_span_residual(f, y, weights=weights),
    }


def assert_fast_equals_scatter(features, labels, weights=None, tolerance=SAME, **pinv_options):
    scatter = m.class_statistics(features, labels, within="scatter")
    projected = m.class_statistics(features, labels, within="projection")
    functions = dict(NC_METRICS)
    if weights is not None:
        functions.update(_weighted(weights))
    for key, function in functions.items():
        expected = function(scatter)
        for got in (function(features, labels), function(projected)):
            if math.isinf(expected):
                assert got == expected, key
            else:
                assert got == pytest.approx(expected, rel=tolerance, abs=1e-300), key
    for options in ({"normalize_by_K": False}, *([pinv_options] if pinv_options else [])):
        expected = m.nc1_pseudo_inverse(scatter, **options)
        assert m.nc1_pseudo_inverse(features, labels, **options) == pytest.approx(
            expected, rel=tolerance
        )
        assert m.nc1_pseudo_inverse(projected, **options) == pytest.approx(expected, rel=tolerance)


@pytest.mark.parametrize(
    "seed, counts, d",
    [
        (0, [40] * 10, 64),  # balanced, K = 10
        (1, [3, 50, 7, 20, 9], 40),  # unbalanced
        (2, [2, 2, 2], 8),  # the fewest samples the CDNV accepts
        (3, [30, 5], 3),  # K = 2
        (4, [20] * 6, 4),  # d < K − 1 (the projection is all of R^d)
    ],
)
def test_fast_path_equals_scatter_path(seed, counts, d):
    features, labels, weights = _problem(seed, counts, d)
    assert_fast_equals_scatter(features, labels, weights, rtol=1e-3)


def test_fast_path_at_strong_collapse():
    # NC1.pinv ≈ 1e-9 on an offset of 1e3: a within-class spread of 1e-4 on features of norm ~6e3.
    counts, d = [60, 80, 70, 90], 32
    features, labels, weights = _problem(5, counts, d, noise=1e-4, offset=1e3)
    value = m.nc1_pseudo_inverse(features, labels)
    assert 1e-10 < value < 1e-8
    assert_fast_equals_scatter(features, labels, weights)
    # and both equal the float64 two-pass reference with exact centring and no SVD: with
    # A = MQ = Q̃R (rank K − 1), (1/K)tr(Σ_W Σ_B^†) = tr(R^{-1} Q̃ᵀΣ_WQ̃ R^{-ᵀ})
    k = len(counts)
    means = np.stack([features[:, labels == c].mean(axis=1) for c in range(k)], axis=1)
    centred = features - means[:, labels]
    orthonormal, upper = np.linalg.qr(means @ m._helmert_basis(k))
    projected = np.linalg.solve(upper, orthonormal.T @ centred)  # R^{-1}Q̃ᵀ(z − μ_y)
    reference = float(np.sum(projected**2)) / labels.size
    assert value == pytest.approx(reference, rel=1e-12)


def test_fast_path_with_rank_deficient_between_class_scatter():
    # Class means on a line through an offset (rank M̄ = 1), each class made of pairs μ_c ± v so
    # the means are exact up to rounding: Σ_B has one direction; both routes keep only it.
    k, d, n = 4, 9, 15
    rng = np.random.default_rng(6)
    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    means = 3.0 + np.outer(direction, np.arange(k, dtype=float))
    spread = 0.1 * rng.standard_normal((d, k, n))
    features = np.concatenate(
        [np.hstack([means[:, [c]] + spread[:, c], means[:, [c]] - spread[:, c]]) for c in range(k)],
        axis=1,
    )
    labels = np.repeat(np.arange(k), 2 * n)
    order = rng.permutation(labels.size)  # classes interleaved
    features, labels = features[:, order], labels[order]
    stats = m.class_statistics(features, labels, within="scatter")
    values = np.linalg.svd(stats.means @ m._helmert_basis(k), compute_uv=False)
    assert values[1] < 1e-13 * values[0]  # rank 1 up to rounding
    assert_fast_equals_scatter(features, labels, rtol=1e-6)
    # a cutoff below rounding keeps the K − 2 rounding-level directions too (weights 1/s² ≈ 1e30):
    # both routes see the same directions, so they still agree
    assert_fast_equals_scatter(features, labels, rtol=1e-17)
    unit = np.linalg.svd(stats.centered_means)[0][:, 0]
    expected = unit @ stats.within_covariance @ unit / np.sum(stats.centered_means**2)
    assert m.nc1_pseudo_inverse(features, labels) == pytest.approx(expected, rel=1e-9)


def test_torch_cpu_tensors_on_the_fast_path():
    torch = pytest.importorskip("torch")
    features, labels, weights = _problem(7, [25, 35, 30, 40], 24)
    tensor32 = torch.as_tensor(features, dtype=torch.float32)
    features64 = tensor32.double().numpy()  # the same values
    labels_t = torch.as_tensor(labels)
    for key, function in NC_METRICS.items():
        assert function(tensor32, labels_t) == pytest.approx(
            function(features64, labels), rel=SAME
        ), key
    stats = m.class_statistics(tensor32, labels_t, within="projection")
    assert stats.within_scatter is None
    assert m.nc1_pseudo_inverse(stats) == pytest.approx(
        m.nc1_pseudo_inverse(m.class_statistics(features64, labels, within="scatter")), rel=SAME
    )
    torch_values = m.all_metrics(tensor32, labels_t, torch.as_tensor(weights), None, negativity=True)
    numpy_values = m.all_metrics(features64, labels, weights, None, negativity=True)
    for key, value in numpy_values.items():
        if value is None:
            assert torch_values[key] is None, key
        else:
            assert torch_values[key] == pytest.approx(value, rel=SAME, abs=1e-15), key


def _recording(monkeypatch):
    """Record the ``within`` option of every class_statistics call made by ufm.metrics."""
    calls = []
    original = m.class_statistics

    def recorded(features, labels, num_classes=None, *, within="scatter"):
        stats = original(features, labels, num_classes, within=within)
        calls.append((within, stats.within_scatter is not None))
        return stats

    for module in vars(m).values():  # every ufm.metrics module that calls it
        if getattr(module, "__name__", "").startswith("ufm.metrics.") and hasattr(module, "class_statistics"):
            monkeypatch.setattr(module, "class_statistics", recorded)
    return calls


def test_all_metrics_and_layer_report_without_the_scatter(monkeypatch):
    k, d = 4, 16
    features, labels, weights = _problem(8, [12, 9, 15, 10], d)
    features = np.abs(features)  # nonnegative: NEG = 0 without any Gram matrix
    pre = features - 0.5
    forced = {}
    with monkeypatch.context() as patch:  # the d×d scatter route, for reference
        patch.setattr(streaming, "projection_is_cheaper", lambda d, k: False)
        forced["all"] = m.all_metrics(features, labels, weights, np.zeros(k), negativity=True)
        forced["report"] = m.layer_report(
            [features, features[: d - 2]],
            labels,
            [np.eye(d - 2, d), weights[:, : d - 2]],
            pre_activations=[None, pre[: d - 2]],
            weight_decays=[1e-2, 2e-2],
            feature_decay=1e-3,
        )
    calls = _recording(monkeypatch)

    def refuse(*args, **kwargs):
        raise AssertionError("a Gram matrix of nonnegative features was formed")

    monkeypatch.setattr(metrics_neg, "_gram_smaller_side", refuse)
    values = m.all_metrics(features, labels, weights, np.zeros(k), negativity=True)
    assert all(not scatter for _, scatter in calls)  # all_metrics streams its own two passes
    assert values["NEG"] == 0.0
    for key, value in forced["all"].items():
        if value is None or isinstance(value, int):
            assert values[key] == value, key
        else:
            assert values[key] == pytest.approx(value, rel=SAME, abs=1e-15), key
    monkeypatch.undo()
    calls = _recording(monkeypatch)
    report = m.layer_report(
        [features, features[: d - 2]],
        labels,
        [np.eye(d - 2, d), weights[:, : d - 2]],
        pre_activations=[None, pre[: d - 2]],
        weight_decays=[1e-2, 2e-2],
        feature_decay=1e-3,
    )
    assert calls and all(not scatter for _, scatter in calls)
    for row, expected_row in zip(report.rows, forced["report"].rows):
        for key, value in expected_row.metrics.items():
            if value is None or isinstance(value, int):
                assert row.metrics[key] == value, key
            else:
                assert row.metrics[key] == pytest.approx(value, rel=SAME, abs=1e-15), key
    for key in ("BAL.weighted", "BAL.scalar"):
        assert report.totals[key] == pytest.approx(forced["report"].totals[key], rel=SAME)


def test_metrics_of_statistics_without_scatter():
    features, labels, weights = _problem(9, [10, 12, 14], 6)
    traces = m.class_statistics(features, labels, within="traces")
    scatter = m.class_statistics(features, labels)
    for key, function in NC_METRICS.items():
        if key == "NC1.pinv":
            with pytest.raises(ValueError, match="NC1.pinv needs one of them"):
                function(traces)
        else:
            assert function(traces) == pytest.approx(function(scatter), rel=SAME), key
    streamed = m.accumulate_two_pass(
        [(features[:, s : s + 7], labels[s : s + 7]) for s in range(0, 36, 7)], 3
    )
    assert m.nc1_pseudo_inverse(streamed) == pytest.approx(m.nc1_pseudo_inverse(scatter), rel=SAME)


def test_negativity_without_a_gram_matrix(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Gram matrix formed")

    monkeypatch.setattr(metrics_neg, "_gram_smaller_side", refuse)
    assert m.negativity(np.array([[0.0, 1.0], [2.0, 0.0]])) == 0.0
    with pytest.raises(m.UndefinedMetricError, match="NEG: pre_activations is zero"):
        m.negativity(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"NaN or Inf entries \(1 in columns 0\.\.2\)"):
        m.negativity(np.array([[1.0, 2.0, np.nan]]))


@st.composite
def problems(draw):
    k = draw(st.integers(2, 5))
    d = draw(st.integers(1, 12))
    counts = draw(st.lists(st.integers(2, 6), min_size=k, max_size=k))
    seed = draw(st.integers(0, 2**32 - 1))
    noise = draw(st.sampled_from([1e-4, 0.05, 0.5]))
    offset = draw(st.sampled_from([0.0, 10.0]))
    return _problem(seed, counts, d, noise=noise, offset=offset)


@given(problems())
def test_fast_path_equals_scatter_path_on_random_problems(problem):
    features, labels, _ = problem
    scatter = m.class_statistics(features, labels, within="scatter")
    projected = m.class_statistics(features, labels, within="projection")
    assert m.nc1_pseudo_inverse(projected) == pytest.approx(
        m.nc1_pseudo_inverse(scatter), rel=1e-11
    )
