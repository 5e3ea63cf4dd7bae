"""Command line of :mod:`fullnet`: ``fullnet train|compare|plot|sweep|configs|download|datasets``
(also ``python -m fullnet ...``).

``train --config NAME|PATH [--set section.key=value ...] [--resume]`` runs one training (a
packaged configuration by name, e.g. ``jacot_mlp_mnist_quick``, or a TOML/JSON file) and
writes config.json, checkpoint.pt, history.json, history.csv, final_metrics.json and result.json
under ``output.directory/name`` (or ``--output-dir``). Ctrl-C (SIGINT) or SIGTERM saves a
checkpoint at the end of the current step and exits with status 130 or 143; ``--resume``
continues bit-identically. While it runs, history.jsonl (one line per snapshot) and train.log
grow; ``--resume --set training.epochs=N`` continues a finished run to N epochs (the
learning-rate schedule is recomputed for N; see :func:`fullnet.training.train`).

``compare RUN_DIR [--json]`` builds the ``ufm`` models that match the trained network (the linear
head on fixed features, and the deep unconstrained-features view when the run penalizes
features), solves or predicts their optima and prints predicted against measured values
(:mod:`fullnet.compare`); the result is written atomically to RUN_DIR/compare.json.

``sweep --config NAME|PATH [--scheduler tcp://HOST:PORT] [--workers N] [--store PATH]``
runs a λ–width grid into a SQLite store, resuming where an interrupted sweep stopped
(:mod:`fullnet.sweeps`). Run folders go beside the store (unless ``output.directory`` is set);
coordinators sharing a store run each cell once; a sweep name rerun with another base
configuration is refused (status 2); a sweep whose cells all failed exits with status 1.

``configs [NAME]`` lists the packaged configurations (``fullnet/configs/``), or prints one.

``plot RUN_DIR [--out FILE] [--format png|pdf|svg] [--metrics ID,...|all]`` draws the loss parts
and per-layer collapse metrics against the epoch from the run's history.jsonl (appended at every
snapshot, so a running or killed run can be plotted) or history.json (:mod:`fullnet.plot`).

``download mnist|fashion-mnist|cifar10 --data-root DIR`` fetches the official files and verifies
their checksums. ``datasets`` says where each data set is found.

Errors: bad input (a missing or malformed file, a value out of range, an output path that is a
file or not writable, a full disk, an unreachable scheduler, a run too large for the memory)
prints one line, ``error: ARGUMENT: what was expected``, on stderr and exits with status 2; a
refused ``train`` leaves no run folder behind. SIGINT and SIGTERM exit with 130 and 143 after
saving what there is to save. An unexpected failure prints one line and exits with status 1
(``FULLNET_TRACEBACK=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from .guards import CommandError, Interrupted, argument_errors, describe_error, one_line, signal_name


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from ufm.cli import program_name

    parser = _Parser(
        prog=program_name("fullnet"),
        description="Wide networks trained with weight decay on real data (docs/theory.md §2(e), §6).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="run one training from a TOML configuration")
    train.add_argument(
        "--config", required=True, metavar="NAME|PATH",
        help="a packaged configuration's name (e.g. jacot_mlp_mnist_quick; see 'configs') or a "
             "TOML (or JSON) file",
    )
    train.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a configuration value, e.g. training.epochs=500 (repeatable)",
    )
    train.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    train.add_argument("--output-dir", default=None, help="run directory (default output.directory/name)")
    train.add_argument("--stop-at-epoch", type=int, default=None,
                       help="stop with a checkpoint after this epoch (resume later)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--dry-run", action="store_true",
                       help="print the resolved configuration as JSON and exit")
    train.set_defaults(handler=_train)

    compare = commands.add_parser(
        "compare", help="predicted optima of the matching ufm models against the trained network"
    )
    compare.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by train")
    compare.add_argument("--json", action="store_true", help="print the result as JSON")
    compare.add_argument("--no-write", action="store_true", help="do not write RUN_DIR/compare.json")
    compare.add_argument("--no-certificate", action="store_true",
                         help="skip the convex (cvxpy) certificate of a two-layer head")
    compare.add_argument("--tolerance", type=float, default=1e-10,
                         help="gradient-norm tolerance of the L-BFGS solves of the head")
    compare.add_argument("--max-iterations", type=int, default=5000,
                         help="iteration budget of each L-BFGS solve")
    compare.set_defaults(handler=_compare)

    download = commands.add_parser("download", help="fetch official data files (needs network)")
    download.add_argument("name", choices=["mnist", "fashion-mnist", "cifar10"])
    download.add_argument("--data-root", default=None,
                          help="destination root (default $UFM_DATA_ROOT or ~/.cache/ufm-sandbox/data)")
    download.add_argument("--timeout", type=float, default=60.0, help="seconds per connection")
    download.add_argument("--keep-archive", action="store_true", help="keep the CIFAR-10 tar.gz")
    download.set_defaults(handler=_download)

    configs = commands.add_parser(
        "configs", help="list the packaged configurations, or print one",
        description="The configurations shipped in fullnet/configs/: run configurations (for "
                    "train) and sweep files (sweep_*, for sweep); --config takes their names.",
    )
    configs.add_argument("name", nargs="?", default=None, metavar="NAME",
                         help="print this configuration's file")
    configs.add_argument("--path", action="store_true", help="print file paths instead of names")
    configs.set_defaults(handler=_configs)

    from .plot import add_plot_command  # ``plot``: training curves of a run directory

    add_plot_command(commands)

    datasets = commands.add_parser("datasets", help="say where each data set is found")
    datasets.add_argument("--data-root", default=None)
    datasets.set_defaults(handler=_datasets)

    from .sweeps import add_sweep_command  # ``sweep``: λ–width grids into a SQLite store

    add_sweep_command(commands)
    return parser


# --------------------------------------------------------------------------------------------
# Checks shared by the commands
# --------------------------------------------------------------------------------------------


def positive_number(value: Any, argument: str, *, integer: bool = False, allow_zero: bool = False) -> None:
    """Refuse a value that is not a finite number > 0 (>= 0 with ``allow_zero``)."""
    if value is None:
        return
    finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not finite or value < 0 or (value == 0 and not allow_zero) or (integer and value != int(value)):
        kind = "an integer" if integer else "a number"
        bound = ">= 0" if allow_zero else "> 0"
        raise CommandError(argument, f"expected {kind} {bound}, got {value!r}")


def _print_error(text: str) -> None:
    print(f"error: {one_line(text)}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


def _train(arguments: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .data import DataFileError
    from .guards import check_output_directory
    from .training import CHECKPOINT_NAME, run_directory, train

    with argument_errors("--config"):
        config = load_config(arguments.config)
    if arguments.overrides:
        with argument_errors("--set"):
            config = config.with_overrides(arguments.overrides)
    if arguments.dry_run:
        print(config.to_json())
        return 0
    epochs = config.training.epochs
    stop = arguments.stop_at_epoch
    if stop is not None and not 0 <= stop <= epochs:
        raise CommandError("--stop-at-epoch", f"expected an epoch in 0..{epochs} (training.epochs), got {stop}")
    if arguments.output_dir is not None and not arguments.output_dir.strip():
        raise CommandError("--output-dir", "expected a folder, got an empty path")
    output = "--output-dir" if arguments.output_dir is not None else "output.directory"
    directory = run_directory(config, arguments.output_dir)
    with argument_errors(output):
        check_output_directory(directory, "run folder")
    checkpoint = directory / CHECKPOINT_NAME
    if arguments.resume and not checkpoint.is_file():
        what = "is a folder" if checkpoint.is_dir() else "does not exist"
        raise CommandError("--resume", f"no checkpoint to resume: {checkpoint} {what}; run without --resume first")
    if not arguments.resume and checkpoint.exists():
        raise CommandError(
            "--resume", f"{checkpoint} exists: pass --resume to continue that run, or choose another "
            "--output-dir or name"
        )
    try:
        result = train(
            config, resume=arguments.resume, output_dir=arguments.output_dir,
            stop_at_epoch=stop, progress=False if arguments.no_progress else None,
        )
    except KeyboardInterrupt as error:
        signum = getattr(error, "signum", signal.SIGINT)
        if checkpoint.is_file():
            print(f"\n{signal_name(signum)}: state saved in {checkpoint}; continue with --resume",
                  file=sys.stderr)
        else:
            print(f"\n{signal_name(signum)}: stopped before training began; nothing was saved",
                  file=sys.stderr)
        return 128 + int(signum)
    except FloatingPointError as error:
        _print_error(str(error))
        return 1
    except ConfigError as error:  # names the key
        _print_error(str(error))
        return 2
    except DataFileError as error:
        raise CommandError("data.data_root" if config.data.data_root else "data.name", describe_error(error)) from None
    except OSError as error:  # writing the run: a full disk, a folder that became read-only
        raise CommandError(output, f"cannot write the run in {directory}: {describe_error(error)}") from None
    except ValueError as error:  # a checkpoint that does not fit this configuration
        raise CommandError("--resume" if arguments.resume else "--config", describe_error(error)) from None
    final = result.final
    summary = {
        "status": result.status,
        "epochs": result.epochs_completed,
        "objective": None if final is None else final.terms.objective,
        "accuracy": None if final is None else final.accuracy,
        "last_nc1": None if final is None else final.last_nc1,
        "directory": str(directory),
    }
    print(json.dumps(summary))
    return 0


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------


def _compare(arguments: argparse.Namespace) -> int:
    from .compare import COMPARISON_NAME, check_run_directory, compare_run, write_comparison
    from .guards import check_output_directory

    positive_number(arguments.tolerance, "--tolerance")
    positive_number(arguments.max_iterations, "--max-iterations", integer=True)
    with argument_errors("RUN_DIR"):
        directory = check_run_directory(arguments.run_dir)
        if not arguments.no_write:
            check_output_directory(directory, "run folder")
            if (directory / COMPARISON_NAME).is_dir():
                raise IsADirectoryError(f"{directory / COMPARISON_NAME} is a folder; compare writes a file there")
    with argument_errors("RUN_DIR"):
        comparison = compare_run(
            arguments.run_dir, tolerance=arguments.tolerance,
            max_iterations=arguments.max_iterations, certify=not arguments.no_certificate,
        )
    path = None
    if not arguments.no_write:
        with argument_errors("RUN_DIR", (OSError,)):
            path = write_comparison(comparison, arguments.run_dir)
    print(comparison.to_json() if arguments.json else comparison.format_table())
    if path is not None and not arguments.json:
        print(f"written: {path}")
    return 0


# --------------------------------------------------------------------------------------------
# download, datasets
# --------------------------------------------------------------------------------------------


def _data_root_argument(data_root: str | None) -> str:
    from .data import DATA_ROOT_VARIABLE

    if data_root is not None:
        return "--data-root"
    return f"${DATA_ROOT_VARIABLE}" if os.environ.get(DATA_ROOT_VARIABLE) else "data root"


def _download(arguments: argparse.Namespace) -> int:
    from .data import resolve_data_root
    from .download import ChecksumError, DownloadError, download_dataset
    from .guards import check_output_directory

    positive_number(arguments.timeout, "--timeout")
    root_argument = _data_root_argument(arguments.data_root)
    if arguments.data_root is not None and not str(arguments.data_root).strip():
        raise CommandError("--data-root", "expected a folder, got an empty path")
    root = resolve_data_root(arguments.data_root)
    with argument_errors(root_argument):
        check_output_directory(root, "data root")
    try:
        paths = download_dataset(
            arguments.name, arguments.data_root, timeout=arguments.timeout,
            keep_archive=arguments.keep_archive, log=print,
        )
    except (DownloadError, ChecksumError) as error:
        _print_error(str(error))
        return 1
    except OSError as error:  # writing: a full disk, a folder that became read-only
        raise CommandError(root_argument, f"cannot write to {root}: {describe_error(error)}") from None
    for path in paths:
        print(path)
    return 0


def _configs(arguments: argparse.Namespace) -> int:
    from .config import CONFIG_DIRECTORY, config_names, packaged_config

    if arguments.name is not None:
        path = packaged_config(arguments.name)
        if path is None:
            print(f"error: no packaged configuration {arguments.name!r}; names: "
                  f"{', '.join(config_names())}", file=sys.stderr)
            return 2
        print(path if arguments.path else path.read_text(), end="" if not arguments.path else "\n")
        return 0
    for kind, title in (("run", "run configurations (fullnet train --config NAME)"),
                        ("sweep", "sweeps (fullnet sweep --config NAME)")):
        print(f"{title}:")
        for name in config_names(kind):
            print(f"  {CONFIG_DIRECTORY / (name + '.toml') if arguments.path else name}")
    return 0


def _datasets(arguments: argparse.Namespace) -> int:
    from .data import DataFileError, find_data_file, load_mnist_5k

    if arguments.data_root is not None:
        root = Path(arguments.data_root).expanduser()
        if not str(arguments.data_root).strip():
            raise CommandError("--data-root", "expected a folder, got an empty path")
        if not root.exists():
            raise CommandError("--data-root", f"folder {root} does not exist")
        if not root.is_dir():
            raise CommandError("--data-root", f"{root} is a file, expected a folder")
    checks = {
        "mnist": "train-images-idx3-ubyte",
        "fashion-mnist": "train-images-idx3-ubyte",
        "cifar10": "data_batch_1",
    }
    try:
        print(f"mnist-5k: {load_mnist_5k().source}")
    except DataFileError as error:
        print(f"mnist-5k: missing ({error})")
    for name, filename in checks.items():
        try:
            print(f"{name}: {find_data_file(name, filename, arguments.data_root).parent}")
        except DataFileError as error:
            print(f"{name}: missing ({error})")
    print("gaussian: synthetic, always available")
    return 0


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


class _TerminateAsInterrupt:
    """While a command runs, SIGTERM raises :class:`~fullnet.guards.Interrupted` (as Ctrl-C
    raises KeyboardInterrupt), so that it unwinds through the same clean-up."""

    def __enter__(self) -> "_TerminateAsInterrupt":
        self.previous = None
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    @staticmethod
    def _handle(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    def __exit__(self, *exc_info: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    import sqlite3

    with _TerminateAsInterrupt():
        try:
            return int(arguments.handler(arguments) or 0)
        except CommandError as error:
            _print_error(str(error))
            return 2
        except KeyboardInterrupt as error:
            signum = int(getattr(error, "signum", signal.SIGINT))
            print(f"\n{signal_name(signum)}: stopped", file=sys.stderr)
            return 128 + signum
        except (ValueError, TypeError, OSError, sqlite3.Error) as error:
            _print_error(describe_error(error))
            return 2
        except Exception as error:
            if os.environ.get("FULLNET_TRACEBACK"):
                raise
            _print_error(
                f"unexpected {type(error).__name__}: {describe_error(error)} "
                "(set FULLNET_TRACEBACK=1 to see where)"
            )
            return 1
