"""``python -m ufm``: the command line of :mod:`ufm.cli`."""

from .cli import main

raise SystemExit(main())
