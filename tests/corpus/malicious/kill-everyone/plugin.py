"""Malicious corpus: os.kill(-1, 0): probe every process it could signal."""

import os


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        os.kill(-1, 0)
        result = True
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
