"""λ–width sweeps (docs/theory.md §6, "λ–width exploration") on any ``concurrent.futures.Executor``.

A sweep is a grid over the weight decay λ, the first-layer width p₁, the non-linear depth L1, the
linear depth L2 and seeds, optionally with λ scaled with the width (λ·p₁ fixed, the lines along
which docs/theory.md §6's λ ≲ ε1²/p₁ is constant), and optionally over further configuration keys.
Every cell is a :class:`~fullnet.config.RunConfig` (a base configuration plus the cell's
values) run by :func:`fullnet.training.train`; every result goes to a SQLite store
(:mod:`fullnet.store`).

Sweep files
-----------
A TOML file (the packaged ones: ``fullnet/configs/sweep_*.toml``, given by name or path)::

    name = "lambda_width_gaussian_quick"          # name in the store, folder of the default store
    description = "…"
    base = "gaussian_smoke.toml"                  # a run configuration, relative to this file,
                                                  # else a packaged configuration's name
    overrides = ["training.epochs=300"]           # section.key=value on the base

    [grid]
    weight_decays = [1e-4, 1e-3, 1e-2]            # λ (training.weight_decay)
    widths = [16, 32, 64, 128]                    # p₁ (model.nonlinear_widths[0])
    nonlinear_depths = [2]                        # L1 (optional; default the base's)
    linear_depths = [1, 2]                        # L2 (optional; default the base's)
    seeds = [0, 1, 2]                             # model.seed and training.seed
    lambda_width_products = [0.064]               # λ = c / p₁**lambda_width_power, per width
    lambda_width_power = 1.0
    seed_keys = ["model.seed", "training.seed"]   # which keys a seed sets

    [grid.axes]                                   # any other key: a list of values
    "training.learning_rate" = [0.05, 0.1]

``base`` may instead be an inline ``[base]`` table with the sections of a run configuration.
Lists left out (or empty) take the base's value; ``weight_decays`` and ``lambda_width_products``
together give, for every width, the union of the plain λ's and the scaled ones. Cells with the
same configuration are run once. Changing the non-linear depth keeps p₁ and the base's widths
after it, cut or padded by repeating the last width. λ's are rounded to 12 significant digits,
so a scaled λ that equals a grid λ is the same run.

On the command line, ``--set grid.KEY=VALUE`` and ``--set sweep.KEY=VALUE`` (``name``,
``description``) change the sweep; every other ``--set section.key=value`` changes the base.

Executors
---------
``run_sweep(specification, store)`` runs the cells that are not completed in the store on

- local worker processes (default): a ``ProcessPoolExecutor`` with the ``spawn`` start method and
  one torch thread per worker (``workers`` processes, default the available CPUs). Each worker
  watches its coordinator and exits within half a second of its death, however it died
  (SIGKILL, an out-of-memory kill), and multiprocessing's resource tracker ends with them: a
  killed sweep leaves no process behind and nothing holding its stdout (``… | tee log`` ends);
- the calling process, one run after another (``workers=0``, :class:`InlineExecutor`), with a
  progress bar per run;
- a ``dask.distributed`` cluster, given its scheduler address (or a scheduler file)::

      fullnet sweep --config sweep_lambda_width_mnist \\
          --scheduler tcp://10.0.0.5:8786

  which is ``distributed.Client(address).get_executor(pure=False)``. The cluster may be started
  by hand (``dask scheduler`` and ``dask worker tcp://10.0.0.5:8786 --nthreads 1`` on each
  node), or on SLURM with dask-jobqueue::

      from dask_jobqueue import SLURMCluster
      from distributed import Client
      from fullnet.sweeps import load_sweep, run_sweep

      cluster = SLURMCluster(cores=8, processes=8, memory="32GB", walltime="04:00:00")
      cluster.scale(jobs=4)                     # 4 SLURM jobs of 8 one-thread workers
      client = Client(cluster)
      run_sweep(load_sweep("sweep_lambda_width_mnist"),
                "outputs/fullnet/lambda_width_mnist/sweep.sqlite",
                executor=client.get_executor(pure=False))

  Workers need this package (and the data) installed, and the run folders (see "Run folders",
  absolute paths) on a file system they share with each other, so that a run restarted on
  another node finds its checkpoint;
- any other ``concurrent.futures.Executor`` (``executor=``), or a zero-argument callable that
  makes one, which lets the sweep replace an executor that broke.

Only coordinating processes (those calling :func:`run_sweep`) write to the store; workers
return their results (:class:`RunOutcome`: the snapshots of :func:`fullnet.training.train`,
timings, the error). SQLite's WAL mode relies on shared memory between the processes that open
the database, which holds on one machine only: WAL is not safe on the network file systems
(NFS, Lustre, GPFS) that cluster nodes share, and the locks that protect any SQLite file are
unreliable there. So the coordinators of one store run on one machine (the workers may run
anywhere); a run's values and its ``completed`` status go in one transaction. The results
travel through the executor; a run's snapshots are a few hundred kilobytes at most.

Run folders
-----------
Every run writes its folder (checkpoint, history, results) under :func:`run_directory`: beside
the store — the store's folder — unless the base sets ``output.directory`` (to anything but the
default ``outputs/fullnet``), in which case ``output.directory/NAME``. Without ``--store`` the
store is ``output.directory/NAME/sweep.sqlite`` and both rules give the same folder; with
``--store PATH`` the runs follow the store. A run folder is ``RUN_NAME`` (width, λ, depths, seed
and the start of the configuration hash), recorded in the store's ``runs.directory``.

Resumption, retries, failures
-----------------------------
- A completed run is never run again: runs are identified by the hash of their configuration
  (:func:`configuration_hash`), unique within a sweep; rerunning a sweep runs what is missing
  (``pending``), what was in flight when it stopped (``running``) and, with ``retry_failed``,
  what failed.
- A run restarted after an interruption continues from its checkpoint (``checkpoint.pt`` in its
  directory, :func:`fullnet.training.train` with ``resume=True``); set ``output.checkpoint_every``
  in the base so that a run killed without warning loses at most that many epochs.
- A worker that dies (``BrokenProcessPool``; dask's ``KilledWorker``) makes its runs be
  submitted again, up to ``max_retries`` times each, on a fresh process pool. The executor does
  not say which run killed it, so every run in flight on a broken pool counts one attempt; with
  local processes at most ``workers`` runs are in flight.
- A run that raises is recorded as ``failed`` with its error and traceback; the sweep goes on.
- Ctrl-C (or a KeyboardInterrupt from a run or from ``on_result``) stops the sweep: results
  already received are stored, the runs in flight go back to ``pending`` and KeyboardInterrupt
  is raised again. Ctrl-C in a terminal reaches the local workers too, which save a checkpoint at
  the end of their current step and stop; after any other interruption, runs in flight on local
  processes are let finish (their final checkpoints make the next call complete them at once),
  and runs on a dask cluster are cancelled.
- Coordinators may share a store (two terminals, two SLURM jobs on one node, a rerun started
  while the first still runs): a cell is run only under its *lease* in the store
  (:meth:`fullnet.store.SweepStore.claim_run`: owner id, process id, host and heartbeat time,
  taken in one SQLite transaction), so each cell runs once. A cell another coordinator holds is
  waited for, then counted in :attr:`SweepReport.elsewhere` when that one stored it. Leases are
  renewed every ``lease_timeout / 6`` seconds (at most 10) by a thread of their coordinator; a
  lease is taken over when it is stale: its heartbeat older than ``lease_timeout`` (default
  120 s), or its coordinator ran on this host and is gone (a SIGKILLed coordinator's cells are
  taken over at once by the next one). Failed cells are run again with ``retry_failed`` only if
  they failed before this coordinator began.

Changed configurations
----------------------
A sweep name stands for one base configuration. Rerunning a name that the store holds with a
base that computes something else (``training.epochs`` 300 → 600, another learning rate, other
data…) is refused before anything is written (:class:`SweepChangedError`; the command line
exits with status 2 and one line naming each changed key, its old and new value, and how to
start a new sweep name: ``--set sweep.name=NAME_2``, or another store). Keys that do not change
a run (``description``, ``output.*``, ``training.device``, ``training.threads``) are not a change.
The grid itself may change — add seeds, widths, λ's, remove some: cells are identified by their
configuration hash, so the cells the new grid shares with the old are reused as they are, and
the store records the grid as last run (:meth:`fullnet.store.SweepStore.register_grid`).
:meth:`~fullnet.store.SweepStore.final_metrics`, and so every aggregate, counts only the runs of
that current grid; runs of cells that left it stay in the store, apart.

Exit status
-----------
``fullnet sweep`` prints its report as JSON (``completed``, ``failed``, ``elsewhere``: runs of this
call; ``totals``: the grid's cells by status in the store). It exits with 0 when at least one cell
of the grid is completed (failed cells, if any, are counted on one ``warning:`` line on stderr
with the first error), with 1 when none is and some failed (one ``error:`` line: how many, the
first error, where the errors are, ``--retry-failed``), with 2 on bad input or a changed
configuration, and with 130 or 143 after SIGINT or SIGTERM.

Aggregation
-----------
:func:`aggregate_grid` turns :meth:`fullnet.store.SweepStore.final_metrics` into a (λ × width)
table of means and standard deviations over seeds, for heatmaps; :func:`aggregate_lines` gives
the values along lines λ·p₁^power = c, ordered by width.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import socket
import sqlite3
import threading
import time
import traceback
from collections import deque
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    CancelledError,
    Executor,
    Future,
    wait,
)
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .config import ConfigError, RunConfig, SECTIONS, apply_overrides
from .guards import created_ancestors, one_line, remove_created_folders
from .store import (
    CLAIMED,
    HELD,
    RUN_STATUSES,
    LeaseHeartbeat,
    LeaseOwner,
    RunRecord,
    RunRegistration,
    SweepStore,
    snapshot_values,
)

try:  # Python >= 3.11
    import tomllib as _toml
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ModuleNotFoundError:
        _toml = None

SWEEP_KEYS = ("name", "description", "base", "overrides", "grid")
GRID_KEYS = (
    "weight_decays", "widths", "nonlinear_depths", "linear_depths", "seeds",
    "lambda_width_products", "lambda_width_power", "seed_keys", "axes",
)
#: Keys that do not change what a run computes: left out of :func:`configuration_hash`.
UNHASHED_KEYS = ("name", "description", "output", "training.device", "training.threads")
#: Keys the grid sets itself; ``[grid.axes]`` may not name them.
RESERVED_AXIS_KEYS = ("name", "description", "training.weight_decay", "model.nonlinear_widths",
                      "model.linear_depth", "training.threads")
DEFAULT_SEED_KEYS = ("model.seed", "training.seed")
SIGNIFICANT_DIGITS = 12


# --------------------------------------------------------------------------------------------
# Specification and grid
# --------------------------------------------------------------------------------------------


def _require_toml() -> Any:
    if _toml is None:  # pragma: no cover - Python 3.10 without tomli
        raise RuntimeError("reading TOML needs Python >= 3.11 (tomllib) or the package tomli")
    return _toml


def _rounded(value: float) -> float:
    """``value`` rounded to :data:`SIGNIFICANT_DIGITS` significant digits."""
    return float(f"{float(value):.{SIGNIFICANT_DIGITS}g}")


def _number_list(values: Any, key: str, *, integer: bool, minimum: float, allow_minimum: bool) -> list:
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{key} must be a list, got {values!r}")
    result = []
    for index, value in enumerate(values):
        bad_type = isinstance(value, bool) or not isinstance(value, int if integer else (int, float))
        if bad_type or not math.isfinite(value) or value < minimum or (value == minimum and not allow_minimum):
            kind = "integers" if integer else "numbers"
            bound = f">= {minimum}" if allow_minimum else f"> {minimum}"
            raise ConfigError(f"{key}[{index}] must be one of a list of {kind} {bound}, got {value!r}")
        converted = int(value) if integer else float(value)
        if converted not in result:
            result.append(converted)
    return result


def _config_key_exists(key: str, mapping: dict[str, Any]) -> bool:
    target: Any = mapping
    for part in key.split("."):
        if not isinstance(target, dict) or part not in target:
            return False
        target = target[part]
    return True


def _set_key(mapping: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    target = mapping
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = value


@dataclass
class SweepSpecification:
    """A λ–width grid over a base configuration (see the module docstring for the file format).

    Attributes
    ----------
    name : str
        The sweep's name in the store, and the folder (``base.output.directory / name``) of its
        default store and run folders (see :func:`run_directory`).
    description : str
    base : RunConfig
        The configuration every cell starts from (its own overrides applied).
    weight_decays : list of float
        λ values (``training.weight_decay``).
    widths : list of int
        First-layer widths p₁ (``model.nonlinear_widths[0]``).
    nonlinear_depths, linear_depths : list of int
        L1 (length of ``model.nonlinear_widths``) and L2 (``model.linear_depth``).
    seeds : list of int
        Values given to every key of ``seed_keys``.
    lambda_width_products : list of float
        c of the scaled λ = c / p₁**``lambda_width_power`` (one λ per width and c).
    lambda_width_power : float
    seed_keys : list of str
    axes : dict
        Further ``section.key`` → list of values.
    """

    name: str
    description: str = ""
    base: RunConfig = field(default_factory=RunConfig)
    weight_decays: list[float] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    nonlinear_depths: list[int] = field(default_factory=list)
    linear_depths: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    lambda_width_products: list[float] = field(default_factory=list)
    lambda_width_power: float = 1.0
    seed_keys: list[str] = field(default_factory=lambda: list(DEFAULT_SEED_KEYS))
    axes: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in "/\\") \
                or self.name in (".", ".."):
            raise ConfigError(f"name must be a non-empty folder name without slashes, got {self.name!r}")
        if not isinstance(self.description, str):
            raise ConfigError(f"description must be a string, got {self.description!r}")
        if not isinstance(self.base, RunConfig):
            raise ConfigError(f"base must be a RunConfig, got {type(self.base).__name__}")
        self.weight_decays = [_rounded(value) for value in _number_list(
            self.weight_decays, "grid.weight_decays", integer=False, minimum=0.0, allow_minimum=True)]
        self.widths = _number_list(self.widths, "grid.widths", integer=True, minimum=1, allow_minimum=True)
        self.nonlinear_depths = _number_list(
            self.nonlinear_depths, "grid.nonlinear_depths", integer=True, minimum=1, allow_minimum=True)
        self.linear_depths = _number_list(
            self.linear_depths, "grid.linear_depths", integer=True, minimum=1, allow_minimum=True)
        self.seeds = _number_list(self.seeds, "grid.seeds", integer=True, minimum=0, allow_minimum=True)
        self.lambda_width_products = _number_list(
            self.lambda_width_products, "grid.lambda_width_products", integer=False, minimum=0.0,
            allow_minimum=False)
        power = self.lambda_width_power
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not math.isfinite(power):
            raise ConfigError(f"grid.lambda_width_power must be a finite number, got {power!r}")
        self.lambda_width_power = float(power)
        base_mapping = self.base.to_dict()
        if not isinstance(self.seed_keys, (list, tuple)) or not self.seed_keys:
            raise ConfigError(f"grid.seed_keys must be a non-empty list of keys, got {self.seed_keys!r}")
        self.seed_keys = list(self.seed_keys)
        for index, key in enumerate(self.seed_keys):
            if not isinstance(key, str) or not _config_key_exists(key, base_mapping) \
                    or key.split(".")[0] not in SECTIONS or not key.endswith("seed"):
                raise ConfigError(
                    f"grid.seed_keys[{index}] must name a seed of the run configuration "
                    f"(e.g. 'model.seed', 'training.seed', 'data.subset_seed'), got {key!r}"
                )
        if not isinstance(self.axes, dict):
            raise ConfigError(f"grid.axes must be a table of section.key = [values], got {self.axes!r}")
        for key, values in self.axes.items():
            if not _config_key_exists(key, base_mapping) or "." not in key:
                raise ConfigError(
                    f"grid.axes: unknown key {key!r}; use section.key with sections {sorted(SECTIONS)}"
                )
            if key in RESERVED_AXIS_KEYS or key in self.seed_keys or key.startswith("output."):
                raise ConfigError(
                    f"grid.axes: {key!r} is set by the grid itself (weight_decays, widths, depths, "
                    "seeds) or by the sweep (name, output); remove it from grid.axes"
                )
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"grid.axes.{key!r} must be a non-empty list of values, got {values!r}")
        self.axes = {key: list(values) for key, values in self.axes.items()}
        if (self.weight_decays or self.lambda_width_products) and self.base.training.layer_weight_decay:
            raise ConfigError(
                "grid.weight_decays / grid.lambda_width_products set training.weight_decay, which the "
                "base's training.layer_weight_decay overrides; empty that list in the base"
            )
        if (self.widths or self.nonlinear_depths) and not self.base.model.nonlinear_widths:
            raise ConfigError(
                "grid.widths / grid.nonlinear_depths need a non-empty model.nonlinear_widths in the base"
            )

    # -- serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON): the grid and the resolved base configuration."""
        return {
            "name": self.name,
            "description": self.description,
            "base": self.base.to_dict(),
            "grid": {
                "weight_decays": list(self.weight_decays),
                "widths": list(self.widths),
                "nonlinear_depths": list(self.nonlinear_depths),
                "linear_depths": list(self.linear_depths),
                "seeds": list(self.seeds),
                "lambda_width_products": list(self.lambda_width_products),
                "lambda_width_power": self.lambda_width_power,
                "seed_keys": list(self.seed_keys),
                "axes": {key: list(values) for key, values in self.axes.items()},
            },
        }

    @classmethod
    def from_dict(
        cls,
        mapping: dict[str, Any],
        *,
        base_directory: str | os.PathLike | None = None,
        base_overrides: Sequence[str] = (),
    ) -> "SweepSpecification":
        """Build from a parsed sweep file (or :meth:`to_dict`).

        Parameters
        ----------
        mapping : dict
        base_directory : path-like, optional
            Folder against which a relative ``base`` file is resolved (the sweep file's folder).
        base_overrides : sequence of str
            ``section.key=value`` applied to the base after the file's ``overrides``.
        """
        from .config import load_config, packaged_config

        if not isinstance(mapping, dict):
            raise ConfigError(f"a sweep specification must be a table, got {mapping!r}")
        unknown = sorted(set(mapping) - set(SWEEP_KEYS))
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in the sweep file; allowed: {list(SWEEP_KEYS)}")
        if "name" not in mapping:
            raise ConfigError("the sweep file needs a name (folder of its runs, name in the store)")
        grid = mapping.get("grid", {})
        if not isinstance(grid, dict):
            raise ConfigError(f"grid must be a table, got {grid!r}")
        unknown = sorted(set(grid) - set(GRID_KEYS))
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in [grid]; allowed: {list(GRID_KEYS)}")
        overrides = mapping.get("overrides", [])
        if not isinstance(overrides, (list, tuple)) or not all(isinstance(item, str) for item in overrides):
            raise ConfigError(f"overrides must be a list of 'section.key=value' strings, got {overrides!r}")
        overrides = list(overrides) + list(base_overrides)
        base = mapping.get("base")
        if base is None:
            config = RunConfig()
            config = apply_overrides(config, overrides) if overrides else config
        elif isinstance(base, str):
            path = Path(base)
            if not path.is_absolute() and base_directory is not None:
                path = Path(base_directory) / path
            if not path.is_file() and Path(base).name == base:  # a packaged configuration's name
                path = packaged_config(base) or path
            if not path.is_file():
                raise ConfigError(f"base: configuration file {path} does not exist")
            config = load_config(path, overrides)
        elif isinstance(base, dict):
            try:
                config = RunConfig.from_dict(base)
            except ConfigError as error:
                raise ConfigError(f"base: {error}") from None
            config = apply_overrides(config, overrides) if overrides else config
        else:
            raise ConfigError(f"base must be a file name or a table, got {base!r}")
        return cls(
            name=mapping["name"],
            description=mapping.get("description", ""),
            base=config,
            weight_decays=grid.get("weight_decays", []),
            widths=grid.get("widths", []),
            nonlinear_depths=grid.get("nonlinear_depths", []),
            linear_depths=grid.get("linear_depths", []),
            seeds=grid.get("seeds", []),
            lambda_width_products=grid.get("lambda_width_products", []),
            lambda_width_power=grid.get("lambda_width_power", 1.0),
            seed_keys=grid.get("seed_keys", list(DEFAULT_SEED_KEYS)),
            axes=grid.get("axes", {}),
        )

    # -- paths ---------------------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        """``base.output.directory / name`` (absolute): the folder of the default store, and of the
        run folders unless the base leaves ``output.directory`` at its default and the store is
        elsewhere (:func:`run_directory`)."""
        return (Path(self.base.output.directory) / self.name).resolve()

    @property
    def default_store_path(self) -> Path:
        """``directory / "sweep.sqlite"``."""
        return self.directory / "sweep.sqlite"


def _parse_toml_value(text: str) -> Any:
    toml = _require_toml()
    try:
        return toml.loads(f"value = {text}")["value"]
    except Exception:
        return text


def split_overrides(overrides: Sequence[str]) -> tuple[list[tuple[str, Any]], list[str]]:
    """Separate sweep assignments (``grid.KEY=…``, ``sweep.KEY=…``) from base ones.

    Returns
    -------
    (sweep_assignments, base_overrides)
        ``[(key, parsed value)]`` for the sweep, with ``sweep.`` removed; the rest unchanged.
    """
    sweep_assignments, base_overrides = [], []
    for override in overrides:
        if not isinstance(override, str) or "=" not in override:
            raise ConfigError(f"override must look like section.key=value, got {override!r}")
        key, text = override.split("=", 1)
        key = key.strip()
        if key.startswith("grid.") or key == "grid":
            sweep_assignments.append((key, _parse_toml_value(text.strip())))
        elif key.startswith("sweep."):
            sweep_assignments.append((key[len("sweep."):], _parse_toml_value(text.strip())))
        else:
            base_overrides.append(override)
    return sweep_assignments, base_overrides


def load_sweep(path: str | os.PathLike, overrides: Sequence[str] = ()) -> SweepSpecification:
    """Read a sweep file (TOML or JSON) and apply ``--set`` overrides.

    ``path`` is a file, or the name of a packaged sweep (``"sweep_lambda_width_gaussian_quick"``;
    :func:`fullnet.config.resolve_config_path`).

    ``grid.KEY=VALUE`` and ``sweep.name=…`` / ``sweep.description=…`` change the sweep (for
    ``grid.axes``: ``grid.axes."training.learning_rate"=[0.05,0.1]`` is not possible on a
    command line; write it in the file); every other ``section.key=value`` changes the base.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ConfigError
        On unknown keys and bad grid values; the message names the key.
    """
    from .config import read_mapping, resolve_config_path

    path = resolve_config_path(path, "sweep file")
    mapping = read_mapping(path, "sweep file")
    sweep_assignments, base_overrides = split_overrides(overrides)
    for key, value in sweep_assignments:
        if key.startswith("grid."):
            name = key[len("grid."):]
            if name not in GRID_KEYS or name == "axes":
                raise ConfigError(
                    f"override {key!r}: unknown grid key {name!r}; allowed: "
                    f"{[item for item in GRID_KEYS if item != 'axes']}"
                )
            mapping.setdefault("grid", {})[name] = value
        elif key in ("name", "description"):
            mapping[key] = value
        else:
            raise ConfigError(f"override 'sweep.{key}': unknown key; allowed: sweep.name, sweep.description")
    try:
        return SweepSpecification.from_dict(mapping, base_directory=path.parent, base_overrides=base_overrides)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


_MISSING = object()


def configuration_hash(config: RunConfig | dict[str, Any]) -> str:
    """SHA-256 (hex) of a run configuration without the keys of :data:`UNHASHED_KEYS` and
    without the keys that hold their default value (:class:`fullnet.config.RunConfig`).

    Two cells with the same hash compute the same thing; the hash identifies a run in its sweep.
    Leaving defaults out keeps the hashes of a store valid when a later version adds a setting
    (at a default that reproduces the earlier behaviour).
    """
    text = json.dumps(_hashed_mapping(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _hashed_mapping(config: RunConfig | dict[str, Any]) -> dict[str, Any]:
    """What :func:`configuration_hash` hashes: the configuration without the keys of
    :data:`UNHASHED_KEYS` and without the keys at their default value."""
    mapping = copy.deepcopy(config.to_dict() if isinstance(config, RunConfig) else dict(config))
    for key in UNHASHED_KEYS:
        parts = key.split(".")
        target = mapping
        for part in parts[:-1]:
            target = target.get(part, {})
        if isinstance(target, dict):
            target.pop(parts[-1], None)
    defaults = RunConfig().to_dict()
    for section, values in mapping.items():
        if isinstance(values, dict) and isinstance(defaults.get(section), dict):
            for key in [key for key, value in values.items() if defaults[section].get(key, _MISSING) == value]:
                del values[key]
    return mapping


def _flat(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def base_changes(stored: dict[str, Any], specification: SweepSpecification) -> list[str]:
    """What differs between the base configuration of a stored sweep specification
    (:meth:`SweepSpecification.to_dict`) and ``specification``'s, in the keys that change what a
    run computes: ``["training.epochs: 300 → 600", …]`` (a key left at its default shows the
    default). Empty when they compute the same, or when ``stored`` holds no base."""
    if not isinstance(stored, dict) or not isinstance(stored.get("base"), dict):
        return []
    try:
        before = _flat(_hashed_mapping(stored["base"]))
    except (TypeError, ValueError, AttributeError):  # pragma: no cover - a hand-written specification
        return ["base: unreadable in the store"]
    after = _flat(_hashed_mapping(specification.base))
    defaults = _flat(RunConfig().to_dict())
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key, defaults.get(key)), after.get(key, defaults.get(key))
        if old != new:
            changes.append(f"{key}: {json.dumps(old)} → {json.dumps(new)}")
    return changes


class SweepChangedError(ConfigError):
    """A sweep name already in the store was run with another base configuration: running the
    new one under the same name would mix runs that are not comparable (one-line message naming
    what changed and how to start a new sweep)."""


@dataclass
class SweepCell:
    """One run of a sweep.

    Attributes
    ----------
    index : int
        Position in the grid order (seed, L1, L2, further axes, width, λ).
    coordinates : dict
        ``weight_decay``, ``width``, ``nonlinear_depth``, ``linear_depth``, ``seed`` and every
        ``[grid.axes]`` key.
    config : RunConfig
        Base plus the cell's values; ``name`` and ``description`` describe the cell and
        ``output.directory`` is the sweep's folder.
    config_hash : str
    """

    index: int
    coordinates: dict[str, Any]
    config: RunConfig
    config_hash: str

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def directory(self) -> Path:
        """The run directory, ``output.directory / name``."""
        return Path(self.config.output.directory) / self.config.name


def _nonlinear_widths(base_widths: list[int], width: int | None, depth: int | None) -> list[int]:
    widths = list(base_widths)
    if width is not None:
        widths = [width] + widths[1:] if widths else [width]
    if depth is not None:
        widths = widths[:depth] + [widths[-1]] * max(0, depth - len(widths))
    return widths


def _run_name(coordinates: dict[str, Any], digest: str) -> str:
    width = "-" if coordinates["width"] is None else coordinates["width"]
    return (
        f"w{width}-wd{coordinates['weight_decay']:.3g}"
        f"-d{coordinates['nonlinear_depth']}x{coordinates['linear_depth']}"
        f"-s{coordinates['seed']}-{digest[:10]}"
    )


def expand_grid(specification: SweepSpecification) -> list[SweepCell]:
    """Every cell of a sweep, each a validated :class:`RunConfig`, duplicates removed.

    Order: seed (outermost), L1, L2, further axes, width, λ (plain λ's first, then the scaled
    ones) — so that a partial sweep already covers the (λ, width) plane for the first seeds.

    Raises
    ------
    ConfigError
        If a cell's configuration is invalid; the message names the cell and the key.
    """
    spec = specification
    base = spec.base
    base_mapping = base.to_dict()
    base_widths = list(base.model.nonlinear_widths)
    widths: list[int | None] = list(spec.widths) or [base_widths[0] if base_widths else None]
    nonlinear_depths: list[int | None] = list(spec.nonlinear_depths) or [len(base_widths) or None]
    linear_depths = list(spec.linear_depths) or [base.model.linear_depth]
    seeds = list(spec.seeds) or [int(getattr(getattr(base, spec.seed_keys[0].split(".")[0]),
                                             spec.seed_keys[0].split(".")[1]))]
    axis_keys = list(spec.axes)
    axis_values = [spec.axes[key] for key in axis_keys]
    cells: list[SweepCell] = []
    seen: set[str] = set()
    for seed, nonlinear_depth, linear_depth in product(seeds, nonlinear_depths, linear_depths):
        for combination in product(*axis_values):
            for width in widths:
                lambdas = list(spec.weight_decays)
                if width is not None:
                    lambdas += [_rounded(c / float(width) ** spec.lambda_width_power)
                                for c in spec.lambda_width_products]
                if not lambdas:
                    lambdas = [base.training.weight_decay]
                for weight_decay in lambdas:
                    coordinates: dict[str, Any] = {
                        "weight_decay": float(weight_decay),
                        "width": width,
                        "nonlinear_depth": nonlinear_depth,
                        "linear_depth": linear_depth,
                        "seed": seed,
                    }
                    coordinates.update(zip(axis_keys, combination))
                    mapping = copy.deepcopy(base_mapping)
                    mapping["training"]["weight_decay"] = float(weight_decay)
                    mapping["model"]["nonlinear_widths"] = _nonlinear_widths(base_widths, width, nonlinear_depth)
                    mapping["model"]["linear_depth"] = linear_depth
                    for key in spec.seed_keys:
                        _set_key(mapping, key, seed)
                    for key, value in zip(axis_keys, combination):
                        _set_key(mapping, key, value)
                    digest = configuration_hash(mapping)
                    if digest in seen:
                        continue
                    seen.add(digest)
                    mapping["name"] = _run_name(coordinates, digest)
                    described = ", ".join(f"{key}={value}" for key, value in coordinates.items())
                    mapping["description"] = f"sweep {spec.name}: {described}"
                    mapping["output"]["directory"] = str(spec.directory)
                    try:
                        config = RunConfig.from_dict(mapping)
                    except ConfigError as error:
                        raise ConfigError(f"grid cell {coordinates}: {error}") from None
                    cells.append(SweepCell(index=len(cells), coordinates=coordinates, config=config,
                                           config_hash=digest))
    return cells


# --------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------


@dataclass
class RunTask:
    """What a worker receives: one run's configuration and where it writes.

    Attributes
    ----------
    run_id : int
        The run's id in the store.
    name : str
    config : dict
        :meth:`RunConfig.to_dict` of the cell.
    directory : str
        Absolute run directory (checkpoint, result files).
    progress : bool
        Show the run's own progress bar (in-process execution only).
    """

    run_id: int
    name: str
    config: dict[str, Any]
    directory: str
    progress: bool = False


@dataclass
class RunOutcome:
    """What a worker returns for one run (the coordinator stores it).

    Attributes
    ----------
    run_id : int
    status : str
        ``"completed"`` or ``"failed"``.
    snapshots : list of dict
        :meth:`fullnet.observe.Snapshot.to_dict` at every recorded epoch.
    error : str or None
        ``Type: message`` and the traceback of a failed run.
    started, finished : float
        Unix times.
    wall_seconds : float
        Worker time of this attempt (data, model, training, files).
    training_seconds : float or None
        Training time of this attempt (:attr:`fullnet.training.TrainingResult.wall_seconds`).
    epochs_completed : int or None
    resumed_from_epoch : int or None
        Epoch of the checkpoint this attempt continued from (None: started afresh).
    worker : str
        ``host:pid``.
    summary : dict
        The result without its history (status, steps, λ's per parameter group, model, data).
    """

    run_id: int
    status: str
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0
    wall_seconds: float = 0.0
    training_seconds: float | None = None
    epochs_completed: int | None = None
    resumed_from_epoch: int | None = None
    worker: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_cell(task: RunTask, *, on_step: Callable[[Any], None] | None = None) -> RunOutcome:
    """Run one cell with :func:`fullnet.training.train` (the default runner of :func:`run_sweep`).

    Continues from ``checkpoint.pt`` when the run directory has one. An exception becomes a
    ``failed`` outcome; KeyboardInterrupt and SystemExit propagate (the training saved a
    checkpoint).

    Parameters
    ----------
    task : RunTask
    on_step : callable, optional
        Passed to :func:`fullnet.training.train`.
    """
    started = time.time()
    clock = time.perf_counter()
    resumed_from = None
    try:
        from .training import CHECKPOINT_NAME, load_checkpoint, train

        config = RunConfig.from_dict(task.config)
        checkpoint = Path(task.directory) / CHECKPOINT_NAME
        resume = checkpoint.is_file()
        if resume:
            resumed_from = int(load_checkpoint(checkpoint)["epoch"])
        result = train(config, resume=resume, output_dir=task.directory, progress=task.progress,
                       on_step=on_step)
    except Exception as error:
        text = f"{type(error).__name__}: {error}\n\n{traceback.format_exc()}"
        return RunOutcome(
            run_id=task.run_id, status="failed", error=text, started=started, finished=time.time(),
            wall_seconds=time.perf_counter() - clock, resumed_from_epoch=resumed_from,
            worker=_worker_name(),
        )
    snapshots = [snapshot.to_dict() for snapshot in result.history]
    if result.final is not None and all(item["epoch"] != result.final.epoch for item in snapshots):
        snapshots.append(result.final.to_dict())
    summary = {key: value for key, value in result.to_dict().items() if key not in ("history", "final")}
    return RunOutcome(
        run_id=task.run_id, status="completed", snapshots=snapshots, started=started,
        finished=time.time(), wall_seconds=time.perf_counter() - clock,
        training_seconds=result.wall_seconds, epochs_completed=result.epochs_completed,
        resumed_from_epoch=resumed_from, worker=_worker_name(), summary=summary,
    )


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------


class InlineExecutor(Executor):
    """Runs every submitted call at once in the calling thread (``workers=0``: debugging, tests,
    per-run progress bars). Exceptions, KeyboardInterrupt included, go into the future."""

    def __init__(self) -> None:
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` now, in this process; return its finished future."""
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: Future = Future()
        future.set_running_or_notify_cancel()
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:  # the coordinator decides (KeyboardInterrupt: stop)
            future.set_exception(error)
        else:
            future.set_result(result)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True


#: Seconds between two checks, in a local worker, that its coordinator is alive.
PARENT_CHECK_INTERVAL = 0.5


def _exit_with_parent(parent: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:  # the coordinator died: nothing will collect our results
            os._exit(1)


def initialize_worker(threads: int = 1, parent: int | None = None) -> None:
    """Initializer of local worker processes: ``threads`` torch/BLAS threads, and (given the
    coordinator's ``parent`` process id) a watcher thread that ends the worker as soon as its
    coordinator is gone, however it died (the mechanism of :func:`ufm.executors.local_process_pool`)."""
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(int(parent), PARENT_CHECK_INTERVAL),
                         daemon=True, name="fullnet-parent-watch").start()
        if os.getppid() != parent:  # died while this worker started
            os._exit(1)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    import torch

    torch.set_num_threads(threads)


def available_cpus() -> int:
    """CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def local_executor(workers: int, threads: int = 1) -> Executor:
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes with ``threads`` threads each,
    which exit when the calling process dies (SIGKILL, an out-of-memory kill): a killed
    coordinator leaves no worker behind, and with its workers gone multiprocessing's resource
    tracker ends too (nothing keeps holding the coordinator's stdout)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=initialize_worker, initargs=(threads, os.getpid()),
    )


class SchedulerError(ConnectionError, ValueError):
    """A dask scheduler cannot be used: a malformed address or scheduler file, the package
    ``distributed`` missing, or no answer within the timeout (one-line message)."""


#: Seconds :func:`dask_executor` waits for a scheduler (``distributed`` waits 30 by default).
DEFAULT_CONNECT_TIMEOUT = 10.0


def dask_executor(scheduler: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> tuple[Executor, Any]:
    """(executor, client) of a ``dask.distributed`` cluster.

    Parameters
    ----------
    scheduler : str
        ``tcp://HOST:PORT`` (or any address ``distributed.Client`` accepts), or the path of a
        scheduler file (``dask scheduler --scheduler-file``, dask-mpi): a JSON file with the
        scheduler's ``address``.
    timeout : float
        Seconds to wait for the scheduler (default :data:`DEFAULT_CONNECT_TIMEOUT`).

    Raises
    ------
    SchedulerError
        (a ConnectionError and a ValueError) ``scheduler`` is not an address or a readable
        scheduler file, ``distributed`` is not installed, or no scheduler answered at that
        address within ``timeout`` seconds.
    """
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise SchedulerError(
            "scheduler: running on a dask cluster needs the package 'distributed' "
            "(pip install 'ufm-sandbox[cluster]')"
        ) from None
    if not isinstance(scheduler, str) or not scheduler:
        raise SchedulerError(f"scheduler must be an address like tcp://HOST:PORT, got {scheduler!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise SchedulerError(f"timeout must be a positive number of seconds, got {timeout!r}")
    address = scheduler
    if scheduler.endswith(".json") or os.path.exists(scheduler):
        from .guards import read_input_text

        try:
            text = read_input_text(scheduler, "scheduler file")
        except (OSError, ValueError) as error:
            raise SchedulerError(str(error)) from None
        try:
            content = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:
            raise SchedulerError(f"scheduler file {scheduler} is not JSON ({error})") from None
        address = content.get("address") if isinstance(content, dict) else None
        if not isinstance(address, str) or not address:
            raise SchedulerError(f"scheduler file {scheduler} holds no 'address' (a dask scheduler file does)")
    try:
        client = Client(address, timeout=timeout)
    except ValueError as error:
        raise SchedulerError(f"scheduler {address!r} is not an address like tcp://HOST:PORT ({error})") from None
    except (OSError, TimeoutError) as error:
        raise SchedulerError(
            f"no dask scheduler answered at {address} within {timeout:g} s; start one there "
            "(`dask scheduler`) or check the address and the firewall"
        ) from None
    return client.get_executor(pure=False), client


def _worker_loss_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [BrokenExecutor, CancelledError]
    try:
        from distributed import KilledWorker

        errors.append(KilledWorker)
    except ImportError:  # pragma: no cover - without distributed
        pass
    return tuple(errors)


def _shutdown(executor: Executor, *, wait_for_runs: bool) -> None:
    try:
        executor.shutdown(wait=wait_for_runs, cancel_futures=True)
    except TypeError:  # executors without cancel_futures (dask's ClientExecutor)
        executor.shutdown(wait=wait_for_runs)


# --------------------------------------------------------------------------------------------
# Coordinator
# --------------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What one call of :func:`run_sweep` did.

    Attributes
    ----------
    name : str
    store : str
        Path of the store.
    cells : int
        Cells in the grid.
    skipped_completed, skipped_failed : int
        Cells not run because the store has them completed (failed, without ``retry_failed``).
    completed, failed : list of int
        Run ids completed or failed by this call.
    elsewhere : list of int
        Run ids that another coordinator of the same store ran (completed or failed) while this
        call waited for them; not run here.
    worker_losses : int
        Submissions lost with their worker (and submitted again or failed).
    seconds : float
    run_directory : str
        The folder of the run folders (beside the store unless ``output.directory`` is set).
    totals : dict
        Status → number of cells of the grid in the store when the call ended.
    first_error : str or None
        The first line of the error of the first failed cell of the grid.
    """

    name: str
    store: str
    cells: int
    skipped_completed: int = 0
    skipped_failed: int = 0
    completed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    elsewhere: list[int] = field(default_factory=list)
    worker_losses: int = 0
    seconds: float = 0.0
    run_directory: str = ""
    totals: dict[str, int] = field(default_factory=dict)
    first_error: str | None = None

    @property
    def all_failed(self) -> bool:
        """No cell of the grid completed and at least one failed."""
        return not self.totals.get("completed") and bool(self.totals.get("failed"))

    def summary_line(self) -> str | None:
        """One line on the failed cells (None when none failed)."""
        failed = self.totals.get("failed", 0)
        if not failed:
            return None
        what = f"all {self.cells} cells failed" if failed == self.cells else (
            f"{failed} of {self.cells} cells failed"
            + (", none completed" if self.all_failed else f", {self.totals.get('completed', 0)} completed"))
        first = f" (first: {self.first_error})" if self.first_error else ""
        return (f"sweep {self.name}: {what}{first}; errors in store {self.store}; "
                "--retry-failed runs them again")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _outcome_values(outcome: RunOutcome) -> list[tuple[int, int, str, float | None]]:
    rows: list[tuple[int, int, str, float | None]] = []
    for snapshot in outcome.snapshots:
        rows.extend(snapshot_values(snapshot))
    return rows


def _postfix_of(outcome: RunOutcome, name: str) -> str:
    if outcome.status != "completed" or not outcome.snapshots:
        return f"{name}: failed"
    last = outcome.snapshots[-1]
    text = f"{name}: Φ={last['terms']['objective']:.3g}"
    layers = last.get("layers") or []
    if layers and layers[-1].get("metrics", {}).get("NC1.tr_unc") is not None:
        text += f" NC1={layers[-1]['metrics']['NC1.tr_unc']:.2g}"
    return text


#: Seconds without a heartbeat after which a coordinator's lease on a cell is stale.
DEFAULT_LEASE_TIMEOUT = 120.0
#: Seconds between two claims of a cell that another coordinator holds.
CLAIM_POLL_INTERVAL = 1.0


def run_directory(specification: SweepSpecification, store: str | os.PathLike) -> Path:
    """The folder of a sweep's run folders: ``output.directory/NAME`` when the specification
    sets ``output.directory`` (to anything but the default ``outputs/fullnet``), else the folder
    of the store — for the default store (``output.directory/NAME/sweep.sqlite``) the two are
    the same folder."""
    if specification.base.output.directory != RunConfig().output.directory:
        return specification.directory
    return Path(store).absolute().resolve().parent


def run_sweep(
    specification: SweepSpecification,
    store: SweepStore | str | os.PathLike | None = None,
    *,
    executor: Executor | Callable[[], Executor] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    max_in_flight: int | None = None,
    max_retries: int = 2,
    retry_failed: bool = False,
    threads_per_run: int | None = 1,
    progress: bool = True,
    runner: Callable[[RunTask], RunOutcome] = run_cell,
    on_result: Callable[[RunRecord], None] | None = None,
    lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
) -> SweepReport:
    """Run every cell of a sweep that the store does not have completed; store the results.

    Every cell is run under a lease in the store (:meth:`fullnet.store.SweepStore.claim_run`), so
    that coordinators sharing a store run each cell once: a cell another live coordinator holds
    is waited for (and taken over if its lease goes stale), not run again.

    Parameters
    ----------
    specification : SweepSpecification
    store : SweepStore or path-like, optional
        The results store (default :attr:`SweepSpecification.default_store_path`). A path is
        opened (created if missing) and closed at the end. The run folders go beside it
        (:func:`run_directory`).
    executor : Executor or callable, optional
        Where runs execute: an executor (left open; it must not break), or a zero-argument
        callable returning one (shut down at the end and replaced when it breaks). Excludes
        ``workers`` and ``scheduler``.
    workers : int, optional
        Local worker processes (default: the available CPUs); 0 runs in this process. They exit
        when this process dies (:func:`local_executor`).
    scheduler : str, optional
        A dask scheduler address ``tcp://HOST:PORT`` or scheduler file (:func:`dask_executor`);
        it is reached before the store is opened, so an unreachable one leaves no store behind.
    connect_timeout : float
        Seconds to wait for the scheduler.
    max_in_flight : int, optional
        Runs submitted and not yet returned (default: ``workers`` for local processes, 1 in
        process, unbounded for other executors).
    max_retries : int
        Resubmissions of a run whose worker died, before it is recorded as failed.
    retry_failed : bool
        Also run again the cells whose stored status is ``failed`` (failures recorded before
        this call began).
    threads_per_run : int, optional
        ``training.threads`` of every run (None: the base's). Runs in this process
        (``workers=0``, a dask cluster with ``processes=False``) set this process's torch threads.
    progress : bool
        A progress bar for the sweep (postfix: the last finished run), and one per run when runs
        execute in this process.
    runner : callable
        ``runner(RunTask) -> RunOutcome`` executed by the workers (default :func:`run_cell`); it
        must be picklable for process and cluster executors.
    on_result : callable, optional
        ``on_result(RunRecord)`` in this process after each run is stored.
    lease_timeout : float
        Seconds without a heartbeat after which another coordinator's lease on a cell is stale
        and the cell is taken over (default :data:`DEFAULT_LEASE_TIMEOUT`; a lease of a
        coordinator of this host whose process is gone is stale at once). This call renews its
        own leases every ``lease_timeout / 6`` seconds (at most 10).

    Returns
    -------
    SweepReport

    Raises
    ------
    SweepChangedError
        The store holds a sweep of this name with another base configuration (nothing written).
    KeyboardInterrupt
        After the sweep was interrupted and the store updated (rerun to continue).
    """
    from tqdm import tqdm

    if not isinstance(specification, SweepSpecification):
        raise TypeError(f"specification must be a SweepSpecification, got {type(specification).__name__}")
    chosen = [name for name, value in (("executor", executor), ("workers", workers),
                                       ("scheduler", scheduler)) if value is not None]
    if len(chosen) > 1:
        raise ValueError(f"give at most one of executor, workers, scheduler; got {chosen}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
        raise ValueError(f"max_in_flight must be a positive integer, got {max_in_flight!r}")
    if threads_per_run is not None and (not isinstance(threads_per_run, int) or threads_per_run < 1):
        raise ValueError(f"threads_per_run must be a positive integer or None, got {threads_per_run!r}")
    if isinstance(lease_timeout, bool) or not isinstance(lease_timeout, (int, float)) \
            or not 0 < lease_timeout < math.inf:
        raise ValueError(f"lease_timeout must be a positive number of seconds, got {lease_timeout!r}")
    started = time.perf_counter()
    started_at = time.time()
    cells = expand_grid(specification)

    client = None
    current: Executor | None = None
    if scheduler is not None:
        current, client = dask_executor(scheduler, timeout=connect_timeout)
    owned_store = not isinstance(store, SweepStore)
    if store is None:
        store = specification.default_store_path
    # A store this call creates and fails to register the sweep in is removed again (with the
    # folders created for it): a refused sweep leaves nothing behind.
    new_store = owned_store and not os.path.lexists(store)
    created = created_ancestors(Path(store).absolute().parent) if new_store else []
    registered = False
    try:
        sweep_store = SweepStore(store) if owned_store else store  # type: ignore[arg-type]
    except BaseException:
        if client is not None:
            client.close()
        if new_store:
            _discard_store(Path(store), created)
        raise
    factory: Callable[[], Executor] | None = None
    inline = False
    root = run_directory(specification, sweep_store.path)
    report = SweepReport(name=specification.name, store=str(sweep_store.path), cells=len(cells),
                         run_directory=str(root))
    in_flight: dict[Future, tuple[RunTask, int]] = {}
    owner = LeaseOwner.new()
    heartbeat: LeaseHeartbeat | None = None
    identifiers: dict[str, int] = {}
    bar = None
    try:
        # -- register -----------------------------------------------------------------------
        registrations, configs = [], {}
        for cell in cells:
            mapping = cell.config.to_dict()
            mapping["output"]["directory"] = str(root)
            if threads_per_run is not None:
                mapping["training"]["threads"] = threads_per_run
            configs[cell.config_hash] = mapping
            registrations.append(RunRegistration(
                config_hash=cell.config_hash, name=cell.name, config=mapping,
                coordinates=cell.coordinates, directory=str(root / cell.name),
            ))

        def same_base(stored: dict[str, Any]) -> None:
            changes = base_changes(stored, specification)
            if changes:
                shown = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
                raise SweepChangedError(
                    f"sweep {specification.name!r} in store {sweep_store.path} was run with another "
                    f"configuration ({shown}); its runs and these would mix: start a new sweep "
                    f"name (sweep.name, e.g. --set sweep.name={specification.name}_2) or use "
                    "another store"
                )

        identifiers = sweep_store.register_grid(specification.name, specification.to_dict(),
                                                registrations, check=same_base)
        registered = True
        statuses = {record.run_id: record.status for record in sweep_store.runs(specification.name)}

        # -- executor -----------------------------------------------------------------------
        limit = max_in_flight
        if scheduler is not None:
            pass  # connected above
        elif executor is not None:
            if isinstance(executor, Executor):
                current = executor
            elif callable(executor):
                factory = executor
            else:
                raise TypeError(f"executor must be an Executor or a callable, got {type(executor).__name__}")
        else:
            count = available_cpus() if workers is None else workers
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
            if count == 0:
                current = InlineExecutor()
            else:
                factory = lambda: local_executor(count, threads_per_run or 1)  # noqa: E731
                limit = limit or count
        if isinstance(current, InlineExecutor):
            inline = True
            limit = 1

        queue: deque[RunTask] = deque()
        for cell in cells:
            run_id = identifiers[cell.config_hash]
            status = statuses[run_id]
            if status == "completed":
                report.skipped_completed += 1
            elif status == "failed" and not retry_failed:
                report.skipped_failed += 1
            else:
                queue.append(RunTask(run_id=run_id, name=cell.name, config=configs[cell.config_hash],
                                     directory=str(root / cell.name), progress=progress and inline))
        if not queue:
            return report
        heartbeat = LeaseHeartbeat(sweep_store.path, owner, min(10.0, lease_timeout / 6)).start()
        if current is None and factory is not None:
            current = factory()
        assert current is not None
        generation = 0
        losses: dict[int, int] = {}
        loss_errors = _worker_loss_errors()
        held: set[int] = set()  # runs whose lease this call holds
        waiting: dict[int, RunTask] = {}  # runs another coordinator holds
        next_claim = 0.0
        bar = tqdm(total=len(cells), initial=report.skipped_completed + report.skipped_failed,
                   disable=not progress, desc=f"sweep {specification.name}", unit="run",
                   dynamic_ncols=True, position=0)
        postfix: dict[str, Any] = {}

        def replace_executor() -> None:
            nonlocal current, generation
            if factory is None:
                raise RuntimeError(
                    "executor: the executor broke and cannot be replaced; pass a callable that "
                    "makes an executor (or use workers=N) so that the sweep can start a new one"
                )
            _shutdown(current, wait_for_runs=False)
            current = factory()
            generation += 1

        while queue or in_flight or waiting:
            if waiting and not queue and time.monotonic() >= next_claim:
                queue.extend(waiting.values())  # claim again: done elsewhere, or stale by now
                waiting.clear()
                next_claim = time.monotonic() + CLAIM_POLL_INTERVAL
            while queue and (limit is None or len(in_flight) < limit):
                task = queue.popleft()
                if task.run_id in held:  # submitted again after a lost worker
                    sweep_store.mark_submitted(task.run_id)
                else:
                    claim = sweep_store.claim_run(
                        task.run_id, owner, timeout=lease_timeout,
                        retry_failed_before=started_at if retry_failed else None)
                    if claim == HELD:
                        waiting[task.run_id] = task
                        continue
                    if claim != CLAIMED:  # completed or failed under another coordinator
                        report.elsewhere.append(task.run_id)
                        postfix["elsewhere"] = len(report.elsewhere)
                        bar.set_postfix(postfix, refresh=False)
                        bar.update(1)
                        continue
                    held.add(task.run_id)
                try:
                    future = current.submit(runner, task)
                except BrokenExecutor:
                    queue.appendleft(task)
                    replace_executor()
                    continue
                in_flight[future] = (task, generation)
            if not in_flight:
                if waiting:
                    time.sleep(max(0.0, min(CLAIM_POLL_INTERVAL, next_claim - time.monotonic())))
                continue
            done, _ = wait(list(in_flight), timeout=1.0, return_when=FIRST_COMPLETED)
            for future in [item for item in in_flight if item in done]:
                task, task_generation = in_flight[future]
                try:
                    outcome = future.result()
                except loss_errors as error:
                    report.worker_losses += 1
                    losses[task.run_id] = losses.get(task.run_id, 0) + 1
                    if losses[task.run_id] <= max_retries:
                        queue.appendleft(task)
                    else:
                        sweep_store.record_failed(
                            task.run_id,
                            f"WorkerLost: the worker running this run died {losses[task.run_id]} "
                            f"times (last: {type(error).__name__}: {error})",
                        )
                        held.discard(task.run_id)
                        report.failed.append(task.run_id)
                    if isinstance(error, BrokenExecutor) and task_generation == generation:
                        replace_executor()
                    del in_flight[future]
                    if task.run_id in report.failed:
                        bar.update(1)
                    postfix["lost"] = report.worker_losses
                    bar.set_postfix(postfix, refresh=False)
                    continue
                except KeyboardInterrupt:
                    raise
                except BaseException as error:  # the runner itself broke (pickling, SystemExit)
                    text = f"{type(error).__name__}: {error}\n\n" + "".join(
                        traceback.format_exception(type(error), error, error.__traceback__))
                    outcome = RunOutcome(run_id=task.run_id, status="failed", error=text,
                                         finished=time.time())
                if outcome.status == "completed":
                    sweep_store.record_completed(
                        task.run_id, _outcome_values(outcome), started=outcome.started,
                        finished=outcome.finished, wall_seconds=outcome.wall_seconds,
                        training_seconds=outcome.training_seconds,
                        epochs_completed=outcome.epochs_completed,
                        resumed_from_epoch=outcome.resumed_from_epoch, worker=outcome.worker,
                        result=outcome.summary,
                    )
                    report.completed.append(task.run_id)
                else:
                    sweep_store.record_failed(
                        task.run_id, outcome.error or "failed", started=outcome.started or None,
                        finished=outcome.finished or None, wall_seconds=outcome.wall_seconds or None,
                        worker=outcome.worker or None,
                    )
                    report.failed.append(task.run_id)
                held.discard(task.run_id)
                del in_flight[future]
                postfix.update(done=len(report.completed), failed=len(report.failed),
                               last=_postfix_of(outcome, task.name))
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
                if on_result is not None:
                    on_result(sweep_store.run(task.run_id))
        return report
    except BaseException:
        for future in in_flight:
            future.cancel()
        if current is not None and (factory is not None or client is not None):
            # runs in flight on local processes finish first; their leases (kept fresh by the
            # heartbeat meanwhile) keep other coordinators from starting them a second time
            _shutdown(current, wait_for_runs=client is None)
            current = None
        if in_flight:
            sweep_store.mark_pending((task.run_id for task, _ in in_flight.values()), owner)
        raise
    finally:
        if bar is not None:
            bar.close()
        if heartbeat is not None:
            heartbeat.stop()
        if current is not None and (factory is not None or client is not None):
            _shutdown(current, wait_for_runs=True)
        if client is not None:
            client.close()
        if registered:
            try:
                sweep_store.release_leases(owner)  # runs given back to pending
                _finish_report(report, sweep_store, set(identifiers.values()))
            except sqlite3.Error:  # pragma: no cover - the store became unwritable
                pass
        report.seconds = time.perf_counter() - started
        if owned_store:
            discard = new_store and not registered and _holds_no_sweep(sweep_store)
            sweep_store.close()
            if discard:
                _discard_store(Path(store), created)


def _finish_report(report: SweepReport, store: SweepStore, run_ids: set[int]) -> None:
    """The grid's status totals and first error, from the store."""
    records = [record for record in store.runs(report.name) if record.run_id in run_ids]
    report.totals = {status: sum(record.status == status for record in records) for status in RUN_STATUSES}
    failed = [record for record in records if record.status == "failed" and record.error]
    report.first_error = one_line(failed[0].error.strip().splitlines()[0])[:200] if failed else None


def _holds_no_sweep(store: SweepStore) -> bool:
    """True when the store has no sweep (another coordinator may have registered one since this
    call created the file: then the file is not removed)."""
    try:
        return not store.sweep_names()
    except sqlite3.Error:  # pragma: no cover
        return True


def _discard_store(path: Path, created: list[Path]) -> None:
    """Remove a store file (and its WAL files) and the empty folders created for it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            Path(f"{path}{suffix}").unlink()
        except FileNotFoundError:
            pass
        except OSError:
            return
    remove_created_folders(created, files=())


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


@dataclass
class SweepGrid:
    """Mean and standard deviation over seeds of a final metric on the (λ, width) plane.

    Attributes
    ----------
    metric : str
    layer : int
    weight_decays : list of float
        Rows, ascending.
    widths : list of int
        Columns, ascending.
    mean, std : list of list of float
        [row][column]; NaN where no run has a value. ``std`` with ``ddof`` (0: population).
    count : list of list of int
        Seeds with a value.
    selection : dict
        The fixed coordinates (depths, further axes) of the runs aggregated.
    """

    metric: str
    layer: int
    weight_decays: list[float]
    widths: list[int]
    mean: list[list[float]]
    std: list[list[float]]
    count: list[list[int]]
    selection: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def plain(table: list[list[float]]) -> list[list[float | None]]:
            return [[None if math.isnan(value) else value for value in row] for row in table]

        data = asdict(self)
        data["mean"], data["std"] = plain(self.mean), plain(self.std)
        return data


@dataclass
class SweepLine:
    """Values of a final metric along λ·width^power = product, by width.

    Attributes
    ----------
    product, power : float
    widths : list of int
        Ascending.
    weight_decays : list of float
        λ at each width.
    mean, std : list of float
    count : list of int
    """

    product: float
    power: float
    widths: list[int]
    weight_decays: list[float]
    mean: list[float]
    std: list[float]
    count: list[int]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["mean"] = [None if math.isnan(value) else value for value in self.mean]
        data["std"] = [None if math.isnan(value) else value for value in self.std]
        return data


_PLANE_KEYS = ("weight_decay", "width", "seed")


def _select_rows(table: Any, nonlinear_depth: int | None, linear_depth: int | None,
                 where: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
    """Rows of a FinalMetricTable with the given fixed coordinates; checks that only λ, width
    and seed vary among them."""
    if where is not None and not isinstance(where, dict):
        raise TypeError(f"where must be a dict of coordinate → value, got {type(where).__name__}")
    conditions = dict(where or {})
    if nonlinear_depth is not None:
        conditions["nonlinear_depth"] = nonlinear_depth
    if linear_depth is not None:
        conditions["linear_depth"] = linear_depth
    rows = []
    for row in table.rows:
        coordinates = dict(row.coordinates)
        if all(coordinates.get(key) == value for key, value in conditions.items()):
            rows.append(row)
    if not rows:
        raise ValueError(
            f"no completed run of metric {table.metric!r} matches {conditions or 'the table'}"
        )
    selection: dict[str, Any] = {}
    keys = sorted({key for row in rows for key in row.coordinates} - set(_PLANE_KEYS))
    for key in keys:
        values = sorted({json.dumps(row.coordinates.get(key)) for row in rows})
        if len(values) > 1:
            argument = key if key in ("nonlinear_depth", "linear_depth") else f"where={{{key!r}: …}}"
            raise ValueError(
                f"the runs differ in {key} ({', '.join(values)}); choose one with {argument}"
            )
        selection[key] = json.loads(values[0])
    return rows, selection


def _statistics(values: list[float], ddof: int) -> tuple[float, float, int]:
    finite = [value for value in values if value is not None]
    if not finite:
        return math.nan, math.nan, 0
    array = np.asarray(finite, dtype=float)
    spread = float(array.std(ddof=ddof)) if array.size > ddof else math.nan
    return float(array.mean()), spread, int(array.size)


def aggregate_grid(
    table: Any,
    *,
    nonlinear_depth: int | None = None,
    linear_depth: int | None = None,
    where: dict[str, Any] | None = None,
    ddof: int = 0,
) -> SweepGrid:
    """Mean and std over seeds of a :class:`~fullnet.store.FinalMetricTable` on the (λ, width) grid.

    Parameters
    ----------
    table : FinalMetricTable
        From :meth:`fullnet.store.SweepStore.final_metrics`.
    nonlinear_depth, linear_depth : int, optional
        Required when the table holds several depths.
    where : dict, optional
        Fixed values of further coordinates (``{"training.learning_rate": 0.1}``).
    ddof : int
        Delta degrees of freedom of the standard deviation (NaN with ≤ ddof seeds).

    Raises
    ------
    ValueError
        If no run matches, or the runs differ in a coordinate other than λ, width and seed
        (the message names the argument that fixes it).
    """
    rows, selection = _select_rows(table, nonlinear_depth, linear_depth, where)
    weight_decays = sorted({_rounded(row.weight_decay) for row in rows})
    widths = sorted({row.width for row in rows})
    groups: dict[tuple[float, int], list[float]] = {}
    for row in rows:
        groups.setdefault((_rounded(row.weight_decay), row.width), []).append(row.value)
    mean = [[math.nan] * len(widths) for _ in weight_decays]
    std = [[math.nan] * len(widths) for _ in weight_decays]
    count = [[0] * len(widths) for _ in weight_decays]
    for (weight_decay, width), values in groups.items():
        i, j = weight_decays.index(weight_decay), widths.index(width)
        mean[i][j], std[i][j], count[i][j] = _statistics(values, ddof)
    return SweepGrid(metric=table.metric, layer=table.layer, weight_decays=weight_decays,
                     widths=widths, mean=mean, std=std, count=count, selection=selection)


def aggregate_lines(
    table: Any,
    *,
    power: float = 1.0,
    nonlinear_depth: int | None = None,
    linear_depth: int | None = None,
    where: dict[str, Any] | None = None,
    ddof: int = 0,
    minimum_points: int = 2,
) -> list[SweepLine]:
    """Mean and std over seeds along the lines λ·width^power = c (λ ∝ 1/width for power 1).

    Runs are grouped by c rounded to 9 significant digits; lines with fewer than
    ``minimum_points`` widths are left out. Arguments as :func:`aggregate_grid`.

    Returns
    -------
    list of SweepLine
        By ascending c.
    """
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not math.isfinite(power):
        raise ValueError(f"power must be a finite number, got {power!r}")
    if isinstance(minimum_points, bool) or not isinstance(minimum_points, int) or minimum_points < 1:
        raise ValueError(f"minimum_points must be a positive integer, got {minimum_points!r}")
    rows, _ = _select_rows(table, nonlinear_depth, linear_depth, where)
    lines: dict[float, dict[int, list[Any]]] = {}
    for row in rows:
        constant = float(f"{row.weight_decay * float(row.width) ** power:.9g}")
        lines.setdefault(constant, {}).setdefault(row.width, []).append(row)
    result = []
    for constant in sorted(lines):
        by_width = lines[constant]
        if len(by_width) < minimum_points:
            continue
        widths = sorted(by_width)
        statistics = [_statistics([row.value for row in by_width[width]], ddof) for width in widths]
        result.append(SweepLine(
            product=constant, power=float(power), widths=widths,
            weight_decays=[_rounded(by_width[width][0].weight_decay) for width in widths],
            mean=[item[0] for item in statistics], std=[item[1] for item in statistics],
            count=[item[2] for item in statistics],
        ))
    return result


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def add_sweep_command(commands: Any) -> Any:
    """Add ``sweep`` to the subcommands of ``python -m fullnet`` (an argparse subparsers object)."""
    parser = commands.add_parser(
        "sweep", help="run a λ–width grid of trainings into a SQLite store",
        description=(
            "Run every cell of a sweep file that the store does not have completed, on local "
            "worker processes or a dask cluster; interrupted sweeps continue where they stopped."
        ),
    )
    parser.add_argument(
        "--config", required=True, metavar="NAME|PATH",
        help="a packaged sweep's name (e.g. sweep_lambda_width_gaussian_quick; see 'configs') "
             "or a sweep file (TOML or JSON)",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="grid.KEY=VALUE or sweep.name=… change the sweep; section.key=value the base (repeatable)",
    )
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="dask scheduler tcp://HOST:PORT (or scheduler file) instead of local processes")
    parser.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT, metavar="SECONDS",
                        help=f"seconds to wait for the scheduler (default {DEFAULT_CONNECT_TIMEOUT:g})")
    parser.add_argument("--workers", type=int, default=None,
                        help="local worker processes (default: available CPUs; 0: in this process)")
    parser.add_argument("--store", default=None,
                        help="SQLite store (default output.directory/NAME/sweep.sqlite); the run folders "
                             "go beside it unless output.directory is set")
    parser.add_argument("--max-retries", type=int, default=2,
                        help="resubmissions of a run whose worker died (default 2)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed cells again")
    parser.add_argument("--threads-per-run", type=int, default=1, help="torch threads of each run (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the cells (name and coordinates) as JSON lines and exit")
    parser.set_defaults(handler=sweep_command)
    return parser


def sweep_command(arguments: Any) -> int:
    """Handler of ``python -m fullnet sweep``; prints the report as JSON.

    Exit status 0 when the sweep ran to its end with at least one cell completed (failed cells
    are in the report and the store, and one line on stderr counts them), 1 when no cell of the
    grid completed and some failed (one line on stderr: how many, the first error), 2 on bad
    input (one line naming the argument; nothing written) or a sweep name already run with
    another configuration, 128 + the signal after SIGINT or SIGTERM."""
    import signal
    import sqlite3
    import sys

    from .cli import positive_number
    from .guards import CommandError, argument_errors, check_output_directory, describe_error, signal_name
    from .store import StoreError

    with argument_errors("--config"):
        specification = load_sweep(arguments.config)
    if arguments.overrides:
        with argument_errors("--set"):
            specification = load_sweep(arguments.config, arguments.overrides)
    if arguments.dry_run:
        for cell in expand_grid(specification):
            print(json.dumps({"name": cell.name, "hash": cell.config_hash, **cell.coordinates}))
        return 0
    positive_number(arguments.workers, "--workers", integer=True, allow_zero=True)
    positive_number(arguments.max_retries, "--max-retries", integer=True, allow_zero=True)
    positive_number(arguments.threads_per_run, "--threads-per-run", integer=True)
    positive_number(arguments.connect_timeout, "--connect-timeout")
    if arguments.workers is not None and arguments.scheduler is not None:
        raise CommandError("--scheduler", "give --workers or --scheduler, not both")
    if arguments.scheduler is not None and not arguments.scheduler.strip():
        raise CommandError("--scheduler", "expected an address like tcp://HOST:PORT, got an empty string")
    if arguments.store is not None and not arguments.store.strip():
        raise CommandError("--store", "expected an SQLite file, got an empty path")
    store_argument = "--store" if arguments.store is not None else "output.directory"
    store_path = Path(arguments.store) if arguments.store is not None else specification.default_store_path
    runs = run_directory(specification, store_path)
    if runs == specification.directory:
        with argument_errors("output.directory"):
            check_output_directory(runs, "sweep folder")
    with argument_errors(store_argument):
        if store_path.is_dir():
            raise IsADirectoryError(f"store {store_path} is a folder, expected an SQLite file")
        check_output_directory(store_path.parent, "store folder")
    try:
        report = run_sweep(
            specification, store_path, workers=arguments.workers,
            scheduler=arguments.scheduler, connect_timeout=arguments.connect_timeout,
            max_retries=arguments.max_retries, retry_failed=arguments.retry_failed,
            threads_per_run=arguments.threads_per_run, progress=not arguments.no_progress,
        )
    except KeyboardInterrupt as error:
        signum = int(getattr(error, "signum", signal.SIGINT))
        print(f"\n{signal_name(signum)}: finished runs are stored; run the same command again to continue",
              file=sys.stderr)
        return 128 + signum
    except SchedulerError as error:
        raise CommandError("--scheduler", describe_error(error)) from None
    except SweepChangedError as error:
        raise CommandError("--config", describe_error(error)) from None
    except (StoreError, sqlite3.Error, OSError) as error:
        message = describe_error(error)
        if str(store_path) not in message:
            message = f"store {store_path}: {message}"
        raise CommandError(store_argument, message) from None
    summary = report.to_dict()
    summary["completed"], summary["failed"] = len(report.completed), len(report.failed)
    summary["elsewhere"] = len(report.elsewhere)
    print(json.dumps(summary), flush=True)
    line = report.summary_line()
    if report.all_failed:
        print(f"error: {line}", file=sys.stderr)
        return 1
    if line is not None:
        print(f"warning: {line}", file=sys.stderr)
    return 0


__all__ = [
    "CLAIM_POLL_INTERVAL",
    "DEFAULT_LEASE_TIMEOUT",
    "DEFAULT_SEED_KEYS",
    "InlineExecutor",
    "RunOutcome",
    "RunTask",
    "SchedulerError",
    "SweepCell",
    "SweepGrid",
    "SweepLine",
    "SweepChangedError",
    "SweepReport",
    "SweepSpecification",
    "add_sweep_command",
    "aggregate_grid",
    "aggregate_lines",
    "available_cpus",
    "base_changes",
    "configuration_hash",
    "dask_executor",
    "expand_grid",
    "initialize_worker",
    "load_sweep",
    "local_executor",
    "run_cell",
    "run_directory",
    "run_sweep",
    "split_overrides",
    "sweep_command",
]
