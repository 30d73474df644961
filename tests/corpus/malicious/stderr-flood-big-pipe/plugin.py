"""Malicious corpus: grow the stderr pipe to 1 MiB (F_SETPIPE_SZ), then write to it forever.

Like print-flood, but whatever is still in the pipe when the host kills the child is large:
the host must still drain or drop it, see EOF and reap the child, not wait forever.
"""

import fcntl
import os


F_SETPIPE_SZ = 1031


def inspect(segments, ctx):
    fcntl.fcntl(2, F_SETPIPE_SZ, 1 << 20)
    chunk = b"E" * (1 << 20)
    while True:
        os.write(2, chunk)
