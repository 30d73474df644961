"""Anthropic messages (``POST /v1/messages``).

Scanned, in body order:

* ``system`` when a string, or each of its ``text`` blocks;
* ``messages[i].content`` when a string, or each block of it:

  * ``text`` blocks (``.text``);
  * ``tool_use`` and ``server_tool_use`` blocks: every string and number leaf of ``.input``;
  * ``tool_result`` blocks: ``.content`` as a string, or its blocks (recursively, same rules);
  * ``document`` blocks: ``.title``, ``.context``, and the text of a ``source`` of type ``text``
    (``.source.data``) or ``content`` (``.source.content``, a string or blocks);
  * ``search_result`` blocks: ``.title`` and the blocks of ``.content``.

Not text, left alone: ``image`` blocks, documents whose source is base64, a URL or a file id
(PDFs are not scanned), and ``thinking`` / ``redacted_thinking`` blocks (the model's own output,
signed by the API: editing them would make the request fail). Other block types are refused
(``unsupported-content``) unless ``ExtractOptions.unknown_parts == "pass"``; so are non-text blocks
in ``system``. Unknown fields (``cache_control``, ``citations``, ...) are carried through.

Example::

    >>> body = {"system": [{"type": "text", "text": "be brief"}], "messages": [
    ...     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
    ...                                   "content": "ok"}]}]}
    >>> [s.text for s in ANTHROPIC_MESSAGES.extract(body).segments]
    ['be brief', 'ok']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .base import (
    BODY_TOO_LARGE,
    BaseAdapter,
    BodyError,
    Collector,
    Path,
    as_array,
    as_object,
    as_string,
    optional_array,
    optional_object,
    optional_string,
    part_type,
    required,
    typed_items,
)

__all__ = ["ANTHROPIC_MESSAGES", "AnthropicMessagesAdapter"]

PASSED_BLOCKS: Final = frozenset({"image", "thinking", "redacted_thinking"})
TOOL_CALL_BLOCKS: Final = frozenset({"tool_use", "server_tool_use"})


class AnthropicMessagesAdapter(BaseAdapter):
    name = "anthropic-messages"

    def walk(self, body: Mapping[str, object], out: Collector) -> None:
        _system(body, out)
        messages = as_array(required(body, "messages", ()), ("messages",))
        for index, raw in enumerate(messages):
            path: Path = ("messages", index)
            message = as_object(raw, path)
            role = as_string(required(message, "role", path), (*path, "role"))
            _blocks_or_text(message, "content", path, role, out, 0)


def _system(body: Mapping[str, object], out: Collector) -> None:
    system = body.get("system")
    if system is None:
        return
    if isinstance(system, str):
        out.text(system, ("system",), "system")
        return
    for block, kind, path in typed_items(as_array(system, ("system",)), ("system",)):
        if kind == "text":
            out.required_field(block, "text", path, "system")
        else:
            out.unknown("system block", kind, path)


def _blocks_or_text(
    obj: Mapping[str, object], key: str, path: Path, role: str, out: Collector, depth: int
) -> None:
    value = obj.get(key)
    path = (*path, key)
    if value is None:
        return
    if isinstance(value, str):
        out.text(value, path, role)
        return
    if depth > out.options.max_depth:
        raise BodyError(BODY_TOO_LARGE, path, f"nested deeper than {out.options.max_depth}")
    for index, raw in enumerate(as_array(value, path)):
        _block(as_object(raw, (*path, index)), (*path, index), role, out, depth + 1)


def _block(block: Mapping[str, object], path: Path, role: str, out: Collector, depth: int) -> None:
    kind = part_type(block, path)
    if kind == "text":
        out.required_field(block, "text", path, role)
    elif kind in TOOL_CALL_BLOCKS:
        if "input" in block:
            out.json_value(block["input"], (*path, "input"), role, 0)
    elif kind == "tool_result":
        _blocks_or_text(block, "content", path, "tool", out, depth)
    elif kind == "document":
        _document(block, path, role, out, depth)
    elif kind == "search_result":
        out.field(block, "title", path, role)
        optional_array(block, "content", path)  # type check before walking
        _blocks_or_text(block, "content", path, role, out, depth)
    elif kind not in PASSED_BLOCKS:
        out.unknown("content block", kind, path)


def _document(
    block: Mapping[str, object], path: Path, role: str, out: Collector, depth: int
) -> None:
    out.field(block, "title", path, role)
    out.field(block, "context", path, role)
    source = optional_object(block, "source", path)
    if source is None:
        return
    source_path: Path = (*path, "source")
    kind = optional_string(source, "type", source_path)
    if kind == "text":
        out.field(source, "data", source_path, role)
    elif kind == "content":
        _blocks_or_text(source, "content", source_path, role, out, depth)


ANTHROPIC_MESSAGES: Final = AnthropicMessagesAdapter()
