"""OpenAI chat completions (``POST /v1/chat/completions``).

Scanned, in body order:

* ``messages[i].content`` when a string, or each part of it that is ``{"type": "text"}``
  (``.text``) or ``{"type": "refusal"}`` (``.refusal``), for every role (system, developer, user,
  assistant, tool and the legacy function role: the role does not change what leaves the box);
* ``messages[i].tool_calls[j].function.arguments`` (JSON text: its string and number leaves) and
  ``.custom.input``; the legacy ``messages[i].function_call.arguments``;
* ``prediction.content`` (predicted outputs are sent to the model too).

Not text, left alone: ``image_url``, ``input_audio`` and ``file`` parts. Other part types are
refused (``unsupported-content``) unless ``ExtractOptions.unknown_parts == "pass"``. Tool
definitions, names, ids and every unknown field are carried through untouched.

Example::

    >>> body = {"messages": [{"role": "assistant", "content": None, "tool_calls": [
    ...     {"id": "c1", "type": "function",
    ...      "function": {"name": "f", "arguments": '{"to": "a@b.io"}'}}]}]}
    >>> [s.text for s in OPENAI_CHAT.extract(body).segments]
    ['a@b.io']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .base import (
    BaseAdapter,
    Collector,
    Path,
    as_array,
    as_object,
    as_string,
    optional_array,
    optional_object,
    optional_string,
    required,
    typed_items,
)

__all__ = ["OPENAI_CHAT", "OpenAIChatAdapter"]

NON_TEXT_PARTS: Final = frozenset({"image_url", "input_audio", "file"})


class OpenAIChatAdapter(BaseAdapter):
    name = "openai-chat"

    def walk(self, body: Mapping[str, object], out: Collector) -> None:
        messages = as_array(required(body, "messages", ()), ("messages",))
        for index, raw in enumerate(messages):
            path: Path = ("messages", index)
            message = as_object(raw, path)
            role = as_string(required(message, "role", path), (*path, "role"))
            _content(message, path, role, out)
            _tool_calls(message, path, role, out)
        prediction = optional_object(body, "prediction", ())
        if prediction is not None:
            _content(prediction, ("prediction",), None, out)


def _content(message: Mapping[str, object], path: Path, role: str | None, out: Collector) -> None:
    content = message.get("content")
    path = (*path, "content")
    if content is None:
        return
    if isinstance(content, str):
        out.text(content, path, role)
        return
    for part, kind, part_path in typed_items(as_array(content, path), path):
        if kind == "text":
            out.required_field(part, "text", part_path, role)
        elif kind == "refusal":
            out.field(part, "refusal", part_path, role)
        elif kind not in NON_TEXT_PARTS:
            out.unknown("content part", kind, part_path)


def _tool_calls(message: Mapping[str, object], path: Path, role: str, out: Collector) -> None:
    calls = optional_array(message, "tool_calls", path)
    for index, raw in enumerate(calls or ()):
        call_path: Path = (*path, "tool_calls", index)
        call = as_object(raw, call_path)
        function = optional_object(call, "function", call_path)
        if function is not None:
            _arguments(function, (*call_path, "function"), role, out)
        custom = optional_object(call, "custom", call_path)
        if custom is not None:
            out.field(custom, "input", (*call_path, "custom"), role)
    legacy = optional_object(message, "function_call", path)
    if legacy is not None:
        _arguments(legacy, (*path, "function_call"), role, out)


def _arguments(function: Mapping[str, object], path: Path, role: str, out: Collector) -> None:
    arguments = optional_string(function, "arguments", path)
    if arguments is not None:
        out.embedded(arguments, (*path, "arguments"), role)


OPENAI_CHAT: Final = OpenAIChatAdapter()
