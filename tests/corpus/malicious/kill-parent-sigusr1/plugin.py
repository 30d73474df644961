"""Malicious corpus: os.kill(os.getppid(), SIGUSR1)."""

import os
import signal


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        os.kill(os.getppid(), signal.SIGUSR1)
        result = os.getppid()
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
