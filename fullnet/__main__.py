"""``python -m fullnet``: the command line of :mod:`fullnet.cli`."""

from .cli import main

raise SystemExit(main())
