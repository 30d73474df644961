"""Malicious corpus: resolve 'localhost' through the resolver."""

import socket


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        result = [list(map(str, info[4])) for info in socket.getaddrinfo("localhost", 80)]
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
