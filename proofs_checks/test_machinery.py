"""Tests of the checker itself: deliberately wrong statements must be caught.

A suite that cannot fail proves nothing. Each test here takes a statement of the catalogue,
breaks it the way a derivation can go wrong (a constant halved, an identity off by a factor, an
exponent dropped, hypotheses that never hold, a search with nothing to find) and asserts that the
machinery reports it: in the seeded runner, under hypothesis, and in the exit code of
``python -m proofs_checks``.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from proofs_checks import __main__ as command_line
from proofs_checks import foundations, jacot2025
from proofs_checks.catalogue import (
    DEFERRED,
    INEQUALITY_TOLERANCE,
    TAGS,
    NumpyDraw,
    Sides,
    Tolerance,
    all_statements,
    compare,
    replace_statement,
    run_statement,
    select_statements,
)
from proofs_checks.testing import check_statement_with_hypothesis

THEORY_IDS = (
    [f"F{i}" for i in range(1, 6)]
    + [f"U{i}" for i in range(0, 5)]
    + [f"D{i}" for i in range(1, 8)]
    + [f"LR{i}" for i in range(1, 6)]
    + [f"J{i}" for i in range(1, 13)]
    + [f"KF{i}" for i in range(1, 5)]
)


def by_id(statements, identifier):
    """The statement with this exact ID."""
    return next(s for s in statements if s.identifier == identifier)


def with_sides(statement, transform):
    """``statement`` whose evaluated sides pass through ``transform(sides) -> Sides``."""
    original = statement.evaluate
    return replace_statement(statement, evaluate=lambda instance: transform(original(instance)))


# ---------------------------------------------------------------------------------------------
# compare()
# ---------------------------------------------------------------------------------------------


def test_inequality_rule_allows_rounding_and_flags_real_excess():
    assert not compare("<=", INEQUALITY_TOLERANCE, Sides(lhs=1.0 + 1e-12, rhs=1.0)).violated
    assert compare("<=", INEQUALITY_TOLERANCE, Sides(lhs=1.0 + 1e-8, rhs=1.0)).violated
    assert compare(">=", INEQUALITY_TOLERANCE, Sides(lhs=1.0, rhs=1.0 + 1e-8)).violated
    outcome = compare("<=", INEQUALITY_TOLERANCE, Sides(lhs=np.array([0.5, 0.9]), rhs=np.array([1.0, 1.0])))
    assert not outcome.violated and math.isclose(outcome.margin, 0.1)


def test_identity_rule_is_relative_to_the_scale():
    tolerance = Tolerance(relative=1e-12)
    assert not compare("=", tolerance, Sides(lhs=1e6, rhs=1e6 * (1 + 1e-13))).violated
    assert compare("=", tolerance, Sides(lhs=1e6, rhs=1e6 * (1 + 1e-11))).violated
    # cancellation: the error counts against the stated scale, not the tiny result
    assert not compare("=", tolerance, Sides(lhs=1e-3, rhs=1e-3 + 1e-14, scale=1e3)).violated
    assert compare("=", tolerance, Sides(lhs=1e-3, rhs=1e-3 + 1e-14)).violated


def test_non_finite_sides_are_violations():
    assert compare("<=", INEQUALITY_TOLERANCE, Sides(lhs=math.nan, rhs=1.0)).violated


# ---------------------------------------------------------------------------------------------
# Wrong statements are caught by the seeded runner
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier, transform",
    [
        # F1 with the ½ of the penalty halved: (a/4)‖W‖² + (b/4)‖M‖² ≥ √(ab)‖X‖_*
        ("F1.bound", lambda s: Sides(lhs=s.lhs / 2, rhs=s.rhs, scale=s.scale)),
        # F2 with its constant p/2 doubled
        ("F2.bound", lambda s: Sides(lhs=s.lhs, rhs=2 * s.rhs, scale=s.scale)),
        # J1 with the Weyl bound doubled
        ("J1", lambda s: Sides(lhs=s.lhs, rhs=2 * s.rhs, scale=s.scale)),
        # J6 with the Kantorovich constant 2κ/(1+κ²) replaced by 1
        ("J6.kantorovich", lambda s: Sides(lhs=s.lhs, rhs=np.ones_like(s.rhs), scale=s.scale)),
    ],
)
def test_bound_with_wrong_constant_is_caught(identifier, transform):
    wrong = with_sides(by_id(all_statements(), identifier), transform)
    result = run_statement(wrong, seed=0)
    assert result.violations > 0
    assert not result.passed and result.status == "FAIL"
    assert result.worst_instance  # the offending instance is reported


@pytest.mark.parametrize(
    "identifier, factor",
    [("F1.equality", 1 + 1e-9), ("F2.equality", 2.0), ("J5.spectrum", 1 + 1e-10), ("J9.identity", 1.5)],
)
def test_identity_off_by_a_factor_is_caught(identifier, factor):
    wrong = with_sides(
        by_id(all_statements(), identifier),
        lambda s: Sides(lhs=s.lhs, rhs=factor * np.asarray(s.rhs), scale=s.scale,
                        conditioning=s.conditioning),
    )
    result = run_statement(wrong, seed=0)
    assert result.violations > 0 and not result.passed
    assert result.largest_relative_error > 1e-11


def test_recursion_with_a_dropped_square_is_caught():
    """J7 written with (1 − ηλ) instead of (1 − ηλ)² must fail."""

    def wrong_evaluate(instance):
        step, decay = instance["eta"], instance["lambda"]
        weights = instance["_weights"]
        lower, upper, top = jacot2025.data_gradients(instance, weights)
        updated = [(1 - step * decay) * w - step * g for w, g in zip(weights, (lower, upper, top))]
        predicted = (1 - step * decay) * jacot2025.imbalance(weights) + step**2 * (
            upper.T @ upper - lower @ lower.T
        )
        scale = np.linalg.norm(updated[0]) ** 2 + np.linalg.norm(updated[1]) ** 2
        return Sides(lhs=jacot2025.imbalance(updated), rhs=predicted, scale=scale)

    wrong = replace_statement(by_id(jacot2025.STATEMENTS, "J7"), evaluate=wrong_evaluate)
    result = run_statement(wrong, seed=0, instances=50)
    assert result.violations > 0 and not result.passed


# ---------------------------------------------------------------------------------------------
# Vacuous checks, errors and searches that find nothing
# ---------------------------------------------------------------------------------------------


def test_check_whose_hypotheses_never_hold_is_vacuous():
    vacuous = replace_statement(by_id(foundations.STATEMENTS, "F1.bound"), hypotheses=lambda _: False)
    result = run_statement(vacuous, seed=0, instances=20)
    assert result.hypotheses_held == 0 and result.violations == 0
    assert result.vacuous and not result.passed and result.status == "VACUOUS"


def test_check_whose_hypotheses_rarely_hold_is_vacuous():
    counter = {"calls": 0}

    def rarely(_instance):
        counter["calls"] += 1
        return counter["calls"] % 10 == 0

    rare = replace_statement(by_id(foundations.STATEMENTS, "F1.bound"), hypotheses=rarely,
                             minimum_held=0.5)
    result = run_statement(rare, seed=0, instances=40)
    assert result.hypotheses_held == 4 and result.required_held == 20
    assert not result.passed


def test_crashing_check_fails_with_the_error():
    def crash(_instance):
        raise ZeroDivisionError("deliberate")

    broken = replace_statement(by_id(foundations.STATEMENTS, "F1.bound"), evaluate=crash)
    result = run_statement(broken, seed=0, instances=3)
    assert result.errors == 3 and not result.passed and "ZeroDivisionError" in result.message


def test_counterexample_search_on_a_true_statement_finds_nothing_and_fails():
    """Searching the two-column lemma (F5, true) as if it were known false must report NOT FOUND."""
    search = replace_statement(by_id(foundations.STATEMENTS, "F5.search"), expected_false=True)
    result = run_statement(search, seed=0, instances=3)
    assert result.violations == 0 and not result.passed and result.status == "NOT FOUND"


def test_known_false_search_finds_and_reports_a_counterexample():
    result = run_statement(by_id(foundations.STATEMENTS, "KF2"), seed=0, instances=4)
    assert result.passed and result.violations >= 1
    assert "counterexample" in result.summary() and "X=" in result.worst_instance


def test_missing_module_skips_with_the_reason():
    needing = replace_statement(by_id(foundations.STATEMENTS, "F1.bound"),
                                requires=("ufm.no_such_module",))
    result = run_statement(needing, seed=0, instances=2)
    assert result.skipped and result.passed and result.instances == 0


def test_missing_module_fails_the_pytest_check():
    """Under pytest a statement that cannot run is a failure, never a silent skip."""
    from proofs_checks.testing import check_statement

    needing = replace_statement(by_id(foundations.STATEMENTS, "F1.bound"),
                                requires=("ufm.no_such_module",))
    with pytest.raises(pytest.fail.Exception, match="cannot run"):
        check_statement(needing, {"instances": 2, "seed": 0})


# ---------------------------------------------------------------------------------------------
# Hypothesis shrinks a violation to a small instance
# ---------------------------------------------------------------------------------------------


def test_hypothesis_test_catches_a_halved_constant(capsys):
    wrong = with_sides(
        by_id(foundations.STATEMENTS, "F1.bound"),
        lambda s: Sides(lhs=s.lhs / 2, rhs=s.rhs, scale=s.scale),
    )
    with pytest.raises(AssertionError, match="F1.bound violated on"):
        check_statement_with_hypothesis(wrong)


# ---------------------------------------------------------------------------------------------
# Determinism and the command line
# ---------------------------------------------------------------------------------------------


def test_seeded_runs_reproduce_and_seeds_change_the_draw():
    statement = by_id(foundations.STATEMENTS, "F1.bound")
    first = run_statement(statement, seed=3, instances=30)
    second = run_statement(statement, seed=3, instances=30)
    other = run_statement(statement, seed=4, instances=30)
    assert first.worst_instance == second.worst_instance
    assert first.smallest_margin == second.smallest_margin
    assert first.worst_instance != other.worst_instance


def test_instances_reproduce_one_by_one():
    from proofs_checks.catalogue import instance_generator

    statement = by_id(foundations.STATEMENTS, "F3.value")
    instance = statement.sample(NumpyDraw(instance_generator(statement.identifier, 7, 5), 5))
    again = statement.sample(NumpyDraw(instance_generator(statement.identifier, 7, 5), 5))
    np.testing.assert_array_equal(instance["T"], again["T"])


def test_command_line_fails_on_a_violation_and_writes_the_report(tmp_path, capsys):
    good = by_id(foundations.STATEMENTS, "F1.bound")
    wrong = replace_statement(
        with_sides(good, lambda s: Sides(lhs=s.lhs / 2, rhs=s.rhs, scale=s.scale)),
        identifier="F1.halved",
    )
    code = command_line.main(["--out", str(tmp_path), "--quiet", "--instances", "20"], [good, wrong])
    assert code == 1
    with (tmp_path / "catalogue.csv").open() as handle:
        rows = {row["ID"]: row for row in csv.DictReader(handle)}
    assert rows["F1.bound"]["status"] == "pass" and rows["F1.halved"]["status"] == "FAIL"
    assert int(rows["F1.halved"]["violations"]) > 0
    assert "| F1.halved |" in (tmp_path / "catalogue.md").read_text()
    assert command_line.main(["--out", str(tmp_path), "--quiet", "--instances", "20"], [good]) == 0


def test_command_line_selects_statements_and_rejects_unknown_ids(tmp_path, capsys):
    code = command_line.main(["--out", str(tmp_path), "--quiet", "--only", "F1", "--instances", "5"])
    assert code == 0
    with (tmp_path / "catalogue.csv").open() as handle:
        assert [row["ID"] for row in csv.DictReader(handle)] == ["F1.bound", "F1.equality"]
    assert command_line.main(["--out", str(tmp_path), "--quiet", "--only", "Z9"]) == 2


# ---------------------------------------------------------------------------------------------
# The catalogue itself
# ---------------------------------------------------------------------------------------------


def test_catalogue_is_well_formed():
    statements = all_statements()
    for statement in statements:
        assert statement.tag in TAGS
        assert statement.base_identifier in THEORY_IDS, statement.identifier
        assert statement.tolerance.reason, f"{statement.identifier} states no reason for its tolerance"
        assert statement.formula and statement.source and statement.title
        assert statement.evaluate.__doc__, f"{statement.identifier}: evaluate has no docstring"
    assert select_statements(statements, ["J3"]) == [by_id(statements, "J3")]


def test_every_theory_statement_is_implemented_or_deferred_with_a_reason():
    implemented = {s.base_identifier for s in all_statements()}
    for identifier in THEORY_IDS:
        assert identifier in implemented or DEFERRED.get(identifier), identifier
