"""Every bad input to a command line is one clear line (exit status 2), and nothing is written.

The three command lines: ``python -m ufm`` (predict, solve, metrics, metrics-demo, atlas),
``python -m figures`` and ``python -m proofs_checks``. Each case runs ``main([...])`` in process
and checks: exit status 2, exactly one line on standard error that names the argument, no
traceback, and the same listing of the test folder before and after (nothing written, not even
an empty output folder). Output paths that are files, folders that cannot be written and a full
disk (``OSError(ENOSPC)`` from every write, simulated by monkeypatching) are covered for every
command that writes.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import tempfile

import numpy as np
import pytest

from figures import cli as figures_cli
from proofs_checks import cli as proofs_cli
from ufm import atlas as ufm_atlas
from ufm import cli as ufm_cli
from ufm import demo as ufm_demo

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def listing(folder) -> list[str]:
    """Every path under ``folder`` (files and folders), relative, sorted."""
    found = []
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            found.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(found)


@pytest.fixture
def place(tmp_path):
    """A test folder with an output folder path that does not exist yet, a file, a folder, and
    small .npy files for ``ufm metrics`` (good ones and bad ones)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 4)
    features = rng.standard_normal((5, 3))[:, labels] + 0.1 * rng.standard_normal((5, 12))
    data = tmp_path / "data"
    data.mkdir()
    arrays = {
        "F": features, "y": labels, "W": rng.standard_normal((3, 5)), "b": np.zeros(3),
        "F3": np.zeros((2, 5, 12)), "Fc": features.astype(complex), "Fempty": np.zeros((5, 0)),
        "y_float": labels.astype(float), "y_2d": labels[None, :], "y_short": labels[:-1],
        "y_negative": np.where(labels == 2, -1, labels), "y_one_class": np.zeros(12, int),
        "y_gap": np.where(labels == 1, 2, labels), "W_bad": np.zeros((3, 4)),
        "W_rows": np.zeros((4, 5)), "b_bad": np.zeros(4), "W_nan": np.full((3, 5), np.nan),
    }
    for name, array in arrays.items():
        np.save(data / f"{name}.npy", array)
    for name, value in (("F_nan", np.nan), ("F_inf", np.inf)):
        bad = features.copy()
        bad[1, 3] = value
        np.save(data / f"{name}.npy", bad)
    np.save(data / "y_objects.npy", np.array([0, "a", None], dtype=object), allow_pickle=True)
    np.savez(data / "F_archive.npz", a=features, b=features)
    (data / "junk.npy").write_text("not an array")
    whole = (data / "F.npy").read_bytes()
    (data / "F_truncated.npy").write_bytes(whole[: len(whole) - 40])
    (tmp_path / "a_file").write_text("keep me")
    (tmp_path / "a_folder").mkdir()
    paths = {"out": tmp_path / "out", "file": tmp_path / "a_file", "dir": tmp_path / "a_folder",
             "data": data, "root": tmp_path}
    return {key: str(value) for key, value in paths.items()}


def fill(arguments, place) -> list[str]:
    return [argument.format(**place) for argument in arguments]


def run(main, arguments, capsys):
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *names, absent=()):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], lines[0]
    for name in absent:
        assert name not in lines[0], lines[0]
    return lines[0]


def check_case(main, arguments, names, place, capsys, absent=()):
    before = listing(place["root"])
    code, out, err = run(main, fill(arguments, place), capsys)
    line = assert_one_line_error(code, err, *names, absent=absent)
    assert listing(place["root"]) == before, "something was written"
    assert open(place["file"]).read() == "keep me"
    return line, out


# ---------------------------------------------------------------------------------------------
# ufm: predict, solve, metrics, metrics-demo, atlas
# ---------------------------------------------------------------------------------------------

UFM_MODEL = ["--K", "3", "--n", "2", "--lam-h", "0.01", "--lam-w", "0.01"]
DEEP_MODEL = ["--K", "2", "--n", "1", "--L", "2", "--lam-h", "0.01", "--lam-w", "0.01"]
METRICS = ["metrics", "--features", "{data}/F.npy", "--labels", "{data}/y.npy"]
ATLAS = ["atlas", "--K", "2", "--L", "1", "--width", "4", "--method", "kink_lbfgs",
         "--max-starts", "1", "--no-progress", "--out", "{out}"]

UFM_CASES = [
    # predict
    (["predict", "dufm", "--K", "2", "--n", "1", "--L", "-2", "--lam-h", "1e-3",
      "--lam-w", "1e-3,2e-3"], ["--L", ">= 1"], ["--lam-w"]),
    (["predict", "dufm", "--K", "2", "--n", "1", "--lam-w", "1e-3,2e-3", "--L", "-2",
      "--lam-h", "1e-3"], ["--L", ">= 1"], ["--lam-w"]),
    (["predict", "ufm", "--K", "2", "--n", "1", "--lam-h", "-1e-3", "--lam-w", "1e-3"],
     ["--lam-h", ">= 0"], []),
    (["predict", "ufm", "--K", "2", "--n", "1", "--lam-h", "1e-3", "--lam-w", "nan"],
     ["--lam-w", "finite"], []),
    (["predict", "ufm", "--K", "1", "--n", "1", "--lam-h", "1e-3", "--lam-w", "1e-3"],
     ["--K", ">= 2"], []),
    (["predict", "ufm", "--K", "2", "--n", "1", "--lam-h", "1e-3", "--lam-w", "1e-3",
      "--d", "2.5"], ["--d", "integer"], []),
    (["predict", "dufm", "--K", "2", "--n", "1", "--L", "2", "--lam-h", "1e-3",
      "--lam-w", "1e-3,x"], ["--lam-w"], []),
    (["predict", "dufm", "--K", "2", "--n", "1", "--L", "3", "--lam-h", "1e-3",
      "--lam-w", "1e-3,2e-3"], ["--lam-w", "L = 3"], []),
    (["predict", "dufm", "--K", "2", "--n", "1", "--L", "2", "--lam-h", "1e-3",
      "--lam-w", "1e-3,-2e-3"], ["--lam-w", ">= 0"], []),
    (["predict", "ufm", "--K", "2", "--lam-h", "1e-3", "--lam-w", "1e-3"], ["--n"], []),
    (["predict"], ["MODEL"], []),
    (["frobnicate"], ["COMMAND"], []),
    # solve
    (["solve", "ufm", *UFM_MODEL, "--save", "{file}"], ["--save", "is a file"], []),
    (["solve", "ufm", *UFM_MODEL, "--save", "{file}/sub"], ["--save", "is a file"], []),
    (["solve", "ufm", *UFM_MODEL, "--save", ""], ["--save", "empty"], []),
    (["solve", "dufm", *DEEP_MODEL, "--width", "1000000", "--save", "{out}"],
     ["--width", "memory", "available"], []),
    (["solve", "dufm", *DEEP_MODEL, "--width", "1e6"], ["--width", "memory"], []),
    (["solve", "deep-linear", *DEEP_MODEL, "--width", "1000000", "--method", "gd"],
     ["--width", "memory"], []),
    (["solve", "ufm", "--K", "2", "--n", "100000000000", "--lam-h", "0.01", "--lam-w", "0.01"],
     ["--n", "memory"], []),
    (["solve", "ufm", "--K", "2", "--n", "1", "--d", "1000000000000", "--lam-h", "0.01",
      "--lam-w", "0.01"], ["--d", "memory"], []),
    (["solve", "ufm", *UFM_MODEL, "--lr", "0"], ["--lr", "> 0"], []),
    (["solve", "ufm", *UFM_MODEL, "--tolerance", "-1"], ["--tolerance", ">= 0"], []),
    (["solve", "dufm", *DEEP_MODEL, "--time-budget", "0"], ["--time-budget", "> 0"], []),
    (["solve", "ufm", *UFM_MODEL, "--restarts", "0"], ["--restarts", ">= 1"], []),
    (["solve", "ufm", *UFM_MODEL, "--seed", "-1"], ["--seed", ">= 0"], []),
    (["solve", "ufm", *UFM_MODEL, "--method", "newton"], ["--method", "newton"], []),
    (["solve", "dufm", *DEEP_MODEL, "--workers", "0"], ["--workers", ">= 1"], []),
    (["solve", "ufm", *UFM_MODEL, "--max-iterations", "1.5"], ["--max-iterations"], []),
    # metrics
    (["metrics", "--features", "{dir}", "--labels", "{data}/y.npy"],
     ["--features", "is a folder"], ["does not exist"]),
    (["metrics", "--features", "{data}/missing.npy", "--labels", "{data}/y.npy"],
     ["--features", "does not exist"], []),
    (["metrics", "--features", "{data}/junk.npy", "--labels", "{data}/y.npy"],
     ["--features", "not a readable .npy"], []),
    (["metrics", "--features", "{data}/F_archive.npz", "--labels", "{data}/y.npy"],
     ["--features", "several arrays"], []),
    (["metrics", "--features", "{data}/F_truncated.npy", "--labels", "{data}/y.npy"],
     ["--features", "truncated"], []),
    (["metrics", "--features", "{data}/F3.npy", "--labels", "{data}/y.npy"],
     ["--features", "2-D"], []),
    (["metrics", "--features", "{data}/Fc.npy", "--labels", "{data}/y.npy"],
     ["--features", "real numbers"], []),
    (["metrics", "--features", "{data}/Fempty.npy", "--labels", "{data}/y.npy"],
     ["--features", "non-empty"], []),
    (["metrics", "--features", "{data}/F_nan.npy", "--labels", "{data}/y.npy"],
     ["--features", "NaN"], []),
    (["metrics", "--features", "{data}/F_inf.npy", "--labels", "{data}/y.npy"],
     ["--features", "Inf"], []),
    (["metrics", "--features", "{data}/F.npy", "--labels", "{data}/y.npy", "--rows"],
     ["--labels", "(5,)"], []),
    (["metrics", "--features", "{data}/F.npy", "--labels", "{data}/y_short.npy"],
     ["--labels", "(12,)", "--rows"], []),
    (["metrics", "--features", "{data}/F.npy", "--labels", "{data}/y_2d.npy"], ["--labels"], []),
    (["metrics", "--features", "{data}/F.npy", "--labels", "{data}/y_float.npy"],
     ["--labels", "integer"], []),
    (["metrics", "--features", "{data}/F.npy", "--labels", "{data}/y_objects.npy"],
     ["--labels", "Python objects"], []),
    (["metrics", "--features", "{data}/F.npy", "--labels", "{data}/y_negative.npy"],
     ["--labels", "got values in -1.."], []),
    (["metrics", "--features", "{data}/F.npy", "--labels", "{data}/y_one_class.npy"],
     ["--labels", "at least 2"], []),
    (["metrics", "--features", "{data}/F.npy", "--labels", "{data}/y_gap.npy"],
     ["--labels", "class 1: 0"], []),
    ([*METRICS, "--weights", "{data}/W_bad.npy"], ["--weights", "(K, 5)"], []),
    ([*METRICS, "--weights", "{data}/W_rows.npy"], ["--weights", "3 rows"], []),
    ([*METRICS, "--weights", "{data}/W_nan.npy"], ["--weights", "NaN"], []),
    ([*METRICS, "--bias", "{data}/b.npy"], ["--bias", "--weights"], []),
    ([*METRICS, "--weights", "{data}/W.npy", "--bias", "{data}/b_bad.npy"],
     ["--bias", "(3,)"], []),
    ([*METRICS, "--rank-rtol", "-1"], ["--rank-rtol", ">= 0"], []),
    ([*METRICS, "--rank-rtol", "2"], ["--rank-rtol", "< 1"], []),
    (["metrics", "--labels", "{data}/y.npy"], ["--features"], []),
    # metrics-demo
    (["metrics-demo", "--out", "{file}", "--quiet"], ["--out", "is a file"], []),
    (["metrics-demo", "--out", "{file}/sub", "--quiet"], ["--out", "is a file"], []),
    (["metrics-demo", "--out", "", "--quiet"], ["--out", "empty"], []),
    (["metrics-demo", "--out", "{out}", "--seed", "-1"], ["--seed", ">= 0"], []),
    (["metrics-demo", "--out", "{out}", "--seed", "x"], ["--seed", "integer"], []),
    # atlas
    ([*ATLAS[:-1], "{file}"], ["--out", "is a file"], []),
    ([*ATLAS[:-1], "{file}/sub"], ["--out", "is a file"], []),
    ([*ATLAS, "--K", "1..3"], ["--K"], []),
    ([*ATLAS, "--L", "0"], ["--L"], []),
    ([*ATLAS, "--lam", "0"], ["--lam", "> 0"], []),
    ([*ATLAS, "--lam", "-1e-3"], ["--lam", "> 0"], []),
    ([*ATLAS, "--n", "0"], ["--n", ">= 1"], []),
    ([*ATLAS, "--seed", "-1"], ["--seed", ">= 0"], []),
    ([*ATLAS, "--max-starts", "0"], ["--max-starts", ">= 1"], []),
    ([*ATLAS, "--time-budget", "-1"], ["--time-budget", "> 0"], []),
    ([*ATLAS, "--width", "1"], ["--width"], []),
    ([*ATLAS, "--store", "{dir}"], ["--store", "is a folder"], []),
    ([*ATLAS, "--store", "{file}/x.sqlite"], ["--store", "is a file"], []),
    ([*ATLAS, "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], ["--scheduler"], []),
    (["atlas", "--L", "2", "--out", "{out}"], ["--K"], []),
    ([*ATLAS, "--K", "2..100000", "--width", "auto"], ["--K", "memory", "K = 100000"], []),
    ([*ATLAS, "--width", "10000000"], ["--width", "memory"], []),
    (["atlas", "--quick"], ["--out"], []),
]


@pytest.mark.parametrize("arguments, names, absent", UFM_CASES,
                         ids=[" ".join(case[0][:1] + case[0][-2:]) for case in UFM_CASES])
def test_ufm_bad_input_is_one_line(place, capsys, arguments, names, absent):
    check_case(ufm_cli.main, arguments, names, place, capsys, absent)


def test_ufm_cases_cover_every_command():
    commands = {case[0][0] for case in UFM_CASES}
    assert {"predict", "solve", "metrics", "metrics-demo", "atlas"} <= commands
    for command in ("predict", "solve", "metrics", "atlas"):
        assert sum(case[0][0] == command for case in UFM_CASES) >= 10


def test_metrics_file_that_cannot_fit_in_memory_is_refused_before_loading(place, capsys,
                                                                          monkeypatch):
    loaded = []
    monkeypatch.setattr(ufm_cli, "available_memory", lambda: 1000)
    monkeypatch.setattr(np, "load", lambda *a, **k: loaded.append(a) or pytest.fail("loaded"))
    line, _ = check_case(ufm_cli.main, METRICS, ["--features", "memory", "(5, 12)"], place,
                         capsys)
    assert not loaded and "1000 B" in line


def test_solve_refuses_what_does_not_fit_with_the_estimate(place, capsys, monkeypatch):
    monkeypatch.setattr(ufm_cli, "available_memory", lambda: 10_000)
    line, _ = check_case(ufm_cli.main, ["solve", "ufm", *UFM_MODEL], ["--n", "memory"], place,
                         capsys)
    assert "KiB" in line  # the estimate and what is available, in words
    # more workers than fit: the global search names --workers
    arguments = ["solve", "dufm", *DEEP_MODEL, "--workers", "64"]
    estimate_one, _, _ = ufm_cli.solve_memory_estimate(
        "dufm", ufm_cli.build_parser().parse_args(arguments[:]), workers=1)
    monkeypatch.setattr(ufm_cli, "available_memory", lambda: estimate_one + 1)
    check_case(ufm_cli.main, arguments, ["--workers", "memory"], place, capsys)


def test_memory_estimate_grows_with_the_method_working_set():
    parser = ufm_cli.build_parser()

    def estimate(*extra):
        return ufm_cli.solve_memory_estimate(
            "dufm", parser.parse_args(["solve", "dufm", *DEEP_MODEL, "--width", "100", *extra]))[0]

    gd, lbfgs, kink = estimate("--method", "gd"), estimate("--method", "lbfgs"), \
        estimate("--method", "kink_lbfgs")
    assert gd < lbfgs < kink
    assert estimate("--workers", "4") > estimate("--workers", "1") > kink
    # the parameters alone: H₁ (100 × 2), W_1 (100 × 100), W_2 (2 × 100), float64
    assert gd >= 8 * (100 * 2 + 100 * 100 + 2 * 100)


def test_available_memory_is_a_positive_number_of_bytes():
    available = ufm_cli.available_memory()
    assert available is None or available > 0


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------

FIGURE_CASES = [
    ([], ["NAME"]),
    (["no_such_figure"], ["NAME", "no_such_figure"]),
    (["jacot2025_fig1", "--set", "epochs=-5"], ["epochs", "integer >= 1", "-5"]),
    (["jacot2025_fig1", "--set", "epochs=0"], ["epochs", "integer >= 1"]),
    (["jacot2025_fig1", "--set", "epochs=abc"], ["epochs", '"abc"']),
    (["jacot2025_fig1", "--set", "epochs=2.5"], ["epochs"]),
    (["jacot2025_fig1", "--set", "seeds=[-1]"], ["seeds", ">= 0"]),
    (["jacot2025_fig1", "--set", "seeds=[0,0]"], ["seeds", "distinct"]),
    (["jacot2025_fig1", "--set", "seeds=[]"], ["seeds"]),
    (["jacot2025_fig1", "--set", "per_class=0"], ["per_class"]),
    (["jacot2025_fig1", "--set", "learning_rate=-1"], ["learning_rate", "> 0"]),
    (["jacot2025_fig1", "--set", "weight_decay=-0.1"], ["weight_decay", ">= 0"]),
    (["jacot2025_fig1", "--set", "device=tpu"], ["device", "tpu"]),
    (["jacot2025_fig1", "--set", "dtype=float16"], ["dtype", "float16"]),
    (["jacot2025_fig1", "--set", "dataset=imagenet"], ["dataset", "imagenet"]),
    (["jacot2025_fig1", "--set", "nonlinear_widths=[64,0]"], ["nonlinear_widths", ">= 1"]),
    (["jacot2025_fig1", "--set", "threads=0"], ["threads"]),
    (["jacot2025_fig1", "--set", "data_root={root}/nowhere"], ["data_root", "existing folder"]),
    (["jacot2025_fig1", "--set", "epochz=3"], ["epochz", "epochs"]),
    (["jacot2025_fig1", "--set", "epochs"], ["--set", "KEY=VALUE"]),
    (["jacot2025_fig1", "--set", "epochs=1", "--set", "epochs=2"], ["epochs", "twice"]),
    (["sukenik2023_width", "--set", "widths=[0, 2]"], ["widths", ">= 1"]),
    (["sukenik2023_width", "--set", "lam=0"], ["lam", "> 0"]),
    (["sukenik2023_real_backbone", "--set", "classes=[3]"], ["classes", "two distinct"]),
    (["sukenik2023_real_backbone", "--set", "lr_drop_fraction=1.5"], ["lr_drop_fraction"]),
    (["sukenik2024_ratio", "--set", "epochs=3"], ["sukenik2024_ratio", "no settings"]),
    (["all", "--set", "epochs=3"], ["--set"]),
    (["sukenik2024_ratio", "--out", "{file}"], ["--out", "is a file"]),
    (["sukenik2024_ratio", "--out", "{file}/sub"], ["--out", "is a file"]),
    (["sukenik2024_ratio", "--out", ""], ["--out", "empty"]),
    (["sukenik2024_ratio", "--bogus"], ["--bogus"]),
    (["sukenik2024_ratio", "--format", "jpg"], ["--format", "jpg", "png, pdf, svg"]),
    (["sukenik2024_ratio", "--format", "pdf,"], ["--format", "png, pdf, svg"]),
    (["sukenik2024_ratio", "--style", "poster"], ["--style", "poster"]),
]


@pytest.mark.parametrize("arguments, names", FIGURE_CASES,
                         ids=[" ".join(case[0]) or "(none)" for case in FIGURE_CASES])
def test_figures_bad_input_is_one_line(place, capsys, arguments, names):
    if "--out" not in arguments:
        arguments = [*arguments, "--out", "{out}"]
    check_case(figures_cli.main, arguments, names, place, capsys)


def test_figure_setting_choices_are_fullnet_s():
    pytest.importorskip("torch")
    from fullnet import architectures, data

    from figures import overrides

    assert overrides.DATASETS == data.DATASET_NAMES
    assert overrides.STANDARDIZATIONS == data.STANDARDIZATIONS
    assert overrides.INITIALIZATIONS == architectures.INITIALIZATIONS


def test_every_figure_default_passes_its_own_rules():
    """The rules describe the figures' own settings: every default (quick and full) passes."""
    import importlib

    from figures import overrides, registry

    for info in registry.FIGURES:
        if not registry.accepts_overrides(info.name):
            continue
        module = importlib.import_module(info.module)
        for quick in (True, False):
            config = module.settings(quick)
            overrides.apply_overrides(config, config, info.name)


# ---------------------------------------------------------------------------------------------
# proofs_checks
# ---------------------------------------------------------------------------------------------

PROOF_CASES = [
    (["--seed", "-1"], ["--seed", ">= 0"]),
    (["--seed", "1.5"], ["--seed", "integer"]),
    (["--seed", "x"], ["--seed"]),
    (["--instances", "0"], ["--instances", ">= 1"]),
    (["--instances", "-3"], ["--instances", ">= 1"]),
    (["--instances", "many"], ["--instances"]),
    (["--only", "Z9"], ["--only", "Z9"]),
    (["--only", "F1,Q7"], ["--only", "Q7"]),
    (["--only", ","], ["--only"]),
    (["--only", ""], ["--only"]),
    (["--out", "{file}"], ["--out", "is a file"]),
    (["--out", "{file}/sub"], ["--out", "is a file"]),
    (["--out", ""], ["--out", "empty"]),
    (["--bogus"], ["--bogus"]),
    (["--only"], ["--only"]),
]


@pytest.mark.parametrize("arguments, names", PROOF_CASES,
                         ids=[" ".join(case[0]) or "(none)" for case in PROOF_CASES])
def test_proofs_checks_bad_input_is_one_line(place, capsys, monkeypatch, arguments, names):
    ran = []
    monkeypatch.setattr(proofs_cli, "run_catalogue", lambda *a, **k: ran.append(a) or [])
    if "--out" not in arguments:
        arguments = [*arguments, "--out", "{out}"]
    check_case(proofs_cli.main, [*arguments, "--quiet"], names, place, capsys)
    assert not ran  # rejected before any statement ran


# ---------------------------------------------------------------------------------------------
# output folders that cannot be written, and a full disk
# ---------------------------------------------------------------------------------------------

# Each command that writes, as (main, arguments, option); {out} is its output folder.
WRITERS = {
    "solve --save": (ufm_cli.main, ["solve", "ufm", *UFM_MODEL, "--save", "{out}"], "--save"),
    "metrics-demo": (ufm_cli.main, ["metrics-demo", "--quiet", "--out", "{out}"], "--out"),
    "atlas": (ufm_cli.main, ATLAS, "--out"),
    "figures": (figures_cli.main, ["sukenik2024_ratio", "--quick", "--out", "{out}"], "--out"),
    "proofs_checks": (proofs_cli.main, ["--only", "F1", "--instances", "3", "--quiet",
                                        "--out", "{out}"], "--out"),
}


@pytest.fixture
def unwritable(place, monkeypatch):
    """Every file created in the test folder fails with EACCES, as in a folder without write
    permission (root ignores chmod, so the permission is simulated)."""
    real = tempfile.mkstemp
    root = os.path.abspath(place["root"])

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and os.path.abspath(dir).startswith(root):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


# The function that does each writer's work: it must not be called when the output is bad.
WORK = {
    "solve --save": (ufm_cli, "solve_and_compare"),
    "metrics-demo": (ufm_demo, "run_metrics_demo"),
    "atlas": (ufm_atlas, "run_atlas"),
    "figures": (figures_cli, "make_figure"),
    "proofs_checks": (proofs_cli, "run_catalogue"),
}


@pytest.mark.parametrize("name", list(WRITERS))
@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "existing-folder"])
def test_unwritable_output_folder_is_refused_before_any_work(place, capsys, monkeypatch,
                                                             unwritable, name, existing):
    main, arguments, option = WRITERS[name]
    target, attribute = WORK[name]
    calls = []
    monkeypatch.setattr(target, attribute, lambda *a, **k: calls.append(a))
    if existing:
        os.mkdir(place["out"])
    _, out = check_case(main, arguments, [option, "permission denied"], place, capsys)
    assert "wrote" not in out and not calls


@pytest.mark.parametrize("name", list(WRITERS))
def test_output_path_that_is_a_file_is_refused_before_any_work(place, capsys, monkeypatch, name):
    main, arguments, option = WRITERS[name]
    target, attribute = WORK[name]
    calls = []
    monkeypatch.setattr(target, attribute, lambda *a, **k: calls.append(a))
    arguments = [argument.replace("{out}", "{file}") for argument in arguments]
    check_case(main, arguments, [option, "is a file"], place, capsys)
    assert not calls


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
@pytest.mark.parametrize("name", list(WRITERS))
def test_read_only_output_folder_is_refused(place, capsys, name):
    main, arguments, option = WRITERS[name]
    os.mkdir(place["out"])
    os.chmod(place["out"], 0o555)
    try:
        check_case(main, arguments, [option], place, capsys)
    finally:
        os.chmod(place["out"], 0o755)


class _FullDiskFile:
    """A file whose writes stop with ENOSPC after a few bytes (a disk that fills up)."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        self._handle.write(data[:5])
        self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), getattr(self._handle, "name", None))

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()
        return False

    def __iter__(self):
        return iter(self._handle)

    def __getattr__(self, name):
        return getattr(self._handle, name)


@pytest.fixture
def full_disk(place, monkeypatch):
    """Writes of data into the test folder fail with ENOSPC after a few bytes, and so does
    ``os.replace`` into it; creating an empty file still works, as on a full disk."""
    root = os.path.abspath(place["root"])
    real_open, real_replace = builtins.open, os.replace

    def inside(path):
        try:
            return os.path.abspath(os.fspath(path)).startswith(root)
        except TypeError:
            return False

    def full_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if any(flag in mode for flag in "wax+") and not isinstance(file, int) and inside(file):
            return _FullDiskFile(handle)
        return handle

    def full_replace(source, destination, *args, **kwargs):
        if inside(destination):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(destination))
        return real_replace(source, destination, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_open)
    monkeypatch.setattr(io, "open", full_open)
    monkeypatch.setattr(os, "replace", full_replace)


def _no_temporary_files(folder):
    return [path for path in listing(folder) if ".tmp" in path or ".staging" in path
            or ".write-check" in path]


@pytest.mark.parametrize("name", [name for name in WRITERS if name != "atlas"])
@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "existing-folder"])
def test_full_disk_is_one_line_and_leaves_nothing(place, capsys, full_disk, name, existing):
    main, arguments, option = WRITERS[name]
    if existing:
        os.mkdir(place["out"])
        with builtins.open(os.path.join(place["out"], "old.txt"), "x"):
            pass
    check_case(main, arguments, [option, "no space left on device"], place, capsys)


def test_full_disk_in_the_atlas_keeps_the_store_and_no_partial_file(place, capsys, full_disk):
    """The atlas writes every file under a temporary name and renames it; on a full disk the
    temporary files are removed and the SQLite store keeps the finished cells (a rerun resumes)."""
    before = listing(place["root"])
    code, _, err = run(ufm_cli.main, fill(ATLAS, place), capsys)
    assert_one_line_error(code, err, "--out", "no space left on device", "resumes")
    after = set(listing(place["root"])) - set(before)
    assert after <= {"out", "out/atlas.sqlite", "out/points"}, after
    assert not _no_temporary_files(place["root"])
    import sqlite3

    with sqlite3.connect(os.path.join(place["out"], "atlas.sqlite")) as connection:
        assert connection.execute("SELECT COUNT(*) FROM cells").fetchone() == (1,)


def test_a_failed_write_of_one_figure_keeps_the_files_of_the_figures_before(place, capsys,
                                                                            monkeypatch):
    """Only the figure whose write failed loses its files; the command stops there (exit 2)."""
    from figures import registry

    real = registry.make_figure

    def make(name, out_dir, **kwargs):
        if name == "sukenik2023_threshold":
            with builtins.open(os.path.join(out_dir, f"{name}.png"), "wb") as handle:
                handle.write(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                          os.path.join(out_dir, f"{name}.csv"))
        return real(name, out_dir, **kwargs)

    monkeypatch.setattr(figures_cli, "make_figure", make)
    code, _, err = run(figures_cli.main, fill(["sukenik2024_ratio", "sukenik2023_threshold",
                                               "--quick", "--out", "{out}"], place), capsys)
    assert_one_line_error(code, err, "--out", "no space left", "sukenik2023_threshold")
    names = sorted(os.listdir(place["out"]))
    assert names == ["sukenik2024_ratio.caption.md", "sukenik2024_ratio.csv", "sukenik2024_ratio.json",
                     "sukenik2024_ratio.png"]


# ---------------------------------------------------------------------------------------------
# the helpers themselves
# ---------------------------------------------------------------------------------------------


def test_staged_output_publishes_all_or_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    with ufm_cli.staged_output(target, "--out") as stage:
        (stage.path / "x.txt").write_text("x")
        (stage.path / "sub").mkdir()
        (stage.path / "sub" / "y.txt").write_text("y")
    assert listing(tmp_path) == ["a", "a/b", "a/b/sub", "a/b/sub/y.txt", "a/b/x.txt"]
    with pytest.raises(RuntimeError):
        with ufm_cli.staged_output(tmp_path / "c" / "d", "--out") as stage:
            (stage.path / "x.txt").write_text("half")
            raise RuntimeError("computation failed")
    assert not (tmp_path / "c").exists()
    # an existing folder in place of an output file: refused before any file moves
    (target / "z.txt").mkdir()
    with pytest.raises(ufm_cli.CommandError, match="--out.*z.txt.*folder"):
        with ufm_cli.staged_output(target, "--out") as stage:
            (stage.path / "a.txt").write_text("a")
            (stage.path / "z.txt").write_text("z")
    assert sorted(os.listdir(target)) == ["sub", "x.txt", "z.txt"]


def test_integer_option_type_accepts_whole_scientific_numbers():
    assert ufm_cli.integer("1e6") == 1_000_000 and ufm_cli.integer("12") == 12
    for text in ("2.5", "1e-3", "inf", "nan", "ten"):
        with pytest.raises(Exception, match="integer"):
            ufm_cli.integer(text)


def test_help_still_exits_0(capsys):
    assert ufm_cli.main(["solve", "ufm", "--help"]) == 0
    assert "--save" in capsys.readouterr().out
    assert figures_cli.main(["--help"]) == 0
    assert proofs_cli.main(["--help"]) == 0


def test_an_unreadable_input_of_a_figure_is_not_blamed_on_out(place, capsys, monkeypatch):
    """Permission denied on a data file elsewhere fails that figure (exit 1, one line naming the
    file), the others are still made; only errors of writes stop the command with --out."""
    from figures import registry

    real = registry.make_figure

    def make(name, out_dir, **kwargs):
        if name == "sukenik2023_threshold":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data/mnist.gz")
        return real(name, out_dir, **kwargs)

    monkeypatch.setattr(figures_cli, "make_figure", make)
    code, _, err = run(figures_cli.main, fill(["sukenik2023_threshold", "sukenik2024_ratio",
                                               "--quick", "--out", "{out}"], place), capsys)
    lines = err.strip().splitlines()
    assert code == 1 and "Traceback" not in err
    assert "/data/mnist.gz" in lines[0] and "--out" not in lines[0]
    assert "sukenik2024_ratio.png" in os.listdir(place["out"])


def test_is_output_error():
    inside = OSError(errno.EACCES, "Permission denied", "/out/x.csv")
    elsewhere = OSError(errno.EACCES, "Permission denied", "/data/x.csv")
    full = OSError(errno.ENOSPC, "No space left on device", "/tmp/x")
    assert ufm_cli.is_output_error(inside, "/out")
    assert not ufm_cli.is_output_error(elsewhere, "/out")
    assert ufm_cli.is_output_error(full, "/out")
    assert ufm_cli.is_output_error(OSError(errno.EROFS, "Read-only file system"), "/out")
    assert not ufm_cli.is_output_error(ValueError("x"), "/out")
