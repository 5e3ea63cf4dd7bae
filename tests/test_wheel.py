"""The wheel works on its own: built from this checkout, installed into a fresh virtual environment
outside it, every console command answers ``--help`` and runs a quick job by configuration name,
from a working directory outside the checkout, with the packages, the configurations and the
explorer notebook found in the new environment.

The new environment reuses the current one's installed dependencies (torch, numpy, …): it is
made with ``--system-site-packages`` from the base interpreter, and a ``.pth`` file adds the
current environment's site-packages (a virtual environment's own site-packages is not a system
one). Nothing is downloaded: the wheel is built without build isolation (setuptools and wheel
come from the current environment) and installed with ``--no-deps --no-index``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ufm", "fullnet", "figures", "proofs_checks")
COMMANDS = ("ufm", "fullnet", "ufm-figures", "ufm-proofs")
# What the wheel is built from: the project's sources, without environments, outputs or caches.
IGNORED = (".git", ".venv", "venv", "outputs", "build", "dist", "*.egg-info", "__pycache__",
           ".pytest_cache", ".hypothesis", ".ipynb_checkpoints", "docs", "tests", "benchmarks")
TIMEOUT = 180


@dataclass(frozen=True)
class Environment:
    python: Path
    scripts: Path
    site_packages: Path
    work: Path  # a working directory outside the checkout
    env: dict

    def run(self, *arguments: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(argument) for argument in arguments], cwd=self.work, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )
        assert result.returncode == 0, (
            f"{' '.join(map(str, arguments))} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
        return result

    def command(self, name: str, *arguments: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        return self.run(self.scripts / name, *arguments, timeout=timeout)


def _current_site_packages() -> list[str]:
    paths = list(site.getsitepackages()) + [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(path for path in paths if os.path.isdir(path)))


def _clean_environment(scripts: Path) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")}
    env.update({
        "PYTHONNOUSERSITE": "1", "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": os.pathsep.join([str(scripts), env.get("PATH", "")]),
    })
    return env


def _cannot_build() -> str | None:
    """Why the wheel cannot be built offline here (None when it can)."""
    for module in ("setuptools", "pip"):
        if importlib.util.find_spec(module) is None:
            return f"building the wheel offline needs {module} in the current environment"
    if importlib.util.find_spec("wheel") is None:  # setuptools >= 70.1 builds wheels itself
        from importlib.metadata import version

        release = tuple(int(part) for part in version("setuptools").split(".")[:2] if part.isdigit())
        if release < (70, 1):
            return "building the wheel offline needs the wheel package (setuptools < 70.1)"
    return None


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Environment:
    reason = _cannot_build()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("wheel")
    source, wheels, venv, work = base / "source", base / "wheels", base / "venv", base / "work"
    work.mkdir()
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*IGNORED))
    build_env = _clean_environment(Path(sys.executable).parent)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--wheel-dir", str(wheels), str(source)],
        cwd=base, env=build_env, check=True, capture_output=True, text=True, timeout=TIMEOUT,
    )
    (wheel,) = wheels.glob("ufm_sandbox-*.whl")

    base_python = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base_python, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, capture_output=True, text=True, timeout=TIMEOUT, env=build_env)
    scripts = venv / ("Scripts" if os.name == "nt" else "bin")
    python = scripts / ("python.exe" if os.name == "nt" else "python")
    env = _clean_environment(scripts)
    site_packages = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=work, env=env, check=True, capture_output=True, text=True, timeout=TIMEOUT,
    ).stdout.strip())
    # The current environment's packages (torch, numpy, pip, …), after the new site-packages.
    # Plain paths: their own .pth files (an editable install of this project) are not processed.
    (site_packages / "_current_environment.pth").write_text("\n".join(_current_site_packages()) + "\n")
    environment = Environment(python=python, scripts=scripts, site_packages=site_packages.resolve(),
                              work=work, env=env)
    environment.run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                    "--no-warn-script-location", "--disable-pip-version-check", "--quiet", wheel)
    return environment


def _inside(path: str | Path, directory: Path) -> bool:
    return Path(path).resolve().is_relative_to(directory)


def test_packages_and_their_data_resolve_from_the_new_environment(installed):
    code = (
        "import json, ufm, fullnet, figures, proofs_checks\n"
        "from fullnet.config import CONFIG_DIRECTORY, config_names\n"
        "from figures.explorer import notebook_path\n"
        "print(json.dumps({'modules': {m.__name__: m.__file__ for m in "
        "(ufm, fullnet, figures, proofs_checks)}, 'configs': str(CONFIG_DIRECTORY), "
        "'names': config_names(), 'notebook': str(notebook_path()), 'all': len(ufm.__all__)}))"
    )
    data = json.loads(installed.run(installed.python, "-c", code).stdout)
    for name, path in data["modules"].items():
        assert _inside(path, installed.site_packages), (name, path)
        assert not _inside(path, ROOT), (name, path)
    assert _inside(data["configs"], installed.site_packages)
    assert {"gaussian_smoke", "jacot_mlp_mnist_quick", "sweep_lambda_width_gaussian_quick"} <= set(data["names"])
    assert _inside(data["notebook"], installed.site_packages) and Path(data["notebook"]).is_file()
    assert (installed.site_packages / "ufm" / "py.typed").is_file()
    assert data["all"] > 50
    (dist_info,) = installed.site_packages.glob("ufm_sandbox-*.dist-info")
    assert "BSD" in next(dist_info.rglob("LICENSE*")).read_text()
    entry_points = (dist_info / "entry_points.txt").read_text()
    for command in COMMANDS:
        assert f"{command} =" in entry_points


@pytest.mark.parametrize("command", COMMANDS)
def test_console_command_help(installed, command):
    out = installed.command(command, "--help").stdout
    assert out.startswith(f"usage: {command}"), out[:200]


def test_quick_jobs_by_configuration_name(installed):
    work = installed.work
    # fullnet: a packaged configuration and a packaged sweep, by name
    path = installed.command("fullnet", "configs", "gaussian_smoke", "--path").stdout.strip()
    assert _inside(path, installed.site_packages)
    result = installed.command(
        "fullnet", "train", "--config", "gaussian_smoke", "--set", "training.epochs=3",
        "--set", "observe.log_points=2", "--set", "training.device=cpu",
        "--output-dir", str(work / "run"), "--no-progress",
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["epochs"] == 3
    assert json.loads((work / "run" / "config.json").read_text())["name"] == "gaussian_smoke"
    installed.command("fullnet", "sweep", "--config", "sweep_lambda_width_gaussian_quick",
                      "--set", f"output.directory={work / 'sweeps'}", "--dry-run")
    # figures: a quick figure, the λ–width figure's packaged sweep, the notebook
    installed.command("ufm-figures", "sukenik2024_ratio", "--quick", "--out", str(work / "figures"))
    assert (work / "figures" / "sukenik2024_ratio.png").is_file()
    installed.run(installed.python, "-c",
                  "from figures.lambda_width_sweep import settings; from fullnet.sweeps import load_sweep;"
                  "[load_sweep(settings(quick)['sweep']) for quick in (True, False)]")
    installed.command("ufm-figures", "explore", "notebook", "--out", str(work / "notebook"))
    assert (work / "notebook" / "explorer.ipynb").is_file()
    # ufm and the theorem catalogue
    prediction = json.loads(installed.command(
        "ufm", "predict", "ufm", "--K", "5", "--n", "2", "--lam-h", "0.02", "--lam-w", "0.02", "--json",
    ).stdout)
    assert prediction["optimal_loss"] == pytest.approx(0.1314213562, abs=5e-11)
    installed.command("ufm-proofs", "--only", "F1", "--instances", "5", "--quiet",
                      "--out", str(work / "catalogue"))
    assert (work / "catalogue" / "catalogue.md").is_file()
    assert not list(ROOT.glob("outputs/catalogue*"))
