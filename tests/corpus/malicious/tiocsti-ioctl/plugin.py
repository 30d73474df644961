"""Malicious corpus: TIOCSTI terminal input injection on fd 2."""

import fcntl


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        result = fcntl.ioctl(2, 0x5412, b"x")
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
