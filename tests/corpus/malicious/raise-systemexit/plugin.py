"""Malicious corpus: raise SystemExit mid-call (not an Exception: it escapes the hook wrapper)."""


def inspect(segments, ctx):
    raise SystemExit(7)
