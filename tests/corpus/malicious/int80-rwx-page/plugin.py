"""Malicious corpus: an i386 syscall (int 0x80) executed from an mmap'd RWX page.

x86_64 only. seccomp's arch check must kill the process (SIGSYS).
"""

import ctypes
import mmap


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


# mov eax, 20 (i386 getpid); int 0x80; ret
CODE = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"


def inspect(segments, ctx):
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(CODE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    result = ctypes.CFUNCTYPE(ctypes.c_int)(address)()
    return {"blocked": False, "evidence": result}
