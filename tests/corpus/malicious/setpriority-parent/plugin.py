"""Malicious corpus: renice the host to 19 with setpriority(PRIO_PROCESS, ppid)."""

import os


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        os.setpriority(os.PRIO_PROCESS, os.getppid(), 19)
        result = os.getpriority(os.PRIO_PROCESS, os.getppid())
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
