"""Collapse of any PyTorch model: forward hooks on named layers feeding float64 class statistics.

Two entry points measure the outputs of named submodules (names as in ``model.named_modules()``)
with the metrics of docs/theory.md §3:

- :func:`collapse_report` runs a model over a data loader (``torch.no_grad``, eval mode, the
  previous training/eval mode of every submodule restored afterwards) and returns a
  :class:`CollapseReport`;
- :class:`CollapseMonitor` stays attached to a model inside the user's own training loop:
  ``out = model(x); monitor.update(y)`` after each forward, ``monitor.report()`` when wanted.

Features
--------
A hooked output of shape (B, s_1, …, s_k) (samples as rows, PyTorch's batch-first layout) is
flattened to the B × d matrix of its samples, d = s_1⋯s_k, and measured as the feature matrix
Z ∈ R^{d×N} whose columns are the samples of every batch (docs/theory.md §1.1). With
``rows=False`` the batch is the *last* dimension instead: (s_1, …, s_k, B) gives Z's d × B block
directly (networks written on column features, as in docs/theory.md §2(e)).

Streaming
---------
Each layer feeds one :class:`~ufm.streaming.ClassStatisticsAccumulator` (float64 class sums, the
within-class scatter shifted by a per-class reference vector, class counts; docs/theory.md §3,
"Numerics") with torch ops on the device of the layer's output, so the O(B d²) work of a batch
never copies features to the host; only d×d, d×K and K-sized results move to numpy when the
report is made. One pass over the data gives every NC1–NC3 metric, NC1.pinv included, through
the d×d scatter S_W (``within="scatter"``, the default). For wide layers (a flattened feature map
of tens of thousands of entries) the d×d matrix is too large: ``within="projection"``
(:func:`collapse_report` only) runs a second pass over the loader that accumulates S_W on the
K − 1 between-class directions (:class:`~ufm.streaming.WithinProjectionAccumulator`), O(d K)
memory; ``within="traces"`` keeps neither and reports NC1.pinv as None.

With the class means M known only after the last sample, NC4.ncc and ERR need each sample a
second time. With ``within="projection"`` they are computed during the second pass; otherwise the
layers that have a classifier keep their (detached) features until the report, N × d entries in
the output's dtype on its device (``ncc=False`` turns this off, and NC4.ncc and ERR are None).

Metric keys are those of :func:`ufm.metrics.all_metrics` (:data:`ufm.metrics.METRIC_IDS` without
the BAL metrics), with the same meaning: for the same features, labels and classifier the two
agree to float64 rounding.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .arrays import as_float64_matrix, as_float64_vector, check_positive_scalar
from .labels import check_num_classes, validate_labels
from .metrics import (
    METRIC_IDS,
    UndefinedMetricError,
    condition_number_nonzero,
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
    numerical_rank,
)
from .statistics import ClassStatistics
from .streaming import ClassStatisticsAccumulator, WithinProjectionAccumulator, chunk_columns

__all__ = ["CollapseMonitor", "CollapseReport", "collapse_report"]

#: ``within`` options of :class:`CollapseMonitor` and of :func:`collapse_report`.
MONITOR_WITHIN = ("scatter", "traces")
REPORT_WITHIN = ("scatter", "projection", "traces")

#: Layer names shown in the error for an unknown layer before the list is cut.
NAMES_SHOWN = 20

#: Keys of the report: every metric ID of :func:`ufm.metrics.all_metrics` (no BAL metrics).
REPORT_KEYS: tuple[str, ...] = tuple(key for key in METRIC_IDS if not key.startswith("BAL."))


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A metric value as a plain Python int, float or None (numpy scalars converted)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value)


def _format_value(value: Any, precision: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{precision}g}"


@dataclass(frozen=True)
class CollapseReport:
    """Collapse metrics of the hooked layers of a PyTorch model (docs/theory.md §3).

    Attributes
    ----------
    layers : dict
        Layer name (as in ``model.named_modules()``) → metric ID → value, in the order the layers
        were given; the IDs of :func:`ufm.metrics.all_metrics` in :data:`ufm.metrics.METRIC_IDS`
        order. Values are float (``math.inf`` for NC2.kappa when rank M < K), int (RANK) or None
        (not applicable, or undefined with a note).
    widths : dict
        Layer name → d, the number of features of one sample (the flattened output size).
    counts : tuple of int
        Samples n_c of each class c = 0..K-1.
    notes : tuple of str
        Why a metric is None, prefixed with the layer name.
    statistics : dict
        Layer name → :class:`~ufm.statistics.ClassStatistics` the metrics were computed from
        (float64 class means (d, K), counts, within-class sums of squares, and S_W (d, d) or its
        projection), for further metrics; not part of :meth:`to_dict`.
    """

    layers: dict[str, dict[str, float | int | None]]
    widths: dict[str, int]
    counts: tuple[int, ...]
    notes: tuple[str, ...] = ()
    statistics: dict[str, ClassStatistics] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def num_classes(self) -> int:
        """K."""
        return len(self.counts)

    @property
    def num_samples(self) -> int:
        """N = Σ_c n_c, the samples measured."""
        return int(sum(self.counts))

    def __getitem__(self, layer: str) -> dict[str, float | int | None]:
        """The metrics of one layer, metric ID → value."""
        try:
            return self.layers[layer]
        except KeyError:
            raise KeyError(
                f"no layer {layer!r} in this report; its layers are {list(self.layers)}"
            ) from None

    def to_dict(self) -> dict[str, dict[str, float | int | None]]:
        """Layer name → metric ID → value (a copy; plain Python numbers and None)."""
        return {name: dict(metrics) for name, metrics in self.layers.items()}

    def to_json(self, indent: int | None = None) -> str:
        """JSON text of :meth:`to_dict` (an infinite NC2.kappa is written as ``Infinity``)."""
        return json.dumps(self.to_dict(), indent=indent)

    def columns(self) -> list[str]:
        """Metric IDs with a value in at least one layer (:data:`ufm.metrics.METRIC_IDS` order)."""
        return [
            key
            for key in REPORT_KEYS
            if any(metrics.get(key) is not None for metrics in self.layers.values())
        ]

    def format_table(self, columns: Sequence[str] | None = None, precision: int = 4) -> str:
        """Aligned text table, one line per layer, "–" where a metric is None.

        Parameters
        ----------
        columns : sequence of str, optional
            Metric IDs to show (default :meth:`columns`).
        precision : int
            Significant digits.
        """
        keys = list(self.columns() if columns is None else columns)
        header = ["layer", "d", *keys]
        body = [
            [name, str(self.widths[name])]
            + [_format_value(metrics.get(key), precision) for key in keys]
            for name, metrics in self.layers.items()
        ]
        widths = [max(len(line[j]) for line in [header, *body]) for j in range(len(header))]
        lines = [
            "  ".join(
                cell.ljust(width) if j == 0 else cell.rjust(width)
                for j, (cell, width) in enumerate(zip(line, widths))
            )
            for line in [header, *body]
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        lines.append(f"N = {self.num_samples}, K = {self.num_classes}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------
def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _unknown_layer_error(name: Any, modules: Mapping[str, nn.Module]) -> ValueError:
    names = list(modules)
    shown = ", ".join(repr(item) for item in names[:NAMES_SHOWN])
    if len(names) > NAMES_SHOWN:
        shown += f", … ({len(names) - NAMES_SHOWN} more)"
    close = difflib.get_close_matches(str(name), [str(item) for item in names], n=3)
    hint = f"; did you mean {', '.join(repr(item) for item in close)}?" if close else ""
    return ValueError(
        f"layers: no module named {name!r} in the model{hint} "
        f"(names as in model.named_modules(): {shown})"
    )


def _check_layers(layers: Any, modules: Mapping[str, nn.Module]) -> tuple[str, ...]:
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, Iterable):
        raise TypeError(
            f"layers must be a list of module names (as in model.named_modules()), got {layers!r}"
        )
    names = list(layers)
    if not names:
        raise ValueError("layers must name at least one module")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"layers must hold module names (str), got {name!r}")
        if name not in modules:
            raise _unknown_layer_error(name, modules)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"layers names {duplicates} more than once")
    return tuple(names)


def _weight_of(module: nn.Module, what: str, num_classes: int) -> tuple[Any, Any]:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(
            f"{what} ({type(module).__name__}) has no .weight tensor to use as the classifier"
        )
    bias = getattr(module, "bias", None)
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"{what}: .bias must be a tensor or None, got {type(bias).__name__}")
    _check_classifier_rows(weight, bias, what, num_classes)
    return weight, bias


def _check_classifier_rows(weight: Any, bias: Any, what: str, num_classes: int) -> None:
    shape = tuple(weight.shape) if hasattr(weight, "shape") else np.shape(weight)
    if len(shape) != 2 or shape[0] != num_classes:
        raise ValueError(
            f"{what}: the weight must have shape (K, d) with K = {num_classes} rows (one per "
            f"class), got shape {shape}"
        )
    if bias is not None:
        bias_shape = tuple(bias.shape) if hasattr(bias, "shape") else np.shape(bias)
        if bias_shape != (num_classes,):
            raise ValueError(
                f"{what}: the bias must have shape (K,) = ({num_classes},), got {bias_shape}"
            )


def _check_classifier(
    classifier: Any,
    layers: tuple[str, ...],
    modules: Mapping[str, nn.Module],
    num_classes: int,
) -> dict[str, Callable[[], tuple[Any, Any]]]:
    """Layer name → a function returning the current (W, b) of its classifier (b may be None)."""
    if classifier is None:
        return {}
    if not isinstance(classifier, Mapping):
        raise TypeError(
            "classifier must be a mapping {layer name: classifier}, the classifier a module name, "
            f"a module, (W, b) or W; got {type(classifier).__name__}"
        )
    readers: dict[str, Callable[[], tuple[Any, Any]]] = {}
    for layer, spec in classifier.items():
        if layer not in layers:
            raise ValueError(
                f"classifier names the layer {layer!r}, which is not one of layers {list(layers)}"
            )
        what = f"classifier[{layer!r}]"
        if isinstance(spec, str):
            if spec not in modules:
                raise _unknown_layer_error(spec, modules)
            module = modules[spec]
            _weight_of(module, f"{what} = module {spec!r}", num_classes)
            readers[layer] = lambda module=module, what=what, spec=spec: _weight_of(
                module, f"{what} = module {spec!r}", num_classes
            )
        elif isinstance(spec, nn.Module):
            _weight_of(spec, what, num_classes)
            readers[layer] = lambda module=spec, what=what: _weight_of(module, what, num_classes)
        else:
            if isinstance(spec, (tuple, list)):
                if len(spec) not in (1, 2):
                    raise ValueError(
                        f"{what} must be (W,) or (W, b), got a sequence of {len(spec)} items"
                    )
                weight, bias = spec[0], (spec[1] if len(spec) == 2 else None)
            else:
                weight, bias = spec, None
            _check_classifier_rows(weight, bias, what, num_classes)
            readers[layer] = lambda weight=weight, bias=bias: (weight, bias)
    return readers


def _check_choice(value: Any, options: Sequence[str], name: str) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_rank_rtol(value: Any) -> float | None:
    if value is None:
        return None
    number = check_positive_scalar(value, "rank_rtol")
    if number >= 1:
        raise ValueError(f"rank_rtol must be < 1 (a tolerance relative to s_1), got {number}")
    return number


# ---------------------------------------------------------------------------------------------
# per-layer state
# ---------------------------------------------------------------------------------------------
def _flatten(output: torch.Tensor, rows: bool, name: str) -> torch.Tensor:
    """The (d, B) feature block of one hooked output (a view where the layout allows)."""
    if output.dim() == 0:
        raise ValueError(
            f"layer {name!r} returned a 0-dimensional tensor; expected a batch of outputs "
            "(B, …) with samples along the first dimension"
            + ("" if rows else " (last dimension with rows=False)")
        )
    if output.is_complex():
        raise TypeError(f"layer {name!r} returned complex values (dtype {output.dtype})")
    if rows:
        return output.reshape(output.shape[0], -1).T
    return output.reshape(-1, output.shape[-1])


def _largest_eigenvalue(symmetric: np.ndarray) -> float:
    return float(max(np.linalg.eigvalsh(0.5 * (symmetric + symmetric.T))[-1], 0.0))


class _LayerState:
    """Streaming state of one hooked layer."""

    def __init__(self, num_classes: int, *, scatter: bool, keep: bool) -> None:
        self.accumulator = ClassStatisticsAccumulator(num_classes, scatter=scatter)
        self.projection: WithinProjectionAccumulator | None = None
        self.has_negative = False
        self.negative_gram: torch.Tensor | None = None  # Σ min(z, 0) min(z, 0)ᵀ, with scatter
        self.kept: list[tuple[torch.Tensor, np.ndarray]] | None = [] if keep else None
        self.agreements = 0  # NC4 and ERR sums of a second pass
        self.residual = 0.0
        self.classifier: tuple[np.ndarray, np.ndarray] | None = None  # (W, b) of a second pass

    def add(self, block: torch.Tensor, labels: np.ndarray) -> None:
        """First pass: class statistics, the negative part's Gram matrix, kept features."""
        self.accumulator.update(block, labels)
        if bool((block < 0).any()):
            self.has_negative = True
            if self.accumulator.with_scatter:
                self._add_negative_gram(block)
        if self.kept is not None:
            self.kept.append((block, labels))

    def _add_negative_gram(self, block: torch.Tensor) -> None:
        dimension, size = block.shape
        if self.negative_gram is None:
            self.negative_gram = torch.zeros(
                (dimension, dimension), dtype=torch.float64, device=block.device
            )
        step = chunk_columns(dimension)
        for start in range(0, size, step):
            chunk = block[:, start : start + step].to(torch.float64).clamp(max=0.0)
            self.negative_gram.addmm_(chunk, chunk.T)

    def add_second_pass(self, block: torch.Tensor, labels: np.ndarray) -> None:
        """Second pass: S_W on the between-class directions, NC4 and ERR sums."""
        self.projection.update(block, labels)
        if self.classifier is not None:
            agreements, residual = _classifier_sums(
                block, labels, self.projection.statistics.means, *self.classifier
            )
            self.agreements += agreements
            self.residual += residual

    def statistics(self) -> ClassStatistics:
        if self.projection is not None:
            return self.projection.finalize()
        return self.accumulator.finalize()


def _classifier_sums(
    block: torch.Tensor,
    labels: np.ndarray,
    means: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
) -> tuple[int, float]:
    """For one (d, B) block: #{i : argmin_c ‖z_i − μ_c‖ = argmax_c (Wz_i + b)_c} and
    ‖WZ + b1ᵀ − Y‖_F², in float64 on the block's device."""
    size = block.shape[1]
    fraction = nc4_nearest_class_center_agreement(
        block, weights=weight, bias=bias, class_means=means
    )
    agreements = int(round(fraction * size))
    device = block.device
    scores = torch.as_tensor(weight, device=device) @ block.to(torch.float64)
    scores += torch.as_tensor(bias, device=device)[:, None]
    rows = torch.as_tensor(labels, device=device)
    scores[rows, torch.arange(size, device=device)] -= 1.0
    return agreements, float((scores * scores).sum())


# ---------------------------------------------------------------------------------------------
# metrics of one layer
# ---------------------------------------------------------------------------------------------
def _layer_metrics(
    stats: ClassStatistics,
    state: _LayerState,
    classifier: tuple[np.ndarray, np.ndarray | None] | None,
    sums: tuple[int, float] | None,
    *,
    center: bool | None,
    rank_rtol: float | None,
    undefined: str,
    notes: list[str],
    prefix: str,
) -> dict[str, Any]:
    """The :func:`ufm.metrics.all_metrics` dictionary of one layer from its streamed state."""
    results: dict[str, Any] = {}

    def evaluate(keys: Sequence[str], compute: Callable[[], Any]) -> None:
        try:
            value = compute()
        except UndefinedMetricError as error:
            if undefined == "raise":
                raise UndefinedMetricError(f"{prefix}{error}") from error
            for key in keys:
                results[key] = None
            notes.append(f"{prefix}{error}")
            return
        values = [value] if len(keys) == 1 else list(value)
        for key, item in zip(keys, values):
            results[key] = item

    if classifier is not None:
        weight, bias = classifier
        centering = (bias is not None) if center is None else center
    else:
        weight = bias = None
        centering = bool(center)
    for key, function in (
        ("NC1.tr_unc", nc1_trace_ratio_uncentered),
        ("NC1.tr", nc1_trace_ratio),
        ("NC1.wt", nc1_within_total),
    ):
        evaluate([key], lambda function=function: function(stats))
    if stats.within_scatter is None and stats.within_projection is None:
        results["NC1.pinv"] = None
        notes.append(f"{prefix}NC1.pinv: not computed (within='traces' keeps no S_W)")
    else:
        evaluate(["NC1.pinv"], lambda: nc1_pseudo_inverse(stats))
    if np.all(stats.counts >= 2):
        evaluate(["NC1.cdnv"], lambda: nc1_class_distance_normalized_variance(stats))
    else:
        results["NC1.cdnv"] = None
    evaluate(["NC2.kappa"], lambda: nc2_condition_number(stats))
    evaluate(
        ["NC2.kappa_nz"], lambda: nc2_condition_number_nonzero(stats, center=centering)
    )
    evaluate(["NC2.orth"], lambda: nc2_orthogonal_frame_distance(stats))
    evaluate(["NC2.etf"], lambda: nc2_simplex_etf_distance(stats))
    for key in ("NC3.cos", "NC3.cos_min", "NC3.dual", "NC3.span", "NC4.ncc"):
        results[key] = None
    results["KAPPA"] = results["ERR"] = results["ERR.data"] = None
    evaluate(["NEG"], lambda: _negativity(stats, state, notes, prefix))
    results["RANK"] = numerical_rank(stats.means, rank_rtol)
    if weight is not None:

        def cosines() -> tuple[float, float]:
            alignment = nc3_cosine_alignment(stats, weights=weight, center=centering)
            return alignment.mean, alignment.minimum

        evaluate(["NC3.cos", "NC3.cos_min"], cosines)
        evaluate(
            ["NC3.dual"], lambda: nc3_self_duality_distance(stats, weights=weight, center=centering)
        )
        evaluate(["NC3.span"], lambda: nc3_span_residual(stats, weights=weight))
        evaluate(["KAPPA"], lambda: condition_number_nonzero(weight, rank_rtol))
        if sums is not None:
            agreements, residual = sums
            results["NC4.ncc"] = agreements / stats.num_samples
            results["ERR"] = math.sqrt(residual)
            results["ERR.data"] = residual / (2.0 * stats.num_samples)
    return {key: _plain(results[key]) for key in REPORT_KEYS if key in results}


def _negativity(
    stats: ClassStatistics, state: _LayerState, notes: list[str], prefix: str
) -> float | None:
    """NEG = ‖Z − σ(Z)‖_op/‖Z‖_op = √(λ_max(Σ min(z,0)min(z,0)ᵀ)/λ_max(ZZᵀ)) (σ = ReLU)."""
    if stats.within_scatter is not None:
        denominator = _largest_eigenvalue(stats.second_moment)
    else:
        nonzero = bool(np.any(stats.means != 0) or np.any(stats.within_sum_of_squares > 0))
        denominator = 1.0 if nonzero else 0.0
    if denominator == 0:
        raise UndefinedMetricError("NEG: the layer's output is zero, so ‖Z‖_op = 0")
    if not state.has_negative:
        return 0.0
    if state.negative_gram is None:
        notes.append(f"{prefix}NEG: needs the d×d second moment (within='scatter')")
        return None
    gram = np.asarray(state.negative_gram.detach().cpu().numpy(), dtype=np.float64)
    return math.sqrt(_largest_eigenvalue(gram) / denominator)


# ---------------------------------------------------------------------------------------------
# the monitor
# ---------------------------------------------------------------------------------------------
class CollapseMonitor:
    """Collapse metrics of named layers, streamed over the forwards of a training loop.

    Forward hooks on the named modules hold the output of the last forward pass (detached and
    copied: no autograd graph is kept alive, and an in-place operation after the layer, such as
    ``ReLU(inplace=True)``, does not change it). ``update(labels)`` adds that batch to each
    layer's float64 class statistics, on the device of the layer's output; ``report()`` computes
    the metrics of every sample added since the last ``reset()``. The model's training/eval mode
    is not touched, so the monitor measures whatever the forwards compute (train mode included).

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    layers : sequence of str
        Names of the modules to measure, as in ``model.named_modules()`` ("" is the model itself);
        a single str is one layer. Each module's output must be a tensor of shape (B, …) (samples
        as rows, flattened to (B, d)), or (…, B) with ``rows=False``.
    num_classes : int
        K ≥ 2; labels lie in 0..K-1.
    classifier : mapping, optional
        Layer name → the linear classifier acting on that layer's (flattened) features, for
        NC3.cos, NC3.dual, NC3.span, KAPPA, NC4.ncc and ERR: a module name (its ``.weight``
        (K, d) and ``.bias`` (K,) or None are read at report time), a module, a pair (W, b), a
        1-tuple (W,) or W alone (array or tensor of shape (K, d); bias 0).
    rows : bool
        Samples along the first dimension of each output (default, PyTorch's layout); False:
        along the last one.
    within : {"scatter", "traces"}
        Accumulate the d×d within-class scatter (default; O(B d²) per batch, O(d²) memory, gives
        NC1.pinv and NEG), or only class sums and sums of squares (O(B d), O(K d); NC1.pinv None,
        NEG None for a layer with negative entries).
    ncc : bool
        Keep the features of layers with a classifier until the report, for NC4.ncc and ERR
        (default; N × d entries per such layer, in the output's dtype on its device). False:
        NC4.ncc, ERR and ERR.data are None.
    center : bool, optional
        Centre the class means in NC2.kappa_nz, NC3.cos and NC3.dual. Default: as
        :func:`ufm.metrics.all_metrics`, centre iff the layer's classifier has a bias.
    rank_rtol : float, optional
        Relative tolerance of RANK and KAPPA (default max(shape)·eps).
    undefined : {"none", "raise"}
        A metric with a zero denominator is None with a note (default) or raises
        :class:`ufm.metrics.UndefinedMetricError`.

    Notes
    -----
    Use::

        layers = ["fc1", "relu2"]
        with CollapseMonitor(model, layers, num_classes=K, classifier={"relu2": "fc3"}) as monitor:
            for epoch in range(epochs):
                monitor.reset()
                for x, y in loader:
                    loss = criterion(model(x), y)
                    monitor.update(y)
                    ...
                print(monitor.report())

    ``update`` reads the outputs of the forward passes since the previous ``update``: when a
    hooked module ran more than once in between (a second forward, a module called twice), its
    last output is used. When the model trains between forwards, the statistics mix features of
    different parameter values (a running measurement over the epoch, as training logs usually
    are); a report of one fixed model is :func:`collapse_report`. A
    classifier given as a module (or its parameter tensors) is read when ``report()`` is called.
    ``close()`` removes the hooks (also on leaving a ``with`` block); the statistics stay
    readable.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        num_classes: int,
        classifier: Mapping[str, Any] | None = None,
        *,
        rows: bool = True,
        within: str = "scatter",
        ncc: bool = True,
        center: bool | None = None,
        rank_rtol: float | None = None,
        undefined: str = "none",
    ) -> None:
        self._model = _check_model(model)
        self.num_classes = check_num_classes(num_classes)
        modules = dict(model.named_modules())
        self.layers = _check_layers(layers, modules)
        self._classifiers = _check_classifier(classifier, self.layers, modules, self.num_classes)
        self.rows = _check_flag(rows, "rows")
        self.within = _check_choice(within, MONITOR_WITHIN, "within")
        self.ncc = _check_flag(ncc, "ncc")
        if center is not None:
            center = _check_flag(center, "center")
        self.center = center
        self.rank_rtol = _check_rank_rtol(rank_rtol)
        self.undefined = _check_choice(undefined, ("none", "raise"), "undefined")
        self._held: dict[str, torch.Tensor] = {}
        self._calls: dict[str, int] = {name: 0 for name in self.layers}
        self._not_tensor: dict[str, type] = {}
        self._second_pass = False
        self._keep = self.ncc
        self.reset()
        self._handles = [
            modules[name].register_forward_hook(self._hook(name)) for name in self.layers
        ]
        self._closed = False

    # -- hooks -----------------------------------------------------------------------------------
    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self._calls[name] += 1
            if isinstance(output, torch.Tensor):
                self._not_tensor.pop(name, None)
                self._held[name] = output.detach().clone()
            else:
                self._held.pop(name, None)
                self._not_tensor[name] = type(output)

        return hook

    def _clear_held(self) -> None:
        self._held.clear()
        self._not_tensor.clear()
        for name in self._calls:
            self._calls[name] = 0

    # -- state -----------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once :meth:`close` removed the hooks."""
        return self._closed

    @property
    def counts(self) -> np.ndarray:
        """Samples added per class since the last reset, shape (K,)."""
        return self._counts.copy()

    @property
    def num_samples(self) -> int:
        """Samples added since the last reset."""
        return int(self._counts.sum())

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"CollapseMonitor(layers={list(self.layers)}, K={self.num_classes}, "
            f"N={self.num_samples}, within={self.within!r}, {state})"
        )

    def reset(self) -> None:
        """Forget every sample added (the hooks stay); e.g. at the start of each epoch."""
        self._states = {
            name: _LayerState(
                self.num_classes,
                scatter=self.within == "scatter",
                keep=self._keep and name in self._classifiers,
            )
            for name in self.layers
        }
        self._counts = np.zeros(self.num_classes, dtype=np.int64)
        self._failure: str | None = None
        self._second_pass = False
        self._clear_held()

    def close(self) -> None:
        """Remove the forward hooks (idempotent); the statistics remain for :meth:`report`."""
        for handle in getattr(self, "_handles", ()):
            handle.remove()
        self._handles = []
        self._clear_held()
        self._closed = True

    def __enter__(self) -> "CollapseMonitor":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- update ----------------------------------------------------------------------------------
    def update(self, labels: Any) -> "CollapseMonitor":
        """Add the batch of the last forward pass, whose samples have classes ``labels``.

        Parameters
        ----------
        labels : array_like or torch.Tensor, shape (B,)
            Classes 0..K-1 of the B samples of the forward pass (any device).

        Returns
        -------
        CollapseMonitor
            ``self``.

        Raises
        ------
        RuntimeError
            If the monitor is closed, no hooked layer ran since the previous ``update`` (no
            forward pass), or some hooked layers did not run, or an earlier update failed
            part-way (then :meth:`reset`).
        TypeError
            If a hooked layer returned something else than a tensor (a tuple, a dict), or the
            labels are not integers.
        ValueError
            If the number of labels differs from a layer's batch size, labels lie outside
            0..K-1, or a layer's output holds NaN or Inf.
        """
        if self._closed:
            raise RuntimeError("update() on a closed CollapseMonitor (its hooks are removed)")
        if not any(self._calls.values()):
            self._clear_held()
            raise RuntimeError(
                "update() without a preceding forward pass: none of the hooked layers "
                f"{list(self.layers)} ran since the last update(); call model(x) first"
            )
        self._consume(labels)
        return self

    def _consume(self, labels: Any, *, strict: bool = False, where: str = "") -> None:
        """Check the held outputs and the labels of one forward pass, then add them."""
        try:
            if self._failure is not None:
                raise RuntimeError(
                    f"an earlier update() failed part-way ({self._failure}); call reset()"
                )
            missing = [name for name in self.layers if self._calls[name] == 0]
            if missing:
                raise RuntimeError(
                    f"{where}layer(s) {missing} did not run in the forward pass (hooked layers "
                    "must all run in every forward that is added)"
                )
            for name, kind in self._not_tensor.items():
                raise TypeError(
                    f"{where}layer {name!r} returned a {kind.__module__}.{kind.__qualname__}, "
                    "not a tensor; hook a module whose output is a single tensor of shape (B, …)"
                )
            if strict:
                repeated = {name: n for name, n in self._calls.items() if n > 1}
                if repeated:
                    raise ValueError(
                        f"{where}layer(s) ran more than once in one forward pass {repeated}; "
                        "the output to measure is ambiguous"
                    )
            label_array = validate_labels(
                labels, self.num_classes, min_per_class=0, name=f"{where}labels"
            )
            blocks = {}
            for name in self.layers:
                output = self._held[name]
                block = _flatten(output, self.rows, name)
                if block.shape[1] != label_array.shape[0]:
                    axis = "first" if self.rows else "last"
                    raise ValueError(
                        f"{where}labels has {label_array.shape[0]} entries but layer {name!r} "
                        f"returned outputs of shape {tuple(output.shape)}, a batch of "
                        f"{block.shape[1]} samples (along the {axis} dimension)"
                    )
                if block.shape[0] == 0:
                    raise ValueError(
                        f"{where}layer {name!r} returned outputs of shape {tuple(output.shape)}: "
                        "no features"
                    )
                finite = torch.isfinite(block)
                if not bool(finite.all()):
                    bad = int(finite.numel() - finite.sum())
                    raise ValueError(
                        f"{where}layer {name!r}: the output holds {bad} NaN or Inf entries "
                        f"(shape {tuple(output.shape)}); expected finite features"
                    )
                blocks[name] = block
            try:
                for name, block in blocks.items():
                    state = self._states[name]
                    if self._second_pass:
                        state.add_second_pass(block, label_array)
                    else:
                        state.add(block, label_array)
            except Exception as error:  # other layers may hold this batch already
                self._failure = f"layer {name!r}: {error}"
                if isinstance(error, ValueError):
                    raise ValueError(f"{where}layer {name!r}: {error}") from error
                raise
            if not self._second_pass:
                self._counts += np.bincount(label_array, minlength=self.num_classes)
        finally:
            self._clear_held()

    # -- two passes (collapse_report) ----------------------------------------------------------
    def _start_second_pass(self) -> None:
        """Switch to the projection pass: S_W on the between-class directions, NC4 and ERR."""
        self._check_counts()
        for name, state in self._states.items():
            state.projection = WithinProjectionAccumulator(state.accumulator.finalize())
            if name in self._classifiers and self.ncc:
                weight, bias = self._classifier_arrays(name, state.projection.dimension)
                state.classifier = (weight, np.zeros(self.num_classes) if bias is None else bias)
        self._second_pass = True

    # -- report ----------------------------------------------------------------------------------
    def _check_counts(self) -> None:
        if self._failure is not None:
            raise RuntimeError(
                f"an earlier update() failed part-way ({self._failure}); call reset()"
            )
        if self.num_samples == 0:
            raise ValueError(
                "no samples: call update(labels) after each forward pass before report()"
            )
        empty = np.flatnonzero(self._counts == 0)
        if empty.size:
            raise ValueError(
                f"labels: every class 0..{self.num_classes - 1} needs at least one sample; "
                f"class {int(empty[0])} received none among the {self.num_samples} samples"
            )

    def _classifier_arrays(self, name: str, dimension: int) -> tuple[np.ndarray, np.ndarray | None]:
        weight, bias = self._classifiers[name]()
        what = f"classifier[{name!r}]"
        matrix = as_float64_matrix(weight, f"{what} weight")
        if matrix.shape != (self.num_classes, dimension):
            raise ValueError(
                f"{what}: the weight has shape {matrix.shape} but layer {name!r} has d = "
                f"{dimension} features; expected (K, d) = ({self.num_classes}, {dimension})"
            )
        vector = None if bias is None else as_float64_vector(bias, f"{what} bias", self.num_classes)
        return matrix, vector

    def report(self) -> CollapseReport:
        """The collapse metrics of every sample added since the last reset.

        Returns
        -------
        CollapseReport
            Per layer, the metric IDs of :func:`ufm.metrics.all_metrics` computed from the
            streamed float64 class statistics: NC1.tr_unc = tr Σ_W/tr Σ_B^unc, NC1.tr =
            tr Σ_W/tr Σ_B, NC1.pinv = (1/K)tr(Σ_W Σ_B^†), NC1.wt = tr Σ_W/tr Σ_T, NC1.cdnv;
            NC2.kappa = s_1(M)/s_K(M), NC2.kappa_nz, NC2.orth = ‖MᵀM/‖MᵀM‖_F − I_K/√K‖_F,
            NC2.etf; RANK of M; NEG of the features read as pre-activations; with a classifier
            (W, b): NC3.cos, NC3.cos_min, NC3.dual = ‖W/‖W‖_F − Mᵀ/‖M‖_F‖_F, NC3.span,
            KAPPA = KAPPA(W), NC4.ncc = (1/N)Σ_i 1[argmin_c‖z_i − μ_c‖ = argmax_c(Wz_i + b)_c],
            ERR = ‖WZ + b1ᵀ − Y‖_F and ERR.data = ERR²/(2N) (docs/theory.md §1.1, §3).

        Raises
        ------
        ValueError
            If no samples were added, a class has none, or a classifier's shape does not match
            its layer.
        """
        self._check_counts()
        notes: list[str] = []
        metrics: dict[str, dict[str, Any]] = {}
        widths: dict[str, int] = {}
        statistics: dict[str, ClassStatistics] = {}
        for name in self.layers:
            state = self._states[name]
            stats = state.statistics()
            classifier = None
            sums = None
            if name in self._classifiers:
                classifier = self._classifier_arrays(name, stats.dimension)
                if state.projection is not None and state.classifier is not None:
                    sums = (state.agreements, state.residual)
                elif state.kept is not None:
                    sums = self._kept_sums(state, stats, classifier)
            metrics[name] = _layer_metrics(
                stats,
                state,
                classifier,
                sums,
                center=self.center,
                rank_rtol=self.rank_rtol,
                undefined=self.undefined,
                notes=notes,
                prefix=f"layer {name!r}: ",
            )
            widths[name] = stats.dimension
            statistics[name] = stats
        return CollapseReport(
            layers=metrics,
            widths=widths,
            counts=tuple(int(count) for count in self._counts),
            notes=tuple(notes),
            statistics=statistics,
        )

    def _kept_sums(
        self,
        state: _LayerState,
        stats: ClassStatistics,
        classifier: tuple[np.ndarray, np.ndarray | None],
    ) -> tuple[int, float]:
        weight, bias = classifier
        bias = np.zeros(self.num_classes) if bias is None else bias
        agreements, residual = 0, 0.0
        for block, labels in state.kept:
            batch_agreements, batch_residual = _classifier_sums(
                block, labels, stats.means, weight, bias
            )
            agreements += batch_agreements
            residual += batch_residual
        return agreements, residual


# ---------------------------------------------------------------------------------------------
# one model over one loader
# ---------------------------------------------------------------------------------------------
def _resolve_device(device: Any, model: nn.Module) -> torch.device | None:
    """Where the inputs go: ``device``, "auto" (CUDA when present), or the model's own."""
    if device is None:
        for tensor in model.parameters():
            return tensor.device
        for tensor in model.buffers():
            return tensor.device
        return None
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be None, 'auto' or a torch device, got {device!r}"
        ) from error


def _split_batch(batch: Any, index: int) -> tuple[Any, Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        kind = type(batch).__name__
        size = f" of {len(batch)} items" if isinstance(batch, (tuple, list)) else ""
        raise TypeError(
            f"loader: batch {index} is a {kind}{size}; every batch must be an (inputs, labels) "
            "pair (a tuple or list of two)"
        )
    return batch[0], batch[1]


def _to_device(inputs: Any, device: torch.device | None) -> Any:
    if device is None:
        return inputs
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(_to_device(item, device) for item in inputs)
    return inputs


def _run_pass(
    monitor: CollapseMonitor, model: nn.Module, loader: Iterable[Any], device: Any
) -> int:
    batches = 0
    for index, batch in enumerate(loader):
        inputs, labels = _split_batch(batch, index)
        inputs = _to_device(inputs, device)
        monitor._clear_held()
        if isinstance(inputs, (tuple, list)):
            model(*inputs)
        else:
            model(inputs)
        monitor._consume(labels, strict=True, where=f"batch {index}: ")
        batches += 1
    return batches


def collapse_report(
    model: nn.Module,
    loader: Iterable[Any],
    layers: Sequence[str],
    num_classes: int,
    classifier: Mapping[str, Any] | None = None,
    *,
    device: Any = None,
    rows: bool = True,
    within: str = "scatter",
    ncc: bool = True,
    center: bool | None = None,
    rank_rtol: float | None = None,
    undefined: str = "none",
) -> CollapseReport:
    """Collapse metrics (docs/theory.md §3) of named layers of a model over a data set.

    The model runs over ``loader`` under ``torch.no_grad()`` in eval mode; forward hooks collect
    the outputs of ``layers``, each flattened to a (B, d) block of samples, and stream float64
    class statistics per layer on the outputs' device in one pass (two with
    ``within="projection"``). Afterwards the hooks are removed and every submodule's
    training/eval mode is restored, also when an error is raised.

    Parameters
    ----------
    model : torch.nn.Module
        The network; it is not moved (put it on its device first).
    loader : iterable of (inputs, labels)
        E.g. a ``torch.utils.data.DataLoader``. Each batch is a tuple or list of two: ``inputs``,
        a tensor passed as ``model(inputs)`` (a tuple or list of tensors is passed as
        ``model(*inputs)``), and ``labels`` (B,), integer classes 0..K-1. Dictionary batches are
        not accepted: wrap the loader, e.g. ``[(b["x"], b["y"]) for b in loader]``.
    layers : sequence of str
        Module names as in ``model.named_modules()`` ("" is the model's own output). Each must
        output one tensor (B, …) per forward (flattened to (B, d); (…, B) with ``rows=False``) and
        run exactly once per forward.
    num_classes : int
        K ≥ 2.
    classifier : mapping, optional
        Layer name → the linear classifier of that layer's features: a module name (its
        ``.weight`` (K, d) and ``.bias``), a module, (W, b), (W,) or W. Adds NC3.cos,
        NC3.cos_min, NC3.dual, NC3.span, KAPPA = KAPPA(W), NC4.ncc, ERR and ERR.data for that
        layer, e.g. ``{"relu2": "fc3"}`` when the module ``fc3`` is applied to the output of
        ``relu2``.
    device : None, "auto", str or torch.device
        Where the inputs are moved: by default the device of the model's first parameter (or
        buffer; inputs untouched for a model without either); "auto" is CUDA when present, else
        the CPU.
    rows : bool
        Samples along the first dimension of each output (default, PyTorch's layout); False:
        along the last one (networks on column features).
    within : {"scatter", "projection", "traces"}
        How the within-class scatter S_W is accumulated: the d×d matrix in the one pass (default;
        O(B d²) per batch, O(d²) memory); its projection on the K − 1 between-class directions in
        a second pass over ``loader`` (O(B d K), O(d K) memory, for wide layers; ``loader`` must be
        re-iterable and yield the same samples again — shuffling is fine, random augmentation is
        not; NC4.ncc and ERR are then computed in that pass without keeping features; NEG is None
        for a layer with negative entries); or not at all (NC1.pinv None).
    ncc : bool
        Compute NC4.ncc and ERR for layers with a classifier (default). With one pass this keeps
        those layers' features until the end (N × d entries each, in the output's dtype on its
        device); False: they are None.
    center : bool, optional
        Centre the class means in NC2.kappa_nz, NC3.cos and NC3.dual; default: iff the layer's
        classifier has a bias (as :func:`ufm.metrics.all_metrics`).
    rank_rtol : float, optional
        Relative tolerance of RANK and KAPPA (default max(shape)·eps).
    undefined : {"none", "raise"}
        A metric with a zero denominator is None with a note (default) or raises.

    Returns
    -------
    CollapseReport
        ``report.to_dict()`` maps layer name → metric ID → value.

    Notes
    -----
    For one layer, Z ∈ R^{d×N} holds the flattened outputs of all N samples as columns, labels
    y ∈ {0..K-1}^N, n_c samples in class c. With the class means M = [μ_0, …, μ_{K−1}] (d, K),
    Z̄ the matrix of each sample's class mean, μ_G = (1/K)M1_K, M̄ = M − μ_G1_Kᵀ (docs/theory.md
    §1.1):

    - Σ_W = (1/N)(Z − Z̄)(Z − Z̄)ᵀ, Σ_B = (1/K)M̄M̄ᵀ, Σ_B^unc = (1/K)MMᵀ, Σ_T = Σ_W + Σ_B (d, d);
    - NC1.tr_unc = tr Σ_W/tr Σ_B^unc (= ‖Z − Z̄‖_F²/‖Z̄‖_F² for balanced classes),
      NC1.tr = tr Σ_W/tr Σ_B, NC1.pinv = (1/K)tr(Σ_W Σ_B^†) with Σ_B^† formed from the K − 1
      directions of the centred means, NC1.wt = tr Σ_W/tr Σ_T, NC1.cdnv (Galanti et al.);
    - NC2.kappa = s_1(M)/s_K(M), NC2.kappa_nz = s_1/s_r over the r = RANK nonzero singular values
      (of M̄ when centring), NC2.orth = ‖MᵀM/‖MᵀM‖_F − I_K/√K‖_F,
      NC2.etf = ‖M̄ᵀM̄/‖M̄ᵀM̄‖_F − P_K/√(K−1)‖_F; RANK = RANK(M);
    - NEG = ‖min(Z, 0)‖_op/‖Z‖_op (the features read as ReLU pre-activations);
    - with a classifier (W (K, d), b (K,)): NC3.cos, NC3.cos_min (cosines of μ_c and w_c),
      NC3.dual = ‖W/‖W‖_F − Mᵀ/‖M‖_F‖_F (M̄ when centring), NC3.span = 1 − ‖WP_M‖_F²/‖W‖_F²,
      KAPPA = s_1(W)/s_r(W),
      NC4.ncc = (1/N)Σ_i 1[argmin_c‖z_i − μ_c‖ = argmax_c(Wz_i + b)_c] (ties: lowest index),
      ERR = ‖WZ + b1_Nᵀ − Y‖_F with Y the one-hot targets (K, N), ERR.data = ERR²/(2N).

    Every quantity comes from float64 class statistics streamed with the shift of
    docs/theory.md §3 ("Numerics"), so the values equal :func:`ufm.metrics.all_metrics` of the
    concatenated features to float64 rounding.

    Raises
    ------
    ValueError
        For an unknown layer name (the available names are listed), labels outside 0..K-1 or
        not matching the batch size of a layer's output, NaN or Inf in a layer's output (the layer
        is named), a class without samples, an empty loader, a layer run more than once in one
        forward, or num_classes < 2.
    TypeError
        If a layer's output is not a tensor (the layer and the type are named), a batch is not an
        (inputs, labels) pair, or ``loader`` is a one-shot iterator with ``within="projection"``.
    RuntimeError
        If a hooked layer does not run in a forward pass.

    Examples
    --------
    >>> report = collapse_report(model, loader, ["fc1", "relu2"], num_classes=10,
    ...                          classifier={"relu2": "fc3"})       # doctest: +SKIP
    >>> report["relu2"]["NC1.tr"], report["relu2"]["NC4.ncc"]      # doctest: +SKIP
    """
    _check_model(model)
    within = _check_choice(within, REPORT_WITHIN, "within")
    if within == "projection" and iter(loader) is loader:
        raise TypeError(
            "loader must be re-iterable (a DataLoader, a list) with within='projection', which "
            "reads it twice; a one-shot iterator is exhausted after the first pass"
        )
    target = _resolve_device(device, model)
    monitor = CollapseMonitor(
        model,
        layers,
        num_classes,
        classifier,
        rows=rows,
        within="scatter" if within == "scatter" else "traces",
        ncc=ncc,
        center=center,
        rank_rtol=rank_rtol,
        undefined=undefined,
    )
    if within == "projection":
        monitor._keep = False
        monitor.reset()
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            if _run_pass(monitor, model, loader, target) == 0:
                raise ValueError("loader yielded no batches")
            if within == "projection":
                monitor._start_second_pass()
                _run_pass(monitor, model, loader, target)
        return monitor.report()
    finally:
        monitor.close()
        for module, mode in modes.items():
            module.training = mode
