"""The audit event schema: an allow-list of fields per event kind, so plaintext cannot slip in.

Rules this module enforces (every refusal is an :class:`AuditError` with a stable ``reason``
and a message naming the field):

1. The kind must be registered in :data:`SCHEMAS` (``unknown-kind``). Kinds the log writes
   itself (``rotate``, ``recovered``) are refused from callers (``reserved-kind``).
2. Every field must be declared for that kind (``field-not-allowed``), required fields must
   be present (``field-missing``), and ``None`` means "absent" for optional fields.
3. Every value must pass its field's rule (``field-invalid``). There is no free-form text
   rule: strings are codes (``[a-z0-9:_.-]{1,64}``), hex digests, ids, model names or
   normalised paths, each with a bounded length. ``bool`` is not accepted as an ``int``.
4. Envelope names (``seq``, ``ts``, ``kind``, ``prev``, ``hash``) can never be fields.

Adding a kind is one entry in ``_KINDS`` below; the writer and ``verify`` read
:data:`SCHEMAS`, and a test checks that docs/reference/audit.md lists every kind and field.

Example::

    >>> from haechi.host.audit.schema import validate
    >>> event = validate("plugin", {"plugin": "pii-filter", "event": "spawn", "pid": 4242})
    >>> event.fields
    (('event', 'spawn'), ('pid', 4242), ('plugin', 'pii-filter'))
    >>> validate("plugin", {"plugin": "pii-filter", "event": "spawn", "message": "hi"})
    Traceback (most recent call last):
    ...
    haechi.host.audit.schema.AuditError: field-not-allowed: plugin event has no field 'message'
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Protocol

__all__ = [
    "ENVELOPE",
    "METHODS",
    "SCHEMAS",
    "AuditError",
    "EventSchema",
    "FieldSpec",
    "JsonValue",
    "ValidEvent",
    "principal_hash",
    "validate",
]

JsonValue = str | int | float | bool | tuple["JsonValue", ...] | Mapping[str, "JsonValue"]

ENVELOPE: Final = ("seq", "ts", "kind", "prev", "hash")


class AuditError(Exception):
    """Any refusal by the audit package. ``reason`` is stable; ``field`` names the culprit."""

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.field = field


# --- value rules ---------------------------------------------------------------------------


class Rule(Protocol):
    """Checks one value; returns it (possibly normalised, e.g. list -> tuple) or raises."""

    def check(self, name: str, value: object) -> JsonValue: ...

    @property
    def describe(self) -> str: ...


def _invalid(name: str, value: object, expected: str) -> AuditError:
    # Never echo the refused value: it may be the very plaintext the schema keeps out.
    return AuditError(
        "field-invalid", f"{name} must be {expected} (got {type(value).__name__})", name
    )


@dataclass(frozen=True)
class Pattern:
    """A string matching ``regex`` in full (ASCII only, bounded length by the regex)."""

    regex: re.Pattern[str]
    describe: str

    def check(self, name: str, value: object) -> JsonValue:
        if not isinstance(value, str) or not self.regex.fullmatch(value):
            raise _invalid(name, value, self.describe)
        return value


@dataclass(frozen=True)
class OneOf:
    values: frozenset[str]

    @property
    def describe(self) -> str:
        return "one of " + ", ".join(sorted(self.values))

    def check(self, name: str, value: object) -> JsonValue:
        if not isinstance(value, str) or value not in self.values:
            raise _invalid(name, value, self.describe)
        return value


@dataclass(frozen=True)
class Int:
    low: int
    high: int

    @property
    def describe(self) -> str:
        return f"an integer in [{self.low}, {self.high}]"

    def check(self, name: str, value: object) -> JsonValue:
        # bool is an int subclass; True as a count is a bug, not a 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(name, value, self.describe)
        if not self.low <= value <= self.high:
            raise _invalid(name, value, self.describe)
        return value


@dataclass(frozen=True)
class Number:
    """A finite number, stored rounded to 3 decimals so lines stay short and stable."""

    low: float
    high: float

    @property
    def describe(self) -> str:
        return f"a finite number in [{self.low:g}, {self.high:g}]"

    def check(self, name: str, value: object) -> JsonValue:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(name, value, self.describe)
        number = float(value)
        if not math.isfinite(number) or not self.low <= number <= self.high:
            raise _invalid(name, value, self.describe)
        return round(number, 3)


@dataclass(frozen=True)
class Flag:
    describe: str = "true or false"

    def check(self, name: str, value: object) -> JsonValue:
        if not isinstance(value, bool):
            raise _invalid(name, value, self.describe)
        return value


@dataclass(frozen=True)
class MapOf:
    """An object with rule-checked keys and values, at most ``limit`` entries."""

    key: Pattern
    value: Rule
    limit: int = 64

    @property
    def describe(self) -> str:
        return f"an object of up to {self.limit} {self.key.describe} -> {self.value.describe}"

    def check(self, name: str, value: object) -> JsonValue:
        if not isinstance(value, Mapping) or len(value) > self.limit:
            raise _invalid(name, value, self.describe)
        out: dict[str, JsonValue] = {}
        for key, item in value.items():
            self.key.check(f"{name} key", key)
            out[key] = self.value.check(f"{name}.{key}", item)
        return MappingProxyType(out)


@dataclass(frozen=True)
class ListOf:
    item: Rule
    limit: int = 32

    @property
    def describe(self) -> str:
        return f"a list of up to {self.limit} {self.item.describe}"

    def check(self, name: str, value: object) -> JsonValue:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise _invalid(name, value, self.describe)
        if len(value) > self.limit:
            raise _invalid(name, value, self.describe)
        return tuple(self.item.check(f"{name}[{i}]", item) for i, item in enumerate(value))


def _pattern(regex: str, describe: str) -> Pattern:
    return Pattern(re.compile(regex, re.ASCII), describe)


CODE: Final = _pattern(r"[a-z0-9:_.-]{1,64}", "a code matching [a-z0-9:_.-]{1,64}")
DIGEST: Final = _pattern(r"[0-9a-f]{64}", "a sha256 digest (64 lowercase hex)")
PRINCIPAL: Final = _pattern(r"[0-9a-f]{16,64}", "a principal hash (16-64 lowercase hex)")
REQUEST_ID: Final = _pattern(r"[0-9a-f][0-9a-f-]{7,63}", "a request id (8-64 hex or uuid)")
PLUGIN_ID: Final = _pattern(r"[a-z0-9]+(?:[._-][a-z0-9]+)*", "a plugin id")
VERSION: Final = _pattern(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,63}", "a version string")
MODEL: Final = _pattern(r"[A-Za-z0-9][A-Za-z0-9:_./-]{0,127}", "a model name")
FILE_NAME: Final = _pattern(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", "a file name")
# A normalised path: absolute, no query or fragment, no percent-escapes, no empty, "." or
# ".." segments. "@" and spaces are excluded, so an e-mail in a path cannot be logged.
ROUTE: Final = _pattern(
    r"/(?:(?!\.\.?(?:/|$))[A-Za-z0-9._~-]{1,128}(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._~-]{1,128}){0,15})?",
    "a normalised path without query string",
)
COUNT: Final = Int(0, 2**53)
PID: Final = Int(1, 2**31)
HTTP_STATUS: Final = Int(100, 599)
ACTION: Final = OneOf(frozenset({"allow", "mask", "redact", "tokenize", "encrypt", "block"}))


def principal_hash(key: bytes, principal: str) -> str:
    """The audit form of a principal: HMAC-SHA256 under a dedicated audit key, 32 hex.

    Keyed, because principals (e-mails, client names, key ids) are low-entropy: a plain hash
    prefix is reversed by hashing a list of candidates. 128 bits keep collisions negligible.
    """
    if len(key) < 16:
        raise AuditError("key-too-short", "the principal key must have at least 16 bytes")
    return hmac.new(key, principal.encode(), hashlib.sha256).hexdigest()[:32]


# --- kinds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    name: str
    rule: Rule
    required: bool = False


@dataclass(frozen=True)
class EventSchema:
    kind: str
    fields: tuple[FieldSpec, ...]
    internal: bool = False  # written by the log itself, refused from callers
    # By name: every audited request looks up each of its fields (a scan cost ~10 µs a line).
    _by_name: Mapping[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", MappingProxyType({f.name: f for f in self.fields}))

    def spec(self, name: str) -> FieldSpec | None:
        return self._by_name.get(name)


def _req(name: str, rule: Rule) -> FieldSpec:
    return FieldSpec(name, rule, required=True)


def _opt(name: str, rule: Rule) -> FieldSpec:
    return FieldSpec(name, rule)


# OTHER: any other method, and requests whose head could not be parsed.
METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OTHER"})

_KINDS: Final = (
    EventSchema(
        "request",
        (
            _req("request_id", REQUEST_ID),
            _req("route", ROUTE),
            _req("method", OneOf(METHODS)),
            _req("status", HTTP_STATUS),
            _opt("reason", CODE),
            _opt("principal", PRINCIPAL),
            _opt("model", MODEL),
            _opt("mode", OneOf(frozenset({"dry-run", "report", "enforce"}))),
            _opt("detections", MapOf(CODE, COUNT)),
            _opt("actions", MapOf(CODE, ACTION)),
            _opt("upstream_status", HTTP_STATUS),
            _opt("latency_ms", Number(0.0, 86_400_000.0)),
            _opt("plugins", ListOf(PLUGIN_ID)),
            _opt("stream", Flag()),
            _opt("response_detections", MapOf(CODE, COUNT)),
            _opt("response_actions", MapOf(CODE, ACTION)),
        ),
    ),
    EventSchema(
        "detokenize",
        (
            _req("principal", PRINCIPAL),
            _req("token_type", CODE),
            _req("outcome", OneOf(frozenset({"revealed", "denied", "not-found", "failed"}))),
            _opt("reason", CODE),
            _opt("request_id", REQUEST_ID),
        ),
    ),
    EventSchema(
        "plugin",
        (
            _req("plugin", PLUGIN_ID),
            _req(
                "event",
                OneOf(
                    frozenset(
                        {
                            "load-accepted",
                            "load-refused",
                            "spawn",
                            "spawn-failed",
                            "refused",
                            "failure",
                            "retire",
                            "teardown-failed",
                            "exit",
                            "crash",
                            "kill",
                            "breaker-open",
                            "breaker-half-open",
                            "breaker-closed",
                            "quarantine",
                            "revoked",
                            "swapped",
                        }
                    )
                ),
            ),
            _opt("version", VERSION),
            _opt("reason", CODE),
            _opt("pid", PID),
            _opt("digest", DIGEST),
        ),
    ),
    EventSchema(
        "key",
        (
            _req("key", CODE),
            _req(
                "event",
                OneOf(frozenset({"create", "rotate", "budget-warning", "budget-exhausted"})),
            ),
            _opt("version", Int(0, 2**31)),
            _opt("seals", COUNT),
            _opt("reason", CODE),
        ),
    ),
    EventSchema(
        "config",
        (
            _req("event", OneOf(frozenset({"loaded", "reloaded", "refused"}))),
            _opt("digest", DIGEST),
            _opt("reason", CODE),
        ),
    ),
    EventSchema(
        "start",
        (
            _req("pid", PID),
            _opt("version", VERSION),
            _opt("workers", Int(1, 1024)),
            _opt("config_digest", DIGEST),
        ),
    ),
    EventSchema("stop", (_req("pid", PID), _opt("reason", CODE))),
    EventSchema(
        "trust",
        (
            _req("event", OneOf(frozenset({"applied", "refused"}))),
            _req("version", Int(0, 2**53)),
            _opt("digest", DIGEST),
            _opt("reason", CODE),
        ),
    ),
    EventSchema(
        "rotate",
        (_req("previous_file", FILE_NAME), _req("previous_hash", DIGEST)),
        internal=True,
    ),
    EventSchema(
        "recovered",
        (_req("dropped_bytes", Int(1, 2**53)), _req("reason", CODE)),
        internal=True,
    ),
)

SCHEMAS: Final[Mapping[str, EventSchema]] = MappingProxyType({s.kind: s for s in _KINDS})


@dataclass(frozen=True)
class ValidEvent:
    """An event that passed its schema; ``fields`` are sorted by name, absent ones dropped."""

    kind: str
    fields: tuple[tuple[str, JsonValue], ...]


def validate(kind: str, fields: Mapping[str, object], *, internal: bool = False) -> ValidEvent:
    """Check ``fields`` against the schema of ``kind``; raise :class:`AuditError` if refused.

    ``internal=True`` is for the log's own kinds (and for ``verify``, which reads them back).
    """
    schema = SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise AuditError("unknown-kind", f"{str(kind)[:64]!r} is not an audit event kind", "kind")
    if schema.internal and not internal:
        raise AuditError("reserved-kind", f"{kind} events are written by the log itself", "kind")
    checked: dict[str, JsonValue] = {}
    for name, value in fields.items():
        spec = schema.spec(name)
        if spec is None:
            raise AuditError(
                "field-not-allowed", f"{kind} event has no field {str(name)[:64]!r}", name
            )
        if value is not None:
            checked[name] = spec.rule.check(name, value)
    for spec in schema.fields:
        if spec.required and spec.name not in checked:
            raise AuditError("field-missing", f"{kind} event needs {spec.name}", spec.name)
    return ValidEvent(kind, tuple(sorted(checked.items())))
