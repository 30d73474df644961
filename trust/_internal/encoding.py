"""Strict encodings: canonical JSON, strict JSON input, strict base64, RFC 3339 times.

Every signed document in haechi has exactly one accepted byte spelling. A decoder that
tolerated a second spelling (URL-safe base64, duplicate JSON keys, a trailing comma of
whitespace, a timestamp without a zone) would let two different byte strings carry the same
meaning, which is how signature-malleability and parser-differential bugs start.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import tomllib
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DecodeError",
    "b64decode_strict",
    "b64encode",
    "canonical_json",
    "format_time",
    "load_toml",
    "parse_time",
    "printable",
    "strict_json_loads",
]


class DecodeError(ValueError):
    """Input bytes are not in the one accepted spelling."""


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped.

    Names and keys in error messages come from untrusted files; printed raw, an escape
    sequence in a key could redraw the terminal (a fake "ACCEPTED" line).
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, integers only.

    Floats are refused because their text form is not canonical across languages; no signed
    document needs them.
    """
    _refuse_floats(value)
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise DecodeError("a string contains a lone UTF-16 surrogate") from None


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise DecodeError("floating-point numbers are not allowed in signed documents")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DecodeError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise DecodeError(f"{name} is not valid JSON")


def _refuse_surrogates(value: Any) -> None:
    # A "\ud800" escape decodes to a lone surrogate: valid JSON, but no UTF-8 spelling, so it
    # could never be re-encoded canonically (nor printed safely).
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise DecodeError("a string contains a lone UTF-16 surrogate (\\ud800-\\udfff)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_surrogates(key)
            _refuse_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_surrogates(item)


_SURROGATE = re.compile("[\ud800-\udfff]")


def strict_json_loads(data: bytes, *, allow_final_newline: bool = True) -> Any:
    """Parse JSON that is valid UTF-8, has no duplicate keys, no NaN and nothing after it.

    One final ``\\n`` is tolerated because editors and our own writers add it; anything else
    after the document is trailing data.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        raise DecodeError("starts with a UTF-8 byte-order mark; save the file without it")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not valid UTF-8 at byte {exc.start}") from None
    if allow_final_newline and text.endswith("\n"):
        text = text[:-1]
    decoder = json.JSONDecoder(
        object_pairs_hook=_no_duplicate_keys, parse_constant=_refuse_constant
    )
    start = len(text) - len(text.lstrip(" \t\r\n"))
    try:
        value, end = decoder.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise DecodeError("JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise DecodeError(f"not valid JSON: {exc}") from None
    if end != len(text):
        raise DecodeError(f"trailing data after the JSON document at offset {end}")
    if "\\u" in text:
        _refuse_surrogates(value)
    return value


def load_toml(data: bytes) -> dict[str, Any]:
    """Parse UTF-8 TOML; every failure, including absurd nesting, is a DecodeError."""
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not valid UTF-8 at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DecodeError(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise DecodeError("not valid TOML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise DecodeError(f"not valid TOML: {exc}") from None


_B64_ALPHABET = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str, *, length: int | None = None) -> bytes:
    """Standard alphabet, padded, canonical (re-encoding gives the same text)."""
    if not isinstance(text, str) or not _B64_ALPHABET.fullmatch(text) or len(text) % 4:
        raise DecodeError("not standard padded base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("not standard padded base64") from None
    if b64encode(raw) != text:
        raise DecodeError("non-canonical base64 (unused bits are set)")
    if length is not None and len(raw) != length:
        raise DecodeError(f"decodes to {len(raw)} bytes, expected {length}")
    return raw


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)


def parse_time(text: str) -> datetime:
    """An RFC 3339 date-time with an explicit zone, returned in UTC.

    A time without a zone is refused: "local time" differs between a laptop and a CI runner.
    """
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise DecodeError(
            f"{text!r} is not an RFC 3339 time with a zone (e.g. 2026-01-31T12:00:00Z)"
        )
    normalised = text.upper().replace("Z", "+00:00")
    fraction = re.search(r"\.([0-9]+)", normalised)
    if fraction and len(fraction.group(1)) > 6:
        normalised = normalised.replace(fraction.group(0), "." + fraction.group(1)[:6])
    try:
        return datetime.fromisoformat(normalised).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise DecodeError(f"{text!r} is not a valid time: {exc}") from None


def format_time(moment: datetime) -> str:
    """The one spelling we write: UTC, whole seconds, ``Z``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
