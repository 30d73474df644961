"""Malicious corpus: a SOCK_DGRAM socketpair, which could sendto() any pathname datagram socket."""

import socket


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.close()
        b.close()
        result = True
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
