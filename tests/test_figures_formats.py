"""Figure formats, the paper style and the provenance beside each figure.

``python -m figures NAME --format pdf|svg|png[,...] --style default|paper`` writes the figure in
the chosen formats, ``NAME.caption.md`` beside it (a caption and the provenance) and the key
``provenance`` in ``NAME.json`` (figures.common). The figure made here is ``sukenik2024_ratio
--quick`` (closed forms, about a second); the seeds are checked on ``sukenik2023_threshold
--quick`` (a few seconds), the cheapest figure whose settings hold seeds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from figures import cli, common, registry

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAME = "sukenik2024_ratio"


def _make(tmp_path, capsys, *options):
    code = cli.main([NAME, "--quick", "--out", str(tmp_path), *options])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_pdf_and_svg_are_valid_files(tmp_path, capsys):
    out = _make(tmp_path, capsys, "--format", "pdf,svg")
    pdf, svg = tmp_path / f"{NAME}.pdf", tmp_path / f"{NAME}.svg"
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert pdf.read_bytes().rstrip().endswith(b"%%EOF")  # a complete PDF, not a cut one
    root = ElementTree.parse(svg).getroot()  # raises if the SVG is not well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert not (tmp_path / f"{NAME}.png").exists()  # only the formats asked for
    for path in (pdf, svg, tmp_path / f"{NAME}{common.CAPTION_SUFFIX}"):
        assert str(path) in out  # every file is printed
    data = json.loads((tmp_path / f"{NAME}.json").read_text(encoding="utf-8"))
    assert data["provenance"]["formats"] == ["pdf", "svg"]


def test_format_list_and_repeats_write_each_format_once(tmp_path, capsys):
    _make(tmp_path, capsys, "--format", "PDF", "--format", "png,pdf")
    assert (tmp_path / f"{NAME}.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / f"{NAME}.pdf").read_bytes().startswith(b"%PDF-")
    assert not (tmp_path / f"{NAME}.svg").exists()
    data = json.loads((tmp_path / f"{NAME}.json").read_text(encoding="utf-8"))
    assert data["provenance"]["formats"] == ["pdf", "png"]


def test_default_is_png_only_with_the_caption(tmp_path, capsys):
    _make(tmp_path, capsys)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == sorted([f"{NAME}.png", f"{NAME}.csv", f"{NAME}.json", f"{NAME}.caption.md",
                            "timings.csv"])


def test_json_holds_the_provenance(tmp_path, capsys):
    _make(tmp_path, capsys)
    data = json.loads((tmp_path / f"{NAME}.json").read_text(encoding="utf-8"))
    provenance = data["provenance"]
    from figures import sukenik2024_ratio as figure
    from ufm import __version__

    assert provenance["settings"] == data["settings"] == figure.settings(True)
    assert provenance["figure"] == NAME and provenance["module"] == "figures.sukenik2024_ratio"
    assert provenance["paper"] == "C" and provenance["experiment_id"] == "E-C4"
    assert provenance["quick"] is True and provenance["version"] == "quick"
    assert provenance["functions"] == ["ufm.optima.srg_ratio", "ufm.optima.predict_srg"]
    assert provenance["seeds"] == {}  # closed forms: no seed among the settings
    assert provenance["command"].endswith(f"{NAME} --quick --out {tmp_path}")
    assert provenance["software"]["ufm-sandbox"] == __version__
    assert provenance["style"] == "default" and provenance["overrides"] == {}
    # the caption's text has no library names: they are in "functions"
    assert "ufm." not in provenance["caption"]
    assert provenance["caption"].startswith("Low-rank SRG points against deep neural collapse.")


def test_caption_names_the_settings_and_seeds(tmp_path, capsys):
    name = "sukenik2023_threshold"
    assert cli.main([name, "--quick", "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    from figures import sukenik2023_threshold as figure

    config = figure.settings(True)
    caption = (tmp_path / f"{name}{common.CAPTION_SUFFIX}").read_text(encoding="utf-8")
    assert caption.startswith(f"# {name}\n\nDNC optimum across the λ threshold.")
    assert f"- seeds: `gd_seeds` = `{json.dumps(config['gd_seeds'])}`" in caption
    for key in config:
        assert f"`{key}` = " in caption
    assert f"`gd_steps` = `{config['gd_steps']}`" in caption
    assert "- version: quick" in caption
    assert "`ufm.optima.predict_dufm`" in caption and "`ufm.optima.dnc_critical_lambda`" in caption
    assert f"--quick --out {tmp_path}`" in caption  # the command line
    data = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
    assert data["provenance"]["seeds"] == {"gd_seeds": config["gd_seeds"]}


@pytest.mark.parametrize("value", ["jpg", "pdf,", "png,tiff", ""])
def test_bad_format_is_one_line_and_exit_2(tmp_path, capsys, value):
    assert cli.main([NAME, "--quick", "--out", str(tmp_path / "out"), "--format", value]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: --format:") and "png, pdf, svg" in lines[0]
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_bad_format_from_the_shell_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "figures", NAME, "--format", "gif", "--out",
                             str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "gif" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_style_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main([NAME, "--out", str(tmp_path), "--style", "poster"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--style" in err and "poster" in err


def _titles(monkeypatch):
    """Record the suptitle and size (inches) of each figure that save_figure writes."""
    seen = []
    real = common.save_figure

    def save(figure, out_dir, name):
        path = real(figure, out_dir, name)
        seen.append((figure.get_suptitle(), tuple(figure.get_size_inches())))
        return path

    from figures import sukenik2024_ratio as figure

    monkeypatch.setattr(figure, "save_figure", save)
    return seen


def test_paper_style_has_a_one_line_title_and_paper_width(tmp_path, monkeypatch):
    seen = _titles(monkeypatch)
    registry.make_figure(NAME, tmp_path / "paper", quick=True, style="paper")
    registry.make_figure(NAME, tmp_path / "default", quick=True)
    (paper, paper_size), (default, default_size) = seen
    assert "\n" not in paper
    assert paper == "low-rank SRG points against deep neural collapse  [quick]"
    assert default.count("\n") <= 1 and default.startswith(common.PAPERS["C"])
    # the module draws 10 × 4.8 in; the paper style scales it to the text width, same aspect
    assert default_size == (10.0, 4.8)
    assert paper_size[0] == pytest.approx(common.PAPER_WIDTH, rel=1e-12)  # float scaling only
    assert paper_size[1] == pytest.approx(4.8 * common.PAPER_WIDTH / 10.0, rel=1e-12)
    data = json.loads((tmp_path / "paper" / f"{NAME}.json").read_text(encoding="utf-8"))
    assert data["provenance"]["style"] == "paper" and data["provenance"]["title"] == paper
    assert data["provenance"]["command"] is None  # made from Python, not the command line
    from PIL import Image

    with Image.open(tmp_path / "paper" / f"{NAME}.png") as image:  # 300 dpi in the paper style
        assert round(image.info["dpi"][0]) == 300


def test_a_title_wider_than_the_figure_is_broken_after_the_experiment(tmp_path):
    text = "DNC optimum across the λ threshold"
    shown = {}
    for width in (4.0, 14.0):  # the one-line title is about 6 in wide at 10.5 pt
        figure, _ = common.new_figure(1, 1, width, 3.0)
        figure.suptitle(common.figure_title("B", "E-B3", text, False))
        common.save_figure(figure, tmp_path, f"w{width:g}")
        shown[width] = figure.get_suptitle()
    assert shown[14.0] == f"{common.PAPERS['B']} — E-B3: {text}"
    assert shown[4.0] == f"{common.PAPERS['B']} — E-B3:\n{text}"
    caption = (tmp_path / f"w4{common.CAPTION_SUFFIX}").read_text(encoding="utf-8")
    assert caption.startswith(f"# w4\n\n{text}.")


def test_titles_are_short_in_both_styles():
    note = "K = 2, L = 3, n = 5\nufm.solvers.solve, ufm.optima.predict_dufm / predict_srg"
    long_text = "a description long enough to break the first line " * 2
    for text in ("short", long_text):
        default = common.figure_title("B", "E-B1", text, False, note)
        assert default.count("\n") <= 1 and "ufm." not in default and "K = 2" not in default
        with common.use_output(style="paper"):
            paper = common.figure_title("B", "E-B1", text, True, note)
        assert "\n" not in paper and paper == " ".join(text.split()) + "  [quick]"
    assert common.output_options().style == "default"  # use_output restores the options


def test_caption_text_moves_library_names_out():
    note = ("K = 2, n = 1; ufm.optima.predict_dufm, dnc_critical_lambda; GD: width 16 (seeds 0–2)\n"
            "ratio < 1 beats DNC (ufm.optima.srg_ratio, ufm.optima.predict_srg)\n"
            "fullnet.training.train → fullnet.compare.compare_run (ufm.models.LinearHead)")
    caption = common.caption_text("C", "E-C4", "what it shows", False, note)
    # the lines of the note are clauses (joined by "; "); the note keeps its lower-case start
    assert caption == ("What it shows. K = 2, n = 1; GD: width 16 (seeds 0–2); ratio < 1 beats DNC. "
                       "Experiment E-C4 of Súkeník, Lampert & Mondelli 2024 (C); docs/theory.md §6.")
    assert common.caption_text("A", "E-A1", "x", False, "mnist-5k digits").startswith("X. mnist-5k digits.")
    assert common._functions(note) == [
        "ufm.optima.predict_dufm", "ufm.optima.srg_ratio", "ufm.optima.predict_srg",
        "fullnet.training.train", "fullnet.compare.compare_run", "ufm.models.LinearHead",
    ]
    assert common._functions("ufm.optima.predict_dufm / predict_srg") == [
        "ufm.optima.predict_dufm", "ufm.optima.predict_srg"]


def test_parse_formats_and_use_output_name_the_argument():
    assert registry.parse_formats("pdf, PNG,pdf") == ("pdf", "png")
    with pytest.raises(ValueError, match="format must be one of png, pdf, svg.*'eps'"):
        registry.parse_formats("eps")
    with pytest.raises(ValueError, match="style must be one of default, paper"):
        with common.use_output(style="slides"):
            pass
    with pytest.raises(ValueError, match="format"):
        registry.make_figure(NAME, "unused", quick=True, formats="bmp")


def test_a_title_drawn_on_another_figure_is_not_taken(tmp_path):
    """save_figure takes the last figure_title only when it is the figure's suptitle."""
    common.figure_title("C", "E-C4", "a title that is never drawn", False, "ufm.optima.srg_ratio")
    figure, _ = common.new_figure(1, 1, 4.0, 3.0)
    common.save_figure(figure, tmp_path, "untitled")
    path = common.write_json(tmp_path, "untitled", {"settings": {"seed": 5}})
    provenance = json.loads(path.read_text(encoding="utf-8"))["provenance"]
    assert provenance["paper"] is None and provenance["functions"] == []
    assert provenance["seeds"] == {"seed": 5}
    caption = (tmp_path / f"untitled{common.CAPTION_SUFFIX}").read_text(encoding="utf-8")
    assert "never drawn" not in caption and "- seeds: `seed` = `5`" in caption


def test_seeds_outside_the_settings_are_found_in_the_data(tmp_path):
    """A figure whose settings name a sweep file keeps its seeds in the data (lambda_width_sweep)."""
    path = common.write_json(tmp_path, "swept", {"settings": {"sweep": "grid.toml"},
                                                 "sweep": {"grid": {"seeds": [0, 1]}}, "rows": []})
    provenance = json.loads(path.read_text(encoding="utf-8"))["provenance"]
    assert provenance["seeds"] == {"sweep.grid.seeds": [0, 1]}


def test_no_title_draws_none_and_keeps_the_caption(tmp_path, monkeypatch, capsys):
    seen = _titles(monkeypatch)
    assert cli.main([NAME, "--quick", "--style", "paper", "--no-title", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert seen[0][0] == ""
    data = json.loads((tmp_path / f"{NAME}.json").read_text(encoding="utf-8"))
    assert data["provenance"]["title"] == "" and data["provenance"]["paper"] == "C"
    caption = (tmp_path / f"{NAME}{common.CAPTION_SUFFIX}").read_text(encoding="utf-8")
    assert caption.startswith(f"# {NAME}\n\nLow-rank SRG points against deep neural collapse.")
