"""The list of figures, in order, and how to make one by name.

Figure modules are imported lazily, so that ``python -m figures --list`` and the name checks
do not import torch or the solvers.
"""

from __future__ import annotations

import importlib
import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .overrides import SettingsError, apply_overrides

__all__ = [
    "CAPTION_SUFFIX",
    "FIGURE_FORMATS",
    "FIGURE_STYLES",
    "FIGURES",
    "FigureInfo",
    "FigureResult",
    "accepts_overrides",
    "check_overrides",
    "UnknownFigureError",
    "figure_names",
    "figure_info",
    "load_make",
    "make_figure",
    "parse_formats",
]

#: The file formats a figure can be written in (``--format``); matplotlib's names.
FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf", "svg")

#: The styles (``--style``): ``default`` for the screen and the gallery, ``paper`` for a paper
#: (:class:`figures.common.OutputOptions`).
FIGURE_STYLES: tuple[str, ...] = ("default", "paper")

#: Suffix of the caption file written beside each figure (``NAME.caption.md``).
CAPTION_SUFFIX = ".caption.md"


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """Validated figure formats from ``"pdf"``, ``"pdf,png"`` or a sequence of such strings.

    Names are case-insensitive; repeats are dropped, the order is kept.

    Raises
    ------
    ValueError
        An empty list or a name outside :data:`FIGURE_FORMATS`; the message names ``format``.
    """
    items = [formats] if isinstance(formats, str) else list(formats)
    parsed: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"format must be a string such as 'pdf' or 'pdf,png', got {item!r}")
        for part in item.split(","):
            name = part.strip().lower().lstrip(".")
            if name not in FIGURE_FORMATS:
                raise ValueError(f"format must be one of {', '.join(FIGURE_FORMATS)} (or a comma "
                                 f"list such as pdf,png), got {part.strip()!r}")
            if name not in parsed:
                parsed.append(name)
    if not parsed:
        raise ValueError(f"format must name at least one of {', '.join(FIGURE_FORMATS)}")
    return tuple(parsed)


class UnknownFigureError(KeyError):
    """A figure name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class FigureInfo:
    """One registered figure.

    Attributes
    ----------
    name : str
        The figure's name, also the stem of its files (``NAME.png`` or ``.pdf``/``.svg``,
        ``NAME.caption.md``, ``NAME.csv``, ``NAME.json``).
    module : str
        The module that holds its ``make(out_dir, quick)``.
    experiment : str
        The experiment ID of docs/theory.md §6.
    summary : str
        One line: what the figure shows.
    """

    name: str
    module: str
    experiment: str
    summary: str


#: Every figure, in the order ``all`` makes them.
FIGURES: tuple[FigureInfo, ...] = (
    FigureInfo(
        "sukenik2024_ratio",
        "figures.sukenik2024_ratio",
        "E-C4",
        "low-rank SRG point against DNC: c_r/K and L_SRG/L_DNC against r for L = 3, 4, 5",
    ),
    FigureInfo(
        "sukenik2023_threshold",
        "figures.sukenik2023_threshold",
        "E-B3",
        "L_DNC and q* against λ for K = 2, L = 2..5, the threshold λ_crit, GD end points",
    ),
    FigureInfo(
        "sukenik2023_dufm_gd",
        "figures.sukenik2023_dufm_gd",
        "E-B1",
        "DUFM gradient descent against the predicted DNC optimum (loss, singular values, DNC metrics)",
    ),
    FigureInfo(
        "sukenik2023_width",
        "figures.sukenik2023_width",
        "E-B2",
        "K = 2 DUFM: fraction of GD seeds reaching L_DNC against width; stalls at derived split/drop values",
    ),
    FigureInfo(
        "sukenik2024_lowrank_gd",
        "figures.sukenik2024_lowrank_gd",
        "E-C2",
        "4-DUFM, K = 10: gradient descent goes below L_DNC, to low-rank solutions",
    ),
    FigureInfo(
        "jacot2025_fig1",
        "figures.jacot2025_fig1",
        "E-A1",
        "ReLU MLP + linear head on MNIST digits: per-layer NC1, NC2, balancedness against the J12 "
        "envelope, negativity, class-mean Gram matrices",
    ),
    FigureInfo(
        "jacot2025_fig2",
        "figures.jacot2025_fig2",
        "E-A3",
        "NC1, NC2 and κ(W_L) against the number of linear layers L2, with the J5 and J11 predictions",
    ),
    FigureInfo(
        "jacot2025_fig3",
        "figures.jacot2025_fig3",
        "E-A4",
        "balancedness and negativity of the ReLU layers against the non-linear depth (wd 0.016/L)",
    ),
    FigureInfo(
        "sukenik2024_rank_vs_wd",
        "figures.sukenik2024_rank_vs_wd",
        "E-C5",
        "4-DUFM, K = 10: rank of the class means at the GD end point against λ (log₂ axis)",
    ),
    FigureInfo(
        "sukenik2024_dnc_probability",
        "figures.sukenik2024_dnc_probability",
        "E-C6",
        "4-DUFM, K = 10: fraction of GD seeds reaching DNC (IS_DNC) against width, final Φ/L_DNC − 1",
    ),
    FigureInfo(
        "lambda_width_sweep",
        "figures.lambda_width_sweep",
        "E-A1/E-A3 (λ–width, §6)",
        "λ–width sweep (fullnet.sweeps): NC1, NC2 of the last layer's input and the loss as heatmaps "
        "over (λ, p₁) and along λ·p₁ = const",
    ),
    FigureInfo(
        "theory_vs_practice",
        "figures.theory_vs_practice",
        "E-A1/E-B4",
        "a trained MLP's gaps to the ufm optimum followed over training and against width "
        "(fullnet.convergence), with a verdict",
    ),
    FigureInfo(
        "sukenik2023_real_backbone",
        "figures.sukenik2023_real_backbone",
        "E-B4",
        "MLP backbone + 3-layer head on two mnist-5k classes, λ_H on H₁: per-layer DNC1–3 over training, "
        "head against the 3-DUFM optimum",
    ),
    FigureInfo(
        "sukenik2024_real_backbone",
        "figures.sukenik2024_real_backbone",
        "E-C3",
        "MLP backbone + 4-layer head (width 64) on mnist-5k, K = 10, λ_H on H₁: head's DUFM objective below "
        "L_DNC (L_SRG shown), class means low-rank before the last ReLU, singular values, DNC1",
    ),
)


def figure_names() -> list[str]:
    """Names of every figure, in registry order."""
    return [info.name for info in FIGURES]


def figure_info(name: str) -> FigureInfo:
    """The :class:`FigureInfo` of ``name``.

    Raises
    ------
    UnknownFigureError
        If ``name`` is not registered; the message lists the known names.
    """
    for info in FIGURES:
        if info.name == name:
            return info
    raise UnknownFigureError(
        f"unknown figure {name!r}; known figures: {', '.join(figure_names())} (or 'all')"
    )


def load_make(name: str) -> Callable[..., list[Path]]:
    """The ``make(out_dir, quick)`` function of figure ``name`` (imports its module)."""
    return importlib.import_module(figure_info(name).module).make


@dataclass(frozen=True)
class FigureResult:
    """Outcome of :func:`make_figure`.

    Attributes
    ----------
    name : str
    paths : list of Path
        The files written: those ``make`` returns (the figure in its first format, CSV, JSON),
        then the figure's other formats and its caption file ``NAME.caption.md``.
    seconds : float
        Wall-clock time of ``make``.
    """

    name: str
    paths: list[Path]
    seconds: float


def accepts_overrides(name: str) -> bool:
    """Whether figure ``name``'s ``make`` takes settings overrides (``--set KEY=VALUE``)."""
    return "overrides" in inspect.signature(load_make(name)).parameters


def check_overrides(name: str, overrides: Mapping[str, Any] | None, quick: bool = False) -> dict:
    """Figure ``name``'s settings with ``overrides`` applied, before anything runs.

    Raises
    ------
    figures.overrides.SettingsError
        The figure takes no overrides, a key is not one of its settings, or a value is not of
        the setting's kind or outside its range (:data:`figures.overrides.SETTING_RULES` and
        the module's own ``SETTING_RULES``).
    """
    if not overrides:
        return {}
    if not accepts_overrides(name):
        raise SettingsError(f"figure {name!r} has no settings to override (--set)")
    module = importlib.import_module(figure_info(name).module)
    return apply_overrides(module.settings(quick), overrides, name,
                           getattr(module, "SETTING_RULES", None))


def make_figure(name: str, out_dir: str | Path, quick: bool = False,
                overrides: Mapping[str, Any] | None = None,
                formats: str | Sequence[str] | None = None, style: str | None = None,
                title: bool | None = None, command: str | None = None) -> FigureResult:
    """Make one figure into ``out_dir`` (created if missing) and time it.

    Parameters
    ----------
    name : str
        A registered figure name.
    out_dir : str or Path
        Output folder.
    quick : bool
        The CPU-minutes version.
    overrides : mapping, optional
        New values of the figure's settings (:mod:`figures.overrides`); only for figures whose
        ``make`` takes them.
    formats : str or sequence of str, optional
        ``"png"``, ``"pdf"``, ``"svg"`` or several (``"pdf,png"``); default the current
        :func:`figures.common.use_output` formats (PNG).
    style : {"default", "paper"}, optional
        Default the current style (``default``); see :class:`figures.common.OutputOptions`.
    title : bool, optional
        False: the figure shows no title (the caption file has it). Default the current option
        (True).
    command : str, optional
        The command line that asked for the figure, recorded in its provenance.

    Raises
    ------
    figures.overrides.SettingsError
        Overrides for a figure that takes none, or an unknown or ill-typed setting.
    ValueError
        A format or style that is not known.
    """
    from . import common

    make = load_make(name)
    keyword = {}
    if overrides:
        check_overrides(name, overrides, quick)
        keyword["overrides"] = dict(overrides)
    out = Path(out_dir)
    with common.use_output(formats=formats, style=style, overrides=dict(overrides or {}), title=title,
                           command=command):
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        paths = [Path(path) for path in make(out, quick=quick, **keyword)]
        seconds = time.perf_counter() - start
    paths += [path for path in common.written_files(out, name) if path not in paths]
    return FigureResult(name=name, paths=paths, seconds=seconds)
