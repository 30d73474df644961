"""``haechi gateway --workers N``: N worker processes sharing one port, one audit chain.

Each worker is ``haechi gateway --worker-index i --worker-cpu c``: a full gateway (plugins,
sandboxes, audit writer) pinned to CPU ``c``, whose plugin children run on the same CPU
(decision 0003). The kernel spreads connections over the workers (SO_REUSEPORT). They append
to the one audit chain under a per-batch ``flock`` (docs/reference/audit.md) and share the key
store's nonce reservations under its lock, so no count is reused across workers. Worker 0 also
serves the admin listener.

This parent only starts the workers, forwards SIGTERM, SIGINT and SIGHUP to them, and restarts
a worker that died (with backoff); it serves nothing itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["run_workers"]

MAX_BACKOFF = 30.0


def run_workers(config: Path, count: int) -> int:
    from haechi.host.config import load_config

    from .live import PidFile, pid_path

    with PidFile(pid_path(load_config(config))):
        return _run(config, count)


def _run(config: Path, count: int) -> int:
    cpus = sorted(os.sched_getaffinity(0))
    workers: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def start(index: int) -> None:
        cpu = cpus[index % len(cpus)]
        command = [
            sys.executable,
            "-m",
            "haechi.host.cli",
            "gateway",
            "--config",
            str(config),
            "--worker-index",
            str(index),
            "--worker-cpu",
            str(cpu),
        ]
        workers[index] = subprocess.Popen(command)

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    for index in range(count):
        start(index)
    backoff = {index: 1.0 for index in range(count)}
    while True:
        time.sleep(0.2)
        if stopping:
            break
        for index, process in list(workers.items()):
            code = process.poll()
            if code is None:
                continue
            print(
                f"haechi: worker {index} exited with {code}; restarting in {backoff[index]:g} s",
                file=sys.stderr,
            )
            time.sleep(backoff[index])
            backoff[index] = min(MAX_BACKOFF, backoff[index] * 2)
            start(index)
    codes = [process.wait() for process in workers.values()]
    return max(codes, default=0)
