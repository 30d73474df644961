"""Malicious corpus: UDP sendto a socket the host bound on 127.0.0.1 (bait.udp_port)."""

import socket


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            result = s.sendto(b"pwned", ("127.0.0.1", bait["udp_port"]))
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
