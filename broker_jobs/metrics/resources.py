"""This process's CPU time and resident memory, from the standard library (no psutil at run time).

CPU: ``resource.getrusage`` (user + system, every thread).  Memory: the resident set from
``/proc/self/statm`` on Linux; elsewhere the peak resident set (``ru_maxrss``), the best the
standard library offers.
"""

from __future__ import annotations

import os
import resource
import sys

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def sample() -> tuple[float, float | None]:
    """(CPU seconds used so far, resident bytes now or None if unknown)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return cpu, float(int(statm.read().split()[1]) * _PAGE)
    except (OSError, ValueError, IndexError):
        # macOS reports ru_maxrss in bytes, the BSDs and Linux in KiB: the peak, not the current size.
        peak = usage.ru_maxrss
        return cpu, float(peak if sys.platform == "darwin" else peak * 1024) if peak else None
