"""Malicious corpus: sleep far past the deadline; the host must kill it."""

import time


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    time.sleep(600)
    return {"blocked": False, "evidence": "slept"}
