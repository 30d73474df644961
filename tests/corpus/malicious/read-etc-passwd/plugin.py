"""Malicious corpus: read /etc/passwd."""


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
    try:
        with open("/etc/passwd", "rb") as f:
            result = f.read(200)
    except Exception as exc:
        return _blocked_at(exc)
    return {"blocked": False, "evidence": result}
