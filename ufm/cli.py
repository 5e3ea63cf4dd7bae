"""Command line of ``ufm``: ``ufm COMMAND`` (the console command) or ``python -m ufm COMMAND``.

Commands
--------
predict {ufm,deep-linear,dufm}
    The predicted optimum of a model (docs/theory.md §4) without solving.
solve {ufm,deep-linear,dufm}
    Solve the model numerically and print predicted against found.
metrics
    Every collapse metric of docs/theory.md §3 of features saved from any framework.
metrics-demo
    A noisy collapsed configuration: the per-layer metric table and a plot against noise level.
atlas
    Best-known minima of the deep ReLU UFM over a (K, L) grid against L_DNC and L_SRG
    (:mod:`ufm.atlas`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, Sequence


def program_name(module: str, command: str | None = None) -> str:
    """The program name for usage lines: the console command (``command``, default ``module``)
    when it was run under that name, else ``python -m module``."""
    import os

    command = module if command is None else command
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if invoked in (command, f"{command}.exe", f"{command}-script.py"):
        return command
    return f"python -m {module}"


class CommandError(Exception):
    """A user error reported as one line on standard error with exit code 2."""


class UsageError(CommandError):
    """A command line that does not parse (argparse's message, e.g. "argument --K: ...")."""

    def __init__(self, message: str, prog: str | None = None) -> None:
        super().__init__(message)
        self.prog = prog


def one_line(text: Any) -> str:
    """``text`` on one line: its lines joined by "; ", runs of spaces kept."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines)


# A negative number, also in scientific notation (-1e-3) or -inf/-nan: argparse's own pattern
# (^-\d+$|^-\d*\.\d+$) takes "-1e-3" for an option and answers "expected one argument".
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$",
                              re.IGNORECASE)


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse.ArgumentParser`` whose errors are one line, raised as :class:`UsageError`.

    ``error`` raises instead of printing the usage block and exiting, so that :func:`main`
    reports every bad command line as exactly one line ``error: MESSAGE`` with exit status 2
    (``--help`` shows the usage). Negative numbers in scientific notation (``--lam-h -1e-3``)
    are values, not options. Subcommand parsers are of the same class.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{one_line(message)} (see --help)", self.prog)


def run_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    """``parser.parse_args(argv)``; an exit of argparse itself (``--help``) becomes its code."""
    try:
        return parser.parse_args(list(argv))
    except SystemExit as exit_:  # --help, --version: argparse printed and exits
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2


def integer(text: str) -> int:
    """An integer from the command line: ``12``, ``-3``, also ``1e6`` when it is a whole number."""
    import math

    stripped = str(text).strip().replace("_", "")
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        value = float(stripped)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
    return int(value)


def integer_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum`` (checked when the line is parsed)."""

    def parse(text: str) -> int:
        value = integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def number(minimum: float | None = None, *, strict: bool = False, maximum: float | None = None,
           strict_maximum: bool = False):
    """An argparse type: a finite real number, optionally bounded (checked when parsed)."""
    import math

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            raise argparse.ArgumentTypeError(
                f"must be a number {'>' if strict else '>='} {minimum:g}, got {value:g}")
        if maximum is not None and (value > maximum or (strict_maximum and value == maximum)):
            raise argparse.ArgumentTypeError(
                f"must be a number {'<' if strict_maximum else '<='} {maximum:g}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


def parse_float_list(text: str) -> list[float]:
    """Parse "2e-3,4e-3" into [0.002, 0.004] (one value is a list of one)."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 2e-3,4e-3, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def penalty_list(text: str) -> list[float]:
    """Comma-separated penalties λ: finite numbers >= 0 (checked when parsed)."""
    import math

    values = parse_float_list(text)
    for index, value in enumerate(values, start=1):
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(
                f"value {index} must be a finite number >= 0, got {value:g}")
    return values


def add_count_argument(
    parser: argparse.ArgumentParser, flag: str, minimum: int, **kwargs: Any
) -> argparse.Action:
    """Add an integer option ``flag`` whose values below ``minimum`` are rejected when parsed.

    The (dest, flag, minimum) triple is also kept in the parser's default ``count_options``, so
    :func:`check_count_options` checks values set by other means (``set_defaults``).
    """
    action = parser.add_argument(flag, type=integer_at_least(minimum), **kwargs)
    counts = tuple(parser.get_default("count_options") or ()) + ((action.dest, flag, minimum),)
    parser.set_defaults(count_options=counts)
    return action


def check_count_options(arguments: argparse.Namespace) -> None:
    """Raise :class:`CommandError` (one line naming the option) for a count below its minimum."""
    for dest, flag, minimum in getattr(arguments, "count_options", ()):
        value = getattr(arguments, dest, None)
        if value is not None and value < minimum:
            raise CommandError(f"{flag} must be an integer >= {minimum}, got {value}")


# --------------------------------------------------------------------------------------------
# Output folders: checked before any computation, written atomically
# --------------------------------------------------------------------------------------------

#: errno values of a full disk (or quota), whatever the file.
_DISK_FULL_ERRNOS = ("ENOSPC", "EDQUOT", "EFBIG")

#: errno values that say a file cannot be written (rather than that a path is wrong).
_WRITE_ERRNOS = _DISK_FULL_ERRNOS + ("EROFS", "EACCES", "EPERM")

#: Free space below this many bytes counts as a full disk when an output folder is checked.
MIN_FREE_BYTES = 1 << 20


def os_error_reason(error: OSError) -> str:
    """The reason of an ``OSError`` in words ("no space left on device"), without the path."""
    import os

    if error.errno is not None:
        try:
            return os.strerror(error.errno).lower()
        except ValueError:
            pass
    return one_line(error.strerror or error) or type(error).__name__


def _errnos(names: Sequence[str]) -> set:
    import errno as errno_module

    return {getattr(errno_module, name) for name in names if hasattr(errno_module, name)}


def is_write_error(error: BaseException) -> bool:
    """Whether ``error`` is an ``OSError`` that says a file could not be written (full disk,
    quota, read-only file system, permission)."""
    return isinstance(error, OSError) and error.errno in _errnos(_WRITE_ERRNOS)


def is_output_error(error: BaseException, folder: Any) -> bool:
    """Whether ``error`` says that an output in ``folder`` could not be written: an ``OSError``
    on a path inside ``folder``, a write error (:func:`is_write_error`) without a path, or a full
    disk whatever the path. (Permission denied on a file elsewhere, such as a data file, is not.)
    """
    if not isinstance(error, OSError):
        return False
    name = getattr(error, "filename", None)
    if name is not None and _inside(error, folder):
        return True
    if error.errno in _errnos(_DISK_FULL_ERRNOS):
        return True
    return name is None and is_write_error(error)


def _nearest_existing(path):
    from pathlib import Path

    current = Path(path).absolute()
    while True:
        try:
            current.lstat()
            return current
        except OSError:
            if current.parent == current:
                return current
            current = current.parent


def check_output_folder(path: Any, option: str) -> None:
    """Check that ``path`` is a folder that can be written, or can be created; nothing is left.

    Raises :class:`CommandError` naming ``option`` for an empty path, a path that is a file (or
    inside one), a folder that cannot be written (permission, read-only file system) or a file
    system with less than :data:`MIN_FREE_BYTES` free. A probe file is created and removed in
    the folder (or in its nearest existing parent), so the check sees what a write would see.
    """
    import os
    import tempfile
    from pathlib import Path

    text = os.fspath(path) if path is not None else ""
    if not str(text).strip():
        raise CommandError(f"{option}: expected a folder, got an empty path")
    target = Path(text)
    if target.exists():
        if not target.is_dir():
            raise CommandError(f"{option}: {str(target)!r} is a file, expected a folder")
        folder = target
    else:
        folder = _nearest_existing(target)
        if not folder.is_dir():
            raise CommandError(f"{option}: cannot create the folder {str(target)!r}: "
                               f"{str(folder)!r} is a file")
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
    except OSError as error:
        where = "" if folder == target else f" (its parent {str(folder)!r})"
        raise CommandError(f"{option}: cannot write into {str(target)!r}{where}: "
                           f"{os_error_reason(error)}") from None
    os.close(descriptor)
    os.unlink(probe)
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):
        return
    free = stats.f_bavail * stats.f_frsize
    if free < MIN_FREE_BYTES:
        raise CommandError(f"{option}: cannot write into {str(target)!r}: no space left on "
                           f"device ({free} bytes free)")


class StagedOutput:
    """A staging folder inside the output folder; :meth:`final` maps a staged path to its place."""

    def __init__(self, staging, target) -> None:
        self.path = staging
        self.target = target

    def final(self, path: Any):
        from pathlib import Path

        path = Path(path)
        try:
            return self.target / path.relative_to(self.path)
        except ValueError:
            return path


def _remove_created(folders) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            pass


def _publish(staging, target, option: str) -> None:
    import os

    files = sorted(path for path in staging.rglob("*") if not path.is_dir())
    for source in files:  # every conflict before the first file moves
        destination = target / source.relative_to(staging)
        if destination.is_dir():
            raise CommandError(f"{option}: cannot write {str(destination)!r}: it is a folder")
    for source in files:
        destination = target / source.relative_to(staging)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, destination)


def staged_output(folder: Any, option: str):
    """Context manager: write the outputs of a command into ``folder`` all or nothing.

    The folder is checked (:func:`check_output_folder`) and created; the body writes into the
    staging folder it is given (``with staged_output(out, "--out") as stage: ...`` writes into
    ``stage.path``); on success every file is moved into place with ``os.replace`` (atomic per
    file). If the body or the move fails, the staging folder and the folders created here are
    removed, so no partial file is left, and an ``OSError`` of a write becomes a
    :class:`CommandError` naming ``option`` and the path.
    """
    import contextlib
    import os
    import shutil
    import tempfile
    from pathlib import Path

    @contextlib.contextmanager
    def manager():
        check_output_folder(folder, option)  # the text as given: "" is not "."
        target = Path(folder)
        created = []
        probe = target.absolute()
        while not probe.exists():
            created.append(probe)
            probe = probe.parent
        try:
            target.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
        except OSError as error:
            _remove_created(created)
            raise CommandError(f"{option}: cannot create {str(target)!r}: "
                               f"{os_error_reason(error)}") from None
        succeeded = False
        try:
            yield StagedOutput(staging, target)
            _publish(staging, target, option)
            succeeded = True
        except OSError as error:
            if not is_output_error(error, staging):
                raise
            name = getattr(error, "filename", None)
            detail = f" ({os.path.basename(os.fspath(name))})" if name else ""
            raise CommandError(f"{option}: cannot write into {str(target)!r}: "
                               f"{os_error_reason(error)}{detail}; nothing was written") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if not succeeded:
                _remove_created(created)

    return manager()


def _inside(error: OSError, folder) -> bool:
    import os

    name = getattr(error, "filename", None)
    if not name:
        return False
    try:
        folder = os.path.abspath(os.fspath(folder))
        return os.path.commonpath([os.path.abspath(os.fspath(name)), folder]) == folder
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Memory: estimated before anything large is allocated
# --------------------------------------------------------------------------------------------


def available_memory() -> int | None:
    """Bytes of memory this process can still allocate (:func:`ufm.resources.available_host_memory`:
    ``MemAvailable`` of /proc/meminfo or ``os.sysconf``, lowered to the free part of a cgroup
    memory limit); None if unknown. One name here so that the checks below can be tested."""
    from .resources import available_host_memory

    return available_host_memory()


def format_bytes(count: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} EiB"  # pragma: no cover


def check_memory(estimate: float, what: str, option: str) -> None:
    """Raise :class:`CommandError` naming ``option`` when ``estimate`` bytes exceed
    :func:`available_memory` (no check when it is unknown)."""
    available = available_memory()
    if available is not None and estimate > available:
        raise CommandError(
            f"{option}: {what} needs about {format_bytes(estimate)} of memory, "
            f"{format_bytes(available)} is available; choose a smaller problem"
        )


def _add_model_arguments(parser: argparse.ArgumentParser, model: str) -> None:
    add_count_argument(parser, "--K", 2, required=True, help="number of classes K >= 2")
    add_count_argument(parser, "--n", 1, required=True, help="samples per class n >= 1")
    parser.add_argument("--lam-h", type=number(0.0), required=True,
                        help="λ_H >= 0, penalty on the features H₁")
    if model == "ufm":
        parser.add_argument("--lam-w", type=number(0.0), required=True,
                            help="λ_W >= 0, penalty on W")
        add_count_argument(
            parser, "--d", 1, default=None,
            help="feature dimension d >= 1; below K (K - 1 with --bias) the optimum is "
                 "rank-limited (predict default: every d >= K; solve default: d = K)",
        )
        parser.add_argument("--bias", action="store_true", help="unregularized bias b")
    else:
        add_count_argument(parser, "--L", 1, required=True,
                           help="number of weight matrices L >= 1")
        parser.add_argument(
            "--lam-w",
            type=penalty_list,
            required=True,
            help="λ_1..λ_L >= 0, comma-separated, or one value for all layers",
        )
        add_count_argument(
            parser, "--width", 1, default=None,
            help="width of every layer, >= 1 (predict default: every width >= K; solve default: "
                 "max(2K, 10)); deep-linear below K is rank-limited, dufm below K has no proven "
                 "value (L_DNC is flagged as not reachable)",
        )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _layer_lambdas(arguments: argparse.Namespace) -> list[float]:
    lams = list(arguments.lam_w)
    if len(lams) == 1:
        lams = lams * arguments.L
    if len(lams) != arguments.L:
        raise CommandError(
            f"--lam-w: expected 1 or L = {arguments.L} comma-separated values, got {len(lams)}"
        )
    return lams


def predicted_optimum(model: str, arguments: argparse.Namespace):
    """The :class:`ufm.optima.PredictedOptimum` of the model the arguments describe.

    ``--d`` (UFM) and ``--width`` (every layer of the deep models) are passed on: without them
    the prediction is the width-free one (it holds for every width >= K).
    """
    from . import optima

    if model == "ufm":
        return optima.predict_ufm(
            arguments.K, arguments.n, arguments.lam_w, arguments.lam_h, bias=arguments.bias,
            width=arguments.d,
        )
    function = optima.predict_dufm if model == "dufm" else optima.predict_deep_linear
    widths = None if arguments.width is None else (arguments.width,) * arguments.L
    return function(
        arguments.K, arguments.L, arguments.n, arguments.lam_h, _layer_lambdas(arguments),
        widths=widths,
    )


def _format_prediction(prediction) -> str:
    data = prediction.to_dict()
    lines = [f"predicted optimum of the {data['model']} model (docs/theory.md §4)",
             f"  holds for: {data['holds_for']}"]
    if not data["reachable"]:
        lines.append("  NOT REACHABLE at these widths: optimal_loss is a reference, not an optimum")
    widths = "any (width-free, see holds for)" if data["widths"] is None else data["widths"]
    lines.append(f"  {'widths':<22} {widths}")
    for key in ("rank_limit", "kind", "reachable", "num_classes", "num_layers", "per_class",
                "lam_h", "lam_w", "optimal_loss", "q_star", "threshold", "penalty_product",
                "is_zero"):
        lines.append(f"  {key:<22} {data[key]}")
    for index, values in enumerate(data["singular_values"], start=1):
        shown = ", ".join(f"{value:.6g}" for value in values) or "(all zero)"
        lines.append(f"  singular values W_{index:<5} {shown}")
    if data["class_mean_norms"]:
        norms = ", ".join(f"{value:.6g}" for value in data["class_mean_norms"])
        lines.append(f"  class-mean norms       {norms}")
    if data["balancedness"]:
        lines.append(f"  BAL.scalar entries     {data['balancedness'][0]:.6g} (all equal)")
    return "\n".join(lines)


def command_predict(arguments: argparse.Namespace) -> int:
    # The prediction holds a few Python lists of K values per layer (singular values, norms,
    # λ's): about 64 bytes per entry with the JSON or table built from it.
    layers = getattr(arguments, "L", 1)
    check_memory(64 * (layers + 1) * (arguments.K + 4),
                 f"predict with K = {arguments.K}, L = {layers}",
                 "--L" if layers > arguments.K else "--K")
    prediction = predicted_optimum(arguments.model, arguments)
    if arguments.json:
        print(json.dumps(prediction.to_dict(), indent=2))
    else:
        print(_format_prediction(prediction))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m ufm``."""
    parser = ArgumentParser(
        prog=program_name("ufm"),
        description="Unconstrained-features models: predicted optima, solvers, collapse metrics.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser("predict", help="predicted optimum of a model, without solving")
    predict_models = predict.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, model in (("ufm", "ufm"), ("deep-linear", "deep_linear"), ("dufm", "dufm")):
        sub = predict_models.add_parser(name, help=f"the {name} model (docs/theory.md §2, §4)")
        _add_model_arguments(sub, "ufm" if name == "ufm" else "deep")
        sub.set_defaults(handler=command_predict, model=model)

    for register in _REGISTRARS:
        register(commands)
    return parser


# Further commands add themselves here (see the functions below).
_REGISTRARS: list = []


# --------------------------------------------------------------------------------------------
# solve
# --------------------------------------------------------------------------------------------


def build_model(model: str, arguments: argparse.Namespace):
    """The :mod:`ufm.models` objective the arguments of ``predict``/``solve`` describe."""
    from . import models

    if model == "ufm":
        width = arguments.d if arguments.d is not None else arguments.K
        return models.UFM(arguments.K, arguments.n, width, arguments.lam_w, arguments.lam_h,
                          bias=arguments.bias)
    width = arguments.width if arguments.width is not None else max(2 * arguments.K, 10)
    widths = (width,) * arguments.L
    cls = models.DeepUFM if model == "dufm" else models.DeepLinearUFM
    return cls(arguments.K, arguments.n, widths, arguments.lam_h, _layer_lambdas(arguments))


#: Correction pairs the L-BFGS methods keep (``lbfgs_memory`` of :func:`ufm.solvers.solve`).
LBFGS_MEMORY = 20

#: Copies of the parameter vector each local method holds at once (iterate, gradient, trial
#: point, search direction, best point, history; the L-BFGS pairs s_i, y_i: scipy's L-BFGS-B
#: keeps 2m vectors, the numpy two-loop methods 4m (a window of 2m rows for s and for y).
METHOD_COPIES = {
    "gd": 6,
    "torch_gd": 6,
    "lbfgs": 2 * LBFGS_MEMORY + 10,
    "torch_lbfgs": 2 * LBFGS_MEMORY + 10,
    "numpy_lbfgs": 4 * LBFGS_MEMORY + 10,
    "kink_lbfgs": 4 * LBFGS_MEMORY + 12,
}

#: Points the global search holds besides its local runs: the constructions, the best point of
#: each of the lowest basins kept for hopping, the best so far and the round's starts.
GLOBAL_HELD_COPIES = 16


def solve_memory_estimate(model_name: str, arguments: argparse.Namespace,
                          workers: int | None = None) -> tuple[int, str, str]:
    """Bytes that ``solve`` of these arguments needs at once, before anything is allocated.

    float64 everywhere: the parameters θ (H₁ of d_1×N, the weight matrices, b) times the copies
    its method holds (:data:`METHOD_COPIES`; the global search: its local method per worker plus
    :data:`GLOBAL_HELD_COPIES` held points), the forward and backward activations (pre- and
    post-activation and the error signal of every layer, d_l×N each, per worker), the targets,
    and the per-layer report (a Gram matrix of side min(d_l, N) per layer and the SVDs of the
    weights). ``workers`` defaults to ``arguments.workers`` (global search only). Returns
    (bytes, the option that drives the size, a description of the problem).
    """
    classes, per_class = arguments.K, arguments.n
    samples = classes * per_class
    if model_name == "ufm":
        layers, width = 1, (arguments.d if arguments.d is not None else classes)
        parameters = width * samples + classes * width + (classes if arguments.bias else 0)
        driver = "--d" if arguments.d is not None and width >= samples else "--n"
        shape = f"K = {classes}, n = {per_class}, d = {width}"
        default_method = "lbfgs"
    else:
        layers = arguments.L
        width = arguments.width if arguments.width is not None else max(2 * classes, 10)
        parameters = width * samples + width * width * (layers - 1) + classes * width
        driver = "--width" if width * max(layers - 1, 1) >= samples else "--n"
        if layers > max(width, samples):
            driver = "--L"
        shape = f"K = {classes}, n = {per_class}, L = {layers}, width {width}"
        default_method = "global"  # solvers.default_method of the deep models
    method = default_method if arguments.method == "auto" else arguments.method
    count = 1
    if method == "global":
        local = "kink_lbfgs" if model_name == "dufm" else "lbfgs"
        count = workers if workers is not None else getattr(arguments, "workers", 1) or 1
        copies = count * METHOD_COPIES[local] + GLOBAL_HELD_COPIES
    else:
        copies = METHOD_COPIES.get(method, METHOD_COPIES["numpy_lbfgs"])
    if getattr(arguments, "restarts", 1) > 1:
        copies += 2  # the best solution and the current one
    activations = 3 * samples * (layers * width + classes) + classes * samples
    report = layers * 2 * min(width, samples) ** 2 + 2 * width * width
    total = 8 * (copies * parameters + count * activations + report)
    description = (f"solve {model_name.replace('_', '-')} ({shape}: {parameters:.3g} parameters) "
                   f"with {method}" + (f" on {count} workers" if count > 1 else ""))
    return total, driver, description


def check_solve_memory(model_name: str, arguments: argparse.Namespace) -> None:
    """Refuse (naming the option) a ``solve`` whose :func:`solve_memory_estimate` exceeds the
    available memory; ``--workers`` is named when one worker would fit."""
    available = available_memory()
    if available is None:
        return
    estimate, option, description = solve_memory_estimate(model_name, arguments)
    if estimate <= available:
        return
    if (getattr(arguments, "workers", 1) or 1) > 1:
        single, _, _ = solve_memory_estimate(model_name, arguments, workers=1)
        if single <= available:
            option = "--workers"
    raise CommandError(
        f"{option}: {description} needs about {format_bytes(estimate)} of memory, "
        f"{format_bytes(available)} is available; choose a smaller problem"
    )


def solve_and_compare(model_name: str, arguments: argparse.Namespace) -> dict[str, Any]:
    """Solve the model and set the found optimum beside the predicted one (a JSON-ready dict).

    The prediction is :func:`ufm.optima.predict` of the model solved, so it is stated for the
    model's widths; its ``kind`` (``"global_optimum"``, ``"dnc_reference"`` or
    ``"unreachable_reference"``) labels the comparison and replaces the solution's own
    ``predicted_kind``.
    """
    import dataclasses

    import numpy as np

    from . import optima, reports, solvers

    check_solve_memory(model_name, arguments)
    model = build_model(model_name, arguments)
    prediction = optima.predict(model)
    options = dict(method=arguments.method, lr=arguments.lr, tolerance=arguments.tolerance,
                   max_iterations=arguments.max_iterations, progress=arguments.progress)
    if arguments.method == "kink_lbfgs":
        options.update(solvers.KINK_LBFGS_LOW_RANK_SETTINGS)
    if solvers.default_method(model) == "global" if arguments.method == "auto" else (
        arguments.method == "global"
    ):
        if not arguments.time_budget > 0:
            raise CommandError(f"--time-budget must be a number of seconds > 0, "
                               f"got {arguments.time_budget}")
        options.update(max_starts=arguments.max_starts, patience=arguments.patience,
                       time_budget=arguments.time_budget, workers=arguments.workers)
    if arguments.restarts > 1:
        seeds = [arguments.seed + index for index in range(arguments.restarts)]
        restarts = solvers.solve_with_restarts(model, seeds, **options)
        solution = restarts.best
        spread = restarts.to_dict().get("spread")
    else:
        solution = solvers.solve(model, seed=arguments.seed, **options)
        spread = None
    solution = dataclasses.replace(
        solution,
        predicted_loss=prediction.optimal_loss,
        predicted_kind=prediction.kind,
        gap_to_predicted=solution.loss - prediction.optimal_loss,
    )
    parameters = solution.parameters
    forward = model.forward(parameters)
    bias = getattr(model, "bias", False)
    found_q = reports.output_scale(forward.output, model.targets, bias=bool(bias))
    num_kept = prediction.rank_limit
    full_rank = arguments.K - 1 if bias else arguments.K
    if num_kept < full_rank:
        # Output q·PY with P a rank-r projector: ⟨F, Y⟩/‖Y‖² = q·r/m (the same with bias), so
        # the scale of each fitted direction is m/r times the least-squares scale.
        found_q *= full_rank / num_kept
    singular_values = [
        np.linalg.svd(np.asarray(weight), compute_uv=False)[:num_kept].tolist()
        for weight in parameters.weights
    ]
    report = reports.model_layer_report(model, parameters)
    return {
        "model": prediction.model,
        "predicted": prediction.to_dict(),
        "found": {
            "loss": solution.loss,
            "fit": solution.fit,
            "q": found_q,
            "singular_values": singular_values,
            "gradient_norm": solution.gradient_norm,
            "iterations": solution.iterations,
            "stop_reason": solution.stop_reason,
            "method": solution.method,
            "settings": solution.settings,
            "message": solution.message,
            "time_seconds": solution.time_seconds,
            "restart_spread": spread,
            "basins": [basin.to_dict() for basin in solution.basins],
        },
        "gap_to_predicted": solution.loss - prediction.optimal_loss,
        "predicted_kind": prediction.kind,
        "holds_for": prediction.holds_for,
        "layers": report.to_dicts(),
        "totals": report.totals,
        "_report": report,
        "_solution": solution,
    }


def _format_comparison(result: dict[str, Any]) -> str:
    predicted, found = result["predicted"], result["found"]
    full_rank = predicted["num_classes"] - (1 if result["model"] == "ufm_bias" else 0)
    q_label = "q (output = qY)" if predicted["rank_limit"] >= full_rank else "q (output = qPY)"
    lines = [
        f"{result['model']}: predicted ({result['predicted_kind']}) against found",
        f"  prediction holds for: {result['holds_for']}",
    ]
    if not predicted["reachable"]:
        lines.append("  NOT REACHABLE at these widths: the predicted loss is a reference, "
                     "not an optimum; a gap of either sign is possible")
    lines += [
        f"  {'':<18}{'predicted':>24}{'found':>24}",
        f"  {'loss':<18}{predicted['optimal_loss']:>24.10g}{found['loss']:>24.10g}",
        f"  {q_label:<18}{predicted['q_star']:>24.8g}{found['q']:>24.8g}",
    ]
    for index, (want, got) in enumerate(zip(predicted["singular_values"], found["singular_values"]), 1):
        want_text = ", ".join(f"{v:.5g}" for v in want) or "0"
        got_text = ", ".join(f"{v:.5g}" for v in got)
        lines.append(f"  {f's(W_{index})':<18}{want_text:>24} {got_text:>23}")
    lines.append(
        f"  gap found − predicted: {result['gap_to_predicted']:.3e}; ‖∇Φ‖ = "
        f"{found['gradient_norm']:.2e}; {found['iterations']} iterations, stop: "
        f"{found['stop_reason']}, {found['time_seconds']:.2f} s"
    )
    if found.get("basins"):
        shown = found["basins"][:8]
        lines.append(f"  basins found ({len(found['basins'])} distinct; lowest "
                     f"{len(shown)}): loss, class-mean ranks per layer, starts ending there")
        for basin in shown:
            ranks = ",".join(str(rank) for rank in basin["ranks"])
            lines.append(f"    {basin['loss']:.8g}  ranks ({ranks})  ×{basin['count']}  "
                         f"first by a {basin['found_by']} start")
    if result["model"] == "dufm":
        lines.append("  (W_1's individual singular values are free across the optimal β family, "
                     "docs/theory.md §4.4; only ‖W_1‖_F² is fixed)")
    lines.append("")
    lines.append("per-layer metrics of the found point (docs/theory.md §3):")
    columns = ["NC1.tr_unc", "NC2.orth", "NC3.span", "NC3.dual", "BAL.diag", "NEG", "RANK"]
    lines.append(result["_report"].format_table(columns=columns))
    return "\n".join(lines)


def save_solve_result(result: dict[str, Any], solution: Any, directory: str) -> list[str]:
    """Write ``solution.json`` (the Solution and the comparison) and ``loss_history.png``."""
    import os
    from pathlib import Path

    from . import reports

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    data = dict(result)
    data["solution"] = solution.to_dict()
    json_path = folder / "solution.json"
    temporary = folder / "solution.json.tmp"
    try:
        temporary.write_text(json.dumps(strict_json(data), indent=2, allow_nan=False))
        os.replace(temporary, json_path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    png_path = reports.plot_solution_history(
        solution, result["predicted"]["optimal_loss"], folder / "loss_history.png",
        title=f"{result['model']}: {solution.method}, predicted optimum "
              f"({result['predicted_kind']}) against found",
    )
    return [str(json_path), str(png_path)]


def command_solve(arguments: argparse.Namespace) -> int:
    if arguments.save is not None:  # before any computation
        check_output_folder(arguments.save, "--save")
    result = solve_and_compare(arguments.model, arguments)
    report = result.pop("_report")
    solution = result.pop("_solution")
    written = []
    if arguments.save is not None:
        with staged_output(arguments.save, "--save") as stage:
            staged = save_solve_result(result, solution, str(stage.path))
        written = [str(stage.final(path)) for path in staged]
    if arguments.json:
        print(json.dumps(strict_json(result), indent=2, allow_nan=False))
    else:
        result["_report"] = report
        print(_format_comparison(result))
    for path in written:
        print(f"wrote {path}", file=sys.stderr if arguments.json else sys.stdout)
    return 0


def strict_json(value: Any) -> Any:
    """A copy of ``value`` that strict JSON parsers accept: ±inf and NaN become "inf", "-inf",
    "nan" (NC2.kappa is +inf when rank M < K), numpy scalars and tuples become Python ones."""
    import math

    import numpy as np

    if isinstance(value, dict):
        return {str(key): strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [strict_json(item) for item in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _register_solve(commands) -> None:
    solve = commands.add_parser("solve", help="solve a model and compare with its predicted optimum")
    models_parser = solve.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, model in (("ufm", "ufm"), ("deep-linear", "deep_linear"), ("dufm", "dufm")):
        sub = models_parser.add_parser(name, help=f"solve the {name} model")
        _add_model_arguments(sub, "ufm" if name == "ufm" else "deep")
        sub.add_argument("--method", default="auto",
                         choices=["auto", "global", "lbfgs", "gd", "numpy_lbfgs", "kink_lbfgs",
                                  "torch_gd", "torch_lbfgs"],
                         help="solver (default auto: the global search for deep-linear and "
                              "dufm, lbfgs for ufm; kink_lbfgs: the ReLU DUFM only, run with "
                              "solvers.KINK_LBFGS_LOW_RANK_SETTINGS)")
        add_count_argument(sub, "--max-starts", 1, default=200,
                           help="global search: at most this many local runs (default 200)")
        add_count_argument(sub, "--patience", 1, default=None,
                           help="global search: stop after this many starts without a lower "
                                "basin (default 40 for dufm, 6 otherwise)")
        sub.add_argument("--time-budget", type=number(0.0, strict=True), default=300.0,
                         help="global search: seconds before no new start is made (default 300)")
        add_count_argument(sub, "--workers", 1, default=1,
                           help="global search: starts run at once on local processes (default 1)")
        sub.add_argument("--lr", type=number(0.0, strict=True), default=0.5,
                         help="GD step size η > 0 (default 0.5)")
        add_count_argument(sub, "--max-iterations", 1, default=20000,
                           help="iteration budget >= 1 (default 20000)")
        sub.add_argument("--tolerance", type=number(0.0), default=1e-10,
                         help="gradient-norm stop >= 0 (default 1e-10)")
        add_count_argument(sub, "--seed", 0, default=0,
                           help="seed >= 0 of the (first) random start")
        add_count_argument(sub, "--restarts", 1, default=1,
                           help="random starts >= 1 (seeds seed, seed+1, ...); the best is shown")
        sub.add_argument("--progress", action="store_true", help="show a progress bar")
        sub.add_argument("--save", metavar="DIR", default=None,
                         help="write solution.json and loss_history.png into DIR")
        sub.set_defaults(handler=command_solve, model=model)


_REGISTRARS.append(_register_solve)


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def npy_header(path: str, what: str) -> tuple[tuple[int, ...], Any]:
    """Shape and dtype of the ``.npy`` file ``path`` from its header, without reading the data.

    Raises :class:`CommandError` naming ``what`` (the option) for a path that does not exist, is
    a folder or cannot be read, an ``.npz`` archive, a file that is not ``.npy``, an array of
    Python objects, or a file shorter than its header says.
    """
    import os

    import numpy as np
    from numpy.lib import format as npy_format

    if not os.path.lexists(path):
        raise CommandError(f"{what} file {path!r} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"{what}: {path!r} is a folder, expected a .npy file")
    try:
        with open(path, "rb") as handle:
            start = handle.read(6)
            if start[:4] == b"PK\x03\x04":
                raise CommandError(f"{what} file {path!r} is an .npz archive of several arrays; "
                                   f"save one array with np.save")
            handle.seek(0)
            version = npy_format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(handle)
            else:
                shape, fortran, dtype = npy_format._read_array_header(handle, version)
            offset = handle.tell()
    except CommandError:
        raise
    except OSError as error:
        raise CommandError(f"{what} file {path!r} cannot be read: {os_error_reason(error)}"
                           ) from None
    except (ValueError, EOFError, SyntaxError, TypeError) as error:
        raise CommandError(f"{what} file {path!r} is not a readable .npy array: "
                           f"{one_line(error)}") from None
    if dtype.hasobject:
        raise CommandError(f"{what} file {path!r} holds Python objects (dtype {dtype}); "
                           f"expected a numeric array")
    size = os.path.getsize(path)
    expected = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size < expected:
        raise CommandError(f"{what} file {path!r} is truncated: its header says shape {shape} "
                           f"of {dtype} ({expected} bytes), the file has {size}")
    return tuple(int(n) for n in shape), dtype


def load_array(path: str, what: str, *, memory_map: bool = False):
    """Load a ``.npy`` file, with errors that name the option, the file and the problem.

    ``memory_map=True`` maps the file read-only instead of reading it (the metric passes then
    read it from the page cache in chunks: no upfront copy)."""
    import numpy as np

    npy_header(path, what)
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r" if memory_map else None)
    except FileNotFoundError:
        raise CommandError(f"{what} file {path!r} does not exist") from None
    except (ValueError, OSError, EOFError) as error:
        raise CommandError(f"{what} file {path!r} is not a readable .npy array: "
                           f"{one_line(error)}") from None
    if not isinstance(array, np.ndarray):
        raise CommandError(f"{what} file {path!r} holds several arrays; save one array with np.save")
    return array


def _check_kind(dtype: Any, kinds: str, option: str, path: str, expected: str) -> None:
    if dtype.kind not in kinds:
        raise CommandError(f"{option} file {path!r}: expected {expected}, got dtype {dtype}")


def _check_finite(array: Any, option: str, path: str) -> None:
    """NaN/Inf in ``array``, checked in blocks of rows (no full-size temporary)."""
    import numpy as np

    if array.dtype.kind not in "fc":
        return
    rows = array.reshape(array.shape[0], -1) if array.ndim > 1 else array.reshape(1, -1)
    step = max(1, (1 << 22) // max(rows.shape[1], 1))
    bad = 0
    for start in range(0, rows.shape[0], step):
        bad += int(np.count_nonzero(~np.isfinite(rows[start:start + step])))
    if bad:
        raise CommandError(f"{option} file {path!r} holds {bad} NaN or Inf value(s); "
                           f"expected finite numbers")


_LIBRARY_NAMES = (("features", "--features"), ("labels", "--labels"), ("weights", "--weights"),
                  ("bias", "--bias"), ("rtol", "--rank-rtol"), ("num_classes", "--labels"))


def command_metrics(arguments: argparse.Namespace) -> int:
    from . import labels as label_checks
    from . import metrics

    # Shapes and types from the headers first: nothing is loaded before they fit together and
    # in memory.
    feature_shape, feature_dtype = npy_header(arguments.features, "--features")
    label_shape, label_dtype = npy_header(arguments.labels, "--labels")
    weight_shape = bias_shape = None
    if arguments.weights:
        weight_shape, weight_dtype = npy_header(arguments.weights, "--weights")
    if arguments.bias:
        if not arguments.weights:
            raise CommandError("--bias needs --weights (the classifier it belongs to)")
        bias_shape, bias_dtype = npy_header(arguments.bias, "--bias")
    if len(feature_shape) != 2:
        raise CommandError(f"--features file {arguments.features!r}: expected a 2-D array, "
                           f"got shape {feature_shape}")
    _check_kind(feature_dtype, "iuf", "--features", arguments.features, "real numbers")
    dimension, samples = feature_shape[::-1] if arguments.rows else feature_shape
    layout = "(N, d)" if arguments.rows else "(d, N)"
    if samples == 0 or dimension == 0:
        raise CommandError(f"--features file {arguments.features!r}: expected a non-empty {layout} "
                           f"array, got shape {feature_shape}")
    if len(label_shape) != 1 or label_shape[0] != samples:
        hint = "" if arguments.rows else " (pass --rows if the file holds one sample per row)"
        raise CommandError(
            f"--labels file {arguments.labels!r}: expected shape ({samples},) to match "
            f"the {samples} samples of --features {feature_shape}{hint}, got {label_shape}"
        )
    if label_dtype.kind not in "iu":
        raise CommandError(f"--labels file {arguments.labels!r}: expected integer class indices "
                           f"0..K-1, got dtype {label_dtype}")
    if weight_shape is not None:
        _check_kind(weight_dtype, "iuf", "--weights", arguments.weights, "real numbers")
        if len(weight_shape) != 2 or weight_shape[1] != dimension:
            raise CommandError(f"--weights file {arguments.weights!r}: expected shape (K, "
                               f"{dimension}) (one row per class, d = {dimension}), "
                               f"got {weight_shape}")
    if bias_shape is not None:
        _check_kind(bias_dtype, "iuf", "--bias", arguments.bias, "real numbers")
        if bias_shape != (weight_shape[0],):
            raise CommandError(f"--bias file {arguments.bias!r}: expected shape "
                               f"({weight_shape[0]},) (one entry per row of --weights), "
                               f"got {bias_shape}")
    # The features are memory-mapped and read in float64 chunks (never copied whole): the labels,
    # the work chunks, and with --negativity the two Gram matrices of side min(d, N).
    side = min(dimension, samples)
    estimate = (16 * samples + (1 << 22)
                + (16 * side * side if arguments.negativity else 0))
    check_memory(estimate, f"the metrics of --features {feature_shape} {feature_dtype}",
                 "--features")

    # NaN/Inf in the features are found by the metric passes themselves (no extra pass here).
    features = load_array(arguments.features, "--features", memory_map=True)
    labels = load_array(arguments.labels, "--labels")
    try:
        labels = label_checks.validate_labels(labels, name="--labels")
    except (ValueError, TypeError) as error:
        message = one_line(error)
        if not message.startswith("--labels"):
            message = f"--labels: {message}"
        raise CommandError(f"{message} (file {arguments.labels!r})") from None
    num_classes = int(labels.max()) + 1
    weights = bias = None
    if arguments.weights:
        weights = load_array(arguments.weights, "--weights")
        _check_finite(weights, "--weights", arguments.weights)
        if weights.shape[0] != num_classes:
            raise CommandError(f"--weights file {arguments.weights!r}: expected {num_classes} "
                               f"rows (K = {num_classes} classes in --labels), got shape "
                               f"{weights.shape}")
    if arguments.bias:
        bias = load_array(arguments.bias, "--bias")
        _check_finite(bias, "--bias", arguments.bias)
    try:
        values = metrics.all_metrics(features, labels, weights, bias, rows=arguments.rows,
                                     negativity=arguments.negativity,
                                     rank_rtol=arguments.rank_rtol, undefined="none",
                                     kernels=_metrics_kernels(arguments.kernels,
                                                              samples * dimension))
    except (ValueError, TypeError) as error:
        message = one_line(error)
        for name, option in _LIBRARY_NAMES:
            if message.startswith(name):
                message = option + message[len(name):]
                break
        raise CommandError(f"{message} (--features {arguments.features!r})") from None
    if arguments.json:
        print(json.dumps(strict_json(values), indent=2, allow_nan=False))
    else:
        width = max(len(key) for key in values)
        print(f"collapse metrics of {arguments.features} (d = {dimension}, "
              f"N = {samples}), docs/theory.md §3")
        for key, value in values.items():
            shown = "–" if value is None else (f"{value:.6g}" if isinstance(value, float) else value)
            print(f"  {key:<{width}}  {shown}")
    return 0


#: ``ufm metrics --kernels auto`` runs the compiled kernels from this many feature values on
#: (2**28: 524,288 × 512). Loading them costs a one-shot process about 0.5 s and saves about
#: 2.5 ns per value (docs/theory.md §3, Numerics), so below this numpy finishes first.
CLI_COMPILED_MIN_VALUES = 2**28


def _metrics_kernels(choice: str, values: int) -> str:
    """The ``kernels`` of :func:`ufm.metrics.all_metrics` for ``--kernels choice``."""
    if choice != "auto":
        return choice
    return "auto" if values >= CLI_COMPILED_MIN_VALUES else "numpy"


def _register_metrics(commands) -> None:
    sub = commands.add_parser("metrics", help="collapse metrics of saved features (.npy)")
    sub.add_argument("--features", required=True, help=".npy file, shape (d, N) (or (N, d) with --rows)")
    sub.add_argument("--labels", required=True, help=".npy file of integer labels, shape (N,)")
    sub.add_argument("--weights", help=".npy file of the last layer W, shape (K, d)")
    sub.add_argument("--bias", help=".npy file of the bias b, shape (K,)")
    sub.add_argument("--rows", action="store_true", help="the features file holds one sample per row")
    sub.add_argument("--negativity", action="store_true",
                     help="also compute NEG (the features read as pre-activations; two Gram matrices)")
    sub.add_argument("--rank-rtol", type=number(0.0, maximum=1.0, strict_maximum=True),
                     default=None, help="relative tolerance of RANK/KAPPA, in [0, 1)")
    sub.add_argument("--kernels", choices=("auto", "compiled", "numpy"), default="auto",
                     help="who runs the passes: the compiled kernels (numba) or numpy; auto: "
                          "compiled from 2**28 feature values on, where they repay their "
                          "loading time")
    sub.add_argument("--json", action="store_true", help="print JSON keyed by metric ID")
    sub.set_defaults(handler=command_metrics)


_REGISTRARS.append(_register_metrics)


# --------------------------------------------------------------------------------------------
# metrics-demo
# --------------------------------------------------------------------------------------------


def command_metrics_demo(arguments: argparse.Namespace) -> int:
    from . import demo

    with staged_output(arguments.out, "--out") as stage:  # checked before anything is computed
        result = demo.run_metrics_demo(stage.path, seed=arguments.seed, quiet=arguments.quiet)
    for path in result.paths:
        print(f"wrote {stage.final(path)}")
    return 0


def _register_metrics_demo(commands) -> None:
    sub = commands.add_parser(
        "metrics-demo",
        help="a noisy collapsed 3-layer configuration: per-layer table and metrics against noise",
    )
    sub.add_argument("--out", default="outputs", help="output folder (default outputs/)")
    add_count_argument(sub, "--seed", 0, default=0, help="seed >= 0 of the noise")
    sub.add_argument("--quiet", action="store_true", help="do not print the table")
    sub.set_defaults(handler=command_metrics_demo)


_REGISTRARS.append(_register_metrics_demo)


# --------------------------------------------------------------------------------------------
# atlas
# --------------------------------------------------------------------------------------------


def _atlas_temporary_files(out: Any) -> set:
    """Temporary files of this process's atomic writes in an atlas folder (``.NAME.PID.tmp*``)."""
    import os
    from pathlib import Path

    folder = Path(out)
    pattern = f".*.{os.getpid()}.tmp*"
    return set(folder.glob(pattern)) | set((folder / "points").glob(pattern))


def check_store_path(store: Any, option: str = "--store") -> None:
    """A SQLite store path: a file (or a new file in a folder that can be written)."""
    import os
    from pathlib import Path

    path = Path(store)
    if not str(store).strip():
        raise CommandError(f"{option}: expected a SQLite file, got an empty path")
    if path.is_dir():
        raise CommandError(f"{option}: {str(path)!r} is a folder, expected a SQLite file")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise CommandError(f"{option}: {str(path)!r} cannot be read and written "
                               f"(permission denied)")
        return
    check_output_folder(path.parent if str(path.parent) else ".", option)


def check_atlas_memory(arguments: argparse.Namespace, classes, layers, width, method: str
                       ) -> None:
    """Refuse an atlas whose largest cell (largest K and L, the wider width of ``auto``) does
    not fit in the available memory, ``--workers`` cells at once (:func:`solve_memory_estimate`
    of the deep ReLU UFM)."""
    from . import atlas

    available = available_memory()
    if available is None:
        return
    largest_k, largest_l = max(classes), max(layers)
    cell_width = sum(atlas.auto_widths(largest_k)) if width == "auto" else int(width)
    if width == "auto" and getattr(arguments, "neighbours", False):
        # the wider search runs at the width of the (K + 1)-class neighbour if that is wider
        cell_width = max(cell_width, sum(atlas.auto_widths(largest_k + 1)))
    cell = argparse.Namespace(K=largest_k, n=arguments.n, L=largest_l, width=cell_width,
                              method=method, workers=1, restarts=2)
    estimate, driver, _ = solve_memory_estimate("dufm", cell, workers=1)
    processes = 1 if arguments.scheduler is not None else max(int(arguments.workers), 1)
    if estimate * processes <= available:
        return
    if estimate <= available:
        option = "--workers"
    elif driver == "--width" and width == "auto":
        option = "--K"
    else:
        option = driver
    in_all = f" per cell, {format_bytes(estimate * processes)} for {processes} at once" \
        if processes > 1 else ""
    raise CommandError(
        f"{option}: the atlas cell K = {largest_k}, L = {largest_l}, width {cell_width} "
        f"(n = {arguments.n}, {method}) needs about {format_bytes(estimate)} of memory{in_all}, "
        f"{format_bytes(available)} is available; choose a smaller grid"
    )


def command_atlas(arguments: argparse.Namespace) -> int:
    import os
    import sqlite3

    from . import atlas

    # Every check before anything is written; errors name the option.
    if arguments.K is None and not arguments.quick:
        raise CommandError("--K: required (a range like 2..20), unless --quick")
    if arguments.L is None and not arguments.quick:
        raise CommandError("--L: required (a range like 2..6), unless --quick")
    classes = (atlas.parse_range(arguments.K, "--K", 2) if arguments.K is not None
               else atlas.QUICK_CLASSES)
    layers = (atlas.parse_range(arguments.L, "--L", 1) if arguments.L is not None
              else atlas.QUICK_LAYERS)
    try:
        width = atlas._check_width(arguments.width, max(classes), "--width")
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from None
    if arguments.scheduler is not None and arguments.workers > 1:
        raise CommandError("--scheduler: exclusive with --workers (the cluster has its workers)")
    method = atlas.DEFAULT_METHOD if arguments.method is None else arguments.method
    if method not in atlas._atlas_methods():
        raise CommandError(f"--method: must be one of {', '.join(atlas._atlas_methods())}, "
                           f"got {method!r}")
    check_atlas_memory(arguments, classes, layers, width, method)
    check_output_folder(arguments.out, "--out")
    if arguments.store is not None:
        check_store_path(arguments.store)
    store = arguments.store if arguments.store is not None else f"{arguments.out}/atlas.sqlite"
    before = _atlas_temporary_files(arguments.out)
    points = os.path.join(arguments.out, "points")
    points_existed = os.path.isdir(points)
    try:
        result = atlas.run_atlas(
            classes, layers, per_class=arguments.n, lam=arguments.lam, width=width,
            method=method, seed=arguments.seed, workers=arguments.workers,
            scheduler=arguments.scheduler, store=arguments.store, out=arguments.out,
            quick=arguments.quick, max_starts=arguments.max_starts,
            time_budget=arguments.time_budget, max_iterations=arguments.max_iterations,
            patience=arguments.patience, scheduler_timeout=arguments.scheduler_timeout,
            progress=not arguments.no_progress, neighbours=arguments.neighbours,
        )
    except (OSError, sqlite3.Error) as error:
        # Every file of the atlas is written to a temporary name and renamed; remove what a
        # failed write left. The store keeps the cells finished so far: a rerun resumes.
        for path in _atlas_temporary_files(arguments.out) - before:
            path.unlink(missing_ok=True)
        if not points_existed:
            try:
                os.rmdir(points)
            except OSError:
                pass
        if isinstance(error, sqlite3.Error):
            raise CommandError(f"--store: {store!r}: {one_line(error)}; the cells finished so far "
                               f"are kept (a rerun resumes)") from None
        if not is_output_error(error, arguments.out):
            raise
        name = getattr(error, "filename", None) or arguments.out
        raise CommandError(f"--out: cannot write {str(name)!r}: {os_error_reason(error)}; the "
                           f"cells finished so far are kept in {store!r} (a rerun resumes)"
                           ) from None
    print(f"atlas: {len(result.cells)} cells ({result.computed} computed, {result.reused} "
          f"from the store {result.paths.get('store')})")
    for cell in result.flagged:
        print(f"  K={cell.num_classes} L={cell.num_layers}: the wider width was lower by more "
              f"than {atlas.BASIN_TOLERANCE:g} (width auto); kept width {cell.width}")
    for cell in result.kept_from_other_configurations:
        kept = cell.kept_config or {}
        print(f"  K={cell.num_classes} L={cell.num_layers}: kept the lowest of "
              f"{cell.search_count} stored searches, {kept.get('method')} seed "
              f"{kept.get('seed')} time budget {kept.get('time_budget')} s"
              f"{' with neighbour starts' if kept.get('neighbours') else ''} "
              f"(ratio {cell.ratio:.4f})")
    for name in ("csv", "json", "png"):
        if name in result.paths:
            print(f"wrote {result.paths[name]}")
    for failure in result.failed:
        print(f"error: K={failure['K']} L={failure['L']}: {failure['error']}", file=sys.stderr)
    return 1 if result.failed else 0


def _register_atlas(commands) -> None:
    sub = commands.add_parser(
        "atlas", help="best-known DUFM minima over a (K, L) grid against L_DNC and L_SRG",
        description="For every (K, L) search the deep ReLU UFM (λ on every block, n per class) "
                    "and write DIR/atlas.csv, atlas.json, atlas.png and the points "
                    "(docs/theory.md §4.3-4.6). Resumable from its SQLite store; each cell "
                    "shows the lowest of its stored searches (any seed or budget).",
    )
    sub.add_argument("--K", default=None, help="classes: a range 2..20, an integer or a list 2,3,5")
    sub.add_argument("--L", default=None, help="weight matrices: a range 2..6, an integer or a list")
    sub.add_argument("--n", type=integer_at_least(1), default=1,
                     help="samples per class >= 1 (default 1)")
    sub.add_argument("--lam", type=number(0.0, strict=True), default=0.004,
                     help="λ > 0 on every block (default 0.004)")
    sub.add_argument("--width", default="auto",
                     help="'auto' (max(2K, 10) and that + K, the lower kept) or an integer")
    sub.add_argument("--method", default=None,
                     help="search method of ufm.solvers.solve (default 'global'; a local method "
                          "such as kink_lbfgs is restarted --max-starts times)")
    sub.add_argument("--seed", type=integer_at_least(0), default=0, help="seed >= 0 (default 0)")
    sub.add_argument("--max-starts", type=integer_at_least(1), default=None,
                     help="starts per search, the given starts and constructions included "
                          "(with --neighbours, 1: each width runs only its first start)")
    sub.add_argument("--time-budget", type=number(0.0, strict=True), default=None,
                     help="seconds per search after which no new start begins")
    sub.add_argument("--max-iterations", type=integer_at_least(1), default=None,
                     help="iterations per start (default: the solver's)")
    sub.add_argument("--patience", type=integer_at_least(1), default=None,
                     help="global: stop after this many starts without a lower basin")
    sub.add_argument("--workers", type=integer_at_least(1), default=1,
                     help="local processes (default 1: in process)")
    sub.add_argument("--scheduler", default=None, help="dask.distributed scheduler tcp://HOST:8786")
    sub.add_argument("--scheduler-timeout", type=number(0.0, strict=True), default=10.0,
                     help="seconds to wait for the scheduler (default 10)")
    sub.add_argument("--store", default=None, help="SQLite store (default DIR/atlas.sqlite)")
    sub.add_argument("--quick", action="store_true",
                     help="K 2..6, L 2..5 (unless --K/--L) with a small per-cell budget")
    sub.add_argument("--neighbours", action="store_true",
                     help="also start from the stored best points of the neighbouring cells "
                          "(K±1, L) and (K, L-1), a class dropped, added or a layer inserted")
    sub.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_argument("--out", required=True, metavar="DIR", help="output folder")
    sub.set_defaults(handler=command_atlas)


_REGISTRARS.append(_register_atlas)


def describe_os_error(error: OSError) -> str:
    """One line for an ``OSError``: the path(s) it names and the reason in words."""
    reason = os_error_reason(error)
    name, other = getattr(error, "filename", None), getattr(error, "filename2", None)
    if name is not None and other is not None:
        return f"cannot move {str(name)!r} to {str(other)!r}: {reason}"
    if name is not None:
        return f"{str(name)!r}: {reason}"
    return reason


def report_error(error: BaseException, stream: Any = None) -> int:
    """Print ``error`` as one line on standard error and return exit status 2.

    Every user error is ``error: MESSAGE``; an ``OSError`` names its path and reason; a
    ``MemoryError`` says that memory ran out.
    """
    stream = sys.stderr if stream is None else stream
    if isinstance(error, MemoryError):
        detail = one_line(error)
        text = "error: not enough memory" + (f" ({detail})" if detail else "") + \
            "; choose a smaller problem"
    elif isinstance(error, OSError) and not isinstance(error, CommandError):
        text = f"error: {describe_os_error(error)}"
    else:
        text = f"error: {one_line(error)}"
    print(text, file=stream)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for a user error, as one line on stderr)."""
    try:
        parsed = run_parser(build_parser(), sys.argv[1:] if argv is None else list(argv))
        if isinstance(parsed, int):  # --help
            return parsed
        check_count_options(parsed)
        return int(parsed.handler(parsed) or 0)
    except BrokenPipeError:
        # The reader of stdout went away (``| head``): stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (CommandError, ValueError, TypeError, OSError, MemoryError) as error:
        return report_error(error)
