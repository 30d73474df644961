"""Positive control: hashlib.sha256 (the builtin fallback if _hashlib cannot load)."""

import hashlib


def inspect(segments, ctx):
    return hashlib.sha256(b"".join(s.encode() for s in segments)).hexdigest()
