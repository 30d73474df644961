"""Malicious corpus: os.execv('/bin/sh') (replacing the child would end the call)."""

import os


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        os.execv("/bin/sh", ["sh", "-c", "true"])
        result = "unreachable"
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
