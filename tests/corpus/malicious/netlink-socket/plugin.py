"""Malicious corpus: open an AF_NETLINK route socket."""

import socket


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as s:
            result = s.fileno()
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
