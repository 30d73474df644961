"""``haechi demo``: the whole gateway, end to end, on embedded defaults, nothing leaving the box.

It initialises a gateway directory in a temporary folder (operator key, key store, the
first-party plugins signed with that key, a trust state, a token), starts the embedded stub
model API on loopback and a real gateway worker in front of it, sends a handful of realistic
requests over HTTP, prints what happened to each (and what actually reached the "model"),
checks that no sensitive value reached the audit log, verifies the audit chain, and exits 0
only if every request got the answer it should.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from haechi.host.audit import verify
from haechi.host.config import load_config

from .adapters import adapter_for
from .home import init_home
from .server import start_runtime
from .stub import StubUpstream

__all__ = ["DEMO_POLICY", "run_demo"]

DEMO_POLICY: dict[str, object] = {
    "mode": "enforce",
    "actions": {"email": "tokenize", "phone": "mask", "iban": "encrypt", "ipv4": "redact"},
}
CARD = "4111 1111 1111 1111"
# AWS's documented example secret key, in a pasted .env file.
SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105


@dataclass(frozen=True)
class Case:
    title: str
    route: str
    body: dict[str, Any]
    expect_status: int
    expect_reason: str = ""
    authorized: bool = True
    sensitive: tuple[str, ...] = ()


CASES = (
    Case(
        "chat: e-mail and phone number",
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You draft short, friendly replies."},
                {
                    "role": "user",
                    "content": "Write to jane.doe@example.com that we call +1 415 555 2671 today.",
                },
            ],
        },
        200,
        sensitive=("jane.doe@example.com", "+1 415 555 2671"),
    ),
    Case(
        "anthropic: IBAN in a refund request",
        "/v1/messages",
        {
            "model": "claude-3-5-haiku-latest",
            "max_tokens": 200,
            "system": "You help the billing team.",
            "messages": [
                {"role": "user", "content": "Refund 40 EUR to DE89 3704 0044 0532 0130 00, thanks."}
            ],
        },
        200,
        sensitive=("DE89 3704 0044 0532 0130 00",),
    ),
    Case(
        "responses: a card number",
        "/v1/responses",
        {"model": "gpt-4o-mini", "input": f"Is {CARD} a valid test card?"},
        403,
        "blocked:card",
        sensitive=(CARD,),
    ),
    Case(
        "chat: a cloud secret in a pasted .env",
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Why does this fail?\n{SECRET}\nREGION=eu"}],
        },
        403,
        "blocked:secret",
        sensitive=(SECRET.split("=", 1)[1],),
    ),
    Case(
        "chat: no credentials",
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
        401,
        "unauthenticated:missing-credentials",
        authorized=False,
    ),
    Case(
        "chat, streamed: a server address",
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [
                {"role": "user", "content": "Our database at 10.20.30.40 is slow. Ideas?"}
            ],
        },
        200,
        sensitive=("10.20.30.40",),
    ),
)


def run_demo(out: Callable[[str], None] = print) -> int:
    return asyncio.run(_demo(out))


async def _demo(out: Callable[[str], None]) -> int:
    with tempfile.TemporaryDirectory(prefix="haechi-demo-") as scratch:
        stub = StubUpstream()
        upstream = await stub.start()
        try:
            return await _run(Path(scratch), upstream, stub, out)
        finally:
            await stub.close()


async def _run(home: Path, upstream: str, stub: StubUpstream, out: Callable[[str], None]) -> int:
    out("haechi demo: a gateway with signed, sandboxed plugins in front of a stub model API")
    made = init_home(
        home,
        listen="127.0.0.1:0",
        admin="127.0.0.1:0",
        upstream_openai=upstream,
        upstream_anthropic=upstream,
        principal="demo-user",
        policy=DEMO_POLICY,
    )
    config = load_config(made.config, environ={})
    runtime = await start_runtime(config)
    port, _ = await runtime.listen()
    layers = next(iter(runtime.plugins.status())).layers
    out(f"  home      {home} (operator key, key store, trust state, signed plugins)")
    out(f"  plugins   {', '.join(s.id for s in runtime.plugins.status())}")
    shown = ", ".join(f"{k} {v}" for k, v in layers.items() if k != "rlimits")
    out(f"  sandbox   {shown}")
    out(f"  gateway   http://127.0.0.1:{port}  (policy: email tokenize, phone mask, iban encrypt,")
    out("            ipv4 redact; cards and secrets are hard-blocked)")
    out("")
    failures = 0
    rows = []
    async with aiohttp.ClientSession() as client:
        for number, case in enumerate(CASES, start=1):
            seen_before = len(stub.received)
            status, reason = await _send(client, port, case, made.token)
            reached = _reached(stub, seen_before)
            ok = status == case.expect_status and (
                not case.expect_reason or reason == case.expect_reason
            )
            leaked = [s for s in case.sensitive if s in reached]
            failures += (not ok) + bool(leaked)
            rows.append((number, case, status, reason, reached, ok and not leaked))
    for number, case, status, reason, reached, good in rows:
        mark = "ok " if good else "BAD"
        out(f"{mark} {number}. {case.title}")
        out(f"      -> {status} {reason or ''}".rstrip())
        out(f"      model saw: {reached or '(nothing: refused before the model)'}")
    await runtime.close()
    out("")
    failures += _check_audit(config.audit.path, out)
    out("")
    out("all requests were answered as expected" if not failures else f"{failures} problem(s)")
    return 0 if not failures else 1


async def _send(
    client: aiohttp.ClientSession, port: int, case: Case, token: str
) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if case.authorized else {}
    url = f"http://127.0.0.1:{port}{case.route}"
    async with client.post(url, json=case.body, headers=headers) as response:
        payload = await response.read()
        if response.status == 200:
            return 200, ""
        try:
            return response.status, str(json.loads(payload)["error"]["code"])
        except (ValueError, KeyError, TypeError):
            return response.status, "?"


def _reached(stub: StubUpstream, before: int) -> str:
    """The text of the last request the stub got (the user's part), as the model saw it."""
    if len(stub.received) == before:
        return ""
    received = stub.received[-1]
    adapter = adapter_for(received.path)
    texts = adapter.extract(received.body).texts if adapter else []
    text = texts[-1] if texts else json.dumps(received.body, ensure_ascii=False)
    return text if len(text) <= 96 else text[:93] + "..."


def _check_audit(path: Path, out: Callable[[str], None]) -> int:
    report = verify(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    leaked = [s for case in CASES for s in case.sensitive if s in text]
    out(f"audit     {report.lines} lines in {path.name}: {report.message}")
    out(f"          sensitive values found in the audit log: {len(leaked)}")
    return (not report.ok) + len(leaked)
