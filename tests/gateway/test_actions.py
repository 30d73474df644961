"""Actions: replacement formats, callbacks (sync and async), and bodies rewritten end to end."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest
from haechi.host.gateway.actions import (
    ActionError,
    apply_outcome,
    build_edits,
    mask_value,
    redact_value,
)
from haechi.host.gateway.adapters import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES, Edit
from haechi.host.gateway.policy import PolicyOutcome, decide, load_policy
from haechi.sdk.models import Detection

CHAT = "/v1/chat/completions"


class Vault:
    """A real (in-memory) token vault: one token per distinct value, calls recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.values: dict[str, str] = {}

    def _token(self, type_: str, text: str) -> str:
        self.calls.append((type_, text))
        token = f"tok_{type_}_{hashlib.sha256(text.encode()).hexdigest()[:24]}"
        self.values[token] = text
        return token

    def tokenize(self, type_: str, text: str) -> str:
        return self._token(type_, text)

    async def atokenize(self, type_: str, text: str) -> str:
        await asyncio.sleep(0)
        return self._token(type_, text)

    async def encrypt(self, type_: str, text: str) -> str:
        self.calls.append((type_, text))
        return "enc:" + text.encode().hex()[::-1] + ":" + type_


def find(text: str, needle: str, type_: str, segment: int = 0) -> Detection:
    start = text.index(needle)
    return Detection(type_, segment, start, start + len(needle))


# ---------------------------------------------------------------------------------- formats


def test_redact_format() -> None:
    assert redact_value("email") == "[REDACTED:email]"


@pytest.mark.parametrize(
    ("type_", "text", "masked"),
    [
        ("email", "alice.kim@example.co.kr", "***@example.co.kr"),
        ("email", "a@b@c.io", "***@c.io"),
        ("card", "4111 1111 1111 1111", "**** **** **** 1111"),
        ("card", "4111111111111111", "************1111"),
        ("phone", "+82 10-1234-5678", "+** **-****-5678"),
        ("iban", "DE89 3704 0044 0532 0130 00", "**** **** **** **** **30 00"),
        ("kr_rrn", "900101-1234567", "******-***4567"),
        ("phone", "555-1234", "***-****"),  # fewer than 8 digits: no hint
        ("custom", "Kim Minsu", "*** *****"),  # the tail is not digits: no hint
        ("custom", "비밀번호1234", "****1234"),
        ("custom", "비밀번호123", "*******"),
        ("ipv4", "192.168.10.20", "192.168.*.*"),
        ("ipv6", "2001:0db8:85a3::8a2e:0370:7334", "2001:db8:*"),
        ("ipv4", "10.0.0.1:8080", "**.*.*.*:8080"),  # not a bare address: generic mask
    ],
)
def test_mask_formats(type_: str, text: str, masked: str) -> None:
    assert mask_value(type_, text) == masked


# ---------------------------------------------------------------------------------- edits


def outcome_for(table: dict[str, Any], text: str, *found: Detection) -> PolicyOutcome:
    return decide(load_policy(table), CHAT, list(found), [len(text)])


def extraction_of(text: str) -> Any:
    return OPENAI_CHAT.extract({"messages": [{"role": "user", "content": text}]})


@pytest.mark.parametrize("style", ["sync", "async"])
def test_tokenize_uses_the_callback_once_per_distinct_value(style: str) -> None:
    text = "a@b.io, c@d.io and a@b.io again"
    vault = Vault()
    found = [
        Detection("email", 0, 0, 6),
        find(text, "c@d.io", "email"),
        Detection("email", 0, 19, 25),
    ]
    outcome = outcome_for({"actions": {"email": "tokenize"}}, text, *found)
    tokenize = vault.tokenize if style == "sync" else vault.atokenize
    edits = asyncio.run(build_edits(outcome, extraction_of(text), tokenize=tokenize))
    assert sorted(vault.calls) == [("email", "a@b.io"), ("email", "c@d.io")]
    tokens = [e.replacement for e in edits[0]]
    assert tokens[0] == tokens[2] != tokens[1]
    assert [vault.values[t] for t in tokens] == ["a@b.io", "c@d.io", "a@b.io"]


def test_encrypt_uses_its_callback() -> None:
    text = "iban DE89370400440532013000 ok"
    vault = Vault()
    outcome = outcome_for(
        {"actions": {"iban": "encrypt"}}, text, find(text, "DE89370400440532013000", "iban")
    )
    edits = asyncio.run(build_edits(outcome, extraction_of(text), encrypt=vault.encrypt))
    (edit,) = edits[0]
    assert (edit.start, edit.end) == (5, 27) and edit.replacement.startswith("enc:")
    assert vault.calls == [("iban", "DE89370400440532013000")]


@pytest.mark.parametrize("action", ["tokenize", "encrypt"])
def test_missing_callback_fails_rather_than_forwarding(action: str) -> None:
    text = "mail a@b.io"
    outcome = outcome_for({"actions": {"email": action}}, text, find(text, "a@b.io", "email"))
    with pytest.raises(ActionError) as caught:
        asyncio.run(build_edits(outcome, extraction_of(text)))
    assert caught.value.reason == f"{action}-unavailable"


@pytest.mark.parametrize(
    ("action", "answer"),
    [
        ("tokenize", "a@b.io"),  # the plaintext itself
        ("tokenize", "tok_phone_0123456789abcdef"),  # a token of another type
        ("tokenize", "tok_email_xyz"),
        ("encrypt", "sealed(alice@example.com)"),  # contains the plaintext
        ("encrypt", 'quote"d'),
        ("encrypt", ""),
    ],
)
def test_malformed_callback_answers_are_refused(action: str, answer: str) -> None:
    text = "mail alice@example.com"
    outcome = outcome_for(
        {"actions": {"email": action}}, text, find(text, "alice@example.com", "email")
    )

    def callback(type_: str, value: str) -> str:
        return answer.replace("a@b.io", value) if answer == "a@b.io" else answer

    with pytest.raises(ActionError) as caught:
        asyncio.run(build_edits(outcome, extraction_of(text), tokenize=callback, encrypt=callback))
    assert caught.value.reason == f"bad-{action}-result"


@pytest.mark.parametrize("mode", ["dry-run", "report"])
def test_observing_modes_produce_no_edits(mode: str) -> None:
    text = "mail a@b.io"
    outcome = outcome_for({"mode": mode}, text, find(text, "a@b.io", "email"))
    assert asyncio.run(build_edits(outcome, extraction_of(text))) == {}


def test_blocked_outcome_produces_no_edits() -> None:
    text = "card 4111111111111111 and a@b.io"
    found = [find(text, "4111111111111111", "card"), find(text, "a@b.io", "email")]
    outcome = outcome_for({}, text, *found)
    assert outcome.blocked
    assert asyncio.run(build_edits(outcome, extraction_of(text))) == {}


def test_allow_leaves_text_and_merged_spans_use_the_winning_type() -> None:
    text = "call +1 415 555 2671 now, ref T-1"
    found = [
        find(text, "+1 415 555 2671", "phone"),
        find(text, "415 555", "zip_like"),  # unknown type inside: redact beats mask
        find(text, "T-1", "ticket"),
    ]
    outcome = outcome_for({"actions": {"ticket": "allow"}}, text, *found)
    edits = asyncio.run(build_edits(outcome, extraction_of(text)))
    assert edits == {0: (Edit(5, 20, "[REDACTED:zip_like]"),)}


# ---------------------------------------------------------------------------------- end to end


def protect(
    adapter: Any, body: dict[str, Any], needles: dict[str, str], table: dict[str, Any]
) -> dict[str, Any]:
    """Extract, detect every needle by exact search (standing in for plugins), decide, apply."""
    extraction = adapter.extract(body)
    found = []
    for index, segment in enumerate(extraction.segments):
        for needle, type_ in needles.items():
            start = segment.text.find(needle)
            if start != -1:
                found.append(Detection(type_, index, start, start + len(needle)))
    route = {
        OPENAI_CHAT: CHAT,
        OPENAI_RESPONSES: "/v1/responses",
        ANTHROPIC_MESSAGES: "/v1/messages",
    }[adapter]
    outcome = decide(load_policy(table), route, found, extraction.lengths)
    vault = Vault()
    return asyncio.run(
        apply_outcome(
            adapter, body, extraction, outcome, tokenize=vault.atokenize, encrypt=vault.encrypt
        )
    )


def test_chat_end_to_end_with_non_ascii_and_tool_arguments() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "🛡️ 고객: 김철수 <kim@예시.kr>, ☎ 010-1234-5678"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"function": {"name": "mail", "arguments": '{"to": "kim@예시.kr"}'}}
                ],
            },
        ],
    }
    result = protect(OPENAI_CHAT, body, {"kim@예시.kr": "email", "010-1234-5678": "phone"}, {})
    assert result["messages"][0]["content"] == "🛡️ 고객: 김철수 <[REDACTED:email]>, ☎ ***-****-5678"
    arguments = json.loads(result["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"to": "[REDACTED:email]"}
    assert result["model"] == "gpt-4o"


def test_responses_end_to_end_tokenizes_tool_output() -> None:
    body = {
        "instructions": "x",
        "input": [
            {"type": "function_call_output", "call_id": "c", "output": "owner bob@example.com"}
        ],
    }
    result = protect(
        OPENAI_RESPONSES, body, {"bob@example.com": "email"}, {"actions": {"email": "tokenize"}}
    )
    assert result["input"][0]["output"].startswith("owner tok_email_")
    assert result["input"][0]["call_id"] == "c"


def test_anthropic_end_to_end_encrypts_in_tool_result_and_system() -> None:
    body = {
        "system": [{"type": "text", "text": "IBAN DE89370400440532013000 on file"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "DE89370400440532013000"}
                ],
            }
        ],
    }
    result = protect(
        ANTHROPIC_MESSAGES,
        body,
        {"DE89370400440532013000": "iban"},
        {"actions": {"iban": "encrypt"}},
    )
    assert result["system"][0]["text"].startswith("IBAN enc:") and result["system"][0][
        "text"
    ].endswith(" on file")
    assert result["messages"][0]["content"][0]["content"].startswith("enc:")
    assert "DE89370400440532013000" not in json.dumps(result)
