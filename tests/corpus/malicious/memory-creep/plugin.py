"""Malicious corpus: grow memory 1 MiB at a time until something gives."""


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    hoard = []
    try:
        while len(hoard) < 64 * 1024:  # 64 GiB: far past any limit
            hoard.append(bytearray(1 << 20))
    except Exception as exc:
        mib = len(hoard)
        hoard.clear()
        return {**_blocked(exc), "mib": mib}
    mib = len(hoard)
    hoard.clear()
    return {"blocked": False, "evidence": mib}
