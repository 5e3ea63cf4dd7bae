"""Command line of the theorem catalogue: ``ufm-proofs`` (the console command) or
``python -m proofs_checks``.

Runs the statements of docs/theory.md §5 on seeded random instances, prints the catalogue report
(ID, tag, instances, hypotheses held, violations, smallest margin rhs − lhs, largest relative
error for identities) and writes it as CSV and Markdown. The exit code is 1 when any statement
fails (a violation, a vacuous check, an error, or a known-false statement whose counterexample
search found nothing), else 0; 2 for a bad command line (an unknown ID, a negative ``--seed``,
``--instances`` below 1, an ``--out`` that is a file or cannot be written: all checked before any
statement runs) or an output that cannot be written (a full disk; then nothing is written), as one
line on standard error.
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
    from ufm.cli import ArgumentParser, integer_at_least, program_name

    parser = ArgumentParser(
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
        type=integer_at_least(1),
        default=None,
        help="instances per statement >= 1 (default: each statement's own default count)",
    )
    parser.add_argument("--seed", type=integer_at_least(0), default=0,
                        help="seed >= 0 of the random draw (default 0)")
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
    from ufm.cli import CommandError, check_output_folder, report_error, run_parser, staged_output

    try:
        arguments = run_parser(build_parser(), sys.argv[1:] if argv is None else argv)
        if isinstance(arguments, int):  # --help
            return arguments
        catalogue = list(all_statements() if statements is None else statements)
        only = None
        if arguments.only is not None:
            only = [name.strip() for name in arguments.only.split(",") if name.strip()]
            if not only:
                raise CommandError(f"--only: expected comma-separated statement IDs such as "
                                   f"J3,D2, got {arguments.only!r}")
        try:
            chosen = select_statements(catalogue, only,
                                       include_slow=arguments.slow or only is not None)
        except ValueError as error:
            raise CommandError(f"--only: {error}") from None
        check_output_folder(arguments.out, "--out")  # before any statement runs
    except CommandError as error:
        return report_error(error)
    results = run_catalogue(chosen, arguments.instances, arguments.seed, not arguments.quiet)
    print(format_table(results))
    print()
    for result in results:
        if not result.passed or result.expected_false or result.skipped:
            print(result.summary())
    try:
        with staged_output(arguments.out, "--out") as stage:
            staged = write_report(results, stage.path)
    except CommandError as error:
        return report_error(error)
    csv_path, markdown_path = (stage.final(path) for path in staged)
    print(f"\nwrote {csv_path} and {markdown_path}")
    failed = [result.identifier for result in results if not result.passed]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
