"""Malicious corpus: connect to a pathname AF_UNIX socket the host listens on (bait.unix_path)."""

import socket


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(bait["unix_path"])
            result = s.send(b"pwned")
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
