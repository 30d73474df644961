"""Malicious corpus: create a symlink in /tmp pointing at /etc/shadow (bait.tmp_target)."""

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
        os.symlink("/etc/shadow", bait["tmp_target"])
        result = os.readlink(bait["tmp_target"])
    except Exception as exc:
        return _blocked_at(exc)
    return {"blocked": False, "evidence": result}
