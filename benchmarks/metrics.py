"""Benchmark: the whole collapse report of 60,000 × 512 float32 features (K = 10), one thread.

Compares, in one run on the same data (samples as rows, float32, as a data loader gives them):

- the peer library rhubarbwu/neural-collapse, its own code imported from a checkout given with
  ``--peer PATH`` (never downloaded or vendored), in its documented float32 workflow: a means pass
  (``MeanAccumulator``), a covariance pass (``CovarAccumulator`` and ``VarNormAccumulator``), then
  NC1 = ``covariance_ratio`` (pinv), ``variability_cdnv``, ``simplex_etf_error``,
  ``self_duality_error`` and an NCC pass (``DecAccumulator``), in batches of ``--batch`` rows;
  without ``--peer``, a **re-implementation** of that workflow in numpy float32 (labelled so);
- ``ufm.all_metrics(features, labels, W, rows=True)``: every docs/theory.md §3 metric (NC1–NC4,
  RANK, KAPPA, ERR) in the two passes of :mod:`ufm.metrics_accumulator`, float64, with the
  compiled kernels of :mod:`ufm.fused_kernels` (the default) and with the numpy route
  (``kernels="numpy"``);
- ``ufm`` NC1–NC3 alone: ``MetricsAccumulator(K, rows=True)`` (no classifier in the passes), then
  the NC3 functions of the statistics with W;
- ``ufm.stream_metrics`` over the same batches (the loader route), and ``all_metrics`` on a torch
  CPU tensor and on columns (d, N);
- the ``ufm metrics`` command line end to end (a fresh process: imports, the .npy read, the
  report), when ``--cli`` is given.

Prints Markdown tables: median seconds of ``--repeat`` runs (the methods take turns, so that they
meet the same background load) and the ratio to the peer; then, per method, the relative errors
of NC1.pinv, NC1.cdnv, NC2.etf (the metrics the peer defines as docs/theory.md §3 does) and the
absolute error of NC4.ncc, against a float64 reference computed by another route (the one-pass
shifted d×d scatter of :func:`ufm.class_statistics` and the direct NC4 formula), on the benchmark
data and on data whose between-class spectrum spreads over ``--spread`` decades.

Run: ``python benchmarks/metrics.py --peer /path/to/neural-collapse`` (full size) or ``--quick``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ufm import metrics  # noqa: E402
from ufm.metrics_accumulator import MetricsAccumulator, stream_metrics  # noqa: E402

COMPARED = ("NC1.pinv", "NC1.cdnv", "NC2.etf", "NC4.ncc")


def make_data(
    num_samples: int, dimension: int, num_classes: int, *, spread: float = 0.0, seed: int = 0
):
    """Gaussian classes as float32 rows (N, d), labels in random order, a last layer W (K, d).

    ``spread`` > 0 gives the centred class means singular values 10^0 … 10^−spread (a spread
    between-class spectrum); 0 gives isotropic random means.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_samples)
    labels[:num_classes] = np.arange(num_classes)
    if spread > 0:
        left = np.linalg.qr(rng.standard_normal((dimension, num_classes - 1)))[0]
        right = np.linalg.qr(rng.standard_normal((num_classes, num_classes - 1)))[0]
        right -= right.mean(axis=0)  # centred columns
        values = 3.0 * np.sqrt(dimension) * np.logspace(0, -spread, num_classes - 1)
        means = left @ np.diag(values) @ right.T + 1.0
        noise = 0.5 * 10.0 ** (-spread)
    else:
        means = 3.0 * rng.standard_normal((dimension, num_classes)) + 1.0
        noise = 0.5
    features = means[:, labels].T + noise * rng.standard_normal((num_samples, dimension))
    weights = means.T + 0.1 * rng.standard_normal((num_classes, dimension))
    return np.asarray(features, dtype=np.float32), labels, weights


# ---------------------------------------------------------------------------------------------
# the peer, or its re-implementation
# ---------------------------------------------------------------------------------------------
def load_peer(path: str | None):
    """The peer's modules imported from a checkout (``PATH/neural_collapse``), or None."""
    if path is None:
        return None
    root = Path(path).expanduser().resolve()
    if not (root / "neural_collapse" / "__init__.py").is_file():
        raise SystemExit(
            f"--peer {path!r}: expected a checkout holding neural_collapse/__init__.py"
        )
    sys.path.insert(0, str(root))
    accumulate = importlib.import_module("neural_collapse.accumulate")
    measure = importlib.import_module("neural_collapse.measure")
    return accumulate, measure


def peer_workflow(peer, features, labels, weights, num_classes, batch):
    """The peer's documented float32 workflow (README "Accumulators" and "Measurements")."""
    import torch

    accumulate, measure = peer
    rows, targets = torch.from_numpy(features), torch.from_numpy(labels)
    classifier = torch.from_numpy(np.asarray(weights, dtype=np.float32))
    count, dimension = rows.shape
    means_accumulator = accumulate.MeanAccumulator(num_classes, dimension, "cpu")
    for start in range(0, count, batch):
        means_accumulator.accumulate(rows[start : start + batch], targets[start : start + batch])
    means, global_mean = means_accumulator.compute()
    covariance = accumulate.CovarAccumulator(num_classes, dimension, "cpu", M=means)
    variances = accumulate.VarNormAccumulator(num_classes, dimension, "cpu", M=means)
    for start in range(0, count, batch):
        covariance.accumulate(rows[start : start + batch], targets[start : start + batch], means)
        variances.accumulate(rows[start : start + batch], targets[start : start + batch], means)
    within = covariance.compute()
    variance_norms, _ = variances.compute()
    decisions = accumulate.DecAccumulator(num_classes, dimension, "cpu", M=means, W=classifier)
    for start in range(0, count, batch):
        decisions.accumulate(
            rows[start : start + batch], targets[start : start + batch], classifier, means
        )
    return {
        "NC1.pinv": measure.covariance_ratio(within, means, global_mean),
        "NC1.cdnv": measure.variability_cdnv(variance_norms, means),
        "NC2.etf": measure.simplex_etf_error(means, global_mean),
        "self_duality_error": measure.self_duality_error(classifier, means, global_mean),
        "NC4.ncc": measure.clf_ncc_agreement(decisions),
    }


def reimplemented_workflow(features, labels, weights, num_classes, batch):
    """Re-implementation (numpy float32) of the same workflow, for runs without ``--peer``."""
    count, dimension = features.shape
    sums = np.zeros((num_classes, dimension), dtype=np.float32)
    counts = np.zeros(num_classes)
    for start in range(0, count, batch):
        block, block_labels = features[start : start + batch], labels[start : start + batch]
        indicator = np.zeros((num_classes, block.shape[0]), dtype=np.float32)
        indicator[block_labels, np.arange(block.shape[0])] = 1
        sums += indicator @ block
        counts += indicator.sum(axis=1)
    means = sums / counts[:, None].astype(np.float32)
    global_mean = means.mean(axis=0)
    within = np.zeros((dimension, dimension), dtype=np.float32)
    variance_sums = np.zeros(num_classes, dtype=np.float32)
    agreements = 0
    classifier = np.asarray(weights, dtype=np.float32)
    for start in range(0, count, batch):
        block, block_labels = features[start : start + batch], labels[start : start + batch]
        difference = block - means[block_labels]
        within += difference.T @ difference
        np.add.at(variance_sums, block_labels, np.sum(difference**2, axis=1))
        distances = (
            np.sum(block**2, axis=1)[:, None]
            + np.sum(means**2, axis=1)[None, :]
            - 2 * block @ means.T
        )
        agreements += int(np.sum(distances.argmin(axis=1) == (block @ classifier.T).argmax(axis=1)))
    within /= count
    centred = means - global_mean
    between = centred.T @ centred / num_classes
    variances = variance_sums / counts
    pairs = [(i, j) for i in range(num_classes) for j in range(i + 1, num_classes)]
    cdnv = np.mean(
        [(variances[i] + variances[j]) / 2 / np.sum((means[i] - means[j]) ** 2) for i, j in pairs]
    )
    gram = centred @ centred.T
    gram = gram / np.linalg.norm(gram)
    projector = (np.eye(num_classes) - 1.0 / num_classes) / np.sqrt(num_classes - 1)
    return {
        "NC1.pinv": float(np.trace(np.linalg.pinv(between) @ within)) / num_classes,
        "NC1.cdnv": float(cdnv),
        "NC2.etf": float(np.linalg.norm(gram - projector)),
        "NC4.ncc": agreements / count,
    }


# ---------------------------------------------------------------------------------------------
# ufm
# ---------------------------------------------------------------------------------------------
def ufm_nc1_to_nc3(features, labels, weights, num_classes, kernels="auto"):
    """NC1–NC3 alone: the two passes without the classifier, then NC3 from the statistics."""
    accumulator = MetricsAccumulator(num_classes, rows=True, kernels=kernels)
    accumulator.update(features, labels)
    accumulator.next_pass()
    accumulator.update(features, labels)
    values = metrics.all_metrics(accumulator.statistics(), weights=weights)
    return {key: values[key] for key in values if key.startswith(("NC1", "NC2", "NC3"))}


def reference(features, labels, weights, num_classes):
    """Float64 reference by another route: the shifted one-pass d×d scatter and direct NC4."""
    columns = np.asarray(features, dtype=np.float64).T
    stats = metrics.class_statistics(columns, labels, num_classes, within="scatter")
    return {
        "NC1.pinv": metrics.nc1_pseudo_inverse(stats),
        "NC1.cdnv": metrics.nc1_class_distance_normalized_variance(stats),
        "NC2.etf": metrics.nc2_simplex_etf_distance(stats),
        "NC4.ncc": metrics.nc4_nearest_class_center_agreement(columns, labels, weights=weights),
    }


def errors(values: dict, expected: dict) -> dict:
    """Relative errors of NC1.pinv, NC1.cdnv, NC2.etf; absolute error of NC4.ncc."""
    out = {}
    for key in COMPARED:
        if values.get(key) is None:
            out[key] = None
        elif key == "NC4.ncc":
            out[key] = abs(values[key] - expected[key])
        else:
            out[key] = abs(values[key] - expected[key]) / abs(expected[key])
    return out


def cli_seconds(features, labels, weights, kernels="auto") -> float:
    """Wall time of ``python -m ufm metrics --rows --kernels KERNELS`` on .npy files (a fresh
    process)."""
    with tempfile.TemporaryDirectory() as folder:
        paths = [os.path.join(folder, name) for name in ("F.npy", "y.npy", "W.npy")]
        for path, array in zip(paths, (features, labels, weights)):
            np.save(path, array)
        environment = dict(
            os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1"
        )
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ufm",
                "metrics",
                "--features",
                paths[0],
                "--labels",
                paths[1],
                "--weights",
                paths[2],
                "--rows",
                "--kernels",
                kernels,
                "--json",
            ],
            check=True,
            capture_output=True,
            cwd=ROOT,
            env=environment,
        )
        return time.perf_counter() - start


def format_error(value) -> str:
    return "–" if value is None else ("0" if value == 0 else f"{value:.1e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", default=None, help="checkout of rhubarbwu/neural-collapse")
    parser.add_argument("--quick", action="store_true", help="6,000 × 128 instead of 60,000 × 512")
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--dimension", type=int, default=None)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument(
        "--batch", type=int, default=1000, help="rows per batch (peer and streamed)"
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--spread",
        type=float,
        default=4.0,
        help="decades of the spread between-class spectrum of the error table",
    )
    parser.add_argument("--cli", action="store_true", help="also time `ufm metrics` end to end")
    arguments = parser.parse_args(argv)
    num_samples = arguments.samples or (6_000 if arguments.quick else 60_000)
    dimension = arguments.dimension or (128 if arguments.quick else 512)
    k, batch = arguments.classes, arguments.batch

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
    peer = load_peer(arguments.peer)
    baseline = (
        "peer (its own code, float32)"
        if peer
        else "re-implementation of the peer's workflow (numpy float32)"
    )

    def methods(features, labels, weights):
        rows_tensor = torch.from_numpy(features)
        columns = np.ascontiguousarray(features.T)
        batches = [
            (features[start : start + batch], labels[start : start + batch])
            for start in range(0, len(labels), batch)
        ]
        table = {
            baseline: (
                (lambda: peer_workflow(peer, features, labels, weights, k, batch))
                if peer
                else (lambda: reimplemented_workflow(features, labels, weights, k, batch))
            ),
            "ufm all_metrics, rows (every metric, NC4 and ERR included)": lambda: metrics.all_metrics(
                features, labels, weights, rows=True
            ),
            "ufm NC1–NC3 alone, rows": lambda: ufm_nc1_to_nc3(features, labels, weights, k),
            "ufm all_metrics, rows, numpy route (kernels='numpy')": lambda: metrics.all_metrics(
                features, labels, weights, rows=True, kernels="numpy"
            ),
            "ufm NC1–NC3 alone, rows, numpy route": lambda: ufm_nc1_to_nc3(
                features, labels, weights, k, kernels="numpy"
            ),
            f"ufm stream_metrics, batches of {batch} rows": lambda: stream_metrics(
                batches, k, weights=weights, rows=True
            ),
            "ufm all_metrics, torch CPU tensor rows": lambda: metrics.all_metrics(
                rows_tensor, torch.from_numpy(labels), weights, rows=True
            ),
            "ufm all_metrics, columns (d, N)": lambda: metrics.all_metrics(
                columns, labels, weights
            ),
        }
        return table

    features, labels, weights = make_data(num_samples, dimension, k)
    table = methods(features, labels, weights)
    times = {name: [] for name in table}
    results = {}
    for function in table.values():  # untimed: loads the compiled kernels, warms the caches
        function()
    for _ in range(arguments.repeat):
        for name, function in table.items():
            start = time.perf_counter()
            results[name] = function()
            times[name].append(time.perf_counter() - start)
    if arguments.cli:
        runs = max(3, arguments.repeat // 2)
        times["ufm metrics command line, end to end (fresh process; numpy route at this size)"] = [
            cli_seconds(features, labels, weights) for _ in range(runs)
        ]
        times["ufm metrics --kernels compiled, end to end (fresh process, kernels loaded)"] = [
            cli_seconds(features, labels, weights, "compiled") for _ in range(runs)
        ]
    medians = {name: float(np.median(values)) for name, values in times.items()}
    expected = reference(features, labels, weights, k)
    print(
        f"# {num_samples:,} × {dimension} float32 rows, K = {k}, one thread, "
        f"median of {arguments.repeat} runs\n"
    )
    print("| method | seconds | ÷ baseline | NC1.pinv | NC1.cdnv | NC2.etf | NC4.ncc |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, median in medians.items():
        found = errors(results[name], expected) if name in results else dict.fromkeys(COMPARED)
        print(
            f"| {name} | {median:.3f} | {median / medians[baseline]:.2f} | "
            + " | ".join(format_error(found[key]) for key in COMPARED)
            + " |"
        )
    print(
        "\nerrors: relative (NC1, NC2), absolute (NC4.ncc), against a float64 reference by "
        "another route (one-pass d×d scatter, direct NC4)"
    )

    if arguments.spread > 0:
        features, labels, weights = make_data(
            num_samples, dimension, k, spread=arguments.spread, seed=1
        )
        expected = reference(features, labels, weights, k)
        print(
            f"\n# errors with a between-class spectrum spread over {arguments.spread:g} decades\n"
        )
        print("| method | NC1.pinv | NC1.cdnv | NC2.etf | NC4.ncc |")
        print("|---|---:|---:|---:|---:|")
        for name, function in methods(features, labels, weights).items():
            found = errors(function(), expected)
            print(f"| {name} | " + " | ".join(format_error(found[key]) for key in COMPARED) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
