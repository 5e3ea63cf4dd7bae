"""Local process pools whose workers never outlive their coordinator.

A worker of a ``concurrent.futures.ProcessPoolExecutor`` whose parent is killed (SIGKILL, an
out-of-memory kill) waits on its call queue forever. :func:`local_process_pool` starts workers
with the ``"spawn"`` method (a forked child of a process that has started BLAS or torch threads
can deadlock), one BLAS/OpenMP thread each, and a watcher thread that ends the worker as soon as
its parent process is gone. Used by the global search (:mod:`ufm.solvers.global_search`) and the
atlas (:mod:`ufm.atlas`).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["local_process_pool"]

#: Seconds between two checks of a worker's parent.
PARENT_CHECK_INTERVAL = 0.5


def _exit_with_parent(parent: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:  # the coordinator died: nothing will collect our results
            os._exit(1)


def _initialize_worker(parent: int) -> None:
    """Worker initializer: one BLAS/OpenMP thread, exit when the coordinator dies."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    threading.Thread(target=_exit_with_parent, args=(parent, PARENT_CHECK_INTERVAL), daemon=True,
                     name="ufm-parent-watch").start()


def local_process_pool(workers: int) -> ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes that exit with their parent.

    Parameters
    ----------
    workers : int
        Number of worker processes (≥ 1).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_initialize_worker, initargs=(os.getpid(),))
