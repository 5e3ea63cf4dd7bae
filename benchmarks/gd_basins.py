"""Which minimum of the 4-DUFM plain GD ends in, and how that depends on its fixed step.

Model: the benchmark model of ``benchmarks/solvers.py`` (docs/theory.md §4.6, low-rank case; E-C2):
:class:`ufm.models.DeepUFM` with K = 10, L = 4, width 30, n = 1, λ = 0.004 on every block. From
the E-B1 initialization of every seed:

- plain GD with each fixed step η of ``--steps`` (default 0.25, 0.5, 1.0; 0.5 is the papers'),
  run for the same time of the gradient flow, η × steps = ``--flow-time`` (default 50,000: the
  100,000 steps of η = 0.5 in ``benchmarks/solvers.py``);
- ``kink_lbfgs`` with ``ufm.solvers.KINK_LBFGS_LOW_RANK_SETTINGS`` (3,000 iterations);

then every end point is polished by scipy L-BFGS-B on Φ (gradient tolerance 1e-12, up to
``--polish-iterations``) to the bottom of the minimum it sits in. The table shows each run's final
loss, the polished value and the ranks of H_1..H_4 and H̃_4 (singular values above 1e-3 times the
largest).

Two polished values that differ by more than ``SAME_MINIMUM`` = 1e-4 are two different minima.
Polishing stalls at the ReLU kinks a little above the bottom: the three polished ends of one
minimum (seeds 2 and 4, where every step ends in the same one) agree to about 1e-6, but two
polishers (L-BFGS-B; ``kink_lbfgs`` with smoothing from ρ = 0.01) disagree by up to 5e-5 on the
end points of seeds 3 and 9, so differences below 1e-4 are not counted. GD with η = 0.25 follows
the gradient flow more closely than the papers' η = 0.5 does, and η = 1.0 less; where their minima
differ from η = 0.5's, the minimum GD ends in is a property of its step, not of the flow: no method
that follows GD's path faster can be sure to reach GD's minimum.

Run: ``python benchmarks/gd_basins.py --seeds 0 1 2 3 4 5 6 7 8 9`` (≈ 1 minute a seed) and
``--plot gd_basins.png`` for a picture of the polished minima (relative to L_DNC, docs/theory.md §4.3).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ufm import optima  # noqa: E402
from ufm import solvers  # noqa: E402
from ufm.models import DeepUFM  # noqa: E402

NUM_CLASSES, NUM_LAYERS, WIDTH, PER_CLASS, PENALTY = 10, 4, 30, 1, 0.004
PAPERS_STEP = 0.5
SAME_MINIMUM = 1e-4
RANK_TOLERANCE = 1e-3


@dataclass
class EndPoint:
    """One run from one seed: where it ended and the minimum it sits in.

    Attributes
    ----------
    seed, method : int, str
        The initialization seed and ``"gd η=<step>"`` or ``"kink_lbfgs"``.
    final_loss : float
        Φ at the run's last iterate.
    polished_loss : float
        Φ after polishing that iterate with L-BFGS-B (its line search never raises Φ).
    ranks : tuple of int
        Ranks of H_1..H_L and H̃_L at the polished point (relative tolerance ``RANK_TOLERANCE``).
    seconds : float
        Wall time of the run (without the polish).
    """

    seed: int
    method: str
    final_loss: float
    polished_loss: float
    ranks: tuple[int, ...]
    seconds: float


def build_model() -> DeepUFM:
    """The 4-DUFM of docs/theory.md §4.6 (K = 10, width 30, n = 1, λ = 0.004 on every block)."""
    return DeepUFM(NUM_CLASSES, PER_CLASS, (WIDTH,) * NUM_LAYERS, PENALTY, PENALTY)


def feature_ranks(model: DeepUFM, params) -> tuple[int, ...]:
    """Ranks of H_1..H_L and of H̃_L (singular values above ``RANK_TOLERANCE`` times the largest).

    With n = 1 sample per class these are the ranks of the class means M_l of
    ``benchmarks/solvers.py``.
    """
    layers = model.forward(params)
    ranks = []
    for features in [*layers.post_activations, layers.pre_activations[-1]]:
        singular = np.linalg.svd(features, compute_uv=False)
        ranks.append(int(np.sum(singular > RANK_TOLERANCE * singular[0])) if singular[0] else 0)
    return tuple(ranks)


def polished_end(model, seed, method, solution, polish_iterations) -> EndPoint:
    """Polish ``solution``'s parameters with scipy L-BFGS-B and describe the minimum."""
    polished = solvers.solve(
        model,
        "lbfgs",
        initial=solution.parameters,
        tolerance=1e-12,
        max_iterations=polish_iterations,
        history_points=0,
        predicted=None,
        progress=False,
    )
    return EndPoint(
        seed=seed,
        method=method,
        final_loss=solution.loss,
        polished_loss=polished.loss,
        ranks=feature_ranks(model, polished.parameters),
        seconds=solution.time_seconds,
    )


def seed_end_points(
    model: DeepUFM,
    seed: int,
    steps: tuple[float, ...],
    flow_time: float,
    polish_iterations: int,
    kink_iterations: int,
) -> list[EndPoint]:
    """GD with every step of ``steps`` (η × iterations = ``flow_time``) and kink_lbfgs."""
    initial = model.random_parameters(seed)
    quiet = {"tolerance": 1e-9, "history_points": 0, "predicted": None, "progress": False}
    ends = []
    for step in steps:
        iterations = max(1, int(round(flow_time / step)))
        solution = solvers.solve(
            model, "gd", initial=initial, lr=step, max_iterations=iterations, **quiet
        )
        ends.append(polished_end(model, seed, f"gd η={step:g}", solution, polish_iterations))
    if kink_iterations > 0:
        settings = solvers.KINK_LBFGS_LOW_RANK_SETTINGS
        solution = solvers.solve(
            model, "kink_lbfgs", initial=initial, lr=PAPERS_STEP, max_iterations=kink_iterations,
            **settings, **quiet,
        )
        ends.append(polished_end(model, seed, "kink_lbfgs", solution, polish_iterations))
    return ends


def summary(ends: list[EndPoint], reference: float) -> str:
    """Markdown table of every end point and the counts the module docstring speaks of."""
    lines = [
        "| seed | method | seconds | final loss | polished minimum | minimum / L_DNC | "
        "ranks H_1..H_4, H̃_4 |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for end in ends:
        lines.append(
            f"| {end.seed} | {end.method} | {end.seconds:.2f} | {end.final_loss:.7f} | "
            f"{end.polished_loss:.7f} | {end.polished_loss / reference:.4f} | "
            f"({', '.join(map(str, end.ranks))}) |"
        )
    seeds = sorted({end.seed for end in ends})
    by_seed = {seed: {e.method: e for e in ends if e.seed == seed} for seed in seeds}
    papers = f"gd η={PAPERS_STEP:g}"
    lines += [
        "",
        f"L_DNC = {reference:.8f}; same minimum: polished values within {SAME_MINIMUM:g}.",
    ]
    for method in sorted({e.method for e in ends} - {papers}):
        pairs = [
            (runs[method], runs[papers])
            for runs in by_seed.values()
            if method in runs and papers in runs
        ]
        same = sum(abs(a.polished_loss - b.polished_loss) <= SAME_MINIMUM for a, b in pairs)
        lower = sum(a.polished_loss < b.polished_loss - SAME_MINIMUM for a, b in pairs)
        lines.append(
            f"{method}: same minimum as {papers} on {same} of {len(pairs)} seeds, a lower one on "
            f"{lower}, a higher one on {len(pairs) - same - lower}."
        )
    for method in sorted({e.method for e in ends}):
        values = np.array([e.polished_loss for e in ends if e.method == method])
        lines.append(
            f"{method}: polished minima {values.min():.7f}–{values.max():.7f} "
            f"(median {np.median(values):.7f}) over {values.size} seeds."
        )
    return "\n".join(lines)


def plot(ends: list[EndPoint], reference: float, path: Path) -> Path:
    """Polished minimum / L_DNC of every run against its seed, one marker per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(end.method for end in ends))
    markers = "o^sDv<>"
    figure, axes = plt.subplots(figsize=(7.0, 3.6), layout="constrained")
    for index, method in enumerate(methods):
        chosen = [end for end in ends if end.method == method]
        offset = (index - (len(methods) - 1) / 2) * 0.12
        axes.scatter(
            [end.seed + offset for end in chosen],
            [end.polished_loss / reference for end in chosen],
            marker=markers[index % len(markers)],
            s=28,
            label=method,
        )
    axes.axhline(1.0, color="0.4", linestyle="--", linewidth=1, label="L_DNC")
    axes.set_xlabel("seed")
    axes.set_ylabel("polished minimum / L_DNC")
    axes.set_title("4-DUFM (K = 10, width 30, λ = 0.004): the minimum each run ends in")
    axes.legend(fontsize=8, ncols=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    figure.savefig(partial, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(figure)
    partial.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="initialization seeds")
    parser.add_argument(
        "--steps", type=float, nargs="+", default=[0.25, PAPERS_STEP, 1.0], help="GD steps η"
    )
    parser.add_argument(
        "--flow-time", type=float, default=50_000.0, help="η × GD steps, the same for every η"
    )
    parser.add_argument("--polish-iterations", type=int, default=20_000)
    parser.add_argument(
        "--kink-iterations", type=int, default=3000, help="kink_lbfgs iterations (0: skip it)"
    )
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of the minima")
    arguments = parser.parse_args(argv)
    if arguments.flow_time <= 0:
        parser.error(f"--flow-time must be > 0, got {arguments.flow_time}")
    if any(seed < 0 for seed in arguments.seeds):
        parser.error(f"--seeds must be non-negative integers, got {arguments.seeds}")
    if any(step <= 0 for step in arguments.steps):
        parser.error(f"--steps must all be > 0, got {arguments.steps}")
    model = build_model()
    reference = optima.predict(model).optimal_loss
    ends = []
    for seed in tqdm(arguments.seeds, desc="seeds", unit="seed", disable=None):
        ends += seed_end_points(
            model,
            seed,
            tuple(arguments.steps),
            arguments.flow_time,
            arguments.polish_iterations,
            arguments.kink_iterations,
        )
    print(summary(ends, reference))
    if arguments.plot is not None:
        print(f"wrote {plot(ends, reference, arguments.plot)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
