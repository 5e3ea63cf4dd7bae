"""Checks made before anything is allocated or written, and the clean-up of what a kill leaves.

- Input files (:func:`read_input_text`): a missing path, a folder, a device or a pipe, an empty
  or oversized file and non-UTF-8 bytes each get their own message naming the path.
- Output folders (:func:`check_output_directory`): a path that is a file, lies under a file or
  cannot be written (probed by creating and removing a temporary file) is refused before a run
  starts, so a refused run leaves nothing behind.
- Memory (:func:`estimate_memory`, :func:`check_memory`): parameters, gradients, optimizer state,
  the activations of one batch, the data and the measurement pass of a run configuration, in
  the training precision, against the memory available on its device; the estimate is computed
  from the configuration alone, before any tensor exists.
- Signals (:class:`Interrupted`): SIGINT and SIGTERM (what SLURM sends before it kills a job)
  both stop a training at the end of the current optimizer step with a checkpoint.
- Leftovers (:func:`remove_stale_temporaries`, :class:`RunLock`): the temporary files of an
  atomic write interrupted by SIGKILL are removed when a run starts or resumes, under an
  exclusive lock on the run folder so that a live writer's files are never touched.
"""

from __future__ import annotations

import copy
import errno
import math
import os
import re
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ufm.resources import available_host_memory

from .config import ConfigError

#: Largest configuration (TOML/JSON) file read, in bytes.
MAX_CONFIG_BYTES = 16 * 1024 * 1024

#: Files a run folder holds; an atomic write of NAME goes through ``.NAME.XXXXXXXX.tmp``.
RUN_FILES = ("checkpoint.pt", "config.json", "history.json", "history.csv", "final_metrics.json",
             "result.json", "compare.json")
_TEMPORARY = re.compile(
    r"^\.(" + "|".join(re.escape(name) for name in RUN_FILES) + r")\.[A-Za-z0-9_]+\.tmp$"
)


class Interrupted(KeyboardInterrupt):
    """A stop requested by a signal: ``signum`` is SIGINT (Ctrl-C) or SIGTERM (e.g. SLURM).

    A subclass of KeyboardInterrupt, so code that handles Ctrl-C handles both; the exit status
    of the command line is 128 + ``signum`` (130, 143).
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal_name(signum))
        self.signum = int(signum)

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries (sweep workers)
        return (type(self), (self.signum,))


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # pragma: no cover
        return f"signal {signum}"


# --------------------------------------------------------------------------------------------
# Command-line errors
# --------------------------------------------------------------------------------------------


class CommandError(Exception):
    """Bad command-line input: ``argument`` (``--output-dir``, ``RUN_DIR``, ``training.device``…)
    and what was expected. The command line prints ``error: ARGUMENT: MESSAGE`` on one line and
    exits with status 2."""

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument
        self.message = one_line(message)
        super().__init__(f"{argument}: {self.message}")


def one_line(text: Any) -> str:
    """``str(text)`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


class argument_errors:
    """Context manager turning the errors of one step into a :class:`CommandError` naming
    ``argument``: ValueError (ConfigError included), TypeError and OSError by default."""

    def __init__(self, argument: str, errors: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError)) -> None:
        self.argument = argument
        self.errors = errors

    def __enter__(self) -> "argument_errors":
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if error is None or isinstance(error, CommandError) or not isinstance(error, self.errors):
            return False
        raise CommandError(self.argument, describe_error(error)) from None


def describe_error(error: BaseException) -> str:
    """A one-line message: the exception's text, or for a bare OSError its reason and file."""
    if isinstance(error, OSError) and not error.args[1:] and error.args:
        return one_line(error.args[0])
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return one_line(f"{error.strerror}{where}")
    text = one_line(error)
    return text or type(error).__name__


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


def require_input_file(path: str | os.PathLike, what: str, *, max_bytes: int | None = None) -> Path:
    """``path`` as a readable regular file, else an OSError subclass whose message names it.

    Raises
    ------
    FileNotFoundError
        It does not exist (or is a link to nothing).
    IsADirectoryError
        It is a folder.
    PermissionError
        It cannot be read.
    ValueError
        It is not a regular file (a device, a pipe) or is larger than ``max_bytes``.
    """
    path = Path(path)
    if not path.exists():
        if os.path.lexists(path):
            raise FileNotFoundError(f"{what} {path} is a link to a missing file")
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, expected a file")
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file (a device or a pipe?)")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{what} {path} is not readable (permission denied)")
    if max_bytes is not None:
        size = path.stat().st_size
        if size > max_bytes:
            raise ValueError(f"{what} {path} holds {size} bytes; at most {max_bytes} are read")
    return path


def read_input_text(path: str | os.PathLike, what: str, *, max_bytes: int = MAX_CONFIG_BYTES,
                    allow_empty: bool = False) -> str:
    """The UTF-8 text of a small input file (a configuration), with one clear error per failure."""
    path = require_input_file(path, what, max_bytes=max_bytes)
    try:
        payload = path.read_bytes()
    except PermissionError:
        raise PermissionError(f"{what} {path} is not readable (permission denied)") from None
    except OSError as error:
        raise OSError(f"{what} {path} cannot be read ({error.strerror or error})") from None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {error.start} is 0x{payload[error.start]:02x})") from None
    if not allow_empty and not text.strip():
        raise ValueError(f"{what} {path} is empty")
    return text


def _probe_writable(folder: Path) -> None:
    """Create and remove a temporary file in ``folder`` (catches read-only file systems and root)."""
    handle, name = tempfile.mkstemp(prefix=".fullnet-probe-", dir=folder)
    os.close(handle)
    os.unlink(name)


def _nearest_existing(path: Path) -> Path:
    current = path
    while not os.path.lexists(current):
        parent = current.parent
        if parent == current:
            break
        current = parent
    return current


def check_output_directory(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Refuse an output folder that is a file, lies under a file or cannot be written.

    Creates nothing: an existing folder is probed with a temporary file (removed at once), a
    missing one through its nearest existing parent.

    Raises
    ------
    NotADirectoryError
        ``path`` or one of its parents is a file (or a broken link).
    PermissionError
        The folder (or the parent it would be created in) cannot be written.
    """
    path = Path(path).absolute()
    if os.path.lexists(path) and not path.exists():
        raise NotADirectoryError(f"{what} {path} is a broken link, expected a folder")
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(f"{what} {path} is a file, expected a folder")
        folder = path
    else:
        folder = _nearest_existing(path)
        if not folder.is_dir():
            raise NotADirectoryError(
                f"{what} {path} cannot be created: {folder} is a file, expected a folder"
            )
    try:
        _probe_writable(folder)
    except OSError as error:
        reason = error.strerror or str(error)
        where = "" if folder == path else f" (its parent {folder} is where it would be created)"
        raise PermissionError(f"{what} {path} is not writable{where}: {reason}") from None
    return path


def created_ancestors(path: Path) -> list[Path]:
    """The folders that ``path.mkdir(parents=True)`` would create, deepest first."""
    missing = []
    current = Path(path).absolute()
    while not os.path.lexists(current):
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    return missing


def remove_created_folders(folders: list[Path], files: tuple[str, ...] = RUN_FILES) -> None:
    """Undo a failed run's folders: remove its known files and temporaries, then the folders
    (deepest first) if they are empty. Nothing else is deleted."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.is_file() and (entry.name in files or _TEMPORARY.match(entry.name)):
                try:
                    entry.unlink()
                except OSError:
                    pass
        try:
            folder.rmdir()
        except OSError:
            return


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove ``.NAME.XXXXXXXX.tmp`` files of the run files (:data:`RUN_FILES`) in ``folder``:
    what an atomic write killed between its temporary file and ``os.replace`` leaves. Call it
    under :class:`RunLock`. Returns the removed paths."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if _TEMPORARY.match(entry.name) and entry.is_file():
            try:
                entry.unlink()
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed


class RunLock:
    """An exclusive ``flock`` on a run folder (on the folder itself: no lock file is left).

    A second training of the same folder is refused while the first runs; the lock goes with
    the process, whatever kills it. Where the file system has no ``flock`` the lock is skipped.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._handle: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        handle = os.open(self.folder, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(handle)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise BlockingIOError(
                    f"output folder {self.folder} is in use by another training; wait for it to end "
                    "or choose another output folder"
                ) from None
            return self  # no flock here (some network file systems): go on unlocked
        self._handle = handle
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._handle is not None:
            os.close(self._handle)  # releases the lock
            self._handle = None


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

#: (sample shape, training samples, classes) of the data sets on disk; gaussian is computed.
DATASET_SHAPES = {
    "mnist-5k": ((1, 28, 28), 5000, 10),
    "mnist": ((1, 28, 28), 60000, 10),
    "fashion-mnist": ((1, 28, 28), 60000, 10),
    "cifar10": ((3, 32, 32), 50000, 10),
}
_DTYPE_BYTES = {"float32": 4, "float64": 8}


def format_bytes(count: float) -> str:
    """``1.5 GB`` style (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(count) < 1000 or unit == "PB":
            return f"{count:.3g} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1000.0
    return f"{count:.3g} PB"  # pragma: no cover


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training run needs at its peak, by part (:func:`estimate_memory`).

    ``peak = parameters + gradients + optimizer + data + max(activations, measurement)``: the
    gradients are still alive while the metrics are measured between two steps.
    """

    parameter_count: int
    samples: int
    batch: int
    parameters: int
    gradients: int
    optimizer: int
    activations: int
    data: int
    measurement: int

    @property
    def peak(self) -> int:
        return (self.parameters + self.gradients + self.optimizer + self.data
                + max(self.activations, self.measurement))

    def parts(self) -> dict[str, int]:
        return {
            "parameters": self.parameters, "gradients": self.gradients,
            "optimizer state": self.optimizer,
            f"activations (batch of {self.batch})": self.activations,
            f"data ({self.samples} samples)": self.data, "measurement pass": self.measurement,
        }

    def describe(self) -> str:
        parts = ", ".join(f"{name} {format_bytes(value)}" for name, value in self.parts().items() if value)
        return f"about {format_bytes(self.peak)} ({self.parameter_count:,} parameters; {parts})"


def _stack_widths(model: Any, input_width: int, classes: int) -> list[int]:
    nonlinear = [int(width) for width in model.nonlinear_widths]
    default = nonlinear[-1] if nonlinear else input_width
    hidden = default if model.linear_width is None else int(model.linear_width)
    return [input_width] + nonlinear + [hidden] * (int(model.linear_depth) - 1) + [classes]


def _resnet20_backbone_parameters(channels: int, batch_norm: bool, shortcut: str) -> int:
    """Parameters of :class:`fullnet.architectures.ResNet20Backbone`, counted layer by layer."""
    parameters = channels * 16 * 9 + (32 if batch_norm else 0)
    current = 16
    for stage, width in enumerate((16, 32, 64)):
        for index in range(3):
            stride = 2 if stage > 0 and index == 0 else 1
            parameters += current * width * 9 + width * width * 9
            if batch_norm:
                parameters += 4 * width
            if shortcut == "B" and (stride != 1 or current != width):
                parameters += current * width + (2 * width if batch_norm else 0)
            current = width
    return parameters


def estimate_memory(config: Any) -> MemoryEstimate:
    """Peak memory of training a :class:`fullnet.config.RunConfig`, from the configuration alone.

    Counted in the training precision (``training.dtype``): the parameters, their gradients,
    the momentum buffers (when ``training.momentum`` > 0), the activations of one batch (the
    minibatch for ``"sgd"``, ``training.chunk_size`` or all N samples for ``"gd"``; pre- and
    post-activations of every layer), the data (inputs and targets, training and test), and
    the measurement pass (a float64 copy of the network when ``observe.metric_dtype`` is
    float64, the inputs and the per-layer features of every sample). The estimate leaves out
    the interpreter, libraries and allocator slack, so a run it accepts may still need more.
    """
    data, model, training, observe = config.data, config.model, config.training, config.observe
    itemsize = _DTYPE_BYTES.get(training.dtype, 4)
    if data.name == "gaussian":
        shape: tuple[int, ...] = (int(data.gaussian_dimension),)
        classes = int(data.gaussian_classes)
        samples = (data.per_class or 20) * classes
        raw_itemsize = 8  # drawn in float64
    else:
        shape, total, all_classes = DATASET_SHAPES.get(data.name, ((1, 28, 28), 60000, 10))
        classes = len(data.classes) or all_classes
        samples = int(data.per_class) * classes if data.per_class else math.ceil(total * classes / all_classes)
        raw_itemsize = 1  # uint8 pixels
    test_samples = int(data.test_per_class) * classes
    pixels = math.prod(shape)

    if model.architecture == "resnet20":
        backbone_parameters = _resnet20_backbone_parameters(shape[0], model.batch_norm, model.shortcut)
        width = 64
        spatial = math.prod(shape[1:]) if len(shape) == 3 else pixels
        per_sample_backbone = (7 * 16 * spatial + 6 * 32 * spatial / 4 + 6 * 64 * spatial / 16)
        per_sample_backbone *= 3 if model.batch_norm else 2
        stack = _stack_widths(model, width, classes)
    else:
        backbone_parameters, per_sample_backbone = 0, 0.0
        stack = _stack_widths(model, pixels, classes)
    head = sum(fan_in * fan_out + (fan_out if model.bias else 0) for fan_in, fan_out in zip(stack, stack[1:]))
    count = backbone_parameters + head
    per_sample = pixels + per_sample_backbone + 2 * sum(stack[1:])

    if training.optimizer == "sgd" and training.batch_size:
        batch = min(int(training.batch_size), samples)
    else:
        batch = min(int(training.chunk_size or samples), samples)
    measured_itemsize = 8 if observe.metric_dtype == "float64" else itemsize
    features = 2 * sum(stack) if observe.per_layer else stack[-1]
    measurement = (
        (count * 8 if observe.metric_dtype == "float64" else 0)
        + (samples + test_samples) * (pixels + features) * measured_itemsize
    )
    return MemoryEstimate(
        parameter_count=int(count),
        samples=int(samples),
        batch=int(batch),
        parameters=int(count * itemsize),
        gradients=int(count * itemsize),
        optimizer=int(count * itemsize if training.momentum else 0),
        activations=int(batch * per_sample * itemsize),
        data=int((samples + test_samples) * ((pixels + classes) * itemsize + pixels * raw_itemsize)),
        measurement=int(measurement),
    )


def available_memory(device: Any) -> int | None:
    """Free bytes on ``device`` (a torch.device): ``torch.cuda.mem_get_info`` on CUDA,
    :func:`available_host_memory` on the CPU, None where unknown (MPS)."""
    kind = getattr(device, "type", str(device))
    if kind == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if kind == "cpu":
        return available_host_memory()
    return None


class InsufficientMemoryError(ConfigError):
    """A run needs more memory than its device has free; the message holds the estimate."""


def check_memory(config: Any, device: Any, *, available: int | None = None) -> MemoryEstimate:
    """Refuse a configuration whose :func:`estimate_memory` exceeds the free memory of ``device``.

    On CUDA the whole estimate is compared with the GPU's free memory (the raw data, kept on
    the host, is a small part). ``available`` overrides the measured free memory (tests).

    Raises
    ------
    InsufficientMemoryError
        Naming the configuration key behind the largest part, the estimate and what is free.
    """
    estimate = estimate_memory(config)
    free = available_memory(device) if available is None else int(available)
    if free is None or estimate.peak <= free:
        return estimate
    # Blame the widths if the same run with every width 1 would fit, else the samples or batch.
    narrow = copy.deepcopy(config)
    narrow.model.nonlinear_widths = [1] * len(config.model.nonlinear_widths)
    narrow.model.linear_width = None
    small = estimate_memory(narrow)
    if small.peak <= free:
        key = f"model.nonlinear_widths = {list(config.model.nonlinear_widths)}"
        if config.model.linear_width is not None:
            key += f" (model.linear_width = {config.model.linear_width})"
    elif estimate.activations >= estimate.data + estimate.measurement and estimate.batch > 1:
        name = "training.batch_size" if config.training.optimizer == "sgd" else "training.chunk_size"
        key = f"{name} (a batch of {estimate.batch} samples)"
    else:
        key = f"data.per_class (N = {estimate.samples} samples)"
    raise InsufficientMemoryError(
        f"{key}: this run needs {estimate.describe()}, more than the {format_bytes(free)} free on "
        f"{getattr(device, 'type', device)}; choose smaller widths, a smaller training.batch_size "
        "or training.chunk_size, or fewer samples"
    )


__all__ = [
    "CommandError",
    "DATASET_SHAPES",
    "InsufficientMemoryError",
    "Interrupted",
    "MemoryEstimate",
    "RUN_FILES",
    "RunLock",
    "available_host_memory",
    "argument_errors",
    "available_memory",
    "check_memory",
    "check_output_directory",
    "created_ancestors",
    "describe_error",
    "estimate_memory",
    "format_bytes",
    "one_line",
    "read_input_text",
    "remove_created_folders",
    "remove_stale_temporaries",
    "require_input_file",
    "signal_name",
]
