"""Tests of the two-pass report (:mod:`ufm.metrics_accumulator`) behind ``all_metrics``.

Every test runs on both routes of the passes: the compiled kernels (:mod:`ufm.fused_kernels`)
and numpy (fixture ``route``). Reference route: the one-pass shifted d×d scatter statistics (``class_statistics(within=
"scatter")``) fed to the individual metric functions, plus the direct NC4 formula (distances from
differences, scores Wz + b), ``fit_error`` and ``negativity``. Tolerance SAME = 1e-12 relative:
both routes are float64 sums of the same N products (a few units of u = 2.2e-16 times the number
of summands) followed by the same O(K³) algebra on the class means, on data whose within-class
noise is isotropic. NC4.ncc and RANK are compared exactly: the fast NC4 decisions are re-checked
with the direct formula wherever rounding could change them.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import torch

from ufm import metrics as m
from ufm.metrics_accumulator import MetricsAccumulator, stream_metrics

torch.set_num_threads(1)

SAME = 1e-12  # see module docstring


@pytest.fixture(params=["compiled", "numpy"], autouse=True)
def route(request, monkeypatch):
    """Every test runs twice: with the compiled kernels of ufm.fused_kernels (the default when
    numba is installed, as it is with this package) and with the numpy route."""
    from ufm.metrics_accumulator import FUSED_KERNELS_VARIABLE, fused_kernels

    if request.param == "numpy":
        monkeypatch.setenv(FUSED_KERNELS_VARIABLE, "0")
        assert fused_kernels() is None
    else:
        monkeypatch.delenv(FUSED_KERNELS_VARIABLE, raising=False)
        assert fused_kernels() is not None, "numba is a dependency: the kernels must load"
    return request.param


def _problem(seed, counts, d, noise=0.5, offset=0.0):
    rng = np.random.default_rng(seed)
    k = len(counts)
    labels = rng.permutation(np.repeat(np.arange(k), counts))
    means = offset + rng.standard_normal((d, k))
    features = means[:, labels] + noise * rng.standard_normal((d, labels.size))
    weights = means.T + 0.3 * rng.standard_normal((k, d))
    bias = 0.1 * rng.standard_normal(k)
    return features, labels, weights, bias


def _reference(features, labels, weights, bias, center):
    stats = m.class_statistics(features, labels, within="scatter")
    cosine = m.nc3_cosine_alignment(stats, weights=weights, center=center)
    error = m.fit_error(weights @ features + bias[:, None], labels)
    return {
        "NC1.tr_unc": m.nc1_trace_ratio_uncentered(stats),
        "NC1.tr": m.nc1_trace_ratio(stats),
        "NC1.pinv": m.nc1_pseudo_inverse(stats),
        "NC1.wt": m.nc1_within_total(stats),
        "NC1.cdnv": m.nc1_class_distance_normalized_variance(stats),
        "NC2.kappa": m.nc2_condition_number(stats),
        "NC2.kappa_nz": m.nc2_condition_number_nonzero(stats, center=center),
        "NC2.orth": m.nc2_orthogonal_frame_distance(stats),
        "NC2.etf": m.nc2_simplex_etf_distance(stats),
        "NC3.cos": cosine.mean,
        "NC3.cos_min": cosine.minimum,
        "NC3.dual": m.nc3_self_duality_distance(stats, weights=weights, center=center),
        "NC3.span": m.nc3_span_residual(stats, weights=weights),
        "NC4.ncc": m.nc4_nearest_class_center_agreement(
            features, labels, weights=weights, bias=bias
        ),
        "NEG": m.negativity(features),
        "RANK": m.numerical_rank(stats.means),
        "KAPPA": m.condition_number_nonzero(weights),
        "ERR": error.frobenius,
        "ERR.data": error.data_term,
    }


def assert_report_equals(got, expected, tolerance=SAME):
    for key, value in expected.items():
        if key in ("NC4.ncc", "RANK") or value is None or math.isinf(value):
            assert got[key] == value, key
        elif key == "NC3.span":  # a residual share of order 1e-2 of sums of order 1
            assert got[key] == pytest.approx(value, rel=tolerance, abs=1e-14), key
        else:
            assert got[key] == pytest.approx(value, rel=tolerance), key


@pytest.mark.parametrize(
    "seed, counts, d",
    [
        (0, [40] * 10, 64),  # balanced, K = 10
        (1, [3, 50, 7, 20, 9], 40),  # unbalanced
        (2, [1, 4, 1], 8),  # one-sample classes (NC1.cdnv defined)
        (3, [30, 5], 3),  # K = 2
        (4, [20] * 6, 4),  # d < K − 1
        (5, [300, 280, 310], 700),  # more rows than one work chunk, d > N/2
        (15, [3] * 40, 12),  # K = 40: class sums by one GEMM with the label indicator
    ],
)
def test_all_metrics_equals_the_reference_route(seed, counts, d):
    features, labels, weights, bias = _problem(seed, counts, d)
    got = m.all_metrics(features, labels, weights, bias, negativity=True)
    assert_report_equals(got, _reference(features, labels, weights, bias, center=True))
    rows = m.all_metrics(
        np.ascontiguousarray(features.T), labels, weights, bias, rows=True, negativity=True
    )
    # the column input is read as the transposed view of rows: the same sums, in another memory
    # order for BLAS (rounding only)
    assert_report_equals(rows, got)


def test_strong_collapse_keeps_its_digits():
    # within-class spread 1e-5 on features of norm ~6e3 (offset 1e3, d = 32): NC1 ≈ 1e-11. The
    # residuals are formed before any product, so the relative accuracy is that of the shifted
    # one-pass scatter (u·O(1) relative), not u·‖μ‖²/σ² ≈ 1e6·u.
    features, labels, weights, bias = _problem(6, [60, 80, 70, 90], 32, noise=1e-5, offset=1e3)
    got = m.all_metrics(features, labels, weights, bias)
    assert 1e-13 < got["NC1.pinv"] < 1e-9
    expected = _reference(features, labels, weights, bias, center=True)
    expected.pop("NEG")
    # 1e-10: the class means (norm ~6e3) are centred against a between-class spread of ~1, so the
    # two routes' means (float64 sums in different orders) agree to ~6e3·u after centring, which
    # the cosines of NC3.cos (some near 0) amplify; the NC1 values agree to ~3e-14.
    assert_report_equals(got, expected, tolerance=1e-10)
    for key in ("NC1.tr", "NC1.pinv", "NC1.wt", "NC1.cdnv"):
        assert got[key] == pytest.approx(expected[key], rel=1e-12), key


def test_float32_rows_are_not_copied_whole():
    rng = np.random.default_rng(7)
    n, d, k = 20_000, 256, 10
    labels = rng.integers(0, k, n)
    labels[:k] = np.arange(k)
    features = (rng.standard_normal((k, d))[labels] + 0.3 * rng.standard_normal((n, d))).astype(
        np.float32
    )
    weights = rng.standard_normal((k, d))
    m.all_metrics(features[:100], labels[:100], weights, rows=True, num_classes=k)  # warm-up
    tracemalloc.start()
    got = m.all_metrics(features, labels, weights, rows=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    copy = n * d * 8  # a float64 copy: 41 MB
    assert peak < copy / 4, f"peak {peak / 2**20:.1f} MiB"
    expected = m.all_metrics(features.astype(np.float64), labels, weights, rows=True)
    assert_report_equals(got, expected)


def test_torch_rows_equal_numpy():
    features, labels, weights, bias = _problem(8, [30, 25, 40, 35], 24)
    tensor = torch.tensor(features.T, dtype=torch.float32)
    got = m.all_metrics(
        tensor,
        torch.tensor(labels),
        torch.tensor(weights),
        torch.tensor(bias),
        rows=True,
        negativity=True,
    )
    expected = m.all_metrics(tensor.double().numpy().T, labels, weights, bias, negativity=True)
    # the same float64 values, summed by torch's kernels instead of numpy's: rounding only
    assert_report_equals(got, expected)


def test_streamed_batches_and_merged_workers_equal_the_matrix():
    features, labels, weights, bias = _problem(9, [50, 45, 60, 30, 55], 20)
    rows = np.ascontiguousarray(features.T)
    expected = m.all_metrics(features, labels, weights, bias, negativity=True)
    batches = [
        (rows[start : start + 37], labels[start : start + 37])
        for start in range(0, len(labels), 37)
    ]
    assert_report_equals(
        stream_metrics(batches, 5, weights=weights, bias=bias, rows=True, negativity=True), expected
    )
    # three workers: pass 1 each, merged; pass 2 each from the merged pass 1, merged
    parts = [batches[0::3], batches[1::3], batches[2::3]]
    workers = [
        MetricsAccumulator(5, weights=weights, bias=bias, rows=True, negativity=True) for _ in parts
    ]
    for worker, part in zip(workers, parts):
        for batch in part:
            worker.update(*batch)
    first = MetricsAccumulator(5, weights=weights, bias=bias, rows=True, negativity=True)
    for worker in workers:
        first.merge(worker)
    for worker, part in zip(workers, parts):
        worker.next_pass(reference=first)
        for batch in part[::-1]:  # any order in the second pass
            worker.update(*batch)
    total = workers[0]
    total.merge(workers[1]).merge(workers[2])
    assert_report_equals(total.report(), expected)
    assert_report_equals(m.all_metrics(total), expected)


def test_nc4_exact_ties_are_rechecked():
    # Two classes at ±e₁ and samples on the bisector x₁ = 0: every such sample is equidistant from
    # both centres, and W = [e₁; e₁] ties the scores too. The direct formula sends both to class 0.
    d, n = 3, 8
    rng = np.random.default_rng(10)
    left = np.vstack([-np.ones(n), rng.standard_normal((d - 1, n))])
    right = np.vstack([np.ones(n), rng.standard_normal((d - 1, n))])
    middle = np.vstack([np.zeros(4), rng.standard_normal((d - 1, 4))])
    left[1:] -= left[1:].mean(axis=1, keepdims=True)  # means exactly ±e₁ up to rounding
    right[1:] -= right[1:].mean(axis=1, keepdims=True)
    features = np.hstack([left, right, middle])
    labels = np.r_[np.zeros(n, int), np.ones(n, int), [0, 1, 0, 1]]
    weights = np.array([[1.0, 0, 0], [1.0, 0, 0]])
    accumulator = MetricsAccumulator(2, weights=weights)
    accumulator.update(features, labels)
    accumulator.next_pass()
    accumulator.update(features, labels)
    got = accumulator.report()
    assert accumulator.rechecked >= 4 + 2 * n  # the bisector samples and every score tie
    assert got["NC4.ncc"] == m.nc4_nearest_class_center_agreement(features, labels, weights=weights)


def test_all_metrics_of_class_statistics():
    features, labels, weights, bias = _problem(11, [20, 30, 25], 10)
    stats = m.class_statistics(features, labels, within="projection")
    got = m.all_metrics(stats, weights=weights, bias=bias)
    expected = m.all_metrics(features, labels, weights, bias)
    for key in ("NC4.ncc", "ERR", "ERR.data", "NEG"):
        assert got[key] is None, key  # need the samples
        expected.pop(key)
    assert_report_equals(got, expected)


FUNCTIONS = {
    "NC1.tr_unc": lambda f, y, **o: m.nc1_trace_ratio_uncentered(f, y, **o),
    "NC1.tr": lambda f, y, **o: m.nc1_trace_ratio(f, y, **o),
    "NC1.pinv": lambda f, y, **o: m.nc1_pseudo_inverse(f, y, **o),
    "NC1.wt": lambda f, y, **o: m.nc1_within_total(f, y, **o),
    "NC1.cdnv": lambda f, y, **o: m.nc1_class_distance_normalized_variance(f, y, **o),
    "NC2.kappa": lambda f, y, **o: m.nc2_condition_number(f, y, **o),
    "NC2.kappa_nz": lambda f, y, **o: m.nc2_condition_number_nonzero(f, y, **o),
    "NC2.orth": lambda f, y, **o: m.nc2_orthogonal_frame_distance(f, y, **o),
    "NC2.etf": lambda f, y, **o: m.nc2_simplex_etf_distance(f, y, **o),
    "gram": lambda f, y, **o: m.class_mean_gram(f, y, **o),
    "NC3.cos": lambda f, y, **o: m.nc3_cosine_alignment(f, y, weights=WEIGHTS, **o).mean,
    "NC3.dual": lambda f, y, **o: m.nc3_self_duality_distance(f, y, weights=WEIGHTS, **o),
    "NC3.span": lambda f, y, **o: m.nc3_span_residual(f, y, weights=WEIGHTS, **o),
    "NC4.ncc": lambda f, y, **o: m.nc4_nearest_class_center_agreement(f, y, weights=WEIGHTS, **o),
    "NEG": lambda f, y, **o: m.negativity(f, **o),
    "ERR": lambda f, y, **o: m.fit_error(f[:4] if not o else f[:, :4], y, **o).frobenius,
    "statistics": lambda f, y, **o: m.class_statistics(f, y, **o).within_scatter,
}
FEATURES, LABELS, WEIGHTS, _ = _problem(12, [6, 7, 5, 6], 4)  # square-ish: 24 × 4


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_metric_function_takes_rows(name):
    function = FUNCTIONS[name]
    expected = function(FEATURES, LABELS)
    for rows in (np.ascontiguousarray(FEATURES.T), torch.tensor(FEATURES.T)):
        got = function(rows, LABELS, rows=True)
        # atol: NC3.span is a rounding-level residual here (W ∈ span M = R⁴), values are O(1)
        np.testing.assert_allclose(
            np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=SAME, atol=1e-14
        )


def test_streaming_accumulators_take_rows():
    rows = np.ascontiguousarray(FEATURES.T)
    expected = m.class_statistics(FEATURES, LABELS, within="projection")
    batches = [(rows[:10], LABELS[:10]), (rows[10:], LABELS[10:])]
    got = m.accumulate_two_pass(batches, 4, rows=True)
    np.testing.assert_allclose(
        got.within_projection.scatter, expected.within_projection.scatter, rtol=SAME, atol=1e-14
    )
    one_pass = m.accumulate(batches, 4, rows=True)
    np.testing.assert_allclose(one_pass.means, expected.means, rtol=SAME)
    report = m.layer_report([rows], LABELS, [WEIGHTS], rows=True)
    assert report.rows[0].metrics == m.layer_report([FEATURES], LABELS, [WEIGHTS]).rows[0].metrics


@pytest.mark.parametrize(
    "action, error, match",
    [
        (lambda a: a.update(np.full((3, 2), np.nan), [0, 1]), ValueError, "features holds NaN"),
        (lambda a: a.update(np.ones((3, 2)), [0, 1, 1]), ValueError, "labels has 3"),
        (lambda a: a.update(np.ones((3, 2)), [0, 5]), ValueError, "labels"),
        (lambda a: a.report(), ValueError, "both passes"),
        (lambda a: a.next_pass(), ValueError, "no samples"),
    ],
)
def test_accumulator_errors(action, error, match):
    with pytest.raises(error, match=match):
        action(MetricsAccumulator(2))


def test_second_pass_must_see_the_same_samples():
    accumulator = MetricsAccumulator(2)
    accumulator.update(FEATURES[:, :10], LABELS[:10] % 2)
    accumulator.next_pass()
    accumulator.update(FEATURES[:, :9], LABELS[:9] % 2)
    with pytest.raises(ValueError, match="pass 2 saw other samples"):
        accumulator.report()
    with pytest.raises(ValueError, match="pass 1"):
        accumulator.next_pass()


def test_bad_constructor_and_stream_arguments():
    with pytest.raises(ValueError, match="bias needs weights"):
        MetricsAccumulator(3, bias=np.zeros(3))
    with pytest.raises(TypeError, match="rows must be True or False"):
        MetricsAccumulator(3, rows="yes")
    with pytest.raises(ValueError, match="K"):
        MetricsAccumulator(1)
    with pytest.raises(ValueError, match=r"weights must have shape \(K, d\)"):
        MetricsAccumulator(4, weights=np.ones((4, 3))).update(FEATURES, LABELS)
    with pytest.raises(TypeError, match="one-shot iterator"):
        stream_metrics(iter([(FEATURES, LABELS)]), 4)
    with pytest.raises(TypeError, match="rows must be True or False"):
        m.nc1_trace_ratio(FEATURES, LABELS, rows=1)
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        m.all_metrics(np.ones(5), LABELS, rows=True)


def test_layer_report_of_streamed_statistics():
    # a two-layer network's features, given once as matrices and once as streamed statistics
    features, labels, weights, bias = _problem(13, [15, 20, 25], 6)
    hidden = np.tanh(np.eye(5, 6) @ features)
    layers = [features, hidden]
    weight_list = [np.eye(5, 6), weights[:, :5]]
    decays = [1e-2, 2e-2]
    expected = m.layer_report(layers, labels, weight_list, weight_decays=decays, feature_decay=1e-3)
    statistics = [
        m.accumulate([(layer[:, :30], labels[:30]), (layer[:, 30:], labels[30:])], 3)
        for layer in layers
    ]  # one pass, with the d×d scatter
    got = m.layer_report(statistics, None, weight_list, weight_decays=decays, feature_decay=1e-3)
    for row, expected_row in zip(got.rows, expected.rows):
        for key, value in expected_row.metrics.items():
            if key == "NC4.ncc":
                assert row.metrics[key] is None  # needs the samples
            elif value is None or isinstance(value, int):
                assert row.metrics[key] == value, key
            else:
                assert row.metrics[key] == pytest.approx(value, rel=SAME, abs=1e-15), key
    assert "ERR" not in got.totals and any("NC4.ncc and ERR need" in note for note in got.notes)
    for key in ("BAL.weighted", "BAL.scalar"):
        assert got.totals[key] == pytest.approx(expected.totals[key], rel=SAME)
    with pytest.raises(ValueError, match="class counts differ"):
        m.layer_report(statistics, np.r_[labels[1:], (labels[0] + 1) % 3], weight_list)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rows_equal_numpy():
    features, labels, weights, bias = _problem(14, [300, 250, 400, 350], 48)
    tensor = torch.tensor(features.T, dtype=torch.float32, device="cuda")
    got = m.all_metrics(
        tensor, torch.tensor(labels, device="cuda"), weights, bias, rows=True, negativity=True
    )
    expected = m.all_metrics(
        tensor.double().cpu().numpy().T, labels, weights, bias, negativity=True
    )
    assert_report_equals(got, expected)  # float64 on the device: rounding only
