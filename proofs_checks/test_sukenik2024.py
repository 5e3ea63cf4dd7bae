"""Every statement of ``proofs_checks.sukenik2024`` on seeded instances and under hypothesis."""

import pytest

from proofs_checks.sukenik2024 import STATEMENTS
from proofs_checks.testing import (
    check_statement,
    check_statement_with_hypothesis,
    hypothesis_parameters,
    statement_parameters,
)


@pytest.mark.parametrize("statement", statement_parameters(STATEMENTS))
def test_statement_holds_on_seeded_instances(statement, catalogue_options):
    check_statement(statement, catalogue_options)


@pytest.mark.parametrize("statement", hypothesis_parameters(STATEMENTS))
def test_statement_holds_under_hypothesis(statement):
    check_statement_with_hypothesis(statement)
