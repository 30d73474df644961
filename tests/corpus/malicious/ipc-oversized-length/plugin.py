"""Malicious corpus: find the IPC pipe and write a length prefix of 4 GiB - 1.
"""

import os
import stat
import time


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
    wrote = _write_everywhere(b"\xff\xff\xff\xff")
    time.sleep(10)  # the host must kill us before the call deadline
    return {"blocked": False, "evidence": wrote}
