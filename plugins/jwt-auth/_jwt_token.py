"""Strict decoding of a compact JWS (RFC 7515 §7.1): three base64url parts, JSON header and claims.

Everything an attacker controls is checked before it is used: the alphabet, canonical
base64url without padding, UTF-8, JSON objects without duplicate names (two ``alg`` members
could be read differently by two parsers) and without NaN/Infinity. Any failure is a
:class:`TokenError` whose ``reason`` is the stable deny reason.
"""

from __future__ import annotations

import base64
import binascii
import json

__all__ = ["B64URL_ALPHABET", "Token", "TokenError", "b64url_decode", "parse_json_object", "split"]

B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class TokenError(ValueError):
    """The token is refused; ``reason`` is the deny reason, the message is for logs."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def b64url_decode(text: str) -> bytes:
    """Canonical unpadded base64url (RFC 7515 §2), or ValueError.

    Canonical means re-encoding gives the same text: otherwise unused low bits of the last
    character could vary, and two spellings of one token would exist.
    """
    if not B64URL_ALPHABET.issuperset(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != text:
        raise ValueError("non-canonical base64url")
    return data


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse_json_object(data: bytes) -> dict[str, object]:
    """A strict JSON object from UTF-8 bytes, or ValueError."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except RecursionError:  # deeply nested arrays: refuse rather than crash
        raise ValueError("nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class Token:
    """A split compact JWS: decoded header and signature, the signing input, raw claims part."""

    __slots__ = ("claims_part", "header", "signature", "signing_input")

    def __init__(
        self, header: dict[str, object], signing_input: bytes, claims_part: bytes, signature: bytes
    ) -> None:
        self.header = header
        self.signing_input = signing_input
        self.claims_part = claims_part
        self.signature = signature

    def claims(self) -> dict[str, object]:
        """The claims; call only after the signature verified (do not parse unverified data)."""
        try:
            return parse_json_object(self.claims_part)
        except ValueError as exc:
            raise TokenError("malformed-token", f"claims: {exc}") from None


def split(token: str) -> Token:
    """Decode the three parts of a compact JWS; the claims are decoded but not yet parsed."""
    parts = token.split(".")
    if len(parts) != 3:  # five parts would be a JWE, which this plugin does not accept
        raise TokenError("malformed-token", f"expected 3 dot-separated parts, got {len(parts)}")
    try:
        header_bytes, claims_bytes, signature = (b64url_decode(part) for part in parts)
        header = parse_json_object(header_bytes)
    except ValueError as exc:
        raise TokenError("malformed-token", str(exc)) from None
    if not claims_bytes:
        raise TokenError("malformed-token", "empty claims")
    signing_input = (parts[0] + "." + parts[1]).encode("ascii")
    return Token(header, signing_input, claims_bytes, signature)
