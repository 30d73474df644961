"""Positive control: os.urandom (getrandom(2), no /dev/urandom needed)."""

import os


def inspect(segments, ctx):
    a, b = os.urandom(32), os.urandom(32)
    return {"len": len(a), "distinct": a != b}
