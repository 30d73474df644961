"""Malicious corpus: os.fork()."""

import os


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        result = pid
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
