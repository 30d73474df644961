"""Malicious corpus: write to the host's key/value store without declaring state:kv."""


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def _capability_refused(exc):
    """_blocked plus the host broker's reason for refusing."""
    return {**_blocked(exc), "reason": getattr(exc, "reason", None)}


def inspect(segments, ctx):
    try:
        ctx.kv.set("planted", "pwned")
        result = ctx.kv.get("planted")
    except Exception as exc:
        return _capability_refused(exc)
    return {"blocked": False, "evidence": result}
