"""``python -m proofs_checks``: the command line of :mod:`proofs_checks.cli` (``ufm-proofs``)."""

from __future__ import annotations

import sys

from .cli import build_parser, main, run_catalogue

__all__ = ["build_parser", "main", "run_catalogue"]

if __name__ == "__main__":
    sys.exit(main())
