"""Throughput of fullnet's full-batch GD against a bare PyTorch loop doing the same steps.

Problem: the quick Jacot MLP configuration (``fullnet/configs/jacot_mlp_mnist_quick.toml``: ReLU layers
512, 256, 128 and three linear layers of width 64) on all 5,000 mnist-5k digits (500 per class),
float32 training, full-batch GD θ ← θ − η(∇(data term) + λθ) with the learning-rate drop at 80%.

Three loops run in one process, on the same initial weights and data tensors:

- ``bare``: a plain PyTorch loop, loss (1/(2N))‖F − Y‖², ``torch.optim.SGD(lr=η, weight_decay=λ)``
  (the same update), no metrics, no checkpoints;
- ``fullnet, no metrics``: :class:`fullnet.training.Trainer` with ``log_points = 0`` and
  ``per_layer = False`` (the loop itself: parameter groups, interrupt handling, progress state);
- ``fullnet, default metrics``: the trainer with the configuration's schedule (per-layer metrics
  of :func:`fullnet.observe.observe` at ``log_points`` log-spaced epochs, float64 measurement).

The Markdown table gives wall time, epochs/s, samples/s (N·epochs/s) and the overhead relative to
the bare loop; a second table splits the metric cost into snapshots × seconds per snapshot and
extrapolates it to the configuration's full epoch count. The goal is ≤ 20% overhead at the
configuration's schedule.

Usage::

    python benchmarks/training.py            # the configuration's epochs (2000)
    python benchmarks/training.py --quick    # 100 epochs
    python benchmarks/training.py --epochs 300 --device cuda --threads 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from fullnet import training as ft  # noqa: E402
from fullnet.config import load_config  # noqa: E402
from fullnet.data import resolve_device  # noqa: E402

CONFIG = "jacot_mlp_mnist_quick"  # a packaged configuration (fullnet/configs/)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, epochs: int,
              learning_rate: float, weight_decay: float, drop_fraction: float,
              drop_factor: float) -> float:
    """Seconds for ``epochs`` full-batch GD steps of a plain PyTorch loop (no metrics)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    drop = ft.drop_epoch(epochs, drop_fraction) if drop_fraction < 1.0 else epochs
    count = inputs.shape[0]
    _synchronize(inputs.device)
    started = time.perf_counter()
    for epoch in range(epochs):
        if epoch == drop:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate * drop_factor
        optimizer.zero_grad(set_to_none=True)
        loss = 0.5 * (model(inputs).T - targets).pow(2).sum() / count
        loss.backward()
        optimizer.step()
    _synchronize(inputs.device)
    return time.perf_counter() - started


def fullnet_loop(model: torch.nn.Module, data, regularization, config, *, epochs: int,
                 metrics: bool) -> tuple[float, list[float]]:
    """Seconds of :meth:`Trainer.run` and the seconds of each snapshot it took."""
    training, observe_config = config.training, config.observe
    trainer = ft.Trainer(
        model, data, regularization, learning_rate=training.learning_rate, epochs=epochs,
        lr_drop_fraction=training.lr_drop_fraction, lr_drop_factor=training.lr_drop_factor,
        log_points=observe_config.log_points if metrics else 0,
        per_layer=observe_config.per_layer if metrics else False,
        metric_dtype=ft.DTYPES[observe_config.metric_dtype],
        rank_tolerance=observe_config.rank_tolerance, progress=False,
    )
    snapshot_seconds: list[float] = []
    measure = trainer.snapshot

    def timed_snapshot():
        _synchronize(data.device)
        begun = time.perf_counter()
        snapshot = measure()
        _synchronize(data.device)
        snapshot_seconds.append(time.perf_counter() - begun)
        return snapshot

    trainer.snapshot = timed_snapshot
    _synchronize(data.device)
    started = time.perf_counter()
    trainer.run()
    _synchronize(data.device)
    return time.perf_counter() - started, snapshot_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 epochs instead of the configuration's")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (overrides --quick)")
    parser.add_argument("--per-class", type=int, default=500, help="samples per class (500: all 5,000)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    arguments = parser.parse_args(argv)
    if arguments.threads is not None:
        torch.set_num_threads(arguments.threads)
    config = load_config(CONFIG, [f"data.per_class={arguments.per_class}"])
    full_epochs = config.training.epochs
    epochs = arguments.epochs or (100 if arguments.quick else full_epochs)
    device = resolve_device(arguments.device)
    dtype = ft.DTYPES[config.training.dtype]
    data, _ = ft.load_data(config.data, flatten=True, device=device, dtype=dtype)
    initial = ft.build_model(config.model, data.input_shape, data.num_classes).to(device=device, dtype=dtype)
    regularization = ft.regularization_from_config(config.training, initial.depth)
    if len(set(regularization.layer_lambdas)) != 1:
        raise SystemExit("the bare loop uses one weight decay; the configuration has per-layer λ")
    training = config.training
    # warm-up (allocator, kernels) on a throw-away copy
    bare_loop(copy.deepcopy(initial), data.inputs, data.targets, epochs=3,
              learning_rate=training.learning_rate, weight_decay=regularization.layer_lambdas[0],
              drop_fraction=1.0, drop_factor=1.0)

    bare_model = copy.deepcopy(initial)
    bare_seconds = bare_loop(
        bare_model, data.inputs, data.targets, epochs=epochs,
        learning_rate=training.learning_rate, weight_decay=regularization.layer_lambdas[0],
        drop_fraction=training.lr_drop_fraction, drop_factor=training.lr_drop_factor,
    )
    plain_model = copy.deepcopy(initial)
    plain_seconds, _ = fullnet_loop(plain_model, data, regularization, config, epochs=epochs,
                                    metrics=False)
    metric_model = copy.deepcopy(initial)
    metric_seconds, snapshot_times = fullnet_loop(metric_model, data, regularization, config,
                                                  epochs=epochs, metrics=True)
    snapshots = len(snapshot_times)
    snapshot_seconds = statistics.median(snapshot_times)
    with torch.no_grad():
        agreement = max(
            float((left - right).abs().max() / right.abs().max())
            for left, right in zip(metric_model.weight_matrices(), bare_model.weight_matrices())
        )

    count = data.num_samples
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU, {torch.get_num_threads()} torch threads")
    print(f"## fullnet full-batch GD throughput ({name})\n")
    print(f"mnist-5k, N = {count}, widths {initial.widths}, float32 training, "
          f"{epochs} epochs, metrics at {snapshots} log-spaced epochs "
          f"(log_points = {config.observe.log_points}, float64 per-layer metrics)\n")
    print("| loop | wall s | epochs/s | samples/s | overhead vs bare |")
    print("|---|---:|---:|---:|---:|")
    for label, seconds in (("bare PyTorch (SGD, no metrics)", bare_seconds),
                           ("fullnet Trainer, no metrics", plain_seconds),
                           ("fullnet Trainer, default metrics", metric_seconds)):
        print(f"| {label} | {seconds:.2f} | {epochs / seconds:.3f} | {count * epochs / seconds:,.0f} "
              f"| {100 * (seconds / bare_seconds - 1):+.1f}% |")
    step_seconds = bare_seconds / epochs
    full_snapshots = len(ft.log_spaced_epochs(full_epochs, config.observe.log_points))
    loop_overhead = plain_seconds / bare_seconds - 1
    print()
    print("| split | value |")
    print("|---|---:|")
    print(f"| bare step | {1e3 * step_seconds:.1f} ms |")
    print(f"| one snapshot (observe, per-layer metrics), median of {snapshots} "
          f"| {snapshot_seconds:.3f} s = {snapshot_seconds / step_seconds:.1f} steps |")
    print(f"| fastest / slowest snapshot | {min(snapshot_times):.3f} s / {max(snapshot_times):.3f} s |")
    print(f"| metric cost of this run | {metric_seconds - plain_seconds:.2f} s "
          f"({snapshots} snapshots) |")
    extrapolated = loop_overhead + full_snapshots * snapshot_seconds / (full_epochs * step_seconds)
    print(f"| predicted overhead at the configuration's {full_epochs} epochs "
          f"({full_snapshots} snapshots) | {100 * extrapolated:+.1f}% |")
    print(f"| max relative difference of the final weights, fullnet vs bare | {agreement:.2e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
