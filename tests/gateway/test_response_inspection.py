"""Response inspection (``gateway.inspect_responses``), end to end over real HTTP.

A real gateway (signed first-party plugins in their sandboxes) runs in front of
:class:`ScriptedStub`: the real stub upstream, except that a request whose ``X-Request-Id`` has a
scripted answer gets exactly those bytes back instead of the echo. That is how sensitive text gets
into the *answer* without being in the request (where the gateway would have acted on it first).
Nothing is mocked; nothing asserts on durations.

The answer adapters are also checked directly (pure functions) for paths and refusals.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from haechi.host.config import load_config_text
from haechi.host.gateway.adapters import BodyError, Edit, format_path
from haechi.host.gateway.responses import (
    ERROR_ANSWER,
    RESPONSE_ROUTES,
    response_audit_fields,
)
from haechi.host.gateway.stub import StubUpstream

from .e2e_helpers import (
    CHAT,
    MESSAGES,
    RESPONSES,
    E2EGateway,
    LoopThread,
    Reply,
    new_request_id,
    running_gateway,
    sse_events,
)

EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 2671"
IBAN = "DE89 3704 0044 0532 0130 00"
IPV4 = "10.20.30.40"
CARD = "4111 1111 1111 1111"
AWS_SECRET = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MASKED_EMAIL = "***@example.com"

POLICY: dict[str, object] = {
    "mode": "enforce",
    "actions": {"email": "mask", "ipv4": "redact", "phone": "tokenize", "iban": "encrypt"},
}
OPEN_LIMITS = {"requests_per_minute": 10_000_000, "burst": 1_000_000}
INSPECT = {"gateway": {"inspect_responses": True}, "rate_limit": OPEN_LIMITS}
HEADER = "X-Haechi-Response-Detections"


# --- the upstream -----------------------------------------------------------------------------


@dataclass
class Answer:
    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    before: Callable[[], Awaitable[None]] | None = None  # runs once the request has arrived


@dataclass
class ScriptedStub(StubUpstream):
    """The stub; requests whose forwarded ``X-Request-Id`` has an :class:`Answer` get it."""

    answers: dict[str, Answer] = field(default_factory=dict)

    async def _scripted(
        self, request: web.Request, echo: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        answer = self.answers.get(request.headers.get("X-Request-Id", ""))
        if answer is None:
            return await echo(request)
        await self._receive(request)
        if answer.before is not None:
            await answer.before()
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._scripted(request, super()._chat)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._scripted(request, super()._responses)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._scripted(request, super()._messages)


# --- request and answer bodies ----------------------------------------------------------------


def ask(route: str, **extra: Any) -> dict[str, Any]:
    """A harmless request for ``route``: nothing in it for the request side to act on."""
    if route == RESPONSES:
        return {"model": "gpt-4o-mini", "input": "who should I contact?", **extra}
    body = {"messages": [{"role": "user", "content": "who should I contact?"}], **extra}
    if route == MESSAGES:
        return {"model": "claude-3-5-haiku-latest", "max_tokens": 50, **body}
    return {"model": "gpt-4o-mini", **body}


def chat_answer(content: Any, **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }


def output_message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def responses_answer(*output: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": "gpt-4o-mini",
        "output": list(output),
    }


def messages_answer(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-latest",
        "content": list(blocks),
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 7},
    }


def text_answer(route: str, text: str) -> dict[str, Any]:
    if route == CHAT:
        return chat_answer(text)
    if route == RESPONSES:
        return responses_answer(output_message(text))
    return messages_answer({"type": "text", "text": text})


def answer_text(route: str, body: dict[str, Any]) -> str:
    if route == CHAT:
        return str(body["choices"][0]["message"]["content"])
    if route == RESPONSES:
        return str(body["output"][0]["content"][0]["text"])
    return str(body["content"][0]["text"])


# --- fixtures ---------------------------------------------------------------------------------


@dataclass
class Setup:
    loop: LoopThread
    stub: ScriptedStub
    url: str


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    loop = LoopThread()
    stub = ScriptedStub()
    url = loop.run(stub.start())
    yield Setup(loop, stub, url)
    loop.run(stub.close())
    loop.close()


def _gateway(
    setup: Setup, factory: pytest.TempPathFactory, name: str, **kwargs: Any
) -> Iterator[E2EGateway]:
    """A gateway whose upstream is this module's answering stub."""
    return running_gateway(
        setup.loop, factory, name, openai_url=setup.url, anthropic_url=setup.url, **kwargs
    )


@pytest.fixture(scope="module")
def gw(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    """Enforce mode, every action configured, inspect_responses = true."""
    yield from _gateway(setup, tmp_path_factory, "inspect", policy=POLICY, settings=INSPECT)


@pytest.fixture(scope="module")
def off(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    """The same policy, inspect_responses left at its default (false)."""
    settings = {"rate_limit": OPEN_LIMITS}
    yield from _gateway(setup, tmp_path_factory, "off", policy=POLICY, settings=settings)


@pytest.fixture(scope="module")
def report(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    policy = {**POLICY, "mode": "report"}
    yield from _gateway(setup, tmp_path_factory, "report", policy=policy, settings=INSPECT)


@pytest.fixture(scope="module")
def dry_run(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    policy = {**POLICY, "mode": "dry-run"}
    yield from _gateway(setup, tmp_path_factory, "dry-run", policy=policy, settings=INSPECT)


@pytest.fixture
def fragile(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EGateway]:
    """A gateway of its own, for tests that stop one of its plugins."""
    yield from _gateway(setup, tmp_path_factory, "fragile", policy=POLICY, settings=INSPECT)


def send(
    gateway: E2EGateway,
    setup: Setup,
    route: str,
    answer: Any,
    *,
    request: dict[str, Any] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    before: Callable[[], Awaitable[None]] | None = None,
) -> tuple[Reply, str]:
    """Ask ``route`` something harmless; the upstream answers ``answer`` (a JSON value, or bytes
    sent as they are). Returns the client's reply and the request id."""
    rid = new_request_id()
    body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    setup.stub.answers[rid] = Answer(
        body, status, headers or {"Content-Type": "application/json"}, before
    )
    mark = len(setup.stub.received)
    reply = gateway.post(route, request or ask(route), request_id=rid)
    assert len(setup.stub.received) == mark + 1, "the request did not reach the upstream"
    return reply, rid


def _decrypt(gateway: E2EGateway, sealed: bytes, type_: str) -> str:
    opened = gateway.loop.run(
        gateway.runtime.plugins.decrypt(sealed, {"type": type_, "tenant": ""})
    )
    return opened.decode()


def _unsealed(gateway: E2EGateway, reference: str, type_: str) -> str:
    encoded = reference.removeprefix("[ENC:").removesuffix("]")
    return _decrypt(gateway, base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)), type_)


# --- enforce: every action on what the model says ---------------------------------------------


def test_every_action_applies_to_the_answer(gw: E2EGateway, setup: Setup) -> None:
    text = f"Mail {EMAIL}, call {PHONE}, pay {IBAN}, host {IPV4}."
    reply, rid = send(gw, setup, CHAT, chat_answer(text))
    assert reply.status == 200, reply.body
    got = reply.json
    match = re.fullmatch(
        r"Mail \*\*\*@example\.com, call (tok_phone_[0-9a-f]{32}), pay (\[ENC:[A-Za-z0-9_-]+\]), "
        r"host \[REDACTED:ipv4\]\.",
        answer_text(CHAT, got),
    )
    assert match is not None, got
    token, sealed = match.groups()
    entry = gw.runtime.vault.get(token)
    assert entry is not None and entry.type == "phone"
    assert _decrypt(gw, entry.sealed, "phone") == PHONE
    assert _unsealed(gw, sealed, "iban") == IBAN
    # The rest of the answer is the upstream's.
    assert got["usage"] == chat_answer("")["usage"] and got["id"] == "chatcmpl-1"
    assert reply.headers[HEADER] == "email,iban,ipv4,phone"
    line = gw.audit_for(rid)
    assert (line["status"], line["reason"], line["upstream_status"]) == (200, "ok", 200)
    assert line["response_detections"] == {"email": 1, "iban": 1, "ipv4": 1, "phone": 1}
    assert line["response_actions"] == {
        "email": "mask",
        "iban": "encrypt",
        "ipv4": "redact",
        "phone": "tokenize",
    }
    assert "detections" not in line  # the request itself had nothing
    assert "pii-filter" in line["plugins"]  # the filter that found them
    audit = "".join(p.read_text() for p in gw.config.audit.path.parent.glob("*.jsonl"))
    for value in (EMAIL, PHONE, IBAN, IPV4):
        assert value not in audit


@pytest.mark.parametrize("route", [CHAT, RESPONSES, MESSAGES])
def test_an_email_in_the_answer_is_masked_on_every_route(
    gw: E2EGateway, setup: Setup, route: str
) -> None:
    reply, _ = send(gw, setup, route, text_answer(route, f"Write to {EMAIL} today."))
    assert reply.status == 200, reply.body
    assert answer_text(route, reply.json) == f"Write to {MASKED_EMAIL} today."
    assert EMAIL not in reply.text
    assert reply.headers[HEADER] == "email"


def test_chat_answer_is_rewritten_in_every_place(gw: E2EGateway, setup: Setup) -> None:
    answer = chat_answer(
        [{"type": "text", "text": f"Mail {EMAIL}."}, {"type": "refusal", "refusal": IPV4}],
        refusal=f"not {IPV4}",
        tool_calls=[
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "send", "arguments": json.dumps({"to": EMAIL, "n": 2})},
            }
        ],
        audio={"id": "audio_1", "transcript": f"host {IPV4}", "data": "UklGRg=="},
    )
    reply, _ = send(gw, setup, CHAT, answer)
    assert reply.status == 200, reply.body
    message = reply.json["choices"][0]["message"]
    assert message["content"] == [
        {"type": "text", "text": f"Mail {MASKED_EMAIL}."},
        {"type": "refusal", "refusal": "[REDACTED:ipv4]"},
    ]
    assert message["refusal"] == "not [REDACTED:ipv4]"
    call = message["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"to": MASKED_EMAIL, "n": 2}
    assert (call["id"], call["function"]["name"]) == ("call_1", "send")
    assert message["audio"] == {
        "id": "audio_1",
        "transcript": "host [REDACTED:ipv4]",
        "data": "UklGRg==",
    }
    assert EMAIL not in reply.text and IPV4 not in reply.text


def test_responses_answer_is_rewritten_in_every_place(gw: E2EGateway, setup: Setup) -> None:
    answer = responses_answer(
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": f"The user wants {EMAIL}."}],
            "encrypted_content": "gAAAAABopaque",
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "c1",
            "name": "ping",
            "arguments": json.dumps({"host": IPV4}),
        },
        output_message(f"Contact {EMAIL}."),
    )
    reply, _ = send(gw, setup, RESPONSES, answer)
    assert reply.status == 200, reply.body
    output = reply.json["output"]
    assert output[0]["summary"] == [
        {"type": "summary_text", "text": f"The user wants {MASKED_EMAIL}."}
    ]
    assert output[0]["encrypted_content"] == "gAAAAABopaque"
    assert json.loads(output[1]["arguments"]) == {"host": "[REDACTED:ipv4]"}
    assert output[2]["content"][0]["text"] == f"Contact {MASKED_EMAIL}."
    assert EMAIL not in reply.text and IPV4 not in reply.text


def test_messages_answer_is_rewritten_in_every_place(gw: E2EGateway, setup: Setup) -> None:
    answer = messages_answer(
        {"type": "thinking", "thinking": f"They asked for {EMAIL}.", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": f"It is {EMAIL}."},
        {
            "type": "tool_use",
            "id": "t1",
            "name": "lookup",
            "input": {"who": {"mail": EMAIL}, "hosts": [IPV4, "localhost"]},
        },
    )
    reply, _ = send(gw, setup, MESSAGES, answer)
    assert reply.status == 200, reply.body
    blocks = reply.json["content"]
    assert blocks[0] == {
        "type": "thinking",
        "thinking": f"They asked for {MASKED_EMAIL}.",
        "signature": "sig",
    }
    assert blocks[1] == {"type": "redacted_thinking", "data": "opaque"}
    assert blocks[2] == {"type": "text", "text": f"It is {MASKED_EMAIL}."}
    assert blocks[3]["input"] == {
        "who": {"mail": MASKED_EMAIL},
        "hosts": ["[REDACTED:ipv4]", "localhost"],
    }
    assert EMAIL not in reply.text and IPV4 not in reply.text


# --- block --------------------------------------------------------------------------------------


BLOCKED = [
    (CHAT, chat_answer(f"Sure, use {CARD}."), "card"),
    (
        RESPONSES,
        responses_answer(
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "c1",
                "name": "deploy",
                "arguments": json.dumps({"env": AWS_SECRET}),
            }
        ),
        "secret",
    ),
    (
        MESSAGES,
        messages_answer(
            {"type": "text", "text": "Charging now."},
            {"type": "tool_use", "id": "t1", "name": "charge", "input": {"card": CARD}},
        ),
        "card",
    ),
]


@pytest.mark.parametrize(
    ("route", "answer", "kind"), BLOCKED, ids=["chat", "responses", "messages"]
)
def test_a_hard_block_type_in_the_answer_withholds_it(
    gw: E2EGateway, setup: Setup, route: str, answer: dict[str, Any], kind: str
) -> None:
    reply, rid = send(gw, setup, route, answer)
    assert (reply.status, reply.code) == (502, f"response-blocked:{kind}")
    assert CARD not in reply.text and "wJalrXUtnFEMI" not in reply.text
    line = gw.audit_for(rid)
    assert (line["status"], line["reason"]) == (502, f"response-blocked:{kind}")
    assert line["upstream_status"] == 200
    assert line["response_detections"] == {kind: 1}
    assert line["response_actions"] == {kind: "block"}


# --- answers that cannot be inspected -----------------------------------------------------------


def _logprobs_answer() -> dict[str, Any]:
    answer = chat_answer("ok")
    answer["choices"][0]["logprobs"] = {"content": [{"token": "ok", "logprob": -0.1}]}
    return answer


UNINSPECTABLE = [
    (CHAT, b"<html>bad gateway</html>", {}),
    (CHAT, b'{"choices": [', {}),
    (CHAT, b'[{"text": "a list"}]', {}),
    (CHAT, b'{"choices": [], "x": NaN}', {}),
    (CHAT, json.dumps({"id": "chatcmpl-1", "object": "chat.completion"}).encode(), {}),
    (CHAT, json.dumps(_logprobs_answer()).encode(), {}),
    (CHAT, b'{"choices": [{"message": {"content": "a \\ud800 b"}}]}', {}),
    (CHAT, gzip.compress(json.dumps(chat_answer(EMAIL)).encode()), {"Content-Encoding": "gzip"}),
    (RESPONSES, json.dumps(responses_answer({"type": "web_search_call", "id": "w"})).encode(), {}),
    (
        MESSAGES,
        json.dumps(messages_answer({"type": "web_search_tool_result", "content": []})).encode(),
        {},
    ),
]


@pytest.mark.parametrize(
    ("route", "payload", "headers"),
    UNINSPECTABLE,
    ids=[
        "html",
        "truncated",
        "array",
        "nan",
        "no-choices",
        "logprobs",
        "lone-surrogate",
        "gzip",
        "unknown-output-item",
        "unknown-content-block",
    ],
)
def test_an_answer_that_cannot_be_inspected_is_withheld(
    gw: E2EGateway, setup: Setup, route: str, payload: bytes, headers: dict[str, str]
) -> None:
    sent = {"Content-Type": "application/json", **headers}
    reply, rid = send(gw, setup, route, payload, headers=sent)
    assert (reply.status, reply.code) == (502, "response-uninspectable")
    assert payload not in reply.body
    line = gw.audit_for(rid)
    assert (line["status"], line["reason"], line["upstream_status"]) == (
        502,
        "response-uninspectable",
        200,
    )


def test_an_empty_answer_passes_as_it_is(gw: E2EGateway, setup: Setup) -> None:
    reply, _ = send(gw, setup, CHAT, b"", status=500)
    assert (reply.status, reply.body) == (500, b"")


def test_a_clean_answer_keeps_its_exact_bytes(gw: E2EGateway, setup: Setup) -> None:
    payload = b'{ "choices" : [ {"message": {"role": "assistant", "content": "caf\\u00e9"}} ] }\n'
    reply, rid = send(gw, setup, CHAT, payload)
    assert (reply.status, reply.body) == (200, payload)
    assert HEADER not in reply.headers
    assert "response_detections" not in gw.audit_for(rid)


# --- upstream errors ------------------------------------------------------------------------------


def test_an_upstream_error_body_is_inspected_too(gw: E2EGateway, setup: Setup) -> None:
    error = {"error": {"message": f"unknown recipient {EMAIL}", "type": "invalid_request_error"}}
    reply, rid = send(gw, setup, CHAT, error, status=400)
    assert reply.status == 400
    assert reply.json == {
        "error": {"message": f"unknown recipient {MASKED_EMAIL}", "type": "invalid_request_error"}
    }
    line = gw.audit_for(rid)
    assert (line["reason"], line["response_detections"]) == ("upstream-error", {"email": 1})


def test_an_upstream_error_that_is_not_json_is_withheld(gw: E2EGateway, setup: Setup) -> None:
    reply, _ = send(gw, setup, MESSAGES, b"upstream connect error", status=503, headers={"X": "y"})
    assert (reply.status, reply.code) == (502, "response-uninspectable")


# --- streaming: not inspected (documented limit) ------------------------------------------------


def test_a_streamed_answer_is_not_inspected(gw: E2EGateway, setup: Setup) -> None:
    events = (
        f"data: {json.dumps({'choices': [{'delta': {'content': EMAIL}}]})}\n\ndata: [DONE]\n\n"
    ).encode()
    reply, rid = send(
        gw,
        setup,
        CHAT,
        events,
        request=ask(CHAT, stream=True),
        headers={"Content-Type": "text/event-stream"},
    )
    assert reply.status == 200
    assert reply.body == events  # passed through unbuffered and unchanged: see the reference
    assert sse_events(reply.body)[-1] == ("message", "[DONE]")
    line = gw.audit_for(rid)
    assert line["stream"] is True and "response_detections" not in line


# --- inspection off, and the other modes ---------------------------------------------------------


def test_inspection_off_forwards_the_answer_unchanged(off: E2EGateway, setup: Setup) -> None:
    assert off.config.gateway.inspect_responses is False
    for answer in (
        json.dumps(chat_answer(f"Mail {EMAIL}, card {CARD}")).encode(),
        b"<html>not json</html>",
    ):
        reply, rid = send(off, setup, CHAT, answer)
        assert (reply.status, reply.body) == (200, answer)
        assert HEADER not in reply.headers
        assert "response_detections" not in off.audit_for(rid)


def test_report_mode_annotates_the_answer_and_leaves_it(report: E2EGateway, setup: Setup) -> None:
    answer = json.dumps(messages_answer({"type": "text", "text": f"Mail {EMAIL} at {IPV4}"}))
    reply, rid = send(report, setup, MESSAGES, answer.encode())
    assert (reply.status, reply.body) == (200, answer.encode())
    assert reply.headers[HEADER] == "email,ipv4"
    line = report.audit_for(rid)
    assert line["mode"] == "report"
    assert line["response_detections"] == {"email": 1, "ipv4": 1}
    assert line["response_actions"] == {"email": "allow", "ipv4": "allow"}


def test_dry_run_only_audits_the_answer(dry_run: E2EGateway, setup: Setup) -> None:
    answer = json.dumps(responses_answer(output_message(f"Mail {EMAIL}"))).encode()
    reply, rid = send(dry_run, setup, RESPONSES, answer)
    assert (reply.status, reply.body) == (200, answer)
    assert HEADER not in reply.headers  # dry-run reports nothing outward
    line = dry_run.audit_for(rid)
    assert line["response_detections"] == {"email": 1}
    assert line["response_actions"] == {"email": "allow"}


@pytest.mark.parametrize("mode", ["report", "dry-run"])
def test_hard_block_types_withhold_the_answer_in_every_mode(
    report: E2EGateway, dry_run: E2EGateway, setup: Setup, mode: str
) -> None:
    gateway = report if mode == "report" else dry_run
    reply, _ = send(gateway, setup, CHAT, chat_answer(f"card {CARD}"))
    assert (reply.status, reply.code) == (502, "response-blocked:card")
    assert CARD not in reply.text


# --- plugins that fail ------------------------------------------------------------------------


def _stopper(gateway: E2EGateway, plugin: str) -> Callable[[], Awaitable[None]]:
    """Stop ``plugin`` once the request passed the request side (the upstream has it)."""

    async def stop() -> None:
        await gateway.runtime.plugins._supervisor_of(plugin).close()

    return stop


def test_a_failed_filter_on_the_answer_is_503(fragile: E2EGateway, setup: Setup) -> None:
    before = _stopper(fragile, "secret-filter")
    reply, rid = send(fragile, setup, CHAT, chat_answer("nothing here"), before=before)
    assert (reply.status, reply.code) == (503, "filter-unavailable")
    assert "nothing here" not in reply.text
    assert fragile.audit_for(rid)["reason"] == "filter-unavailable"


def test_a_failed_crypto_plugin_on_the_answer_is_503(fragile: E2EGateway, setup: Setup) -> None:
    before = _stopper(fragile, "local-aesgcm")
    reply, _ = send(fragile, setup, CHAT, chat_answer(f"pay {IBAN}"), before=before)
    assert (reply.status, reply.code) == (503, "crypto-unavailable")
    assert IBAN not in reply.text


# --- the answer adapters, directly --------------------------------------------------------------


def _paths(route: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s.text, format_path(s.path)) for s in RESPONSE_ROUTES[route].extract(body).segments]


def test_answer_adapters_find_text_where_each_api_puts_it() -> None:
    chat = chat_answer(
        "hi",
        tool_calls=[{"id": "c", "type": "function", "function": {"arguments": '{"a": "x"}'}}],
    )
    assert _paths(CHAT, chat) == [
        ("hi", "$.choices[0].message.content"),
        ("x", "$.choices[0].message.tool_calls[0].function.arguments<json>.a"),
    ]
    responses = responses_answer(output_message("hello"))
    assert _paths(RESPONSES, responses) == [("hello", "$.output[0].content[0].text")]
    messages = messages_answer(
        {"type": "text", "text": "t", "citations": [{"type": "x", "cited_text": "c"}]},
        {"type": "tool_use", "id": "i", "name": "n", "input": {"k": ["v"]}},
    )
    assert _paths(MESSAGES, messages) == [
        ("t", "$.content[0].text"),
        ("c", "$.content[0].citations[0].cited_text"),
        ("v", "$.content[1].input.k[0]"),
    ]
    # Ids, model names and usage are metadata, not text.
    assert all("id" not in path for _, path in _paths(CHAT, chat))


def test_answer_adapters_write_edits_back_into_a_copy() -> None:
    body = messages_answer({"type": "text", "text": f"mail {EMAIL}"})
    adapter = RESPONSE_ROUTES[MESSAGES]
    extraction = adapter.extract(body)
    new = adapter.apply(body, {0: [Edit(5, 5 + len(EMAIL), "[REDACTED:email]")]}, extraction)
    assert new["content"] == [{"type": "text", "text": "mail [REDACTED:email]"}]
    assert body["content"][0]["text"] == f"mail {EMAIL}"  # the input is untouched


@pytest.mark.parametrize(
    ("route", "body", "path"),
    [
        (CHAT, {"choices": "no"}, "$.choices"),
        (CHAT, chat_answer([{"type": "image_url", "image_url": {}}]), "$.choices[0].message"),
        (RESPONSES, responses_answer({"type": "image_generation_call"}), "$.output[0].type"),
        (MESSAGES, {"content": [{"text": "no type"}]}, "$.content[0].type"),
        (CHAT, _logprobs_answer(), "$.choices[0].logprobs"),
    ],
)
def test_answer_adapters_refuse_what_they_cannot_scan(
    route: str, body: dict[str, Any], path: str
) -> None:
    with pytest.raises(BodyError) as caught:
        RESPONSE_ROUTES[route].extract(body)
    assert caught.value.path.startswith(path)


def test_error_answers_are_scanned_leaf_by_leaf() -> None:
    body = {"error": {"message": "m", "code": 42, "param": None}}
    got = [(s.text, format_path(s.path)) for s in ERROR_ANSWER.extract(body).segments]
    assert got == [("m", "$.error.message"), ("42", "$.error.code")]


def test_audit_fields_hold_counts_and_actions_only() -> None:
    assert response_audit_fields(None) == {"response_detections": {}, "response_actions": {}}


def test_the_switch_defaults_off_and_reads_the_environment() -> None:
    base = Path("/etc/haechi")
    assert load_config_text("", base=base).gateway.inspect_responses is False
    on = load_config_text("[gateway]\ninspect_responses = true\n", base=base)
    assert on.gateway.inspect_responses is True
    env = {"HAECHI_GATEWAY__INSPECT_RESPONSES": "true"}
    assert load_config_text("", base=base, environ=env).gateway.inspect_responses is True
