"""Full-batch gradient descent and minibatch SGD on Φ, with metrics, checkpoints and resume.

The objective is docs/theory.md §1.2's Φ = (1/(2N))‖F − Y‖² + Σ_l (λ_l/2)‖W_l‖² (+ backbone and
feature penalties, :mod:`fullnet.objective`). The data term is computed in that convention and
the update (:class:`WeightDecayGradientDescent`, per parameter group η and λ) is
θ ← θ − η(∇(data term) + λθ) = (1 − ηλ)θ − η∇(data term);
``ufm.conventions.lambdas_from_torch_optimizer(..., reduction="paper")`` reads the λ's back from
the parameter groups and they are recorded with the results.

- ``optimizer="gd"``: one step per epoch on all N samples (the theory's algorithm); the gradient
  may be accumulated over chunks of samples (exact without batch normalization).
- ``optimizer="sgd"``: ⌈N/B⌉ steps per epoch over a seeded random permutation, objective
  (1/(2B))‖F_ℬ − Y_ℬ‖² + (λ_H/2)(N/B)Σ_{i∈ℬ}‖h_i‖² + penalties (expectation Φ, §1.3).
- The learning rate is multiplied by ``lr_drop_factor`` (0.1) from epoch ⌊0.8·epochs⌋ on.
- Metrics (:func:`fullnet.observe.observe`) at log-spaced epochs, 0 and the last included.
- Checkpoints are written atomically (temporary file, fsync, ``os.replace``) every
  ``checkpoint_every`` epochs, every ``checkpoint_seconds`` of wall time, at the end, at
  ``stop_at_epoch`` and on SIGINT (Ctrl-C) or SIGTERM (SLURM). A first signal is deferred to the
  end of the current optimizer step, so the saved state is always that of a completed step;
  resuming continues bit-identically on the CPU (same data order, same generator state, same
  optimizer state).
- :func:`train` checks everything it can (configuration, output folder, checkpoint, device,
  memory, data) before it creates the run folder (:mod:`fullnet.guards`).
- A run can be watched while it goes on: every snapshot is appended to ``history.jsonl`` as it is
  taken (flushed and fsynced; :func:`read_history_journal` ignores a line torn by a kill), a plain
  ``train.log`` records the start, the configuration, each snapshot, checkpoints, interrupts and
  the end, ``on_snapshot`` callbacks feed other loggers, ``output.tensorboard`` writes TensorBoard
  scalars (:class:`TensorBoardWriter`), and ``python -m fullnet plot RUN_DIR`` draws the curves
  (:mod:`fullnet.plot`).
- A finished (or stopped) run continues for longer when resumed with a larger
  ``training.epochs``; the learning-rate schedule is then recomputed for the new total
  (:func:`train`, :func:`continuation_record`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ufm.conventions import lambdas_from_torch_optimizer

from .architectures import PyramidalMLP, ResNet20
from .config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainingConfig
from .guards import (
    RUN_FILES,
    Interrupted,
    RunLock,
    check_memory,
    check_output_directory,
    created_ancestors,
    remove_created_folders,
    remove_stale_temporaries,
    signal_name,
)
from .data import (
    TensorData,
    gaussian_mixture,
    load_dataset,
    prepare_data,
    resolve_device,
    select_classes,
)
from .objective import Regularization, data_term, parameter_groups, penalized_features
from .observe import Snapshot, observe

CHECKPOINT_FORMAT = "fullnet-checkpoint-1"
CHECKPOINT_NAME = "checkpoint.pt"

DTYPES = {"float32": torch.float32, "float64": torch.float64}


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


def log_spaced_epochs(total_epochs: int, count: int) -> list[int]:
    """Epochs 0, the last, and about ``count`` − 2 log-spaced epochs between (sorted, unique).

    ``count = 0`` gives [0, total_epochs] only.
    """
    if isinstance(total_epochs, bool) or not isinstance(total_epochs, int) or total_epochs < 1:
        raise ValueError(f"total_epochs must be a positive integer, got {total_epochs!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    epochs = {0, total_epochs}
    if count > 2:
        grid = np.logspace(0.0, math.log10(total_epochs), count - 1)
        epochs.update(int(round(value)) for value in grid)
    return sorted(epochs)


def drop_epoch(total_epochs: int, fraction: float = 0.8) -> int:
    """First epoch with the dropped learning rate: ⌊fraction·epochs⌋ (= epochs for fraction 1)."""
    return int(math.floor(fraction * total_epochs + 1e-9))


def learning_rate_at(epoch: int, base: float, total_epochs: int, fraction: float = 0.8,
                     factor: float = 0.1) -> float:
    """η during epoch ``epoch`` (0-based): ``base``, times ``factor`` from :func:`drop_epoch` on
    (never for ``fraction`` ≥ 1)."""
    if fraction >= 1.0:
        return base
    return base * factor if epoch >= drop_epoch(total_epochs, fraction) else base


# --------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------


def _file_mode() -> int:
    """0o666 minus the process umask: the mode ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to a temporary file beside ``path``, fsync, then ``os.replace``.

    Readers see the old file or the complete new one, never a partial file; on any exception
    (KeyboardInterrupt included) the temporary file is removed and the old file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(temporary, _file_mode())
        with os.fdopen(handle, "wb") as output:
            output.write(payload)
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def atomic_torch_save(state: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(temporary, _file_mode())
        with os.fdopen(handle, "wb") as output:
            torch.save(state, output)
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :class:`Trainer` (tensors and plain Python values only)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; run without --resume first")
    from .guards import require_input_file

    require_input_file(path, "checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"checkpoint {path} cannot be read ({error}); it is damaged or foreign") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} is not a {CHECKPOINT_FORMAT} file")
    return state


# --------------------------------------------------------------------------------------------
# Live files of a run: the history journal, the log, TensorBoard
# --------------------------------------------------------------------------------------------

#: One JSON object per snapshot (:meth:`fullnet.observe.Snapshot.to_dict`), appended as it is taken.
HISTORY_JOURNAL_NAME = "history.jsonl"
#: Plain-text log of a run, appended.
LOG_NAME = "train.log"
#: Folder of the TensorBoard event files (``output.tensorboard = true``).
TENSORBOARD_NAME = "tensorboard"
#: Files a run writes besides :data:`fullnet.guards.RUN_FILES`.
LIVE_FILES = (HISTORY_JOURNAL_NAME, LOG_NAME)

_JOURNAL_TEMPORARY = re.compile(r"^\." + re.escape(HISTORY_JOURNAL_NAME) + r"\.[A-Za-z0-9_]+\.tmp$")


def append_history_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append ``row`` as one line of JSON to the history journal at ``path``, then flush and
    fsync: once this returns, the row survives any kill of the process (SIGKILL, the OOM killer,
    a lost node). A kill during the write leaves at most a torn last line, which
    :func:`read_history_journal` ignores."""
    line = json.dumps(row) + "\n"
    with open(path, "a", encoding="utf-8") as journal:
        journal.write(line)
        journal.flush()
        os.fsync(journal.fileno())


def write_history_journal(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Replace the history journal at ``path`` by ``rows`` atomically (a fresh run: no rows; a
    resumed run: the rows of its checkpoint)."""
    return atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def read_history_journal(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a history journal (:data:`HISTORY_JOURNAL_NAME`) in the order written.

    A last line that is not complete JSON — a write cut short by a kill — is ignored. A damaged
    line before the last raises ValueError naming the file and the line.
    """
    path = Path(path)
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    last = max((index for index, line in enumerate(lines) if line.strip()), default=-1)
    rows: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if index == last:
                break  # torn by a kill
            raise ValueError(
                f"{path}: line {index + 1} is not JSON; the history journal is damaged"
            ) from None
        if not isinstance(row, dict) or "epoch" not in row:
            raise ValueError(f"{path}: line {index + 1} is not a snapshot (a JSON object with an epoch)")
        rows.append(row)
    return rows


class RunLog:
    """``train.log``: lines ``YYYY-MM-DD HH:MM:SS  message``, appended and line-buffered, so that
    ``tail -f`` follows a run and a killed run keeps every line written before the kill.

    Call it with a message (several lines are stamped one by one). A failed write (a full disk)
    closes the log rather than stopping the training; the checkpoint and the history report such
    failures themselves.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: io.TextIOBase | None = open(self.path, "a", buffering=1, encoding="utf-8")

    def __call__(self, message: str) -> None:
        if self._file is None:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            for line in str(message).splitlines() or [""]:
                self._file.write(f"{stamp}  {line}\n")
        except (OSError, ValueError):
            self.close()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def tensorboard_scalars(snapshot: Snapshot) -> dict[str, float]:
    """The finite numbers of a snapshot as TensorBoard tags: ``loss/objective``,
    ``loss/layer_penalty_2``, ``accuracy/train``, ``schedule/learning_rate``, ``totals/BAL.scalar``,
    and per layer ``NC1.tr_unc/layer3`` (features entering W_3) or ``NEG/layer2_pre`` (the
    pre-activation), so that TensorBoard groups one metric's layers in one section."""
    scalars: dict[str, Any] = {"schedule/learning_rate": snapshot.learning_rate,
                               "accuracy/train": snapshot.accuracy,
                               "accuracy/test": snapshot.test_accuracy}
    terms = snapshot.terms
    for name in ("objective", "data_term", "fit_error", "backbone_penalty", "feature_penalty",
                 "one_dimensional_penalty"):
        scalars[f"loss/{name}"] = getattr(terms, name)
    for index, value in enumerate(terms.layer_penalties, start=1):
        scalars[f"loss/layer_penalty_{index}"] = value
    for key, value in snapshot.totals.items():
        scalars[f"totals/{key}"] = value
    for layer in snapshot.layers:
        for key, value in layer.metrics.items():
            scalars[f"{key}/layer{layer.layer}"] = value
        for key, value in (layer.pre_metrics or {}).items():
            scalars[f"{key}/layer{layer.layer}_pre"] = value
    return {
        tag: float(value) for tag, value in scalars.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


class TensorBoardWriter:
    """Writes every snapshot given to it (``writer(snapshot)``) as TensorBoard scalars
    (:func:`tensorboard_scalars`, step = epoch) under ``log_dir``, flushed at once.

    ``torch.utils.tensorboard`` (which needs the ``tensorboard`` package) is imported here, not
    with this module. ``purge_step``: a resumed run hides the events of epochs from there on that
    a killed session wrote after its last checkpoint.
    """

    def __init__(self, log_dir: str | os.PathLike, *, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ConfigError(
                f"output.tensorboard = true needs the tensorboard package, which cannot be imported "
                f"({' '.join(str(error).split())}): pip install 'ufm-sandbox[tensorboard]'"
            ) from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def __call__(self, snapshot: Snapshot) -> None:
        for tag, value in tensorboard_scalars(snapshot).items():
            self.writer.add_scalar(tag, value, global_step=snapshot.epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """Outcome of :meth:`Trainer.run` (JSON-serializable through :meth:`to_dict`).

    Attributes
    ----------
    status : str
        ``"completed"``, ``"stopped"`` (at ``stop_at_epoch``) or ``"interrupted"``.
    epochs_completed, steps : int
    history : list of Snapshot
        At the log-spaced epochs reached.
    final : Snapshot or None
        The last snapshot (at the final epoch when completed).
    groups : list of dict
        Per parameter group: name, λ (weight_decay), η, and the λ read back through
        :func:`ufm.conventions.lambdas_from_torch_optimizer`.
    wall_seconds : float
        Training time of this session (excluding earlier sessions of a resumed run).
    device : str
    checkpoint : str or None
    schedule : dict
        The learning-rate schedule in force: epochs, η, the drop epoch (None without a drop)
        and factor.
    continuations : list of dict
        One entry per resumption that changed ``training.epochs`` (from which epoch, the old and
        the new target, the drop epoch before and after, and a note on what that did to η).
    """

    status: str
    epochs_completed: int
    steps: int
    history: list[Snapshot]
    final: Snapshot | None
    groups: list[dict[str, Any]]
    wall_seconds: float
    device: str
    checkpoint: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    continuations: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "epochs_completed": self.epochs_completed,
            "steps": self.steps,
            "history": [snapshot.to_dict() for snapshot in self.history],
            "final": None if self.final is None else self.final.to_dict(),
            "groups": self.groups,
            "wall_seconds": self.wall_seconds,
            "device": self.device,
            "checkpoint": self.checkpoint,
            "model": self.model,
            "data": self.data,
            "schedule": self.schedule,
            "continuations": self.continuations,
        }

    def history_rows(self) -> list[dict[str, Any]]:
        """One flat dict per snapshot (see :meth:`fullnet.observe.Snapshot.flat`)."""
        return [snapshot.flat() for snapshot in self.history]


def history_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text of flat rows; columns in order of first appearance, missing values empty."""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: ("" if value is None else value) for key, value in row.items()})
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------


class WeightDecayGradientDescent:
    """θ ← θ − η(∇(data term) + λθ), with optional heavy-ball momentum, per parameter group.

    The update of docs/theory.md §1.2 written out: for a group with step ``lr`` = η, ``weight_decay``
    = λ and ``momentum`` = μ, d = g + λθ, v ← μv + d (v = d on the first step), θ ← θ − ηv; with
    μ = 0 this is W ← (1 − ηλ)W − ηg exactly the theory's GD step. Same conventions as
    ``torch.optim.SGD`` (coupled decay, no dampening), without importing ``torch.optim`` (whose
    first use loads the compiler stack); ``param_groups`` has torch's layout, so
    :func:`ufm.conventions.lambdas_from_torch_optimizer` reads the λ's.

    Parameters
    ----------
    groups : list of dict
        ``{"params": [...], "lr": η, "weight_decay": λ, "name": str}``.
    momentum : float
    """

    def __init__(self, groups: list[dict[str, Any]], *, momentum: float = 0.0) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.param_groups = []
        for group in groups:
            entry = dict(group)
            entry["params"] = list(group["params"])
            entry.setdefault("momentum", float(momentum))
            for key in ("lr", "weight_decay"):
                if key not in entry:
                    raise ValueError(f"every parameter group needs {key!r}")
            self.param_groups.append(entry)
        self.state: dict[int, torch.Tensor] = {}

    def _parameters(self) -> list[torch.Tensor]:
        return [parameter for group in self.param_groups for parameter in group["params"]]

    def zero_grad(self) -> None:
        for parameter in self._parameters():
            parameter.grad = None

    @torch.no_grad()
    def step(self) -> None:
        index = 0
        for group in self.param_groups:
            rate, decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
            for parameter in group["params"]:
                gradient = parameter.grad
                if gradient is not None:
                    direction = gradient.add(parameter, alpha=decay) if decay else gradient
                    if momentum:
                        buffer = self.state.get(index)
                        if buffer is None:
                            buffer = direction.clone()
                        else:
                            buffer.mul_(momentum).add_(direction)
                        self.state[index] = buffer
                        direction = buffer
                    parameter.add_(direction, alpha=-rate)
                index += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "state": {index: buffer for index, buffer in self.state.items()},
            "param_groups": [
                {key: value for key, value in group.items() if key != "params"}
                for group in self.param_groups
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(
                f"optimizer state has {len(saved)} parameter groups, expected {len(self.param_groups)}"
            )
        for group, entry in zip(self.param_groups, saved):
            group.update(entry)
        parameters = self._parameters()
        self.state = {
            int(index): buffer.to(device=parameters[int(index)].device,
                                  dtype=parameters[int(index)].dtype)
            for index, buffer in state["state"].items()
        }


class _DeferredInterrupt:
    """SIGINT and SIGTERM handler: the first signal is recorded (the loop stops at the end of the
    current optimizer step), a second one raises :class:`~fullnet.guards.Interrupted` at once."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))

    def __init__(self) -> None:
        self.requested = False
        self.signum = int(signal.SIGINT)
        self.previous: dict[int, Any] = {}
        self.installed = False

    def __enter__(self) -> "_DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self.previous[number] = signal.getsignal(number)
                signal.signal(number, self._handle)
            self.installed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise Interrupted(signum)
        self.requested = True
        self.signum = int(signum)

    def interrupted(self) -> Interrupted:
        return Interrupted(self.signum)

    def __exit__(self, *exc_info: Any) -> None:
        if self.installed:
            for number, previous in self.previous.items():
                signal.signal(number, previous)


class Trainer:
    """Gradient descent (full batch) or SGD (minibatches) on Φ with metrics and checkpoints.

    Parameters
    ----------
    model : PyramidalMLP or ResNet20
        Already on the device and in the training dtype of ``data``.
    data : TensorData
        Training set (all samples as tensors on the device).
    regularization : Regularization
        λ's of Φ.
    learning_rate : float
        η (before the drop).
    epochs : int
    optimizer : {"gd", "sgd"}
    batch_size : int, optional
        B for ``"sgd"``.
    momentum : float
        Heavy-ball momentum (0 for the theory's algorithm; J7, J12 need 0).
    lr_drop_fraction, lr_drop_factor : float
    seed : int
        Seed of the minibatch order (a private ``torch.Generator``).
    chunk_size : int, optional
        Full-batch gradient accumulated over chunks of samples.
    test_data : TensorData, optional
    log_points : int
        See :func:`log_spaced_epochs`.
    metric_dtype : torch.dtype
    observe_chunk_size : int, optional
    rank_tolerance : float
    per_layer : bool
    checkpoint_path : path-like, optional
        Where checkpoints go (None: no checkpoints).
    checkpoint_every : int
        Epochs between checkpoints (0: only at the end, at ``stop_at_epoch`` and on interrupt).
    checkpoint_seconds : float, optional
        Wall-clock seconds between checkpoints (None or 0: none by time). Checked after every
        optimizer step, so a long SGD epoch is checkpointed mid-epoch; the saved state is that of
        a completed step, and resuming from it is bit-identical like any other checkpoint.
    progress : bool
        tqdm progress bar: Φ and NC1.tr_unc (features entering W_L) at the last snapshot, and
        the data term of the last step.
    extra_state : dict, optional
        Plain values stored in every checkpoint (e.g. the run configuration).
    on_step : callable, optional
        Called as ``on_step(trainer)`` after every optimizer step (tests, custom logging).
    on_snapshot : callable, optional
        Called as ``on_snapshot(snapshot)`` once per snapshot recorded in :attr:`history`, right
        after it is taken (loggers: a history journal, TensorBoard, Weights & Biases…).
    log : callable, optional
        Called with one-line messages on checkpoints and learning-rate changes (e.g. a
        :class:`RunLog`).
    """

    def __init__(
        self,
        model: nn.Module,
        data: TensorData,
        regularization: Regularization,
        *,
        learning_rate: float,
        epochs: int,
        optimizer: str = "gd",
        batch_size: int | None = None,
        momentum: float = 0.0,
        lr_drop_fraction: float = 0.8,
        lr_drop_factor: float = 0.1,
        seed: int = 0,
        chunk_size: int | None = None,
        test_data: TensorData | None = None,
        log_points: int = 30,
        metric_dtype: torch.dtype = torch.float64,
        observe_chunk_size: int | None = None,
        rank_tolerance: float = 1e-3,
        per_layer: bool = True,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        checkpoint_seconds: float | None = None,
        progress: bool = False,
        extra_state: dict[str, Any] | None = None,
        on_step: Callable[["Trainer"], None] | None = None,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(data, TensorData):
            raise TypeError(f"data must be a TensorData, got {type(data).__name__}")
        if not isinstance(regularization, Regularization):
            raise TypeError(
                f"regularization must be a Regularization, got {type(regularization).__name__}"
            )
        if optimizer not in ("gd", "sgd"):
            raise ValueError(f"optimizer must be 'gd' or 'sgd', got {optimizer!r}")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if not (math.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {learning_rate!r}")
        num_samples = data.num_samples
        if optimizer == "gd":
            if batch_size not in (None, num_samples):
                raise ValueError(
                    f"batch_size must be None (or N = {num_samples}) for full-batch 'gd', got {batch_size}"
                )
            batch_size = num_samples
        elif batch_size is None or batch_size < 1 or batch_size > num_samples:
            raise ValueError(f"batch_size must lie in 1..{num_samples} for 'sgd', got {batch_size!r}")
        if chunk_size is not None and (chunk_size < 1 or optimizer != "gd"):
            raise ValueError("chunk_size must be a positive integer and is only used with 'gd'")
        if regularization.feature_penalty > 0 and regularization.feature_layer == 0 and isinstance(
            model, PyramidalMLP
        ):
            raise ValueError(
                "a feature penalty on layer 0 needs a backbone; the MLP's Z_0 is the data "
                "(choose feature_layer >= 1)"
            )
        parameter = next(model.parameters())
        if parameter.device != data.device or parameter.dtype != data.inputs.dtype:
            raise ValueError(
                f"model ({parameter.device}, {parameter.dtype}) and data ({data.device}, "
                f"{data.inputs.dtype}) must share device and dtype"
            )
        self.model = model
        self.data = data
        self.test_data = test_data
        self.regularization = regularization
        self.learning_rate = float(learning_rate)
        self.epochs = epochs
        self.optimizer_kind = optimizer
        self.batch_size = int(batch_size)
        self.lr_drop_fraction = float(lr_drop_fraction)
        self.lr_drop_factor = float(lr_drop_factor)
        self.chunk_size = chunk_size
        self.log_epochs = log_spaced_epochs(epochs, log_points)
        self.metric_dtype = metric_dtype
        self.observe_chunk_size = observe_chunk_size
        self.rank_tolerance = rank_tolerance
        self.per_layer = per_layer
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.checkpoint_every = int(checkpoint_every)
        if checkpoint_seconds is not None and not (
            isinstance(checkpoint_seconds, (int, float)) and checkpoint_seconds >= 0
        ):
            raise ValueError(f"checkpoint_seconds must be a number >= 0 or None, got {checkpoint_seconds!r}")
        self.checkpoint_seconds = float(checkpoint_seconds) if checkpoint_seconds else None
        self._last_save = time.monotonic()
        self.progress = progress
        self.extra_state = dict(extra_state or {})
        self.on_step = on_step
        self.on_snapshot = on_snapshot
        self.log = log
        self._rate_in_force: float | None = None
        groups = parameter_groups(model, regularization, self.learning_rate)
        self.optimizer = WeightDecayGradientDescent(groups, momentum=momentum)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.seed = int(seed)
        # progress state
        self.epoch = 0
        self.step = 0
        self.batch_position = 0
        self.permutation: torch.Tensor | None = None
        self.history: list[Snapshot] = []
        self.last_batch_loss = float("nan")
        self._updating = False

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically (tensors and plain values only)."""
        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "step": self.step,
            "batch_position": self.batch_position,
            "permutation": self.permutation,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": [snapshot.to_dict() for snapshot in self.history],
            "settings": self._settings(),
            "extra": self.extra_state,
        }
        if torch.cuda.is_available() and self.data.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.data.device)
        return state

    def _settings(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "optimizer": self.optimizer_kind,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "num_samples": self.data.num_samples,
            "regularization": self.regularization.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], *, epochs_may_change: bool = False) -> None:
        """Restore a state from :meth:`state_dict` (e.g. a checkpoint); settings must agree.

        ``epochs_may_change``: the target number of epochs may differ from the saved one (a run
        continued for longer, or given a nearer end), as long as it is not below the epochs
        already completed; the learning-rate schedule then follows the new target
        (:func:`learning_rate_at` of ``epochs``).
        """
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"state is not a {CHECKPOINT_FORMAT} checkpoint")
        saved = state["settings"]
        current = self._settings()
        ignored = {"epochs"} if epochs_may_change else set()
        different = sorted(key for key in current if key not in ignored and saved.get(key) != current[key])
        if different:
            detail = ", ".join(f"{key}: saved {saved.get(key)!r} vs now {current[key]!r}" for key in different)
            raise ValueError(f"checkpoint does not match this trainer ({detail})")
        if int(state["epoch"]) > self.epochs:
            raise ValueError(
                f"the checkpoint has completed {int(state['epoch'])} epochs, more than epochs = {self.epochs}"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.data.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.data.device)
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.batch_position = int(state["batch_position"])
        permutation = state["permutation"]
        self.permutation = None if permutation is None else permutation.to("cpu")
        self.history = [Snapshot.from_dict(entry) for entry in state["history"]]

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write the state atomically to ``path`` (default ``checkpoint_path``); None if neither."""
        target = Path(path) if path is not None else self.checkpoint_path
        if target is None:
            return None
        saved = atomic_torch_save(self.state_dict(), target)
        if path is None:
            self._last_save = time.monotonic()
        if self.log is not None:
            where = f", mid-epoch at batch {self.batch_position}" if self.batch_position else ""
            self.log(f"checkpoint: epoch {self.epoch}, step {self.step}{where} -> {saved}")
        return saved

    def checkpoint_due(self) -> bool:
        """True when ``checkpoint_seconds`` have passed since the last checkpoint."""
        return (
            self.checkpoint_seconds is not None and self.checkpoint_path is not None
            and time.monotonic() - self._last_save >= self.checkpoint_seconds
        )

    def resume_from(self, path: str | os.PathLike | None = None) -> None:
        """Load the checkpoint at ``path`` (default ``checkpoint_path``)."""
        target = Path(path) if path is not None else self.checkpoint_path
        if target is None:
            raise ValueError("no checkpoint path given")
        self.load_state_dict(load_checkpoint(target))

    # -- steps ---------------------------------------------------------------------------------
    def current_learning_rate(self) -> float:
        return learning_rate_at(self.epoch, self.learning_rate, self.epochs,
                                self.lr_drop_fraction, self.lr_drop_factor)

    def schedule(self) -> dict[str, Any]:
        """The learning-rate schedule for the current target ``epochs``: η, and η·factor from
        ``lr_drop_epoch`` on (None: no drop)."""
        drop = None if self.lr_drop_fraction >= 1.0 else drop_epoch(self.epochs, self.lr_drop_fraction)
        return {
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
            "lr_drop_fraction": self.lr_drop_fraction,
            "lr_drop_factor": self.lr_drop_factor,
            "lr_drop_epoch": drop,
        }

    def _batch_objective(self, indices: torch.Tensor | None, weight: float) -> torch.Tensor:
        """weight·[(1/(2B))‖F_ℬ − Y_ℬ‖² + (λ_H/2)(N/B)‖H_ℬ‖²] with gradients (no weight penalty)."""
        if indices is None:
            inputs, targets = self.data.inputs, self.data.targets
        else:
            inputs, targets = self.data.inputs[indices], self.data.targets[:, indices]
        count = inputs.shape[0]
        regularization = self.regularization
        if regularization.feature_penalty > 0:
            features = self.model.layer_features(inputs)
            loss = 0.5 * (features.output - targets).pow(2).sum() / count
            chosen = penalized_features(features, regularization.feature_layer)
            scale = self.data.num_samples / count
            loss = loss + 0.5 * regularization.feature_penalty * scale * chosen.pow(2).sum()
        else:
            loss = data_term(self.model(inputs), targets)
        return loss * weight

    def _optimizer_step(self, indices: torch.Tensor | None) -> float:
        self.optimizer.zero_grad()
        total = 0.0
        if indices is None and self.chunk_size is not None and self.chunk_size < self.data.num_samples:
            count = self.data.num_samples
            for start in range(0, count, self.chunk_size):
                chunk = torch.arange(start, min(start + self.chunk_size, count), device=self.data.device)
                loss = self._batch_objective(chunk, chunk.numel() / count)
                loss.backward()
                total += float(loss.detach())
        else:
            loss = self._batch_objective(indices, 1.0)
            loss.backward()
            total = float(loss.detach())
        if not math.isfinite(total):
            raise FloatingPointError(
                f"the training loss became {total} at epoch {self.epoch}, step {self.step}; "
                "lower training.learning_rate (the step size η of docs/theory.md §1.2)"
            )
        self._updating = True
        self.optimizer.step()
        self.step += 1
        return total

    def _run_epoch(self, interrupt: _DeferredInterrupt) -> None:
        """Continue the current epoch; return early (mid-epoch for SGD) after a signal or when a
        checkpoint by wall time is due."""
        rate = self.current_learning_rate()
        if rate != self._rate_in_force:
            if self.log is not None:
                self.log(f"learning rate: η = {rate:.6g} from epoch {self.epoch}")
            self._rate_in_force = rate
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        count = self.data.num_samples
        if self.optimizer_kind == "gd":
            self.last_batch_loss = self._optimizer_step(None)
            self.epoch += 1
            self._updating = False
            if self.on_step is not None:
                self.on_step(self)
            return
        if self.batch_position == 0 or self.permutation is None:
            self.permutation = torch.randperm(count, generator=self.generator)
        steps = math.ceil(count / self.batch_size)
        while self.batch_position < steps:
            start = self.batch_position * self.batch_size
            indices = self.permutation[start : start + self.batch_size].to(self.data.device)
            self.last_batch_loss = self._optimizer_step(indices)
            self.batch_position += 1
            if self.batch_position == steps:
                self.batch_position = 0
                self.permutation = None
                self.epoch += 1
            self._updating = False
            if self.on_step is not None:
                self.on_step(self)
            if interrupt.requested or self.batch_position == 0 or self.checkpoint_due():
                return

    # -- observation ---------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Measure the model now (:func:`fullnet.observe.observe`; batch normalization with the
        full-batch statistics for ``"gd"``, the running statistics for ``"sgd"``)."""
        return observe(
            self.model, self.data, self.regularization,
            epoch=self.epoch, step=self.step, learning_rate=self.current_learning_rate(),
            test_data=self.test_data, metric_dtype=self.metric_dtype,
            chunk_size=self.observe_chunk_size, rank_tolerance=self.rank_tolerance,
            per_layer=self.per_layer,
            batch_norm="batch" if self.optimizer_kind == "gd" else "running",
        )

    def group_summary(self) -> list[dict[str, Any]]:
        """Per parameter group: name, λ, base η, and (λ, current η) read back through
        :func:`ufm.conventions.lambdas_from_torch_optimizer` in the paper convention."""
        converted = lambdas_from_torch_optimizer(
            self.optimizer, reduction="paper", batch_size=self.batch_size,
            num_classes=self.data.num_classes,
        )
        return [
            {
                "name": group["name"],
                "weight_decay": group["weight_decay"],
                "learning_rate": self.learning_rate,
                "lambda": paper.lam,
                "current_step_size": paper.step_size,
                "parameters": int(sum(parameter.numel() for parameter in group["params"])),
            }
            for group, paper in zip(self.optimizer.param_groups, converted)
        ]

    # -- loop ----------------------------------------------------------------------------------
    def run(self, *, stop_at_epoch: int | None = None) -> TrainingResult:
        """Train until ``epochs`` (or ``stop_at_epoch``), recording snapshots and checkpoints.

        Raises
        ------
        fullnet.guards.Interrupted
            (a KeyboardInterrupt) after SIGINT (Ctrl-C) or SIGTERM, once the state of the last
            completed step has been checkpointed.
        """
        if stop_at_epoch is not None and not 0 <= stop_at_epoch <= self.epochs:
            raise ValueError(f"stop_at_epoch must lie in 0..{self.epochs}, got {stop_at_epoch}")
        from tqdm import tqdm

        started = time.perf_counter()
        status = "completed"
        recorded = {snapshot.epoch for snapshot in self.history}
        last_checkpoint = self.epoch
        self._last_save = time.monotonic()
        bar = tqdm(total=self.epochs, initial=self.epoch, disable=not self.progress,
                   desc="train", unit="epoch", dynamic_ncols=True)
        # loss: Φ at the last snapshot; nc1: NC1.tr_unc entering W_L; fit: the last batch's data term
        postfix: dict[str, str] = {}
        try:
            with _DeferredInterrupt() as interrupt:
                while True:
                    if interrupt.requested:
                        raise interrupt.interrupted()
                    at_epoch_start = self.batch_position == 0
                    if at_epoch_start and self.epoch in self.log_epochs and self.epoch not in recorded:
                        snapshot = self.snapshot()
                        self.history.append(snapshot)
                        recorded.add(self.epoch)
                        if self.on_snapshot is not None:
                            self.on_snapshot(snapshot)
                        postfix["loss"] = f"{snapshot.terms.objective:.4g}"
                        if snapshot.last_nc1 is not None:
                            postfix["nc1"] = f"{snapshot.last_nc1:.3g}"
                        bar.set_postfix(postfix, refresh=False)
                    if at_epoch_start and self.epoch >= self.epochs:
                        break
                    if at_epoch_start and stop_at_epoch is not None and self.epoch >= stop_at_epoch:
                        status = "stopped"
                        break
                    if (
                        at_epoch_start and self.checkpoint_every
                        and self.epoch - last_checkpoint >= self.checkpoint_every
                    ) or self.checkpoint_due():
                        self.save_checkpoint()
                        last_checkpoint = self.epoch
                    before = self.epoch
                    self._run_epoch(interrupt)
                    postfix["fit"] = f"{self.last_batch_loss:.4g}"
                    bar.set_postfix(postfix, refresh=False)
                    bar.update(self.epoch - before)
                    if interrupt.requested:
                        raise interrupt.interrupted()
        except KeyboardInterrupt:
            if not self._updating:
                self.save_checkpoint()
            raise
        finally:
            bar.close()
        self.save_checkpoint()
        final = self.history[-1] if self.history else None
        if final is None or final.epoch != self.epoch:
            final = self.snapshot()
        return self._result(status, final, time.perf_counter() - started)

    def partial_result(self, status: str = "interrupted") -> TrainingResult:
        """A result from the history so far (used after an interrupt; no new measurement)."""
        return self._result(status, self.history[-1] if self.history else None, 0.0)

    def _result(self, status: str, final: Snapshot | None, seconds: float) -> TrainingResult:
        return TrainingResult(
            status=status,
            epochs_completed=self.epoch,
            steps=self.step,
            history=list(self.history),
            final=final,
            groups=self.group_summary(),
            wall_seconds=seconds,
            device=str(self.data.device),
            checkpoint=None if self.checkpoint_path is None else str(self.checkpoint_path),
            model=self.model.describe() if hasattr(self.model, "describe") else {},
            data=self.data.describe(),
            schedule=self.schedule(),
            continuations=list(self.extra_state.get("continuations", [])),
        )


# --------------------------------------------------------------------------------------------
# From a configuration
# --------------------------------------------------------------------------------------------


def regularization_from_config(training: TrainingConfig, depth: int) -> Regularization:
    """λ's of Φ from a :class:`~fullnet.config.TrainingConfig` for a stack of ``depth`` matrices."""
    layer_lambdas = list(training.layer_weight_decay) or [training.weight_decay] * depth
    if len(layer_lambdas) != depth:
        raise ConfigError(
            f"training.layer_weight_decay must list {depth} values, got {len(layer_lambdas)}"
        )
    backbone = training.weight_decay if training.backbone_weight_decay is None else training.backbone_weight_decay
    return Regularization(
        layer_lambdas=[float(value) for value in layer_lambdas],
        backbone_lambda=float(backbone),
        feature_penalty=float(training.feature_penalty),
        feature_layer=int(training.feature_penalty_layer),
        one_dimensional_lambda=float(training.weight_decay) if training.regularize_one_dimensional else 0.0,
    )


def build_model(config: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network of a :class:`~fullnet.config.ModelConfig` (on the CPU, float32).

    ``input_shape`` is one sample's shape: (p₀,) for an MLP, (C, H, W) for ``resnet20``.
    """
    if config.architecture == "mlp":
        return PyramidalMLP(
            int(np.prod(input_shape)), num_classes, config.nonlinear_widths,
            linear_depth=config.linear_depth, linear_width=config.linear_width,
            activation=config.activation, gamma=config.gamma, bias=config.bias,
            init=config.init, init_gain=config.init_gain,
            second_layer_scale=config.second_layer_scale, backbone_layers=config.backbone_layers,
            backbone_init=config.backbone_init, backbone_init_gain=config.backbone_init_gain,
            pyramidal=config.pyramidal, seed=config.seed,
        )
    if config.architecture == "resnet20":
        if config.backbone_layers or config.backbone_init is not None or config.backbone_init_gain is not None:
            raise ConfigError(
                "model.backbone_layers, model.backbone_init and model.backbone_init_gain apply to an MLP; the "
                "ResNet20 backbone keeps its He initialization"
            )
        if len(input_shape) != 3:
            raise ConfigError(
                f"model.architecture = 'resnet20' needs images (C, H, W); the data give samples of "
                f"shape {input_shape} (images are kept unflattened for resnet20)"
            )
        return ResNet20(
            num_classes, input_channels=input_shape[0],
            head_nonlinear_widths=config.nonlinear_widths, linear_depth=config.linear_depth,
            linear_width=config.linear_width, activation=config.activation, gamma=config.gamma,
            bias=config.bias, batch_norm=config.batch_norm, shortcut=config.shortcut,
            head_init=config.init, init_gain=config.init_gain, seed=config.seed,
        )
    raise ConfigError(f"model.architecture must be 'mlp' or 'resnet20', got {config.architecture!r}")


def load_data(
    config: DataConfig, *, flatten: bool, device: str | torch.device, dtype: torch.dtype
) -> tuple[TensorData, TensorData | None]:
    """Training (and optional test) :class:`~fullnet.data.TensorData` of a data configuration.

    The standardization is fitted on the training subset and applied unchanged to the test set.
    """
    if config.name == "gaussian":
        raw = gaussian_mixture(
            num_classes=config.gaussian_classes, per_class=config.per_class or 20,
            dimension=config.gaussian_dimension, margin=config.gaussian_margin,
            noise=config.gaussian_noise, seed=config.subset_seed,
        )
        train = prepare_data(raw, per_class=None, order_by_class=config.order_by_class,
                             seed=config.subset_seed, standardization=config.standardization,
                             input_norm=config.input_norm, flatten=flatten, targets=config.targets,
                             device=device, dtype=dtype)
        test = None
        if config.test_per_class:
            raw_test = gaussian_mixture(
                num_classes=config.gaussian_classes, per_class=config.test_per_class, dimension=config.gaussian_dimension,
                margin=config.gaussian_margin, noise=config.gaussian_noise,
                seed=config.subset_seed + 1_000_003,
            )
            test = prepare_data(raw_test, standardization=train.standardization, flatten=flatten,
                                targets=config.targets, device=device, dtype=dtype)
        return train, test
    if config.test_per_class and config.name == "mnist-5k":
        raise ConfigError("data.test_per_class: mnist-5k has no test split; use mnist or fashion-mnist")
    raw = load_dataset(config.name, "train", config.data_root)
    if config.classes:
        raw = _select_classes(raw, config.classes)
    _check_per_class(raw, config.per_class, "data.per_class")
    train = prepare_data(
        raw, per_class=config.per_class, seed=config.subset_seed,
        order_by_class=config.order_by_class, standardization=config.standardization,
        input_norm=config.input_norm, flatten=flatten, targets=config.targets, device=device, dtype=dtype,
    )
    test = None
    if config.test_per_class:
        raw_test = load_dataset(config.name, "test", config.data_root)
        if config.classes:
            raw_test = _select_classes(raw_test, config.classes)
        _check_per_class(raw_test, config.test_per_class, "data.test_per_class")
        test = prepare_data(
            raw_test, per_class=config.test_per_class, seed=config.subset_seed,
            standardization=train.standardization, flatten=flatten, targets=config.targets,
            device=device, dtype=dtype,
        )
    return train, test


def _select_classes(raw: Any, classes: list[int]) -> Any:
    if max(classes) >= raw.num_classes:
        raise ConfigError(
            f"data.classes must lie in 0..{raw.num_classes - 1} (the classes of {raw.name}), got {classes}"
        )
    return select_classes(raw, classes)


def _check_per_class(raw: Any, per_class: int | None, key: str) -> None:
    """Refuse n above the size of the smallest class, naming the key and the class."""
    if per_class is None:
        return
    counts = np.bincount(raw.labels, minlength=raw.num_classes)
    short = int(np.argmin(counts))
    if counts[short] < per_class:
        raise ConfigError(
            f"{key} must be at most {int(counts[short])} (the samples of class {short} in the "
            f"{raw.split} split of {raw.name}), got {per_class}"
        )


def run_directory(config: RunConfig, output_dir: str | os.PathLike | None = None) -> Path:
    """``output_dir`` if given, else ``config.output.directory / config.name``."""
    if output_dir is not None:
        return Path(output_dir)
    return Path(config.output.directory) / config.name


#: Configuration keys that may differ between a run and its resumption: they change neither the
#: computation nor its results (bit-identical continuation on the CPU also needs the same thread
#: count).
RESUMABLE_DIFFERENCES = ("description", "output", "training.device", "training.threads")


def _config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "",
                        defaults: dict[str, Any] | None = None) -> list[str]:
    """Differences between a saved and the current configuration; a key the saved one lacks (written
    before that key existed) counts as its default value."""
    if defaults is None:
        defaults = RunConfig().to_dict()
    keys = sorted(set(saved) | set(current))
    differences = []
    for key in keys:
        path = prefix + key
        if any(path == allowed or path.startswith(allowed + ".") for allowed in RESUMABLE_DIFFERENCES):
            continue
        left, right = saved.get(key, defaults.get(key)), current.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            nested = defaults.get(key)
            differences.extend(_config_differences(left, right, path + ".", nested if isinstance(nested, dict) else {}))
        elif left != right:
            differences.append(f"{path}: saved {left!r}, now {right!r}")
    return differences


def write_results(directory: Path, config: RunConfig, result: TrainingResult) -> dict[str, Path]:
    """Write config.json, history.json, history.csv, final_metrics.json and result.json atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    full = result.to_dict()
    summary = {key: value for key, value in full.items() if key != "history"}
    paths = {
        "config": atomic_write_text(directory / "config.json", config.to_json() + "\n"),
        "history_json": atomic_write_text(
            directory / "history.json", json.dumps(full["history"], indent=1) + "\n"
        ),
        "history_csv": atomic_write_text(directory / "history.csv", history_csv(result.history_rows())),
        "final": atomic_write_text(
            directory / "final_metrics.json", json.dumps(full["final"], indent=1) + "\n"
        ),
        "result": atomic_write_text(directory / "result.json", json.dumps(summary, indent=1) + "\n"),
    }
    return paths


def continuation_record(done: int, previous_epochs: int, training: TrainingConfig) -> dict[str, Any]:
    """What resuming at epoch ``done`` with ``training.epochs`` instead of ``previous_epochs``
    does to the learning-rate schedule.

    The schedule is recomputed for the new total: η up to ⌊fraction·epochs⌋, η·factor from there
    on (:func:`learning_rate_at`). A run continued for longer after its drop therefore runs at the
    undropped η again until the new drop epoch; the ``note`` says so, and the record goes to the
    run's log, checkpoint and ``result.json`` (``continuations``).
    """
    fraction, factor, rate = training.lr_drop_fraction, training.lr_drop_factor, training.learning_rate
    epochs = training.epochs

    def drop(total: int) -> int | None:
        return None if fraction >= 1.0 else drop_epoch(total, fraction)

    before, after = drop(previous_epochs), drop(epochs)
    if after is None:
        note = f"no drop: η = {rate:g} for every epoch"
    elif done >= after:
        note = f"η stays at η·{factor:g} = {rate * factor:g} for epochs {done}..{epochs - 1}"
    elif before is not None and done >= before:
        note = (f"epochs {done}..{after - 1} run at the undropped η = {rate:g} again (the first "
                f"{previous_epochs} epochs dropped it at epoch {before}); η·{factor:g} from epoch {after}")
    else:
        note = f"η = {rate:g} up to epoch {after - 1}, η·{factor:g} from epoch {after} (was {before})"
    return {
        "from_epoch": int(done),
        "previous_epochs": int(previous_epochs),
        "epochs": int(epochs),
        "previous_lr_drop_epoch": before,
        "lr_drop_epoch": after,
        "schedule": "recomputed for the new number of epochs",
        "note": note,
    }


def _describe_snapshot(snapshot: Snapshot) -> str:
    """One log line: Φ and its parts, accuracy, η, and a few collapse metrics."""
    terms = snapshot.terms
    parts = [
        f"snapshot: epoch {snapshot.epoch}, step {snapshot.step}",
        f"Φ = {terms.objective:.6g} (data {terms.data_term:.4g}, weights {sum(terms.layer_penalties):.4g}"
        + (f", features {terms.feature_penalty:.4g}" if terms.feature_penalty else "")
        + (f", backbone {terms.backbone_penalty:.4g}" if terms.backbone_penalty else "") + ")",
        f"accuracy {snapshot.accuracy:.4f}"
        + ("" if snapshot.test_accuracy is None else f" (test {snapshot.test_accuracy:.4f})"),
        f"η = {snapshot.learning_rate:.4g}",
    ]
    if snapshot.layers:
        last = snapshot.layers[-1]
        for key in ("NC1.tr_unc", "NC2.etf", "NC3.dual"):
            value = last.metrics.get(key)
            if isinstance(value, (int, float)):
                parts.append(f"{key}[L{last.layer}] = {value:.4g}")
        negativity = [layer.pre_metrics.get("NEG") for layer in snapshot.layers if layer.pre_metrics]
        negativity = [value for value in negativity if isinstance(value, (int, float))]
        if negativity:
            parts.append(f"NEG max = {max(negativity):.4g}")
    balance = snapshot.totals.get("BAL.scalar")
    if isinstance(balance, (int, float)):
        parts.append(f"BAL.scalar = {balance:.4g}")
    return ", ".join(parts)


def _log_start(log: RunLog, config: RunConfig, trainer: Trainer, directory: Path, *,
               resume: bool, continuation: dict[str, Any] | None, dropped: int) -> None:
    training, data, model = config.training, trainer.data, config.model
    if continuation is not None:
        log(f"start: continue {config.name!r} from epoch {trainer.epoch} (step {trainer.step}) in "
            f"{directory}: training.epochs {continuation['previous_epochs']} -> {continuation['epochs']}")
        log(f"schedule: {continuation['schedule']}: {continuation['note']}")
    elif resume:
        log(f"start: resume {config.name!r} from epoch {trainer.epoch} (step {trainer.step}) of "
            f"{trainer.epochs} in {directory}")
    else:
        log(f"start: new run {config.name!r} in {directory}")
    log(f"process: pid {os.getpid()}, torch {torch.__version__}, device {data.device}, "
        f"{training.dtype}, {torch.get_num_threads()} thread(s)")
    if config.description:
        log(f"description: {config.description}")
    log(f"data: {config.data.name}, N = {data.num_samples} samples, K = {data.num_classes} classes, "
        f"input {tuple(data.input_shape)}"
        + ("" if trainer.test_data is None else f", {trainer.test_data.num_samples} test samples"))
    parameters = sum(parameter.numel() for parameter in trainer.model.parameters())
    log(f"model: {model.architecture}, non-linear widths {model.nonlinear_widths}, "
        f"{model.linear_depth} linear layer(s), {model.activation}, {parameters} parameters")
    schedule = trainer.schedule()
    drop = ("no drop" if schedule["lr_drop_epoch"] is None
            else f"×{schedule['lr_drop_factor']:g} from epoch {schedule['lr_drop_epoch']}")
    batch = "full batch" if trainer.optimizer_kind == "gd" else f"batch {trainer.batch_size}"
    log(f"training: {trainer.optimizer_kind} ({batch}), {trainer.epochs} epochs, η = {trainer.learning_rate:g} "
        f"({drop}), λ = {trainer.regularization.layer_lambdas}, momentum {training.momentum:g}, "
        f"seed {training.seed}")
    recorded = {snapshot.epoch for snapshot in trainer.history}
    epochs = [epoch for epoch in trainer.log_epochs if epoch >= trainer.epoch and epoch not in recorded]
    shown = ", ".join(str(epoch) for epoch in epochs[:12]) + (", …" if len(epochs) > 12 else "")
    log(f"observe: {len(epochs)} snapshot(s) ahead, at epochs {shown or '-'}"
        + ("" if config.observe.per_layer else " (loss and accuracy only)"))
    output = config.output
    extras = ", tensorboard/" if output.tensorboard else ""
    log(f"output: checkpoint every {output.checkpoint_every or '-'} epochs / "
        f"{output.checkpoint_minutes or '-'} minutes; {HISTORY_JOURNAL_NAME}, {LOG_NAME}{extras}")
    if resume:
        log(f"history: {len(trainer.history)} snapshot(s) from the checkpoint"
            + (f"; {dropped} row(s) written after it dropped from {HISTORY_JOURNAL_NAME}" if dropped else ""))


def _rows_after(journal: Path, epoch: int) -> int:
    """How many rows of an existing journal lie beyond ``epoch`` (0 if it cannot be read)."""
    try:
        return sum(1 for row in read_history_journal(journal) if int(row["epoch"]) > epoch)
    except (OSError, ValueError, TypeError):
        return 0


def _remove_stale_journal_temporaries(directory: Path) -> None:
    for entry in directory.iterdir():
        if _JOURNAL_TEMPORARY.match(entry.name) and entry.is_file():
            try:
                entry.unlink()
            except FileNotFoundError:
                pass


def train(
    config: RunConfig,
    *,
    resume: bool = False,
    output_dir: str | os.PathLike | None = None,
    stop_at_epoch: int | None = None,
    progress: bool | None = None,
    on_step: Callable[[Trainer], None] | None = None,
    on_snapshot: Callable[[Snapshot], None] | None = None,
) -> TrainingResult:
    """Run one training from a configuration and write its results.

    Files under the run directory (:func:`run_directory`): ``config.json`` (the resolved
    configuration, written first), ``checkpoint.pt``; while the run goes on ``history.jsonl``
    (one JSON object per snapshot, appended and fsynced as it is taken: a killed run keeps every
    snapshot taken before the kill; :func:`read_history_journal`), ``train.log`` (start, the
    configuration, every snapshot, checkpoint, learning-rate change, interrupt and the end),
    with ``output.tensorboard`` the event files under ``tensorboard/``; and at the end (or after
    an interrupt) ``history.json``, ``history.csv``, ``final_metrics.json``, ``result.json``.

    Everything that can be checked is checked before the run directory is created: the
    configuration, ``stop_at_epoch``, the output folder (a file, under a file, not writable),
    the checkpoint to resume from, the device, the memory the run needs
    (:func:`fullnet.guards.check_memory`), the data and the batch size. A run refused there
    writes nothing. Once started, the run folder is locked against a second training, stale
    temporary files of a killed atomic write are removed, and the state is checkpointed every
    ``output.checkpoint_every`` epochs, every ``output.checkpoint_minutes`` minutes, at the end,
    at ``stop_at_epoch`` and after SIGINT or SIGTERM. If a new run fails before its first
    checkpoint (e.g. a full disk), the folders it created are removed again.

    Resuming rewrites ``history.jsonl`` as the checkpoint's history: rows a killed session wrote
    after its last checkpoint are dropped (they are measured again), so the journal always
    matches the state the run continues from.

    Continuing for longer: resuming with a larger ``training.epochs`` (``--resume --set
    training.epochs=N``) continues from the checkpoint, a finished run's included, keeping the
    history so far. The learning-rate schedule is recomputed for the new total — η up to
    ⌊``lr_drop_fraction``·N⌋, η·``lr_drop_factor`` from there — so a run continued after its
    drop trains at the undropped η again until the new drop epoch. The change is written to
    ``train.log``, the checkpoint and ``result.json`` (``continuations``, see
    :func:`continuation_record`), and ``config.json`` holds the new target. The snapshot epochs
    are the log-spaced epochs of the new total that lie ahead. A target below the epochs already
    completed is refused.

    Parameters
    ----------
    config : RunConfig
    resume : bool
        Continue from ``checkpoint.pt`` of the run directory; the saved configuration must match
        (except ``description``, ``output.*``, ``training.device``, ``training.threads`` and
        ``training.epochs`` no lower than the epochs completed).
    output_dir : path-like, optional
        Overrides the run directory.
    stop_at_epoch : int, optional
        Stop (with a checkpoint) once this epoch is completed; resume later.
    progress : bool, optional
        Overrides ``config.output.progress``.
    on_step : callable, optional
        See :class:`Trainer`.
    on_snapshot : callable, optional
        Called as ``on_snapshot(snapshot)`` once per snapshot of the history (a
        :class:`~fullnet.observe.Snapshot`), after it was appended to ``history.jsonl``.

    Raises
    ------
    ConfigError
        A configuration value does not fit this run (the message names the key).
    ValueError
        ``stop_at_epoch`` outside 0..epochs; a checkpoint that does not match.
    FileNotFoundError
        ``resume`` without a checkpoint.
    FileExistsError
        A checkpoint exists and ``resume`` is False.
    OSError
        The output folder is a file or not writable, or a write failed (e.g. a full disk).
    fullnet.guards.Interrupted
        After SIGINT or SIGTERM, with the state checkpointed.
    """
    from .config import validate_config

    validate_config(config)
    training = config.training
    if stop_at_epoch is not None and (
        isinstance(stop_at_epoch, bool) or not isinstance(stop_at_epoch, int)
        or not 0 <= stop_at_epoch <= training.epochs
    ):
        raise ValueError(
            f"stop_at_epoch must be an epoch in 0..{training.epochs} (training.epochs), got {stop_at_epoch!r}"
        )
    directory = run_directory(config, output_dir)
    check_output_directory(directory, "output folder")
    checkpoint = directory / CHECKPOINT_NAME
    state = None
    continuation = None
    continuations: list[dict[str, Any]] = []
    if resume:
        if not checkpoint.exists():
            raise FileNotFoundError(
                f"no checkpoint to resume: {checkpoint} does not exist; run without --resume first"
            )
        state = load_checkpoint(checkpoint)
        saved_config = state.get("extra", {}).get("config", {})
        differences = [
            difference for difference in _config_differences(saved_config, config.to_dict())
            if not difference.startswith("training.epochs:")
        ]
        if differences:
            raise ConfigError(
                f"cannot resume from {checkpoint}: the configuration changed: " + "; ".join(differences)
            )
        continuations = list(state.get("extra", {}).get("continuations", []))
        done = int(state["epoch"])
        previous = int(state.get("settings", {}).get("epochs", training.epochs))
        if training.epochs != previous:
            if training.epochs < done:
                raise ConfigError(
                    f"training.epochs: {training.epochs} is fewer than the {done} epochs the run in "
                    f"{directory} has completed; to continue it, set training.epochs >= {done}"
                )
            continuation = continuation_record(done, previous, training)
            continuations.append(continuation)
    elif checkpoint.exists():
        raise FileExistsError(
            f"{checkpoint} exists; pass --resume to continue that run, or choose another "
            "output directory or run name"
        )
    try:
        device = resolve_device(training.device)
    except ValueError as error:
        raise ConfigError(f"training.device = {training.device!r}: {error}") from None
    check_memory(config, device)
    if training.threads is not None:
        torch.set_num_threads(training.threads)
    dtype = DTYPES[training.dtype]
    flatten = config.model.architecture == "mlp"
    train_data, test_data = load_data(config.data, flatten=flatten, device=device, dtype=dtype)
    if training.optimizer == "sgd" and not 1 <= training.batch_size <= train_data.num_samples:
        raise ConfigError(
            f"training.batch_size must lie in 1..{train_data.num_samples} (the N training samples), "
            f"got {training.batch_size}"
        )
    if training.optimizer == "gd" and training.batch_size not in (None, train_data.num_samples):
        raise ConfigError(
            f"training.batch_size must be none (or N = {train_data.num_samples}) for full-batch "
            f"training.optimizer = 'gd', got {training.batch_size}"
        )
    model = build_model(config.model, train_data.input_shape, train_data.num_classes)
    model = model.to(device=device, dtype=dtype)
    regularization = regularization_from_config(training, model.depth)
    minutes = config.output.checkpoint_minutes
    extra_state: dict[str, Any] = {"config": config.to_dict()}
    if continuations:
        extra_state["continuations"] = continuations
    trainer = Trainer(
        model, train_data, regularization,
        learning_rate=training.learning_rate, epochs=training.epochs,
        optimizer=training.optimizer, batch_size=training.batch_size,
        momentum=training.momentum, lr_drop_fraction=training.lr_drop_fraction,
        lr_drop_factor=training.lr_drop_factor, seed=training.seed,
        chunk_size=training.chunk_size, test_data=test_data,
        log_points=config.observe.log_points, metric_dtype=DTYPES[config.observe.metric_dtype],
        observe_chunk_size=config.observe.chunk_size,
        rank_tolerance=config.observe.rank_tolerance, per_layer=config.observe.per_layer,
        checkpoint_path=checkpoint, checkpoint_every=config.output.checkpoint_every,
        checkpoint_seconds=60.0 * minutes if minutes else None,
        progress=config.output.progress if progress is None else progress,
        extra_state=extra_state, on_step=on_step,
    )
    if state is not None:
        trainer.load_state_dict(state, epochs_may_change=True)
        del state

    # -- from here on, files are written ----------------------------------------------------
    created = created_ancestors(directory)
    journal = directory / HISTORY_JOURNAL_NAME
    board_folder = directory / TENSORBOARD_NAME
    board_created = False
    run_log: RunLog | None = None
    board: TensorBoardWriter | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with RunLock(directory):
            remove_stale_temporaries(directory)
            _remove_stale_journal_temporaries(directory)
            if not resume and checkpoint.exists():  # written by another process meanwhile
                raise FileExistsError(f"{checkpoint} appeared while this run was being prepared")
            atomic_write_text(directory / "config.json", config.to_json() + "\n")
            run_log = RunLog(directory / LOG_NAME)
            dropped = _rows_after(journal, trainer.epoch) if resume and journal.is_file() else 0
            _log_start(run_log, config, trainer, directory, resume=resume,
                       continuation=continuation, dropped=dropped)
            write_history_journal(journal, [snapshot.to_dict() for snapshot in trainer.history])
            if config.output.tensorboard:
                board_created = not board_folder.exists()
                board = TensorBoardWriter(board_folder, purge_step=trainer.epoch + 1 if resume else None)
            log = run_log

            def record(snapshot: Snapshot) -> None:
                append_history_row(journal, snapshot.to_dict())
                log(_describe_snapshot(snapshot))
                if board is not None:
                    board(snapshot)
                if on_snapshot is not None:
                    on_snapshot(snapshot)

            trainer.on_snapshot = record
            trainer.log = run_log
            try:
                result = trainer.run(stop_at_epoch=stop_at_epoch)
            except KeyboardInterrupt as error:
                signum = int(getattr(error, "signum", signal.SIGINT))
                saved = checkpoint.exists()
                run_log(f"interrupted: {signal_name(signum)} at epoch {trainer.epoch}, step {trainer.step}; "
                        + ("state saved in checkpoint.pt, continue with --resume" if saved
                           else "no checkpoint was written"))
                if saved:
                    write_results(directory, config, trainer.partial_result("interrupted"))
                raise
            write_results(directory, config, result)
            final = result.final
            run_log(
                f"end: {result.status} at epoch {result.epochs_completed} (step {result.steps})"
                + ("" if final is None else f", Φ = {final.terms.objective:.6g}, accuracy {final.accuracy:.4f}")
                + f", {result.wall_seconds:.1f} s this session; results in history.json, history.csv, "
                "final_metrics.json, result.json"
            )
    except BaseException as error:
        if run_log is not None and not isinstance(error, KeyboardInterrupt):
            run_log(f"failed: {type(error).__name__}: {' '.join(str(error).split())}")
        if created and not checkpoint.exists():
            if board is not None:
                board.close()
                board = None
            if run_log is not None:
                run_log.close()
            if board_created and board_folder.is_dir():
                import shutil

                shutil.rmtree(board_folder, ignore_errors=True)
            remove_created_folders(created, RUN_FILES + LIVE_FILES)
        raise
    finally:
        if board is not None:
            board.close()
        if run_log is not None:
            run_log.close()
    return result


__all__ = [
    "CHECKPOINT_NAME",
    "HISTORY_JOURNAL_NAME",
    "LIVE_FILES",
    "LOG_NAME",
    "RunLog",
    "TENSORBOARD_NAME",
    "TensorBoardWriter",
    "TrainingResult",
    "Trainer",
    "WeightDecayGradientDescent",
    "atomic_torch_save",
    "atomic_write_bytes",
    "append_history_row",
    "atomic_write_text",
    "build_model",
    "continuation_record",
    "drop_epoch",
    "history_csv",
    "learning_rate_at",
    "load_checkpoint",
    "load_data",
    "log_spaced_epochs",
    "read_history_journal",
    "regularization_from_config",
    "run_directory",
    "tensorboard_scalars",
    "train",
    "write_history_journal",
    "write_results",
]
