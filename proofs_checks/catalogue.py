"""The machinery of the theorem catalogue: statements, random draws, the runner and the report.

A :class:`Statement` is one checkable claim of docs/theory.md §5: its ID, title, source and provenance
tag; a sampler of random instances; the hypotheses as a predicate; a function that evaluates the
two sides; the relation between them (``<=``, ``=``, ``>=``) and the tolerance rule with its reason.
:func:`run_statement` evaluates a statement on seeded instances and returns a :class:`CheckResult`;
:func:`write_report` writes the results as CSV and Markdown.

Tolerance rules (docs/theory.md §5)
-----------------------------------
identity
    ``|lhs - rhs| <= relative * scale + slack``, where ``scale`` is the size of the quantities
    (by default ``max(|lhs|, |rhs|)``), ``relative = c * u * kappa`` with u = 2.2e-16 the unit
    roundoff and kappa the conditioning of the computation, and ``slack`` an optional absolute
    allowance that an instance states (for optimization checks: a bound from the final gradient
    norm).
inequality
    ``lhs <= rhs + relative * |rhs| + absolute * scale + slack`` with ``relative = 1e-10`` and
    ``absolute = 1e-14`` by default (for ``>=`` the roles of the sides are swapped).

A statement whose hypotheses held on fewer than ``minimum_held`` of its instances fails: a check
that never meets its hypotheses proves nothing. A known-false statement (``expected_false``) is a
counterexample search: it passes when at least one instance violates the claim, and the best
counterexample is printed.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

UNIT_ROUNDOFF = float(np.finfo(np.float64).eps)  # u of docs/theory.md §5: 2.2e-16

RELATIONS = ("<=", "=", ">=")
TAGS = ("[paper]", "[paper†]", "[derived]", "[classical]", "[numerical]")


# --------------------------------------------------------------------------------------------
# Random draws
# --------------------------------------------------------------------------------------------


class Draw:
    """Source of the random choices of one instance.

    Scalars (sizes, exponents, choices) go through :meth:`integer`, :meth:`uniform`,
    :meth:`log_uniform` and :meth:`choice`; arrays come from :attr:`generator`. The numpy version
    draws everything from one seeded generator; the hypothesis version draws the scalars through
    hypothesis (so a failure shrinks to small sizes) and seeds the array generator from a drawn
    integer (which shrinks to 0).
    """

    generator: np.random.Generator
    index: int | None = None
    """Position of the instance in a seeded run (None under hypothesis); samplers may use it to
    enumerate a fixed list of cases first (e.g. every r of a stated range)."""

    def integer(self, low: int, high: int, label: str = "") -> int:
        """Return an integer in ``[low, high]`` (both included)."""
        raise NotImplementedError

    def uniform(self, low: float, high: float, label: str = "") -> float:
        """Return a float in ``[low, high]``."""
        raise NotImplementedError

    def log_uniform(self, low: float, high: float, label: str = "") -> float:
        """Return ``10**e`` with ``e`` uniform in ``[log10(low), log10(high)]``."""
        return float(10.0 ** self.uniform(math.log10(low), math.log10(high), label))

    def choice(self, options: Sequence[Any], label: str = "") -> Any:
        """Return one of ``options``."""
        return options[self.integer(0, len(options) - 1, label)]

    def boolean(self, label: str = "") -> bool:
        """Return True or False with equal chance."""
        return bool(self.integer(0, 1, label))


class NumpyDraw(Draw):
    """Draws from one seeded :class:`numpy.random.Generator`."""

    def __init__(self, generator: np.random.Generator, index: int | None = None):
        self.generator = generator
        self.index = index

    def integer(self, low: int, high: int, label: str = "") -> int:
        return int(self.generator.integers(low, high, endpoint=True))

    def uniform(self, low: float, high: float, label: str = "") -> float:
        return float(self.generator.uniform(low, high))


class HypothesisDraw(Draw):
    """Draws scalars through a hypothesis ``data`` object; arrays from a drawn seed."""

    def __init__(self, data: Any):
        self.data = data
        self._generator: np.random.Generator | None = None

    @property
    def generator(self) -> np.random.Generator:  # type: ignore[override]
        if self._generator is None:
            from hypothesis import strategies

            seed = self.data.draw(strategies.integers(0, 2**32 - 1), label="array seed")
            self._generator = np.random.default_rng(seed)
        return self._generator

    def integer(self, low: int, high: int, label: str = "") -> int:
        from hypothesis import strategies

        return int(self.data.draw(strategies.integers(low, high), label=label or None))

    def uniform(self, low: float, high: float, label: str = "") -> float:
        from hypothesis import strategies

        value = self.data.draw(
            strategies.floats(low, high, allow_nan=False, allow_infinity=False),
            label=label or None,
        )
        return float(value)


# --------------------------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """The tolerance rule of a statement, with the reason for its size.

    Parameters
    ----------
    relative : float
        Identities: allowed ``|lhs - rhs| / scale``. Inequalities: allowed excess relative to
        ``|rhs|``.
    absolute : float
        Inequalities: allowed excess relative to the instance's ``scale`` (the size of the
        quantities that cancel in ``rhs - lhs``). Unused for identities.
    reason : str
        Why the tolerance has this size.
    """

    relative: float
    absolute: float = 0.0
    reason: str = ""


INEQUALITY_TOLERANCE = Tolerance(
    relative=1e-10,
    absolute=1e-14,
    reason="inequality rule of docs/theory.md §5: lhs ≤ rhs·(1 + 1e-10) + 1e-14·scale; both sides are "
    "sums of O(10) float64 operations (error ≤ 1e-14 relative), so the rule only absorbs rounding "
    "at equality and leaves any real violation visible",
)


@dataclass(frozen=True)
class Sides:
    """The two sides of a statement on one instance.

    Parameters
    ----------
    lhs, rhs : float or numpy.ndarray
        The sides; arrays are compared entrywise (the worst entry counts).
    scale : float, optional
        Size of the quantities involved (default ``max(|lhs|, |rhs|)``). Identities divide the
        error by it; inequalities allow ``absolute * scale`` of excess.
    slack : float
        Absolute allowance stated by the instance (e.g. a bound from a final gradient norm).
    conditioning : float
        Multiplies the relative tolerance (the kappa of the rule ``c * u * kappa``).
    note : str
        Free text printed with the instance (e.g. what a search found).
    """

    lhs: Any
    rhs: Any
    scale: float | None = None
    slack: float = 0.0
    conditioning: float = 1.0
    note: str = ""


@dataclass(frozen=True)
class Statement:
    """One statement of docs/theory.md §5 as a checkable object.

    Parameters
    ----------
    identifier : str
        docs/theory.md ID; a statement with several parts uses ``ID.part`` (e.g. ``F1.bound``).
    title : str
        Short name.
    source : str
        Reference (paper, classical source, or "docs/theory.md §4.3").
    tag : str
        Provenance tag: one of ``[paper]``, ``[paper†]``, ``[derived]``, ``[classical]``,
        ``[numerical]``.
    formula : str
        The claim as written in docs/theory.md.
    relation : str
        ``"<="``, ``"="`` or ``">="`` between :attr:`Sides.lhs` and :attr:`Sides.rhs`.
    sample : callable
        ``sample(draw) -> dict``: one random instance (parameters and whatever the hypotheses
        and sides need).
    evaluate : callable
        ``evaluate(instance) -> Sides``.
    tolerance : Tolerance
        The tolerance rule and its reason.
    hypotheses : callable, optional
        ``hypotheses(instance) -> bool``; default: always true.
    default_instances : int
        Instances of the default run.
    minimum_held : float
        Fraction of instances on which the hypotheses must hold, else the check is vacuous and
        fails (at least one instance always).
    expected_false : bool
        Known-false statement: the check is a counterexample search that must find a violation.
    hypothesis_examples : int
        Examples for the hypothesis-strategy test (0: no such test, e.g. for searches).
    slow : bool
        Excluded from the default run (``pytest -m slow`` and ``--slow`` include it).
    requires : tuple of str
        Modules the check imports; when one is missing or lacks the API, the check is skipped
        with the reason.
    """

    identifier: str
    title: str
    source: str
    tag: str
    formula: str
    relation: str
    sample: Callable[[Draw], dict]
    evaluate: Callable[[dict], Sides]
    tolerance: Tolerance
    hypotheses: Callable[[dict], bool] | None = None
    default_instances: int = 50
    minimum_held: float = 0.25
    expected_false: bool = False
    hypothesis_examples: int = 0
    slow: bool = False
    requires: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"relation must be one of {RELATIONS}, got {self.relation!r}")
        if self.tag not in TAGS:
            raise ValueError(f"tag must be one of {TAGS}, got {self.tag!r}")
        if not 0.0 <= self.minimum_held <= 1.0:
            raise ValueError(f"minimum_held must lie in [0, 1], got {self.minimum_held}")

    @property
    def base_identifier(self) -> str:
        """The docs/theory.md ID without the part suffix (``F1`` for ``F1.bound``)."""
        return self.identifier.split(".")[0]

    @property
    def kind(self) -> str:
        """``identity``, ``inequality`` or ``counterexample search``."""
        if self.expected_false:
            return "counterexample search"
        return "identity" if self.relation == "=" else "inequality"

    def hypotheses_hold(self, instance: dict) -> bool:
        """Return whether the hypotheses hold on ``instance``."""
        return True if self.hypotheses is None else bool(self.hypotheses(instance))


# --------------------------------------------------------------------------------------------
# Evaluating one instance
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """The comparison of the two sides on one instance.

    ``margin`` is ``rhs - lhs`` for ``<=`` and ``lhs - rhs`` for ``>=`` (worst entry);
    ``relative_error`` is ``|lhs - rhs| / scale`` for identities; ``excess`` is how far the
    instance is beyond its tolerance (positive means violated).
    """

    held: bool
    violated: bool = False
    margin: float = math.nan
    relative_margin: float = math.nan
    relative_error: float = math.nan
    excess: float = -math.inf
    sides: Sides | None = None
    error: str = ""


def compare(relation: str, tolerance: Tolerance, sides: Sides) -> Outcome:
    """Compare ``sides`` under ``relation`` and ``tolerance``; see the module docstring."""
    lhs = np.asarray(sides.lhs, dtype=float)
    rhs = np.asarray(sides.rhs, dtype=float)
    if not (np.all(np.isfinite(lhs)) and np.all(np.isfinite(rhs))):
        return Outcome(held=True, violated=True, excess=math.inf, sides=sides,
                       error="non-finite side")
    magnitude = float(max(np.max(np.abs(lhs), initial=0.0), np.max(np.abs(rhs), initial=0.0)))
    scale = magnitude if sides.scale is None else float(sides.scale)
    scale = max(scale, np.finfo(float).tiny)
    if relation == "=":
        difference = float(np.max(np.abs(lhs - rhs), initial=0.0))
        allowed = tolerance.relative * sides.conditioning * scale + sides.slack
        return Outcome(
            held=True,
            violated=difference > allowed,
            margin=-difference,
            relative_margin=-difference / scale,
            relative_error=difference / scale,
            excess=(difference - allowed) / scale,
            sides=sides,
        )
    small, large = (lhs, rhs) if relation == "<=" else (rhs, lhs)
    gaps = large - small
    allowed = (
        tolerance.relative * sides.conditioning * np.abs(large)
        + tolerance.absolute * scale
        + sides.slack
    )
    margin = float(np.min(gaps)) if gaps.ndim else float(gaps)
    worst_excess = float(np.max(-(gaps + allowed))) if gaps.ndim else float(-(gaps + allowed))
    return Outcome(
        held=True,
        violated=worst_excess > 0.0,
        margin=margin,
        relative_margin=margin / scale,
        excess=worst_excess / scale,
        sides=sides,
    )


def evaluate_instance(statement: Statement, instance: dict) -> Outcome:
    """Check the hypotheses of ``statement`` on ``instance`` and, if they hold, compare the sides."""
    if not statement.hypotheses_hold(instance):
        return Outcome(held=False)
    sides = statement.evaluate(instance)
    return compare(statement.relation, statement.tolerance, sides)


# --------------------------------------------------------------------------------------------
# Describing instances
# --------------------------------------------------------------------------------------------


def describe_value(value: Any, max_entries: int = 12) -> str:
    """Return a short text for one instance entry (small arrays in full, large ones by shape)."""
    if isinstance(value, (np.ndarray, list, tuple)) and not isinstance(value, str):
        array = np.asarray(value)
        if array.dtype == object:
            return f"<{len(value)} items>"
        if array.size <= max_entries:
            text = np.array2string(array, precision=6, separator=", ", max_line_width=10**6)
            return " ".join(text.split())
        return f"<array {array.shape}>"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.10g}"
    if callable(value):
        return f"<{getattr(value, '__name__', 'callable')}>"
    return str(value)


def describe_instance(instance: dict, max_entries: int = 12) -> str:
    """Return ``key=value`` pairs for the public entries of ``instance`` (keys not starting with _)."""
    parts = [
        f"{key}={describe_value(value, max_entries)}"
        for key, value in instance.items()
        if not key.startswith("_")
    ]
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# Running a statement
# --------------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    """The result of checking one statement on seeded instances."""

    identifier: str
    title: str
    tag: str
    source: str
    kind: str
    relation: str
    instances: int = 0
    hypotheses_held: int = 0
    required_held: int = 1
    violations: int = 0
    errors: int = 0
    smallest_margin: float = math.nan
    smallest_relative_margin: float = math.nan
    largest_relative_error: float = math.nan
    worst_instance: str = ""
    worst_index: int = -1
    seed: int = 0
    seconds: float = 0.0
    expected_false: bool = False
    skipped: str = ""
    message: str = ""

    @property
    def vacuous(self) -> bool:
        """True if the hypotheses held on too few instances."""
        return not self.skipped and self.hypotheses_held < self.required_held

    @property
    def passed(self) -> bool:
        """True for a skipped check and for a check that met its hypotheses and its claim."""
        if self.skipped:
            return True
        if self.vacuous or self.errors:
            return False
        if self.expected_false:
            return self.violations >= 1
        return self.violations == 0

    @property
    def status(self) -> str:
        """``pass``, ``FAIL`` (violations or errors), ``VACUOUS``, ``NOT FOUND`` or ``skipped``."""
        if self.skipped:
            return "skipped"
        if self.vacuous:
            return "VACUOUS"
        if self.errors:
            return "ERROR"
        if self.expected_false:
            return "found" if self.violations else "NOT FOUND"
        return "pass" if self.violations == 0 else "FAIL"

    def summary(self) -> str:
        """A multi-line text describing the result and its worst instance."""
        lines = [
            f"{self.identifier} {self.tag} {self.title}: {self.status}",
            f"  instances {self.instances}, hypotheses held {self.hypotheses_held} "
            f"(required {self.required_held}), violations {self.violations}, errors {self.errors}",
            f"  smallest margin {self.smallest_margin:.3e} "
            f"(relative {self.smallest_relative_margin:.3e}), "
            f"largest relative error {self.largest_relative_error:.3e}",
        ]
        if self.worst_instance:
            label = "counterexample" if self.expected_false and self.violations else "worst instance"
            lines.append(
                f"  {label} (seed {self.seed}, instance {self.worst_index}): {self.worst_instance}"
            )
        if self.message:
            lines.append(f"  {self.message}")
        if self.skipped:
            lines.append(f"  skipped: {self.skipped}")
        return "\n".join(lines)


def instance_generator(identifier: str, seed: int, index: int) -> np.random.Generator:
    """Return the generator of instance ``index`` of statement ``identifier`` under ``seed``.

    The stream depends on the seed, a stable hash of the ID and the index only, so one instance
    reproduces on its own and statements do not share draws.
    """
    return np.random.default_rng([int(seed), zlib.crc32(identifier.encode()), int(index)])


def missing_requirement(statement: Statement) -> str:
    """Return why a required module or attribute is unavailable ('' if all are there).

    Each entry of ``statement.requires`` is ``module`` or ``module:attribute[,attribute...]``.
    """
    import importlib

    for requirement in statement.requires:
        module_name, _, attributes = requirement.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exception:  # noqa: BLE001 - any import failure means "not available"
            return f"{module_name} not importable ({type(exception).__name__}: {exception})"
        for attribute in filter(None, attributes.split(",")):
            if not hasattr(module, attribute):
                return f"{module_name}.{attribute} not available"
    return ""


def run_statement(
    statement: Statement,
    instances: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> CheckResult:
    """Evaluate ``statement`` on seeded random instances.

    Parameters
    ----------
    statement : Statement
        The statement.
    instances : int, optional
        Number of instances (default ``statement.default_instances``).
    seed : int
        Seed of the draw; instance ``i`` uses :func:`instance_generator`.
    progress : bool
        Show a tqdm bar over the instances.

    Returns
    -------
    CheckResult
        Counts, the smallest margin, the largest relative error and the worst instance (for a
        counterexample search: the instance with the largest violation).
    """
    count = statement.default_instances if instances is None else int(instances)
    if count < 1:
        raise ValueError(f"instances must be at least 1, got {count}")
    result = CheckResult(
        identifier=statement.identifier,
        title=statement.title,
        tag=statement.tag,
        source=statement.source,
        kind=statement.kind,
        relation=statement.relation,
        seed=seed,
        expected_false=statement.expected_false,
        required_held=max(1, math.ceil(statement.minimum_held * count)),
    )
    reason = missing_requirement(statement)
    if reason:
        result.skipped = reason
        return result
    started = time.perf_counter()
    worst_key = -math.inf
    indices: Iterable[int] = range(count)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=statement.identifier, leave=False, unit="inst")
    for index in indices:
        result.instances += 1
        instance: dict = {}
        try:
            instance = statement.sample(
                NumpyDraw(instance_generator(statement.identifier, seed, index), index)
            )
            outcome = evaluate_instance(statement, instance)
        except Exception:  # noqa: BLE001 - a crash in a check is reported, not raised
            result.errors += 1
            if not result.message:
                result.message = (
                    f"error at instance {index} ({describe_instance(instance)}): "
                    + traceback.format_exc(limit=3).strip().splitlines()[-1]
                )
            continue
        if not outcome.held:
            continue
        result.hypotheses_held += 1
        result.violations += int(outcome.violated)
        result.smallest_margin = _nanmin(result.smallest_margin, outcome.margin)
        result.smallest_relative_margin = _nanmin(
            result.smallest_relative_margin, outcome.relative_margin
        )
        result.largest_relative_error = _nanmax(result.largest_relative_error, outcome.relative_error)
        key = outcome.excess
        if key > worst_key:
            worst_key = key
            result.worst_index = index
            note = outcome.sides.note if outcome.sides is not None else ""
            sides_text = ""
            if outcome.sides is not None:
                sides_text = (
                    f"; lhs={describe_value(outcome.sides.lhs)}, rhs={describe_value(outcome.sides.rhs)}"
                )
            result.worst_instance = describe_instance(instance) + sides_text + (
                f"; {note}" if note else ""
            )
    result.seconds = time.perf_counter() - started
    return result


def _nanmin(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return min(a, b)


def _nanmax(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return max(a, b)


# --------------------------------------------------------------------------------------------
# Registry and selection
# --------------------------------------------------------------------------------------------

DEFERRED: dict[str, str] = {}
"""Statements of docs/theory.md §5 (or parts) not in the catalogue yet, with the reason."""

SOURCE_MODULES = (
    "proofs_checks.foundations",
    "proofs_checks.classical_ufm",
    "proofs_checks.sukenik2023",
    "proofs_checks.sukenik2024",
    "proofs_checks.jacot2025",
)


def all_statements() -> list[Statement]:
    """Return every statement of the catalogue, in docs/theory.md order of the source modules."""
    import importlib

    statements: list[Statement] = []
    for name in SOURCE_MODULES:
        statements.extend(importlib.import_module(name).STATEMENTS)
    identifiers = [statement.identifier for statement in statements]
    duplicates = sorted({i for i in identifiers if identifiers.count(i) > 1})
    if duplicates:
        raise RuntimeError(f"duplicate statement IDs: {duplicates}")
    return statements


def select_statements(
    statements: Sequence[Statement], only: Iterable[str] | None = None, include_slow: bool = True
) -> list[Statement]:
    """Return the statements named in ``only`` (an ID selects all its parts), optionally without slow ones.

    Raises
    ------
    ValueError
        If a name in ``only`` matches no statement.
    """
    chosen = [s for s in statements if include_slow or not s.slow]
    if only is None:
        return chosen
    names = [name.strip() for name in only if name.strip()]
    unknown = [
        name
        for name in names
        if not any(s.identifier == name or s.base_identifier == name for s in statements)
    ]
    if unknown:
        raise ValueError(f"unknown statement IDs: {', '.join(unknown)}")
    return [s for s in chosen if s.identifier in names or s.base_identifier in names]


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

REPORT_COLUMNS = (
    "ID",
    "tag",
    "kind",
    "relation",
    "instances",
    "hypotheses held",
    "violations",
    "smallest margin",
    "smallest relative margin",
    "largest relative error",
    "status",
    "seconds",
    "title",
    "source",
    "worst instance",
)


def report_rows(results: Sequence[CheckResult]) -> list[dict[str, str]]:
    """Return one row of text per result, keyed by :data:`REPORT_COLUMNS`."""

    def number(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.3e}"

    rows = []
    for result in results:
        rows.append(
            {
                "ID": result.identifier,
                "tag": result.tag,
                "kind": result.kind,
                "relation": result.relation,
                "instances": str(result.instances),
                "hypotheses held": str(result.hypotheses_held),
                "violations": str(result.violations),
                "smallest margin": number(result.smallest_margin),
                "smallest relative margin": number(result.smallest_relative_margin),
                "largest relative error": number(result.largest_relative_error),
                "status": result.status if not result.skipped else f"skipped ({result.skipped})",
                "seconds": f"{result.seconds:.2f}",
                "title": result.title,
                "source": result.source,
                "worst instance": result.worst_instance,
            }
        )
    return rows


def format_table(results: Sequence[CheckResult]) -> str:
    """Return the Markdown table of the report (without the worst-instance column)."""
    columns = [c for c in REPORT_COLUMNS if c not in ("worst instance", "source")]
    rows = report_rows(results)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(row[c].replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines)


def write_report(results: Sequence[CheckResult], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``catalogue.csv`` and ``catalogue.md`` under ``out_dir``; return their paths."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    csv_path = directory / "catalogue.csv"
    markdown_path = directory / "catalogue.md"
    rows = report_rows(results)
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(REPORT_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    sections = [
        "# Theorem catalogue report (docs/theory.md §5)",
        "",
        format_table(results),
        "",
        "## Worst instances and counterexamples",
        "",
    ]
    for result in results:
        sections.append(f"- **{result.identifier}** ({result.status}): {result.worst_instance or '—'}")
        if result.message:
            sections.append(f"  - {result.message}")
    if DEFERRED:
        sections += ["", "## Not yet in the catalogue", ""]
        sections += [f"- **{key}**: {reason}" for key, reason in DEFERRED.items()]
    markdown_path.write_text("\n".join(sections) + "\n", encoding="utf-8")
    return csv_path, markdown_path


def replace_statement(statement: Statement, **changes: Any) -> Statement:
    """Return a copy of ``statement`` with ``changes`` (a thin wrapper of dataclasses.replace)."""
    return dataclasses.replace(statement, **changes)


__all__ = [
    "CheckResult",
    "DEFERRED",
    "Draw",
    "HypothesisDraw",
    "INEQUALITY_TOLERANCE",
    "NumpyDraw",
    "Outcome",
    "Sides",
    "Statement",
    "Tolerance",
    "UNIT_ROUNDOFF",
    "all_statements",
    "compare",
    "describe_instance",
    "evaluate_instance",
    "instance_generator",
    "replace_statement",
    "run_statement",
    "select_statements",
    "write_report",
]
