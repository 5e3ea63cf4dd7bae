"""Tests of the compiled kernels of the metric passes (:mod:`ufm.fused_kernels`) and of the
``kernels`` option that chooses between them and numpy.

Kernel outputs are compared with numpy formulas of the same quantities in float64. Tolerances:
a kernel sum and numpy's are sums of the same d (or N) float64 terms in different orders, so they
differ by at most 2·γ_n·Σ|terms| (γ_n = n·u/(1 − n·u), u = 2⁻⁵³); the tests use that bound
itself, computed from the data, not a fixed number.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ufm import metrics as m
from ufm import metrics_accumulator as ma
from ufm.metrics_accumulator import MetricsAccumulator, fused_kernels

torch.set_num_threads(1)

U = 2.0**-53


def gamma(n: int) -> float:
    return n * U / (1 - n * U)


@pytest.fixture(scope="module")
def kernels():
    module = fused_kernels("compiled")
    assert module is not None
    return module


def _rows(seed, n, d, k, dtype=np.float32, spread=1.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    labels[: min(k, n)] = np.arange(min(k, n))
    centres = 3.0 * rng.standard_normal((k, d))
    features = (centres[labels] + spread * rng.standard_normal((n, d))).astype(dtype)
    weights = centres + 0.2 * rng.standard_normal((k, d))
    bias = 0.1 * rng.standard_normal(k)
    return features, labels, weights, bias


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, d, k", [(1, 1, 2), (7, 13, 3), (61, 9, 5), (250, 40, 12)])
def test_class_sums_rows_and_columns(kernels, dtype, n, d, k):
    # n not a multiple of 4 and d not a multiple of 8: every remainder branch runs
    features, labels, _, _ = _rows(0, n, d, k, dtype)
    labels = labels % k
    expected = np.zeros((k, d))
    np.add.at(expected, labels, features.astype(np.float64))
    bound = 2 * gamma(n) * np.abs(features).astype(np.float64).sum() + 1e-300
    rows = np.zeros((k, d))
    kernels.class_sums_rows(features, labels, rows)
    assert np.max(np.abs(rows - expected)) <= bound
    columns = np.zeros((d, k))
    kernels.class_sums_columns(np.ascontiguousarray(features.T), 0, n, labels, columns)
    assert np.max(np.abs(columns.T - expected)) <= bound
    if n > 3:  # a sample range of a wider array: only columns first..last−1 count
        part = np.zeros((d, k))
        kernels.class_sums_columns(np.ascontiguousarray(features.T), 2, n - 1, labels[2 : n - 1],
                                   part)
        sub = np.zeros((k, d))
        np.add.at(sub, labels[2 : n - 1], features[2 : n - 1].astype(np.float64))
        assert np.max(np.abs(part.T - sub)) <= bound


@pytest.mark.parametrize("width", [1, 2, 3, 4, 9, 19])
@pytest.mark.parametrize("n", [1, 3, 4, 6, 33])
def test_residual_products_rows(kernels, width, n):
    d, k = 21, 4
    features, labels, _, _ = _rows(1, n, d, k)
    labels = labels % k
    rng = np.random.default_rng(2)
    means = rng.standard_normal((k, d))
    product = rng.standard_normal((width, d))
    columns = np.full((width, n), np.nan)
    squares = np.full(n, np.nan)
    kernels.residual_products_rows(features, labels, means, product, columns, squares)
    residuals = features.astype(np.float64) - means[labels]
    expected = product @ residuals.T
    # γ_{d}·Σ_j |p_kj r_ij| per entry, for either order of the d products
    bound = 2 * gamma(d) * (np.abs(product) @ np.abs(residuals).T)
    assert np.all(np.abs(columns - expected) <= bound + 1e-300)
    square_bound = 2 * gamma(d) * np.sum(residuals**2, axis=1)
    assert np.all(np.abs(squares - np.sum(residuals**2, axis=1)) <= square_bound)


def test_residuals_columns(kernels):
    n, d, k = 37, 11, 3
    features, labels, _, _ = _rows(3, n, d, k, np.float64)
    columns = np.ascontiguousarray(features.T)
    means_t = np.random.default_rng(4).standard_normal((d, k))
    residuals = np.empty((d, 20))
    squares = np.empty(20)
    kernels.residuals_columns(columns, 10, labels[10:30], means_t, residuals, squares)
    expected = columns[:, 10:30] - means_t[:, labels[10:30]]
    assert np.array_equal(residuals, expected)  # one subtraction per entry: exact equality
    assert np.allclose(squares, np.sum(expected**2, axis=0), rtol=2 * gamma(d), atol=0)


def _reports_agree(got, expected, rtol):
    for key, value in expected.items():
        if value is None or isinstance(value, (int, np.integer)) or key == "NC4.ncc":
            assert got[key] == value, key
        elif np.isinf(value):
            assert got[key] == value, key
        else:
            assert got[key] == pytest.approx(value, rel=rtol, abs=1e-15), key


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_compiled_and_numpy_routes_agree(dtype, layout):
    # 1e-11 relative: each route's sums carry at most γ_N·(sum of |terms|) ≈ 1.3e-13 relative
    # (N = 1,200) on data with spread 1 around centres of norm ~20, and the metrics are ratios
    # and O(K³) algebra of those sums on class means of condition number < 10
    features, labels, weights, bias = _rows(5, 1200, 48, 7, dtype)
    data = features if layout == "rows" else np.ascontiguousarray(features.T)
    rows = layout == "rows"
    compiled = m.all_metrics(data, labels, weights, bias, rows=rows, kernels="compiled")
    numpy_route = m.all_metrics(data, labels, weights, bias, rows=rows, kernels="numpy")
    _reports_agree(compiled, numpy_route, 1e-11)


def test_exact_ties_are_rechecked_on_rows():
    # samples on the bisector of two centres ±e₁, W = [e₁; e₁]: every score ties too; the
    # compiled decisions leave them to the direct formula (lowest index on ties)
    rng = np.random.default_rng(6)
    d, n = 5, 12
    left = np.hstack([-np.ones((n, 1)), rng.standard_normal((n, d - 1))])
    right = np.hstack([np.ones((n, 1)), rng.standard_normal((n, d - 1))])
    left[:, 1:] -= left[:, 1:].mean(axis=0)
    right[:, 1:] -= right[:, 1:].mean(axis=0)
    middle = np.hstack([np.zeros((6, 1)), rng.standard_normal((6, d - 1))])
    features = np.vstack([left, right, middle])
    labels = np.r_[np.zeros(n, int), np.ones(n, int), [0, 1] * 3]
    weights = np.array([[1.0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0]])
    accumulator = MetricsAccumulator(2, weights=weights, rows=True, kernels="compiled")
    accumulator.update(features, labels)
    accumulator.next_pass()
    accumulator.update(features, labels)
    assert accumulator.rechecked >= 6
    expected = m.nc4_nearest_class_center_agreement(features.T, labels, weights=weights)
    assert accumulator.report()["NC4.ncc"] == expected


@pytest.mark.parametrize("layout", ["rows", "columns"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_features_are_named(layout, bad):
    features, labels, weights, _ = _rows(7, 300, 16, 3)
    features[123, 4] = bad
    data = features if layout == "rows" else np.ascontiguousarray(features.T)
    with pytest.raises(ValueError, match=r"features holds NaN or Inf entries \(1 in samples"):
        m.all_metrics(data, labels, weights, rows=layout == "rows", kernels="compiled")


def test_strided_input_takes_the_numpy_route(monkeypatch):
    features, labels, weights, bias = _rows(8, 400, 30, 4)
    strided = np.asarray(features[:, ::2])  # neither rows nor columns contiguous
    called = []
    original = ma.MetricsAccumulator._first_pass_fused
    monkeypatch.setattr(ma.MetricsAccumulator, "_first_pass_fused",
                        lambda self, *args: called.append(1) or original(self, *args))
    got = m.all_metrics(strided, labels, weights[:, ::2], bias, rows=True)
    assert not called
    expected = m.all_metrics(np.ascontiguousarray(strided), labels, weights[:, ::2], bias,
                             rows=True)
    assert called
    _reports_agree(got, expected, 1e-11)


def test_torch_cpu_batches_are_read_in_place():
    features, labels, weights, bias = _rows(9, 500, 24, 5)
    # values that bfloat16 holds exactly, so that a bfloat16 batch carries the same samples
    features = torch.from_numpy(features).to(torch.bfloat16).to(torch.float32).numpy()
    tensor = torch.from_numpy(features)
    accumulator = MetricsAccumulator(5, weights=weights, bias=bias, rows=True)
    for one_pass in range(2):
        # the first half as float32 (a numpy view), the second as bfloat16 (widened exactly)
        accumulator.update(tensor[:250], torch.from_numpy(labels[:250]))
        accumulator.update(tensor[250:].to(torch.bfloat16), labels[250:])
        assert accumulator._is_torch is False  # host memory, compiled kernels
        if one_pass == 0:
            accumulator.next_pass()
    expected = m.all_metrics(features, labels, weights, bias, rows=True, kernels="numpy")
    _reports_agree(accumulator.report(), expected, 1e-11)
    numpy_route = MetricsAccumulator(5, weights=weights, bias=bias, rows=True, kernels="numpy")
    numpy_route.update(tensor, labels)
    assert numpy_route._is_torch is True  # torch's own kernels then


def test_memory_mapped_rows(tmp_path):
    features, labels, weights, bias = _rows(10, 800, 32, 6)
    np.save(tmp_path / "F.npy", features)
    mapped = np.load(tmp_path / "F.npy", mmap_mode="r")
    got = m.all_metrics(mapped, labels, weights, bias, rows=True, kernels="compiled")
    _reports_agree(got, m.all_metrics(features, labels, weights, bias, rows=True,
                                      kernels="numpy"), 1e-11)


def test_kernels_option_errors(monkeypatch):
    with pytest.raises(ValueError, match="kernels must be one of"):
        MetricsAccumulator(3, kernels="fast")
    with pytest.raises(ValueError, match="kernels must be one of"):
        m.all_metrics(np.ones((4, 3)), [0, 1, 2, 0], kernels=None)
    monkeypatch.setattr(ma, "_FUSED", False)  # as without numba
    with pytest.raises(ModuleNotFoundError, match="kernels='compiled' needs the package numba"):
        MetricsAccumulator(3, kernels="compiled")
    assert fused_kernels("auto") is None  # "auto" falls back to numpy
    report = m.all_metrics(np.arange(12.0).reshape(4, 3) ** 1.5, [0, 1, 2, 0], rows=True)
    assert report["NC1.tr"] > 0


def test_environment_variable_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv(ma.FUSED_KERNELS_VARIABLE, "0")
    assert fused_kernels("auto") is None
    assert fused_kernels("compiled") is not None  # an explicit request still gets them


def test_cli_kernels_option(tmp_path):
    features, labels, weights, _ = _rows(11, 600, 20, 4)
    for name, value in (("F", features), ("y", labels), ("W", weights)):
        np.save(tmp_path / f"{name}.npy", value)
    outputs = {}
    for choice in ("auto", "compiled", "numpy"):
        done = subprocess.run(
            [sys.executable, "-m", "ufm", "metrics", "--features", str(tmp_path / "F.npy"),
             "--labels", str(tmp_path / "y.npy"), "--weights", str(tmp_path / "W.npy"), "--rows",
             "--kernels", choice, "--json"],
            capture_output=True, text=True, check=True,
        )
        outputs[choice] = json.loads(done.stdout)
    assert outputs["auto"] == outputs["numpy"]  # 12,000 values: under the CLI's threshold
    _reports_agree(outputs["compiled"], outputs["numpy"], 1e-11)
    bad = subprocess.run(
        [sys.executable, "-m", "ufm", "metrics", "--features", str(tmp_path / "F.npy"), "--labels",
         str(tmp_path / "y.npy"), "--kernels", "fast"],
        capture_output=True, text=True,
    )
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "--kernels" in bad.stderr


def test_cli_auto_rule_switches_at_its_threshold():
    from ufm.cli import CLI_COMPILED_MIN_VALUES, _metrics_kernels

    assert _metrics_kernels("auto", CLI_COMPILED_MIN_VALUES - 1) == "numpy"
    assert _metrics_kernels("auto", CLI_COMPILED_MIN_VALUES) == "auto"
    assert _metrics_kernels("numpy", 10**12) == "numpy"
    assert _metrics_kernels("compiled", 1) == "compiled"
