"""Request adapters: one per model API shape, and the one table that maps routes to them.

Each adapter's ``extract(body, options)`` returns an :class:`Extraction` (ordered text segments,
each with its JSON path, plus ``model`` and ``stream``) or raises :class:`BodyError` with a stable
``reason`` (``invalid-body``, ``unsupported-content``, ``body-too-large``) and the JSON ``path`` of
the offending field. ``apply(body, edits, extraction)`` returns a new body with the edited
segments written back and everything else equal. What each adapter scans, and what it leaves
alone (images, audio, files, signed reasoning), is listed in its module docstring.

Rules enforced here: a route is served by exactly the adapter in :data:`ROUTES`, matched on the
exact normalised path (no prefixes, no trailing slashes); anything else has no adapter.

Example::

    >>> adapter_for("/v1/messages").name
    'anthropic-messages'
    >>> adapter_for("/v1/messages/") is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from .anthropic_messages import ANTHROPIC_MESSAGES, AnthropicMessagesAdapter
from .base import (
    BODY_TOO_LARGE,
    EMBEDDED_JSON,
    INVALID_BODY,
    UNSUPPORTED_CONTENT,
    BaseAdapter,
    BodyError,
    Edit,
    Extraction,
    ExtractOptions,
    Path,
    Segment,
    apply_edits,
    format_path,
)
from .openai_chat import OPENAI_CHAT, OpenAIChatAdapter
from .openai_responses import OPENAI_RESPONSES, OpenAIResponsesAdapter

__all__ = [
    "ANTHROPIC_MESSAGES",
    "BODY_TOO_LARGE",
    "EMBEDDED_JSON",
    "INVALID_BODY",
    "OPENAI_CHAT",
    "OPENAI_RESPONSES",
    "ROUTES",
    "UNSUPPORTED_CONTENT",
    "AnthropicMessagesAdapter",
    "BaseAdapter",
    "BodyError",
    "Edit",
    "ExtractOptions",
    "Extraction",
    "OpenAIChatAdapter",
    "OpenAIResponsesAdapter",
    "Path",
    "Segment",
    "adapter_for",
    "apply_edits",
    "format_path",
]

ROUTES: Final[Mapping[str, BaseAdapter]] = MappingProxyType(
    {
        "/v1/chat/completions": OPENAI_CHAT,
        "/v1/responses": OPENAI_RESPONSES,
        "/v1/messages": ANTHROPIC_MESSAGES,
    }
)


def adapter_for(route: str) -> BaseAdapter | None:
    """The adapter for an already normalised request path, or None."""
    return ROUTES.get(route)
