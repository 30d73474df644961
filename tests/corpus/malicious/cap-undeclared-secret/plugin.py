"""Malicious corpus: ask the host broker for a secret the manifest does not declare."""


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def _capability_refused(exc):
    """_blocked plus the host broker's reason for refusing."""
    return {**_blocked(exc), "reason": getattr(exc, "reason", None)}


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        result = ctx.secret(bait["secret_name"])
    except Exception as exc:
        return _capability_refused(exc)
    return {"blocked": False, "evidence": result}
