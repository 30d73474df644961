"""The plugin manifest, ``plugin.toml``: its schema and nothing else.

Every field is required unless it has a default below, every key is known, every value has one
type. A typo is an error that names the field (``limits.timout-ms: unknown key; did you mean
'timeout-ms'?``), never a silently ignored line. Example::

    >>> m = Manifest.from_toml(b'''
    ... id = "hello-filter"
    ... version = "1.0.0"
    ... kind = "filter"
    ... entry = "plugin.py"
    ... description = "Flags the word hello"
    ... requires-host = ">=0.1"
    ... capabilities = ["request:body-text"]
    ... ''')
    >>> m.limits.timeout_ms
    1000
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ._internal.encoding import DecodeError, load_toml, printable
from ._internal.semver import SemVer
from .errors import ManifestError
from .keys import KINDS

__all__ = [
    "CAPABILITY_FORMS",
    "Limits",
    "Manifest",
    "capability_forms",
    "check_capability",
    "check_capability_name",
    "check_plugin_id",
]

MAX_MANIFEST_BYTES = 64 * 1024
MAX_DESCRIPTION = 500
MAX_CAPABILITIES = 64

# Lowercase words joined by single '.', '_' or '-': safe as a file name, a URL segment and a
# dictionary key in any language (no '__proto__', no '..', no separators), at most 64 characters.
_PLUGIN_ID = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?::[1-9]\d{0,4})?",
    re.ASCII,  # \d must not match Arabic-Indic or other Unicode digits
)
_ENTRY = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*\.py")

# Capability vocabulary (DESIGN §3). `request:*` grants are tied to the kind that needs them.
CAPABILITY_FORMS: tuple[str, ...] = (
    "request:credentials",
    "request:body-text",
    "net:fetch:<host>",
    "secrets:read:<name>",
    "keys:<name>",
    "state:kv",
)
_KIND_ONLY = {"request:credentials": "auth", "request:body-text": "filter"}


def check_plugin_id(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ManifestError("id", "must be a non-empty string")
    if len(value) > 64 or not _PLUGIN_ID.fullmatch(value):
        raise ManifestError(
            "id",
            f"{value[:80]!r} is not a plugin id: use 1-64 lowercase letters and digits, "
            "joined by single '.', '_' or '-' (e.g. 'acme-pii-filter')",
        )
    return value


def capability_forms(kind: str) -> tuple[str, ...]:
    """The capability forms a plugin of ``kind`` may declare."""
    return tuple(f for f in CAPABILITY_FORMS if _KIND_ONLY.get(f, kind) == kind)


def check_capability(name: object, kind: str) -> str:
    """Validate one capability name for a plugin of ``kind``; return it unchanged."""
    check_capability_name(name)
    needed = _KIND_ONLY.get(str(name))
    if needed is not None and needed != kind:
        raise ManifestError("capabilities", f"{name!r} is only for {needed} plugins, not {kind}")
    return str(name)


def check_capability_name(name: object, where: str = "capabilities") -> str:
    """Validate the spelling of a capability name, whatever the plugin kind."""
    if not isinstance(name, str):
        raise ManifestError(where, f"{name!r} is not a string")
    if name in _KIND_ONLY or name == "state:kv":
        return name
    if name.startswith("net:fetch:"):
        host = name.removeprefix("net:fetch:")
        _, colon, port = host.partition(":")
        if len(host) <= 253 and _HOST.fullmatch(host) and (not colon or 1 <= int(port) <= 65535):
            return name
        raise ManifestError(
            where, f"{name!r}: the host must be a lowercase DNS name, with an optional port"
        )
    for form in ("secrets:read:", "keys:"):
        if name.startswith(form):
            rest = name.removeprefix(form)
            if len(rest) <= 64 and _NAME.fullmatch(rest):
                return name
            raise ManifestError(
                where, f"{name!r}: the name must be lowercase letters, digits, '.', '_', '-'"
            )
    suggestion = _suggest(name, [f.split("<")[0].rstrip(":") for f in CAPABILITY_FORMS])
    raise ManifestError(
        where,
        f"unknown capability {name!r}{suggestion}; known forms: {', '.join(CAPABILITY_FORMS)}",
    )


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_keys(table: dict[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            name = printable(key) if isinstance(key, str) else repr(key)
            raise ManifestError(f"{prefix}{name}", f"unknown key{_suggest(name, list(allowed))}")


def _integer(table: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(f"limits.{key}", f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ManifestError(f"limits.{key}", f"must be between {low} and {high}, got {value}")
    return value


def _string(table: dict[str, Any], key: str) -> str:
    if key not in table:
        raise ManifestError(key, "is required")
    value = table[key]
    if not isinstance(value, str):
        raise ManifestError(key, f"must be a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Limits:
    """Per-call resource limits the sandbox enforces."""

    timeout_ms: int = 1000
    memory_mb: int = 256
    concurrency: int = 4

    _KEYS = ("timeout-ms", "memory-mb", "concurrency")

    @classmethod
    def from_dict(cls, table: object) -> Limits:
        if not isinstance(table, dict):
            raise ManifestError("limits", "must be a table")
        _unknown_keys(table, cls._KEYS, "limits.")
        return cls(
            timeout_ms=_integer(table, "timeout-ms", cls.timeout_ms, 1, 60_000),
            memory_mb=_integer(table, "memory-mb", cls.memory_mb, 16, 4096),
            concurrency=_integer(table, "concurrency", cls.concurrency, 1, 64),
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "timeout-ms": self.timeout_ms,
            "memory-mb": self.memory_mb,
            "concurrency": self.concurrency,
        }


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated ``plugin.toml``. Equal manifests have equal ``to_dict()``."""

    id: str
    version: str
    kind: str
    entry: str
    description: str
    requires_host: str
    capabilities: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)

    _KEYS = (
        "id",
        "version",
        "kind",
        "entry",
        "description",
        "requires-host",
        "capabilities",
        "limits",
    )

    @property
    def semver(self) -> SemVer:
        return SemVer.parse(self.version)

    @property
    def specifier(self) -> SpecifierSet:
        return SpecifierSet(self.requires_host)

    @classmethod
    def from_toml(cls, data: bytes) -> Manifest:
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError("", f"larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            table = load_toml(data)
        except DecodeError as exc:
            raise ManifestError("", str(exc)) from None
        return cls.from_dict(table)

    @classmethod
    def from_dict(cls, table: object) -> Manifest:
        """Validate a parsed table (from TOML, or from a signed statement)."""
        if not isinstance(table, dict):
            raise ManifestError("", "must be a table")
        _unknown_keys(table, cls._KEYS, "")
        plugin_id = check_plugin_id(table.get("id"))
        version = _string(table, "version")
        try:
            SemVer.parse(version)
        except ValueError as exc:
            raise ManifestError("version", str(exc)) from None
        kind = _string(table, "kind")
        if kind not in KINDS:
            raise ManifestError("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        entry = _string(table, "entry")
        if len(entry) > 255 or not _ENTRY.fullmatch(entry) or ".." in entry.split("/"):
            raise ManifestError(
                "entry", f"{entry[:80]!r} must be a relative path to a .py file inside the bundle"
            )
        description = _string(table, "description")
        if not description.strip() or len(description) > MAX_DESCRIPTION:
            raise ManifestError("description", f"must be 1-{MAX_DESCRIPTION} characters")
        requires_host = _string(table, "requires-host")
        try:
            SpecifierSet(requires_host)
        except InvalidSpecifier:
            raise ManifestError(
                "requires-host",
                f"{requires_host!r} is not a PEP 440 version specifier (e.g. '>=0.1,<2')",
            ) from None
        if not requires_host.strip() or len(SpecifierSet(requires_host)) == 0:
            raise ManifestError("requires-host", "must name the host versions (e.g. '>=0.1,<2')")
        return cls(
            id=plugin_id,
            version=version,
            kind=kind,
            entry=entry,
            description=description,
            requires_host=requires_host,
            capabilities=_capabilities(table.get("capabilities", []), kind),
            limits=Limits.from_dict(table.get("limits", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field, defaults included: this is what the signature covers."""
        return {
            "id": self.id,
            "version": self.version,
            "kind": self.kind,
            "entry": self.entry,
            "description": self.description,
            "requires-host": self.requires_host,
            "capabilities": list(self.capabilities),
            "limits": self.limits.to_dict(),
        }


def _capabilities(value: object, kind: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ManifestError("capabilities", "must be a list of strings")
    if len(value) > MAX_CAPABILITIES:
        raise ManifestError("capabilities", f"at most {MAX_CAPABILITIES} entries")
    names = tuple(check_capability(item, kind) for item in value)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ManifestError("capabilities", f"{duplicates[0]!r} is listed twice")
    return names
