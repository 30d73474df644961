"""Adapters: what each API shape exposes for scanning, what it refuses, and exact write-back."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from haechi.host.gateway.adapters import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    ROUTES,
    BaseAdapter,
    BodyError,
    Edit,
    ExtractOptions,
    adapter_for,
    format_path,
)
from hypothesis import given
from hypothesis import strategies as st


def texts(adapter: BaseAdapter, body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s.text, format_path(s.path)) for s in adapter.extract(body).segments]


def refused(adapter: BaseAdapter, body: dict[str, Any], **options: Any) -> BodyError:
    with pytest.raises(BodyError) as caught:
        adapter.extract(body, ExtractOptions(**options))
    return caught.value


def redact_all(adapter: BaseAdapter, body: dict[str, Any], needle: str) -> dict[str, Any]:
    """Replace every occurrence of ``needle`` in every segment with ``[X]``."""
    extraction = adapter.extract(body)
    edits: dict[int, list[Edit]] = {}
    for index, segment in enumerate(extraction.segments):
        start = segment.text.find(needle)
        while start != -1:
            edits.setdefault(index, []).append(Edit(start, start + len(needle), "[X]"))
            start = segment.text.find(needle, start + len(needle))
    return adapter.apply(body, edits, extraction)


# ---------------------------------------------------------------------------------- routes


def test_route_table_maps_each_api_shape_to_its_adapter() -> None:
    assert adapter_for("/v1/chat/completions") is OPENAI_CHAT
    assert adapter_for("/v1/responses") is OPENAI_RESPONSES
    assert adapter_for("/v1/messages") is ANTHROPIC_MESSAGES
    assert set(ROUTES) == {"/v1/chat/completions", "/v1/responses", "/v1/messages"}
    for near_miss in ("/v1/messages/", "/v1/chat/completions/x", "/V1/messages", "/v1/models"):
        assert adapter_for(near_miss) is None


# ---------------------------------------------------------------------------------- openai chat

CHAT: dict[str, Any] = {
    "model": "gpt-4o",
    "stream": True,
    "temperature": 0.2,
    "x-vendor": {"keep": [1, 2.5, None, True]},
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "No emojis."}]},
        {
            "role": "user",
            "name": "alice",
            "content": [
                {"type": "text", "text": "mail bob@example.com"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "send",
                        "arguments": '{"to": "bob@example.com", "n": 4111111111111111}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sent to bob@example.com"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot."}]},
    ],
}


def test_chat_extracts_every_role_in_order_with_paths() -> None:
    assert texts(OPENAI_CHAT, CHAT) == [
        ("You are terse.", "$.messages[0].content"),
        ("No emojis.", "$.messages[1].content[0].text"),
        ("mail bob@example.com", "$.messages[2].content[0].text"),
        ("bob@example.com", "$.messages[3].tool_calls[0].function.arguments<json>.to"),
        ("4111111111111111", "$.messages[3].tool_calls[0].function.arguments<json>.n"),
        ("sent to bob@example.com", "$.messages[4].content"),
        ("I cannot.", "$.messages[5].content[0].refusal"),
    ]
    extraction = OPENAI_CHAT.extract(CHAT)
    assert extraction.model == "gpt-4o" and extraction.stream is True
    assert [s.role for s in extraction.segments] == [
        "system", "developer", "user", "assistant", "assistant", "tool", "assistant",
    ]  # fmt: skip


def test_chat_tool_arguments_escapes_cannot_hide_text() -> None:
    body = {
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [{"function": {"arguments": '{"to": "bob\\u0040example.com"}'}}],
            }
        ]
    }
    assert [s.text for s in OPENAI_CHAT.extract(body).segments] == ["bob@example.com"]


@pytest.mark.parametrize(
    "arguments",
    [
        '{"to": "x@y.io"',  # truncated JSON
        '{"to": "x@y.io", "to": "ok"}',  # duplicate keys: parsers disagree on which wins
        '{"n": NaN, "to": "x@y.io"}',  # not JSON
    ],
)
def test_chat_unparseable_arguments_are_scanned_raw(arguments: str) -> None:
    body = {
        "messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": arguments}}]}]
    }
    segments = OPENAI_CHAT.extract(body).segments
    assert [(s.text, format_path(s.path)) for s in segments] == [
        (arguments, "$.messages[0].tool_calls[0].function.arguments")
    ]
    edited = redact_all(OPENAI_CHAT, body, "x@y.io")
    assert "x@y.io" not in edited["messages"][0]["tool_calls"][0]["function"]["arguments"]


def test_chat_edits_in_arguments_rewrite_valid_json_and_numbers_become_strings() -> None:
    edited = redact_all(OPENAI_CHAT, CHAT, "bob@example.com")
    extraction = OPENAI_CHAT.extract(CHAT)
    card = next(i for i, s in enumerate(extraction.segments) if s.text == "4111111111111111")
    edited = OPENAI_CHAT.apply(edited, {card: [Edit(0, 16, "[REDACTED:card]")]})
    arguments = edited["messages"][3]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"to": "[X]", "n": "[REDACTED:card]"}
    assert edited["messages"][2]["content"][0]["text"] == "mail [X]"
    assert edited["messages"][4]["content"] == "sent to [X]"


def test_chat_custom_and_legacy_function_calls_and_prediction() -> None:
    body = {
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [{"type": "custom", "custom": {"name": "sh", "input": "ls ~bob"}}],
                "function_call": {"name": "f", "arguments": '{"q": "legacy"}'},
            }
        ],
        "prediction": {"type": "content", "content": [{"type": "text", "text": "draft"}]},
    }
    assert texts(OPENAI_CHAT, body) == [
        ("ls ~bob", "$.messages[0].tool_calls[0].custom.input"),
        ("legacy", "$.messages[0].function_call.arguments<json>.q"),
        ("draft", "$.prediction.content[0].text"),
    ]


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        ({"messages": "hi"}, "$.messages", "invalid-body"),
        ({}, "$.messages", "invalid-body"),
        ({"messages": [], "model": 3}, "$.model", "invalid-body"),
        ({"messages": [], "stream": "yes"}, "$.stream", "invalid-body"),
        ({"messages": ["hi"]}, "$.messages[0]", "invalid-body"),
        ({"messages": [{"content": "x"}]}, "$.messages[0].role", "invalid-body"),
        ({"messages": [{"role": "user", "content": 5}]}, "$.messages[0].content", "invalid-body"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ["x"]}]}]},
            "$.messages[0].content[0].text",
            "invalid-body",
        ),
        (
            {"messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "$.messages[0].content[0].type",
            "invalid-body",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": {"id": 1}}]},
            "$.messages[0].tool_calls",
            "invalid-body",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}]},
            "$.messages[0].tool_calls[0].function.arguments",
            "invalid-body",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "hologram", "text": "x"}]}]},
            "$.messages[0].content[0].type",
            "unsupported-content",
        ),
    ],
)
def test_chat_refusals_name_the_json_path(body: dict[str, Any], path: str, reason: str) -> None:
    error = refused(OPENAI_CHAT, body)
    assert (error.path, error.reason) == (path, reason)
    assert str(error).startswith(path)


def test_unknown_parts_can_be_passed_through_when_configured() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "hologram", "text": "x"}]}]}
    extraction = OPENAI_CHAT.extract(body, ExtractOptions(unknown_parts="pass"))
    assert extraction.segments == ()


# ---------------------------------------------------------------------------------- responses

RESPONSES: dict[str, Any] = {
    "model": "gpt-4.1",
    "instructions": "Answer in Korean.",
    "store": False,
    "input": [
        {"role": "user", "content": "내 번호는 010-1234-5678"},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "see file"},
                {"type": "input_image", "image_url": "https://example.com/a.png"},
                {"type": "input_file", "file_data": "JVBERi0="},
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "ok", "annotations": []}],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"q": "a@b.io"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "result for a@b.io"},
        {
            "type": "function_call_output",
            "call_id": "c2",
            "output": [{"type": "input_text", "text": "parts output"}],
        },
        {"type": "item_reference", "id": "msg_1"},
    ],
    "prompt": {
        "id": "pmpt_1",
        "variables": {"city": "Seoul", "doc": {"type": "input_text", "text": "v"}},
    },
}


def test_responses_extracts_instructions_items_and_tool_outputs() -> None:
    assert texts(OPENAI_RESPONSES, RESPONSES) == [
        ("Answer in Korean.", "$.instructions"),
        ("내 번호는 010-1234-5678", "$.input[0].content"),
        ("see file", "$.input[1].content[0].text"),
        ("ok", "$.input[2].content[0].text"),
        ("a@b.io", "$.input[4].arguments<json>.q"),
        ("result for a@b.io", "$.input[5].output"),
        ("parts output", "$.input[6].output[0].text"),
        ("Seoul", "$.prompt.variables.city"),
        ("v", "$.prompt.variables.doc.text"),
    ]


def test_responses_string_input() -> None:
    body = {"model": "m", "input": "hello there"}
    assert texts(OPENAI_RESPONSES, body) == [("hello there", "$.input")]
    assert OPENAI_RESPONSES.extract(body).stream is False


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        ({"instructions": ["x"]}, "$.instructions", "invalid-body"),
        ({"input": 3}, "$.input", "invalid-body"),
        ({"input": [{"role": "user", "content": {"t": 1}}]}, "$.input[0].content", "invalid-body"),
        ({"input": [{"type": "message", "content": "x"}]}, "$.input[0].role", "invalid-body"),
        ({"input": [{"type": "computer_call"}]}, "$.input[0].type", "unsupported-content"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "$.input[0].content[0].text",
            "invalid-body",
        ),
        (
            {"input": [{"type": "function_call", "arguments": 1}]},
            "$.input[0].arguments",
            "invalid-body",
        ),
    ],
)
def test_responses_refusals_name_the_json_path(
    body: dict[str, Any], path: str, reason: str
) -> None:
    error = refused(OPENAI_RESPONSES, body)
    assert (error.path, error.reason) == (path, reason)


# ---------------------------------------------------------------------------------- anthropic

ANTHROPIC: dict[str, Any] = {
    "model": "claude-sonnet-4",
    "max_tokens": 256,
    "metadata": {"user_id": "u1"},
    "system": [{"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": "card 4111 1111 1111 1111"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "secret plan", "signature": "sig"},
                {"type": "text", "text": "Calling a tool."},
                {
                    "type": "tool_use",
                    "id": "tu_1",
                    "name": "lookup",
                    "input": {
                        "email": "c@d.io",
                        "tags": ["x", {"deep": 42}],
                        "ok": True,
                        "n": None,
                    },
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "tu_1", "content": "found c@d.io"},
                {
                    "type": "tool_result",
                    "tool_use_id": "tu_2",
                    "content": [
                        {"type": "text", "text": "block result"},
                        {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
                    ],
                },
                {
                    "type": "document",
                    "title": "notes",
                    "source": {"type": "text", "media_type": "text/plain", "data": "doc text"},
                },
                {"type": "document", "source": {"type": "base64", "data": "JVBERi0="}},
                {"type": "image", "source": {"type": "url", "url": "https://e.com/x.png"}},
            ],
        },
    ],
}


def test_anthropic_extracts_system_messages_tools_and_documents() -> None:
    assert texts(ANTHROPIC_MESSAGES, ANTHROPIC) == [
        ("Be kind.", "$.system[0].text"),
        ("card 4111 1111 1111 1111", "$.messages[0].content"),
        ("Calling a tool.", "$.messages[1].content[1].text"),
        ("c@d.io", "$.messages[1].content[2].input.email"),
        ("x", "$.messages[1].content[2].input.tags[0]"),
        ("42", "$.messages[1].content[2].input.tags[1].deep"),
        ("found c@d.io", "$.messages[2].content[0].content"),
        ("block result", "$.messages[2].content[1].content[0].text"),
        ("notes", "$.messages[2].content[2].title"),
        ("doc text", "$.messages[2].content[2].source.data"),
    ]
    roles = [s.role for s in ANTHROPIC_MESSAGES.extract(ANTHROPIC).segments]
    assert roles[0] == "system" and roles[6] == "tool"


def test_anthropic_string_system() -> None:
    body = {"system": "plain", "messages": [{"role": "user", "content": "hi"}]}
    assert texts(ANTHROPIC_MESSAGES, body) == [
        ("plain", "$.system"),
        ("hi", "$.messages[0].content"),
    ]


def test_anthropic_tool_input_number_becomes_a_string_when_edited() -> None:
    extraction = ANTHROPIC_MESSAGES.extract(ANTHROPIC)
    index = next(i for i, s in enumerate(extraction.segments) if s.text == "42")
    edited = ANTHROPIC_MESSAGES.apply(ANTHROPIC, {index: [Edit(0, 2, "**")]}, extraction)
    assert edited["messages"][1]["content"][2]["input"]["tags"][1] == {"deep": "**"}
    assert ANTHROPIC["messages"][1]["content"][2]["input"]["tags"][1] == {"deep": 42}


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        ({"system": 1, "messages": []}, "$.system", "invalid-body"),
        (
            {"system": [{"type": "image"}], "messages": []},
            "$.system[0].type",
            "unsupported-content",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "$.messages[0].content[0].text",
            "invalid-body",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": 7}]}]},
            "$.messages[0].content[0].content",
            "invalid-body",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "mystery"}]}]},
            "$.messages[0].content[0].type",
            "unsupported-content",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": "x"}]}]},
            "$.messages[0].content[0].source",
            "invalid-body",
        ),
    ],
)
def test_anthropic_refusals_name_the_json_path(
    body: dict[str, Any], path: str, reason: str
) -> None:
    error = refused(ANTHROPIC_MESSAGES, body)
    assert (error.path, error.reason) == (path, reason)


# ---------------------------------------------------------------------------------- limits


def test_segment_count_and_text_size_are_capped() -> None:
    many = {"messages": [{"role": "user", "content": "x"} for _ in range(11)]}
    error = refused(OPENAI_CHAT, many, max_segments=10)
    assert error.reason == "body-too-large" and error.path == "$.messages[10].content"
    big = {"messages": [{"role": "user", "content": "x" * 60} for _ in range(2)]}
    assert refused(OPENAI_CHAT, big, max_text_chars=100).reason == "body-too-large"
    assert len(OPENAI_CHAT.extract(big, ExtractOptions(max_text_chars=120)).segments) == 2


def test_embedded_json_depth_is_capped() -> None:
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    body = {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "input": deep}]}]}
    assert refused(ANTHROPIC_MESSAGES, body).reason == "body-too-large"
    assert len(ANTHROPIC_MESSAGES.extract(body, ExtractOptions(max_depth=64)).segments) == 1


def test_empty_strings_are_not_segments() -> None:
    body = {"messages": [{"role": "user", "content": ""}, {"role": "user", "content": "a"}]}
    assert texts(OPENAI_CHAT, body) == [("a", "$.messages[1].content")]


# ---------------------------------------------------------------------------------- write-back

ALL = [(OPENAI_CHAT, CHAT), (OPENAI_RESPONSES, RESPONSES), (ANTHROPIC_MESSAGES, ANTHROPIC)]


@pytest.mark.parametrize(("adapter", "body"), ALL)
def test_apply_without_edits_returns_an_equal_new_body(
    adapter: BaseAdapter, body: dict[str, Any]
) -> None:
    result = adapter.apply(body, {})
    assert result == body and result is not body
    assert json.dumps(result, sort_keys=True) == json.dumps(body, sort_keys=True)


@pytest.mark.parametrize(("adapter", "body"), ALL)
def test_edits_change_only_their_segments_and_never_the_input(
    adapter: BaseAdapter, body: dict[str, Any]
) -> None:
    before = copy.deepcopy(body)
    extraction = adapter.extract(body)
    edits = {i: [Edit(0, 1, "#")] for i in range(0, len(extraction.segments), 2)}
    result = adapter.apply(body, edits, extraction)
    assert body == before  # the input is never mutated
    after = adapter.extract(result).texts
    for index, (old, new) in enumerate(zip(extraction.texts, after, strict=True)):
        assert new == ("#" + old[1:] if index in edits else old)
    # Unknown fields and non-text parts are untouched.
    for key in body:
        if key not in ("messages", "input", "system", "instructions", "prompt"):
            assert result[key] == body[key]


def test_edits_land_at_code_point_offsets_with_non_ascii_and_emoji() -> None:
    text = "안녕 👋🏽 mail: 김@예시.kr, then 🎉 010-1234-5678 끝"
    body = {"messages": [{"role": "user", "content": text}]}
    email, phone = "김@예시.kr", "010-1234-5678"
    e, p = text.index(email), text.index(phone)
    result = OPENAI_CHAT.apply(
        body,
        {0: [Edit(p, p + len(phone), "[PHONE]"), Edit(e, e + len(email), "[EMAIL]")]},
    )
    assert result["messages"][0]["content"] == "안녕 👋🏽 mail: [EMAIL], then 🎉 [PHONE] 끝"


def test_edits_in_tool_input_with_non_ascii() -> None:
    body = {
        "messages": [
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "input": {"q": "☕ 이메일 a@b.io!"}}],
            }
        ]
    }
    result = redact_all(ANTHROPIC_MESSAGES, body, "a@b.io")
    assert result["messages"][0]["content"][0]["input"] == {"q": "☕ 이메일 [X]!"}


def test_overlapping_or_out_of_range_edits_are_programming_errors() -> None:
    body = {"messages": [{"role": "user", "content": "abcdef"}]}
    with pytest.raises(ValueError, match="overlaps"):
        OPENAI_CHAT.apply(body, {0: [Edit(0, 3, "x"), Edit(2, 4, "y")]})
    with pytest.raises(ValueError, match="outside"):
        OPENAI_CHAT.apply(body, {0: [Edit(4, 9, "x")]})
    with pytest.raises(ValueError, match="segment 3"):
        OPENAI_CHAT.apply(body, {3: [Edit(0, 1, "x")]})
    # Adjacent edits are fine.
    result = OPENAI_CHAT.apply(body, {0: [Edit(3, 6, "2"), Edit(0, 3, "1")]})
    assert result["messages"][0]["content"] == "12"


def test_extraction_from_another_body_is_refused_on_apply() -> None:
    body = {"messages": [{"role": "user", "content": "abcdef"}]}
    other = {"messages": [{"role": "user", "content": "zzzzzz"}]}
    with pytest.raises(ValueError, match="does not match"):
        OPENAI_CHAT.apply(other, {0: [Edit(0, 1, "x")]}, OPENAI_CHAT.extract(body))


segment_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30
)


@given(st.lists(segment_text, min_size=1, max_size=6), st.data())
def test_random_edits_land_exactly(contents: list[str], data: st.DataObject) -> None:
    body = {"messages": [{"role": "user", "content": c} for c in contents]}
    extraction = OPENAI_CHAT.extract(body)
    index = data.draw(st.integers(0, len(extraction.segments) - 1))
    text = extraction.segments[index].text
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    result = OPENAI_CHAT.apply(body, {index: [Edit(start, end, "<>")]}, extraction)
    expected = [c for c in contents if c]
    expected[index] = text[:start] + "<>" + text[end:]
    assert [m["content"] for m in result["messages"] if m["content"]] == [e for e in expected if e]
