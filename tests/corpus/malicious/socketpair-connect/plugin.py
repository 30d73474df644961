"""Malicious corpus: re-target the one socket kind it may create (a socketpair) at the host's unix socket (bait.unix_path)."""

import socket


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        a, b = socket.socketpair()
        try:
            a.connect(bait["unix_path"])  # seccomp answers before the kernel's EISCONN
            result = a.send(b"pwned")
        finally:
            a.close()
            b.close()
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
