"""Malicious corpus: make the host fetch a loopback URL without declaring net:fetch."""


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def _capability_refused(exc):
    """_blocked plus the host broker's reason for refusing."""
    return {**_blocked(exc), "reason": getattr(exc, "reason", None)}


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        result = ctx.fetch(f"http://127.0.0.1:{bait['tcp_port']}/")
    except Exception as exc:
        return _capability_refused(exc)
    return {"blocked": False, "evidence": result}
