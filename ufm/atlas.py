"""The atlas of best-known minima of the deep ReLU UFM over (K, L) (docs/theory.md §4.3–4.6).

For every cell (K, L) of a grid, :func:`run_atlas` searches the L-DUFM of docs/theory.md §2(c) with
equal penalties on every block (λ_H = λ_1 = … = λ_L = λ), n samples per class and equal widths,

    Φ_DUFM = (1/(2N))‖W_Lσ(W_{L−1}σ(⋯σ(W_1H_1)⋯)) − Y‖² + (λ/2)(‖H_1‖² + Σ_l ‖W_l‖²),

and keeps the lowest point it finds. Each kept point is written to a file (``points/K{K}_L{L}.npz``)
that holds the parameters and the model, and its value is recomputed from that file
(:func:`load_point`): every ``best_loss`` of the atlas is an upper bound on min Φ_DUFM together with
its certificate, the point that attains it. Beside it the atlas sets

- ``dnc_loss`` = L_DNC (:func:`ufm.optima.predict_dufm`, docs/theory.md §4.3), the least value among
  points with DNC structure, proven optimal for K = 2 (every L, (B)) and for L = 1 (the UFM);
- ``ratio`` = best_loss / L_DNC (< 1: the search found a point that beats every DNC point);
- ``srg_loss``, the best low-rank SRG construction of docs/theory.md §4.5 for that (K, L) where one
  exists (L ≥ 3, K ≥ 3: the triangular graph when K = r(r−1)/2, else the best edge subset);
- ``ranks``, the numerical ranks (singular values above ``RANK_RTOL`` = 1e-3 times the largest)
  of the class means M_1..M_L of the post-activations H_1..H_L and of the last pre-activation
  H̃_L (low rank before the last ReLU is the mark of the SRG-type minima, docs/theory.md §4.5);
- ``basins``, the number of distinct minima the search ended in (end values within the relative
  ``BASIN_TOLERANCE`` of each other and with the same rank profile count as one, as in the
  method ``"global"`` of :func:`ufm.solvers.solve`).

Width ``"auto"``: a cell is searched at width w = max(2K, 10), then at the wider w + K, the
wider search also starting from the best point of the first embedded with zero rows and columns
(same Φ, so the wider value is never above the narrower one); both are recorded, the lower value
is kept, and the cell is flagged (``wider_lower``) when the wider search was lower by more than
the basin tolerance, best_{w+K} < best_w·(1 − BASIN_TOLERANCE): then w was not wide enough for
a wider layer not to lower the value. An integer width fixes every layer's width.

Searches run in this process (``workers=1``), on local processes (``workers=N``,
:class:`concurrent.futures.ProcessPoolExecutor`) or on a ``dask.distributed`` cluster
(``scheduler="tcp://HOST:8786"``). Every finished search is written at once to a SQLite store
(one file, WAL mode, :class:`AtlasStore`), keyed by its whole configuration (K, L, n, λ, width,
method, seed, budget): a rerun skips the searches already stored, a killed run loses only the
searches in flight, and no search is stored twice.

A cell is (K, L, n, λ, width setting); its value in the atlas is the best-known minimum over every
search of that cell in the store, whatever its method, seed or budget: the stored points of the
cell are all re-evaluated and the lowest value is kept (:func:`run_atlas`). A cell is improved by
running it again into the same store with another seed or a larger budget; the next run over the
grid shows the lower value. Searches of another n, λ or width setting are other cells and never
compete.

Neighbour starts (``neighbours=True``, docs/theory.md §4.6): the search of a cell also starts
from points derived from the best stored points of its neighbouring cells of the same n, λ and
width setting (:func:`neighbour_starts`): (K + 1, L) with one class dropped, (K − 1, L) with a
perturbed copy of a class added, (K, L − 1) with a layer inserted that keeps the output, a few
of each (:data:`NEIGHBOUR_STARTS_PER_KIND`, those of lowest Φ). Each is polished by one local
run at the widest search before that search, outside its budget; the lowest is the search's
first start. ``neighbours`` is part of the configuration: such a search is another search of
the cell, competing with the others, and its result records the neighbour cells, the starts
and which one gave the best point. ``max_starts`` counts every start of a search, the given
ones and the constructions included, so ``neighbours=True, max_starts=1`` is a polish: per
cell the neighbour starts, then one start per width (the DNC point at w, the best neighbour
point at the wider width). The narrower search of a neighbour search is then no search to
compare the wider one with: a cell kept from a neighbour search is flagged (``wider_lower``)
as its lowest search without neighbour starts is.

Outputs in ``out``: ``atlas.csv`` (:data:`CSV_COLUMNS`), ``atlas.json`` (every detail: the
searches at each width, the basins, the SRG construction used, the stored searches of each cell
and the configuration of the kept one), ``atlas.png`` (heatmap of best/L_DNC,
:func:`plot_atlas`) and ``points/`` (the kept point of each cell).

Command line: ``python -m ufm atlas --K 2..20 --L 2..6 --out DIR`` (see :mod:`ufm.cli`).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import math
import os
import socket
import sqlite3
import sys
import time
from concurrent.futures import Executor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .arrays import check_positive_scalar
from .models import DeepUFM, Parameters
from .solvers import solve
from .solvers.global_search import (GLOBAL_DEFAULTS, _BasinBook, class_mean_ranks,
                                     embed_parameters)
from .solvers.global_search import RANK_RTOL as _GLOBAL_RANK_RTOL

__all__ = [
    "ADD_PERTURBATION",
    "BASIN_TOLERANCE",
    "CSV_COLUMNS",
    "DEFAULT_METHOD",
    "FULL_BUDGET",
    "NEIGHBOUR_STARTS_PER_KIND",
    "QUICK_BUDGET",
    "QUICK_CLASSES",
    "QUICK_LAYERS",
    "RANK_RTOL",
    "AtlasCell",
    "AtlasResult",
    "AtlasStore",
    "CellConfig",
    "auto_widths",
    "class_mean_ranks",
    "compute_cell",
    "load_point",
    "neighbour_starts",
    "parse_range",
    "plot_atlas",
    "run_atlas",
    "srg_reference",
]

#: Columns of ``atlas.csv``, in order.
CSV_COLUMNS = (
    "K", "L", "n", "lam", "width", "best_loss", "dnc_loss", "ratio", "srg_loss", "ranks",
    "basins", "seconds", "point",
)

#: Relative tolerance of a basin: end values Φ, Φ' with ``|Φ − Φ'|`` ≤ BASIN_TOLERANCE·max(Φ, Φ')
#: (and equal rank profiles) are one minimum; also the relative margin by which the wider width
#: of ``width="auto"`` must win to flag a cell. The ``basin_tolerance`` of the method
#: ``"global"`` (``ufm.solvers.global_search.GLOBAL_DEFAULTS``): local runs stop at the ReLU
#: kinks a little above the bottom of a minimum.
BASIN_TOLERANCE = float(GLOBAL_DEFAULTS["basin_tolerance"])  # 1e-4

#: Relative tolerance of the numerical ranks: #{i : s_i > RANK_RTOL·s_1} (docs/theory.md §3 RANK).
RANK_RTOL = _GLOBAL_RANK_RTOL  # the global search's (ufm.solvers.global_search.RANK_RTOL)

#: Grid of ``quick=True``: K = 2..6, L = 2..5.
QUICK_CLASSES = tuple(range(2, 7))
QUICK_LAYERS = tuple(range(2, 6))

#: Per-search budget (each width of a cell is one search): at most ``max_starts`` starts, no new
#: start after ``time_budget`` seconds, ``max_iterations`` per start, and for ``"global"`` a
#: stop after ``patience`` starts without a lower basin. The full budget is the default of
#: :func:`ufm.solvers.solve` with ``"global"`` (``GLOBAL_DEFAULTS``), written out so that the
#: stored configurations record the numbers, not "the solver's default".
FULL_BUDGET = {
    "max_starts": GLOBAL_DEFAULTS["max_starts"],
    "patience": GLOBAL_DEFAULTS["patience"],
    "time_budget": float(GLOBAL_DEFAULTS["time_budget"]),
    "max_iterations": inspect.signature(solve).parameters["max_iterations"].default,
}
QUICK_BUDGET = {"max_starts": 40, "patience": 12, "time_budget": 6.0,
                "max_iterations": FULL_BUDGET["max_iterations"]}

_STORE_FORMAT = "ufm-atlas-store"
_STORE_VERSION = 1
_RESULT_FORMAT = 1


def _solver_methods() -> tuple[str, ...]:
    from . import solvers

    return tuple(solvers.METHODS)


def _atlas_methods() -> tuple[str, ...]:
    """Methods of :func:`ufm.solvers.solve` the atlas can run (not the torch ones, and not
    ``"auto"``, another name of ``"global"`` for the DUFM)."""
    return tuple(method for method in _solver_methods()
                 if not method.startswith("torch") and method != "auto")


#: The multistart / basin-hopping search of :func:`ufm.solvers.solve`.
DEFAULT_METHOD = "global"


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _integer_at_least(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def parse_range(text: str, name: str, minimum: int) -> tuple[int, ...]:
    """Parse ``"2..20"`` (inclusive), ``"5"`` or ``"2,3,5"`` into a sorted tuple of integers.

    Parameters
    ----------
    text : str
        The range.
    name : str
        Named in the error (``"--K"``).
    minimum : int
        Least allowed value.

    Raises
    ------
    ValueError
        For text that is not a range, an empty range (start > end) or a value below ``minimum``.
    """
    stripped = str(text).strip()
    try:
        if ".." in stripped:
            start_text, end_text = stripped.split("..", 1)
            start, end = int(start_text), int(end_text)
            if start > end:
                raise ValueError(f"{name}: the range {stripped} is empty (start {start} > end {end})")
            values = list(range(start, end + 1))
        else:
            values = [int(part) for part in stripped.split(",")]
    except ValueError as error:
        if str(error).startswith(name):
            raise
        raise ValueError(
            f"{name}: expected a range like 2..20, an integer or a comma-separated list, "
            f"got {text!r}"
        ) from None
    low = min(values)
    if low < minimum:
        raise ValueError(f"{name}: values must be >= {minimum}, got {low} in {stripped}")
    return tuple(sorted(set(values)))


def _grid(values: Any, name: str, minimum: int) -> tuple[int, ...]:
    if isinstance(values, str):
        return parse_range(values, name, minimum)
    if isinstance(values, (int, np.integer)) and not isinstance(values, (bool, np.bool_)):
        values = [values]
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"{name} must be an integer, a range or a sequence of integers, "
                        f"got {values!r}") from None
    if not items:
        raise ValueError(f"{name} must hold at least one value")
    return tuple(sorted({_integer_at_least(item, name, minimum) for item in items}))


def _check_width(width: Any, max_classes: int, name: str = "width") -> str | int:
    if isinstance(width, str):
        if width.strip().lower() == "auto":
            return "auto"
        try:
            width = int(width)
        except ValueError:
            raise ValueError(f"{name} must be 'auto' or an integer, got {width!r}") from None
    width = _integer_at_least(width, name, 1)
    if width < max_classes:
        raise ValueError(
            f"{name} must be >= K = {max_classes} (the largest K of the grid), got {width}"
        )
    return width


def auto_widths(num_classes: int) -> tuple[int, int]:
    """The two widths of ``width="auto"``: w = max(2K, 10) and the wider w + K."""
    base = max(2 * int(num_classes), 10)
    return base, base + int(num_classes)


def _check_out(out: Any, name: str = "out") -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} is a file, expected a folder")
    return path


def _check_store(store: Any, name: str = "store") -> Path | None:
    if store is None:
        return None
    path = Path(store)
    if path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} is a folder, expected a SQLite file")
    return path


# --------------------------------------------------------------------------------------------
# One cell
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellConfig:
    """The whole configuration of one atlas cell; the store keys cells by it (:attr:`key`).

    Attributes
    ----------
    num_classes, num_layers, per_class : int
        K ≥ 2, L ≥ 1, n ≥ 1.
    lam : float
        λ > 0 on every block (λ_H = λ_l = λ).
    width : "auto" or int
        Width of every layer (``"auto"``: :func:`auto_widths`).
    method : str
        Method of :func:`ufm.solvers.solve`.
    seed : int
        Seed of the search (the local methods start from seeds [seed, i], i = 0, 1, …).
    max_starts : int
        Starts per search.
    time_budget : float
        Seconds per search after which no new start begins.
    max_iterations : int or None
        Iterations per start (None: the solver's default).
    patience : int or None
        ``"global"`` only: stop after this many starts without a lower basin (None otherwise).
    neighbours : bool
        Whether the search also starts from points derived from the stored best points of the
        neighbouring cells (:func:`neighbour_starts`). Left out of :meth:`to_dict` (and so of
        :attr:`key`) when False, so the keys of the plain searches do not depend on it.
    """

    num_classes: int
    num_layers: int
    per_class: int
    lam: float
    width: Any
    method: str
    seed: int
    max_starts: int
    time_budget: float
    max_iterations: int | None
    patience: int | None = None
    neighbours: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary (the stored configuration); ``neighbours`` only when
        True."""
        data = asdict(self)
        if not data["neighbours"]:
            del data["neighbours"]
        return data

    @property
    def key(self) -> str:
        """SHA-256 (hex, 24 digits) of the configuration as sorted JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    @property
    def point_name(self) -> str:
        """File name of the cell's point: ``K{K}_L{L}.npz``."""
        return f"K{self.num_classes}_L{self.num_layers}.npz"

    def model(self, width: int) -> DeepUFM:
        """The L-DUFM of this cell at ``width`` (equal λ on every block)."""
        return DeepUFM(self.num_classes, self.per_class, (int(width),) * self.num_layers,
                       self.lam, self.lam)


def srg_reference(num_classes: int, num_layers: int, per_class: int, lam: float
                  ) -> tuple[float | None, dict | None]:
    """L_SRG: the best low-rank construction of docs/theory.md §4.5 for (K, L), where one exists.

    L ≥ 3 and K ≥ 3: if K = r(r−1)/2 the triangular graph T(r)
    (``predict_srg(r, L, n, λ, λ, shift=None)``, t* of the improved family), else the best edge
    subset of :func:`ufm.optima.srg_edge_subset_search` (random subsets drawn with seed 0 when
    there are too many to enumerate). Otherwise, or when the construction does not apply
    (ValueError), none.

    Returns
    -------
    loss : float or None
        L_SRG.
    construction : dict or None
        ``kind`` ("triangular" or "edge_subset"), ``num_vertices`` r, ``shift`` t*, ``edges``.
    """
    from . import optima

    if num_layers < 3 or num_classes < 3:
        return None, None
    vertices = int(round((1 + math.sqrt(1 + 8 * num_classes)) / 2))
    try:
        if vertices * (vertices - 1) // 2 == num_classes:
            kind = "triangular"
            prediction = optima.predict_srg(vertices, num_layers, per_class, lam, lam, shift=None)
        else:
            kind = "edge_subset"
            subset = optima.srg_edge_subset_search(num_classes, num_layers, rng=0)
            prediction = optima.predict_srg(subset.num_vertices, num_layers, per_class, lam, lam,
                                            shift=None, edges=subset.edges)
    except ValueError:
        return None, None
    return float(prediction.optimal_loss), {
        "kind": kind,
        "num_vertices": prediction.num_vertices,
        "shift": prediction.shift,
        "edges": [list(edge) for edge in prediction.edges],
    }


def _basins_of(ends: list[tuple[float, tuple[int, ...]]], tolerance: float) -> list[dict]:
    """Group end points into basins as the method ``"global"`` does (its
    :class:`~ufm.solvers.global_search._BasinBook`: the same rank profile and values within
    ``tolerance`` relative); each basin keeps its lowest value. Sorted by value."""
    book = _BasinBook(tolerance)
    for loss, ranks in sorted(ends, key=lambda item: item[0]):
        book.add(float(loss), tuple(ranks), "local")
    return [{"loss": basin.loss, "ranks": list(basin.ranks), "count": basin.count}
            for basin in book.basins()]


def _basin_dict(basin: Any) -> dict:
    ranks = getattr(basin, "ranks", ())
    return {
        "loss": float(getattr(basin, "loss")),
        "ranks": [int(rank) for rank in (ranks if ranks is not None else ())],
        "count": int(getattr(basin, "count", 1)),
    }


# --------------------------------------------------------------------------------------------
# Neighbour starts
# --------------------------------------------------------------------------------------------


#: Derived starts kept per neighbour kind (``"drop"``, ``"add"``, ``"insert"``): those of lowest
#: Φ at the search width. Dropping any one of the K + 1 classes of a neighbour point gives
#: nearly the same start on the symmetric minima, so a few suffice.
NEIGHBOUR_STARTS_PER_KIND = 3

#: Relative size σ of the perturbation of the copied class of an ``"add"`` start: the copy gets
#: c + σ·(‖c‖/√size)·G, G standard normal, so that the two copies can separate.
ADD_PERTURBATION = 0.1


def _class_columns(num_classes: int, per_class: int, index: int) -> np.ndarray:
    """Columns of class ``index`` in the class-major order of the DUFM (N = K·n)."""
    return np.arange(index * per_class, (index + 1) * per_class)


def _balanced(parameters: Parameters) -> Parameters:
    """Rescale H1, W1..WL by positive factors of product 1 so that their squared Frobenius
    norms are equal (their geometric mean): the ReLU is positively homogeneous, so the output
    is unchanged and the penalty Σ‖B‖² is the least over such rescalings (AM–GM)."""
    blocks = [np.asarray(parameters.features, dtype=np.float64)]
    blocks += [np.asarray(weight, dtype=np.float64) for weight in parameters.weights]
    squares = np.array([float(np.sum(block**2)) for block in blocks])
    if not np.all(squares > 0.0):
        return parameters
    target = math.exp(float(np.mean(np.log(squares))))
    scaled = [block * math.sqrt(target / square) for block, square in zip(blocks, squares)]
    return Parameters(features=scaled[0], weights=tuple(scaled[1:]))


def _drop_class(parameters: Parameters, per_class: int, index: int) -> Parameters:
    """A (K − 1)-class point: class ``index`` removed (its columns of H1, its row of W_L)."""
    num_classes = parameters.weights[-1].shape[0]
    keep = np.setdiff1d(np.arange(num_classes * per_class),
                        _class_columns(num_classes, per_class, index))
    weights = list(parameters.weights)
    weights[-1] = np.delete(weights[-1], index, axis=0)
    return Parameters(features=parameters.features[:, keep], weights=tuple(weights))


def _add_class(parameters: Parameters, per_class: int, index: int,
               rng: np.random.Generator) -> Parameters:
    """A (K + 1)-class point: a perturbed copy of class ``index`` (its columns of H1, its row
    of W_L, each moved by :data:`ADD_PERTURBATION`) appended as the last class."""
    def perturbed(block: np.ndarray) -> np.ndarray:
        scale = np.linalg.norm(block) / math.sqrt(block.size)
        return block + ADD_PERTURBATION * scale * rng.standard_normal(block.shape)

    num_classes = parameters.weights[-1].shape[0]
    columns = parameters.features[:, _class_columns(num_classes, per_class, index)]
    weights = list(parameters.weights)
    weights[-1] = np.vstack([weights[-1], perturbed(weights[-1][index:index + 1])])
    return Parameters(features=np.hstack([parameters.features, perturbed(columns)]),
                      weights=tuple(weights))


def _insert_layer(model: DeepUFM, parameters: Parameters, position: int) -> Parameters:
    """An (L + 1)-layer point: after the ReLU of W_position (1 ≤ position ≤ L − 1) a layer
    D = diag(1 on the neurons active at some sample), then :func:`_balanced`.

    H_{position+1} = σ(W_position ⋯) ≥ 0 is zero on the inactive neurons, so
    σ(D·H_{position+1}) = H_{position+1} and the output is unchanged; the rescaling then
    balances the penalties.
    """
    # post_activations: H_1 (the features), H_2 = σ(W_1H_1), …
    post = model.forward(parameters).post_activations[position]
    active = (np.max(np.asarray(post), axis=1) > 0.0).astype(np.float64)
    weights = list(parameters.weights)
    weights.insert(position, np.diag(active))
    return _balanced(Parameters(features=parameters.features, weights=tuple(weights)))


def neighbour_starts(config: CellConfig, neighbours: Sequence[dict], seed: int = 0
                     ) -> tuple[int | None, list[dict]]:
    """Starts for the cell of ``config`` derived from the best points of its neighbouring cells.

    - from (K + 1, L) (``"drop"``): the point with one class dropped, one per class;
    - from (K − 1, L) (``"add"``): one class added, a perturbed copy of an existing class
      (:data:`ADD_PERTURBATION`), one per copied class;
    - from (K, L − 1) (``"insert"``): a layer inserted after the ReLU of each hidden layer
      (:func:`_insert_layer`; the output is kept and the penalties balanced), one per
      position (none where L − 1 = 1: the features H1 are not non-negative).

    Every start keeps the neighbour's width; of each kind the :data:`NEIGHBOUR_STARTS_PER_KIND`
    starts of lowest Φ at that width are kept.

    Parameters
    ----------
    config : CellConfig
        The cell searched.
    neighbours : sequence of dict
        ``cell`` [K', L'] and ``point`` (``.npz`` bytes of :func:`load_point`), the stored best
        point of a neighbouring cell; other cells are ignored.
    seed : int
        Seed of the perturbations of ``"add"``.

    Returns
    -------
    width : int or None
        The widest width of a start (None if there is none).
    starts : list of dict
        ``cell``, ``kind``, ``index`` (the class dropped or copied, or the layer after which
        one is inserted), ``width``, ``start_loss`` Φ and ``_parameters`` (at ``width``).
    """
    K, L, n = config.num_classes, config.num_layers, config.per_class
    found: dict[str, list[dict]] = {"drop": [], "add": [], "insert": []}
    for neighbour in neighbours:
        cell = tuple(int(value) for value in neighbour["cell"])
        source_model, source, _ = _load_npz(io.BytesIO(neighbour["point"]),
                                            f"neighbour K{cell[0]}_L{cell[1]}")
        width = int(max(source_model.widths))
        if cell == (K + 1, L):
            kind = "drop"
            derived = [(index, _drop_class(source, n, index)) for index in range(K + 1)]
        elif cell == (K - 1, L):
            kind = "add"
            derived = [(index, _add_class(source, n, index,
                                          np.random.default_rng([seed, K, L, index])))
                       for index in range(K - 1)]
        elif cell == (K, L - 1) and L - 1 >= 2:
            kind = "insert"
            derived = [(position, _insert_layer(source_model, source, position))
                       for position in range(1, L - 1)]
        else:
            continue
        model = config.model(width)
        for index, parameters in derived:
            parameters = embed_parameters(parameters, model)
            found[kind].append({"cell": list(cell), "kind": kind, "index": int(index),
                                "width": width,
                                "start_loss": float(model.objective(parameters).total),
                                "_parameters": parameters})
    starts = []
    for kind in ("drop", "add", "insert"):
        ordered = sorted(found[kind], key=lambda start: start["start_loss"])
        starts.extend(ordered[:NEIGHBOUR_STARTS_PER_KIND])
    width = max((start["width"] for start in starts), default=None)
    return width, starts


def _polish_neighbour_starts(model: DeepUFM, starts: list[dict],
                             max_iterations: int | None) -> None:
    """One local run of each start at ``model``'s width (``kink_lbfgs`` with
    :data:`ufm.solvers.KINK_LBFGS_LOW_RANK_SETTINGS`), its end kept only if lower than the
    start: sets ``loss`` and ``_end`` of each start."""
    from . import solvers

    options: dict[str, Any] = dict(solvers.KINK_LBFGS_LOW_RANK_SETTINGS)
    if max_iterations is not None:
        options["max_iterations"] = max_iterations
    for start in starts:
        initial = embed_parameters(start["_parameters"], model)
        value = float(model.objective(initial).total)
        solution = solvers.solve(model, "kink_lbfgs", initial=initial, progress=False,
                                 predicted=None, history_points=0, **options)
        end, loss = initial, value
        if math.isfinite(solution.loss) and float(solution.loss) < value:
            end, loss = solution.parameters, float(solution.loss)
        start["loss"], start["_end"] = loss, end


def _search(config: CellConfig, width: int, previous: dict | None = None,
            neighbour: list[dict] | None = None) -> dict:
    """One search of the cell's model at ``width``: the best point, its value and the basins.

    ``previous``: an earlier search at a narrower width, whose best point (embedded with zero
    rows and columns, same Φ) is a further start. ``neighbour``: starts of
    :func:`neighbour_starts`, each polished first by one local run
    (:func:`_polish_neighbour_starts`, outside the search's budget); the lowest polished one
    is then the first start of the search.
    """
    from . import solvers

    model = config.model(width)
    start = time.perf_counter()
    given = []
    best_neighbour = None
    if neighbour:
        _polish_neighbour_starts(model, neighbour, config.max_iterations)
        best_neighbour = min(neighbour, key=lambda item: item["loss"])
        given.append(best_neighbour["_end"])
    if previous is not None and previous["_parameters"] is not None:
        given.append(embed_parameters(previous["_parameters"], model))
    common: dict[str, Any] = dict(predicted=None, history_points=0, progress=False)
    if config.max_iterations is not None:
        common["max_iterations"] = config.max_iterations
    if config.method == "global":
        if config.patience is not None:
            common["patience"] = config.patience
        solution = solvers.solve(model, "global", seed=config.seed, max_starts=config.max_starts,
                                 time_budget=config.time_budget, starts=given,
                                 basin_tolerance=BASIN_TOLERANCE, **common)
        best = solution.parameters
        best_loss = float(solution.loss)
        found_by = [getattr(basin, "found_by", "") for basin in getattr(solution, "basins", ())
                    or ()]
        best_kind = found_by[0] if found_by else ""
        basins = [_basin_dict(basin) for basin in getattr(solution, "basins", ()) or ()]
        if not basins:
            basins = [{"loss": best_loss, "ranks": list(class_mean_ranks(model, best)),
                       "count": 1}]
        starts = sum(basin["count"] for basin in basins)
    else:
        options = dict(common)
        if config.method == "kink_lbfgs":
            options.update(solvers.KINK_LBFGS_LOW_RANK_SETTINGS)
        ends = []
        best, best_loss, best_kind = None, math.inf, ""
        for index in range(config.max_starts):
            if index and time.perf_counter() - start >= config.time_budget:
                break
            if index < len(given):
                # as "global" does with a given start: never end above it
                solution = solvers.solve(model, config.method, initial=given[index], **options)
                end, loss = solution.parameters, float(solution.loss)
                start_loss = float(model.objective(given[index]).total)
                if start_loss < loss:
                    end, loss = given[index], start_loss
            else:
                rng = np.random.default_rng([config.seed, index - len(given)])
                solution = solvers.solve(model, config.method, seed=rng, **options)
                end, loss = solution.parameters, float(solution.loss)
            ends.append((loss, class_mean_ranks(model, end)))
            if loss < best_loss:
                best, best_loss = end, loss
                best_kind = "given" if index < len(given) else "local"
        basins = _basins_of(ends, BASIN_TOLERANCE)
        starts = len(ends)
    if best_neighbour is not None and best_neighbour["loss"] < best_loss:
        # the search's budget ended before it ran the neighbour start
        best, best_loss, best_kind = best_neighbour["_end"], best_neighbour["loss"], "given"
    best_start = best_kind
    if best_neighbour is not None and best_kind == "given":
        # the given starts: the best neighbour point, then the previous width's best point;
        # a local run never ends above its start, so the lower start is the one credited
        previous_loss = (math.inf if len(given) < 2
                         else float(model.objective(given[1]).total))
        if best_neighbour["loss"] <= previous_loss:
            best_start = "neighbour"
    result = {
        "width": int(width),
        "loss": best_loss,
        "basins": basins,
        "starts": int(starts),
        "best_start": best_start,
        "seconds": time.perf_counter() - start,
        "_parameters": best,
        "_model": model,
    }
    if neighbour:
        result["neighbour_starts"] = [
            {key: value for key, value in item.items() if not key.startswith("_")}
            for item in neighbour]
        result["best_neighbour_start"] = neighbour.index(best_neighbour)
    return result


def _point_bytes(model: DeepUFM, parameters: Parameters, loss: float, config: dict) -> bytes:
    arrays: dict[str, Any] = {"H1": np.asarray(parameters.features, dtype=np.float64)}
    for index, weight in enumerate(parameters.weights, start=1):
        arrays[f"W{index}"] = np.asarray(weight, dtype=np.float64)
    arrays.update(
        num_classes=np.int64(model.num_classes),
        per_class=np.int64(model.per_class),
        widths=np.asarray(model.widths, dtype=np.int64),
        lam_h=np.float64(model.lam_h),
        lam_w=np.asarray(model.lam_w, dtype=np.float64),
        nonneg_H1=np.bool_(model.nonneg_H1),
        loss=np.float64(loss),
        config=np.str_(json.dumps(config, sort_keys=True)),
    )
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def compute_cell(config: dict, neighbours: Sequence[dict] = ()) -> dict:
    """Search one cell (runs in a worker): the payload the coordinator stores.

    With ``neighbours`` in the configuration, the starts of :func:`neighbour_starts` are
    derived from the given neighbour points and polished at the widest search, whose width is
    raised to the widest of them where that is wider (``width="auto"``: the searches run at w
    and max(w + K, widest neighbour width)).

    Parameters
    ----------
    config : dict
        :meth:`CellConfig.to_dict`.
    neighbours : sequence of dict
        The stored best points of the neighbouring cells (``cell``, ``key``, ``loss``,
        ``point``; :func:`_neighbour_points`); used only if ``config["neighbours"]``.

    Returns
    -------
    dict
        ``result``: JSON-ready dict (configuration, kept width and value, ranks, basins, the
        search at each width, ``wider_lower``, L_DNC, L_SRG and its construction, seconds;
        with neighbours ``neighbours``: the neighbour cells that gave starts, their starts
        and which start gave the best point); ``point``: the kept point as ``.npz`` bytes
        (parameters, model settings, value).
    """
    from . import optima

    cell = CellConfig(**config)
    started = time.perf_counter()
    widths = auto_widths(cell.num_classes) if cell.width == "auto" else (int(cell.width),)
    starts: list[dict] = []
    if cell.neighbours:
        neighbour_width, starts = neighbour_starts(cell, neighbours, cell.seed)
        if neighbour_width is not None and neighbour_width > widths[-1]:
            widths = widths[:-1] + (neighbour_width,)
    searches: list[dict] = []
    for number, width in enumerate(widths):
        searches.append(_search(cell, width, searches[-1] if searches else None,
                                starts if number == len(widths) - 1 else None))
    kept = min(searches, key=lambda search: search["loss"])
    wider_lower = bool(len(searches) > 1 and searches[1]["loss"]
                       < searches[0]["loss"] - BASIN_TOLERANCE * abs(searches[0]["loss"]))
    model, parameters = kept["_model"], kept["_parameters"]
    dnc = optima.predict_dufm(cell.num_classes, cell.num_layers, cell.per_class, cell.lam, cell.lam)
    srg_loss, srg = srg_reference(cell.num_classes, cell.num_layers, cell.per_class, cell.lam)
    result = {
        "format": _RESULT_FORMAT,
        "config": cell.to_dict(),
        "key": cell.key,
        "width": kept["width"],
        "loss": kept["loss"],
        "ranks": list(class_mean_ranks(model, parameters)),
        "basins": kept["basins"],
        "searches": [{key: value for key, value in search.items() if not key.startswith("_")}
                     for search in searches],
        "wider_lower": wider_lower,
        "dnc_loss": float(dnc.optimal_loss),
        "srg_loss": srg_loss,
        "srg": srg,
        "seconds": time.perf_counter() - started,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    if cell.neighbours:
        used = {tuple(start["cell"]) for start in starts}
        widest = searches[-1]
        best_index = widest.get("best_neighbour_start")
        result["neighbours"] = {
            "cells": [{"cell": list(item["cell"]), "key": item["key"], "loss": item["loss"]}
                      for item in neighbours if tuple(item["cell"]) in used],
            "starts": widest.get("neighbour_starts", []),
            "best_start": None if best_index is None else widest["neighbour_starts"][best_index],
            "kept_from_neighbour": bool(kept is widest and widest["best_start"] == "neighbour"),
        }
    return {"result": result, "point": _point_bytes(model, parameters, kept["loss"], cell.to_dict())}


# --------------------------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------------------------


def _load_npz(source: Any, label: str) -> tuple[DeepUFM, Parameters, float]:
    try:
        with np.load(source, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"point file {label!r} does not exist") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"point {label!r} is not a readable .npz file: {error}") from None
    required = ("H1", "num_classes", "per_class", "widths", "lam_h", "lam_w")
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ValueError(f"point {label!r} lacks {', '.join(missing)}")
    widths = tuple(int(width) for width in arrays["widths"])
    weights = []
    for index in range(1, len(widths) + 1):
        if f"W{index}" not in arrays:
            raise ValueError(f"point {label!r} lacks W{index} (L = {len(widths)})")
        weights.append(np.array(arrays[f"W{index}"], dtype=np.float64))
    model = DeepUFM(
        int(arrays["num_classes"]), int(arrays["per_class"]), widths, float(arrays["lam_h"]),
        tuple(float(lam) for lam in arrays["lam_w"]),
        nonneg_H1=bool(arrays["nonneg_H1"]) if "nonneg_H1" in arrays else False,
    )
    parameters = Parameters(features=np.array(arrays["H1"], dtype=np.float64),
                            weights=tuple(weights))
    model.check_parameters(parameters)
    return model, parameters, float(model.objective(parameters).total)


def load_point(path: str | os.PathLike) -> tuple[DeepUFM, Parameters, float]:
    """Load an atlas point and recompute its value: (model, parameters, Φ(parameters)).

    The file (``.npz``) holds H1, W1..WL and the model settings (num_classes, per_class, widths,
    lam_h, lam_w, nonneg_H1), plus the value the search reported (``loss``) and the cell's
    configuration (``config``, JSON). The value returned is not the stored one: it is Φ_DUFM
    recomputed by ``model.objective`` (docs/theory.md §2(c)), so it is a certified upper bound on the
    minimum of that model, whatever produced the file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not an atlas point.
    """
    return _load_npz(os.fspath(path), os.fspath(path))


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


# --------------------------------------------------------------------------------------------
# Store
# --------------------------------------------------------------------------------------------


_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    config_key TEXT PRIMARY KEY,
    K INTEGER NOT NULL,
    L INTEGER NOT NULL,
    config TEXT NOT NULL,
    result TEXT NOT NULL,
    point BLOB NOT NULL,
    finished REAL NOT NULL
);
"""


class AtlasStore:
    """The atlas store: one SQLite file in WAL mode, one row per finished cell.

    Schema (format ``ufm-atlas-store``, version 1)::

        store_info(key TEXT PRIMARY KEY, value TEXT)      -- format, version
        cells(config_key TEXT PRIMARY KEY, K INTEGER, L INTEGER, config TEXT (JSON),
              result TEXT (JSON, :func:`compute_cell`), point BLOB (.npz), finished REAL)

    A row is one search of a cell, keyed by :attr:`CellConfig.key`, the hash of the whole
    configuration, so searches with other settings for the same (K, L) are kept side by side
    (:func:`run_atlas` shows the lowest of those of the same cell). Rows are inserted with
    ``INSERT OR IGNORE`` in one transaction each: a search is stored whole or not at all, and
    never twice. One process writes (the coordinator of :func:`run_atlas`); readers may read
    while it writes (WAL).

    Parameters
    ----------
    path : path or None
        The file (created with its folder if absent); None keeps the store in memory.
    """

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(":memory:" if self.path is None else str(self.path),
                                           timeout=60.0)
        try:
            if self.path is not None:
                self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.executescript(_SCHEMA)
            with self._connection:
                self._connection.execute(
                    "INSERT OR IGNORE INTO store_info VALUES ('format', ?), ('version', ?)",
                    (_STORE_FORMAT, str(_STORE_VERSION)),
                )
            info = dict(self._connection.execute("SELECT key, value FROM store_info"))
        except sqlite3.DatabaseError as error:
            self._connection.close()
            raise ValueError(f"store: {str(self.path)!r} is not an atlas store ({error})") from None
        if info.get("format") != _STORE_FORMAT or info.get("version") != str(_STORE_VERSION):
            self._connection.close()
            raise ValueError(f"store: {str(self.path)!r} is not an atlas store of version "
                             f"{_STORE_VERSION} (found {info})")

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def __enter__(self) -> "AtlasStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def keys(self) -> set[str]:
        """Configuration keys of the stored cells."""
        return {row[0] for row in self._connection.execute("SELECT config_key FROM cells")}

    def put(self, config: CellConfig, payload: dict) -> bool:
        """Store a finished cell (``payload`` from :func:`compute_cell`); False if it was there."""
        with self._connection:
            cursor = self._connection.execute(
                "INSERT OR IGNORE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?)",
                (config.key, config.num_classes, config.num_layers,
                 json.dumps(config.to_dict(), sort_keys=True),
                 json.dumps(payload["result"], allow_nan=False), sqlite3.Binary(payload["point"]),
                 time.time()),
            )
        return cursor.rowcount == 1

    def get(self, key: str) -> dict | None:
        """The stored row of ``key``: ``config``, ``result`` (dicts), ``point`` (bytes),
        ``finished`` (Unix seconds); None if absent."""
        row = self._connection.execute(
            "SELECT config, result, point, finished FROM cells WHERE config_key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return {"config": json.loads(row[0]), "result": json.loads(row[1]),
                "point": bytes(row[2]), "finished": float(row[3])}

    def cell_rows(self, num_classes: int, num_layers: int) -> list[dict]:
        """Every stored row of (K, L) = (``num_classes``, ``num_layers``), whatever the rest of
        its configuration: ``key``, ``config``, ``result`` (dicts), ``point`` (bytes),
        ``finished``; ordered by ``finished``."""
        return [
            {"key": key, "config": json.loads(config), "result": json.loads(result),
             "point": bytes(point), "finished": float(finished)}
            for key, config, result, point, finished in self._connection.execute(
                "SELECT config_key, config, result, point, finished FROM cells "
                "WHERE K = ? AND L = ? ORDER BY finished, config_key",
                (int(num_classes), int(num_layers)))
        ]

    def rows(self) -> list[dict]:
        """Every stored row (as :meth:`get`, without the point), ordered by (K, L, finished)."""
        return [
            {"key": key, "config": json.loads(config), "result": json.loads(result),
             "finished": float(finished)}
            for key, config, result, finished in self._connection.execute(
                "SELECT config_key, config, result, finished FROM cells ORDER BY K, L, finished")
        ]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtlasCell:
    """One cell of the atlas: the best-known minimum of the L-DUFM at (K, L), the lowest
    re-evaluated value over every stored search of the cell (same K, L, n, λ and width setting).

    Attributes
    ----------
    num_classes, num_layers, per_class : int
        K, L, n.
    lam : float
        λ on every block.
    width : int
        Width of the kept point.
    best_loss : float
        Φ_DUFM recomputed from the stored point (:func:`load_point`): an upper bound on the
        minimum with its certificate.
    dnc_loss : float
        L_DNC (docs/theory.md §4.3).
    ratio : float
        best_loss / L_DNC.
    srg_loss : float or None
        L_SRG, the best construction of docs/theory.md §4.5 (:func:`srg_reference`), or None.
    ranks : tuple of int
        Ranks of M_1..M_L and M̃_L at the kept point (:func:`class_mean_ranks`).
    basins : int
        Number of distinct basins the search at the kept width ended in.
    seconds : float
        Wall time of the kept search (every width).
    point : str
        The point file relative to the output folder (``points/K{K}_L{L}.npz``); empty when the
        atlas was run without an output folder.
    method, seed, config_key, width_setting
        The configuration of the kept search (``width_setting``: ``"auto"`` or the fixed
        width).
    wider_lower : bool
        ``width="auto"`` only: the wider search was lower by more than the basin tolerance
        (relative, ``BASIN_TOLERANCE``). When the kept search has neighbour starts, the flag
        of the cell's lowest search without them (the narrower search of a neighbour search
        is not a search of the same budget to compare with).
    searches : tuple of dict
        Each width searched: ``width``, ``loss``, ``basins``, ``starts``, ``best_start`` (the
        kind of start that gave the best point: ``"dnc"``, ``"srg"``, ``"random"``,
        ``"perturb"``, ``"given"``, ``"neighbour"``, …), ``seconds``; with neighbour starts
        the widest also ``neighbour_starts`` and ``best_neighbour_start``.
    basin_list : tuple of dict
        Basins of the kept search: ``loss``, ``ranks``, ``count``.
    srg : dict or None
        The construction behind ``srg_loss``.
    stored_loss : float
        The value the search reported (equal to ``best_loss`` up to rounding).
    finished : float
        When the kept search was stored (Unix seconds).
    search_count : int
        Number of stored searches of the cell (any method, seed or budget) that competed.
    kept_config : dict or None
        The whole configuration of the kept search (:meth:`CellConfig.to_dict`: seed, method,
        budget, …), its key being ``config_key``.
    stored_searches : tuple of dict
        Every stored search of the cell, ordered by when it was stored: ``key``, ``method``,
        ``seed``, ``max_starts``, ``time_budget``, ``max_iterations``, ``patience``,
        ``neighbours``, ``wider_lower``, ``best_loss`` (re-evaluated from its point),
        ``finished`` and ``kept``.
    """

    num_classes: int
    num_layers: int
    per_class: int
    lam: float
    width: int
    best_loss: float
    dnc_loss: float
    ratio: float
    srg_loss: float | None
    ranks: tuple[int, ...]
    basins: int
    seconds: float
    point: str
    method: str
    seed: int
    config_key: str
    width_setting: Any
    wider_lower: bool
    searches: tuple = ()
    basin_list: tuple = ()
    srg: dict | None = None
    stored_loss: float = math.nan
    finished: float = math.nan
    search_count: int = 1
    kept_config: dict | None = None
    stored_searches: tuple = ()

    @property
    def dnc_proven_optimal(self) -> bool:
        """K = 2 (any L, (B), docs/theory.md §4.3) or L = 1 (the UFM): L_DNC is the minimum."""
        return self.num_classes == 2 or self.num_layers == 1

    def csv_row(self) -> dict[str, Any]:
        """The row of ``atlas.csv`` (:data:`CSV_COLUMNS`; floats at full precision)."""
        return {
            "K": self.num_classes,
            "L": self.num_layers,
            "n": self.per_class,
            "lam": repr(self.lam),
            "width": self.width,
            "best_loss": repr(self.best_loss),
            "dnc_loss": repr(self.dnc_loss),
            "ratio": repr(self.ratio),
            "srg_loss": "" if self.srg_loss is None else repr(self.srg_loss),
            "ranks": ";".join(str(rank) for rank in self.ranks),
            "basins": self.basins,
            "seconds": f"{self.seconds:.3f}",
            "point": self.point,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary."""
        data = asdict(self)
        data["ranks"] = list(self.ranks)
        data["searches"] = list(self.searches)
        data["basin_list"] = list(self.basin_list)
        data["stored_searches"] = list(self.stored_searches)
        data["dnc_proven_optimal"] = self.dnc_proven_optimal
        for key in ("stored_loss", "finished"):
            if not math.isfinite(data[key]):
                data[key] = None
        return data


@dataclass
class AtlasResult:
    """What :func:`run_atlas` produced.

    Attributes
    ----------
    cells : list of AtlasCell
        One per (K, L) of the grid with at least one stored search of the cell, ordered by
        (K, L); each the best of the cell's stored searches.
    settings : dict
        The run's configuration (grid, n, λ, width, method, seed, budget, store).
    computed, reused : int
        Searches of the run's configuration computed by this run, and found in the store.
    failed : list of dict
        Cells whose search raised: ``K``, ``L``, ``error``.
    paths : dict
        Files written (``csv``, ``json``, ``png``, ``store``), as strings.
    """

    cells: list[AtlasCell]
    settings: dict[str, Any]
    computed: int = 0
    reused: int = 0
    failed: list[dict] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary."""
        return {
            "settings": self.settings,
            "computed": self.computed,
            "reused": self.reused,
            "failed": self.failed,
            "paths": self.paths,
            "columns": list(CSV_COLUMNS),
            "cells": [cell.to_dict() for cell in self.cells],
        }

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The CSV text (:data:`CSV_COLUMNS`); also written atomically to ``path`` if given."""
        import csv

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for cell in self.cells:
            writer.writerow(cell.csv_row())
        text = buffer.getvalue()
        if path is not None:
            _write_atomically(Path(path), text.encode())
        return text

    @property
    def kept_from_other_configurations(self) -> list[AtlasCell]:
        """Cells whose kept search has a configuration other than this run's (another seed,
        budget, method or neighbour setting was lower)."""
        names = ("method", "seed", "max_starts", "time_budget", "max_iterations", "patience")
        run = {name: self.settings.get(name) for name in names}
        run["neighbours"] = bool(self.settings.get("neighbours", False))
        return [cell for cell in self.cells if cell.kept_config is not None
                and {**{name: cell.kept_config.get(name) for name in names},
                     "neighbours": bool(cell.kept_config.get("neighbours", False))} != run]

    @property
    def flagged(self) -> list[AtlasCell]:
        """Cells where the wider width of ``width="auto"`` was lower (``wider_lower``)."""
        return [cell for cell in self.cells if cell.wider_lower]


# --------------------------------------------------------------------------------------------
# Heatmap
# --------------------------------------------------------------------------------------------


def plot_atlas(cells: Sequence[AtlasCell], path: str | os.PathLike, title: str | None = None
               ) -> Path:
    """Heatmap of best/L_DNC over (K, L), written to ``path`` (PNG, matplotlib Agg).

    Diverging colour map centred at 1 (blue: below L_DNC, the search beat every DNC point;
    red: above), every cell annotated with its ratio (``*``: flagged by ``width="auto"``). The
    cells where DNC is provably optimal — K = 2 for every L ((B), docs/theory.md §4.3) and L = 1 (the
    UFM, §4.1) — are hatched; grid cells without a result are grey.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.patches import Patch, Rectangle

    if not cells:
        raise ValueError("cells: nothing to plot")
    ks = sorted({cell.num_classes for cell in cells})
    ls = sorted({cell.num_layers for cell in cells})
    ks = list(range(ks[0], ks[-1] + 1))
    ls = list(range(ls[0], ls[-1] + 1))
    table = np.full((len(ls), len(ks)), np.nan)
    by_position = {}
    for cell in cells:
        row, column = ls.index(cell.num_layers), ks.index(cell.num_classes)
        table[row, column] = cell.ratio
        by_position[row, column] = cell
    finite = table[np.isfinite(table)]
    span = max(float(np.max(np.abs(finite - 1.0))) if finite.size else 0.0, 1e-3)
    norm = TwoSlopeNorm(vcenter=1.0, vmin=1.0 - span, vmax=1.0 + span)
    colour_map = plt.get_cmap("RdBu_r").with_extremes(bad="0.85")
    figure, axes = plt.subplots(figsize=(max(5.5, 0.7 * len(ks) + 2.5),
                                         max(3.2, 0.55 * len(ls) + 2.0)))
    image = axes.imshow(np.ma.masked_invalid(table), cmap=colour_map, norm=norm, origin="lower",
                        aspect="auto")
    fontsize = 8 if len(ks) <= 12 else 6
    for row, layers in enumerate(ls):
        for column, classes in enumerate(ks):
            if classes == 2 or layers == 1:
                axes.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False,
                                         hatch="///", edgecolor="0.35", linewidth=1.2))
    for (row, column), cell in by_position.items():
        shade = float(norm(cell.ratio))
        colour = "white" if abs(shade - 0.5) > 0.35 else "black"
        box = None
        if cell.dnc_proven_optimal:  # readable over the hatching
            colour, box = "black", {"boxstyle": "round,pad=0.15", "facecolor": "white",
                                    "alpha": 0.8, "linewidth": 0}
        text = f"{cell.ratio:.4f}" + ("*" if cell.wider_lower else "")
        axes.text(column, row, text, ha="center", va="center", fontsize=fontsize, color=colour,
                  bbox=box)
    axes.set_xticks(range(len(ks)), [str(k) for k in ks])
    axes.set_yticks(range(len(ls)), [str(l) for l in ls])
    axes.set_xlabel("K (classes)")
    axes.set_ylabel("L (weight matrices)")
    axes.set_title(title or "best-known Φ_DUFM / L_DNC (docs/theory.md §4.3, §4.5)", fontsize=10)
    colour_bar = figure.colorbar(image, ax=axes)
    colour_bar.set_label("best / L_DNC")
    handles = [Patch(facecolor="none", edgecolor="0.25", hatch="///",
                     label="DNC provably optimal (K = 2; L = 1)")]
    if any(cell.wider_lower for cell in cells):
        handles.append(Patch(facecolor="none", edgecolor="none",
                             label="* wider width was lower (width auto)"))
    figure.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0.0, 0.07, 1.0, 1.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    figure.savefig(temporary, dpi=130)
    plt.close(figure)
    os.replace(temporary, path)
    return path


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _local_executor(workers: int) -> Executor:
    from .executors import local_process_pool

    return local_process_pool(workers)


def _dask_executor(address: str, timeout: float) -> tuple[Executor, Any]:
    try:
        from distributed import Client
    except ModuleNotFoundError:
        raise ValueError("scheduler: running on a dask cluster needs the package 'distributed'"
                         ) from None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"scheduler: cannot reach {address!r} within {timeout:g} s ({reason})"
                         ) from None
    except (ValueError, TypeError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"scheduler: {address!r} is not a scheduler address ({reason})") from None
    return client.get_executor(pure=False), client


def _results(todo: list[CellConfig], executor: Executor | None, failures: list[dict],
             neighbours_of: Any = None) -> Iterator[tuple[CellConfig, dict]]:
    """(config, payload) of every cell as it finishes; failures are collected, not raised.

    ``neighbours_of(config)``: the neighbour points of a cell (:func:`_neighbour_points`),
    asked for when the cell starts (in this process: after the cells before it are stored).
    """
    def arguments(config: CellConfig) -> tuple:
        if neighbours_of is None or not config.neighbours:
            return (config.to_dict(),)
        return config.to_dict(), neighbours_of(config)

    if executor is None:
        for config in todo:
            try:
                payload = compute_cell(*arguments(config))
            except Exception as error:  # noqa: BLE001 - one failed cell does not stop the atlas
                failures.append({"K": config.num_classes, "L": config.num_layers,
                                 "error": f"{type(error).__name__}: {error}"})
                continue
            yield config, payload
        return
    futures = {executor.submit(compute_cell, *arguments(config)): config for config in todo}
    for future in as_completed(futures):
        config = futures[future]
        try:
            payload = future.result()
        except Exception as error:  # noqa: BLE001
            failures.append({"K": config.num_classes, "L": config.num_layers,
                             "error": f"{type(error).__name__}: {error}"})
            continue
        yield config, payload


def _same_cell(stored: dict, config: CellConfig) -> bool:
    """Whether a stored configuration is a search of the cell of ``config``: the same K, L, n,
    λ and width setting (method, seed and budget may differ)."""
    return (int(stored["num_classes"]) == config.num_classes
            and int(stored["num_layers"]) == config.num_layers
            and int(stored["per_class"]) == config.per_class
            and float(stored["lam"]) == config.lam
            and stored["width"] == config.width)


def _neighbour_points(store: AtlasStore, config: CellConfig) -> list[dict]:
    """The best stored points of the neighbouring cells (K + 1, L), (K − 1, L) and (K, L − 1)
    of ``config`` (the same n, λ and width setting; each the lowest re-evaluated value over
    every stored search of that cell, :func:`_best_stored_search`); cells without a stored
    search, or outside K ≥ 2, L ≥ 1, are skipped.

    Returns
    -------
    list of dict
        ``cell`` [K', L'], ``key`` (the kept search), ``loss`` (re-evaluated), ``point``
        (``.npz`` bytes).
    """
    import dataclasses

    found = []
    K, L = config.num_classes, config.num_layers
    for classes, layers in ((K + 1, L), (K - 1, L), (K, L - 1)):
        if classes < 2 or layers < 1:
            continue
        neighbour = dataclasses.replace(config, num_classes=classes, num_layers=layers,
                                        neighbours=False)
        row, summaries = _best_stored_search(store, neighbour)
        if row is None:
            continue
        loss = min(summary["best_loss"] for summary in summaries)
        found.append({"cell": [classes, layers], "key": row["key"], "loss": loss,
                      "point": row["point"]})
    return found


def _stored_value(row: dict) -> float:
    """Φ_DUFM recomputed from the point of a stored row (:func:`load_point` on its bytes)."""
    _, _, value = _load_npz(io.BytesIO(row["point"]), f"store cell {row['key']}")
    return value


def _best_stored_search(store: AtlasStore, config: CellConfig) -> tuple[dict | None, list[dict]]:
    """The stored search of the cell of ``config`` with the lowest re-evaluated value, and a
    summary of every stored search of the cell.

    Candidates: every row of the store with the same K, L, n, λ and width setting
    (:func:`_same_cell`), whatever its method, seed or budget. Each point is re-evaluated
    (:func:`load_point`); the lowest value wins, a tie going to ``config`` itself, then to the
    search stored first.

    Returns
    -------
    row : dict or None
        The kept row (:meth:`AtlasStore.cell_rows`), None if the cell has no stored search.
    summaries : list of dict
        One per stored search of the cell, ordered by when it was stored: ``key``, the method,
        seed, budget and ``neighbours`` of its configuration, its ``wider_lower``,
        ``best_loss`` (re-evaluated), ``finished``, ``kept``.
    """
    rows = [row for row in store.cell_rows(config.num_classes, config.num_layers)
            if _same_cell(row["config"], config)]
    if not rows:
        return None, []
    values = [_stored_value(row) for row in rows]
    order = sorted(range(len(rows)),
                   key=lambda index: (values[index], rows[index]["key"] != config.key, index))
    kept = order[0]
    summaries = []
    for index, row in enumerate(rows):
        stored = row["config"]
        summaries.append({
            "key": row["key"],
            **{name: stored.get(name) for name in ("method", "seed", "max_starts", "time_budget",
                                                   "max_iterations", "patience")},
            "neighbours": bool(stored.get("neighbours", False)),
            "wider_lower": bool(row["result"].get("wider_lower", False)),
            "best_loss": values[index],
            "finished": row["finished"],
            "kept": index == kept,
        })
    return rows[kept], summaries


def _cell_from_row(row: dict, point_path: Path | None, out: Path | None,
                   summaries: Sequence[dict] = ()) -> AtlasCell:
    """An :class:`AtlasCell` from a stored row, its value recomputed from the point;
    ``summaries``: every stored search of the cell (:func:`_best_stored_search`)."""
    result, config = row["result"], row["config"]
    if point_path is not None:
        _write_atomically(point_path, row["point"])
        _, _, value = load_point(point_path)
        point = point_path.relative_to(out).as_posix() if out is not None else str(point_path)
    else:
        value = _stored_value(row)
        point = ""
    dnc = float(result["dnc_loss"])
    wider_lower = bool(result["wider_lower"])
    if config.get("neighbours"):
        # the narrower search of a neighbour search is no search to compare with (with a
        # polish budget a single start): the flag is that of the lowest search without them
        plain = [summary for summary in summaries if not summary["neighbours"]]
        wider_lower = bool(plain and min(plain, key=lambda item: item["best_loss"])
                           ["wider_lower"])
    return AtlasCell(
        num_classes=int(config["num_classes"]),
        num_layers=int(config["num_layers"]),
        per_class=int(config["per_class"]),
        lam=float(config["lam"]),
        width=int(result["width"]),
        best_loss=value,
        dnc_loss=dnc,
        ratio=value / dnc,
        srg_loss=result["srg_loss"],
        ranks=tuple(int(rank) for rank in result["ranks"]),
        basins=len(result["basins"]),
        seconds=float(result["seconds"]),
        point=point,
        method=str(config["method"]),
        seed=int(config["seed"]),
        config_key=str(row["key"]),
        width_setting=config["width"],
        wider_lower=wider_lower,
        searches=tuple(result["searches"]),
        basin_list=tuple(result["basins"]),
        srg=result["srg"],
        stored_loss=float(result["loss"]),
        finished=float(row["finished"]),
        search_count=max(len(summaries), 1),
        kept_config=dict(config),
        stored_searches=tuple(summaries),
    )


def run_atlas(
    num_classes: Any = None,
    num_layers: Any = None,
    *,
    per_class: int = 1,
    lam: float = 0.004,
    width: Any = "auto",
    method: str = DEFAULT_METHOD,
    seed: int = 0,
    workers: int = 1,
    scheduler: str | None = None,
    store: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    quick: bool = False,
    max_starts: int | None = None,
    time_budget: float | None = None,
    max_iterations: int | None = None,
    patience: int | None = None,
    scheduler_timeout: float = 10.0,
    progress: bool = False,
    neighbours: bool = False,
) -> AtlasResult:
    """Build the atlas of best-known L-DUFM minima over a (K, L) grid (docs/theory.md §4.3–4.6).

    For every cell the search of ``method`` minimizes Φ_DUFM with λ_H = λ_1 = … = λ_L = λ and n
    samples per class; the kept point's value is recomputed from its file (:func:`load_point`)
    and set against L_DNC (docs/theory.md §4.3): ratio = best / L_DNC. For K = 2 (any L) and L = 1,
    L_DNC is the proven minimum, so there ratio ≥ 1 − BASIN_TOLERANCE is a check of the
    search; elsewhere ratio < 1 is a certified low-rank point below every DNC point (docs/theory.md
    §4.5), set beside L_SRG of the explicit construction (:func:`srg_reference`).

    The run computes only the searches of its own configuration (K, L, n, λ, width, method,
    seed, budget) that are not in the store yet, storing each as it finishes: a rerun resumes,
    a killed run loses only the searches in flight, none is repeated. The atlas it returns and
    writes is then taken, for every (K, L) of the grid, from every stored search of that cell
    (the same K, L, n, λ and width setting; any method, seed or budget): all their points are
    re-evaluated and the lowest value is kept (a tie goes to this run's configuration). A cell
    whose search of this run failed still appears if the store holds another search of it.
    So a cell is improved by running it again into the same store with another seed or a
    larger budget (``run_atlas(3, 6, seed=1, store=S)``); the next run over the grid with the
    first configuration computes nothing and shows the lower value.
    :attr:`AtlasCell.search_count`, :attr:`AtlasCell.kept_config` and
    :attr:`AtlasCell.stored_searches` record which searches competed and which was kept.

    With ``neighbours=True`` each search also starts from the neighbouring cells' best stored
    points (:func:`neighbour_starts`, taken when the cell's search begins: in a one-process
    run the cells before it in the grid order, (K − 1, L) and (K, L − 1), already hold this
    run's searches; with ``workers`` > 1 or a cluster the points are those stored when the
    run began); a missing neighbour is skipped.

    Parameters
    ----------
    num_classes : int, sequence of int or str
        The K of the grid (each ≥ 2); a string is a range ``"2..20"``. Default with ``quick``:
        :data:`QUICK_CLASSES`.
    num_layers : int, sequence of int or str
        The L of the grid (each ≥ 1). Default with ``quick``: :data:`QUICK_LAYERS`.
    per_class : int
        n ≥ 1.
    lam : float
        λ > 0 on every block.
    width : "auto" or int
        ``"auto"``: search at w = max(2K, 10), then at w + K also from the first search's best
        point (embedded with zeros, same Φ), keep the lower, and flag the cell
        (``wider_lower``) if best_{w+K} < best_w·(1 − :data:`BASIN_TOLERANCE`), i.e. if w was
        not wide enough that a wider layer does not lower the value. An integer (≥ the largest
        K) fixes every layer's width.
    method : str
        Method of :func:`ufm.solvers.solve` (not the torch ones). ``"global"`` gets ``seed``,
        ``max_starts``, ``patience``, ``time_budget``, ``max_iterations`` and
        ``basin_tolerance`` = :data:`BASIN_TOLERANCE`; a local method is restarted from seeds
        [seed, i], i = 0..max_starts−1, each with ``max_iterations`` (``"kink_lbfgs"`` with
        :data:`ufm.solvers.KINK_LBFGS_LOW_RANK_SETTINGS`), no new start after ``time_budget``,
        and its end points are grouped into basins as ``"global"`` does.
    seed : int
        Seed of every search of this run (≥ 0).
    workers : int
        1: cells run in this process; N > 1: N local processes.
    scheduler : str, optional
        Address of a ``dask.distributed`` scheduler (``tcp://HOST:8786``); cells run on its
        workers (which must import this ``ufm``). Exclusive with ``workers`` > 1.
    store : path, optional
        The SQLite store (:class:`AtlasStore`); default ``out/atlas.sqlite``, or in memory
        without ``out``.
    out : path, optional
        Output folder: ``atlas.csv``, ``atlas.json``, ``atlas.png``, ``points/`` (the kept
        point of each cell), written once the searches are done. Without it nothing is written
        (but the store, if given).
    quick : bool
        :data:`QUICK_CLASSES` × :data:`QUICK_LAYERS` by default and :data:`QUICK_BUDGET`
        (instead of :data:`FULL_BUDGET`) for the budget options left at None.
    max_starts, time_budget, max_iterations, patience : optional
        Per-search budget (each width of a cell is one search); None takes the value of
        :data:`FULL_BUDGET` (the defaults of ``"global"``) or :data:`QUICK_BUDGET`
        (``patience`` is used by ``"global"`` only).
    scheduler_timeout : float
        Seconds to wait for the scheduler before giving up.
    progress : bool
        A tqdm bar over cells on stderr.
    neighbours : bool
        Also start each search from the neighbour starts of :func:`neighbour_starts`, polished
        first at the widest search (outside the search's budget); with ``width="auto"`` that
        search runs at max(w + K, the widest neighbour point's width). Part of the stored
        configuration (a search of the cell beside the plain ones). ``max_starts=1`` then
        runs only the neighbour polish and the first start of each width.

    Returns
    -------
    AtlasResult

    Raises
    ------
    ValueError
        For bad arguments (named), an unreachable scheduler, or a ``store`` that is not an atlas
        store. Nothing is written before the arguments are checked.
    """
    if not isinstance(quick, (bool, np.bool_)):
        raise TypeError(f"quick must be True or False, got {quick!r}")
    if not isinstance(neighbours, (bool, np.bool_)):
        raise TypeError(f"neighbours must be True or False, got {neighbours!r}")
    neighbours = bool(neighbours)
    if num_classes is None:
        if not quick:
            raise ValueError("num_classes is required (or quick=True)")
        num_classes = QUICK_CLASSES
    if num_layers is None:
        if not quick:
            raise ValueError("num_layers is required (or quick=True)")
        num_layers = QUICK_LAYERS
    classes = _grid(num_classes, "num_classes", 2)
    layers = _grid(num_layers, "num_layers", 1)
    per_class = _integer_at_least(per_class, "per_class", 1)
    lam = check_positive_scalar(lam, "lam", allow_zero=False)
    width = _check_width(width, max(classes))
    methods = _atlas_methods()
    if method not in methods:
        raise ValueError(f"method must be one of {methods}, got {method!r}")
    seed = _integer_at_least(seed, "seed", 0)
    workers = _integer_at_least(workers, "workers", 1)
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise ValueError(f"scheduler must be an address like tcp://HOST:8786, got {scheduler!r}")
        if workers > 1:
            raise ValueError("workers and scheduler are exclusive (the cluster has its workers)")
    scheduler_timeout = check_positive_scalar(scheduler_timeout, "scheduler_timeout",
                                              allow_zero=False)
    budget = dict(QUICK_BUDGET if quick else FULL_BUDGET)
    if max_starts is not None:
        budget["max_starts"] = _integer_at_least(max_starts, "max_starts", 1)
    if time_budget is not None:
        budget["time_budget"] = check_positive_scalar(time_budget, "time_budget", allow_zero=False)
    if max_iterations is not None:
        budget["max_iterations"] = _integer_at_least(max_iterations, "max_iterations", 1)
    if patience is not None:
        budget["patience"] = _integer_at_least(patience, "patience", 1)
    if method != "global":
        budget["patience"] = None
    out_path = _check_out(out)
    store_path = _check_store(store)
    if store_path is None and out_path is not None:
        store_path = out_path / "atlas.sqlite"
    configs = [
        CellConfig(num_classes=k, num_layers=l, per_class=per_class, lam=lam, width=width,
                   method=method, seed=seed, max_starts=budget["max_starts"],
                   time_budget=float(budget["time_budget"]),
                   max_iterations=budget["max_iterations"], patience=budget["patience"],
                   neighbours=neighbours)
        for k in classes for l in layers
    ]
    settings = {
        "num_classes": list(classes), "num_layers": list(layers), "per_class": per_class,
        "lam": lam, "width": width, "method": method, "seed": seed, **budget,
        "neighbours": neighbours,
        "basin_tolerance": BASIN_TOLERANCE, "rank_rtol": RANK_RTOL,
        "workers": workers, "scheduler": scheduler,
        "store": None if store_path is None else str(store_path),
    }

    executor, client = None, None
    if scheduler is not None:
        executor, client = _dask_executor(scheduler, scheduler_timeout)
    try:
        atlas_store = AtlasStore(store_path)
    except BaseException:
        if client is not None:
            client.close()
        raise
    failures: list[dict] = []
    computed = 0
    try:
        done = atlas_store.keys()
        todo = [config for config in configs if config.key not in done]
        if executor is None and workers > 1 and len(todo) > 1:
            executor = _local_executor(min(workers, len(todo)))
        from tqdm.auto import tqdm

        bar = tqdm(total=len(configs), initial=len(configs) - len(todo), desc="atlas",
                   unit="cell", file=sys.stderr, disable=not progress, dynamic_ncols=True)
        try:
            neighbours_of = (None if not neighbours
                             else (lambda config: _neighbour_points(atlas_store, config)))
            for config, payload in _results(todo, executor, failures, neighbours_of):
                atlas_store.put(config, payload)
                computed += 1
                result = payload["result"]
                bar.set_postfix_str(f"K={config.num_classes} L={config.num_layers} "
                                    f"ratio={result['loss'] / result['dnc_loss']:.4f}")
                bar.update(1)
        finally:
            bar.close()
            if executor is not None:
                try:
                    executor.shutdown(wait=True, cancel_futures=True)
                except TypeError:  # dask's ClientExecutor
                    executor.shutdown(wait=True)
        cells = []
        for config in configs:
            # the best of every stored search of the cell, this run's or not
            row, summaries = _best_stored_search(atlas_store, config)
            if row is None:
                continue
            point_path = None if out_path is None else out_path / "points" / config.point_name
            cells.append(_cell_from_row(row, point_path, out_path, summaries))
    finally:
        atlas_store.close()
        if client is not None:
            client.close()

    atlas = AtlasResult(cells=cells, settings=settings, computed=computed,
                        reused=len(configs) - len(todo), failed=failures)
    if store_path is not None:
        atlas.paths["store"] = str(store_path)
    if out_path is not None:
        csv_path = out_path / "atlas.csv"
        atlas.to_csv(csv_path)
        atlas.paths["csv"] = str(csv_path)
        json_path = out_path / "atlas.json"
        atlas.paths["json"] = str(json_path)
        if cells:
            png_path = plot_atlas(cells, out_path / "atlas.png")
            atlas.paths["png"] = str(png_path)
        _write_atomically(json_path, json.dumps(atlas.to_dict(), indent=2).encode())
    return atlas
