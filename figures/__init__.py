"""figures: one module per figure; ``python -m figures NAME|all [--quick] [--out DIR]``.

Every figure module exposes ``make(out_dir, quick=False) -> list[pathlib.Path]``, which writes
``NAME.png`` (or ``.pdf``, ``.svg``: ``--format``), the caption file ``NAME.caption.md`` with the
provenance, and the data behind it (``NAME.csv`` and ``NAME.json``) into ``out_dir``. The
figures hold no science of their own: every plotted number comes from a library function of
:mod:`ufm` or :mod:`fullnet`. ``quick=True`` is the CPU-minutes version that CI runs; the full
version follows the papers' settings as far as docs/theory.md §6 knows them.

The registry (:mod:`figures.registry`) lists the figures in order.
"""

from .registry import FIGURES, figure_names, make_figure

__all__ = ["FIGURES", "figure_names", "make_figure"]
