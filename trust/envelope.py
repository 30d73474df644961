"""DSSE-style signature envelopes: one payload, several Ed25519 signatures.

Wire form (exactly these fields, nothing else)::

    {"payloadType": "application/vnd.haechi.plugin+json",
     "payload": "<standard padded base64>",
     "signatures": [{"keyid": "<32 lowercase hex>", "sig": "<base64 of 64 bytes>"}]}

Each signature covers the DSSE pre-authentication encoding
``"DSSEv1" SP len(type) SP type SP len(payload) SP payload``, so a signature made over a trust
state can never be replayed as a plugin statement, and vice versa. Example::

    >>> from haechi.trust.keys import SigningKey
    >>> key = SigningKey.generate()
    >>> env = Envelope(PLUGIN_PAYLOAD_TYPE, b"{}", ()).add_signature(key)
    >>> Envelope.from_json(env.to_json(), PLUGIN_PAYLOAD_TYPE) == env
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ._internal.encoding import DecodeError, b64decode_strict, b64encode, strict_json_loads
from .errors import EnvelopeError
from .keys import SigningKey

__all__ = [
    "PLUGIN_PAYLOAD_TYPE",
    "TRUST_PAYLOAD_TYPE",
    "Envelope",
    "Signature",
    "pae",
]

PLUGIN_PAYLOAD_TYPE = "application/vnd.haechi.plugin+json"
TRUST_PAYLOAD_TYPE = "application/vnd.haechi.trust+json"

MAX_ENVELOPE_BYTES = 1024 * 1024
MAX_SIGNATURES = 16
_HEX = frozenset("0123456789abcdef")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    @property
    def signed_message(self) -> bytes:
        return pae(self.payload_type, self.payload)

    @property
    def keyids(self) -> tuple[str, ...]:
        """Distinct key ids, in order of first appearance."""
        return tuple(dict.fromkeys(s.keyid for s in self.signatures))

    def add_signature(self, key: SigningKey) -> Envelope:
        if key.keyid in self.keyids:
            raise EnvelopeError(f"already signed by key {key.keyid}")
        if len(self.signatures) >= MAX_SIGNATURES:
            raise EnvelopeError(f"an envelope holds at most {MAX_SIGNATURES} signatures")
        signature = Signature(key.keyid, key.sign(self.signed_message))
        return Envelope(self.payload_type, self.payload, (*self.signatures, signature))

    def to_json(self) -> bytes:
        """The one byte form of an envelope: 2-space JSON and a final newline.

        Written out by hand (every value is an ASCII string: the payload type is one of our
        constants, the rest is base64 or hex) because ``json.dumps(indent=...)`` falls back to
        the slow pure-Python encoder, and verification re-serialises every envelope.
        """
        signatures = ",\n".join(
            f'    {{\n      "keyid": {json.dumps(s.keyid)},\n'
            f'      "sig": "{b64encode(s.sig)}"\n    }}'
            for s in self.signatures
        )
        body = f"[\n{signatures}\n  ]" if self.signatures else "[]"
        text = (
            f'{{\n  "payloadType": {json.dumps(self.payload_type)},\n'
            f'  "payload": "{b64encode(self.payload)}",\n'
            f'  "signatures": {body}\n}}\n'
        )
        return text.encode("ascii")

    @classmethod
    def from_json(cls, data: bytes, expected_type: str) -> Envelope:
        """Parse strictly; every deviation is an :class:`EnvelopeError` naming the field."""
        if len(data) > MAX_ENVELOPE_BYTES:
            raise EnvelopeError(f"envelope is larger than {MAX_ENVELOPE_BYTES} bytes")
        try:
            document = strict_json_loads(data)
        except DecodeError as exc:
            raise EnvelopeError(f"envelope: {exc}") from None
        if not isinstance(document, dict):
            raise EnvelopeError("envelope: must be a JSON object")
        expected = {"payloadType", "payload", "signatures"}
        if set(document) != expected:
            extra = sorted(set(document) - expected)
            missing = sorted(expected - set(document))
            raise EnvelopeError(f"envelope: unknown fields {extra} / missing fields {missing}")
        payload_type = document["payloadType"]
        if payload_type != expected_type:
            raise EnvelopeError(
                f"envelope: payloadType is {payload_type!r}, expected {expected_type!r}"
            )
        try:
            payload = b64decode_strict(document["payload"])
        except DecodeError as exc:
            raise EnvelopeError(f"envelope: payload: {exc}") from None
        envelope = cls(payload_type, payload, _signatures(document["signatures"]))
        # One byte spelling per envelope: re-serialising must give the same bytes, so no
        # byte of plugin.sig can change without the verdict changing.
        if envelope.to_json() != data:
            raise EnvelopeError(
                "envelope: not in canonical form (2-space JSON exactly as haechi writes it); "
                "signed files must not be reformatted: sign again instead"
            )
        return envelope


def _signatures(value: object) -> tuple[Signature, ...]:
    if not isinstance(value, list) or not value:
        raise EnvelopeError("envelope: signatures must be a non-empty list")
    if len(value) > MAX_SIGNATURES:
        raise EnvelopeError(f"envelope: more than {MAX_SIGNATURES} signatures")
    result = []
    for index, item in enumerate(value):
        where = f"envelope: signatures[{index}]"
        if not isinstance(item, dict) or set(item) != {"keyid", "sig"}:
            raise EnvelopeError(f"{where}: must have exactly the fields keyid and sig")
        keyid = item["keyid"]
        if not isinstance(keyid, str) or len(keyid) != 32 or not set(keyid) <= _HEX:
            raise EnvelopeError(f"{where}.keyid: must be 32 lowercase hex characters")
        try:
            sig = b64decode_strict(item["sig"], length=64)
        except DecodeError as exc:
            raise EnvelopeError(f"{where}.sig: {exc}") from None
        result.append(Signature(keyid, sig))
    return tuple(result)
