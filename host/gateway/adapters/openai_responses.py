"""OpenAI responses (``POST /v1/responses``).

Scanned, in body order:

* ``instructions`` (a string);
* ``input`` when a string, or each item of it:

  * messages (``type`` ``"message"`` or absent, with a ``role``): ``content`` as a string, or its
    ``input_text`` / ``output_text`` parts (``.text``) and ``refusal`` parts (``.refusal``);
  * ``function_call.arguments`` (JSON text: its string and number leaves);
  * ``function_call_output.output`` and ``custom_tool_call_output.output`` (a string, or parts as
    for messages); ``custom_tool_call.input``;

* ``prompt.variables`` values (strings, or parts as for messages).

Not text, left alone: ``input_image``, ``input_file`` and ``input_audio`` parts; ``reasoning``
items (the model's own output, often encrypted, replayed as is) and ``item_reference`` items.
Other part and item types are refused (``unsupported-content``) unless
``ExtractOptions.unknown_parts == "pass"``. Unknown fields are carried through untouched.

Example::

    >>> body = {"instructions": "be brief", "input": [
    ...     {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    ...     {"type": "function_call_output", "call_id": "c", "output": "done"}]}
    >>> [s.text for s in OPENAI_RESPONSES.extract(body).segments]
    ['be brief', 'hi', 'done']
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
    optional_object,
    optional_string,
    part_type,
    required,
)

__all__ = ["OPENAI_RESPONSES", "OpenAIResponsesAdapter"]

TEXT_PARTS: Final = frozenset({"input_text", "output_text"})
NON_TEXT_PARTS: Final = frozenset({"input_image", "input_file", "input_audio"})
PASSED_ITEMS: Final = frozenset({"reasoning", "item_reference"})


class OpenAIResponsesAdapter(BaseAdapter):
    name = "openai-responses"

    def walk(self, body: Mapping[str, object], out: Collector) -> None:
        out.field(body, "instructions", (), "system")
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            out.text(raw_input, ("input",), "user")
        elif raw_input is not None:
            for index, raw in enumerate(as_array(raw_input, ("input",))):
                _item(as_object(raw, ("input", index)), ("input", index), out)
        _prompt_variables(body, out)


def _item(item: Mapping[str, object], path: Path, out: Collector) -> None:
    kind = optional_string(item, "type", path)
    if kind is None or kind == "message":
        role = as_string(required(item, "role", path), (*path, "role"))
        _parts_or_text(item, "content", path, role, out)
    elif kind == "function_call":
        arguments = optional_string(item, "arguments", path)
        if arguments is not None:
            out.embedded(arguments, (*path, "arguments"), "assistant")
    elif kind in ("function_call_output", "custom_tool_call_output"):
        _parts_or_text(item, "output", path, "tool", out)
    elif kind == "custom_tool_call":
        out.field(item, "input", path, "assistant")
    elif kind not in PASSED_ITEMS:
        out.unknown("input item", kind, path)


def _parts_or_text(
    obj: Mapping[str, object], key: str, path: Path, role: str, out: Collector
) -> None:
    value = obj.get(key)
    path = (*path, key)
    if value is None:
        return
    if isinstance(value, str):
        out.text(value, path, role)
        return
    for index, raw in enumerate(as_array(value, path)):
        _part(as_object(raw, (*path, index)), (*path, index), role, out)


def _part(part: Mapping[str, object], path: Path, role: str, out: Collector) -> None:
    kind = part_type(part, path)
    if kind in TEXT_PARTS:
        out.required_field(part, "text", path, role)
    elif kind == "refusal":
        out.field(part, "refusal", path, role)
    elif kind not in NON_TEXT_PARTS:
        out.unknown("content part", kind, path)


def _prompt_variables(body: Mapping[str, object], out: Collector) -> None:
    prompt = optional_object(body, "prompt", ())
    variables = None if prompt is None else optional_object(prompt, "variables", ("prompt",))
    for name, value in (variables or {}).items():
        path: Path = ("prompt", "variables", name)
        if isinstance(value, str):
            out.text(value, path, "user")
        else:
            _part(as_object(value, path), path, "user", out)


OPENAI_RESPONSES: Final = OpenAIResponsesAdapter()
