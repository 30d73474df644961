"""Malicious corpus: forge a well-formed reply to a call the host never made.
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


def _frame(message):
    import msgpack  # preloaded by the bootstrap

    body = msgpack.packb(message, use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


def inspect(segments, ctx):
    wrote = _write_everywhere(_frame({"id": 987654321, "ok": True, "result": {"forged": True}}))
    time.sleep(10)  # the host must kill us before the call deadline
    return {"blocked": False, "evidence": wrote}
