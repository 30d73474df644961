"""Malicious corpus: close both IPC pipes mid-call; the host must report a crash, not hang."""

import os
import stat


def _ipc_pipes():
    """Every fd >= 3 that is a pipe: the IPC pair (fd 1 and 2 are the stderr pipe)."""
    found = []
    for fd in range(3, 256):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISFIFO(mode):
            found.append(fd)
    return found


def _write_everywhere(data):
    """Write ``data`` to every pipe that takes it (the read end answers EBADF)."""
    wrote = []
    for fd in _ipc_pipes():
        try:
            os.write(fd, data)
        except OSError:
            continue
        wrote.append(fd)
    return wrote


def inspect(segments, ctx):
    closed = _ipc_pipes()
    for fd in closed:
        os.close(fd)
    return {"blocked": False, "evidence": closed}
