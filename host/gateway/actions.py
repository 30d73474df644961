"""Turn a :class:`~.policy.PolicyOutcome` into adapter edits: the replacement text per span.

Rules enforced here:

* Replacements are computed from the *original* segment text at the span's offsets (Python
  string indices, as filter plugins report them), so edits never shift each other.
* Only spans the outcome marks ``applied`` are rewritten; ``allow`` leaves the text; a blocked
  outcome yields no edits (the request is refused, nothing is forwarded).
* ``redact`` -> ``[REDACTED:<type>]``.
* ``mask`` keeps a hint and hides the rest (:func:`mask_value`): an email keeps its domain
  (``***@example.com``); an IPv4 address its first two octets (``192.168.*.*``), an IPv6 address
  its first two groups (``2001:db8:*``); anything else keeps its separators and, when it has at
  least 8 letters and digits and the last 4 of them are digits, those 4 digits
  (``**** **** **** 1111``); every other letter or digit becomes ``*``.
* ``tokenize`` -> whatever ``tokenize(type, text)`` returns, which must look like a vault token
  ``tok_<type>_<16-128 hex>``; ``encrypt`` -> whatever ``encrypt(type, text)`` returns (a sealed
  value reference), which must be 1-8192 printable ASCII characters without spaces, quotes or
  backslashes and must not contain the text (when 6 characters or longer). Either callback may be
  sync or async; each distinct ``(type, text)`` is sent to it once per request. A missing callback
  or a malformed answer is an :class:`ActionError`: the gateway fails the request rather than
  forward the text.

Example::

    >>> import asyncio
    >>> from haechi.sdk.models import Detection
    >>> from .adapters import OPENAI_CHAT
    >>> from .policy import decide, load_policy
    >>> body = {"messages": [{"role": "user", "content": "I am a@b.io, 010-1234-5678"}]}
    >>> ex = OPENAI_CHAT.extract(body)
    >>> out = decide(load_policy({}), "/v1/chat/completions",
    ...              [Detection("email", 0, 5, 11), Detection("phone", 0, 13, 26)], ex.lengths)
    >>> new = asyncio.run(apply_outcome(OPENAI_CHAT, body, ex, out))
    >>> new["messages"][0]["content"]
    'I am [REDACTED:email], ***-****-5678'
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from .adapters import BaseAdapter, Edit, Extraction
from .policy import Action, PolicyOutcome, SpanDecision

__all__ = [
    "ActionError",
    "ReplaceFn",
    "apply_outcome",
    "build_edits",
    "mask_value",
    "redact_value",
]

ReplaceFn = Callable[[str, str], str | Awaitable[str]]
"""``(type, text) -> replacement``, sync or async: the gateway's vault or crypto plugin."""

TOKEN: Final = re.compile(r"tok_[a-z0-9_.-]{1,64}_[0-9a-f]{16,128}\Z")
SEALED_REF: Final = re.compile(r"[!#-\[\]-~]{1,8192}\Z")


class ActionError(RuntimeError):
    """An action could not be carried out; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


def redact_value(type_: str) -> str:
    return f"[REDACTED:{type_}]"


def mask_value(type_: str, text: str) -> str:
    """Hide ``text`` but keep a hint (see the module docstring for the formats)."""
    if type_ == "email" and "@" in text:
        return "***@" + text.rsplit("@", 1)[1]
    if type_ in ("ipv4", "ipv6"):
        hinted = _mask_ip(text)
        if hinted is not None:
            return hinted
    return _mask_chars(text)


def _mask_ip(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None  # a plugin's span with a port or brackets: fall back to the generic mask
    if address.version == 4:
        return ".".join(text.split(".")[:2]) + ".*.*"
    groups = address.exploded.split(":")[:2]
    return ":".join(format(int(group, 16), "x") for group in groups) + ":*"


def _mask_chars(text: str) -> str:
    positions = [i for i, ch in enumerate(text) if ch.isalnum()]
    tail = positions[-4:]
    keep = set(tail) if len(positions) >= 8 and all(text[i].isdigit() for i in tail) else set()
    return "".join("*" if ch.isalnum() and i not in keep else ch for i, ch in enumerate(text))


async def build_edits(
    outcome: PolicyOutcome,
    extraction: Extraction,
    *,
    tokenize: ReplaceFn | None = None,
    encrypt: ReplaceFn | None = None,
) -> dict[int, tuple[Edit, ...]]:
    """Per segment index, the edits that carry out ``outcome`` (empty when blocked)."""
    spans = outcome.edits
    texts = [_span_text(extraction, span) for span in spans]
    replacements = await _replacements(spans, texts, tokenize, encrypt)
    edits: dict[int, list[Edit]] = {}
    for span, replacement in zip(spans, replacements, strict=True):
        edits.setdefault(span.segment, []).append(Edit(span.start, span.end, replacement))
    return {segment: tuple(items) for segment, items in edits.items()}


async def apply_outcome(
    adapter: BaseAdapter,
    body: Mapping[str, object],
    extraction: Extraction,
    outcome: PolicyOutcome,
    *,
    tokenize: ReplaceFn | None = None,
    encrypt: ReplaceFn | None = None,
) -> dict[str, object]:
    """The body to forward: ``outcome``'s edits written back by ``adapter``."""
    edits = await build_edits(outcome, extraction, tokenize=tokenize, encrypt=encrypt)
    return adapter.apply(body, edits, extraction)


def _span_text(extraction: Extraction, span: SpanDecision) -> str:
    if not 0 <= span.segment < len(extraction.segments):
        raise ValueError(f"span in segment {span.segment}, which this extraction does not have")
    text = extraction.segments[span.segment].text
    if not 0 <= span.start < span.end <= len(text):
        raise ValueError(f"span [{span.start}, {span.end}) outside segment {span.segment}")
    return text[span.start : span.end]


async def _replacements(
    spans: tuple[SpanDecision, ...],
    texts: list[str],
    tokenize: ReplaceFn | None,
    encrypt: ReplaceFn | None,
) -> list[str]:
    # One callback call per distinct value: a value repeated in a request gets one token, and the
    # vault is not asked twice.
    keys = [(span.action, span.type, text) for span, text in zip(spans, texts, strict=True)]
    pending = {key: None for key in keys if key[0] in (Action.TOKENIZE, Action.ENCRYPT)}
    calls = [_callback(action, type_, text, tokenize, encrypt) for action, type_, text in pending]
    results = dict(zip(pending, await asyncio.gather(*calls), strict=True))
    return [results.get(key) or _local(*key) for key in keys]


def _local(action: Action, type_: str, text: str) -> str:
    if action is Action.MASK:
        return mask_value(type_, text)
    if action is Action.REDACT:
        return redact_value(type_)
    raise AssertionError(f"{action} has no local replacement")  # edits exclude allow and block


async def _callback(
    action: Action,
    type_: str,
    text: str,
    tokenize: ReplaceFn | None,
    encrypt: ReplaceFn | None,
) -> str:
    function = tokenize if action is Action.TOKENIZE else encrypt
    if function is None:
        raise ActionError(f"{action.value}-unavailable", f"no {action.value} callback")
    result = function(type_, text)
    value = await result if inspect.isawaitable(result) else result
    _check_replacement(action, type_, text, value)
    assert isinstance(value, str)
    return value


def _check_replacement(action: Action, type_: str, text: str, value: object) -> None:
    """Refuse an answer that could carry the plaintext (or break the body) onwards."""
    if not isinstance(value, str):
        ok = False
    elif action is Action.TOKENIZE:
        ok = bool(TOKEN.match(value)) and value.startswith(f"tok_{type_}_")
    else:
        # Short texts can occur in a random reference by chance; long ones cannot.
        ok = bool(SEALED_REF.match(value)) and (len(text) < 6 or text not in value)
    if not ok:
        raise ActionError(
            f"bad-{action.value}-result", f"the {action.value} callback returned a malformed value"
        )
