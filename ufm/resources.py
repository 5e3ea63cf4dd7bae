"""What the machine can give this process: the memory checks of every command line.

:func:`available_host_memory` is the one answer to "how many bytes can still be allocated here",
used by ``ufm``'s command line before a solve, an atlas or a metrics file is loaded, and by
``fullnet`` before a network is built.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["available_host_memory"]


def _cgroup_available() -> int | None:
    """Memory left under this process's cgroup limit (v2, then v1), if there is one."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit_text = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max":
            return None
        limit = int(limit_text)
        if limit >= 1 << 60:  # "no limit" in cgroup v1
            return None
        return max(0, limit - usage)
    return None


def available_host_memory() -> int | None:
    """Bytes the host can still give this process: MemAvailable of /proc/meminfo (else the
    free physical pages), capped by a cgroup memory limit; None if unknown."""
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            try:
                available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            except (ValueError, OSError, AttributeError):
                available = None
    limited = _cgroup_available()
    if limited is not None:
        available = limited if available is None else min(available, limited)
    return available
