"""Malicious corpus: answer with a 40 MiB string, over the host's 16 MiB frame cap."""


def inspect(segments, ctx):
    return "x" * (40 << 20)
