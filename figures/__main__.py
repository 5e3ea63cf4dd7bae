"""``python -m figures NAME|all [--quick] [--out DIR] [--format png|pdf|svg] [--style default|paper]``
and ``python -m figures --list``."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
