"""A well-behaved filter used to check the host is healthy after each attack."""

from helpers.text import describe


def inspect(segments, ctx):
    return [describe(i, s) for i, s in enumerate(segments)]
