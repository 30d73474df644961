"""Positive control: the SDK directory is readable (Landlock grants it read-only)."""


def inspect(segments, ctx):
    with open(segments[0], "rb") as f:  # the test passes the path of an SDK file
        return f.read()
