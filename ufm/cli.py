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


def add_count_argument(
    parser: argparse.ArgumentParser, flag: str, minimum: int, **kwargs: Any
) -> argparse.Action:
    """Add an integer option ``flag`` whose values below ``minimum`` :func:`main` rejects.

    The (dest, flag, minimum) triple is kept in the parser's default ``count_options``, so
    :func:`check_count_options` checks every count option of the command that was parsed.
    """
    action = parser.add_argument(flag, type=int, **kwargs)
    counts = tuple(parser.get_default("count_options") or ()) + ((action.dest, flag, minimum),)
    parser.set_defaults(count_options=counts)
    return action


def check_count_options(arguments: argparse.Namespace) -> None:
    """Raise :class:`CommandError` (one line naming the option) for a count below its minimum."""
    for dest, flag, minimum in getattr(arguments, "count_options", ()):
        value = getattr(arguments, dest, None)
        if value is not None and value < minimum:
            raise CommandError(f"{flag} must be an integer >= {minimum}, got {value}")


def _add_model_arguments(parser: argparse.ArgumentParser, model: str) -> None:
    add_count_argument(parser, "--K", 2, required=True, help="number of classes K >= 2")
    add_count_argument(parser, "--n", 1, required=True, help="samples per class n >= 1")
    parser.add_argument("--lam-h", type=float, required=True, help="λ_H, penalty on the features H₁")
    if model == "ufm":
        parser.add_argument("--lam-w", type=float, required=True, help="λ_W, penalty on W")
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
            type=parse_float_list,
            required=True,
            help="λ_1..λ_L, comma-separated, or one value for all layers",
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
    prediction = predicted_optimum(arguments.model, arguments)
    if arguments.json:
        print(json.dumps(prediction.to_dict(), indent=2))
    else:
        print(_format_prediction(prediction))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m ufm``."""
    parser = argparse.ArgumentParser(
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
    temporary.write_text(json.dumps(strict_json(data), indent=2, allow_nan=False))
    os.replace(temporary, json_path)
    png_path = reports.plot_solution_history(
        solution, result["predicted"]["optimal_loss"], folder / "loss_history.png",
        title=f"{result['model']}: {solution.method}, predicted optimum "
              f"({result['predicted_kind']}) against found",
    )
    return [str(json_path), str(png_path)]


def command_solve(arguments: argparse.Namespace) -> int:
    result = solve_and_compare(arguments.model, arguments)
    report = result.pop("_report")
    solution = result.pop("_solution")
    written = save_solve_result(result, solution, arguments.save) if arguments.save else []
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
        sub.add_argument("--time-budget", type=float, default=300.0,
                         help="global search: seconds before no new start is made (default 300)")
        add_count_argument(sub, "--workers", 1, default=1,
                           help="global search: starts run at once on local processes (default 1)")
        sub.add_argument("--lr", type=float, default=0.5, help="GD step size η (default 0.5)")
        add_count_argument(sub, "--max-iterations", 1, default=20000,
                           help="iteration budget >= 1 (default 20000)")
        sub.add_argument("--tolerance", type=float, default=1e-10, help="gradient-norm stop")
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


def load_array(path: str, what: str):
    """Load a ``.npy`` file, with errors that name the file and the problem."""
    import numpy as np

    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CommandError(f"{what} file {path!r} does not exist") from None
    except (ValueError, OSError) as error:
        raise CommandError(f"{what} file {path!r} is not a readable .npy array: {error}") from None
    if not isinstance(array, np.ndarray):
        raise CommandError(f"{what} file {path!r} holds several arrays; save one array with np.save")
    return array


def command_metrics(arguments: argparse.Namespace) -> int:
    from . import metrics

    features = load_array(arguments.features, "--features")
    labels = load_array(arguments.labels, "--labels")
    if features.ndim != 2:
        raise CommandError(f"--features file {arguments.features!r}: expected a 2-D array, "
                           f"got shape {features.shape}")
    if arguments.rows:
        features = features.T
    if labels.ndim != 1 or labels.shape[0] != features.shape[1]:
        hint = "" if arguments.rows else " (pass --rows if the file holds one sample per row)"
        raise CommandError(
            f"--labels file {arguments.labels!r}: expected shape ({features.shape[1]},) to match "
            f"the {features.shape[1]} samples of --features {features.shape}{hint}, "
            f"got {labels.shape}"
        )
    weights = load_array(arguments.weights, "--weights") if arguments.weights else None
    bias = load_array(arguments.bias, "--bias") if arguments.bias else None
    if bias is not None and weights is None:
        raise CommandError("--bias needs --weights (the classifier it belongs to)")
    try:
        values = metrics.all_metrics(features, labels, weights, bias,
                                     rank_rtol=arguments.rank_rtol, undefined="none")
    except (ValueError, TypeError) as error:
        raise CommandError(f"{arguments.features!r}: {error}") from None
    if arguments.json:
        print(json.dumps(strict_json(values), indent=2, allow_nan=False))
    else:
        width = max(len(key) for key in values)
        print(f"collapse metrics of {arguments.features} (d = {features.shape[0]}, "
              f"N = {features.shape[1]}), docs/theory.md §3")
        for key, value in values.items():
            shown = "–" if value is None else (f"{value:.6g}" if isinstance(value, float) else value)
            print(f"  {key:<{width}}  {shown}")
    return 0


def _register_metrics(commands) -> None:
    sub = commands.add_parser("metrics", help="collapse metrics of saved features (.npy)")
    sub.add_argument("--features", required=True, help=".npy file, shape (d, N) (or (N, d) with --rows)")
    sub.add_argument("--labels", required=True, help=".npy file of integer labels, shape (N,)")
    sub.add_argument("--weights", help=".npy file of the last layer W, shape (K, d)")
    sub.add_argument("--bias", help=".npy file of the bias b, shape (K,)")
    sub.add_argument("--rows", action="store_true", help="the features file holds one sample per row")
    sub.add_argument("--rank-rtol", type=float, default=None, help="relative tolerance of RANK/KAPPA")
    sub.add_argument("--json", action="store_true", help="print JSON keyed by metric ID")
    sub.set_defaults(handler=command_metrics)


_REGISTRARS.append(_register_metrics)


# --------------------------------------------------------------------------------------------
# metrics-demo
# --------------------------------------------------------------------------------------------


def command_metrics_demo(arguments: argparse.Namespace) -> int:
    from . import demo

    result = demo.run_metrics_demo(arguments.out, seed=arguments.seed, quiet=arguments.quiet)
    for path in result.paths:
        print(f"wrote {path}")
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


def command_atlas(arguments: argparse.Namespace) -> int:
    import os

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
    if arguments.n < 1:
        raise CommandError(f"--n: must be >= 1, got {arguments.n}")
    if not (arguments.lam > 0 and arguments.lam < float("inf")):
        raise CommandError(f"--lam: must be a finite number > 0, got {arguments.lam}")
    try:
        width = atlas._check_width(arguments.width, max(classes), "--width")
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from None
    if arguments.workers < 1:
        raise CommandError(f"--workers: must be >= 1, got {arguments.workers}")
    if arguments.scheduler is not None and arguments.workers > 1:
        raise CommandError("--scheduler: exclusive with --workers (the cluster has its workers)")
    if arguments.seed < 0:
        raise CommandError(f"--seed: must be >= 0, got {arguments.seed}")
    method = atlas.DEFAULT_METHOD if arguments.method is None else arguments.method
    if method not in atlas._atlas_methods():
        raise CommandError(f"--method: must be one of {', '.join(atlas._atlas_methods())}, "
                           f"got {method!r}")
    for option, value in (("--max-starts", arguments.max_starts),
                          ("--max-iterations", arguments.max_iterations),
                          ("--patience", arguments.patience)):
        if value is not None and value < 1:
            raise CommandError(f"{option}: must be >= 1, got {value}")
    if arguments.time_budget is not None and not arguments.time_budget > 0:
        raise CommandError(f"--time-budget: must be > 0, got {arguments.time_budget}")
    if os.path.exists(arguments.out) and not os.path.isdir(arguments.out):
        raise CommandError(f"--out: {arguments.out!r} is a file, expected a folder")
    if arguments.store is not None and os.path.isdir(arguments.store):
        raise CommandError(f"--store: {arguments.store!r} is a folder, expected a SQLite file")
    result = atlas.run_atlas(
        classes, layers, per_class=arguments.n, lam=arguments.lam, width=width,
        method=method, seed=arguments.seed, workers=arguments.workers,
        scheduler=arguments.scheduler, store=arguments.store, out=arguments.out,
        quick=arguments.quick, max_starts=arguments.max_starts,
        time_budget=arguments.time_budget, max_iterations=arguments.max_iterations,
        patience=arguments.patience, scheduler_timeout=arguments.scheduler_timeout,
        progress=not arguments.no_progress,
    )
    print(f"atlas: {len(result.cells)} cells ({result.computed} computed, {result.reused} "
          f"from the store {result.paths.get('store')})")
    for cell in result.flagged:
        print(f"  K={cell.num_classes} L={cell.num_layers}: the wider width was lower by more "
              f"than {atlas.BASIN_TOLERANCE:g} (width auto); kept width {cell.width}")
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
                    "(docs/theory.md §4.3-4.6). Resumable from its SQLite store.",
    )
    sub.add_argument("--K", default=None, help="classes: a range 2..20, an integer or a list 2,3,5")
    sub.add_argument("--L", default=None, help="weight matrices: a range 2..6, an integer or a list")
    sub.add_argument("--n", type=int, default=1, help="samples per class (default 1)")
    sub.add_argument("--lam", type=float, default=0.004, help="λ on every block (default 0.004)")
    sub.add_argument("--width", default="auto",
                     help="'auto' (max(2K, 10) and that + K, the lower kept) or an integer")
    sub.add_argument("--method", default=None,
                     help="search method of ufm.solvers.solve (default 'global'; a local method "
                          "such as kink_lbfgs is restarted --max-starts times)")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--max-starts", type=int, default=None, help="starts per search")
    sub.add_argument("--time-budget", type=float, default=None,
                     help="seconds per search after which no new start begins")
    sub.add_argument("--max-iterations", type=int, default=None,
                     help="iterations per start (default: the solver's)")
    sub.add_argument("--patience", type=int, default=None,
                     help="global: stop after this many starts without a lower basin")
    sub.add_argument("--workers", type=int, default=1, help="local processes (default 1: in process)")
    sub.add_argument("--scheduler", default=None, help="dask.distributed scheduler tcp://HOST:8786")
    sub.add_argument("--scheduler-timeout", type=float, default=10.0,
                     help="seconds to wait for the scheduler (default 10)")
    sub.add_argument("--store", default=None, help="SQLite store (default DIR/atlas.sqlite)")
    sub.add_argument("--quick", action="store_true",
                     help="K 2..6, L 2..5 (unless --K/--L) with a small per-cell budget")
    sub.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_argument("--out", required=True, metavar="DIR", help="output folder")
    sub.set_defaults(handler=command_atlas)


_REGISTRARS.append(_register_atlas)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for a user error)."""
    parser = build_parser()
    arguments = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        check_count_options(arguments)
        return int(arguments.handler(arguments) or 0)
    except (CommandError, ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of stdout went away (``| head``): stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
