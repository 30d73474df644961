"""Response inspection: the filter plugins and the policy over the model API's answer.

When ``gateway.inspect_responses`` is true, the gateway runs a *non-streamed* answer through the
same filters and the same route policy as the request before the client gets it, so what the
model says back (an e-mail address, a card number, a secret it was tricked into repeating) is
masked, redacted, tokenized, encrypted or withheld like request text. The app calls
:func:`inspect_response` from its body relay; this module holds the answer adapters and that step.

Rules enforced here (docs/reference/response-inspection.md has the operator's view):

* **Fail closed.** An answer that is not strict JSON (garbage, ``NaN``, a lone UTF-16 surrogate
  in its text), is compressed (a ``Content-Encoding`` other than ``identity``), or does not have
  the route's answer shape (a missing ``choices``, an unknown content block or output item, log
  probabilities that repeat the text token by token) is refused with ``502
  response-uninspectable``: it is never forwarded unscanned. Only an empty body passes as is
  (it holds no text).
* **What is scanned.** A 2xx answer through the route's answer adapter (below); any other status
  (the upstream's error body) by every string and number leaf of the JSON, since an error
  message may quote text too.
* **Same filters, same policy.** The segments go to :meth:`PluginHost.inspect` in a
  :class:`RequestView` (filters whose manifest grants ``request:body-text`` receive them, as for
  requests); a filter that fails is ``503 filter-unavailable``. :func:`~.policy.decide` with the
  route's policy decides; in every mode an applied block (hard-block types always) withholds
  the answer with ``502 response-blocked:<type>``; ``enforce`` rewrites the spans through the
  ``apply`` callback (the app's, with its vault and crypto plugin); ``report`` and ``enforce``
  name the types found in ``X-Haechi-Response-Detections``; ``dry-run`` only audits.
* **Unchanged answers keep their bytes**: the body is re-serialised only when an edit was made.
* **Streaming (SSE) answers are not inspected**: the app passes them through unbuffered and
  never calls this module for them.

Answer adapters (the shapes of the three routes' non-streamed answers):

* ``/v1/chat/completions``: per ``choices[i]``: ``message.content`` (a string, or ``text`` and
  ``refusal`` parts), ``message.refusal``, ``message.tool_calls[j].function.arguments`` (JSON
  text: its leaves) and ``.custom.input``, the legacy ``message.function_call.arguments``,
  ``message.audio.transcript``, and the leaves of ``message.annotations``;
* ``/v1/responses``: per ``output[i]``: ``message`` items' ``output_text`` parts (``.text`` and
  the leaves of ``.annotations``) and ``refusal`` parts; ``function_call.arguments``;
  ``custom_tool_call.input``; ``reasoning`` items' ``summary`` and ``content`` texts (their
  ``encrypted_content`` is opaque and left alone);
* ``/v1/messages``: per ``content[i]``: ``text`` blocks (``.text`` and their citations'
  ``cited_text``, ``title``, ``document_title`` and ``url``), ``tool_use`` and
  ``server_tool_use`` blocks (every leaf of ``.input``), ``thinking`` blocks (``.thinking``;
  editing one voids its signature for replay); ``redacted_thinking`` is opaque and left alone.

Example::

    >>> body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
    >>> [s.text for s in RESPONSE_ROUTES["/v1/chat/completions"].extract(body).segments]
    ['hi']
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from haechi.host.sandbox import SandboxError
from haechi.host.sandbox.views import RequestView

from .adapters.base import (
    DEFAULT_OPTIONS,
    ROOT,
    UNSUPPORTED_CONTENT,
    BaseAdapter,
    BodyError,
    Collector,
    Extraction,
    ExtractOptions,
    Path,
    as_array,
    as_object,
    optional_array,
    optional_object,
    optional_string,
    required,
    typed_items,
)
from .plugins import PluginHost
from .policy import Policy, PolicyOutcome, decide

__all__ = [
    "ERROR_ANSWER",
    "RESPONSE_ROUTES",
    "UNINSPECTABLE",
    "AnswerAdapter",
    "InspectedResponse",
    "ResponseRefused",
    "inspect_response",
    "response_audit_fields",
]

UNINSPECTABLE: Final = "response-uninspectable"
DETECTIONS_HEADER: Final = "X-Haechi-Response-Detections"
ROLE: Final = "assistant"

ApplyFn = Callable[[BaseAdapter, dict[str, Any], Extraction, PolicyOutcome], Awaitable[Any]]
"""``(adapter, body, extraction, outcome) -> new body``: the app's action step."""


# ---------------------------------------------------------------------------------- adapters


class AnswerAdapter(BaseAdapter):
    """An answer's shape. Like a request adapter (``apply`` is shared), but an answer's
    ``model`` and ``stream`` fields are not the gateway's business, so they are not read."""

    def extract(
        self, body: Mapping[str, object], options: ExtractOptions = DEFAULT_OPTIONS
    ) -> Extraction:
        out = Collector(options)
        self.walk(as_object(body, ROOT), out)
        return Extraction(tuple(out.segments), None, False)


class OpenAIChatAnswer(AnswerAdapter):
    name = "openai-chat-answer"

    def walk(self, body: Mapping[str, object], out: Collector) -> None:
        choices = as_array(required(body, "choices", ROOT), ("choices",))
        for index, raw in enumerate(choices):
            path: Path = ("choices", index)
            choice = as_object(raw, path)
            _no_token_text(choice, "logprobs", path)
            message = as_object(required(choice, "message", path), (*path, "message"))
            _chat_message(message, (*path, "message"), out)


def _chat_message(message: Mapping[str, object], path: Path, out: Collector) -> None:
    content = message.get("content")
    if content is None or isinstance(content, str):
        out.field(message, "content", path, ROLE)
    else:
        content_path: Path = (*path, "content")
        for part, kind, part_path in typed_items(as_array(content, content_path), content_path):
            if kind == "text":
                out.required_field(part, "text", part_path, ROLE)
            elif kind == "refusal":
                out.field(part, "refusal", part_path, ROLE)
            else:
                out.unknown("content part", kind, part_path)
    out.field(message, "refusal", path, ROLE)
    for index, raw in enumerate(optional_array(message, "tool_calls", path) or ()):
        call_path: Path = (*path, "tool_calls", index)
        call = as_object(raw, call_path)
        function = optional_object(call, "function", call_path)
        if function is not None:
            _arguments(function, (*call_path, "function"), out)
        custom = optional_object(call, "custom", call_path)
        if custom is not None:
            out.field(custom, "input", (*call_path, "custom"), ROLE)
    legacy = optional_object(message, "function_call", path)
    if legacy is not None:
        _arguments(legacy, (*path, "function_call"), out)
    audio = optional_object(message, "audio", path)
    if audio is not None:
        out.field(audio, "transcript", (*path, "audio"), ROLE)
    _leaves(message, "annotations", path, out)


class OpenAIResponsesAnswer(AnswerAdapter):
    name = "openai-responses-answer"

    def walk(self, body: Mapping[str, object], out: Collector) -> None:
        output = as_array(required(body, "output", ROOT), ("output",))
        for item, kind, path in typed_items(output, ("output",)):
            if kind == "message":
                _output_parts(item, path, out)
            elif kind == "function_call":
                _arguments(item, path, out)
            elif kind == "custom_tool_call":
                out.field(item, "input", path, ROLE)
            elif kind == "reasoning":
                _reasoning(item, path, out)
            else:
                out.unknown("output item", kind, path)


def _output_parts(item: Mapping[str, object], path: Path, out: Collector) -> None:
    content_path: Path = (*path, "content")
    content = as_array(required(item, "content", path), content_path)
    for part, kind, part_path in typed_items(content, content_path):
        if kind == "output_text":
            _no_token_text(part, "logprobs", part_path)
            out.required_field(part, "text", part_path, ROLE)
            _leaves(part, "annotations", part_path, out)
        elif kind == "refusal":
            out.field(part, "refusal", part_path, ROLE)
        else:
            out.unknown("content part", kind, part_path)


def _reasoning(item: Mapping[str, object], path: Path, out: Collector) -> None:
    for key in ("summary", "content"):
        parts = optional_array(item, key, path) or ()
        for part, kind, part_path in typed_items(parts, (*path, key)):
            if kind in ("summary_text", "reasoning_text"):
                out.required_field(part, "text", part_path, ROLE)
            else:
                out.unknown("reasoning part", kind, part_path)


class AnthropicMessagesAnswer(AnswerAdapter):
    name = "anthropic-messages-answer"

    def walk(self, body: Mapping[str, object], out: Collector) -> None:
        content = as_array(required(body, "content", ROOT), ("content",))
        for block, kind, path in typed_items(content, ("content",)):
            if kind == "text":
                out.required_field(block, "text", path, ROLE)
                _citations(block, path, out)
            elif kind in ("tool_use", "server_tool_use"):
                if "input" in block:
                    out.json_value(block["input"], (*path, "input"), ROLE, 0)
            elif kind == "thinking":
                out.field(block, "thinking", path, ROLE)
            elif kind != "redacted_thinking":
                out.unknown("content block", kind, path)


def _citations(block: Mapping[str, object], path: Path, out: Collector) -> None:
    for index, raw in enumerate(optional_array(block, "citations", path) or ()):
        citation_path: Path = (*path, "citations", index)
        citation = as_object(raw, citation_path)
        for key in ("cited_text", "title", "document_title", "url"):
            out.field(citation, key, citation_path, ROLE)


class ErrorAnswer(AnswerAdapter):
    """A non-2xx answer: every string and number leaf (error messages may quote text)."""

    name = "error-answer"

    def walk(self, body: Mapping[str, object], out: Collector) -> None:
        out.json_value(body, ROOT, None, 0)


def _arguments(obj: Mapping[str, object], path: Path, out: Collector) -> None:
    arguments = optional_string(obj, "arguments", path)
    if arguments is not None:
        out.embedded(arguments, (*path, "arguments"), ROLE)


def _leaves(obj: Mapping[str, object], key: str, path: Path, out: Collector) -> None:
    if obj.get(key) is not None:
        out.json_value(obj[key], (*path, key), ROLE, 0)


def _no_token_text(obj: Mapping[str, object], key: str, path: Path) -> None:
    """Log probabilities spell the answer out token by token, where no filter can see a card
    number or an address whole (and editing the text would not edit them): refuse them."""
    value = obj.get(key)
    if isinstance(value, dict):
        empty = all(item is None or item == [] for item in value.values())
    else:
        empty = value is None or value == []
    if not empty:
        raise BodyError(
            UNSUPPORTED_CONTENT,
            (*path, key),
            "log probabilities repeat the answer token by token and cannot be inspected",
        )


RESPONSE_ROUTES: Final[Mapping[str, AnswerAdapter]] = MappingProxyType(
    {
        "/v1/chat/completions": OpenAIChatAnswer(),
        "/v1/responses": OpenAIResponsesAnswer(),
        "/v1/messages": AnthropicMessagesAnswer(),
    }
)
ERROR_ANSWER: Final = ErrorAnswer()


# ---------------------------------------------------------------------------------- the step


class ResponseRefused(Exception):
    """The answer must not reach the client: HTTP ``status``, stable ``reason``, a message, and
    the policy ``outcome`` when one was reached (for the audit line)."""

    def __init__(
        self, status: int, reason: str, message: str, outcome: PolicyOutcome | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.outcome = outcome


@dataclass(frozen=True)
class InspectedResponse:
    """What the client gets: ``payload`` (the upstream's bytes unless edited), ``headers`` to
    add, and what the audit learns (``outcome``, None when there was no text; ``plugins``)."""

    payload: bytes
    outcome: PolicyOutcome | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    plugins: tuple[str, ...] = ()


async def inspect_response(
    route: str,
    status: int,
    payload: bytes,
    *,
    encoding: str,
    plugins: PluginHost,
    policy: Policy,
    apply: ApplyFn,
) -> InspectedResponse:
    """Inspect one non-streamed answer (see the module docstring); raises
    :class:`ResponseRefused` when it must not be forwarded."""
    if not payload.strip():
        return InspectedResponse(payload)
    if encoding.strip().lower() not in ("", "identity"):
        raise _uninspectable("the answer is compressed")
    try:
        body = json.loads(payload, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _uninspectable("the answer is not valid JSON") from None
    adapter = RESPONSE_ROUTES[route] if 200 <= status < 300 else ERROR_ANSWER
    try:
        extraction = adapter.extract(body)
    except BodyError as exc:
        raise _uninspectable(f"{exc.path}: {exc.detail}") from None
    texts = extraction.texts
    if not texts:
        return InspectedResponse(payload)
    if not _encodable(texts):
        raise _uninspectable("the answer's text contains an unpaired surrogate")
    try:
        found = await plugins.inspect(RequestView("POST", route, segments=tuple(texts)))
    except SandboxError as exc:
        raise ResponseRefused(
            503, "filter-unavailable", f"a filter could not inspect the answer ({exc.reason})"
        ) from None
    used = tuple(dict.fromkeys(plugin for plugin, _ in found))
    outcome = decide(policy, route, [detection for _, detection in found], extraction.lengths)
    if outcome.blocked:
        raise ResponseRefused(
            502, f"response-{outcome.reason}", _withheld_message(outcome), outcome
        )
    headers = {}
    if outcome.annotate and outcome.counts:
        headers[DETECTIONS_HEADER] = ",".join(sorted({c.type for c in outcome.counts}))
    if outcome.edits:
        edited = await apply(adapter, body, extraction, outcome)
        try:
            payload = json.dumps(edited, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:
            raise _uninspectable("the answer contains an unpaired surrogate") from None
    return InspectedResponse(payload, outcome, headers, used)


def response_audit_fields(outcome: PolicyOutcome | None) -> dict[str, dict[str, Any]]:
    """``response_detections`` (type -> count) and ``response_actions`` (type -> the action
    carried out, ``allow`` when only reported) for the request's audit line; never text."""
    counts: dict[str, int] = {}
    actions: dict[str, str] = {}
    for count in outcome.counts if outcome else ():
        counts[count.type] = counts.get(count.type, 0) + count.count
        actions[count.type] = count.action.value if count.applied else "allow"
    return {"response_detections": counts, "response_actions": actions}


def _uninspectable(detail: str) -> ResponseRefused:
    return ResponseRefused(
        502,
        UNINSPECTABLE,
        f"the model API's answer cannot be inspected, so it is withheld: {detail}",
    )


def _withheld_message(outcome: PolicyOutcome) -> str:
    kinds = sorted({s.type for s in outcome.spans if s.action.value == "block"})
    return "the model's answer was withheld: it contains " + ", ".join(
        kinds or ["data that must not leave"]
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _encodable(texts: list[str]) -> bool:
    try:
        for text in texts:
            text.encode()
    except UnicodeEncodeError:
        return False
    return True
