"""Malicious corpus: start threads until something refuses."""

import threading


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    stop = threading.Event()
    threads = []
    try:
        while len(threads) < 100_000:
            t = threading.Thread(target=stop.wait)
            t.start()
            threads.append(t)
    except Exception as exc:
        result = {**_blocked(exc), "started": len(threads)}
    else:
        result = {"blocked": False, "evidence": len(threads)}
    stop.set()
    for t in threads:
        t.join()
    return result
