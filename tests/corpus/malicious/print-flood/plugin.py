"""Malicious corpus: print() forever; fd 1 is stderr, and the host's stderr cap must kill it."""


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    line = "A" * 65535
    while True:
        print(line)
