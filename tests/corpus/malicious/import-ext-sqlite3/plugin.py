"""Malicious corpus: import _sqlite3, an extension module that links libsqlite3."""


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def _import_refused(exc):
    """_blocked plus the module name and message: the refusal is about the intended module."""
    return {**_blocked(exc), "name": getattr(exc, "name", None), "message": str(exc)}


def inspect(segments, ctx):
    try:
        import _sqlite3

        result = _sqlite3.sqlite_version
    except Exception as exc:
        return _import_refused(exc)
    return {"blocked": False, "evidence": result}
