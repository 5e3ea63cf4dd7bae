"""Tests of ufm.streaming: batch splits, merges with different shifts, accuracy at strong collapse,
torch batches and every error.

Equality with the in-memory result is checked at 1e-12 relative (Frobenius norm for matrices):
both sides accumulate the same float64 data with the shift trick, whose rounding error is a few
units of u = 2.2e-16 times the number of summands (≤ 60 here) relative to the statistics.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ufm import streaming
from ufm.streaming import ClassStatisticsAccumulator, accumulate, class_statistics

SAME = 1e-12  # see module docstring


def _relative(a, b):
    scale = np.linalg.norm(b)
    return np.linalg.norm(a - b) / scale if scale else np.linalg.norm(a - b)


def assert_same_statistics(got, expected, tolerance=SAME):
    np.testing.assert_array_equal(got.counts, expected.counts)
    assert _relative(got.means, expected.means) <= tolerance
    assert _relative(got.within_scatter, expected.within_scatter) <= tolerance
    assert _relative(got.within_sum_of_squares, expected.within_sum_of_squares) <= tolerance


def _data(seed, k, d, n_total, mean_scale, noise, offset=0.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n_total)
    labels[:k] = rng.permutation(k)  # every class present, at random positions
    labels = rng.permutation(labels)
    means = offset + mean_scale * rng.standard_normal((d, k))
    features = means[:, labels] + noise * rng.standard_normal((d, n_total))
    return features, labels


def _two_pass_reference(features, labels, k):
    """S_W with exact centring: float64 two-pass (its mean rounding error δ enters only as nδδᵀ)."""
    means = np.stack([features[:, labels == c].mean(axis=1) for c in range(k)], axis=1)
    centred = features - means[:, labels]
    return means, centred @ centred.T


@st.composite
def split_problems(draw):
    k = draw(st.integers(2, 4))
    d = draw(st.integers(1, 5))
    n_total = draw(st.integers(k, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    mean_scale = draw(st.sampled_from([1e-2, 1.0, 1e3]))
    noise = draw(st.sampled_from([1e-6, 1e-3, 1.0]))
    cuts = []
    if n_total > 1:
        cuts = draw(st.lists(st.integers(1, n_total - 1), max_size=8, unique=True))
    merge_seed = draw(st.integers(0, 2**16))
    return k, d, n_total, seed, mean_scale, noise, sorted(cuts), merge_seed


@given(split_problems())
def test_streaming_equals_in_memory_for_any_split_and_merge_order(problem):
    k, d, n_total, seed, mean_scale, noise, cuts, merge_seed = problem
    features, labels = _data(seed, k, d, n_total, mean_scale, noise, offset=mean_scale)
    expected = class_statistics(features, labels, k)
    bounds = [0, *cuts, n_total]
    # one accumulator fed batch by batch
    sequential = ClassStatisticsAccumulator(k)
    for a, b in zip(bounds[:-1], bounds[1:]):
        sequential.update(features[:, a:b], labels[a:b])
    assert_same_statistics(sequential.finalize(), expected)
    # one accumulator per batch (each with its own shifts), merged in a random order
    parts = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        parts.append(ClassStatisticsAccumulator(k).update(features[:, a:b], labels[a:b]))
    order = random.Random(merge_seed)
    while len(parts) > 1:
        i, j = order.sample(range(len(parts)), 2)
        parts[i].merge(parts[j])
        parts.pop(j)
    assert_same_statistics(parts[0].finalize(), expected)


def test_in_memory_chunks_equal_one_chunk(monkeypatch):
    features, labels = _data(4, 3, 5, 500, 1.0, 0.1)
    one_chunk = class_statistics(features, labels)
    monkeypatch.setattr(streaming, "CHUNK_ELEMENTS", 1)  # 64-column chunks: 8 of them
    assert streaming.chunk_columns(5) == 64
    assert_same_statistics(class_statistics(features, labels), one_chunk)


@pytest.mark.parametrize("k", [3, 70])  # 70 classes: the vectorized path (> 64 per chunk)
def test_shift_trick_is_exact_at_strong_collapse(k):
    # Means of size 1e3 around an offset 1e4, within-class spread 1e-5: NC1 ≈ 1e-18.
    d = 4
    features, labels = _data(7, k, d, 300 if k < 10 else 1400, 1e3, 1e-5, offset=1e4)
    n_total = labels.size
    means, reference = _two_pass_reference(features, labels, k)
    # The reference's own error is n‖δ‖² with ‖δ‖ ≲ u·1e4: relative (2e-12/1e-5)² ≈ 4e-14.
    stats = class_statistics(features, labels)
    assert _relative(stats.within_scatter, reference) <= 1e-12
    assert _relative(stats.means, means) <= 1e-15  # means: plain float64 sums
    # without the shift the one-pass formula ZZᵀ − Σ n_c μ_cμ_cᵀ has lost every digit
    counts = np.bincount(labels)
    naive = features @ features.T - (means * counts) @ means.T
    assert _relative(naive, reference) > 1e-3
    # streamed in batches of 7 and merged from 4 accumulators, the same accuracy
    parts = [ClassStatisticsAccumulator(k) for _ in range(4)]
    for index, start in enumerate(range(0, n_total, 7)):
        parts[index % 4].update(features[:, start : start + 7], labels[start : start + 7])
    for part in parts[1:]:
        parts[0].merge(part)
    assert _relative(parts[0].finalize().within_scatter, reference) <= 1e-12


def test_shift_trick_on_torch_tensors():
    torch = pytest.importorskip("torch")
    k = 3
    features, labels = _data(8, k, 4, 200, 1e3, 1e-5, offset=1e4)
    _, reference = _two_pass_reference(features, labels, k)  # error ≈ 4e-14, see above
    tensor = torch.as_tensor(features)  # float64: the same values
    stats = class_statistics(tensor, torch.as_tensor(labels))
    assert _relative(stats.within_scatter, reference) <= 1e-12
    accumulator = ClassStatisticsAccumulator(k)
    for start in range(0, 200, 9):
        accumulator.update(tensor[:, start : start + 9], torch.as_tensor(labels[start : start + 9]))
    assert _relative(accumulator.finalize().within_scatter, reference) <= 1e-12


def test_merge_with_far_apart_shifts_is_exact():
    # A sees only the first samples of each class, B only the last: their shifts differ by the
    # whole class spread (here 1.0) on top of an offset of 1e6, and A's shift is an outlier.
    k, d = 2, 3
    rng = np.random.default_rng(11)
    labels = np.repeat([0, 1], 50)
    means = 1e6 + rng.standard_normal((d, k))
    features = means[:, labels] + rng.standard_normal((d, 100))
    features[:, 0] += 50.0  # class 0's first sample (A's shift) far from the class mean
    order = np.r_[0, 50, 1:50, 51:100]
    features, labels = features[:, order], labels[order]
    a = ClassStatisticsAccumulator(k).update(features[:, :2], labels[:2])
    b = ClassStatisticsAccumulator(k).update(features[:, 2:], labels[2:])
    expected = class_statistics(features, labels)
    _, reference = _two_pass_reference(features, labels, k)
    merged = a.copy().merge(b).finalize()
    assert_same_statistics(merged, expected)
    assert _relative(merged.within_scatter, reference) <= 1e-12
    assert_same_statistics(b.copy().merge(a).finalize(), expected)  # either direction


def test_class_first_seen_in_a_later_batch_and_empty_merges():
    features, labels = _data(2, 3, 4, 40, 1.0, 0.3)
    order = np.argsort(labels, kind="stable")  # class 2 only in the last batches
    features, labels = features[:, order], labels[order]
    accumulator = ClassStatisticsAccumulator(3)
    for start in range(0, 40, 6):
        accumulator.update(features[:, start : start + 6], labels[start : start + 6])
    accumulator.merge(ClassStatisticsAccumulator(3))  # merging an empty one changes nothing
    empty = ClassStatisticsAccumulator(3).merge(accumulator)  # into an empty one: a copy
    expected = class_statistics(features, labels)
    assert_same_statistics(accumulator.finalize(), expected)
    assert_same_statistics(empty.finalize(), expected)
    assert accumulator.num_samples == 40 and accumulator.dimension == 4
    np.testing.assert_array_equal(accumulator.counts, np.bincount(labels))
    batches = ((features[:, i::4], labels[i::4]) for i in range(4))
    assert_same_statistics(accumulate(batches, 3), expected)


def test_copy_is_independent():
    features, labels = _data(3, 2, 3, 20, 1.0, 0.5)
    original = ClassStatisticsAccumulator(2).update(features[:, :10], labels[:10])
    before = original.copy()
    original.update(features[:, 10:], labels[10:])
    assert before.num_samples == 10 and original.num_samples == 20
    assert_same_statistics(before.finalize(), class_statistics(features[:, :10], labels[:10], 2))


def test_torch_batches_on_their_device_and_mixed_with_numpy():
    torch = pytest.importorskip("torch")
    features, labels = _data(5, 3, 4, 90, 1.0, 0.4)
    features32 = torch.as_tensor(features, dtype=torch.float32)
    features64 = features32.double().numpy()  # same values as the float32 tensor
    expected = class_statistics(features64, labels)
    labels_t = torch.as_tensor(labels)
    on_torch = ClassStatisticsAccumulator(3)
    for start in range(0, 90, 20):
        on_torch.update(features32[:, start : start + 20], labels_t[start : start + 20])
    assert on_torch.device == features32.device  # state kept where the features are
    assert_same_statistics(on_torch.finalize(), expected)
    # mixed: numpy batches into a torch accumulator, a torch batch into a numpy accumulator
    mixed_torch = ClassStatisticsAccumulator(3).update(features32[:, :45], labels_t[:45])
    mixed_torch.update(features64[:, 45:], labels[45:])
    mixed_numpy = ClassStatisticsAccumulator(3).update(features64[:, :45], labels[:45])
    mixed_numpy.update(features32[:, 45:], labels_t[45:])
    assert mixed_numpy.device is None
    assert_same_statistics(mixed_torch.finalize(), expected)
    assert_same_statistics(mixed_numpy.finalize(), expected)
    # merging a torch-state accumulator into a numpy-state one and back
    left = ClassStatisticsAccumulator(3).update(features64[:, :30], labels[:30])
    right = ClassStatisticsAccumulator(3).update(features32[:, 30:], labels_t[30:])
    assert_same_statistics(left.copy().merge(right).finalize(), expected)
    assert_same_statistics(right.copy().merge(left).finalize(), expected)
    assert_same_statistics(class_statistics(features32, labels_t), expected)


def test_update_with_bad_batch_leaves_accumulator_unchanged():
    features, labels = _data(6, 2, 3, 30, 1.0, 0.5)
    accumulator = ClassStatisticsAccumulator(2).update(features[:, :20], labels[:20])
    bad = features[:, 20:].copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or Inf entries \(1 in columns 0\.\.9\)"):
        accumulator.update(bad, labels[20:])
    with pytest.raises(ValueError, match="overflow"):
        accumulator.update(np.full((3, 2), 1e200), np.array([0, 1]))
    assert accumulator.num_samples == 20
    expected = class_statistics(features[:, :20], labels[:20], 2)
    assert_same_statistics(accumulator.finalize(), expected)
    fresh = ClassStatisticsAccumulator(2)
    with pytest.raises(ValueError, match="NaN or Inf"):
        fresh.update(bad, labels[20:])
    assert fresh.dimension is None  # a failed first batch leaves it empty


def test_accumulator_errors():
    accumulator = ClassStatisticsAccumulator(3).update(np.ones((2, 3)), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="dimension d = 4 but earlier batches had d = 2"):
        accumulator.update(np.ones((4, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"features has N = 3 samples .* labels has 2"):
        accumulator.update(np.ones((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
        accumulator.update(np.ones((2, 2)), np.array([0, 3]))
    with pytest.raises(ValueError, match="class 2 received none"):
        accumulator.finalize()
    with pytest.raises(ValueError, match="no samples accumulated"):
        ClassStatisticsAccumulator(3).finalize()
    with pytest.raises(ValueError, match="other has K = 2 classes"):
        accumulator.merge(ClassStatisticsAccumulator(2))
    other = ClassStatisticsAccumulator(3).update(np.ones((5, 1)), np.array([2]))
    with pytest.raises(ValueError, match="other has dimension d = 5"):
        accumulator.merge(other)
    with pytest.raises(TypeError, match="other must be a ClassStatisticsAccumulator"):
        accumulator.merge(class_statistics(np.ones((2, 2)), np.array([0, 1])))
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        ClassStatisticsAccumulator(1)
    assert "K=3, d=2, N=3" in repr(accumulator)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sorted_labels", [True, False])
def test_inputs_are_not_modified(dtype, sorted_labels):
    features, labels = _data(9, 3, 4, 50, 1.0, 0.5)
    if sorted_labels:
        labels = np.sort(labels)
    features = features.astype(dtype)
    copy = features.copy()
    class_statistics(features, labels)
    ClassStatisticsAccumulator(3).update(features, labels)
    np.testing.assert_array_equal(features, copy)


def test_many_classes_per_chunk():
    # more than 64 classes in one chunk take the vectorized path; batches of 20 columns (at most
    # 20 classes each) take the class-by-class path: both equal the two-pass reference
    k = 70
    features, labels = _data(10, k, 3, 400, 1.0, 0.2)
    stats = class_statistics(features, labels)
    means, reference = _two_pass_reference(features, labels, k)
    assert _relative(stats.within_scatter, reference) <= 1e-12  # reference error ~u (no offset)
    assert _relative(stats.means, means) <= 1e-14
    accumulator = ClassStatisticsAccumulator(k)
    for start in range(0, 400, 20):
        accumulator.update(features[:, start : start + 20], labels[start : start + 20])
    assert_same_statistics(accumulator.finalize(), stats)
