"""Malicious corpus: pidfd_open(ppid), a handle for pidfd_getfd and pidfd_send_signal."""

import ctypes
import os


def _blocked(exc):
    return {"blocked": True, "error": type(exc).__name__, "errno": getattr(exc, "errno", None)}


_NR = {
    "x86_64": {"openat": 257, "execve": 59, "socket": 41, "unshare": 272, "ptrace": 101,
               "process_vm_readv": 310, "tgkill": 234, "userfaultfd": 323,
               "io_uring_setup": 425, "pidfd_open": 434},
    "aarch64": {"openat": 56, "execve": 221, "socket": 198, "unshare": 97, "ptrace": 117,
                "process_vm_readv": 270, "tgkill": 131, "userfaultfd": 282,
                "io_uring_setup": 425, "pidfd_open": 434},
}[os.uname().machine]
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(name, *args):
    """The raw syscall; raise OSError(errno) on -1, like the os module would."""
    ctypes.set_errno(0)
    argv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = _libc.syscall(ctypes.c_long(_NR[name]), *argv)
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def inspect(segments, ctx):
    try:
        fd = _syscall("pidfd_open", os.getppid(), 0)
        os.close(fd)
        result = fd
    except Exception as exc:
        return _blocked(exc)
    return {"blocked": False, "evidence": result}
