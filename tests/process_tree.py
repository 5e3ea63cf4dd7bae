"""Process-tree helpers of the kill tests (Linux /proc)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

HAS_PROC = Path("/proc/self/stat").exists()


def children(pid: int) -> list[int]:
    """Child process ids of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def survivors_after(pids: list[int], seconds: float) -> list[int]:
    """The ``pids`` still alive after waiting up to ``seconds``; those are killed before return
    so that a failing check leaves nothing behind."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    left = [pid for pid in pids if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def workers_of_killed_command(arguments: list[str], cwd: Path, workers: int = 2,
                              seconds: float = 60.0) -> tuple[list[int], list[int]]:
    """Start ``python -m ufm ARGUMENTS`` (this checkout first on the path), wait until it has
    ``workers`` + 1 children (its worker processes and the resource tracker) or ``seconds``
    passed, SIGKILL it, and return (its children, those still alive 15 s later)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root), os.environ.get("PYTHONPATH", "")]), OPENBLAS_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-m", "ufm", *arguments], cwd=cwd,
                               env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(pids) < workers + 1 and process.poll() is None:
            pids = children(process.pid)
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    return pids, survivors_after(pids, 15.0)
