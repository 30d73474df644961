"""Malicious corpus: load a module file by path with importlib (bait.module_file)."""

import importlib.util


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def _blocked_at(exc):
    """_blocked plus the path(s) the error names: the refusal hit the intended target."""
    return {
        **_blocked(exc),
        "filename": getattr(exc, "filename", None),
        "filename2": getattr(exc, "filename2", None),
    }


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    try:
        spec = importlib.util.spec_from_file_location("outside", bait["module_file"])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result = module.SECRET
    except Exception as exc:
        return _blocked_at(exc)
    return {"blocked": False, "evidence": result}
