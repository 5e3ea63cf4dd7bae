"""Command line of :mod:`fullnet`: ``fullnet train|compare|sweep|configs|download|datasets``
(also ``python -m fullnet ...``).

``train --config NAME|PATH [--set section.key=value ...] [--resume]`` runs one training (a
packaged configuration by name, e.g. ``jacot_mlp_mnist_quick``, or a TOML/JSON file) and
writes config.json, checkpoint.pt, history.json, history.csv, final_metrics.json and result.json
under ``output.directory/name`` (or ``--output-dir``). Ctrl-C saves a checkpoint at the end of the
current step and exits with status 130; ``--resume`` continues bit-identically.

``compare RUN_DIR [--json]`` builds the ``ufm`` models that match the trained network (the linear
head on fixed features, and the deep unconstrained-features view when the run penalizes
features), solves or predicts their optima and prints predicted against measured values
(:mod:`fullnet.compare`); the result is written atomically to RUN_DIR/compare.json.

``sweep --config NAME|PATH [--scheduler tcp://HOST:PORT] [--workers N] [--store PATH]``
runs a λ–width grid into a SQLite store, resuming where an interrupted sweep stopped
(:mod:`fullnet.sweeps`).

``configs [NAME]`` lists the packaged configurations (``fullnet/configs/``), or prints one.

``download mnist|fashion-mnist|cifar10 --data-root DIR`` fetches the official files and verifies
their checksums. ``datasets`` says where each data set is found.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    from ufm.cli import program_name

    parser = argparse.ArgumentParser(
        prog=program_name("fullnet"),
        description="Wide networks trained with weight decay on real data (THEORY.md §2(e), §6).",
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

    datasets = commands.add_parser("datasets", help="say where each data set is found")
    datasets.add_argument("--data-root", default=None)
    datasets.set_defaults(handler=_datasets)

    from .sweeps import add_sweep_command  # ``sweep``: λ–width grids into a SQLite store

    add_sweep_command(commands)
    return parser


def _train(arguments: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .data import DataFileError
    from .training import run_directory, train

    try:
        config = load_config(arguments.config, arguments.overrides)
    except (ConfigError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if arguments.dry_run:
        print(config.to_json())
        return 0
    directory = run_directory(config, arguments.output_dir)
    try:
        result = train(
            config, resume=arguments.resume, output_dir=arguments.output_dir,
            stop_at_epoch=arguments.stop_at_epoch,
            progress=False if arguments.no_progress else None,
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted: state saved in {directory / 'checkpoint.pt'}; continue with --resume",
              file=sys.stderr)
        return 130
    except (ConfigError, FileExistsError, DataFileError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, (ConfigError, FileExistsError)) else 1
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


def _compare(arguments: argparse.Namespace) -> int:
    from .compare import RunDirectoryError, compare_run, write_comparison
    from .config import ConfigError
    from .data import DataFileError

    try:
        comparison = compare_run(
            arguments.run_dir, tolerance=arguments.tolerance,
            max_iterations=arguments.max_iterations, certify=not arguments.no_certificate,
        )
    except (RunDirectoryError, ConfigError, DataFileError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = None if arguments.no_write else write_comparison(comparison, arguments.run_dir)
    print(comparison.to_json() if arguments.json else comparison.format_table())
    if path is not None and not arguments.json:
        print(f"written: {path}")
    return 0


def _download(arguments: argparse.Namespace) -> int:
    from .download import ChecksumError, DownloadError, download_dataset

    try:
        paths = download_dataset(
            arguments.name, arguments.data_root, timeout=arguments.timeout,
            keep_archive=arguments.keep_archive, log=print,
        )
    except (DownloadError, ChecksumError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    return int(arguments.handler(arguments) or 0)
