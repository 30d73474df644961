"""Malicious corpus: os.posix_spawn('/bin/sh')."""

import os


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        pid = os.posix_spawn("/bin/sh", ["sh", "-c", "true"], {})
        result = os.waitpid(pid, 0)[1]
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
