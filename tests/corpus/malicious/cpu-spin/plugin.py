"""Malicious corpus: spin the CPU forever; the host's deadline must kill it."""


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    n = 0
    while True:
        n += 1
