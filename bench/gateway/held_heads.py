#!/usr/bin/env python3
"""What unauthenticated connections holding unfinished request heads cost a gateway worker.

Each connection sends a request line and ``--headers`` headers of ``--header-bytes`` bytes
(each within ``gateway.max_header_bytes``, their number within ``gateway.max_header_count``)
and never ends the head: the worker holds what it parsed until ``gateway.header_timeout_s``,
unless ``gateway.max_head_bytes`` refuses it first. Two gateways in the same run: one with the
head bound at its configurable maximum (16 MiB: the behaviour before the bound existed, the
baseline) and one with the default (64 KiB). For each: the worker's resident memory at rest and
with the connections open, and how many connections were answered (with which status) rather
than held.

Setup: ``haechi init`` defaults in a temporary directory, one worker, on loopback. Run from the
repository root: ``.venv/bin/python bench/gateway/held_heads.py`` (``--help``). Results and the
figures before the head bound: docs/decisions/0005-gateway-choices.md, bench/results/gateway.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from haechi.host.gateway.home import init_home

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import free_port


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


async def hold(port: int, count: int, headers: int, size: int) -> tuple[list, dict[str, int]]:
    """Open ``count`` connections with unfinished heads; return the open ones and the statuses
    of those answered."""
    held, answered = [], {}
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\n")
        for index in range(headers):
            writer.write(f"X-Pad-{index}: ".encode() + b"p" * size + b"\r\n")
        with contextlib.suppress(ConnectionError):  # refused already: the answer tells
            await writer.drain()
        held.append((reader, writer))
    await asyncio.sleep(1)  # the worker parses what arrived
    for reader, _ in held:
        try:
            first = await asyncio.wait_for(reader.read(64), 0.05)
        except (TimeoutError, ConnectionError):
            continue
        status = first.split(b" ")[1].decode() if first else "closed"
        answered[status] = answered.get(status, 0) + 1
    return held, answered


def measure(config: Path, port: int, args: argparse.Namespace) -> dict[str, object]:
    command = [sys.executable, "-m", "haechi.host.cli", "gateway", "--config", str(config)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        worker = int(json.loads(process.stdout.readline())["pid"])
        at_rest = rss_kib(worker)

        async def run() -> tuple[int, dict[str, int]]:
            held, answered = await hold(port, args.connections, args.headers, args.header_bytes)
            loaded = rss_kib(worker)
            for _, writer in held:
                writer.close()
            return loaded, answered

        loaded, answered = asyncio.run(run())
    finally:
        process.terminate()
        process.wait(30)
    return {"at_rest": at_rest, "loaded": loaded, "answered": answered}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=300, help="default: 300")
    parser.add_argument("--headers", type=int, default=99, help="per head (default: 99)")
    parser.add_argument("--header-bytes", type=int, default=16_000, help="default: 16000")
    args = parser.parse_args(argv)
    head = args.headers * (args.header_bytes + 10)
    print(f"{args.connections} connections, unfinished heads of {head / 1024:.0f} KiB each")
    print(
        "| gateway.max_head_bytes | worker RSS at rest | with the connections | growth "
        "| per connection | answered |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for label, bound in (("16 MiB (no bound; baseline)", 16 << 20), ("64 KiB (default)", None)):
        with tempfile.TemporaryDirectory(prefix="haechi-heads-") as scratch:
            port = free_port()
            made = init_home(
                Path(scratch) / "home",
                listen=f"127.0.0.1:{port}",
                admin=f"127.0.0.1:{free_port()}",
                upstream_openai="http://127.0.0.1:9",
                upstream_anthropic="http://127.0.0.1:9",
            )
            if bound is not None:
                text = made.config.read_text(encoding="utf-8")
                text = text.replace("[gateway]\n", f"[gateway]\nmax_head_bytes = {bound}\n", 1)
                made.config.write_text(text, encoding="utf-8")
            result = measure(made.config, port, args)
        at_rest, loaded = int(result["at_rest"]), int(result["loaded"])  # type: ignore[call-overload]
        print(
            f"| {label} | {at_rest / 1024:.0f} MiB | {loaded / 1024:.0f} MiB "
            f"| {loaded / at_rest:.1f}x | {(loaded - at_rest) / args.connections:.0f} KiB "
            f"| {result['answered'] or 'none'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
