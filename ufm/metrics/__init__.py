"""Collapse metrics as pure functions, one per named variant of docs/theory.md §3.

Conventions
-----------
- Features are columns, Z ∈ R^{d×N}, unless ``rows=True`` (every function takes it) says they
  are rows (N, d), as PyTorch gives them; labels are integers 0..K-1 of shape (N,). Every metric is
  computed in float64 whatever the input dtype. Inputs may be numpy arrays or torch tensors (CPU
  or CUDA): for a tensor the O(N d²) class statistics and the per-sample passes run with torch ops
  on the tensor's device in float64; only d×d, d×K and K-sized results move to numpy.
- The NC1 and NC2 metrics (and NC3.cos, NC3.dual, NC3.span) depend on the features only through
  their :class:`~ufm.statistics.ClassStatistics`. Each of them accepts either ``(features,
  labels)`` or a precomputed ``ClassStatistics`` as first argument (then ``labels`` is omitted), so
  that statistics accumulated in batches (:mod:`ufm.streaming`) are measured without the features.
- Given ``(features, labels)``, no metric forms the d×d within-class scatter unless it is the
  cheaper route: the traces, NC2 and NC3 need one O(N d) pass (means, counts, per-class sums of
  squares), NC1.pinv a second O(N d K) pass for S_W on the K − 1 between-class directions
  (``class_statistics(..., within="projection")``; ``within="auto"`` takes the d×d scatter only
  when 2·min(d, K − 1) ≥ d). NEG and the (H₁, W₁) BAL.weighted, which need Gram matrices of the
  features, form them only when they are needed; :func:`all_metrics` computes NEG only when asked
  (``negativity=True``) and takes the two passes of :mod:`ufm.metrics_accumulator` for the rest.
- Σ_W = S_W/N, Σ_B = (1/K)M̄M̄ᵀ, Σ_B^unc = (1/K)MMᵀ, Σ_T = Σ_W + Σ_B, μ_G = (1/K)M1_K (docs/theory.md
  §1.1); with unbalanced classes these are read as stated in :mod:`ufm.statistics`.
- A zero denominator raises :class:`UndefinedMetricError` (a ``ValueError``) naming the metric,
  e.g. all class means zero (the zero solution of a DUFM). Bad input (NaN/Inf, shape mismatches,
  empty classes) raises ``ValueError`` or ``TypeError`` naming the argument.
- Dictionary and JSON outputs use the metric IDs of docs/theory.md §3 as keys (:data:`METRIC_IDS`).

Layout
------
One module per metric family, named after its IDs (docs/theory.md §3): :mod:`~ufm.metrics.nc1`,
:mod:`~ufm.metrics.nc2`, :mod:`~ufm.metrics.nc3`, :mod:`~ufm.metrics.nc4`, :mod:`~ufm.metrics.err`
(ERR), :mod:`~ufm.metrics.neg` (NEG), :mod:`~ufm.metrics.bal` (BAL.*), :mod:`~ufm.metrics.rank`
(RANK, KAPPA); :mod:`~ufm.metrics.report` holds :func:`all_metrics`, :mod:`~ufm.metrics.layers`
:func:`layer_report`, :mod:`~ufm.metrics.common` the shared checks and numerics. Every public name
is importable from ``ufm.metrics`` (and from ``ufm``).
"""

from __future__ import annotations

from ..statistics import ClassStatistics, WithinProjection
from ..streaming import (
    ClassStatisticsAccumulator,
    WithinProjectionAccumulator,
    accumulate,
    accumulate_two_pass,
    class_statistics,
)
from .common import METRIC_IDS, UndefinedMetricError, default_rank_tolerance, _helmert_basis
from .rank import condition_number_nonzero, numerical_rank
from .nc1 import (
    nc1_class_distance_normalized_variance,
    nc1_pseudo_inverse,
    nc1_trace_ratio,
    nc1_trace_ratio_uncentered,
    nc1_within_total,
)
from .nc2 import (
    class_mean_gram,
    nc2_condition_number,
    nc2_condition_number_nonzero,
    nc2_orthogonal_frame_distance,
    nc2_simplex_etf_distance,
)
from .nc3 import CosineAlignment, nc3_cosine_alignment, nc3_self_duality_distance, nc3_span_residual
from .nc4 import nc4_nearest_class_center_agreement
from .err import FitError, fit_error
from .neg import negativity
from .bal import (
    Balancedness,
    ScalarBalancedness,
    balancedness,
    scalar_balancedness,
    weighted_balancedness,
)
from .report import all_metrics, _report_from_statistics
from .layers import LayerReport, LayerRow, layer_report

__all__ = [
    "METRIC_IDS",
    "Balancedness",
    "ClassStatistics",
    "ClassStatisticsAccumulator",
    "CosineAlignment",
    "FitError",
    "LayerReport",
    "LayerRow",
    "ScalarBalancedness",
    "UndefinedMetricError",
    "WithinProjection",
    "WithinProjectionAccumulator",
    "accumulate",
    "accumulate_two_pass",
    "all_metrics",
    "balancedness",
    "class_statistics",
    "condition_number_nonzero",
    "default_rank_tolerance",
    "fit_error",
    "layer_report",
    "nc1_class_distance_normalized_variance",
    "nc1_pseudo_inverse",
    "nc1_trace_ratio",
    "nc1_trace_ratio_uncentered",
    "nc1_within_total",
    "nc2_condition_number",
    "nc2_condition_number_nonzero",
    "nc2_orthogonal_frame_distance",
    "nc2_simplex_etf_distance",
    "nc3_cosine_alignment",
    "nc3_self_duality_distance",
    "nc3_span_residual",
    "nc4_nearest_class_center_agreement",
    "negativity",
    "numerical_rank",
    "scalar_balancedness",
    "weighted_balancedness",
]
