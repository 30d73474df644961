"""Malicious corpus: answer with an object msgpack cannot encode."""


def inspect(segments, ctx):
    return lambda: "pwned"
