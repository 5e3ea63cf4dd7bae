"""Options of the theorem catalogue suite: ``--instances N`` and ``--seed S``."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("proofs_checks", "theorem catalogue (docs/theory.md §5)")
    group.addoption(
        "--instances",
        type=int,
        default=None,
        help="instances per statement (default: each statement's own count)",
    )
    group.addoption("--seed", type=int, default=0, help="seed of the statements' random draw")


@pytest.fixture
def catalogue_options(request: pytest.FixtureRequest) -> dict:
    """``{"instances": N or None, "seed": S}`` from the command line."""
    return {
        "instances": request.config.getoption("--instances"),
        "seed": request.config.getoption("--seed"),
    }
