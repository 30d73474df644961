#!/usr/bin/env python3
"""Audit appends per second: group commit (AuditLog) against a naive write + fsync per event.

Both sides write the same validated ``request`` events as the same chained lines to a fresh
file in a temporary directory on the same filesystem:

* **group commit**: ``AuditLog`` with ``--tasks`` concurrent tasks each awaiting ``append`` in a
  loop, for each fsync policy (``always``, ``interval``, ``never``);
* **naive**: one task, per event: flock, read the tail, render, ``write()``, ``fdatasync``,
  unlock: what an append costs when each is made durable on its own (the ``always``
  guarantee without batching).

Reported: events/s, median (min-max) over ``--repeat`` runs of ``--seconds`` each, and the
ratio group commit / naive. Run from the repository root: ``.venv/bin/python bench/audit.py``.
Results are recorded in bench/results/audit.md. Standard library and haechi only.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from haechi.host.audit import AuditConfig, AuditLog, validate
from haechi.host.audit.chain import now_ts, read_tail, render_line

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_facts

FIELDS = {
    "request_id": "0" * 32,
    "route": "/v1/chat/completions",
    "method": "POST",
    "status": 200,
    "mode": "enforce",
    "detections": {"email": 1, "phone": 1, "card": 1},
    "actions": {"email": "mask", "phone": "mask", "card": "block"},
    "upstream_status": 200,
    "latency_ms": 1.25,
    "plugins": ["bearer-auth", "pii-filter", "secret-filter"],
}


async def group_commit(path: Path, policy: str, tasks: int, seconds: float) -> float:
    config = AuditConfig(path, fsync=policy, rotate_bytes=None)  # type: ignore[arg-type]
    count = 0
    async with await AuditLog.open(config) as log:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await log.append("request", **FIELDS)
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        elapsed = time.perf_counter() - start
    return count / elapsed


def naive(path: Path, seconds: float) -> float:
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    try:
        while time.perf_counter() < deadline:
            event = validate("request", FIELDS)
            fcntl.flock(fd, fcntl.LOCK_EX)
            head = read_tail(fd).head
            os.write(fd, render_line(head.seq + 1, now_ts(), head.hash, event))
            os.fdatasync(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            count += 1
    finally:
        os.close(fd)
    return count / (time.perf_counter() - start)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: /tmp)")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"naive": []}
    for policy in ("always", "interval", "never"):
        results[f"group/{policy}"] = []
    for repeat in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            results["naive"].append(naive(Path(tmp) / f"naive{repeat}.jsonl", args.seconds))
            for policy in ("always", "interval", "never"):
                path = Path(tmp) / f"{policy}{repeat}.jsonl"
                rate = asyncio.run(group_commit(path, policy, args.tasks, args.seconds))
                results[f"group/{policy}"].append(rate)
    base = statistics.median(results["naive"])
    print(json.dumps(machine_facts()))
    print(f"{'side':<16} {'events/s median (min-max)':>32} {'x naive':>8}")
    for name, values in results.items():
        print(f"{name:<16} {summary(values):>32} {statistics.median(values) / base:>7.1f}x")


if __name__ == "__main__":
    main()
