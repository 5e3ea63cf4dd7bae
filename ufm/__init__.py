"""ufm: unconstrained-features models, predicted optima, numerical solvers and collapse metrics.

Notation and formulas follow docs/theory.md (features are columns, shape (d, N); labels are integers
0..K-1 of shape (N,)); every computation is in float64.

``import ufm`` is the public face::

    import ufm

    model = ufm.DeepUFM(num_classes=3, per_class=2, widths=(6, 6, 6), lam_h=1e-3, lam_w=(1e-3,) * 3)
    predicted = ufm.predict(model)                 # the closed-form DNC optimum and its kind
    solution = ufm.solve(model, seed=0)            # the global search of ufm.solvers
    report = ufm.model_layer_report(model, solution.parameters)  # per-layer collapse metrics

Every name of :data:`__all__` is imported from its submodule on first use (module-level
``__getattr__``), so ``import ufm`` itself loads neither numpy, scipy, torch nor cvxpy. The
submodules (``ufm.models``, ``ufm.optima``, ``ufm.solvers``, ``ufm.metrics``, ...) stay
importable for everything that is not re-exported here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> submodule that defines it (relative to ``ufm``).
_EXPORTS: dict[str, str] = {}


def _export(module: str, *names: str) -> None:
    for name in names:
        if name in _EXPORTS:  # pragma: no cover - a mistake in the table below
            raise RuntimeError(f"ufm.{name} exported twice ({_EXPORTS[name]}, {module})")
        _EXPORTS[name] = module


# Models: the objectives and their parameter container.
_export("models", "UFM", "DeepLinearUFM", "DeepUFM", "LinearHead", "Parameters", "ObjectiveParts",
        "LayerFeatures")
# Predicted optima.
_export("optima", "predict", "predict_ufm", "predict_deep_linear", "predict_dufm", "predict_srg",
        "PredictedOptimum", "optimal_parameters")
# Solvers.
_export("solvers", "solve", "solve_with_restarts", "Solution", "RestartsResult", "History",
        "METHODS", "default_method")
# Streaming accumulators (features that do not fit in memory).
_export("streaming", "ClassStatisticsAccumulator", "WithinProjectionAccumulator", "accumulate",
        "accumulate_two_pass", "class_statistics")
# The whole report in two streaming passes.
_export("metrics_accumulator", "MetricsAccumulator", "stream_metrics")
# Collapse metrics (ufm.metrics.__all__ without the streaming names above).
_export("metrics", "METRIC_IDS", "Balancedness", "ClassStatistics", "CosineAlignment", "FitError",
        "LayerReport", "LayerRow", "ScalarBalancedness", "UndefinedMetricError", "WithinProjection",
        "all_metrics", "balancedness", "condition_number_nonzero", "default_rank_tolerance",
        "fit_error", "layer_report", "nc1_class_distance_normalized_variance",
        "nc1_pseudo_inverse", "nc1_trace_ratio", "nc1_trace_ratio_uncentered", "nc1_within_total",
        "nc2_condition_number", "nc2_condition_number_nonzero", "nc2_orthogonal_frame_distance",
        "nc2_simplex_etf_distance", "nc3_cosine_alignment", "nc3_self_duality_distance",
        "nc3_span_residual", "nc4_nearest_class_center_agreement", "negativity",
        "numerical_rank", "scalar_balancedness", "weighted_balancedness")
# Per-layer reports of a model's parameters.
_export("reports", "model_layer_report", "is_deep_neural_collapse", "DNCVerdict", "output_scale",
        "plot_solution_history")
# Loss conventions: the papers' hyperparameters and torch settings to and from the one convention.
_export("conventions", "to_paper_convention", "from_paper_convention", "PaperHyperparameters",
        "feature_penalty_to_lambda", "lambdas_from_torch_optimizer", "loss_scale")
# Labels and targets.
_export("labels", "balanced_labels", "labels_from_counts", "class_counts", "one_hot_targets",
        "plus_minus_one_targets", "validate_labels")
# Convex certificates (cvxpy is imported only when a certificate is computed).
_export("convex", "certify_ufm", "certify_linear_head", "ConvexCertificate")
# Atlas of best-known deep-UFM minima over (K, L).
_export("atlas", "run_atlas", "load_point", "AtlasResult")
# Collapse of any PyTorch model (torch is imported on first use of these names).
_export("torch_hooks", "collapse_report", "CollapseMonitor", "CollapseReport")
# The global search's basins.
_export("solvers", "Basin")

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ufm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see the names; at run time they load lazily
    from .atlas import AtlasResult, load_point, run_atlas
    from .torch_hooks import CollapseMonitor, CollapseReport, collapse_report
    from .conventions import (
        PaperHyperparameters,
        feature_penalty_to_lambda,
        from_paper_convention,
        lambdas_from_torch_optimizer,
        loss_scale,
        to_paper_convention,
    )
    from .convex import ConvexCertificate, certify_linear_head, certify_ufm
    from .labels import (
        balanced_labels,
        class_counts,
        labels_from_counts,
        one_hot_targets,
        plus_minus_one_targets,
        validate_labels,
    )
    from .metrics import (
        METRIC_IDS,
        Balancedness,
        ClassStatistics,
        CosineAlignment,
        FitError,
        LayerReport,
        LayerRow,
        ScalarBalancedness,
        UndefinedMetricError,
        WithinProjection,
        all_metrics,
        balancedness,
        condition_number_nonzero,
        default_rank_tolerance,
        fit_error,
        layer_report,
        nc1_class_distance_normalized_variance,
        nc1_pseudo_inverse,
        nc1_trace_ratio,
        nc1_trace_ratio_uncentered,
        nc1_within_total,
        nc2_condition_number,
        nc2_condition_number_nonzero,
        nc2_orthogonal_frame_distance,
        nc2_simplex_etf_distance,
        nc3_cosine_alignment,
        nc3_self_duality_distance,
        nc3_span_residual,
        nc4_nearest_class_center_agreement,
        negativity,
        numerical_rank,
        scalar_balancedness,
        weighted_balancedness,
    )
    from .models import (
        UFM,
        DeepLinearUFM,
        DeepUFM,
        LayerFeatures,
        LinearHead,
        ObjectiveParts,
        Parameters,
    )
    from .optima import (
        PredictedOptimum,
        optimal_parameters,
        predict,
        predict_deep_linear,
        predict_dufm,
        predict_srg,
        predict_ufm,
    )
    from .reports import (
        DNCVerdict,
        is_deep_neural_collapse,
        model_layer_report,
        output_scale,
        plot_solution_history,
    )
    from .solvers import (
        METHODS,
        Basin,
        History,
        RestartsResult,
        Solution,
        default_method,
        solve,
        solve_with_restarts,
    )
    from .metrics_accumulator import MetricsAccumulator, stream_metrics
    from .streaming import (
        ClassStatisticsAccumulator,
        WithinProjectionAccumulator,
        accumulate,
        accumulate_two_pass,
        class_statistics,
    )
