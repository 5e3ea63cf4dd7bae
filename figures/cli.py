"""Command line of :mod:`figures`.

::

    ufm-figures --list
    ufm-figures NAME [NAME ...] [--quick] [--out DIR] [--set KEY=VALUE ...]
                [--format png|pdf|svg[,...]] [--style default|paper] [--no-title]
    ufm-figures all [--quick] [--out DIR]
    ufm-figures explore dufm [--K K --L L --n N --lam LAM --width D] [--out DIR]
    ufm-figures explore store PATH [--metric M --layer L] [--out DIR]
    ufm-figures explore notebook [--out DIR] [--open]

(``ufm-figures`` is the console command; ``python -m figures`` is the same.)

``--set KEY=VALUE`` changes one of a figure's settings (a JSON value, or a string), e.g.
``python -m figures jacot2025_fig1 --set data_root=/data --set seeds=[0,1]`` for the full
ResNet20/CIFAR-10 version on two seeds; an unknown key is an error that lists the known ones.

``--format pdf`` (or ``svg``, ``png``; a comma list such as ``pdf,png`` writes several) chooses
the figure files, PNG by default. ``--style paper`` draws for a paper: the figure scaled to the
6.75 in text width (a figure designed wider than 11.25 in keeps 0.6 of its width), fonts of about
5–8 pt at that size, a one-line title, PNG at 300 dpi; ``--no-title`` draws no title, in either
style. Beside each figure go ``NAME.caption.md`` (a caption to paste and the provenance: paper,
experiment ID, settings, seeds, library functions, package version, quick or full, this command
line) and the data, ``NAME.csv`` and ``NAME.json`` (the same provenance under the key
``provenance``); see :mod:`figures.common`.

``explore`` writes the plots of ``figures/explorer.ipynb`` as PNG (:mod:`figures.explorer`);
``explore notebook`` copies the notebook (shipped with the package) into a folder.

Each figure is timed and its files are printed. Exit status: 0 when every figure was made,
1 when one of them failed (the others are still made), 2 for a usage error such as an unknown
figure name, a ``--set`` value outside the setting's range or an ``--out`` that is a file or
cannot be written (checked before any figure runs), and for an output that cannot be written
while a figure is made (a full disk): then that figure's files written so far are removed and no
further figure is made. Every error of the command line is one line on standard error.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from typing import Sequence

from .overrides import SettingsError, parse_overrides
from .registry import (
    CAPTION_SUFFIX,
    FIGURE_FORMATS,
    FIGURE_STYLES,
    FIGURES,
    UnknownFigureError,
    check_overrides,
    figure_info,
    figure_names,
    make_figure,
    parse_formats,
)

DEFAULT_OUT = os.path.join("outputs", "figures")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ufm-figures`` (``python -m figures``)."""
    from ufm.cli import ArgumentParser, program_name

    parser = ArgumentParser(
        prog=program_name("figures", "ufm-figures"),
        description="Make the figures of ufm-sandbox (PNG, PDF or SVG; a caption file with the "
                    "provenance; the data behind it, CSV and JSON).",
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
    parser.add_argument(
        "--format",
        dest="formats",
        action="append",
        default=None,
        metavar="FORMAT",
        help="figure file format: png (default), pdf or svg; a comma list (pdf,png) or a repeated "
             "option writes several",
    )
    parser.add_argument(
        "--style",
        choices=FIGURE_STYLES,
        default="default",
        help="default: screen look, one-line title; paper: 6.75 in wide (wide figures 0.6 of "
             "their width), 5-8 pt fonts, one-line title (the provenance is in NAME.caption.md "
             "and NAME.json either way)",
    )
    parser.add_argument(
        "--no-title",
        dest="title",
        action="store_false",
        help="draw no title on the figures (a paper's caption replaces it; NAME.caption.md has it)",
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


def _user_error(error: BaseException) -> BaseException:
    """The error of a bad command line, its message naming the argument."""
    from ufm.cli import CommandError

    if isinstance(error, UnknownFigureError):
        return CommandError(f"NAME: {error}")
    if isinstance(error, SettingsError):
        message = str(error)
        return CommandError(message if message.startswith("--set") else f"--set: {message}")
    return error


#: Settings that name a folder to read from: it must exist when the command line is parsed.
FOLDER_SETTINGS = ("data_root",)

#: The files of a figure: NAME.png (or .pdf, .svg), its caption and the data behind it.
FIGURE_SUFFIXES = tuple(f".{fmt}" for fmt in FIGURE_FORMATS) + (CAPTION_SUFFIX, ".csv", ".json")


def _file_states(out_dir: str, name: str) -> dict[str, tuple[int, int, int]]:
    """(size, mtime, inode) of figure ``name``'s files and of every temporary file in out_dir."""
    states = {}
    try:
        entries = list(os.scandir(out_dir))
    except OSError:
        return states
    own = {name + suffix for suffix in FIGURE_SUFFIXES}
    for entry in entries:
        if entry.name in own or ".tmp" in entry.name:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            states[entry.path] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return states


def _remove_partial(out_dir: str, name: str, before: dict) -> None:
    """Remove the figure's files (and temporary files) that a failed run created or changed."""
    for path, state in _file_states(out_dir, name).items():
        if before.get(path) != state:
            try:
                os.unlink(path)
            except OSError:
                pass


def _inside(path, folder: str) -> bool:
    try:
        folder = os.path.abspath(folder)
        return os.path.commonpath([os.path.abspath(os.fspath(path)), folder]) == folder
    except (TypeError, ValueError):
        return False


def _output_error(error: BaseException, out_dir: str):
    """The one-line error for an ``OSError`` that says an output could not be written, or None."""
    from ufm.cli import CommandError, is_output_error, os_error_reason

    if not is_output_error(error, out_dir):
        return None
    name = getattr(error, "filename", None)
    inside = name is not None and _inside(name, out_dir)
    reason = os_error_reason(error)
    if name is None or inside:
        shown = name if name is not None else out_dir
        return CommandError(f"--out: cannot write {str(shown)!r}: {reason}")
    return CommandError(f"cannot write {str(name)!r}: {reason}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from ufm.cli import CommandError, check_output_folder, report_error, run_parser

    os.environ.setdefault("MPLBACKEND", "Agg")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "explore":
        from .explorer import main as explore_main

        return explore_main(argv[1:])
    parser = build_parser()
    try:
        arguments = run_parser(parser, argv)
        if isinstance(arguments, int):  # --help
            return arguments
        if arguments.list:
            width = max(len(info.name) for info in FIGURES)
            for info in FIGURES:
                print(f"{info.name:<{width}}  {info.experiment:<5}  {info.summary}")
            return 0
        if not arguments.names:
            raise CommandError("NAME: give figure names, 'all', or --list")
        names = _resolve_names(arguments.names)
        try:
            formats = parse_formats(arguments.formats or ["png"])
        except ValueError as error:
            raise CommandError(f"--format: {error}") from None
        overrides = parse_overrides(arguments.overrides)
        for name in names:  # every key and value checked before anything runs
            check_overrides(name, overrides, arguments.quick)
        for key in FOLDER_SETTINGS:
            folder = overrides.get(key)
            if folder is not None and not (isinstance(folder, str) and os.path.isdir(folder)):
                raise CommandError(f"--set {key}: expected an existing folder, got {folder!r}")
        check_output_folder(arguments.out, "--out")
    except (CommandError, UnknownFigureError, SettingsError) as error:
        return report_error(_user_error(error))
    created = []
    probe = os.path.abspath(arguments.out)
    while not os.path.exists(probe):
        created.append(probe)
        probe = os.path.dirname(probe)
    failures = 0
    total = 0.0
    mode = "quick" if arguments.quick else "full"
    timings: list[tuple[str, str, float]] = []
    command = " ".join([parser.prog, *(shlex.quote(argument) for argument in argv)])
    for name in names:
        print(f"[figures] {name} ({mode}) ...", flush=True)
        before = _file_states(arguments.out, name)
        try:
            result = make_figure(name, arguments.out, quick=arguments.quick, overrides=overrides,
                                 formats=formats, style=arguments.style, title=arguments.title,
                                 command=command)
        except MemoryError as error:
            _remove_partial(arguments.out, name, before)
            failures += 1
            report_error(MemoryError(f"figure {name}: {error}" if str(error) else f"figure {name}"))
            print(f"[figures] {name} FAILED", file=sys.stderr, flush=True)
            continue
        except Exception as error:  # one failing figure must not stop the others
            stop = _output_error(error, arguments.out)
            if stop is not None:  # a full disk or an unwritable folder stops every figure
                _remove_partial(arguments.out, name, before)
                _remove_empty(created)
                return report_error(CommandError(f"{stop}; figure {name} was not made "
                                                 f"(its partial files were removed)"))
            failures += 1
            if isinstance(error, (OSError, SettingsError)) or type(error).__name__ == "ConfigError":
                report_error(CommandError(f"figure {name}: {error}"))
            else:
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
        try:
            write_timings(arguments.out, timings)
        except OSError as error:
            stop = _output_error(error, arguments.out)
            if stop is None:
                raise
            return report_error(CommandError(f"{stop} (timings.csv; the figures were written)"))
    return 1 if failures else 0


def _remove_empty(folders: Sequence[str]) -> None:
    for folder in folders:  # deepest first
        try:
            os.rmdir(folder)
        except OSError:
            pass


def write_timings(out_dir: str, timings: Sequence[tuple[str, str, float]]) -> str:
    """Write ``timings.csv`` (figure, mode, seconds, cores) beside the figures, atomically."""
    import csv

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "timings.csv")
    temporary = path + ".tmp"
    try:
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["figure", "mode", "seconds", "cpu_cores"])
            for name, mode, seconds in timings:
                writer.writerow([name, mode, f"{seconds:.2f}", os.cpu_count()])
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return path
