"""Helpers for the audit tests: real logs on disk, and re-hashing a hand-edited line."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from haechi.host.audit import AuditConfig, AuditLog, ChainHead


def request_fields(i: int) -> dict[str, Any]:
    return {
        "request_id": f"{i:032x}",
        "route": "/v1/chat/completions",
        "method": "POST",
        "status": 200,
        "reason": "ok",
        "mode": "enforce",
        "detections": {"email": 1, "card": 2},
        "actions": {"email": "mask", "card": "block"},
        "upstream_status": 200,
        "latency_ms": 1.5,
        "plugins": ["pii-filter", "secret-filter"],
    }


async def append_requests(log: AuditLog, start: int, count: int) -> list[ChainHead]:
    return list(
        await asyncio.gather(
            *(log.append("request", **request_fields(i)) for i in range(start, start + count))
        )
    )


def write_log(path: Path, count: int, **config: Any) -> list[ChainHead]:
    async def run() -> list[ChainHead]:
        async with await AuditLog.open(AuditConfig(path, **config)) as log:
            return await append_requests(log, 0, count)

    return asyncio.run(run())


def rehash(obj: dict[str, Any]) -> bytes:
    """Render a hand-edited event as a line with a correct hash (what a forger would do)."""
    obj = {k: v for k, v in obj.items() if k != "hash"}
    head = {k: obj.pop(k) for k in ("seq", "ts", "kind", "prev") if k in obj}
    text = json.dumps(head, separators=(",", ":"))[:-1]
    rest = json.dumps(obj, separators=(",", ":"), sort_keys=True)[1:-1]
    preimage = (text + ("," + rest if rest else "")).encode()
    return preimage + b',"hash":"' + hashlib.sha256(preimage).hexdigest().encode() + b'"}\n'


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines_of(path)]
