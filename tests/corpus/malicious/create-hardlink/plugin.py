"""Malicious corpus: hard-link the decoy into /tmp (bait.decoy -> bait.tmp_target)."""

import os


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def _blocked_at(exc):
    """_blocked plus the path(s) the error names: the refusal hit the intended target."""
    return {
        **_blocked(exc),
        "filename": getattr(exc, "filename", None),
        "filename2": getattr(exc, "filename2", None),
    }


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        os.link(bait["decoy"], bait["tmp_target"])
        result = True
    except Exception as exc:
        return _blocked_at(exc)
    return {"blocked": False, "evidence": result}
