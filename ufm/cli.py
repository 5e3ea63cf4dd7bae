"""Command line of ``ufm``: ``python -m ufm COMMAND``.

Commands
--------
predict {ufm,deep-linear,dufm}
    The predicted optimum of a model (THEORY.md §4) without solving.
solve {ufm,deep-linear,dufm}
    Solve the model numerically and print predicted against found.
metrics
    Every collapse metric of THEORY.md §3 of features saved from any framework.
metrics-demo
    A noisy collapsed configuration: the per-layer metric table and a plot against noise level.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence


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


def _add_model_arguments(parser: argparse.ArgumentParser, model: str) -> None:
    parser.add_argument("--K", type=int, required=True, help="number of classes K >= 2")
    parser.add_argument("--n", type=int, required=True, help="samples per class n >= 1")
    parser.add_argument("--lam-h", type=float, required=True, help="λ_H, penalty on the features H₁")
    if model == "ufm":
        parser.add_argument("--lam-w", type=float, required=True, help="λ_W, penalty on W")
        parser.add_argument("--d", type=int, default=None, help="feature dimension d >= K")
        parser.add_argument("--bias", action="store_true", help="unregularized bias b")
    else:
        parser.add_argument("--L", type=int, required=True, help="number of weight matrices L")
        parser.add_argument(
            "--lam-w",
            type=parse_float_list,
            required=True,
            help="λ_1..λ_L, comma-separated, or one value for all layers",
        )
        parser.add_argument("--width", type=int, default=None, help="width of every layer (>= K)")
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
    """The :class:`ufm.optima.PredictedOptimum` of the model the arguments describe."""
    from . import optima

    if model == "ufm":
        return optima.predict_ufm(
            arguments.K, arguments.n, arguments.lam_w, arguments.lam_h, bias=arguments.bias
        )
    function = optima.predict_dufm if model == "dufm" else optima.predict_deep_linear
    return function(arguments.K, arguments.L, arguments.n, arguments.lam_h, _layer_lambdas(arguments))


def _format_prediction(prediction) -> str:
    data = prediction.to_dict()
    lines = [f"predicted optimum of the {data['model']} model (THEORY.md §4)"]
    for key in ("num_classes", "num_layers", "per_class", "lam_h", "lam_w", "optimal_loss",
                "q_star", "threshold", "penalty_product", "is_zero"):
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
        prog="python -m ufm",
        description="Unconstrained-features models: predicted optima, solvers, collapse metrics.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser("predict", help="predicted optimum of a model, without solving")
    predict_models = predict.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, model in (("ufm", "ufm"), ("deep-linear", "deep_linear"), ("dufm", "dufm")):
        sub = predict_models.add_parser(name, help=f"the {name} model (THEORY.md §2, §4)")
        _add_model_arguments(sub, "ufm" if name == "ufm" else "deep")
        sub.set_defaults(handler=command_predict, model=model)

    for register in _REGISTRARS:
        register(commands)
    return parser


# Further commands add themselves here (see the functions below).
_REGISTRARS: list = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for a user error)."""
    parser = build_parser()
    arguments = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return int(arguments.handler(arguments) or 0)
    except (CommandError, ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
