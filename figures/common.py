"""Shared presentation helpers of the figures: style, titles, files, provenance, seed bands.

Nothing here computes science: these functions arrange, aggregate across seeds for display
(mean and standard deviation), draw and write what library functions computed.

Output formats, style and provenance
------------------------------------
A figure module calls, in this order, ``figure.suptitle(figure_title(paper, experiment, text,
quick, note))``, ``save_figure(figure, out_dir, name)``, ``write_csv`` and ``write_json``. The
output options (:func:`use_output`, set by ``python -m figures --format … --style …``) decide
what these calls write:

- :func:`figure_title` returns a short title (one line, two when wider than the figure; in the
  ``paper`` style only ``text``) and keeps the paper, experiment ID, ``text`` and ``note`` for
  the caption;
- :func:`save_figure` writes ``NAME.png``, ``NAME.pdf`` and/or ``NAME.svg`` (the formats of
  :data:`FIGURE_FORMATS`) and the caption file ``NAME.caption.md`` beside them;
- :func:`write_json` adds the key ``provenance`` (:func:`figure_provenance`: paper, experiment
  ID, settings, seeds, library functions, version, quick or full, command line) to the data and
  rewrites the caption with it.

A line of ``note`` (or a ``;``-separated part of it, or a parenthesised list at its end) that
begins with a ``ufm.``/``fullnet.`` name lists the library functions behind the figure: those
names go to the provenance, the rest of ``note`` into the caption's text.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from .registry import CAPTION_SUFFIX, FIGURE_FORMATS, FIGURE_STYLES, parse_formats  # noqa: E402

__all__ = [
    "PAPERS",
    "CAPTION_SUFFIX",
    "FIGURE_FORMATS",
    "FIGURE_STYLES",
    "OutputOptions",
    "PAPER_FONT_FLOOR",
    "PAPER_FONT_SCALE",
    "PAPER_HEIGHT",
    "PAPER_MIN_SCALE",
    "PAPER_WIDTH",
    "apply_style",
    "caption_markdown",
    "caption_text",
    "figure_provenance",
    "figure_title",
    "new_figure",
    "output_options",
    "parse_formats",
    "save_figure",
    "use_output",
    "written_files",
    "write_csv",
    "write_json",
    "to_jsonable",
    "mean_and_std",
    "plot_band",
    "layer_colors",
]

#: Short citations used in titles (docs/theory.md, "Papers").
PAPERS: dict[str, str] = {
    "A": "Jacot, Súkeník, Wang & Mondelli 2025 (A)",
    "B": "Súkeník, Mondelli & Lampert 2023 (B)",
    "C": "Súkeník, Lampert & Mondelli 2024 (C)",
}

#: Paper style: the largest figure, in inches (6.75 in is the text width of the common
#: two-column article formats; 8.5 in leaves room for the caption on a letter or A4 page). A
#: larger figure is scaled down to fit, keeping its aspect ratio, so that the paper style's
#: fonts keep their printed size.
PAPER_WIDTH = 6.75
PAPER_HEIGHT = 8.5

_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.4,
    "lines.markersize": 4.5,
    "legend.framealpha": 0.85,
    "figure.titlesize": 10.5,
    "pdf.fonttype": 42,  # TrueType fonts in PDF (text stays text; accepted by journals)
    "ps.fonttype": 42,
    "svg.hashsalt": "ufm-sandbox",  # the same SVG ids on every run
}

#: The paper style's matplotlib settings: those of the default style (the fonts are scaled when
#: the figure is saved, :func:`_fit_paper`), thinner lines, 300 dpi PNG, a tight bounding box.
_PAPER_STYLE = {
    **_STYLE,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.4,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "lines.linewidth": 1.2,
}

#: Paper style: a figure is never scaled below this factor, so that its text, at least
#: :data:`PAPER_FONT_FLOOR` of its size, takes at most 0.75 / 0.6 = 1.25 times the share of the
#: figure it was laid out for. A figure designed wider than PAPER_WIDTH / 0.6 = 11.25 in (three
#: panels in a row) therefore stays wider than :data:`PAPER_WIDTH`.
PAPER_MIN_SCALE = 0.6

#: Paper style: every font is multiplied by this factor at most (the 9 pt body text of the
#: default style prints at 7.5 pt) ...
PAPER_FONT_SCALE = 7.5 / 9.0
#: ... and by this factor at least, whatever the figure's scale (9 pt prints at 6.75 pt, the
#: figures' 6.5 pt legends at 4.9 pt), so that the text stays legible when a wide figure is
#: scaled down to :data:`PAPER_WIDTH`.
PAPER_FONT_FLOOR = 0.75


@dataclass(frozen=True)
class OutputOptions:
    """How figures are written and what made them (:func:`use_output`).

    Attributes
    ----------
    formats : tuple of str
        File formats, a subset of :data:`FIGURE_FORMATS` in the order given (the first is the
        path :func:`save_figure` returns). Default ``("png",)``.
    style : {"default", "paper"}
        ``default``: today's screen look with a one-line title. ``paper``: figure at most
        :data:`PAPER_WIDTH` × :data:`PAPER_HEIGHT` inches (:data:`PAPER_MIN_SCALE` of a wider
        figure) with fonts of about 5–8 pt at that size, the title only the short description,
        PNG at 300 dpi.
    command : str or None
        The command line that made the figures, for the provenance (None: called from Python).
    overrides : dict
        The ``--set KEY=VALUE`` settings overrides of the run, for the provenance.
    title : bool
        Whether the figure shows its title (``--no-title``: False); the caption file and the
        provenance have it either way.
    """

    formats: tuple[str, ...] = ("png",)
    style: str = "default"
    command: str | None = None
    overrides: dict = field(default_factory=dict)
    title: bool = True


_OPTIONS = OutputOptions()


def output_options() -> OutputOptions:
    """The current :class:`OutputOptions`."""
    return _OPTIONS


@contextmanager
def use_output(formats: str | Sequence[str] | None = None, style: str | None = None,
               command: str | None = None, overrides: Mapping[str, Any] | None = None,
               title: bool | None = None) -> Iterator[OutputOptions]:
    """Write the figures made inside the ``with`` block in ``formats`` and ``style``.

    Arguments left as None keep their current value; the previous options come back on exit.

    Parameters
    ----------
    formats : str or sequence of str, optional
        See :func:`parse_formats`.
    style : {"default", "paper"}, optional
    command : str, optional
        The command line, recorded in the provenance.
    overrides : mapping, optional
        Settings overrides, recorded in the provenance.
    title : bool, optional
        False: the figures show no title (:func:`figure_title` returns ``""``).

    Raises
    ------
    ValueError
        A format or style that is not known; the message names the argument.
    """
    global _OPTIONS
    changes: dict[str, Any] = {}
    if formats is not None:
        changes["formats"] = parse_formats(formats)
    if style is not None:
        if style not in FIGURE_STYLES:
            raise ValueError(f"style must be one of {', '.join(FIGURE_STYLES)}, got {style!r}")
        changes["style"] = style
    if command is not None:
        changes["command"] = str(command)
    if overrides is not None:
        changes["overrides"] = dict(overrides)
    if title is not None:
        changes["title"] = bool(title)
    previous = _OPTIONS
    _OPTIONS = replace(previous, **changes)
    try:
        yield _OPTIONS
    finally:
        _OPTIONS = previous


def apply_style() -> None:
    """Set the matplotlib style of the current :class:`OutputOptions` (font sizes, light grid)."""
    plt.rcParams.update(_PAPER_STYLE if _OPTIONS.style == "paper" else _STYLE)


@dataclass(frozen=True)
class _Title:
    """The parts of one :func:`figure_title` call and the title it returned."""

    paper: str
    experiment: str
    text: str
    quick: bool
    note: str
    shown: str


@dataclass
class _Record:
    """What :func:`save_figure` and :func:`write_json` know of one figure."""

    name: str
    out_dir: Path
    title: _Title | None = None
    figures: list[Path] = field(default_factory=list)
    caption: Path | None = None
    formats: tuple[str, ...] = ()
    style: str = "default"
    data: Mapping[str, Any] | None = None


_PENDING_TITLE: _Title | None = None
_RECORDS: dict[tuple[str, str], _Record] = {}


def _key(out_dir: str | Path, name: str) -> tuple[str, str]:
    return (os.path.abspath(os.fspath(out_dir)), name)


def figure_title(paper: str, experiment: str, text: str, quick: bool, note: str = "") -> str:
    """A short figure title naming the paper and the docs/theory.md §6 experiment ID.

    The long form (``note``: settings, method, library functions) is kept for the caption file
    and the provenance that :func:`save_figure` and :func:`write_json` write next; it is not
    drawn on the figure.

    Parameters
    ----------
    paper : {"A", "B", "C"}
        Key of :data:`PAPERS`.
    experiment : str
        E.g. ``"E-C4"`` (or ``"E-C4, Fig. 3 left"``).
    text : str
        What the figure shows.
    quick : bool
        Appends "[quick]" for the CI version.
    note : str
        Settings and method (one or more lines), for the caption; a line or ``;``-part that
        begins with a ``ufm.``/``fullnet.`` name lists the library functions.

    Returns
    -------
    str
        Default style: ``"PAPER — EXPERIMENT: TEXT"`` on one line (:func:`save_figure` breaks it
        after the experiment when it is wider than the figure). Paper style: ``TEXT`` alone, one
        line. Empty when the options say no title (``--no-title``).
    """
    global _PENDING_TITLE
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {', '.join(PAPERS)}, got {paper!r}")
    mark = "  [quick]" if quick else ""
    if not _OPTIONS.title:
        shown = ""
    elif _OPTIONS.style == "paper":
        shown = " ".join(str(text).split()) + mark
    else:
        shown = f"{PAPERS[paper]} — {experiment}: {text}{mark}"
    _PENDING_TITLE = _Title(paper, str(experiment), str(text), bool(quick), str(note), shown)
    return shown


def new_figure(rows: int, columns: int, width: float, height: float, **kwargs: Any):
    """A styled figure with a grid of axes (constrained layout)."""
    apply_style()
    return plt.subplots(rows, columns, figsize=(width, height), layout="constrained", **kwargs)


def _fit_paper(figure) -> float:
    """Scale the figure to at most :data:`PAPER_WIDTH` × :data:`PAPER_HEIGHT` inches and its fonts
    to paper sizes; returns the font factor.

    The figure keeps its aspect ratio (factor ``s = max(PAPER_MIN_SCALE, min(1, PAPER_WIDTH /
    width, PAPER_HEIGHT / height))``); every text is multiplied by ``clip(s, PAPER_FONT_FLOOR,
    PAPER_FONT_SCALE)``, so the layout keeps its proportions where the fonts allow and the
    printed text stays between 5 and 8 pt.
    """
    from matplotlib.text import Text

    width, height = figure.get_size_inches()
    scale = max(PAPER_MIN_SCALE, min(1.0, PAPER_WIDTH / width, PAPER_HEIGHT / height))
    fonts = min(PAPER_FONT_SCALE, max(scale, PAPER_FONT_FLOOR))
    figure.draw_without_rendering()  # make the ticks, so that every text exists
    ticks: set[int] = set()
    for axes in figure.get_axes():
        for axis, which in ((axes.xaxis, "x"), (axes.yaxis, "y")):
            labels = axis.get_ticklabels(which="both")
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks.update((id(tick.label1), id(tick.label2)))
            if labels:
                axes.tick_params(axis=which, which="both", labelsize=labels[0].get_fontsize() * fonts)
    for text in figure.findobj(Text):
        if id(text) not in ticks:
            text.set_fontsize(text.get_fontsize() * fonts)
    if scale < 1.0:
        figure.set_size_inches(width * scale, height * scale)
    return fonts


def _metadata(fmt: str, name: str, title: _Title | None) -> dict[str, Any]:
    """File metadata: title, creator, where the provenance is; no dates (same bytes each run)."""
    from ufm import __version__

    heading = title.shown.replace("\n", " ") if title is not None else name
    creator = f"ufm-sandbox {__version__} (python -m figures {name})"
    where = f"provenance: {name}{CAPTION_SUFFIX} and {name}.json"
    if fmt == "pdf":
        return {"Title": heading, "Subject": where, "Creator": creator, "CreationDate": None}
    if fmt == "svg":
        return {"Title": heading, "Description": where, "Creator": creator, "Date": None}
    return {"Title": heading, "Description": where, "Software": creator}


def _fit_title(figure, title: _Title | None) -> _Title | None:
    """Break a one-line default-style title after the experiment ID when it is wider than 97% of
    the figure (measured with the title's font); returns the title as drawn."""
    if title is None or "\n" in title.shown or figure.get_suptitle() != title.shown:
        return title
    head = f"{PAPERS[title.paper]} — {title.experiment}:"
    if not title.shown.startswith(head + " "):
        return title  # the paper style's title has no head to break after
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    font = FontProperties(size=plt.rcParams["figure.titlesize"], weight=plt.rcParams["figure.titleweight"])
    width, _, _ = RendererAgg(1, 1, 72).get_text_width_height_descent(title.shown, font, ismath=False)
    if width <= 0.97 * figure.get_size_inches()[0] * 72:  # both in points
        return title
    shown = f"{head}\n{title.shown[len(head) + 1:]}"
    figure.suptitle(shown)
    return replace(title, shown=shown)


def save_figure(figure, out_dir: str | Path, name: str) -> Path:
    """Write the figure in the current formats, with its caption file, and close it.

    Writes ``NAME.png`` (and/or ``NAME.pdf``, ``NAME.svg``: :func:`use_output`) into ``out_dir``
    and ``NAME.caption.md`` beside them (:func:`caption_text`; :func:`write_json` completes it
    with the settings). In the paper style the figure is first scaled to fit
    :data:`PAPER_WIDTH` × :data:`PAPER_HEIGHT` inches; in the default style a title wider than
    the figure is broken after the experiment ID (two lines).

    Returns
    -------
    Path
        The file of the first format (``NAME.png`` by default); :func:`written_files` lists all.
    """
    global _PENDING_TITLE
    options = _OPTIONS
    title, _PENDING_TITLE = _PENDING_TITLE, None
    if title is not None and title.shown not in (figure.get_suptitle() or ""):
        title = None  # the last figure_title was drawn on another figure
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    try:
        if options.style == "paper":
            _fit_paper(figure)
        title = _fit_title(figure, title)
        for fmt in options.formats:
            path = out / f"{name}.{fmt}"
            figure.savefig(path, format=fmt, metadata=_metadata(fmt, name, title))
            paths.append(path)
    finally:
        plt.close(figure)
    record = _Record(name=name, out_dir=out, title=title, figures=paths, formats=options.formats,
                     style=options.style)
    previous = _RECORDS.get(_key(out, name))
    if previous is not None and previous.data is not None and previous.figures == []:
        record.data = previous.data  # write_json came first
    _RECORDS[_key(out, name)] = record
    _write_caption(record)
    return paths[0]


def written_files(out_dir: str | Path, name: str) -> list[Path]:
    """The figure files (every format) and the caption that :func:`save_figure` last wrote for
    figure ``name`` in ``out_dir`` (empty when it wrote none)."""
    record = _RECORDS.get(_key(out_dir, name))
    if record is None:
        return []
    return list(record.figures) + ([record.caption] if record.caption is not None else [])


# ------------------------------------------------------------------------------------------
# provenance and caption
# ------------------------------------------------------------------------------------------

#: A library name in a title's note: ``ufm.optima.predict_dufm`` or
#: ``ufm.optima.predict_dufm / predict_srg`` (same module).
_REFERENCE = re.compile(r"(?<![\w./])(?:ufm|fullnet)(?:\.[A-Za-z_]\w*)+(?:\s*/\s*[A-Za-z_]\w*)*")
#: A note line or part that lists library functions begins with a ``ufm``/``fullnet`` name.
_LEADING_REFERENCE = re.compile(r"^\(?\s*(?:ufm|fullnet)(?:\.\w|\s*,|\s*$)")
_TRAILING_GROUP = re.compile(r"\s*\(([^()]*)\)\s*$")


def _functions(*texts: str) -> list[str]:
    """The ``ufm.``/``fullnet.`` names in ``texts``, in order, ``a.b.f / g`` read as a.b.f, a.b.g."""
    names: list[str] = []
    for text in texts:
        for match in _REFERENCE.finditer(text or ""):
            first, *others = [part.strip() for part in match.group(0).split("/")]
            found = [first] + [first.rsplit(".", 1)[0] + "." + other for other in others]
            names.extend(name for name in found if name not in names)
    return names


def _is_reference_list(text: str) -> bool:
    rest = _REFERENCE.sub("", text)
    return bool(_REFERENCE.search(text)) and not re.sub(r"[\s,;/→()+]|\band\b", "", rest)


def _split_top_level(line: str, separator: str = ";") -> list[str]:
    """``line`` split at ``separator`` outside parentheses."""
    parts, depth, current = [], 0, []
    for character in line:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if character == separator and depth <= 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _note_prose(note: str) -> str:
    """``note`` without its lists of library functions, as one line."""
    kept: list[str] = []
    for line in (note or "").splitlines():
        parts = []
        for part in _split_top_level(line.strip()):
            if _LEADING_REFERENCE.match(part):
                continue
            trailing = _TRAILING_GROUP.search(part)
            if trailing is not None and _is_reference_list(trailing.group(1)):
                part = part[: trailing.start()].rstrip()
            if part:
                parts.append(part)
        if parts:
            kept.append("; ".join(parts))
    text = ""
    for line in kept:  # the lines of a note are clauses
        text = line if not text else text + (" " if text[-1] in ".;:,–-" else "; ") + line
    return text.strip()


def _sentence(text: str, capital: bool = True) -> str:
    text = " ".join(str(text).split())
    if not text:
        return ""
    if capital:
        text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def caption_text(paper: str, experiment: str, text: str, quick: bool, note: str = "") -> str:
    """A paper-style caption from the arguments of :func:`figure_title`.

    ``TEXT. NOTE (without its library functions). Experiment EXPERIMENT of PAPER; docs/theory.md
    §6. Quick version …`` on one line, to paste under the figure and edit.
    """
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {', '.join(PAPERS)}, got {paper!r}")
    where = "" if "docs/theory.md" in experiment else "; docs/theory.md §6"
    parts = [
        _sentence(text),
        _sentence(_note_prose(note), capital=False),  # it may begin with a name (mnist-5k)
        f"Experiment {experiment} of {PAPERS[paper]}{where}.",
        "Quick version: the CPU settings, smaller than the papers' (fewer seeds, steps or sizes)."
        if quick else "",
    ]
    return " ".join(part for part in parts if part)


def _find_seeds(settings: Any, prefix: str = "") -> dict[str, Any]:
    """Every setting whose name holds ``seed`` (nested settings as ``outer.inner``)."""
    found: dict[str, Any] = {}
    if isinstance(settings, Mapping):
        for key, value in settings.items():
            path = f"{prefix}{key}"
            if "seed" in str(key).lower():
                found[path] = value
            elif isinstance(value, Mapping):
                found.update(_find_seeds(value, path + "."))
    return found


def _software() -> dict[str, str]:
    """Versions of the package and of what drew or computed the figure."""
    import platform

    from ufm import __version__

    versions = {"ufm-sandbox": __version__, "python": platform.python_version(),
                "numpy": np.__version__, "matplotlib": matplotlib.__version__}
    torch = sys.modules.get("torch")
    if torch is not None and getattr(torch, "__version__", None):
        versions["torch"] = str(torch.__version__)
    return versions


def _registry_info(name: str):
    from .registry import UnknownFigureError, figure_info

    try:
        return figure_info(name)
    except UnknownFigureError:
        return None


def figure_provenance(out_dir: str | Path, name: str,
                      data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What made figure ``name`` in ``out_dir``: the record of its last :func:`figure_title` and
    :func:`save_figure`, the settings in ``data`` and the current :class:`OutputOptions`.

    Parameters
    ----------
    out_dir : str or Path
    name : str
        The figure's name (the stem of its files).
    data : mapping, optional
        The figure's data (what goes into ``NAME.json``): its ``settings`` and ``quick`` are read.

    Returns
    -------
    dict
        ``figure``, ``module``, ``paper``, ``citation``, ``experiment`` (as in the title),
        ``experiment_id`` (of docs/theory.md §6), ``title`` (as drawn), ``caption``
        (:func:`caption_text`), ``details`` (the settings text of the long title), ``quick``,
        ``version`` ("quick" or "full"), ``settings``, ``overrides`` (``--set``), ``seeds`` (every
        setting whose name holds "seed"; when none does, every such key of the rest of ``data``,
        e.g. ``sweep.grid.seeds``), ``functions`` (the ``ufm.``/``fullnet.`` names of the
        long title), ``style``, ``formats``, ``files``, ``command`` (None when made from
        Python) and ``software`` (package and library versions).
    """
    record = _RECORDS.get(_key(out_dir, name))
    title = record.title if record is not None else None
    if data is None:
        data = (record.data if record is not None else None) or {}
    settings = data.get("settings")
    quick = data.get("quick", title.quick if title is not None else None)
    info = _registry_info(name)
    formats = record.formats if record is not None and record.figures else _OPTIONS.formats
    style = record.style if record is not None and record.figures else _OPTIONS.style
    files = [f"{name}.{fmt}" for fmt in formats] + [f"{name}{CAPTION_SUFFIX}"]
    if (Path(out_dir) / f"{name}.csv").exists():
        files.append(f"{name}.csv")
    files.append(f"{name}.json")
    return {
        "figure": name,
        "module": info.module if info is not None else None,
        "paper": title.paper if title is not None else None,
        "citation": PAPERS[title.paper] if title is not None else None,
        "experiment": title.experiment if title is not None else data.get("experiment"),
        "experiment_id": info.experiment if info is not None else data.get("experiment"),
        "theory": "docs/theory.md §6",
        "title": title.shown if title is not None else None,
        "caption": caption_text(title.paper, title.experiment, title.text, title.quick, title.note)
        if title is not None else None,
        "details": _note_prose(title.note) if title is not None else None,
        "quick": quick,
        "version": None if quick is None else ("quick" if quick else "full"),
        "settings": settings,
        "overrides": dict(_OPTIONS.overrides),
        "seeds": _find_seeds(settings) or _find_seeds(
            {key: value for key, value in data.items() if key not in ("settings", "rows", "provenance")}),
        "functions": _functions(title.text, title.note) if title is not None else [],
        "style": style,
        "formats": list(formats),
        "files": files,
        "command": _OPTIONS.command,
        "software": _software(),
    }


def _inline(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False)


def caption_markdown(provenance: Mapping[str, Any]) -> str:
    """The caption file's text: the caption, then the provenance as a list."""
    name = provenance["figure"]
    lines = [f"# {name}", ""]
    if provenance.get("caption"):
        lines += [provenance["caption"], ""]
    lines += ["## Provenance", ""]
    module = f" (`{provenance['module']}`)" if provenance.get("module") else ""
    lines.append(f"- figure: `{name}`{module}; files: {', '.join(provenance['files'])} "
                 "(the JSON holds this record under `provenance`)")
    if provenance.get("citation"):
        lines.append(f"- paper: {provenance['citation']}")
    experiment, identifier = provenance.get("experiment"), provenance.get("experiment_id")
    if experiment:
        named = "" if not identifier or str(experiment).startswith(str(identifier)) else f" (ID {identifier})"
        where = "" if "docs/theory.md" in f"{experiment}{named}" else f", {provenance['theory']}"
        lines.append(f"- experiment: {experiment}{named}{where}")
    if provenance.get("version"):
        lines.append(f"- version: {provenance['version']}")
    settings = provenance.get("settings")
    if isinstance(settings, Mapping) and settings:
        lines.append("- settings:")
        lines += [f"  - `{key}` = `{_inline(value)}`" for key, value in settings.items()]
    if provenance.get("overrides"):
        lines.append("- overrides (`--set`): " + ", ".join(
            f"`{key}={_inline(value)}`" for key, value in provenance["overrides"].items()))
    seeds = provenance.get("seeds") or {}
    lines.append("- seeds: " + (", ".join(f"`{key}` = `{_inline(value)}`" for key, value in seeds.items())
                                if seeds else "none among the settings"))
    if provenance.get("functions"):
        lines.append("- library functions: " + ", ".join(f"`{item}`" for item in provenance["functions"]))
    if provenance.get("details"):
        lines.append(f"- description: {provenance['details']}")
    lines.append(f"- style: {provenance['style']}; formats: {', '.join(provenance['formats'])}")
    command = provenance.get("command")
    lines.append(f"- command: `{command}`" if command else "- command: none (made from Python)")
    lines.append("- software: " + ", ".join(f"{key} {value}" for key, value in provenance["software"].items()))
    return "\n".join(lines) + "\n"


def _write_caption(record: _Record) -> None:
    """(Re)write ``NAME.caption.md`` of a figure that :func:`save_figure` wrote."""
    path = record.out_dir / f"{record.name}{CAPTION_SUFFIX}"
    provenance = figure_provenance(record.out_dir, record.name, record.data)
    path.write_text(caption_markdown(provenance), encoding="utf-8")
    record.caption = path


def to_jsonable(value: Any) -> Any:
    """Numpy arrays and scalars to lists and Python numbers; non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(out_dir: str | Path, name: str, data: Mapping[str, Any]) -> Path:
    """Write ``NAME.json`` (indented; non-finite numbers as null) with the figure's provenance.

    A mapping without the key ``provenance`` gets it (:func:`figure_provenance`), placed before
    ``settings``; when :func:`save_figure` wrote figure ``name`` into ``out_dir``, its caption
    file is rewritten with the settings and seeds of ``data``.
    """
    path = Path(out_dir) / f"{name}.json"
    record = None
    if isinstance(data, Mapping) and "provenance" not in data:
        record = _RECORDS.setdefault(_key(out_dir, name), _Record(name=name, out_dir=Path(out_dir)))
        record.data = data
        provenance = figure_provenance(out_dir, name, data)
        payload: dict[str, Any] = {}
        for key, value in data.items():
            if key == "settings":
                payload["provenance"] = provenance
            payload[key] = value
        payload.setdefault("provenance", provenance)
        data = payload
    path.write_text(json.dumps(to_jsonable(data), indent=1) + "\n", encoding="utf-8")
    if record is not None and record.figures:
        _write_caption(record)
    return path


def write_csv(out_dir: str | Path, name: str, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``NAME.csv``: one row per mapping, columns in order of first appearance.

    Floats are written with ``repr`` (round-trip exact), missing values as empty fields.
    """
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    path = Path(out_dir) / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _csv_field(value) for key, value in row.items()})
    return path


def _csv_field(value: Any) -> Any:
    value = to_jsonable(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def mean_and_std(values: Iterable[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation across seeds (axis 0), ignoring NaN entries."""
    array = np.asarray(list(values), dtype=np.float64)
    array = np.where(np.isfinite(array), array, np.nan)
    count = np.sum(np.isfinite(array), axis=0)
    mean = np.where(count > 0, np.nansum(array, axis=0) / np.maximum(count, 1), np.nan)
    squares = np.nansum((array - mean) ** 2, axis=0)
    std = np.where(count > 0, np.sqrt(squares / np.maximum(count, 1)), np.nan)
    return mean, std


def plot_band(axis, x: Sequence[float], values: Sequence[Sequence[float]], *, color, label: str,
              linestyle: str = "-", log: bool = False, alpha: float = 0.2) -> None:
    """Mean over seeds with a ±1 standard-deviation band.

    With ``log=True`` the band is drawn between mean ± std clipped to positive values, for
    log-scaled axes.
    """
    mean, std = mean_and_std(values)
    lower, upper = mean - std, mean + std
    if log:
        floor = np.nanmin(mean[mean > 0]) * 1e-3 if np.any(mean > 0) else 1e-300
        lower = np.maximum(lower, floor)
    axis.plot(x, mean, color=color, linestyle=linestyle, label=label)
    if len(values) > 1:
        axis.fill_between(x, lower, upper, color=color, alpha=alpha, linewidth=0)


def plot_seed_fraction(axis, widths: Sequence[int], summary: Sequence[Mapping[str, Any]],
                       count_key: str, label: str) -> None:
    """Fraction of seeds per width with its ± binomial standard-error band, each point annotated
    with ``entry[count_key]/entry["runs"]``, on a log₂ width axis (ticks at the widths).

    ``summary`` holds one entry per width with ``fraction``, ``standard_error``, ``runs`` and
    ``count_key``.
    """
    x = np.array(widths, dtype=float)
    fraction = np.array([entry["fraction"] for entry in summary])
    error = np.array([entry["standard_error"] for entry in summary])
    axis.fill_between(x, np.clip(fraction - error, 0, 1), np.clip(fraction + error, 0, 1),
                      color="tab:blue", alpha=0.2, linewidth=0, label="± binomial standard error")
    axis.plot(x, fraction, "o-", color="tab:blue", label=label)
    for width, entry in zip(x, summary):
        axis.annotate(f"{entry[count_key]}/{entry['runs']}", (width, entry["fraction"]),
                      textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
    axis.set_xscale("log", base=2)
    axis.set_xticks(x, [str(width) for width in widths])
    axis.minorticks_off()


def scatter_runs_by_outcome(axis, rows: Sequence[Mapping[str, Any]], seeds: Sequence[int],
                            offsets: Sequence[float], flag: str, value, labels: tuple[str, str]) -> None:
    """One point per run at (width, ``value(row)``), the seeds spread sideways by 2^offset; green
    circles for runs with ``row[flag]`` true, red crosses for the others (``labels`` in that
    order). Rows whose ``value`` is None are left out."""
    for marker, color, label, wanted in (("o", "tab:green", labels[0], True),
                                         ("x", "tab:red", labels[1], False)):
        points = [(row["width"] * 2.0 ** offsets[seeds.index(row["seed"])], value(row))
                  for row in rows if row[flag] == wanted]
        points = [point for point in points if point[1] is not None]
        if points:
            px, py = zip(*points)
            axis.plot(px, py, marker, color=color, linestyle="none", markersize=4.5, label=label)


def layer_colors(count: int):
    """``count`` distinct colours ordered along a perceptual colormap (layers 1..count)."""
    cmap = plt.get_cmap("viridis")
    if count == 1:
        return [cmap(0.2)]
    return [cmap(0.05 + 0.8 * index / (count - 1)) for index in range(count)]
