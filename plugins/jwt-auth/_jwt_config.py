"""The ``jwt-config`` secret: a JSON document, validated strictly (see README.md).

A mistake is a :class:`ConfigError` that names the field; the plugin then refuses every request
(fails closed) rather than guessing. Unknown fields are errors too: a misspelt ``"audiance"``
must not silently turn audience checking off.
"""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import urlsplit

__all__ = ["SUPPORTED_ALGORITHMS", "Config", "ConfigError", "hs256_key", "parse"]

SUPPORTED_ALGORITHMS = ("HS256", "RS256", "EdDSA")
MIN_HS256_KEY_BYTES = 32  # RFC 7518 §3.2: at least the hash output size


class ConfigError(ValueError):
    """The operator's configuration is unusable; the message names the field."""


class Config:
    """Validated settings; attribute names are the JSON fields (see README.md)."""

    issuer: str
    audience: tuple[str, ...]
    algorithms: tuple[str, ...]
    leeway_seconds: int
    jwks_url: str | None
    jwks_allow_http: bool
    jwks_max_age_seconds: int
    jwks_refetch_interval_seconds: int
    max_token_age_seconds: int | None
    principal_claim: str
    scopes_claim: str

    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)


def _string(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 2048:
        raise ConfigError(f"jwt-config: {field}: must be a non-empty string")
    return value


def _integer(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"jwt-config: {field}: must be an integer from {low} to {high}")
    return value


def _strings(value: object, field: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(f"jwt-config: {field}: must be a string or a non-empty list of strings")
    return tuple(_string(item, field) for item in items)


def _algorithms(value: object) -> tuple[str, ...]:
    algorithms = _strings(value, "algorithms")
    for alg in algorithms:
        if alg.lower() == "none":
            raise ConfigError("jwt-config: algorithms: 'none' (unsigned tokens) is never allowed")
        if alg not in SUPPORTED_ALGORITHMS:
            raise ConfigError(
                f"jwt-config: algorithms: {alg[:40]!r} is not supported; "
                f"use {', '.join(SUPPORTED_ALGORITHMS)}"
            )
    return algorithms


def _jwks_url(value: object, allow_http: bool) -> str:
    url = _string(value, "jwks_url")
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(
            "jwt-config: jwks_url: must be an https:// URL "
            "(http:// only with jwks_allow_http, for tests)"
        )
    return url


_FIELDS = {
    "issuer",
    "audience",
    "algorithms",
    "leeway_seconds",
    "jwks_url",
    "jwks_allow_http",
    "jwks_max_age_seconds",
    "jwks_refetch_interval_seconds",
    "max_token_age_seconds",
    "principal_claim",
    "scopes_claim",
}


def parse(text: str) -> Config:
    """Validate the ``jwt-config`` secret's text."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"jwt-config: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError("jwt-config: must be a JSON object")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise ConfigError(f"jwt-config: unknown field {unknown[0][:40]!r}")
    for field in ("issuer", "audience", "algorithms"):
        if field not in raw:
            raise ConfigError(f"jwt-config: {field}: is required")

    allow_http = raw.get("jwks_allow_http", False)
    if not isinstance(allow_http, bool):
        raise ConfigError("jwt-config: jwks_allow_http: must be true or false")
    algorithms = _algorithms(raw["algorithms"])
    jwks_url = raw.get("jwks_url")
    if jwks_url is None and any(alg != "HS256" for alg in algorithms):
        raise ConfigError("jwt-config: jwks_url: is required for RS256 and EdDSA")
    max_token_age = raw.get("max_token_age_seconds")
    return Config(
        issuer=_string(raw["issuer"], "issuer"),
        audience=_strings(raw["audience"], "audience"),
        algorithms=algorithms,
        leeway_seconds=_integer(raw.get("leeway_seconds", 60), "leeway_seconds", 0, 300),
        jwks_url=None if jwks_url is None else _jwks_url(jwks_url, allow_http),
        jwks_allow_http=allow_http,
        jwks_max_age_seconds=_integer(
            raw.get("jwks_max_age_seconds", 300), "jwks_max_age_seconds", 10, 86400
        ),
        jwks_refetch_interval_seconds=_integer(
            raw.get("jwks_refetch_interval_seconds", 30), "jwks_refetch_interval_seconds", 1, 3600
        ),
        max_token_age_seconds=None
        if max_token_age is None
        else _integer(max_token_age, "max_token_age_seconds", 1, 31_536_000),
        principal_claim=_string(raw.get("principal_claim", "sub"), "principal_claim"),
        scopes_claim=_string(raw.get("scopes_claim", "scope"), "scopes_claim"),
    )


def hs256_key(text: str) -> bytes:
    """The ``jwt-hs256-key`` secret: the key as text, or ``base64url:<key>`` for binary keys."""
    text = text.strip()
    if text.startswith("base64url:"):
        encoded = text.removeprefix("base64url:")
        try:
            key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raise ConfigError("jwt-hs256-key: the base64url: value does not decode") from None
    else:
        key = text.encode("utf-8")
    if len(key) < MIN_HS256_KEY_BYTES:
        raise ConfigError(
            f"jwt-hs256-key: must be at least {MIN_HS256_KEY_BYTES} bytes, got {len(key)}"
        )
    return key
