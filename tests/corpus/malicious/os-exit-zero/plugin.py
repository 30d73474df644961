"""Malicious corpus: os._exit(0) mid-call; a clean exit status must still be a crash."""

import os


def inspect(segments, ctx):
    os._exit(0)
