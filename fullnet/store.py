"""The results store of :mod:`fullnet.sweeps`: one SQLite file in WAL mode.

A store holds any number of sweeps. Each sweep has one row per run (its configuration as JSON,
the configuration hash that identifies the run, its grid coordinates, status, attempts, timings
and error) and one row per measured value, keyed by (run, epoch, layer, metric).

Schema (format ``fullnet-sweep-store``, version 2)::

    store_info(key TEXT PRIMARY KEY, value TEXT)            -- format, version
    sweeps(sweep_id INTEGER PRIMARY KEY, name TEXT UNIQUE, specification TEXT (JSON),
           created REAL, updated REAL)
    runs(run_id INTEGER PRIMARY KEY, sweep_id → sweeps, config_hash TEXT, name TEXT,
         config TEXT (JSON), coordinates TEXT (JSON), directory TEXT,
         weight_decay REAL, width INTEGER, nonlinear_depth INTEGER, linear_depth INTEGER,
         seed INTEGER,
         status TEXT ∈ {pending, running, completed, failed}, attempts INTEGER, error TEXT,
         created REAL, submitted REAL, started REAL, finished REAL,
         wall_seconds REAL, training_seconds REAL, epochs_completed INTEGER,
         resumed_from_epoch INTEGER, worker TEXT, result TEXT (JSON),
         UNIQUE (sweep_id, config_hash))
    grid_cells(sweep_id → sweeps, config_hash TEXT, PRIMARY KEY (sweep_id, config_hash))
                                                            -- the sweep's current grid
    leases(run_id → runs PRIMARY KEY, owner TEXT, pid INTEGER, host TEXT,
           acquired REAL, heartbeat REAL)                   -- which coordinator runs a cell
    metrics(run_id → runs, epoch INTEGER, layer INTEGER, metric TEXT, value REAL,
            PRIMARY KEY (run_id, epoch, layer, metric))

Times are Unix seconds. Metric rows (:func:`snapshot_values`): layer 0 holds the network-level
values of a snapshot (``objective``, ``data_term``, ``fit_error``, ``accuracy``, ``step``,
``learning_rate``, the totals of :func:`ufm.metrics.layer_report` such as ``ERR`` and
``BAL.scalar``…); layer l = 1..L holds the metrics of row l of :mod:`fullnet.observe` (the
features Z_{l−1} entering W_l, under their docs/theory.md §3 IDs), ``pre_ID`` for the pre-activation
H_{l−1}, ``layer_penalty`` (λ_l/2)‖W_l‖² and ``width`` p_{l−1}. Undefined values are NULL.

Idempotence: runs are unique per (sweep, configuration hash) and values per (run, epoch, layer,
metric); every insert is ``INSERT OR IGNORE`` and a run's values are written in the same
transaction that marks it completed, so a run is either completed with all its values or not
completed with none written by that attempt, and nothing is ever written twice.

Current grid: :meth:`SweepStore.register_grid` records which configuration hashes make up a
sweep's grid as last run. Runs of an earlier grid stay in the store but are left out of
:meth:`SweepStore.final_metrics` (and so of every aggregate), so a grid that changed never mixes
with the old one. A sweep registered without a grid (:meth:`SweepStore.register_runs` alone, or a
version 1 store) aggregates all its runs.

Leases: a coordinator runs a cell only after :meth:`SweepStore.claim_run` gave it the cell's
lease: one row per cell being run, with the owner's id, process id, host and a heartbeat time,
taken in one ``BEGIN IMMEDIATE`` transaction, so two coordinators of one store never both hold a
cell. A lease is *stale*, and may be taken over, when its heartbeat is older than the timeout
or when its owner ran on this host and its process is gone (a killed coordinator). Completing,
failing or giving back a run removes its lease in the same transaction. Leases rely on SQLite's
file locks: they hold for coordinators on one machine (or a file system whose locks work);
coordinators on different nodes of a network file system must not share a store.

Writers: each coordinator of a sweep (see :mod:`fullnet.sweeps`) writes; workers never do. Any
number of readers (a plotting script, an interactive explorer) may read the store at the same
time, which WAL mode allows without blocking a writer.

Versions: a version 1 store (without ``grid_cells`` and ``leases``) is upgraded in place when it
is opened.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

STORE_FORMAT = "fullnet-sweep-store"
STORE_VERSION = 2
#: Versions this package opens (older ones are upgraded in place).
READABLE_VERSIONS = (1, 2)
RUN_STATUSES = ("pending", "running", "completed", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    specification TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(sweep_id) ON DELETE CASCADE,
    config_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    coordinates TEXT NOT NULL,
    directory TEXT,
    weight_decay REAL,
    width INTEGER,
    nonlinear_depth INTEGER,
    linear_depth INTEGER,
    seed INTEGER,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created REAL NOT NULL,
    submitted REAL,
    started REAL,
    finished REAL,
    wall_seconds REAL,
    training_seconds REAL,
    epochs_completed INTEGER,
    resumed_from_epoch INTEGER,
    worker TEXT,
    result TEXT,
    UNIQUE (sweep_id, config_hash)
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(sweep_id, status);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    layer INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, epoch, layer, metric)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metrics_by_name ON metrics(metric, layer);
"""

#: Tables added in version 2 (created by a fresh store and by the upgrade of a version 1 store).
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS grid_cells (
    sweep_id INTEGER NOT NULL REFERENCES sweeps(sweep_id) ON DELETE CASCADE,
    config_hash TEXT NOT NULL,
    PRIMARY KEY (sweep_id, config_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    run_id INTEGER PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired REAL NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_by_owner ON leases(owner);
"""

#: Answers of :meth:`SweepStore.claim_run`.
CLAIMED, HELD, DONE_COMPLETED, DONE_FAILED = "claimed", "held", "completed", "failed"

_RUN_COLUMNS = (
    "run_id", "sweep_id", "config_hash", "name", "config", "coordinates", "directory",
    "weight_decay", "width", "nonlinear_depth", "linear_depth", "seed", "status", "attempts",
    "error", "created", "submitted", "started", "finished", "wall_seconds", "training_seconds",
    "epochs_completed", "resumed_from_epoch", "worker", "result",
)


class StoreError(ValueError):
    """A file is not a sweep store, or a request names a sweep, run or status it does not hold."""


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


@dataclass
class RunRegistration:
    """What the coordinator knows of a run before it starts (input of :meth:`SweepStore.register_runs`).

    Attributes
    ----------
    config_hash : str
        Identity of the run within its sweep (:func:`fullnet.sweeps.configuration_hash`).
    name : str
    config : dict
        The resolved :class:`~fullnet.config.RunConfig` as a plain dict.
    coordinates : dict
        The run's grid coordinates (``weight_decay``, ``width``, ``nonlinear_depth``,
        ``linear_depth``, ``seed`` and any further axis).
    directory : str
        The run directory (checkpoints, the files of :func:`fullnet.training.write_results`).
    """

    config_hash: str
    name: str
    config: dict[str, Any]
    coordinates: dict[str, Any]
    directory: str


@dataclass
class RunRecord:
    """One row of ``runs`` (JSON columns decoded)."""

    run_id: int
    sweep: str
    config_hash: str
    name: str
    config: dict[str, Any]
    coordinates: dict[str, Any]
    directory: str | None
    weight_decay: float | None
    width: int | None
    nonlinear_depth: int | None
    linear_depth: int | None
    seed: int | None
    status: str
    attempts: int
    error: str | None
    created: float
    submitted: float | None
    started: float | None
    finished: float | None
    wall_seconds: float | None
    training_seconds: float | None
    epochs_completed: int | None
    resumed_from_epoch: int | None
    worker: str | None
    result: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepRecord:
    """One row of ``sweeps`` with the number of runs in each status."""

    sweep_id: int
    name: str
    specification: dict[str, Any]
    created: float
    updated: float
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a lease: a coordinator, identified by a unique id, its process id and its host."""

    owner: str
    pid: int
    host: str

    @classmethod
    def new(cls) -> "LeaseOwner":
        """A fresh owner for the calling process (``host:pid:random``)."""
        host, pid = socket.gethostname(), os.getpid()
        return cls(owner=f"{host}:{pid}:{uuid.uuid4().hex[:12]}", pid=pid, host=host)


@dataclass
class LeaseRecord:
    """One row of ``leases``: the run a coordinator is running, and since when."""

    run_id: int
    owner: str
    pid: int
    host: str
    acquired: float
    heartbeat: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def process_alive(pid: int) -> bool:
    """True while process ``pid`` of this machine runs (a zombie counts as gone). Where this cannot
    be told (Windows), True: a lease is then stale by its heartbeat only."""
    if os.name == "nt":  # pragma: no cover - os.kill(pid, 0) would send CTRL_C_EVENT
        return True
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def lease_is_stale(lease: LeaseRecord, *, timeout: float, now: float | None = None,
                   host: str | None = None) -> bool:
    """A lease whose heartbeat is older than ``timeout`` seconds, or whose owner ran on this host
    (``host``, default this machine's name) and is no longer alive."""
    now = time.time() if now is None else now
    if now - lease.heartbeat > timeout:
        return True
    return lease.host == (socket.gethostname() if host is None else host) and not process_alive(lease.pid)


class LeaseHeartbeat:
    """A daemon thread that renews an owner's leases every ``interval`` seconds on its own
    connection, so that they stay fresh while the coordinator is busy (a run in its own process,
    a long write). A failed renewal (a busy store) is retried at the next beat.

    Use as a context manager, or :meth:`start` and :meth:`stop`.
    """

    def __init__(self, path: str | os.PathLike, owner: LeaseOwner, interval: float) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < math.inf:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        self.path = Path(path)
        self.owner = owner
        self.interval = float(interval)
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fullnet-lease-heartbeat", daemon=True)

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(str(self.path), timeout=self.interval, isolation_level=None)
        except sqlite3.Error:  # pragma: no cover - the coordinator's own connection would fail too
            return
        try:
            while not self._stop.wait(self.interval):
                try:
                    connection.execute("UPDATE leases SET heartbeat = ? WHERE owner = ?",
                                       (time.time(), self.owner.owner))
                    self.beats += 1
                except sqlite3.Error:
                    pass
        finally:
            connection.close()

    def start(self) -> "LeaseHeartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(5.0, 2 * self.interval))

    def __enter__(self) -> "LeaseHeartbeat":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


@dataclass
class RunHistory:
    """Every stored value of one run, by epoch.

    Attributes
    ----------
    run_id : int
    epochs : list of int
        The recorded epochs, ascending.
    values : dict
        (layer, metric) → list of values aligned with ``epochs`` (None where not recorded or
        undefined).
    """

    run_id: int
    epochs: list[int]
    values: dict[tuple[int, str], list[float | None]]

    def series(self, metric: str, layer: int = 0) -> tuple[list[int], list[float | None]]:
        """(epochs, values) of one metric; raises KeyError naming the metric if absent."""
        key = (int(layer), metric)
        if key not in self.values:
            known = sorted({name for _, name in self.values})
            raise KeyError(f"run {self.run_id} has no metric {metric!r} at layer {layer}; metrics: {known}")
        return list(self.epochs), list(self.values[key])

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "epochs": list(self.epochs),
            "values": {f"L{layer}/{metric}": list(series) for (layer, metric), series in sorted(self.values.items())},
        }


@dataclass
class FinalMetricRow:
    """A run's value of one metric at its last recorded epoch, with its grid coordinates."""

    run_id: int
    weight_decay: float | None
    width: int | None
    nonlinear_depth: int | None
    linear_depth: int | None
    seed: int | None
    epoch: int
    value: float | None
    coordinates: dict[str, Any] = field(default_factory=dict)


@dataclass
class FinalMetricTable:
    """Final values of one metric over the completed runs of a sweep (input of the aggregations
    of :mod:`fullnet.sweeps`).

    Attributes
    ----------
    metric : str
    layer : int
    sweep : str
    rows : list of FinalMetricRow
        Ordered by (nonlinear_depth, linear_depth, width, weight_decay, seed).
    """

    metric: str
    layer: int
    sweep: str
    rows: list[FinalMetricRow]

    def column(self, name: str) -> list[Any]:
        """One column of ``rows`` (``"value"``, ``"weight_decay"``, ``"width"``, ``"seed"``…)."""
        if not self.rows:
            return []
        if not hasattr(self.rows[0], name):
            raise KeyError(f"no column {name!r}; columns: {[item for item in FinalMetricRow.__dataclass_fields__]}")
        return [getattr(row, name) for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "layer": self.layer, "sweep": self.sweep,
                "rows": [asdict(row) for row in self.rows]}


# --------------------------------------------------------------------------------------------
# Snapshot → rows
# --------------------------------------------------------------------------------------------

_SNAPSHOT_SCALARS = ("step", "learning_rate", "accuracy", "test_accuracy")
_TERM_SCALARS = ("objective", "data_term", "fit_error", "backbone_penalty", "feature_penalty",
                 "one_dimensional_penalty")


def _number(value: Any) -> float | None | bool:
    """A float for a finite or infinite number, None for None/NaN, False for a non-number."""
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        value = float(value)
        return None if math.isnan(value) else value
    try:  # numpy scalars
        converted = float(value)
    except (TypeError, ValueError):
        return False
    return None if math.isnan(converted) else converted


def snapshot_values(snapshot: dict[str, Any]) -> list[tuple[int, int, str, float | None]]:
    """(epoch, layer, metric, value) rows of one :meth:`fullnet.observe.Snapshot.to_dict`.

    Layer 0: ``step``, ``learning_rate``, ``accuracy``, ``test_accuracy``, the terms of Φ and the
    scalar totals; layer l ≥ 1: the metrics of row l, ``pre_ID`` for the pre-activation,
    ``layer_penalty`` and ``width``. Values that are not numbers (lists, text) are left out.
    """
    if not isinstance(snapshot, dict) or "epoch" not in snapshot:
        raise ValueError("snapshot must be a dict from Snapshot.to_dict() with an 'epoch' key")
    epoch = int(snapshot["epoch"])
    rows: list[tuple[int, int, str, float | None]] = []

    def add(layer: int, metric: str, value: Any) -> None:
        number = _number(value)
        if number is not False:
            rows.append((epoch, layer, metric, number))

    for key in _SNAPSHOT_SCALARS:
        if key in snapshot:
            add(0, key, snapshot[key])
    terms = snapshot.get("terms") or {}
    for key in _TERM_SCALARS:
        if key in terms:
            add(0, key, terms[key])
    for index, value in enumerate(terms.get("layer_penalties") or [], start=1):
        add(index, "layer_penalty", value)
    for key, value in (snapshot.get("totals") or {}).items():
        if not isinstance(value, (list, tuple, dict)):
            add(0, key, value)
    for layer in snapshot.get("layers") or []:
        index = int(layer["layer"])
        add(index, "width", layer.get("width"))
        for key, value in (layer.get("metrics") or {}).items():
            add(index, key, value)
        for key, value in (layer.get("pre_metrics") or {}).items():
            add(index, f"pre_{key}", value)
    return rows


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


class SweepStore:
    """A sweep results store: one SQLite file in WAL mode (see the module docstring for the schema).

    Parameters
    ----------
    path : path-like
        The store file. Created (with its folder) when missing and ``create`` is true.
    create : bool
        Create a missing file (False: raise FileNotFoundError).
    timeout : float
        Seconds to wait for a lock held by another connection.

    Raises
    ------
    StoreError
        If the file exists but is not a sweep store (not SQLite, or SQLite without this format).

    Examples
    --------
    >>> with SweepStore("outputs/fullnet/lambda_width/sweep.sqlite") as store:  # doctest: +SKIP
    ...     table = store.final_metrics("NC1.tr_unc", layer=3)
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = True, timeout: float = 30.0) -> None:
        self.path = Path(path)
        existed = self.path.exists()
        if existed and not self.path.is_file():
            raise StoreError(f"store path {self.path} is not a file")
        if not existed:
            if not create:
                raise FileNotFoundError(f"sweep store {self.path} does not exist")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif self.path.stat().st_size > 0:
            with open(self.path, "rb") as handle:
                if handle.read(16) != b"SQLite format 3\x00":
                    raise StoreError(
                        f"store path {self.path} is not a sweep store (not an SQLite database)"
                    )
        # Two processes opening a new store at once race on the switch to WAL: SQLite may answer
        # "database is locked" at once (no busy wait for a journal-mode change) or a transient
        # "disk I/O error" while the other creates the -wal/-shm files. The set-up is idempotent
        # (CREATE TABLE IF NOT EXISTS, INSERT OR IGNORE), so it is retried with a fresh
        # connection until ``timeout``.
        deadline = time.monotonic() + timeout
        pause = 0.02
        while True:
            self._connection = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            try:
                self._prepare(fresh=not existed or self.path.stat().st_size == 0)
                break
            except sqlite3.OperationalError as error:
                self._connection.close()
                transient = any(word in str(error).lower() for word in ("locked", "busy", "disk i/o"))
                if not transient or time.monotonic() + pause > deadline:
                    raise StoreError(f"store {self.path}: {error}") from None
                time.sleep(pause)
                pause = min(2 * pause, 0.5)
            except BaseException:
                self._connection.close()
                raise

    # -- set-up --------------------------------------------------------------------------------
    def _prepare(self, *, fresh: bool) -> None:
        connection = self._connection
        connection.row_factory = sqlite3.Row
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            raise StoreError(f"store path {self.path} is not a sweep store ({error})") from None
        if tables and "store_info" not in tables:
            raise StoreError(
                f"store path {self.path} is not a sweep store: it is an SQLite database with "
                f"tables {sorted(tables)} but no store_info"
            )
        if "store_info" in tables:
            info = dict(connection.execute("SELECT key, value FROM store_info").fetchall())
            if info.get("format") != STORE_FORMAT:
                raise StoreError(
                    f"store path {self.path} is not a sweep store (format {info.get('format')!r}, "
                    f"expected {STORE_FORMAT!r})"
                )
            if info.get("version") not in {str(version) for version in READABLE_VERSIONS}:
                raise StoreError(
                    f"sweep store {self.path} has version {info.get('version')}; this package reads "
                    f"versions {', '.join(str(version) for version in READABLE_VERSIONS)}"
                )
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # pragma: no cover - file systems without shared memory
            raise StoreError(f"sweep store {self.path}: WAL mode is not available here (journal mode {mode})")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
        if "store_info" not in tables:
            connection.executescript(
                "BEGIN IMMEDIATE;" + _SCHEMA + _SCHEMA_2
                + f"INSERT OR IGNORE INTO store_info(key, value) VALUES ('format', '{STORE_FORMAT}');"
                + f"INSERT OR IGNORE INTO store_info(key, value) VALUES ('version', '{STORE_VERSION}');"
                + "COMMIT;"
            )
        elif not {"grid_cells", "leases"} <= tables:  # version 1: add the tables of version 2
            connection.executescript(
                "BEGIN IMMEDIATE;" + _SCHEMA_2
                + f"UPDATE store_info SET value = '{STORE_VERSION}' WHERE key = 'version';"
                + "COMMIT;"
            )

    class _Transaction:
        def __init__(self, connection: sqlite3.Connection) -> None:
            self.connection = connection

        def __enter__(self) -> sqlite3.Connection:
            self.connection.execute("BEGIN IMMEDIATE")
            return self.connection

        def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
            if kind is None:
                self.connection.execute("COMMIT")
            else:
                self.connection.execute("ROLLBACK")

    def _transaction(self) -> "SweepStore._Transaction":
        return SweepStore._Transaction(self._connection)

    def close(self) -> None:
        """Close the connection (the file stays a valid store)."""
        self._connection.close()

    def __enter__(self) -> "SweepStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def journal_mode(self) -> str:
        """SQLite's journal mode of the file (``"wal"``)."""
        return str(self._connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    # -- sweeps --------------------------------------------------------------------------------
    def register_sweep(self, name: str, specification: dict[str, Any]) -> int:
        """Create the sweep ``name`` or update its stored specification; returns its id."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        text = json.dumps(specification, sort_keys=True)
        now = time.time()
        with self._transaction() as connection:
            connection.execute(
                "INSERT INTO sweeps(name, specification, created, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET specification = excluded.specification, "
                "updated = excluded.updated",
                (name, text, now, now),
            )
            row = connection.execute("SELECT sweep_id FROM sweeps WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def _sweep_id(self, sweep: str | None) -> int | None:
        if sweep is None:
            return None
        row = self._connection.execute("SELECT sweep_id FROM sweeps WHERE name = ?", (sweep,)).fetchone()
        if row is None:
            raise StoreError(f"sweep {sweep!r} is not in store {self.path}; sweeps: {self.sweep_names()}")
        return int(row[0])

    def sweep_names(self) -> list[str]:
        return [row[0] for row in self._connection.execute("SELECT name FROM sweeps ORDER BY sweep_id")]

    def sweeps(self) -> list[SweepRecord]:
        """Every sweep with its specification and run counts per status."""
        records = []
        for row in self._connection.execute("SELECT * FROM sweeps ORDER BY sweep_id").fetchall():
            records.append(SweepRecord(
                sweep_id=row["sweep_id"], name=row["name"],
                specification=json.loads(row["specification"]),
                created=row["created"], updated=row["updated"],
                counts=self.counts(row["name"]),
            ))
        return records

    def _only_sweep(self, sweep: str | None) -> str:
        """``sweep``, or the store's single sweep when None."""
        if sweep is not None:
            self._sweep_id(sweep)
            return sweep
        names = self.sweep_names()
        if len(names) != 1:
            raise StoreError(
                f"store {self.path} holds {len(names)} sweeps {names}; name one with the sweep argument"
            )
        return names[0]

    # -- runs ----------------------------------------------------------------------------------
    def register_runs(self, sweep: str, runs: Sequence[RunRegistration]) -> dict[str, int]:
        """Insert the runs that are not yet stored (status ``pending``); existing rows are kept.

        Returns
        -------
        dict
            config hash → run id, for every run given.
        """
        sweep_id = self._sweep_id(sweep)
        with self._transaction() as connection:
            return self._insert_runs(connection, sweep_id, runs)

    @staticmethod
    def _insert_runs(connection: sqlite3.Connection, sweep_id: int | None,
                     runs: Sequence[RunRegistration]) -> dict[str, int]:
        now = time.time()
        for run in runs:
            if not isinstance(run, RunRegistration):
                raise TypeError(f"runs must hold RunRegistration objects, got {type(run).__name__}")
            coordinates = run.coordinates
            connection.execute(
                "INSERT OR IGNORE INTO runs(sweep_id, config_hash, name, config, coordinates, "
                "directory, weight_decay, width, nonlinear_depth, linear_depth, seed, status, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (
                    sweep_id, run.config_hash, run.name, json.dumps(run.config, sort_keys=True),
                    json.dumps(coordinates, sort_keys=True), run.directory,
                    coordinates.get("weight_decay"), coordinates.get("width"),
                    coordinates.get("nonlinear_depth"), coordinates.get("linear_depth"),
                    coordinates.get("seed"), now,
                ),
            )
        identifiers = {}
        for run in runs:
            row = connection.execute(
                "SELECT run_id FROM runs WHERE sweep_id = ? AND config_hash = ?",
                (sweep_id, run.config_hash),
            ).fetchone()
            identifiers[run.config_hash] = int(row[0])
        return identifiers

    def register_grid(
        self,
        sweep: str,
        specification: dict[str, Any],
        runs: Sequence[RunRegistration],
        *,
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, int]:
        """Register a sweep, its runs and its current grid in one transaction.

        The sweep is created (or its specification replaced), the runs not yet stored are
        inserted (``pending``), the runs not completed get ``directory`` as given (their folder
        moves with the store), and the sweep's current grid becomes exactly ``runs``: runs of
        an earlier grid stay stored but leave :meth:`final_metrics`.

        Parameters
        ----------
        sweep : str
        specification : dict
        runs : sequence of RunRegistration
        check : callable, optional
            ``check(stored_specification)``, called inside the transaction when the sweep is
            already stored; an exception it raises refuses the registration (nothing written).

        Returns
        -------
        dict
            config hash → run id, for every run given.
        """
        if not isinstance(sweep, str) or not sweep:
            raise ValueError(f"sweep must be a non-empty string, got {sweep!r}")
        text = json.dumps(specification, sort_keys=True)
        now = time.time()
        with self._transaction() as connection:
            row = connection.execute("SELECT specification FROM sweeps WHERE name = ?", (sweep,)).fetchone()
            if row is not None and check is not None:
                check(json.loads(row[0]))
            connection.execute(
                "INSERT INTO sweeps(name, specification, created, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET specification = excluded.specification, "
                "updated = excluded.updated",
                (sweep, text, now, now),
            )
            sweep_id = int(connection.execute("SELECT sweep_id FROM sweeps WHERE name = ?", (sweep,)).fetchone()[0])
            identifiers = self._insert_runs(connection, sweep_id, runs)
            connection.executemany(
                "UPDATE runs SET directory = ? WHERE run_id = ? AND status != 'completed'",
                [(run.directory, identifiers[run.config_hash]) for run in runs],
            )
            connection.execute("DELETE FROM grid_cells WHERE sweep_id = ?", (sweep_id,))
            connection.executemany(
                "INSERT OR IGNORE INTO grid_cells(sweep_id, config_hash) VALUES (?, ?)",
                [(sweep_id, run.config_hash) for run in runs],
            )
        return identifiers

    def grid_hashes(self, sweep: str | None = None) -> set[str] | None:
        """The configuration hashes of a sweep's current grid (None: no grid registered)."""
        sweep_id = self._sweep_id(self._only_sweep(sweep))
        rows = self._connection.execute(
            "SELECT config_hash FROM grid_cells WHERE sweep_id = ?", (sweep_id,)).fetchall()
        return {row[0] for row in rows} or None

    def _record(self, row: sqlite3.Row, sweep_names: dict[int, str]) -> RunRecord:
        values = {key: row[key] for key in _RUN_COLUMNS}
        return RunRecord(
            run_id=values["run_id"], sweep=sweep_names[values["sweep_id"]],
            config_hash=values["config_hash"], name=values["name"],
            config=json.loads(values["config"]), coordinates=json.loads(values["coordinates"]),
            directory=values["directory"], weight_decay=values["weight_decay"],
            width=values["width"], nonlinear_depth=values["nonlinear_depth"],
            linear_depth=values["linear_depth"], seed=values["seed"], status=values["status"],
            attempts=values["attempts"], error=values["error"], created=values["created"],
            submitted=values["submitted"], started=values["started"], finished=values["finished"],
            wall_seconds=values["wall_seconds"], training_seconds=values["training_seconds"],
            epochs_completed=values["epochs_completed"],
            resumed_from_epoch=values["resumed_from_epoch"], worker=values["worker"],
            result=None if values["result"] is None else json.loads(values["result"]),
        )

    def _sweep_names_by_id(self) -> dict[int, str]:
        return {int(row[0]): row[1] for row in self._connection.execute("SELECT sweep_id, name FROM sweeps")}

    @staticmethod
    def _grid_condition(table: str = "runs") -> str:
        """SQL: the run of ``table`` (the name or alias of ``runs`` in the query) belongs to its
        sweep's current grid (every run where none is recorded)."""
        prefix = f"{table}."
        return (
            f"(NOT EXISTS (SELECT 1 FROM grid_cells g WHERE g.sweep_id = {prefix}sweep_id) OR "
            f"EXISTS (SELECT 1 FROM grid_cells g WHERE g.sweep_id = {prefix}sweep_id "
            f"AND g.config_hash = {prefix}config_hash))"
        )

    def runs(self, sweep: str | None = None, status: str | Sequence[str] | None = None, *,
             grid_only: bool = False) -> list[RunRecord]:
        """Run rows, optionally of one sweep and of the given status(es), by run id.

        ``grid_only``: only the runs of each sweep's current grid (:meth:`register_grid`).
        """
        query = "SELECT * FROM runs"
        conditions, parameters = [], []
        sweep_id = self._sweep_id(sweep)
        if sweep_id is not None:
            conditions.append("sweep_id = ?")
            parameters.append(sweep_id)
        if grid_only:
            conditions.append(self._grid_condition())
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for item in statuses:
                if item not in RUN_STATUSES:
                    raise StoreError(f"status must be one of {RUN_STATUSES}, got {item!r}")
            conditions.append(f"status IN ({', '.join('?' for _ in statuses)})")
            parameters.extend(statuses)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        names = self._sweep_names_by_id()
        return [self._record(row, names) for row in self._connection.execute(query + " ORDER BY run_id", parameters)]

    def run(self, run_id: int) -> RunRecord:
        """The row of one run; raises StoreError naming the id if absent."""
        row = self._connection.execute("SELECT * FROM runs WHERE run_id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise StoreError(f"run_id {run_id} is not in store {self.path}")
        return self._record(row, self._sweep_names_by_id())

    def counts(self, sweep: str | None = None, *, grid_only: bool = False) -> dict[str, int]:
        """Number of runs in each status (every status listed, zeros included); ``grid_only``:
        of the current grid (:meth:`register_grid`)."""
        sweep_id = self._sweep_id(sweep)
        query = "SELECT status, COUNT(*) FROM runs"
        conditions, parameters = [], []
        if sweep_id is not None:
            conditions.append("sweep_id = ?")
            parameters.append(sweep_id)
        if grid_only:
            conditions.append(self._grid_condition())
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        found = dict(self._connection.execute(query + " GROUP BY status", parameters).fetchall())
        return {status: int(found.get(status, 0)) for status in RUN_STATUSES}

    def metric_row_count(self, run_id: int | None = None) -> int:
        """Number of rows in ``metrics`` (of one run, or all)."""
        if run_id is None:
            return int(self._connection.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])
        return int(self._connection.execute(
            "SELECT COUNT(*) FROM metrics WHERE run_id = ?", (int(run_id),)).fetchone()[0])

    # -- status changes ------------------------------------------------------------------------
    def mark_submitted(self, run_id: int) -> None:
        """Status ``running``, one more attempt, the submission time."""
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, submitted = ? "
                "WHERE run_id = ? AND status != 'completed'",
                (time.time(), int(run_id)),
            )

    def mark_pending(self, run_ids: Iterable[int], owner: LeaseOwner | None = None) -> None:
        """Back to ``pending`` (an interrupted sweep); completed runs are left as they are.

        With ``owner``, only the runs whose lease it holds (or that have none) change, and its
        leases on them are given back.
        """
        identifiers = [(int(run_id),) for run_id in run_ids]
        with self._transaction() as connection:
            if owner is None:
                connection.executemany(
                    "UPDATE runs SET status = 'pending' WHERE run_id = ? AND status != 'completed'",
                    identifiers,
                )
                return
            connection.executemany(
                "UPDATE runs SET status = 'pending' WHERE run_id = ? AND status NOT IN ('completed', 'failed') "
                "AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.run_id = runs.run_id AND l.owner != ?)",
                [(run_id, owner.owner) for (run_id,) in identifiers],
            )
            connection.executemany("DELETE FROM leases WHERE run_id = ? AND owner = ?",
                                   [(run_id, owner.owner) for (run_id,) in identifiers])

    # -- leases --------------------------------------------------------------------------------
    def claim_run(
        self,
        run_id: int,
        owner: LeaseOwner,
        *,
        timeout: float,
        retry_failed_before: float | None = None,
    ) -> str:
        """Take the lease of a run, atomically (one ``BEGIN IMMEDIATE`` transaction).

        Parameters
        ----------
        run_id : int
        owner : LeaseOwner
        timeout : float
            Seconds without a heartbeat after which another owner's lease is stale.
        retry_failed_before : float, optional
            A failed run whose failure was recorded before this Unix time may be claimed again
            (``retry_failed``); one that failed later (under another coordinator of this
            sweep) counts as done.

        Returns
        -------
        str
            ``"claimed"`` (the run is ``running``, one more attempt, the lease is ``owner``'s),
            ``"held"`` (a live lease of another owner), ``"completed"`` or ``"failed"`` (done:
            nothing to run).
        """
        run_id = int(run_id)
        now = time.time()
        with self._transaction() as connection:
            row = connection.execute("SELECT status, finished FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"run_id {run_id} is not in store {self.path}")
            status, finished = row[0], row[1]
            if status == "completed":
                return DONE_COMPLETED
            if status == "failed" and (retry_failed_before is None
                                       or (finished is not None and finished >= retry_failed_before)):
                return DONE_FAILED
            lease = connection.execute("SELECT * FROM leases WHERE run_id = ?", (run_id,)).fetchone()
            if lease is not None and lease["owner"] != owner.owner \
                    and not lease_is_stale(self._lease(lease), timeout=timeout, now=now):
                return HELD
            connection.execute(
                "INSERT OR REPLACE INTO leases(run_id, owner, pid, host, acquired, heartbeat) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, owner.owner, owner.pid, owner.host, now, now),
            )
            connection.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, submitted = ? WHERE run_id = ?",
                (now, run_id),
            )
        return CLAIMED

    @staticmethod
    def _lease(row: sqlite3.Row) -> LeaseRecord:
        return LeaseRecord(run_id=int(row["run_id"]), owner=row["owner"], pid=int(row["pid"]),
                           host=row["host"], acquired=float(row["acquired"]),
                           heartbeat=float(row["heartbeat"]))

    def leases(self, sweep: str | None = None) -> list[LeaseRecord]:
        """The leases held (of one sweep's runs, or all), by run id."""
        sweep_id = self._sweep_id(sweep)
        if sweep_id is None:
            rows = self._connection.execute("SELECT * FROM leases ORDER BY run_id")
        else:
            rows = self._connection.execute(
                "SELECT l.* FROM leases l JOIN runs r ON r.run_id = l.run_id WHERE r.sweep_id = ? "
                "ORDER BY l.run_id", (sweep_id,))
        return [self._lease(row) for row in rows.fetchall()]

    def renew_leases(self, owner: LeaseOwner) -> int:
        """Set the heartbeat of every lease of ``owner`` to now; returns how many it holds."""
        with self._transaction() as connection:
            cursor = connection.execute("UPDATE leases SET heartbeat = ? WHERE owner = ?",
                                        (time.time(), owner.owner))
            return int(cursor.rowcount)

    def release_leases(self, owner: LeaseOwner) -> int:
        """Give back every lease of ``owner``: their runs that are still ``running`` go back to
        ``pending``. Returns the number of leases given back."""
        with self._transaction() as connection:
            connection.execute(
                "UPDATE runs SET status = 'pending' WHERE status = 'running' AND run_id IN "
                "(SELECT run_id FROM leases WHERE owner = ?)", (owner.owner,))
            cursor = connection.execute("DELETE FROM leases WHERE owner = ?", (owner.owner,))
            return int(cursor.rowcount)

    def record_completed(
        self,
        run_id: int,
        values: Iterable[tuple[int, int, str, float | None]],
        *,
        started: float | None = None,
        finished: float | None = None,
        wall_seconds: float | None = None,
        training_seconds: float | None = None,
        epochs_completed: int | None = None,
        resumed_from_epoch: int | None = None,
        worker: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        """Store a finished run and its (epoch, layer, metric, value) rows in one transaction,
        which also removes the run's lease.

        Returns False (and writes nothing) if the run is already completed.
        """
        run_id = int(run_id)
        with self._transaction() as connection:
            row = connection.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"run_id {run_id} is not in store {self.path}")
            if row[0] == "completed":
                return False
            connection.executemany(
                "INSERT OR IGNORE INTO metrics(run_id, epoch, layer, metric, value) VALUES (?, ?, ?, ?, ?)",
                ((run_id, int(epoch), int(layer), str(metric), value) for epoch, layer, metric, value in values),
            )
            connection.execute("DELETE FROM leases WHERE run_id = ?", (run_id,))
            connection.execute(
                "UPDATE runs SET status = 'completed', error = NULL, started = ?, finished = ?, "
                "wall_seconds = ?, training_seconds = ?, epochs_completed = ?, "
                "resumed_from_epoch = ?, worker = ?, result = ? WHERE run_id = ?",
                (started, finished, wall_seconds, training_seconds, epochs_completed,
                 resumed_from_epoch, worker, None if result is None else json.dumps(result), run_id),
            )
        return True

    def record_failed(
        self,
        run_id: int,
        error: str,
        *,
        started: float | None = None,
        finished: float | None = None,
        wall_seconds: float | None = None,
        worker: str | None = None,
    ) -> bool:
        """Mark a run failed with its error text (its lease removed). Returns False if it is
        already completed."""
        run_id = int(run_id)
        with self._transaction() as connection:
            row = connection.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"run_id {run_id} is not in store {self.path}")
            if row[0] == "completed":
                return False
            connection.execute("DELETE FROM leases WHERE run_id = ?", (run_id,))
            connection.execute(
                "UPDATE runs SET status = 'failed', error = ?, started = ?, finished = ?, "
                "wall_seconds = ?, worker = ? WHERE run_id = ?",
                (str(error), started, finished if finished is not None else time.time(),
                 wall_seconds, worker, run_id),
            )
        return True

    # -- queries -------------------------------------------------------------------------------
    def metric_names(self, sweep: str | None = None) -> list[tuple[int, str]]:
        """The (layer, metric) pairs stored (of one sweep's runs, or all), sorted."""
        sweep_id = self._sweep_id(sweep)
        if sweep_id is None:
            rows = self._connection.execute("SELECT DISTINCT layer, metric FROM metrics")
        else:
            rows = self._connection.execute(
                "SELECT DISTINCT m.layer, m.metric FROM metrics m JOIN runs r ON r.run_id = m.run_id "
                "WHERE r.sweep_id = ?", (sweep_id,))
        return sorted((int(layer), str(metric)) for layer, metric in rows)

    def history(self, run_id: int, metric: str | None = None, layer: int | None = None) -> RunHistory:
        """Every stored value of one run (optionally one metric and/or one layer) by epoch."""
        self.run(run_id)  # raises StoreError if absent
        query = "SELECT epoch, layer, metric, value FROM metrics WHERE run_id = ?"
        parameters: list[Any] = [int(run_id)]
        if metric is not None:
            query += " AND metric = ?"
            parameters.append(metric)
        if layer is not None:
            query += " AND layer = ?"
            parameters.append(int(layer))
        rows = self._connection.execute(query + " ORDER BY epoch, layer, metric", parameters).fetchall()
        epochs = sorted({int(row[0]) for row in rows})
        position = {epoch: index for index, epoch in enumerate(epochs)}
        values: dict[tuple[int, str], list[float | None]] = {}
        for epoch, layer_index, name, value in rows:
            series = values.setdefault((int(layer_index), str(name)), [None] * len(epochs))
            series[position[int(epoch)]] = value
        return RunHistory(run_id=int(run_id), epochs=epochs, values=values)

    def final_metrics(self, metric: str, layer: int = 0, sweep: str | None = None) -> FinalMetricTable:
        """Each completed run's value of ``metric`` at ``layer`` at its last recorded epoch, over
        the runs of the sweep's current grid (:meth:`register_grid`; all its runs if it has none).

        Parameters
        ----------
        metric : str
            A metric name of :func:`snapshot_values` (``"NC1.tr_unc"``, ``"objective"``…).
        layer : int
            0 for network-level values, l ≥ 1 for row l.
        sweep : str, optional
            Needed when the store holds more than one sweep.

        Raises
        ------
        StoreError
            If no run of the sweep has this (layer, metric), naming the metrics it has.
        """
        name = self._only_sweep(sweep)
        sweep_id = self._sweep_id(name)
        rows = self._connection.execute(
            """
            SELECT r.run_id, r.weight_decay, r.width, r.nonlinear_depth, r.linear_depth, r.seed,
                   r.coordinates, m.epoch, m.value
            FROM runs r
            JOIN metrics m ON m.run_id = r.run_id AND m.layer = ? AND m.metric = ?
            WHERE r.sweep_id = ? AND r.status = 'completed' AND """ + self._grid_condition("r") + """
              AND m.epoch = (SELECT MAX(epoch) FROM metrics
                             WHERE run_id = r.run_id AND layer = ? AND metric = ?)
            ORDER BY r.nonlinear_depth, r.linear_depth, r.width, r.weight_decay, r.seed, r.run_id
            """,
            (int(layer), metric, sweep_id, int(layer), metric),
        ).fetchall()
        if not rows and self.counts(name, grid_only=True)["completed"]:
            known = sorted({item for item_layer, item in self.metric_names(name) if item_layer == int(layer)})
            raise StoreError(
                f"metric {metric!r} at layer {layer} is not stored for sweep {name!r}; "
                f"metrics at that layer: {known}"
            )
        return FinalMetricTable(
            metric=metric, layer=int(layer), sweep=name,
            rows=[
                FinalMetricRow(
                    run_id=row[0], weight_decay=row[1], width=row[2], nonlinear_depth=row[3],
                    linear_depth=row[4], seed=row[5], epoch=row[7], value=row[8],
                    coordinates=json.loads(row[6]),
                )
                for row in rows
            ],
        )

    def iterate_metrics(self, sweep: str | None = None) -> Iterator[tuple[int, int, int, str, float | None]]:
        """Every (run_id, epoch, layer, metric, value) row (of one sweep), ordered."""
        sweep_id = self._sweep_id(sweep)
        if sweep_id is None:
            cursor = self._connection.execute(
                "SELECT run_id, epoch, layer, metric, value FROM metrics ORDER BY run_id, epoch, layer, metric")
        else:
            cursor = self._connection.execute(
                "SELECT m.run_id, m.epoch, m.layer, m.metric, m.value FROM metrics m "
                "JOIN runs r ON r.run_id = m.run_id WHERE r.sweep_id = ? "
                "ORDER BY m.run_id, m.epoch, m.layer, m.metric", (sweep_id,))
        for row in cursor:
            yield (int(row[0]), int(row[1]), int(row[2]), str(row[3]), row[4])


__all__ = [
    "CLAIMED",
    "DONE_COMPLETED",
    "DONE_FAILED",
    "FinalMetricRow",
    "FinalMetricTable",
    "HELD",
    "LeaseHeartbeat",
    "LeaseOwner",
    "LeaseRecord",
    "READABLE_VERSIONS",
    "RUN_STATUSES",
    "RunHistory",
    "RunRecord",
    "RunRegistration",
    "STORE_FORMAT",
    "STORE_VERSION",
    "StoreError",
    "SweepRecord",
    "SweepStore",
    "lease_is_stale",
    "process_alive",
    "snapshot_values",
]
