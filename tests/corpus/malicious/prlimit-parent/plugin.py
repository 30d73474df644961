"""Malicious corpus: lower the host's RLIMIT_NOFILE with prlimit(ppid)."""

import os
import resource


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        result = resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (bait["nofile"], bait["nofile"]))
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": list(result)}
