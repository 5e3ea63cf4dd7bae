"""Tests of the statistics without the d×d scatter: ``ClassStatisticsAccumulator(scatter=False)``,
:class:`WithinProjectionAccumulator`, ``class_statistics(within=...)`` and
:func:`accumulate_two_pass`.

The projected scatter G = UᵀS_WU is compared with Uᵀ(S_W)U of the one-pass shifted scatter at
1e-12 relative (Frobenius norm): both are float64 sums of the same N products whose rounding error
is a few units of u = 2.2e-16 times the number of summands, relative to ‖G‖ (isotropic noise, so
no direction of G is small against the others).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ufm import streaming
from ufm.statistics import ClassStatistics, WithinProjection, between_directions
from ufm.streaming import (
    ClassStatisticsAccumulator,
    WithinProjectionAccumulator,
    accumulate_two_pass,
    class_statistics,
)

SAME = 1e-12  # see module docstring


def _relative(a, b):
    scale = np.linalg.norm(b)
    return np.linalg.norm(a - b) / scale if scale else np.linalg.norm(a - b)


def _data(seed, k, d, n_total, mean_scale, noise, offset=0.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n_total)
    labels[:k] = rng.permutation(k)
    labels = rng.permutation(labels)
    means = offset + mean_scale * rng.standard_normal((d, k))
    features = means[:, labels] + noise * rng.standard_normal((d, n_total))
    return features, labels


def _projected_reference(stats):
    """UᵀS_WU from the d×d scatter of ``stats`` (within="scatter")."""
    basis = between_directions(stats.means)[0]
    return basis, basis.T @ stats.within_scatter @ basis


def assert_same_projection(got, scatter_stats, tolerance=SAME):
    np.testing.assert_array_equal(got.counts, scatter_stats.counts)
    assert _relative(got.means, scatter_stats.means) <= tolerance
    assert _relative(got.within_sum_of_squares, scatter_stats.within_sum_of_squares) <= tolerance
    basis, reference = _projected_reference(scatter_stats)
    projection = got.within_projection
    # same directions up to rounding (and sign); compare the quadratic forms on them
    assert _relative(projection.quadratic_form(basis), reference) <= tolerance


@pytest.mark.parametrize(
    "k, d, n_total, mean_scale, noise, offset",
    [
        (10, 64, 3000, 1.0, 0.5, 0.0),  # several chunks
        (3, 8, 200, 1e3, 1e-5, 1e4),  # strong collapse on a large offset
        (5, 2, 100, 1.0, 0.3, 0.0),  # d < K − 1: the projection is all of R^d
        (2, 5, 30, 1.0, 1.0, 0.0),  # K = 2: a single between-class direction
    ],
)
def test_projection_equals_scatter_projected(k, d, n_total, mean_scale, noise, offset):
    features, labels = _data(k + d, k, d, n_total, mean_scale, noise, offset)
    scatter_stats = class_statistics(features, labels, within="scatter")
    projected = class_statistics(features, labels, within="projection")
    assert projected.within_scatter is None
    assert projected.within_projection.rank == min(d, k - 1)
    assert_same_projection(projected, scatter_stats)
    traces = class_statistics(features, labels, within="traces")
    assert traces.within_scatter is None and traces.within_projection is None
    assert _relative(traces.within_sum_of_squares, scatter_stats.within_sum_of_squares) <= SAME
    assert _relative(traces.means, scatter_stats.means) <= SAME


def test_projection_is_exact_at_strong_collapse():
    # Means of size 1e3 around an offset 1e4, spread 1e-5: exact centring against a float64
    # two-pass reference (its own error n‖δ‖², ‖δ‖ ≲ u·1e4, is 4e-14 relative).
    k, d = 4, 12
    features, labels = _data(7, k, d, 400, 1e3, 1e-5, offset=1e4)
    means = np.stack([features[:, labels == c].mean(axis=1) for c in range(k)], axis=1)
    centred = features - means[:, labels]
    stats = class_statistics(features, labels, within="projection")
    basis = stats.within_projection.basis
    reference = (basis.T @ centred) @ (basis.T @ centred).T
    assert _relative(stats.within_projection.scatter, reference) <= 1e-12
    # projecting z and subtracting the projected means instead cancels u·1e4 against the spread
    # 1e-5: ~2e-8 relative here
    naive = basis.T @ features - (basis.T @ means)[:, labels]
    assert _relative(naive @ naive.T, reference) > 1e-10


def test_projection_pass_in_chunks_equals_one_chunk(monkeypatch):
    features, labels = _data(4, 3, 9, 500, 1.0, 0.1)
    one_chunk = class_statistics(features, labels, within="projection")
    monkeypatch.setattr(streaming, "CHUNK_ELEMENTS", 1)  # 64-column chunks: 8 of them
    chunked = class_statistics(features, labels, within="projection")
    assert _relative(chunked.within_projection.scatter, one_chunk.within_projection.scatter) <= SAME
    assert _relative(chunked.means, one_chunk.means) <= SAME


def test_auto_picks_the_cheaper_path():
    wide, labels = _data(1, 3, 5, 40, 1.0, 0.5)  # 2·min(d, K − 1) = 4 < 5: projection
    assert class_statistics(wide, labels, within="auto").within_scatter is None
    narrow = wide[:4]  # 4 ≥ 4: the d×d scatter
    assert class_statistics(narrow, labels, within="auto").within_projection is None
    assert streaming.projection_is_cheaper(512, 10)
    assert not streaming.projection_is_cheaper(6, 4)


def test_two_pass_streaming_equals_in_memory():
    k, d = 5, 16
    features, labels = _data(11, k, d, 700, 1.0, 0.4)
    batches = [(features[:, s : s + 64], labels[s : s + 64]) for s in range(0, 700, 64)]
    expected = class_statistics(features, labels, within="scatter")
    got = accumulate_two_pass(batches, k)
    assert_same_projection(got, expected)
    # a callable giving a fresh iterable per pass; the second pass in another order
    calls = []

    def reader():
        calls.append(1)
        return iter(batches if len(calls) == 1 else batches[::-1])

    assert_same_projection(accumulate_two_pass(reader, k), expected)
    assert len(calls) == 2
    # by hand, with the second pass split over two merged accumulators
    first = ClassStatisticsAccumulator(k, scatter=False)
    for batch in batches:
        first.update(*batch)
    partial = first.finalize()
    assert partial.within_scatter is None
    left, right = WithinProjectionAccumulator(partial), WithinProjectionAccumulator(partial)
    for index, batch in enumerate(batches):
        (left if index % 2 else right).update(*batch)
    merged = left.merge(right).merge(WithinProjectionAccumulator(partial))  # empty: no change
    assert merged.num_samples == 700
    assert_same_projection(merged.finalize(), expected)
    empty = WithinProjectionAccumulator(partial).merge(left)  # into an empty one
    assert_same_projection(empty.finalize(), expected)


def test_first_pass_without_scatter_merges_and_copies():
    k, d = 3, 6
    features, labels = _data(12, k, d, 120, 1.0, 0.3)
    expected = class_statistics(features, labels, within="scatter")
    a = ClassStatisticsAccumulator(k, scatter=False).update(features[:, :50], labels[:50])
    b = ClassStatisticsAccumulator(k, scatter=False).update(features[:, 50:] + 0.0, labels[50:])
    merged = a.copy().merge(b).finalize()
    assert merged.within_scatter is None
    assert _relative(merged.means, expected.means) <= SAME
    assert _relative(merged.within_sum_of_squares, expected.within_sum_of_squares) <= SAME
    assert "scatter=False" in repr(a)
    with pytest.raises(ValueError, match="accumulates the d×d scatter"):
        a.merge(ClassStatisticsAccumulator(k))
    with pytest.raises(TypeError, match="scatter must be True or False"):
        ClassStatisticsAccumulator(k, scatter="no")


def test_torch_projection_stays_on_device_and_matches_numpy():
    torch = pytest.importorskip("torch")
    k, d = 4, 10
    features, labels = _data(13, k, d, 300, 1.0, 0.5)
    features32 = torch.as_tensor(features, dtype=torch.float32)
    features64 = features32.double().numpy()  # the same values
    labels_t = torch.as_tensor(labels)
    expected = class_statistics(features64, labels, within="scatter")
    assert_same_projection(class_statistics(features32, labels_t, within="projection"), expected)
    first = ClassStatisticsAccumulator(k, scatter=False)
    for start in range(0, 300, 70):
        first.update(features32[:, start : start + 70], labels_t[start : start + 70])
    assert first.device == features32.device
    partial = first.finalize()
    second = WithinProjectionAccumulator(partial)
    for start in range(0, 300, 70):
        second.update(features32[:, start : start + 70], labels_t[start : start + 70])
    assert second.device == features32.device
    assert "state=torch" in repr(second)
    assert_same_projection(second.finalize(), expected)
    # a torch second pass merged with a numpy one, both ways
    torch_part = WithinProjectionAccumulator(partial).update(features32[:, :100], labels_t[:100])
    numpy_part = WithinProjectionAccumulator(partial).update(features64[:, 100:], labels[100:])
    assert_same_projection(torch_part.merge(numpy_part).finalize(), expected)
    numpy_part = WithinProjectionAccumulator(partial).update(features64[:, 100:], labels[100:])
    torch_part = WithinProjectionAccumulator(partial).update(features32[:, :100], labels_t[:100])
    assert_same_projection(numpy_part.merge(torch_part).finalize(), expected)


def test_projection_pass_errors():
    k, d = 3, 6
    features, labels = _data(14, k, d, 60, 1.0, 0.3)
    partial = class_statistics(features, labels, within="traces")
    second = WithinProjectionAccumulator(partial)
    with pytest.raises(ValueError, match="dimension d = 5 but the first pass had d = 6"):
        second.update(features[:5], labels)
    bad = features.copy()
    bad[2, 7] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf entries \(1 in columns 0\.\.59\)"):
        second.update(bad, labels)
    assert second.num_samples == 0 and second.device is None  # unchanged by the failed batch
    second.update(features[:, :30], labels[:30])
    with pytest.raises(ValueError, match="projection pass saw .* but the first pass saw"):
        second.finalize()
    other = WithinProjectionAccumulator(class_statistics(features[:, ::-1] * 2, labels[::-1]))
    with pytest.raises(ValueError, match="built on different class means"):
        second.merge(other)
    with pytest.raises(TypeError, match="other must be a WithinProjectionAccumulator"):
        second.merge(ClassStatisticsAccumulator(k))
    with pytest.raises(TypeError, match="statistics must be a ClassStatistics"):
        WithinProjectionAccumulator(features)
    with pytest.raises(TypeError, match="one-shot iterator"):
        accumulate_two_pass(iter([(features, labels)]), k)
    with pytest.raises(ValueError, match="within must be one of"):
        class_statistics(features, labels, within="full")
    with pytest.raises(ValueError, match="NaN or Inf"):
        class_statistics(bad, labels, within="projection")


def test_statistics_without_scatter():
    k, d = 3, 7
    features, labels = _data(15, k, d, 90, 1.0, 0.3)
    stats = class_statistics(features, labels, within="projection")
    for name in ("within_covariance", "total_covariance", "second_moment"):
        with pytest.raises(ValueError, match=f"{name} needs the d×d within-class scatter"):
            getattr(stats, name)
    traces = class_statistics(features, labels, within="traces")
    with pytest.raises(ValueError, match="hold neither the within-class scatter nor"):
        traces.within_scatter_projected(np.eye(d)[:, :1])
    # directions outside span(U) are refused, not silently projected
    basis = stats.within_projection.basis
    outside = np.linalg.qr(np.eye(d) - basis @ basis.T)[0][:, :1]
    with pytest.raises(ValueError, match="leave the span"):
        stats.within_scatter_projected(outside)
    with pytest.raises(ValueError, match=r"directions must have shape \(d, q\)"):
        stats.within_projection.quadratic_form(np.ones((d + 1, 1)))
    data = json.loads(json.dumps(stats.to_dict()))
    assert data["within_scatter"] is None
    assert np.array(data["within_projection"]["scatter"]).shape == (k - 1, k - 1)
    assert "within_projection" not in class_statistics(features, labels).to_dict()
    # validation of the new fields
    projection = stats.within_projection
    with pytest.raises(TypeError, match="within_projection must be a WithinProjection"):
        ClassStatistics(stats.means, stats.counts, None, stats.within_sum_of_squares, np.eye(2))
    with pytest.raises(ValueError, match="within_projection has d = 6 rows"):
        ClassStatistics(
            stats.means,
            stats.counts,
            None,
            stats.within_sum_of_squares,
            WithinProjection(np.eye(6, 2), np.eye(2)),
        )
    with pytest.raises(ValueError, match=r"basis must be a \(d, p\) matrix"):
        WithinProjection(np.ones((2, 3)), np.eye(3))
    with pytest.raises(ValueError, match=r"scatter must have shape \(p, p\)"):
        WithinProjection(projection.basis, np.eye(3))
    with pytest.raises(ValueError, match="scatter holds 1 NaN"):
        WithinProjection(np.eye(2, 1), np.array([[np.nan]]))
    with pytest.raises(ValueError):  # read-only
        projection.scatter[0, 0] = 1.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inputs_are_not_modified(dtype):
    features, labels = _data(16, 3, 8, 70, 1.0, 0.5)
    features = features.astype(dtype)
    copy = features.copy()
    class_statistics(features, labels, within="projection")
    accumulate_two_pass([(features, labels)], 3)
    np.testing.assert_array_equal(features, copy)
