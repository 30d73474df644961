"""Malicious corpus: TCP connect to a listener the host opened on 127.0.0.1 (bait.tcp_port)."""

import socket


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        with socket.create_connection(("127.0.0.1", bait["tcp_port"]), timeout=1) as s:
            result = s.send(b"pwned")
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
