"""Malicious corpus: subprocess.run(['/bin/sh', '-c', 'true'])."""

import subprocess


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    try:
        result = subprocess.run(["/bin/sh", "-c", "true"], check=False).returncode
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
