"""Documented residual: Landlock does not mediate stat() or chdir() (sandbox-facts §6.4).

A plugin can learn that a path exists and read its mode and size, and chdir into a directory it
cannot list, but it cannot open the file or list the directory.
"""

import os


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    bait = segments  # the test passes its targets (paths, ports, names) as the argument
    path, directory = bait["path"], bait["directory"]
    st = os.stat(path)
    out = {"stat": {"mode": st.st_mode, "size": st.st_size, "uid": st.st_uid}}
    try:
        with open(path, "rb") as f:
            out["open"] = {"blocked": False, "evidence": f.read(100)}
    except Exception as exc:
        out["open"] = _blocked(exc)
    os.chdir(directory)
    out["cwd"] = os.getcwd()
    try:
        out["listdir"] = {"blocked": False, "evidence": sorted(os.listdir("."))}
    except Exception as exc:
        out["listdir"] = _blocked(exc)
    return out
