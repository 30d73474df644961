"""Malicious corpus: look for a secret the host has in its environment (name in bait.secret_name)."""

import os


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        value = os.environ[bait["secret_name"]]
    except Exception as exc:
        return {**_blocked(exc), "environ": dict(os.environ)}
    return {"blocked": False, "evidence": value}
