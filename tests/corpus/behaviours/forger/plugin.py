"""Forges IPC frames. The channel's fd is in the bootstrap's argv, which plugin code can read:
nothing about the channel is secret from the plugin, so the host must not rely on it being so."""

import marshal
import sys
import time

import msgpack

FD = marshal.loads(bytes.fromhex(sys.argv[1]))["fd_out"]


def frame(message):
    body = msgpack.packb(message, use_bin_type=True)
    return len(body).to_bytes(4, "big") + body


def write(data):
    import os

    view = memoryview(data)
    while view:
        view = view[os.write(FD, view) :]


def inspect(segments, ctx):
    command = segments[0]
    if command == "control-flood":
        for _ in range(1000):
            write(frame({"op": "loaded", "hooks": []}))
    elif command == "cap-flood":  # ask, never read the answers
        for n in range(200):
            write(frame({"op": "cap", "cid": n, "cap": "kv", "args": {"op": "get", "key": "k"}}))
    elif command == "bad-id":
        write(frame({"id": [1], "ok": True, "result": []}))
    elif command == "many-maps":
        write(frame({"id": 1, "ok": True, "result": [{}] * 200_000}))
    elif command == "over-reply-cap":
        write(frame({"id": 1, "ok": True, "result": "x" * (2 * 1024 * 1024)}))
    time.sleep(1.5)
    return []
