"""Command line of the theorem catalogue: ``ufm-proofs`` (the console command) or
``python -m proofs_checks``.

Runs the statements of docs/theory.md §5 on seeded random instances, prints the catalogue report
(ID, tag, instances, hypotheses held, violations, smallest margin rhs − lhs, largest relative
error for identities) and writes it as CSV and Markdown. The exit code is 1 when any statement
fails (a violation, a vacuous check, an error, or a known-false statement whose counterexample
search found nothing), else 0.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .catalogue import (
    CheckResult,
    Statement,
    all_statements,
    format_table,
    run_statement,
    select_statements,
    write_report,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ufm-proofs`` (``python -m proofs_checks``)."""
    from ufm.cli import program_name

    parser = argparse.ArgumentParser(
        prog=program_name("proofs_checks", "ufm-proofs"),
        description="Check the statements of docs/theory.md §5 on seeded random instances.",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated statement IDs (an ID such as F1 selects all its parts), e.g. J3,D2",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=None,
        help="instances per statement (default: each statement's own default count)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draw (default 0)")
    parser.add_argument(
        "--out",
        default="outputs/proofs_checks",
        help="directory for catalogue.csv and catalogue.md (default outputs/proofs_checks)",
    )
    parser.add_argument(
        "--slow", action="store_true", help="include the long statements (marked slow in pytest)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def run_catalogue(
    statements: Sequence[Statement],
    instances: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[CheckResult]:
    """Run ``statements`` in order and return their results (tqdm progress over statements)."""
    results = []
    iterator = statements
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(statements, desc="statements", unit="stmt", file=sys.stderr)
        iterator = bar
    for statement in iterator:
        if bar is not None:
            bar.set_postfix_str(statement.identifier)
        results.append(run_statement(statement, instances=instances, seed=seed))
    return results


def main(argv: Sequence[str] | None = None, statements: Sequence[Statement] | None = None) -> int:
    """Entry point; ``statements`` replaces the catalogue (used by the checker's own tests)."""
    arguments = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if arguments.instances is not None and arguments.instances < 1:
        print("--instances must be at least 1", file=sys.stderr)
        return 2
    catalogue = list(all_statements() if statements is None else statements)
    only = arguments.only.split(",") if arguments.only else None
    try:
        chosen = select_statements(catalogue, only, include_slow=arguments.slow or only is not None)
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 2
    results = run_catalogue(chosen, arguments.instances, arguments.seed, not arguments.quiet)
    print(format_table(results))
    print()
    for result in results:
        if not result.passed or result.expected_false or result.skipped:
            print(result.summary())
    csv_path, markdown_path = write_report(results, arguments.out)
    print(f"\nwrote {csv_path} and {markdown_path}")
    failed = [result.identifier for result in results if not result.passed]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0

