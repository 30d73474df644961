#!/usr/bin/env python3
"""What the listener's head guard adds to parsing one request, against aiohttp's parser alone.

One connection's parser (connections._HeadGuard around aiohttp's HttpRequestParser) is fed a
1 KiB chat request per read, the way a keep-alive client sends them, and the same request is
fed to the bare parser in the same run; printed: microseconds per request for each, and the
difference, three rounds. Run from the repository root:
``.venv/bin/python bench/gateway/head_guard_cost.py``. Results: bench/results/gateway.md.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web
from haechi.host.config import GatewaySection
from haechi.host.gateway.connections import _Connection

ROUNDS, REQUESTS = 3, 20_000


def request() -> bytes:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 900}]})
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        "Authorization: Bearer hx_abcdefghijklmnopqrstuvwxyz0123456789\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode()


def per_request_us(parser: Any, data: bytes) -> float:
    start = time.perf_counter()
    for _ in range(REQUESTS):
        for _ in parser.feed_data(data)[0]:
            parser.message_consumed()
    return (time.perf_counter() - start) / REQUESTS * 1e6


async def main() -> None:
    async def unused(request: web.BaseRequest) -> web.StreamResponse:
        raise AssertionError

    limits = GatewaySection()
    connection = _Connection(
        web.Server(unused),
        loop=asyncio.get_running_loop(),
        limits=limits,
        on_refusal=None,  # type: ignore[arg-type]
        admit=lambda: True,
        max_line_size=limits.max_header_bytes,
        max_field_size=limits.max_header_bytes,
        max_headers=limits.max_header_count,
        auto_decompress=False,
    )
    guard = connection._parser
    bare = guard._parser
    data = request()
    for _ in range(ROUNDS):
        alone, guarded = per_request_us(bare, data), per_request_us(guard, data)
        print(
            f"aiohttp's parser {alone:.2f} us/request, with the guard {guarded:.2f} us: "
            f"+{guarded - alone:.2f} us ({guarded / alone:.2f}x)"
        )


if __name__ == "__main__":
    asyncio.run(main())
