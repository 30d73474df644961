"""What every benchmark records about the machine it ran on (shared by the bench scripts)."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

__all__ = ["machine_facts"]


def machine_facts() -> dict[str, Any]:
    """Cores we may use, CPU model, kernel, interpreter: the context a figure needs."""
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "nproc": nproc,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpu": cpu,
        "uid": os.getuid(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "executable": sys.executable,
    }
