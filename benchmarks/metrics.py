"""Benchmark: class statistics and NC1–NC3 of 60,000 × 512 float32 features, K = 10.

Compares, in one run on the same data,

- ``ufm`` in memory, fast path: ``class_statistics(..., within="projection")``, the route the metric
  functions take from (features, labels): one float64 pass for means, counts and per-class sums of
  squares (per-class shift, chunked), a second pass projecting the residuals z − μ_y on the K − 1
  between-class directions; O(N d K), no d×d matrix. Then the NC1–NC3 metrics from the statistics;
- ``ufm`` in memory with the d×d scatter: ``class_statistics(..., within="scatter")``, one pass;
- ``ufm`` streamed in batches of 1,000 samples, two passes
  (:func:`ufm.streaming.accumulate_two_pass`: ``ClassStatisticsAccumulator(K, scatter=False)``, then
  :class:`ufm.streaming.WithinProjectionAccumulator`), for data that can be read twice;
- ``ufm`` streamed in one pass: :class:`ufm.streaming.ClassStatisticsAccumulator` with the d×d
  scatter (the only route when the data can be read once);
- the usual two-pass workflow of NC code: class means in a first pass over the batches, then per
  batch and per class Σ_W += (Z_c − μ_c)(Z_c − μ_c)ᵀ in float32 (and, for reference, in float64),
  then NC1 = tr(Σ_W Σ_B^+)/K with a d×d pseudo-inverse, NC2 and NC3 from the means;
- the same workflow written as the widely copied PyTorch NC code writes it, summing a stack of
  per-sample outer products (timed on ``--literal-samples`` samples and scaled to N, being linear
  in N and far slower);
- ``ufm`` in memory on a torch CPU tensor (torch ops, float64), fast path.

Prints a Markdown table: seconds (best of ``--repeat`` untraced runs, the methods taking turns so
that they meet the same background load), peak memory allocated by the method beyond the features
(one extra run under tracemalloc, where numpy registers its buffers; torch's allocator is not
visible there), and the relative errors against a float64 two-pass reference of NC1.pinv, of
UᵀS_WU (U the between-class directions of the reference means; every method) and of S_W (methods
that form it).

Run: ``python benchmarks/metrics.py`` (full size) or ``python benchmarks/metrics.py --quick``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ufm import metrics  # noqa: E402
from ufm.statistics import between_directions  # noqa: E402
from ufm.streaming import ClassStatisticsAccumulator, accumulate_two_pass  # noqa: E402


def make_data(num_samples: int, dimension: int, num_classes: int, seed: int = 0):
    """Gaussian classes as float32 columns (d, N), labels in random order, a last layer W."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_samples)
    labels[:num_classes] = np.arange(num_classes)
    means = 3.0 * rng.standard_normal((dimension, num_classes)) + 1.0
    features = means[:, labels] + 0.5 * rng.standard_normal((dimension, num_samples))
    weights = means.T + 0.1 * rng.standard_normal((num_classes, dimension))
    return np.asarray(features, dtype=np.float32), labels, weights


def ufm_metrics(stats, weights) -> dict[str, float]:
    """NC1–NC3 from class statistics."""
    cosine = metrics.nc3_cosine_alignment(stats, weights=weights)
    return {
        "NC1.tr_unc": metrics.nc1_trace_ratio_uncentered(stats),
        "NC1.tr": metrics.nc1_trace_ratio(stats),
        "NC1.pinv": metrics.nc1_pseudo_inverse(stats),
        "NC1.wt": metrics.nc1_within_total(stats),
        "NC1.cdnv": metrics.nc1_class_distance_normalized_variance(stats),
        "NC2.kappa": metrics.nc2_condition_number(stats),
        "NC2.orth": metrics.nc2_orthogonal_frame_distance(stats),
        "NC2.etf": metrics.nc2_simplex_etf_distance(stats),
        "NC3.cos": cosine.mean,
        "NC3.dual": metrics.nc3_self_duality_distance(stats, weights=weights),
        "NC3.span": metrics.nc3_span_residual(stats, weights=weights),
    }


def ufm_in_memory(features, labels, weights, num_classes, batch, within="projection"):
    stats = metrics.class_statistics(features, labels, num_classes, within=within)
    return stats, ufm_metrics(stats, weights)


def batches_of(features, labels, batch):
    """The (features, labels) batches of a data loader, as views."""
    return [
        (features[:, start : start + batch], labels[start : start + batch])
        for start in range(0, features.shape[1], batch)
    ]


def ufm_streamed(features, labels, weights, num_classes, batch):
    accumulator = ClassStatisticsAccumulator(num_classes)
    for features_batch, labels_batch in batches_of(features, labels, batch):
        accumulator.update(features_batch, labels_batch)
    stats = accumulator.finalize()
    return stats, ufm_metrics(stats, weights)


def ufm_streamed_two_pass(features, labels, weights, num_classes, batch):
    stats = accumulate_two_pass(lambda: batches_of(features, labels, batch), num_classes)
    return stats, ufm_metrics(stats, weights)


def two_pass(features, labels, weights, num_classes, batch, dtype, outer_products=False):
    """The usual NC workflow: means first, then per-batch per-class scatter, d×d pseudo-inverse.

    ``outer_products=False`` accumulates Σ_W += Z_cZ_cᵀ with one GEMM per class and batch (the
    efficient form); ``True`` forms the (B_c, d, d) stack of per-sample outer products and sums it,
    line by line as the widely copied PyTorch NC code does
    (``torch.matmul(z.unsqueeze(-1), z.unsqueeze(1)).sum(0)``).
    """
    dimension, num_samples = features.shape
    sums = np.zeros((dimension, num_classes), dtype=dtype)
    counts = np.zeros(num_classes, dtype=np.int64)
    for start in range(0, num_samples, batch):
        block = features[:, start : start + batch].astype(dtype, copy=False)
        block_labels = labels[start : start + batch]
        for c in range(num_classes):
            members = block[:, block_labels == c]
            sums[:, c] += members.sum(axis=1)
            counts[c] += members.shape[1]
    means = sums / counts.astype(dtype)
    scatter = np.zeros((dimension, dimension), dtype=dtype)
    for start in range(0, num_samples, batch):
        block = features[:, start : start + batch].astype(dtype, copy=False)
        block_labels = labels[start : start + batch]
        for c in range(num_classes):
            centred = block[:, block_labels == c] - means[:, c : c + 1]
            if outer_products:
                rows = centred.T  # (B_c, d), as a framework hands out a batch
                scatter += np.matmul(rows[:, :, None], rows[:, None, :]).sum(axis=0)
            else:
                scatter += centred @ centred.T
    within = scatter.astype(np.float64) / num_samples
    means = means.astype(np.float64)
    global_mean = means.mean(axis=1, keepdims=True)
    centred_means = means - global_mean
    between = centred_means @ centred_means.T / num_classes
    nc1 = float(np.trace(within @ np.linalg.pinv(between))) / num_classes
    gram = centred_means.T @ centred_means
    norms = np.sqrt(np.diag(gram))
    cosines = gram / np.outer(norms, norms)
    nc2 = float(np.std(norms) / np.mean(norms) + np.std(cosines[np.triu_indices(num_classes, 1)]))
    nc3 = float(
        np.linalg.norm(weights / np.linalg.norm(weights) - means.T / np.linalg.norm(means))
    )
    return scatter.astype(np.float64), {"NC1.pinv": nc1, "NC2": nc2, "NC3.dual": nc3}


def projected_scatter(result, basis):
    """UᵀS_WU of a method's result (ClassStatistics or a d×d scatter)."""
    if isinstance(result, np.ndarray):
        return basis.T @ result @ basis
    return result.within_scatter_projected(basis)


def full_scatter(result):
    """S_W of a method's result, or None when the method does not form it."""
    return result if isinstance(result, np.ndarray) else result.within_scatter


def reference_scatter(features, labels, num_classes):
    """Float64 two-pass S_W with exact centring (accuracy reference)."""
    data = features.astype(np.float64)
    means = np.stack([data[:, labels == c].mean(axis=1) for c in range(num_classes)], axis=1)
    centred = data - means[:, labels]
    return centred @ centred.T


def peak_memory(function):
    """Peak bytes allocated (tracemalloc) during one run of ``function``."""
    tracemalloc.start()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6,000 × 128 instead of 60,000 × 512")
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--dimension", type=int, default=None)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true", help="skip the torch CPU row")
    parser.add_argument(
        "--literal-samples",
        type=int,
        default=2000,
        help="samples on which the (slow) per-sample outer-product code is timed",
    )
    arguments = parser.parse_args(argv)
    num_samples = arguments.samples or (6_000 if arguments.quick else 60_000)
    dimension = arguments.dimension or (128 if arguments.quick else 512)
    num_classes, batch = arguments.classes, arguments.batch

    features, labels, weights = make_data(num_samples, dimension, num_classes)
    reference = reference_scatter(features, labels, num_classes)
    reference_stats = metrics.class_statistics(features.astype(np.float64), labels, num_classes)
    reference_nc1 = metrics.nc1_pseudo_inverse(reference_stats)
    reference_basis = between_directions(reference_stats.means)[0]

    methods = [
        (
            "ufm in memory, fast path (float64, two passes, no d×d)",
            lambda: ufm_in_memory(features, labels, weights, num_classes, batch),
            True,
        ),
        (
            "ufm in memory, d×d scatter (float64, one pass)",
            lambda: ufm_in_memory(features, labels, weights, num_classes, batch, "scatter"),
            True,
        ),
        (
            f"ufm streamed, batches of {batch}, two passes (float64, no d×d)",
            lambda: ufm_streamed_two_pass(features, labels, weights, num_classes, batch),
            True,
        ),
        (
            f"ufm streamed, batches of {batch}, one pass (float64, d×d scatter)",
            lambda: ufm_streamed(features, labels, weights, num_classes, batch),
            True,
        ),
        (
            f"baseline two-pass, batches of {batch}, float32",
            lambda: two_pass(features, labels, weights, num_classes, batch, np.float32),
            True,
        ),
        (
            f"baseline two-pass, batches of {batch}, float64",
            lambda: two_pass(features, labels, weights, num_classes, batch, np.float64),
            True,
        ),
    ]
    subset = min(num_samples, arguments.literal_samples)
    literal_features, literal_labels = features[:, :subset], labels[:subset]
    methods.append(
        (
            f"usual NC code (per-sample outer products), float32, measured on {subset} samples"
            + (f", time × {num_samples / subset:g}" if subset < num_samples else ""),
            lambda: two_pass(
                literal_features, literal_labels, weights, num_classes, batch, np.float32, True
            ),
            True,
        )
    )
    if not arguments.no_torch:
        try:
            import torch
        except ImportError:  # pragma: no cover
            torch = None
        if torch is not None:
            tensor, tensor_labels = torch.from_numpy(features), torch.from_numpy(labels)
            methods.append(
                (
                    f"ufm in memory, fast path, torch CPU tensor (float64, "
                    f"{torch.get_num_threads()} torch threads)",
                    lambda: ufm_in_memory(tensor, tensor_labels, weights, num_classes, batch),
                    False,  # torch's allocator is invisible to tracemalloc
                )
            )
    subset_reference = reference_scatter(literal_features, literal_labels, num_classes)
    subset_stats = metrics.class_statistics(
        literal_features.astype(np.float64), literal_labels, num_classes
    )
    subset_nc1 = metrics.nc1_pseudo_inverse(subset_stats)
    subset_basis = between_directions(subset_stats.means)[0]
    # Round-robin repeats, so that every method meets the same background load; best time kept.
    best = {name: float("inf") for name, _, _ in methods}
    results = {}
    for round_index in range(arguments.repeat):
        for name, function, _ in methods:
            if name.startswith("usual NC code") and round_index > 0:
                continue  # slow: timed once
            start = time.perf_counter()
            results[name] = function()
            best[name] = min(best[name], time.perf_counter() - start)
    rows = []
    for name, function, trace in methods:
        literal = name.startswith("usual NC code")
        result, values = results[name]
        if literal:
            target, target_nc1, basis = subset_reference, subset_nc1, subset_basis
        else:
            target, target_nc1, basis = reference, reference_nc1, reference_basis
        seconds = best[name] * (num_samples / subset if literal else 1.0)  # linear in N
        peak = peak_memory(function) if trace else None
        projected_target = basis.T @ target @ basis
        projected_error = float(
            np.linalg.norm(projected_scatter(result, basis) - projected_target)
            / np.linalg.norm(projected_target)
        )
        scatter = full_scatter(result)
        scatter_error = (
            None
            if scatter is None
            else float(np.linalg.norm(scatter - target) / np.linalg.norm(target))
        )
        nc1_error = abs(values["NC1.pinv"] - target_nc1) / target_nc1
        rows.append((name, seconds, peak, nc1_error, projected_error, scatter_error))

    threads = os.environ.get("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "default"))
    print(
        f"N = {num_samples}, d = {dimension}, K = {num_classes}, float32 features (d × N), "
        f"best of {arguments.repeat}, BLAS threads: {threads}, NC1.pinv = {reference_nc1:.6g}\n"
    )
    print(
        "| method | seconds | peak memory (MiB) | rel. error NC1.pinv | rel. error UᵀS_WU "
        "| rel. error S_W |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, seconds, peak, nc1_error, projected_error, scatter_error in rows:
        memory = "–" if peak is None else f"{peak / 2**20:.1f}"
        scatter_text = "–" if scatter_error is None else f"{scatter_error:.1e}"
        print(
            f"| {name} | {seconds:.3f} | {memory} | {nc1_error:.1e} | {projected_error:.1e} "
            f"| {scatter_text} |"
        )
    by_name = {row[0]: row[1] for row in rows}
    baseline32 = by_name[f"baseline two-pass, batches of {batch}, float32"]
    baseline64 = by_name[f"baseline two-pass, batches of {batch}, float64"]
    print("\nspeed-up vs the float32 / float64 two-pass baselines:")
    for name, seconds, *_ in rows:
        if name.startswith("ufm"):
            print(f"- {name}: {baseline32 / seconds:.2f}× / {baseline64 / seconds:.2f}×")
    print(
        f"features: {features.nbytes / 2**20:.1f} MiB; d² + Kd float64 = "
        f"{(dimension**2 + num_classes * dimension) * 8 / 2**20:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
