"""Tests of ufm.labels: layouts, targets and every validation error."""

import numpy as np
import pytest

from ufm import labels as L


def test_balanced_layout_gives_kronecker_targets():
    y = L.one_hot_targets(L.balanced_labels(3, 4))
    expected = np.kron(np.eye(3), np.ones((1, 4)))  # Y = I_K ⊗ 1_nᵀ (docs/theory.md §1.1)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(y @ y.T, 4 * np.eye(3))


def test_plus_minus_one_targets():
    t = L.plus_minus_one_targets(np.array([1, 0]), 3)
    np.testing.assert_array_equal(t, [[-1, 1], [1, -1], [-1, -1]])


def test_counts_and_unbalanced_layout():
    labels = L.labels_from_counts([2, 1, 3])
    np.testing.assert_array_equal(labels, [0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(L.class_counts(labels), [2, 1, 3])
    np.testing.assert_array_equal(L.class_counts(np.array([0, 0]), 3), [2, 0, 0])


def test_torch_labels_are_accepted():
    torch = pytest.importorskip("torch")
    out = L.validate_labels(torch.tensor([0, 1, 1]))
    assert out.dtype == np.int64 and out.tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    "labels, kwargs, error, match",
    [
        (np.array([0.0, 1.0]), {}, TypeError, "integer"),
        (np.array([True, False]), {}, TypeError, "integer"),
        (np.array([0, 1, 3]), {"num_classes": 3}, ValueError, r"0\.\.2"),
        (np.array([-1, 0, 1]), {}, ValueError, "lie in"),
        (np.array([0, 0, 0]), {}, ValueError, "at least 2"),
        (np.array([[0, 1]]), {}, ValueError, "1-D"),
        (np.array([], dtype=int), {}, ValueError, "empty"),
        (np.array([0, 0, 1]), {"min_per_class": 2}, ValueError, "class 1: 1"),
        (np.array([0, 1]), {"num_classes": 3}, ValueError, "class 2: 0"),
    ],
)
def test_bad_labels_raise_clear_errors(labels, kwargs, error, match):
    with pytest.raises(error, match=match):
        L.validate_labels(labels, **kwargs)


def test_bad_counts_and_layouts():
    with pytest.raises(ValueError, match="at least 2"):
        L.balanced_labels(1, 3)
    with pytest.raises(ValueError, match="per_class"):
        L.balanced_labels(2, 0)
    with pytest.raises(ValueError, match=">= 1"):
        L.labels_from_counts([2, 0])
