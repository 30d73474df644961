"""Malicious corpus: allocate bytearray(3 GiB)."""


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        result = len(bytearray(3 << 30))
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
