"""Malicious corpus: import _ssl, an extension module that links libssl."""


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def _import_refused(exc):
    """_blocked plus the module name and message: the refusal is about the intended module."""
    return {**_blocked(exc), "name": getattr(exc, "name", None), "message": str(exc)}


def inspect(segments, ctx):
    try:
        import _ssl

        result = _ssl.OPENSSL_VERSION
    except Exception as exc:
        return _import_refused(exc)
    return {"blocked": False, "evidence": result}
