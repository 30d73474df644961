"""What every request adapter shares: segments, JSON paths, refusals, limits and write-back.

An adapter turns one API shape's JSON body into an ordered list of text *segments* (what filter
plugins scan) and writes edited segment text back into a *new* body. This module holds the parts
that do not depend on the API shape.

Rules enforced here:

* A segment is a JSON string leaf (or, inside embedded JSON values such as tool arguments, a number
  leaf, which becomes a string when edited). Empty strings are not segments: nothing to scan.
* Known fields with the wrong JSON type are refused with :class:`BodyError` reason
  ``invalid-body`` and the JSON path of the field (``$.messages[2].content``).
* Content parts the adapter does not understand are refused with reason ``unsupported-content``
  (default) rather than forwarded unscanned; ``ExtractOptions(unknown_parts="pass")`` forwards them.
* At most ``max_segments`` segments, ``max_text_chars`` characters in total and ``max_depth``
  levels of embedded JSON; beyond that, reason ``body-too-large``.
* A string that holds JSON (OpenAI ``function.arguments``) is parsed and its leaves scanned, so an
  escape such as ``\\u0040`` cannot hide an email; if it is not strict JSON (or has duplicate keys,
  which parsers resolve differently) the raw string is scanned as one segment instead.
* Write-back never mutates the input: containers on an edited path are copied, everything else is
  shared with the input body (treat both as read-only). Only edited embedded JSON is re-serialised.

Example::

    >>> from haechi.host.gateway.adapters import ROUTES, Edit
    >>> adapter = ROUTES["/v1/chat/completions"]
    >>> body = {"model": "m", "messages": [{"role": "user", "content": "mail a@b.io"}]}
    >>> ex = adapter.extract(body)
    >>> [(s.text, format_path(s.path)) for s in ex.segments]
    [('mail a@b.io', '$.messages[0].content')]
    >>> adapter.apply(body, {0: [Edit(5, 11, "[REDACTED:email]")]}, ex)["messages"][0]["content"]
    'mail [REDACTED:email]'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "BODY_TOO_LARGE",
    "EMBEDDED_JSON",
    "INVALID_BODY",
    "UNSUPPORTED_CONTENT",
    "BaseAdapter",
    "BodyError",
    "Collector",
    "Edit",
    "ExtractOptions",
    "Extraction",
    "Path",
    "Segment",
    "Step",
    "apply_edits",
    "format_path",
]

INVALID_BODY: Final = "invalid-body"
BODY_TOO_LARGE: Final = "body-too-large"
UNSUPPORTED_CONTENT: Final = "unsupported-content"


class _Embedded:
    """Path step meaning "the string here is JSON text; continue inside its parsed value"."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "EMBEDDED_JSON"


EMBEDDED_JSON: Final = _Embedded()
Step = str | int | _Embedded
Path = tuple[Step, ...]
ROOT: Final[Path] = ()

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def format_path(path: Path) -> str:
    """``("messages", 0, "content")`` -> ``$.messages[0].content``; embedded JSON is ``<json>``."""
    out = ["$"]
    for step in path:
        if isinstance(step, _Embedded):
            out.append("<json>")
        elif isinstance(step, int):
            out.append(f"[{step}]")
        elif _IDENT.match(step):
            out.append(f".{step}")
        else:
            out.append(f"[{json.dumps(step, ensure_ascii=True)}]")
    return "".join(out)


class BodyError(ValueError):
    """A request body the gateway refuses; ``reason`` is a stable code, ``path`` a JSON path."""

    def __init__(self, reason: str, path: Path, detail: str) -> None:
        self.reason = reason
        self.path = format_path(path)
        self.detail = detail
        super().__init__(f"{self.path}: {detail}")


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    """Limits on what one request may ask the filters to scan."""

    max_segments: int = 4096
    max_text_chars: int = 1 << 20
    max_depth: int = 32
    unknown_parts: Literal["refuse", "pass"] = "refuse"


DEFAULT_OPTIONS: Final = ExtractOptions()


@dataclass(frozen=True, slots=True)
class Segment:
    """One scanned text: ``text`` as found at ``path`` in the body, sent by ``role``."""

    text: str
    path: Path
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Extraction:
    """The ordered segments of one body, plus the fields routing and policy need."""

    segments: tuple[Segment, ...]
    model: str | None
    stream: bool

    @property
    def texts(self) -> list[str]:
        """What filter plugins receive: ``inspect(segments=...)``."""
        return [segment.text for segment in self.segments]

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(len(segment.text) for segment in self.segments)


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace ``[start, end)`` of a segment's original text with ``replacement``."""

    start: int
    end: int
    replacement: str


# ---------------------------------------------------------------------------------- reading


def describe(value: object) -> str:
    """The JSON type name of a parsed value, for error messages (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def wrong_type(path: Path, expected: str, value: object) -> BodyError:
    return BodyError(INVALID_BODY, path, f"must be {expected}, not {describe(value)}")


def as_object(value: object, path: Path) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise wrong_type(path, "an object", value)
    return value


def as_array(value: object, path: Path) -> Sequence[object]:
    if not isinstance(value, list):
        raise wrong_type(path, "an array", value)
    return value


def as_string(value: object, path: Path) -> str:
    if not isinstance(value, str):
        raise wrong_type(path, "a string", value)
    return value


def optional_string(obj: Mapping[str, object], key: str, path: Path) -> str | None:
    """``obj[key]`` if it is a string, None if absent or null, else a refusal."""
    value = obj.get(key)
    return None if value is None else as_string(value, (*path, key))


def optional_object(obj: Mapping[str, object], key: str, path: Path) -> Mapping[str, object] | None:
    value = obj.get(key)
    return None if value is None else as_object(value, (*path, key))


def optional_array(obj: Mapping[str, object], key: str, path: Path) -> Sequence[object] | None:
    value = obj.get(key)
    return None if value is None else as_array(value, (*path, key))


def required(obj: Mapping[str, object], key: str, path: Path) -> object:
    if key not in obj:
        raise BodyError(INVALID_BODY, (*path, key), "is required")
    return obj[key]


def part_type(part: Mapping[str, object], path: Path) -> str:
    """The required ``type`` of a content part or input item."""
    return as_string(required(part, "type", path), (*path, "type"))


def typed_items(
    items: Sequence[object], path: Path
) -> Iterator[tuple[Mapping[str, object], str, Path]]:
    """Each item of an array of typed objects (``path`` is the array's): the item, its
    required ``type`` and its own path, refusing the first item that is not one."""
    for index, raw in enumerate(items):
        item_path: Path = (*path, index)
        item = as_object(raw, item_path)
        yield item, part_type(item, item_path), item_path


class _Unparseable:
    __slots__ = ()


_UNPARSEABLE: Final = _Unparseable()


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # Parsers disagree on which duplicate wins; scanning one and forwarding both would let
        # the other through unscanned, so the caller falls back to scanning the raw text.
        raise ValueError("duplicate key")
    return result


def parse_embedded(text: str) -> object:
    """Strict JSON inside a string field, or ``_UNPARSEABLE``."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _UNPARSEABLE


def dump_embedded(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------------- collecting


class Collector:
    """Accumulates segments in body order and enforces the limits while doing so."""

    def __init__(self, options: ExtractOptions) -> None:
        self.options = options
        self.segments: list[Segment] = []
        self._chars = 0

    def text(self, text: str, path: Path, role: str | None) -> None:
        if not text:
            return
        if len(self.segments) >= self.options.max_segments:
            raise BodyError(
                BODY_TOO_LARGE, path, f"more than {self.options.max_segments} text segments"
            )
        self._chars += len(text)
        if self._chars > self.options.max_text_chars:
            raise BodyError(
                BODY_TOO_LARGE, path, f"more than {self.options.max_text_chars} characters of text"
            )
        self.segments.append(Segment(text, path, role))

    def field(self, obj: Mapping[str, object], key: str, path: Path, role: str | None) -> None:
        """Scan ``obj[key]`` if present: it must be a string (or null)."""
        text = optional_string(obj, key, path)
        if text is not None:
            self.text(text, (*path, key), role)

    def required_field(
        self, obj: Mapping[str, object], key: str, path: Path, role: str | None
    ) -> None:
        """Scan ``obj[key]``, which must be present and a string."""
        self.text(as_string(required(obj, key, path), (*path, key)), (*path, key), role)

    def unknown(self, label: str, type_name: str, path: Path) -> None:
        """A part or item type this adapter does not know: refuse unless configured to pass."""
        if self.options.unknown_parts == "refuse":
            raise BodyError(
                UNSUPPORTED_CONTENT,
                (*path, "type"),
                f"{label} type {json.dumps(type_name)} is not understood by the gateway, "
                "so its text cannot be scanned",
            )

    def embedded(self, text: str, path: Path, role: str | None) -> None:
        """A string that holds JSON (tool-call arguments): scan its leaves, else the raw text."""
        parsed = parse_embedded(text)
        if isinstance(parsed, _Unparseable):
            self.text(text, path, role)
        else:
            self.json_value(parsed, (*path, EMBEDDED_JSON), role, 0)

    def json_value(self, value: object, path: Path, role: str | None, depth: int) -> None:
        """Every string and number leaf of an arbitrary JSON value, in document order."""
        if depth > self.options.max_depth:
            raise BodyError(BODY_TOO_LARGE, path, f"nested deeper than {self.options.max_depth}")
        if isinstance(value, str):
            self.text(value, path, role)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            # A card number sent as a JSON number is still a card number.
            if not (isinstance(value, float) and not math.isfinite(value)):
                self.text(json.dumps(value), path, role)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.json_value(item, (*path, key), role, depth + 1)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.json_value(item, (*path, index), role, depth + 1)


# ---------------------------------------------------------------------------------- adapters


class BaseAdapter:
    """One API shape. Subclasses implement :meth:`walk`; the rest is shared."""

    name: str = "base"

    def extract(
        self, body: Mapping[str, object], options: ExtractOptions = DEFAULT_OPTIONS
    ) -> Extraction:
        """The body's segments in order, its ``model`` and ``stream``; refuses bad shapes."""
        root = as_object(body, ROOT)
        model = optional_string(root, "model", ROOT)
        stream = root.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise wrong_type(("stream",), "a boolean", stream)
        out = Collector(options)
        self.walk(root, out)
        return Extraction(tuple(out.segments), model, bool(stream))

    def walk(self, body: Mapping[str, object], out: Collector) -> None:
        raise NotImplementedError

    def apply(
        self,
        body: Mapping[str, object],
        edits: Mapping[int, Sequence[Edit]],
        extraction: Extraction | None = None,
    ) -> dict[str, object]:
        """A new body with ``edits`` (segment index -> edits) written back.

        ``extraction`` is the result of :meth:`extract` on this very body; it is recomputed
        when not given.
        """
        if extraction is None:
            extraction = self.extract(body)
        return apply_edits(body, extraction, edits)


# ---------------------------------------------------------------------------------- write-back


@dataclass(frozen=True, slots=True)
class _Leaf:
    old: str
    new: str


_Trie = dict[Step, "_Trie | _Leaf"]


def splice(text: str, edits: Sequence[Edit]) -> str:
    """Apply non-overlapping edits, all computed against the original ``text``."""
    pieces: list[str] = []
    cursor = 0
    for edit in sorted(edits, key=lambda e: (e.start, e.end)):
        if not 0 <= edit.start <= edit.end <= len(text):
            raise ValueError(f"edit [{edit.start}, {edit.end}) outside a {len(text)}-char segment")
        if edit.start < cursor:
            raise ValueError(f"edit [{edit.start}, {edit.end}) overlaps the previous edit")
        pieces += (text[cursor : edit.start], edit.replacement)
        cursor = edit.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def apply_edits(
    body: Mapping[str, object], extraction: Extraction, edits: Mapping[int, Sequence[Edit]]
) -> dict[str, object]:
    """Write edited segments back into a copy of ``body`` (see the module docstring)."""
    trie: _Trie = {}
    for index, segment_edits in edits.items():
        if not segment_edits:
            continue
        if not 0 <= index < len(extraction.segments):
            raise ValueError(f"edit for segment {index}, but there are {len(extraction.segments)}")
        segment = extraction.segments[index]
        _insert(trie, segment.path, _Leaf(segment.text, splice(segment.text, segment_edits)))
    rebuilt = _rebuild(body, trie, ROOT) if trie else dict(body)
    assert isinstance(rebuilt, dict)
    return rebuilt


def _insert(trie: _Trie, path: Path, leaf: _Leaf) -> None:
    node = trie
    for step in path[:-1]:
        child = node.setdefault(step, {})
        assert isinstance(child, dict)  # two segments never share a path prefix with a leaf
        node = child
    node[path[-1]] = leaf


def _rebuild(node: object, trie: _Trie | _Leaf, path: Path) -> object:
    if isinstance(trie, _Leaf):
        current = node if isinstance(node, str) else json.dumps(node)
        if current != trie.old:
            raise ValueError(f"{format_path(path)}: the extraction does not match this body")
        return trie.new
    if EMBEDDED_JSON in trie:
        assert isinstance(node, str)
        parsed = parse_embedded(node)
        if isinstance(parsed, _Unparseable):
            raise ValueError(f"{format_path(path)}: the extraction does not match this body")
        return dump_embedded(_rebuild(parsed, trie[EMBEDDED_JSON], (*path, EMBEDDED_JSON)))
    copy: dict[str, object] | list[object]
    if isinstance(node, dict):
        copy = dict(node)
        for step, sub in trie.items():
            assert isinstance(step, str)
            copy[step] = _rebuild(node[step], sub, (*path, step))
    elif isinstance(node, list):
        copy = list(node)
        for step, sub in trie.items():
            assert isinstance(step, int)
            copy[step] = _rebuild(node[step], sub, (*path, step))
    else:
        raise ValueError(f"{format_path(path)}: the extraction does not match this body")
    return copy
