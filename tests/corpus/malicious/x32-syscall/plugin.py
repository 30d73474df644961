"""Malicious corpus: an x32-ABI syscall number, which a native-number denylist would not see.

x86_64 only. seccomp must kill the process (SIGSYS); returning at all is a failure.
"""

import ctypes


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


def inspect(segments, ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(0x40000000 | 39))
    return {"blocked": False, "evidence": result, "errno": ctypes.get_errno()}
