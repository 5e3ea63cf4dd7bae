"""Command line of :mod:`figures`.

::

    ufm-figures --list
    ufm-figures NAME [NAME ...] [--quick] [--out DIR] [--set KEY=VALUE ...]
    ufm-figures all [--quick] [--out DIR]
    ufm-figures explore dufm [--K K --L L --n N --lam LAM --width D] [--out DIR]
    ufm-figures explore store PATH [--metric M --layer L] [--out DIR]
    ufm-figures explore notebook [--out DIR] [--open]

(``ufm-figures`` is the console command; ``python -m figures`` is the same.)

``--set KEY=VALUE`` changes one of a figure's settings (a JSON value, or a string), e.g.
``python -m figures jacot2025_fig1 --set data_root=/data --set seeds=[0,1]`` for the full
ResNet20/CIFAR-10 version on two seeds; an unknown key is an error that lists the known ones.

``explore`` writes the plots of ``figures/explorer.ipynb`` as PNG (:mod:`figures.explorer`);
``explore notebook`` copies the notebook (shipped with the package) into a folder.

Each figure is timed and its files are printed. Exit status: 0 when every figure was made,
1 when one of them failed (the others are still made), 2 for a usage error such as an unknown
figure name.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Sequence

from .overrides import SettingsError, parse_overrides
from .registry import FIGURES, UnknownFigureError, check_overrides, figure_info, figure_names, make_figure

DEFAULT_OUT = os.path.join("outputs", "figures")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ufm-figures`` (``python -m figures``)."""
    from ufm.cli import program_name

    parser = argparse.ArgumentParser(
        prog=program_name("figures", "ufm-figures"),
        description="Make the figures of ufm-sandbox (PNG and the data behind it, CSV and JSON).",
        epilog="explore {dufm,store,notebook} --help: the explorer's plots as PNG, or its notebook.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="figure names (see --list), or 'all'",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the CPU-minutes version (fewer seeds and steps) that CI runs",
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output folder (default {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one setting of the figure (JSON value, e.g. seeds=[0,1], data_root=/data); repeatable",
    )
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    return parser


def _resolve_names(names: Sequence[str]) -> list[str]:
    if "all" in names:
        return figure_names()
    resolved: list[str] = []
    for name in names:
        figure_info(name)  # raises UnknownFigureError
        if name not in resolved:
            resolved.append(name)
    return resolved


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "explore":
        from .explorer import main as explore_main

        return explore_main(argv[1:])
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.list:
        width = max(len(info.name) for info in FIGURES)
        for info in FIGURES:
            print(f"{info.name:<{width}}  {info.experiment:<5}  {info.summary}")
        return 0
    if not arguments.names:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: give figure names, 'all', or --list", file=sys.stderr)
        return 2
    try:
        names = _resolve_names(arguments.names)
        overrides = parse_overrides(arguments.overrides)
        for name in names:  # every key and value checked before anything runs
            check_overrides(name, overrides, arguments.quick)
    except (UnknownFigureError, SettingsError) as error:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    failures = 0
    total = 0.0
    mode = "quick" if arguments.quick else "full"
    timings: list[tuple[str, str, float]] = []
    for name in names:
        print(f"[figures] {name} ({mode}) ...", flush=True)
        try:
            result = make_figure(name, arguments.out, quick=arguments.quick, overrides=overrides)
        except Exception:  # one failing figure must not stop the others
            failures += 1
            traceback.print_exc()
            print(f"[figures] {name} FAILED", file=sys.stderr, flush=True)
            continue
        total += result.seconds
        timings.append((name, mode, result.seconds))
        print(f"[figures] {name}: {result.seconds:.1f} s", flush=True)
        for path in result.paths:
            print(f"    {path}")
    if len(names) > 1:
        print(f"[figures] {len(names) - failures}/{len(names)} figures in {total:.1f} s")
    if timings:
        write_timings(arguments.out, timings)
    return 1 if failures else 0


def write_timings(out_dir: str, timings: Sequence[tuple[str, str, float]]) -> str:
    """Write ``timings.csv`` (figure, mode, seconds, cores) beside the figures, atomically."""
    import csv

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "timings.csv")
    temporary = path + ".tmp"
    with open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["figure", "mode", "seconds", "cpu_cores"])
        for name, mode, seconds in timings:
            writer.writerow([name, mode, f"{seconds:.2f}", os.cpu_count()])
    os.replace(temporary, path)
    return path
