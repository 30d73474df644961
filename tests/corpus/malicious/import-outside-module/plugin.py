"""Malicious corpus: import a module from a directory outside the allowed paths (bait.module_dir)."""

import importlib
import sys


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def _import_refused(exc):
    """_blocked plus the module name and message: the refusal is about the intended module."""
    return {**_blocked(exc), "name": getattr(exc, "name", None), "message": str(exc)}


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        sys.path.insert(0, bait["module_dir"])
        result = importlib.import_module(bait["module_name"]).SECRET
    except Exception as exc:
        return _import_refused(exc)
    return {"blocked": False, "evidence": result}
