"""Helpers that turn catalogue statements into pytest tests."""

from __future__ import annotations

from typing import Sequence

import pytest

from .catalogue import (
    CheckResult,
    HypothesisDraw,
    Statement,
    describe_instance,
    evaluate_instance,
    run_statement,
)


def statement_parameters(statements: Sequence[Statement]) -> list:
    """``pytest.param`` per statement, with its ID and the ``slow`` mark where it applies."""
    return [
        pytest.param(s, id=s.identifier, marks=[pytest.mark.slow] if s.slow else [])
        for s in statements
    ]


def hypothesis_parameters(statements: Sequence[Statement]) -> list:
    """Like :func:`statement_parameters`, for the statements that have a hypothesis test."""
    return statement_parameters(
        [s for s in statements if s.hypothesis_examples > 0 and not s.expected_false]
    )


def check_statement(statement: Statement, options: dict) -> CheckResult:
    """Run ``statement`` on the seeded instances and fail the test unless it passes.

    The report (and, for a known-false statement, the counterexample) is printed; a check whose
    required module is missing fails with the reason: every requirement is a module of this
    package, so a missing one is a defect (the report command lists it as skipped).
    """
    result = run_statement(statement, instances=options["instances"], seed=options["seed"])
    print(result.summary())
    if result.skipped:
        pytest.fail(f"{statement.identifier} cannot run: {result.skipped}")
    assert result.passed, result.summary()
    return result


def check_statement_with_hypothesis(statement: Statement) -> None:
    """Check ``statement`` on hypothesis-drawn instances so that a violation is shrunk.

    Sizes and scalars are drawn through hypothesis (they shrink toward the small end of their
    ranges); arrays come from a generator seeded by a drawn integer. The failing instance is
    printed by hypothesis (its draws) and in the assertion message (its values).
    """
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from .catalogue import missing_requirement

    reason = missing_requirement(statement)
    if reason:
        pytest.fail(f"{statement.identifier} cannot run: {reason}")
    scale = settings.default.max_examples / 40.0
    examples = max(1, int(round(statement.hypothesis_examples * scale)))

    @settings(max_examples=examples, deadline=None)
    @given(data=st.data())
    def check(data) -> None:
        instance = statement.sample(HypothesisDraw(data))
        outcome = evaluate_instance(statement, instance)
        if not outcome.held:
            return
        assert not outcome.violated, (
            f"{statement.identifier} violated on {describe_instance(instance)}: "
            f"lhs={outcome.sides.lhs!r}, rhs={outcome.sides.rhs!r}, excess={outcome.excess:.3e}"
        )

    check()
