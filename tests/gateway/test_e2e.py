"""End to end over real HTTP: a real gateway (``start_runtime`` + ``listen`` on loopback port 0,
the signed first-party plugins in their sandboxes) in front of the real stub upstream, driven by
real aiohttp requests (and raw sockets for path spellings a client might normalise).

Nothing is mocked and nothing asserts on durations: slow upstreams are configured against small
timeouts. Gateways are shared per module where tests do not conflict; a test that needs its own
settings (rate limit, concurrency, mode) has its own module-scoped gateway.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import secrets
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from haechi.host.audit import verify

from .e2e_helpers import (
    CHAT,
    MESSAGES,
    RESPONSES,
    E2EGateway,
    LogCapture,
    LoopThread,
    async_wait_for,
    audit_fields,
    closed_port_url,
    http,
    new_request_id,
    raw_http,
    request_async,
    running_gateway,
    sse_events,
    start_gateway,
    wait_for,
)

UPSTREAM_OPENAI_KEY = "sk-upstream-openai-" + secrets.token_hex(12)
UPSTREAM_ANTHROPIC_KEY = "sk-ant-upstream-" + secrets.token_hex(12)
ACTIONS_POLICY: dict[str, object] = {
    "mode": "enforce",
    "actions": {"email": "tokenize", "phone": "mask", "iban": "encrypt", "ipv4": "redact"},
}
OPEN_LIMITS = {"requests_per_minute": 10_000_000, "burst": 1_000_000}

EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 2671"
IBAN = "DE89 3704 0044 0532 0130 00"
IPV4 = "10.20.30.40"
CARD = "4111 1111 1111 1111"
AWS_SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN_RE = re.compile(r"tok_email_[0-9a-f]{32}")
ENC_RE = re.compile(r"\[ENC:([A-Za-z0-9_-]+)\]")


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def responses(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "input": text, **extra}


def messages(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def user_text(received: Any) -> str:
    """The first user message's text as the stub received it."""
    content = received.body["messages"][0]["content"]
    return content if isinstance(content, str) else content[0]["text"]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gw(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    """Enforce mode with every action configured; small body limit and upstream timeout."""
    yield from running_gateway(
        loop,
        tmp_path_factory,
        "main",
        policy=ACTIONS_POLICY,
        settings={
            "gateway": {"max_body_bytes": 16384, "upstream_timeout_s": 1, "client_timeout_s": 1},
            "models": {"allow": ["gpt-*", "claude-*"]},
            "rate_limit": OPEN_LIMITS,
        },
        upstream_secrets={
            "openai-api-key": UPSTREAM_OPENAI_KEY,
            "anthropic-api-key": UPSTREAM_ANTHROPIC_KEY,
        },
    )


@pytest.fixture(scope="module")
def limited(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    """max_concurrency=1; the Anthropic upstream is a closed port."""
    yield from running_gateway(
        loop,
        tmp_path_factory,
        "limited",
        settings={"gateway": {"max_concurrency": 1}, "rate_limit": OPEN_LIMITS},
        anthropic_url=closed_port_url(),
    )


@pytest.fixture(scope="module")
def throttled(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    """A burst of 3 and one request a minute after it."""
    yield from running_gateway(
        loop,
        tmp_path_factory,
        "throttled",
        settings={"rate_limit": {"requests_per_minute": 1, "burst": 3}},
    )


def _mode_gateway(
    loop: LoopThread,
    factory: pytest.TempPathFactory,
    name: str,
    policy: dict[str, object],
    environ: dict[str, str] | None = None,
) -> Iterator[E2EGateway]:
    yield from running_gateway(
        loop,
        factory,
        name,
        policy=policy,
        environ=environ,
        settings={"rate_limit": OPEN_LIMITS},
    )


@pytest.fixture(scope="module")
def dry_run(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    yield from _mode_gateway(loop, tmp_path_factory, "dry-run", {"mode": "dry-run"})


@pytest.fixture(scope="module")
def report(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    yield from _mode_gateway(loop, tmp_path_factory, "report", {"mode": "report"})


@pytest.fixture(scope="module")
def overridden(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    """Global report, /v1/messages profile dry-run, and HAECHI_POLICY__MODE=enforce."""
    policy: dict[str, object] = {
        "mode": "report",
        "routes": {MESSAGES: {"mode": "dry-run"}},
    }
    yield from _mode_gateway(
        loop, tmp_path_factory, "override", policy, environ={"HAECHI_POLICY__MODE": "enforce"}
    )


# --- 404: only the exact model routes, only POST, never admin routes ------------------------


NOT_ROUTES = [
    ("POST", "/v1/unknown"),
    ("POST", "/"),
    ("GET", CHAT),
    ("PUT", MESSAGES),
    ("POST", "/v1/chat/completions/"),
    ("POST", "//v1/chat/completions"),
    ("POST", "/v1/chat%2Fcompletions"),
    ("POST", "/v1/chat/completions%2F"),
    ("POST", "/v1/%63hat/completions"),
    ("POST", "/v1/x/../chat/completions"),
    ("POST", "/v1/./messages"),
    ("POST", "/v1/chat/completions/../../status"),
    ("POST", "/%2e%2e/admin"),
    ("POST", "/v1/%2e%2e/status"),
    ("GET", "/status"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "//metrics"),
    ("GET", "/healthz/"),
    ("GET", "/%68ealthz"),
]


@pytest.mark.parametrize(("method", "target"), NOT_ROUTES)
def test_not_a_route_is_404_and_never_reaches_upstream(
    gw: E2EGateway, method: str, target: str
) -> None:
    # Authorised, with a valid body: if routing normalised the path, this would be served.
    body = json.dumps(chat("hello")).encode()
    mark = gw.mark()
    reply = raw_http(
        gw.public_port,
        method,
        target,
        headers={"Authorization": f"Bearer {gw.token}", "Content-Type": "application/json"},
        body=body,
    )
    assert reply.status == 404, reply.body
    assert reply.code == "not-found"
    assert gw.received_since(mark) == []


def test_encoded_spellings_through_aiohttp_are_404(gw: E2EGateway) -> None:
    mark = gw.mark()
    for target in ("/v1/chat%2Fcompletions", "/v1/x/../chat/completions", "/%2e%2e/status"):
        reply = http(
            "POST",
            gw.base_url + target,
            json_body=chat("hi"),
            headers={"Authorization": f"Bearer {gw.token}"},
            encoded=True,
        )
        assert (reply.status, reply.code) == (404, "not-found"), target
    assert gw.received_since(mark) == []


def test_model_routes_with_a_query_string_are_served(gw: E2EGateway) -> None:
    reply = gw.post(CHAT + "?trace=1", chat("hello"))
    assert reply.status == 200, reply.body


# --- 401 ------------------------------------------------------------------------------------


def test_missing_credentials_is_401(gw: E2EGateway) -> None:
    mark = gw.mark()
    reply = gw.post(CHAT, chat("hello"), auth=False)
    assert reply.status == 401
    assert reply.code == "unauthenticated:missing-credentials"
    assert reply.headers.get("WWW-Authenticate") == "Bearer"
    assert gw.received_since(mark) == []


def test_unknown_token_is_401(gw: E2EGateway) -> None:
    mark = gw.mark()
    wrong = "hx_" + secrets.token_urlsafe(32)
    reply = gw.post(MESSAGES, messages("hello"), auth=f"Bearer {wrong}")
    assert reply.status == 401
    assert reply.code == "unauthenticated:unknown-token"
    assert gw.received_since(mark) == []


def test_auth_comes_before_the_body(gw: E2EGateway) -> None:
    reply = gw.post(CHAT, data=b"{not json", auth=False)
    assert (reply.status, reply.code) == (401, "unauthenticated:missing-credentials")


# --- 413 / 400 / 403 before the upstream -----------------------------------------------------


def test_body_over_the_limit_is_413(gw: E2EGateway) -> None:
    mark = gw.mark()
    big = chat("x" * 20_000)
    reply = gw.post(CHAT, big)
    assert reply.status == 413
    assert reply.code == "body-too-large"
    assert gw.received_since(mark) == []


def test_chunked_body_over_the_limit_is_413(gw: E2EGateway) -> None:
    async def chunks() -> Any:
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 1000
        yield b'"}]}'

    async def go() -> Any:
        async with aiohttp.ClientSession() as session:
            return await request_async(
                session,
                "POST",
                gw.base_url + CHAT,
                data=chunks(),
                headers={"Authorization": f"Bearer {gw.token}"},
            )

    mark = gw.mark()
    reply = asyncio.run(go())
    assert (reply.status, reply.code) == (413, "body-too-large")
    assert gw.received_since(mark) == []


SURROGATE_IN_TEXT = (
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a \\ud800"}]}'
)
SURROGATE_ELSEWHERE = (
    b'{"model": "gpt-4o-mini", "user": "\\udfff", "messages": [{"role": "user", "content": "a"}]}'
)
SURROGATE_BYTES = (
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a \xed\xa0\x80"}]}'
)
NAN = (
    b'{"model": "gpt-4o-mini", "temperature": NaN, "messages": [{"role": "user", "content": "a"}]}'
)


def test_a_client_that_stalls_its_body_is_408(gw: E2EGateway) -> None:
    body = json.dumps(chat("hello")).encode()
    mark = gw.mark()
    rid = new_request_id()
    reply = raw_http(
        gw.public_port,
        "POST",
        CHAT,
        headers={"Authorization": f"Bearer {gw.token}", "X-Request-Id": rid},
        body=body[:10],
        content_length=len(body),  # the rest never comes
        read_timeout=20,
    )
    assert reply.status == 408
    assert reply.code == "client-timeout"
    assert gw.received_since(mark) == []
    assert gw.audit_for(rid)["reason"] == "client-timeout"


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b"",
        b'{"model": "gpt-4o-mini",',
        b"[1, 2]",
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff"}]}',
        SURROGATE_IN_TEXT,  # was 503 filter-unavailable: the client's fault, not the filter's
        SURROGATE_ELSEWHERE,  # was an unaudited plain-text 500 when encoding for the upstream
        SURROGATE_BYTES,
        NAN,  # was forwarded as NaN, which is not JSON
    ],
    ids=[
        "garbage",
        "empty",
        "truncated",
        "array",
        "bad-utf8",
        "surrogate-in-text",
        "surrogate-elsewhere",
        "surrogate-bytes",
        "nan",
    ],
)
def test_invalid_json_is_400(gw: E2EGateway, data: bytes) -> None:
    mark = gw.mark()
    reply = gw.post(CHAT, data=data, headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.code == "invalid-json"
    assert gw.received_since(mark) == []


@pytest.mark.parametrize(
    ("route", "body"),
    [
        (CHAT, {"model": "gpt-4o-mini", "messages": "hello"}),
        (CHAT, {"messages": [{"role": "user", "content": "no model"}]}),
        (MESSAGES, {"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": {"a": 1}}),
        (RESPONSES, {"model": "gpt-4o-mini", "input": 42}),
    ],
)
def test_invalid_body_is_400(gw: E2EGateway, route: str, body: dict[str, Any]) -> None:
    mark = gw.mark()
    reply = gw.post(route, body)
    assert reply.status == 400
    assert reply.code == "invalid-body"
    assert gw.received_since(mark) == []


def test_escaped_surrogate_pairs_and_non_ascii_text_are_fine(gw: E2EGateway) -> None:
    data = (
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": '
        b'"\\ud83d\\ude00 \xed\x95\x9c\xea\xb8\x80 caf\\u00e9"}]}'
    )
    mark = gw.mark()
    reply = gw.post(CHAT, data=data, headers={"Content-Type": "application/json"})
    assert reply.status == 200, reply.body
    assert user_text(gw.last_received(mark)) == "\U0001f600 \ud55c\uae00 caf\u00e9"


def test_model_not_allowed_is_403_before_inspection(gw: E2EGateway) -> None:
    mark = gw.mark()
    reply = gw.post(CHAT, {**chat(f"card {CARD}"), "model": "o1-preview"})
    assert reply.status == 403
    assert reply.code == "model-not-allowed"
    reply = gw.post(MESSAGES, {**messages("hi"), "model": "claude"})  # "claude-*" needs the dash
    assert (reply.status, reply.code) == (403, "model-not-allowed")
    assert gw.received_since(mark) == []
    assert gw.post(MESSAGES, messages("hi")).status == 200


@pytest.mark.parametrize(
    ("route", "body", "reason"),
    [
        (CHAT, chat(f"pay with {CARD} please"), "blocked:card"),
        (RESPONSES, responses(f"Why does this fail?\n{AWS_SECRET}\nREGION=eu"), "blocked:secret"),
        (MESSAGES, messages(f"my card is {CARD}"), "blocked:card"),
    ],
)
def test_hard_block_is_403(gw: E2EGateway, route: str, body: dict[str, Any], reason: str) -> None:
    mark = gw.mark()
    reply = gw.post(route, body)
    assert reply.status == 403
    assert reply.code == reason
    assert gw.received_since(mark) == []


# --- upstream failures ------------------------------------------------------------------------


def test_upstream_timeout_is_504(gw: E2EGateway) -> None:
    mark = gw.mark()
    rid = new_request_id()
    reply = gw.post(CHAT, chat("hello"), stub={"X-Stub-Delay": "2.5"}, request_id=rid)
    assert reply.status == 504
    assert reply.code == "upstream-timeout"
    assert len(gw.received_since(mark)) == 1  # it did reach the upstream, which was too slow
    line = gw.audit_for(rid)
    assert (line["status"], line["reason"]) == (504, "upstream-timeout")


def test_upstream_unreachable_is_502(limited: E2EGateway) -> None:
    reply = limited.post(MESSAGES, messages("hello"))
    assert reply.status == 502
    assert reply.code == "upstream-unavailable"
    assert limited.post(CHAT, chat("hello")).status == 200  # the other upstream is fine


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_upstream_errors_pass_through_with_their_status(gw: E2EGateway, status: int) -> None:
    rid = new_request_id()
    reply = gw.post(CHAT, chat("hello"), stub={"X-Stub-Status": str(status)}, request_id=rid)
    assert reply.status == status
    assert reply.json == {"error": {"message": "stub failure"}}  # the upstream's own body
    line = gw.audit_for(rid)
    assert (line["status"], line["reason"], line["upstream_status"]) == (
        status,
        "upstream-error",
        status,
    )


# --- 503 overloaded and 429 rate-limited -----------------------------------------------------


def test_over_max_concurrency_is_503(limited: E2EGateway) -> None:
    async def go() -> tuple[Any, Any, Any]:
        async with aiohttp.ClientSession() as session:
            mark = limited.mark()
            rid = new_request_id()
            limited.stub.directives[rid] = {"X-Stub-Delay": "2"}
            headers = {"Authorization": f"Bearer {limited.token}", "X-Request-Id": rid}
            slow = asyncio.create_task(
                request_async(
                    session,
                    "POST",
                    limited.base_url + CHAT,
                    json_body=chat("slow"),
                    headers=headers,
                )
            )
            # The slow request is in flight once the upstream holds it.
            await async_wait_for(lambda: len(limited.stub.received) > mark)
            refused = await request_async(
                session,
                "POST",
                limited.base_url + CHAT,
                json_body=chat("second"),
                headers={"Authorization": f"Bearer {limited.token}"},
            )
            first = await slow
            after = await request_async(
                session,
                "POST",
                limited.base_url + CHAT,
                json_body=chat("third"),
                headers={"Authorization": f"Bearer {limited.token}"},
            )
            return first, refused, after

    first, refused, after = asyncio.run(go())
    assert refused.status == 503
    assert refused.code == "overloaded"
    assert first.status == 200
    assert after.status == 200  # the slot was given back


def test_rate_limit_is_429_with_retry_after(throttled: E2EGateway) -> None:
    mark = throttled.mark()
    statuses = [throttled.post(CHAT, chat(f"hello {i}")).status for i in range(3)]
    assert statuses == [200, 200, 200]
    reply = throttled.post(CHAT, chat("one too many"))
    assert reply.status == 429
    assert reply.code == "rate-limited"
    assert int(reply.headers["Retry-After"]) >= 1
    assert len(throttled.received_since(mark)) == 3
    # Authentication comes first: a stranger is refused as a stranger, not rate-limited.
    stranger = throttled.post(CHAT, chat("hi"), auth=False)
    assert (stranger.status, stranger.code) == (401, "unauthenticated:missing-credentials")


# --- actions (enforce) ------------------------------------------------------------------------


def _decrypt(gw: E2EGateway, sealed: bytes, type_: str) -> str:
    opened = gw.loop.run(gw.runtime.plugins.decrypt(sealed, {"type": type_, "tenant": ""}))
    return opened.decode()


def test_mask_phone(gw: E2EGateway) -> None:
    mark = gw.mark()
    reply = gw.post(CHAT, chat(f"call me on {PHONE} tomorrow"))
    assert reply.status == 200, reply.body
    text = user_text(gw.last_received(mark))
    assert text == "call me on +* *** *** 2671 tomorrow"


def test_redact_ipv4(gw: E2EGateway) -> None:
    mark = gw.mark()
    rid = new_request_id()
    reply = gw.post(CHAT, chat(f"the db at {IPV4} is slow"), request_id=rid)
    assert reply.status == 200, reply.body
    assert user_text(gw.last_received(mark)) == "the db at [REDACTED:ipv4] is slow"
    line = gw.audit_for(rid)
    assert line["detections"] == {"ipv4": 1}
    assert line["actions"] == {"ipv4": "redact"}


def test_tokenize_email_into_the_vault(gw: E2EGateway) -> None:
    mark = gw.mark()
    reply = gw.post(CHAT, chat(f"write to {EMAIL} today"))
    assert reply.status == 200, reply.body
    text = user_text(gw.last_received(mark))
    assert EMAIL not in text
    match = TOKEN_RE.search(text)
    assert match is not None, text
    assert text == f"write to {match.group(0)} today"
    entry = gw.runtime.vault.get(match.group(0))
    assert entry is not None and entry.type == "email"
    assert EMAIL.encode() not in entry.sealed
    assert _decrypt(gw, entry.sealed, "email") == EMAIL
    # The answer the client got is the model's, which saw only the token.
    assert match.group(0) in reply.text and EMAIL not in reply.text


def test_encrypt_iban(gw: E2EGateway) -> None:
    mark = gw.mark()
    reply = gw.post(MESSAGES, messages(f"refund to {IBAN}, thanks"))
    assert reply.status == 200, reply.body
    text = user_text(gw.last_received(mark))
    match = ENC_RE.search(text)
    assert match is not None, text
    assert text == f"refund to {match.group(0)}, thanks"
    encoded = match.group(1)
    sealed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    assert _decrypt(gw, sealed, "iban") == IBAN


def test_block(gw: E2EGateway) -> None:
    mark = gw.mark()
    rid = new_request_id()
    reply = gw.post(CHAT, chat(f"mail {EMAIL}, card {CARD}"), request_id=rid)
    assert (reply.status, reply.code) == (403, "blocked:card")
    assert gw.received_since(mark) == []
    line = gw.audit_for(rid)
    assert (line["status"], line["reason"]) == (403, "blocked:card")
    assert line["detections"] == {"card": 1, "email": 1}


# --- adapters: every place text hides is rewritten before it leaves ---------------------------


def test_openai_chat_adapter_rewrites_every_place(gw: E2EGateway) -> None:
    arguments = json.dumps({"account": IBAN, "note": "monthly"})
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": f"You reply to {EMAIL} only."},
            {"role": "user", "content": [{"type": "text", "text": f"Call {PHONE} first."}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "pay", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": f"paid from host {IPV4}"},
        ],
        "tools": [{"type": "function", "function": {"name": "pay", "parameters": {}}}],
    }
    mark = gw.mark()
    reply = gw.post(CHAT, body)
    assert reply.status == 200, reply.body
    got = gw.last_received(mark).body
    sent = got["messages"]
    assert TOKEN_RE.fullmatch(sent[0]["content"].split()[3]), sent[0]
    assert sent[0]["content"].startswith("You reply to tok_email_")
    assert sent[1]["content"] == [{"type": "text", "text": "Call +* *** *** 2671 first."}]
    forwarded_arguments = json.loads(sent[2]["tool_calls"][0]["function"]["arguments"])
    assert ENC_RE.fullmatch(forwarded_arguments["account"]), forwarded_arguments
    assert forwarded_arguments["note"] == "monthly"
    assert sent[3]["content"] == "paid from host [REDACTED:ipv4]"
    assert sent[3]["tool_call_id"] == "call_1" and got["tools"] == body["tools"]
    raw = json.dumps(got)
    for value in (EMAIL, PHONE, IBAN, IPV4):
        assert value not in raw


def test_openai_responses_adapter_rewrites_every_place(gw: E2EGateway) -> None:
    body = {
        "model": "gpt-4o-mini",
        "instructions": f"Escalate to {EMAIL}.",
        "input": [
            {
                "role": "user",
                "content": [{"type": "input_text", "text": f"My number is {PHONE}."}],
            },
            {"type": "function_call_output", "call_id": "c1", "output": f"login from {IPV4}"},
            {"role": "user", "content": f"Refund to {IBAN}."},
        ],
    }
    mark = gw.mark()
    reply = gw.post(RESPONSES, body)
    assert reply.status == 200, reply.body
    got = gw.last_received(mark).body
    assert re.fullmatch(r"Escalate to tok_email_[0-9a-f]{32}\.", got["instructions"])
    items = got["input"]
    assert items[0]["content"] == [{"type": "input_text", "text": "My number is +* *** *** 2671."}]
    assert items[1] == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": "login from [REDACTED:ipv4]",
    }
    assert re.fullmatch(r"Refund to \[ENC:[A-Za-z0-9_-]+\]\.", items[2]["content"])
    raw = json.dumps(got)
    for value in (EMAIL, PHONE, IBAN, IPV4):
        assert value not in raw


def test_anthropic_messages_adapter_rewrites_every_place(gw: E2EGateway) -> None:
    body = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 100,
        "system": [
            {"type": "text", "text": "You help the billing team."},
            {"type": "text", "text": f"Owner: {EMAIL}", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": f"Call {PHONE}."}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"ip": IPV4}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": f"seen at {IPV4}"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t2",
                        "content": [{"type": "text", "text": f"account {IBAN}"}],
                    },
                ],
            },
        ],
    }
    mark = gw.mark()
    reply = gw.post(MESSAGES, body)
    assert reply.status == 200, reply.body
    got = gw.last_received(mark).body
    assert got["system"][0] == {"type": "text", "text": "You help the billing team."}
    assert re.fullmatch(r"Owner: tok_email_[0-9a-f]{32}", got["system"][1]["text"])
    assert got["system"][1]["cache_control"] == {"type": "ephemeral"}
    assert got["messages"][0]["content"][0]["text"] == "Call +* *** *** 2671."
    assert got["messages"][1]["content"][0]["input"] == {"ip": "[REDACTED:ipv4]"}
    results = got["messages"][2]["content"]
    assert results[0]["content"] == "seen at [REDACTED:ipv4]"
    assert re.fullmatch(r"account \[ENC:[A-Za-z0-9_-]+\]", results[1]["content"][0]["text"])
    raw = json.dumps(got)
    for value in (EMAIL, PHONE, IBAN, IPV4):
        assert value not in raw


# --- header allowlist -------------------------------------------------------------------------


def test_only_allowlisted_headers_reach_the_upstream(gw: E2EGateway) -> None:
    mark = gw.mark()
    rid = new_request_id()
    reply = gw.post(
        MESSAGES,
        messages("hello"),
        request_id=rid,
        headers={
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "tools-2024-04-04",
            "X-Secret": "do-not-forward",
            "Cookie": "session=do-not-forward",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "do-not-forward",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic ZG8tbm90LWZvcndhcmQ=",
            "TE": "trailers",
            "Forwarded": "for=192.0.2.60",
            "X-Forwarded-For": "192.0.2.60",
        },
    )
    assert reply.status == 200, reply.body
    received = gw.last_received(mark).headers
    lowered = {k.lower(): v for k, v in received.items()}
    assert lowered["anthropic-version"] == "2023-06-01"
    assert lowered["anthropic-beta"] == "tools-2024-04-04"
    assert lowered["x-request-id"] == rid
    # The gateway's own credential for the upstream, never the client's.
    assert lowered["x-api-key"] == UPSTREAM_ANTHROPIC_KEY
    assert "authorization" not in lowered
    for name in ("x-secret", "cookie", "x-hop", "keep-alive", "proxy-authorization", "te"):
        assert name not in lowered, name
    assert "forwarded" not in lowered and "x-forwarded-for" not in lowered
    assert all(gw.token not in v and "do-not-forward" not in v for v in received.values())
    assert reply.headers["X-Request-Id"] == rid
    assert gw.audit_for(rid)["status"] == 200


def test_a_cookie_one_answer_sets_is_not_sent_with_the_next_request(
    loop: LoopThread, tmp_path: Path
) -> None:
    """One upstream session serves every principal: it must keep no cookie jar. (The upstream
    is named, not an IP address: a cookie jar ignores cookies from IP addresses.)"""
    gateway = start_gateway(loop, tmp_path, stub_host="localhost")
    try:
        cookie = {"X-Stub-Set-Cookie": "__cf_bm=abc123; Path=/"}
        first = gateway.post(CHAT, chat("hello"), stub=cookie)
        assert first.status == 200, first.body
        assert "set-cookie" not in {k.lower() for k in first.headers}  # not forwarded either
        mark = gateway.mark()
        assert gateway.post(CHAT, chat("hello again")).status == 200
        received = {k.lower(): v for k, v in gateway.last_received(mark).headers.items()}
        assert "cookie" not in received, received.get("cookie")
    finally:
        gateway.close()


def test_upstream_sees_the_gateways_request_id_not_the_clients_junk(gw: E2EGateway) -> None:
    mark = gw.mark()
    reply = gw.post(CHAT, chat("hello"), headers={"X-Request-Id": "junk id, not hex"})
    assert reply.status == 200, reply.body
    rid = reply.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", rid)
    received = {k.lower(): v for k, v in gw.last_received(mark).headers.items()}
    # One id across the client's answer, the audit line and the upstream (was the junk).
    assert received["x-request-id"] == rid
    assert gw.audit_for(rid)["status"] == 200
    # A well-formed id is kept (lower-cased) end to end.
    mark = gw.mark()
    reply = gw.post(CHAT, chat("hello"), headers={"X-Request-Id": "ABCDEF0123456789"})
    assert reply.headers["X-Request-Id"] == "abcdef0123456789"
    received = {k.lower(): v for k, v in gw.last_received(mark).headers.items()}
    assert received["x-request-id"] == "abcdef0123456789"


def test_client_authorization_is_replaced_by_the_upstream_key(gw: E2EGateway) -> None:
    mark = gw.mark()
    reply = gw.post(CHAT, chat("hello"))
    assert reply.status == 200, reply.body
    received = {k.lower(): v for k, v in gw.last_received(mark).headers.items()}
    assert received["authorization"] == f"Bearer {UPSTREAM_OPENAI_KEY}"
    assert all(gw.token not in value for value in received.values())


# --- streaming --------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "make"), [(CHAT, chat), (MESSAGES, messages)])
def test_stream_passes_through_with_actions_applied(gw: E2EGateway, route: str, make: Any) -> None:
    rid = new_request_id()
    mark = gw.mark()
    reply = gw.post(
        route,
        make(f"ping {IPV4} for me", stream=True),
        request_id=rid,
        stub={"X-Stub-Chunk-Delay": "0.01"},
    )
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(reply.body)
    data = [d for name, d in events if name == "message"]
    assert len(data) >= 4 and data[-1] == "[DONE]"
    assert all(name != "error" for name, _ in events)
    assert "[REDACTED:ipv4]" in reply.text and IPV4 not in reply.text
    assert user_text(gw.last_received(mark)) == "ping [REDACTED:ipv4] for me"
    line = gw.audit_for(rid)
    assert (line["status"], line["reason"], line["stream"]) == (200, "ok", True)


def test_stream_stalling_mid_way_ends_with_an_error_event(gw: E2EGateway) -> None:
    rid = new_request_id()
    reply = gw.post(
        CHAT,
        chat("one two three four", stream=True),
        request_id=rid,
        stub={"X-Stub-Chunk-Delay": "2.5"},  # > upstream_timeout_s = 1
    )
    assert reply.status == 200  # the status line was already sent
    events = sse_events(reply.body)
    assert events[0][0] == "message" and "echo:" in events[0][1]  # a chunk got through
    name, data = events[-1]
    assert name == "error"
    assert json.loads(data)["error"]["code"] == "upstream-timeout-mid-stream"
    assert all(d != "[DONE]" for _, d in events)
    line = gw.audit_for(rid)
    assert line["reason"] == "upstream-timeout-mid-stream"
    # The gateway keeps serving.
    after = gw.post(CHAT, chat("still there?", stream=True))
    assert after.status == 200
    assert sse_events(after.body)[-1] == ("message", "[DONE]")
    assert gw.post(CHAT, chat("and plain?")).status == 200


# --- policy modes -----------------------------------------------------------------------------


def test_dry_run_changes_nothing_but_audits(dry_run: E2EGateway) -> None:
    mark = dry_run.mark()
    rid = new_request_id()
    text = f"mail {EMAIL} or call {PHONE}"
    reply = dry_run.post(CHAT, chat(text), request_id=rid)
    assert reply.status == 200, reply.body
    assert user_text(dry_run.last_received(mark)) == text
    assert "X-Haechi-Detections" not in reply.headers
    line = dry_run.audit_for(rid)
    assert line["mode"] == "dry-run"
    assert line["detections"] == {"email": 1, "phone": 1}
    assert line["actions"] == {"email": "allow", "phone": "allow"}


def test_dry_run_still_blocks_hard_block_types(dry_run: E2EGateway) -> None:
    mark = dry_run.mark()
    for route, body, reason in (
        (CHAT, chat(f"card {CARD}"), "blocked:card"),
        (MESSAGES, messages(AWS_SECRET), "blocked:secret"),
    ):
        reply = dry_run.post(route, body)
        assert (reply.status, reply.code) == (403, reason)
    assert dry_run.received_since(mark) == []


def test_report_leaves_the_body_and_annotates_the_answer(report: E2EGateway) -> None:
    mark = report.mark()
    rid = new_request_id()
    text = f"mail {EMAIL} from {IPV4}"
    reply = report.post(RESPONSES, responses(text), request_id=rid)
    assert reply.status == 200, reply.body
    assert report.last_received(mark).body["input"] == text
    assert reply.headers["X-Haechi-Detections"] == "email,ipv4"
    assert reply.headers["X-Haechi-Mode"] == "report"
    line = report.audit_for(rid)
    assert line["mode"] == "report" and line["detections"] == {"email": 1, "ipv4": 1}
    clean = report.post(RESPONSES, responses("nothing to see"))
    assert "X-Haechi-Detections" not in clean.headers


def test_report_still_blocks_hard_block_types(report: E2EGateway) -> None:
    mark = report.mark()
    reply = report.post(CHAT, chat(f"card {CARD}"))
    assert (reply.status, reply.code) == (403, "blocked:card")
    assert report.received_since(mark) == []


def test_enforce_changes_the_body(gw: E2EGateway) -> None:
    mark = gw.mark()
    reply = gw.post(RESPONSES, responses(f"from {IPV4}"))
    assert reply.status == 200
    assert gw.last_received(mark).body["input"] == "from [REDACTED:ipv4]"
    assert reply.headers["X-Haechi-Mode"] == "enforce"
    assert reply.headers["X-Haechi-Detections"] == "ipv4"


def test_environment_mode_override_beats_the_route_profile(overridden: E2EGateway) -> None:
    assert overridden.config.from_environment == ("policy.mode",)
    for route, body in ((MESSAGES, messages(f"mail {EMAIL}")), (CHAT, chat(f"mail {EMAIL}"))):
        mark = overridden.mark()
        rid = new_request_id()
        reply = overridden.post(route, body, request_id=rid)
        assert reply.status == 200, reply.body
        # The profile says dry-run (and the global mode report): either would forward the
        # e-mail unchanged. The environment says enforce, and wins: redacted.
        assert user_text(overridden.last_received(mark)) == "mail [REDACTED:email]", route
        assert reply.headers["X-Haechi-Mode"] == "enforce"
        assert overridden.audit_for(rid)["mode"] == "enforce"


# --- admin listener ---------------------------------------------------------------------------


def test_admin_listener(gw: E2EGateway) -> None:
    assert gw.post(CHAT, chat("count me")).status == 200
    health = http("GET", gw.admin_url + "/healthz")
    assert (health.status, health.json) == (200, {"ok": True})
    ready = http("GET", gw.admin_url + "/readyz")
    assert ready.status == 200 and ready.json["ready"] is True
    metrics = http("GET", gw.admin_url + "/metrics")
    assert metrics.status == 200
    assert re.search(
        r'^haechi_requests_total\{reason="ok",route="/v1/chat/completions",status="200"\} '
        r"[1-9]",
        metrics.text,
        re.M,
    ), metrics.text[:2000]
    status = http("GET", gw.admin_url + "/status")
    assert status.status == 200
    plugins = {p["id"]: p for p in status.json["plugins"]}
    assert set(plugins) == {"bearer-auth", "pii-filter", "secret-filter", "local-aesgcm"}
    for plugin in plugins.values():
        assert plugin["layers"], plugin
        assert plugin["breaker"] == "closed"
    assert status.json["audit"]["seq"] >= 1
    # The admin listener does not proxy model routes.
    assert http("POST", gw.admin_url + CHAT, json_body=chat("hi")).status in (404, 405)


# --- no plaintext in the audit (acceptance) ---------------------------------------------------

_ALNUM = string.ascii_letters + string.digits
# Seeded: the 50 values are distinct from each other and the same on every run.
RNG = random.Random(20_06)


def _random(n: int, alphabet: str = _ALNUM) -> str:
    while True:
        value = "".join(RNG.choice(alphabet) for _ in range(n))
        classes = [any(c in s for c in value) for s in (string.ascii_lowercase, string.digits)]
        if alphabet != _ALNUM or (all(classes) and any(c.isupper() for c in value)):
            return value


def _luhn_complete(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits + "0")):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return digits + str((10 - total % 10) % 10)


def _card(i: int) -> str:
    number = _luhn_complete(
        "4" + f"{i:02d}" + "".join(RNG.choice(string.digits) for _ in range(12))
    )
    return " ".join(number[k : k + 4] for k in range(0, 16, 4))


def _iban(i: int) -> str:
    bban = f"{37040044 + i:08d}" + "".join(RNG.choice(string.digits) for _ in range(10))
    numeric = "".join(str(int(c, 36)) for c in bban + "DE00")
    iban = f"DE{98 - int(numeric) % 97:02d}{bban}"
    return " ".join(iban[k : k + 4] for k in range(0, len(iban), 4))


def _kr_rrn(i: int) -> str:
    birth = f"{80 + i % 19:02d}{i % 12 + 1:02d}{i % 28 + 1:02d}"
    digits = f"{birth}{1 + i % 4}{i:02d}{RNG.randrange(1000):03d}"
    weights = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
    check = (11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11) % 10
    return f"{digits[:6]}-{digits[6:]}{check}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(i: int) -> str:
    header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
    payload = _b64url(json.dumps({"sub": f"user-{i}-{RNG.randbytes(6).hex()}"}).encode())
    return f"{header}.{payload}.{_b64url(RNG.randbytes(32))}"


def _private_key(i: int) -> tuple[str, str]:
    lines = [base64.b64encode(RNG.randbytes(48)).decode() for _ in range(4)]
    block = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----"
    return block, lines[1]


# kind -> (the text carrying the value, the value to look for, the expected reason or "")
def _case(kind: str, i: int) -> tuple[str, str, str]:
    salt = RNG.randbytes(3).hex()
    if kind == "email":
        value = f"person{i}.{salt}@example{i}.org"
        return f"Please write to {value} today.", value, ""
    if kind == "phone":
        value = f"+1 415 555 {2000 + i:04d}"
        return f"Call {value} after lunch.", value, ""
    if kind == "iban":
        value = _iban(i)
        return f"Refund 40 EUR to {value}, thanks.", value, ""
    if kind == "ipv4":
        value = f"10.{i}.{RNG.randrange(250) + 1}.{i + 7}"
        return f"The database at {value} is slow.", value, ""
    if kind == "ipv6":
        value = f"2001:db8:{i + 1:x}:{RNG.randrange(65535) + 1:x}::{i + 17:x}"
        return f"The host {value} dropped off.", value, ""
    if kind == "card":
        value = _card(i)
        return f"Charge {value} for the order.", value, "blocked:card"
    if kind == "us_ssn":
        value = f"{123 + i:03d}-{10 + i % 80:02d}-{RNG.randrange(9000) + 1000:04d}"
        return f"My SSN is {value}.", value, "blocked:us_ssn"
    if kind == "kr_rrn":
        value = _kr_rrn(i)
        return f"주민등록번호 {value} 입니다.", value, "blocked:kr_rrn"
    if kind == "github":
        value = "ghp_" + _random(36)
        return f"export GH={value}", value, "blocked:api_key"
    if kind == "aws":
        value = "AKIA" + _random(16, string.ascii_uppercase + string.digits)
        return f"the key id {value} leaked", value, "blocked:api_key"
    if kind == "openai":
        value = "sk-proj-" + _random(40)
        return f"use {value} for the call", value, "blocked:api_key"
    if kind == "env-secret":
        value = _random(24)
        return f"Why does this fail?\nDB_PASSWORD={value}\nREGION=eu", value, "blocked:secret"
    if kind == "json-secret":
        value = _random(28)
        return f'config: {{"client_secret": "{value}"}}', value, "blocked:secret"
    if kind == "private_key":
        block, line = _private_key(i)
        return f"my key:\n{block}\n", line, "blocked:private_key"
    if kind == "jwt":
        value = _jwt(i)
        return f"session {value} expired", value, "blocked:jwt"
    raise AssertionError(kind)


KINDS = [
    "email", "phone", "card", "iban", "us_ssn", "kr_rrn", "ipv4", "ipv6",
    "github", "aws", "openai", "env-secret", "json-secret", "private_key", "jwt",
]  # fmt: skip
PLAINTEXT_POLICY: dict[str, object] = {
    "mode": "enforce",
    "actions": {
        "email": "tokenize",
        "phone": "mask",
        "iban": "encrypt",
        "ipv4": "redact",
        "ipv6": "mask",
    },
}


def _forms(value: str) -> set[str]:
    """The value, JSON-escaped, and (for grouped numbers) without its separators."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    compact = re.sub(r"[ \-]", "", value)
    if len(compact) >= 8:
        forms.add(compact)
    return forms


def test_no_plaintext_reaches_audit_or_log_files(
    loop: LoopThread, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    with LogCapture(home / "logs" / "gateway.log"):
        gateway = start_gateway(
            loop, home, policy=PLAINTEXT_POLICY, settings={"rate_limit": OPEN_LIMITS}
        )
        try:
            values, outcomes = _send_fifty(gateway)
            events = gateway.audit_events()
        finally:
            gateway.close()
    assert len(values) == 50 and len(set(values)) == 50
    # Both sides were exercised: values let through with an action, and values blocked.
    assert 0 < sum(o.endswith(":200") for o in outcomes) < 50
    assert {o.split(":")[0] for o in outcomes} == set(KINDS)
    # Every one of the 50 requests was audited, with what was found in it.
    requests = [audit_fields(e) for e in events]
    assert len(requests) == 50
    assert all(r["detections"] for r in requests), requests
    report = verify(gateway.config.audit.path.parent)
    assert report.ok, report.message
    assert report.lines >= 50
    haystacks = {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}
    assert any(p.name == "gateway.log" for p in haystacks)
    assert any(p.suffix == ".jsonl" for p in haystacks)
    captured = capfd.readouterr()
    haystacks[Path("<stdout+stderr>")] = (captured.out + captured.err).encode()
    needles = {form for value in values for form in _forms(value)} | {gateway.token}
    for path, content in haystacks.items():
        if path.is_relative_to(home / "plugins"):
            continue  # the signed plugin bundles: code written before any value existed
        leaked = sorted(n for n in needles if n.encode() in content)
        assert not leaked, f"{path}: {leaked}"


def _send_fifty(gateway: E2EGateway) -> tuple[list[str], list[str]]:
    values: list[str] = []
    outcomes: list[str] = []
    routes = [(CHAT, chat), (RESPONSES, responses), (MESSAGES, messages)]
    for i in range(50):
        kind = KINDS[i % len(KINDS)]
        text, value, reason = _case(kind, i)
        route, make = routes[i % len(routes)]
        mark = gateway.mark()
        reply = gateway.post(route, make(text))
        forwarded = json.dumps(gateway.stub.received[mark:], default=vars, ensure_ascii=False)
        if reason:
            assert (reply.status, reply.code) == (403, reason), (kind, value, reply.body)
            assert gateway.received_since(mark) == []
        else:
            assert reply.status == 200, (kind, value, reply.body)
            assert len(gateway.received_since(mark)) == 1
            assert value not in forwarded, (kind, value)
        values.append(value)
        outcomes.append(f"{kind}:{reply.status}")
    return values, outcomes


def test_client_leaving_mid_stream_is_audited_and_the_gateway_keeps_serving(
    gw: E2EGateway,
) -> None:
    rid = new_request_id()
    gw.stub.directives[rid] = {"X-Stub-Chunk-Delay": "0.2"}

    async def leave_after_first_chunk() -> None:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {gw.token}", "X-Request-Id": rid}
            body = chat("one two three four five six seven eight", stream=True)
            async with session.post(gw.base_url + CHAT, json=body, headers=headers) as reply:
                assert reply.status == 200
                assert b"echo:" in await reply.content.readany()
                reply.close()  # drop the connection with the stream still running

    asyncio.run(leave_after_first_chunk())
    # The request is audited once its stream ends on the gateway's side.
    events: list[dict[str, Any]] = []

    def audited() -> bool:
        events[:] = [
            audit_fields(e) for e in gw.audit_events() if audit_fields(e)["request_id"] == rid
        ]
        return bool(events)

    wait_for(audited)
    assert len(events) == 1
    assert (events[0]["status"], events[0]["reason"]) == (200, "client-gone")
    assert gw.post(CHAT, chat("next")).status == 200
