"""Malicious corpus: os.pipe() until the descriptor limit stops it."""

import os


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    fds = []
    try:
        while len(fds) < 1_000_000:
            fds.extend(os.pipe())
    except Exception as exc:
        result = {**_blocked(exc), "opened": len(fds)}
    else:
        result = {"blocked": False, "evidence": len(fds)}
    for fd in fds:
        os.close(fd)
    return result
