"""Malicious corpus: forge the reply to the current call twice, in one write.

The first forged frame is a well-formed reply (no different from returning a value); the
second is a reply to a finished call, which the host must treat as a protocol violation.
"""

import os
import stat
import sys
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


def _current_call_id():
    frame = sys._getframe(1)
    while frame is not None:
        if "call_id" in frame.f_locals:
            return frame.f_locals["call_id"]
        frame = frame.f_back
    return 1  # the first call a fresh child serves


def inspect(segments, ctx):
    forged = _frame({"id": _current_call_id(), "ok": True, "result": {"forged": True}})
    wrote = _write_everywhere(forged + forged)
    time.sleep(10)  # the host must kill us before the call deadline
    return {"blocked": False, "evidence": wrote}
